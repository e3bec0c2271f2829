"""Meta-RL training one meta-iteration at a time, with the same surface as
:class:`~core.training.trainer.MetaTrainer` (``step``, ``weights``, ``training_state``, ``load_*``…), so
``maml-gui train``'s loop, checkpoints, ``--resume``, ``--time-limit`` and SIGTERM handle RL runs unchanged."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from core.config import ExperimentConfig
from core.device import resolve_device, tune_cpu_threads
from core.envs import build_env_family
from core.errors import ConfigError, TrainingDiverged
from core.nets.policy import PolicyNet
from core.rl.meta import ppo_outer, sample, trpo_outer
from core.storage.schemas import check_training_state
from core.training.optim import MetaAdam

MODEL = "model."
SAMPLE_SEED_OFFSET = 3_000_017   # tasks and actions: Generator(seed + this), one stream (held-out tasks use seed + 1_000_003)


@dataclass(frozen=True)
class RLStepMetrics:
    """Plain numbers from one meta-iteration. ``meta_return``: the adapted policies' average return
    (undiscounted, over tasks and trajectories); ``step_returns``: the same before each inner step and
    after the last (``step_returns[-1] == meta_return``); ``kl`` and ``backtracks`` of the outer step
    (TRPO: the accepted step's KL, 0 when the line search found none); ``surrogate_gain``: how much the
    outer step raised the surrogate; ``env_steps``: environment steps sampled."""

    iteration: int
    meta_return: float
    step_returns: tuple[float, ...]
    grad_norm: float
    seconds: float
    kl: float = 0.0
    backtracks: int = 0
    surrogate_gain: float = 0.0
    env_steps: int = 0

    @property
    def meta_loss(self) -> float:   # what the shared command-line progress line prints
        return self.meta_return


def build_policy(config: ExperimentConfig, family) -> PolicyNet:
    return PolicyNet(family.observation_dim, family.action_dim, config.model, discrete=family.discrete)


def policy_family(config: ExperimentConfig):
    return build_env_family(config.family)


class RLTrainer:
    """Owns the policy's parameters, the outer optimiser (Adam, for the clipped-surrogate step only)
    and the one generator that draws tasks and actions. ``source``: the settings, or a
    :class:`~core.built.Built` of them (its family is used, and its weights are where training starts);
    ``family``: an environment family built already (default: the config's)."""

    def __init__(self, source, family=None, group=None):
        if group is not None:
            raise ConfigError("train.nproc", "meta-RL runs train in one process (several processes: not yet)")
        built = source if hasattr(source, "params") else None
        config = built.config if built is not None else source
        family = family or (built.family if built is not None else None)
        self.config = config
        self.family = config.validate(family)
        self.device = resolve_device(config.train.device)
        if self.device.type != "cpu":
            self.device = torch.device("cpu")   # environments step on the CPU; small policies run best there too
        self.policy = build_policy(config, self.family)
        start = built.params if built is not None else self.policy.init(torch.Generator().manual_seed(config.train.seed))
        self.params = {n: p.detach().clone().requires_grad_(True) for n, p in start.items()}
        tune_cpu_threads(sum(p.numel() for p in self.params.values()), self.device)
        self.generator = torch.Generator().manual_seed(config.train.seed + SAMPLE_SEED_OFFSET)
        self.optimizer = MetaAdam(list(self.params.values()), lr=config.train.meta_lr)
        self.iteration = 0
        self.compile_failure = None
        self.last_sampled = None   # the last iteration's trajectories (a view may draw them)

    # -- the MetaTrainer surface the command line uses ---------------------------------------
    @property
    def gradient_path(self) -> str:
        order = {"maml": "second order", "fomaml": "first order", "pretrain": "no inner step"}[self.config.algorithm.name]
        outer = "TRPO" if self.config.rl.outer == "trpo" else "clipped surrogate + Adam"
        return f"{order}, {outer}"

    def compile_step(self, announce=None, backend="inductor") -> str | None:
        return "meta-RL steps run eager (--compile applies to supervised runs)" if self.config.train.compile != "off" \
            else None

    def set_meta_lr(self, lr: float) -> None:
        self.optimizer.lr = lr

    def step(self) -> RLStepMetrics:
        """One meta-iteration. Raises :class:`TrainingDiverged` (weights untouched) on NaN/inf."""
        start = time.perf_counter()
        config = self.config
        before = {n: p.detach().clone() for n, p in self.params.items()}
        tasks = self.family.sample_tasks(config.train.meta_batch, self.generator)
        sampled = sample(self.policy, self.params, self.family, tasks, config, self.generator)
        if config.rl.outer == "trpo":
            outer = trpo_outer(self.policy, self.params, sampled, config)
        else:
            outer = ppo_outer(self.policy, self.params, sampled, config, self.optimizer)
        returns = tuple(t.average_return for t in (*sampled.inner, sampled.post))
        finite = all(math.isfinite(x) for x in (*returns, outer.grad_norm)) and \
            all(bool(torch.isfinite(p).all()) for p in self.params.values())
        if not finite:
            with torch.no_grad():
                for n, p in self.params.items():
                    p.copy_(before[n])
            raise TrainingDiverged(f"the return or policy gradient became NaN or inf at iteration {self.iteration + 1};"
                                   f" training stopped and the weights from iteration {self.iteration} were kept. "
                                   "Try a smaller inner learning rate or max KL.")
        self.iteration += 1
        self.last_sampled = sampled
        steps = sum(t.steps for t in (*sampled.inner, sampled.post))
        return RLStepMetrics(self.iteration, returns[-1], returns, outer.grad_norm, time.perf_counter() - start,
                             outer.kl, outer.backtracks, outer.surrogate_gain, steps)

    # -- state ---------------------------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        return {MODEL + n: p.detach().cpu().clone() for n, p in self.params.items()}

    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(tensors[MODEL + n])

    def training_state(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        state = self.optimizer.state_dict()
        tensors = {"task_generator": self.generator.get_state()}
        for index, slots in state["state"].items():
            for key, value in slots.items():
                tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value).detach().cpu().clone()
        return tensors, {"iteration": str(self.iteration), "meta_lr": repr(self.optimizer.lr)}

    def load_training_state(self, tensors: dict[str, torch.Tensor], metadata: dict[str, str],
                            source: str | Path = "training state") -> None:
        check_training_state(source, tensors, metadata, [p.shape for p in self.params.values()], {},
                             optional=set(range(len(self.params))))
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for name, value in tensors.items():
            if name.startswith("optimizer."):
                _, index, key = name.split(".", 2)
                slots.setdefault(int(index), {})[key] = value
        self.optimizer.load_state_dict({"state": slots})
        self.generator.set_state(tensors["task_generator"])
        self.iteration = int(metadata["iteration"])
