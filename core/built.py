"""An experiment built once: the task family, network, algorithm, initial weights and inner rates
that a config names. :func:`build` makes them and the caller hands the :class:`Built` down to
whoever needs the network or its shapes (the weights' checks, a loaded model, the trainer, export,
the memory estimate), so a command builds its family and network one time, not once per reader."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from core.algorithms import Algorithm, InnerRates, build_algorithm
from core.algorithms.inner import Params
from core.config import ExperimentConfig
from core.device import resolve_device
from core.envs import build_env_family
from core.nets.models import build_net
from core.nets.policy import PolicyNet
from core.tasks import TaskFamily, build_family


@dataclass(frozen=True, eq=False)
class Built:
    """What :func:`build` made. ``params`` and ``rates`` are live tensors (the initialisation, until
    someone copies weights in or trains them): hand one Built to one owner, a loaded model or a
    trainer. ``family``, ``net`` and ``algorithm`` hold no weights."""

    config: ExperimentConfig
    family: TaskFamily
    net: Any
    algorithm: Algorithm
    params: Params
    rates: InnerRates
    device: torch.device

    def shapes(self) -> dict[str, torch.Size]:
        """``model.*`` and ``inner_lr.*`` names and shapes in the order of the trainer's meta-parameters
        (the optimiser's ``optimizer.<i>`` slots): what a weights file of this experiment holds."""
        return {**{f"model.{n}": p.shape for n, p in self.params.items()},
                **{f"inner_lr.{n}": t.shape for n, t in self.rates.tensors.items()}}

    def n_weights(self) -> int:
        return sum(p.numel() for p in self.params.values())

    def with_config(self, config: ExperimentConfig) -> "Built":
        """This build under ``config``, which may differ only in what a continued run may change
        (iterations, meta learning rate, device, compile: none of them changes what is built)."""
        changed = config.continue_changes(self.config)
        if changed:
            raise ValueError(f"{', '.join(changed)} changed: that is another network or task stream; build it")
        return self if config == self.config else dataclasses.replace(self, config=config)

    def to(self, device: str | torch.device) -> "Built":
        """This build with its weights and rates on ``device`` (itself when they are there already)."""
        where = device if isinstance(device, torch.device) else resolve_device(device)
        if where == self.device:
            return self
        params = {n: p.detach().to(where) for n, p in self.params.items()}
        rates = self.algorithm.make_rates(params)
        with torch.no_grad():
            for n, t in rates.tensors.items():
                t.copy_(self.rates.tensors[n])
        return dataclasses.replace(self, params=params, rates=rates, device=where)


def build(config: ExperimentConfig, family: TaskFamily | None = None, device: str | torch.device = "cpu") -> Built:
    """The family (``family`` when the caller has it: data families are read from files), network,
    algorithm and a fresh initialisation (seeded by ``train.seed``) on ``device``. Raises
    :class:`~core.errors.ConfigError` naming the field when the settings cannot be built."""
    if config.is_rl:
        return _build_policy(config, family, device)
    family = family if family is not None else build_family(config.family)
    where = device if isinstance(device, torch.device) else resolve_device(device)
    net = build_net(config.model, family.input_dim, family.output_dim, input_shape=getattr(family, "input_shape", None),
                    inner_steps=config.algorithm.inner_steps)
    algorithm = build_algorithm(config.algorithm, net, family.kind)
    params = net.init(torch.Generator().manual_seed(config.train.seed + 1), where)
    return Built(config, family, net, algorithm, params, algorithm.make_rates(params), where)


class _PolicyAlgorithm:
    """What a Built asks of its algorithm, for a policy: meta-RL's algorithms live in :mod:`core.rl`
    and keep no inner rates or extra tensors."""

    def make_rates(self, params: Params) -> InnerRates:
        return InnerRates("fixed", 0.0, params, (), 1)

    def start_training(self, family, params: Params, seed: int) -> Params:
        return {}

    def untrained(self) -> set[str]:
        return set()


def _build_policy(config: ExperimentConfig, family, device) -> Built:
    """A meta-RL experiment: the environment family and the policy (``model.*`` plus ``model.log_std``)."""
    family = family if family is not None else build_env_family(config.family)
    where = device if isinstance(device, torch.device) else resolve_device(device)
    net = PolicyNet(family.observation_dim, family.action_dim, config.model, discrete=family.discrete)
    params = net.init(torch.Generator().manual_seed(config.train.seed), where)
    algorithm = _PolicyAlgorithm()
    return Built(config, family, net, algorithm, params, algorithm.make_rates(params), where)


def prepare(source: ExperimentConfig | Built, family: TaskFamily | None = None,
            device: str | torch.device | None = None) -> Built:
    """``source`` ready to train or use: the network's, algorithm's and training settings checked
    (before anything is built), the family able to give the run's shots and query points; built on
    ``device`` (default: the CPU), or a given Built moved there (default: where it is)."""
    config = source.config if isinstance(source, Built) else source
    for spec in (config.model, config.algorithm, config.train):
        spec.validate()
    if isinstance(source, Built):
        if not config.is_rl:   # an environment family has no shots or query points
            source.family.check_sizes(config.train.shots, config.train.query)
        return source if device is None else source.to(device)
    family = family if family is not None else (build_env_family if config.is_rl else build_family)(config.family)
    if not config.is_rl:
        family.check_sizes(config.train.shots, config.train.query)
    return build(config, family, "cpu" if device is None else device)
