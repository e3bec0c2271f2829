"""Meta-RL training one meta-iteration at a time, with the same surface as
:class:`~core.training.trainer.MetaTrainer` (``step``, ``weights``, ``training_state``, ``load_*``…), so
``maml-gui train``'s loop, checkpoints, ``--resume``, ``--time-limit`` and SIGTERM handle RL runs unchanged,
in one process or as one of several (``--nproc``: see :meth:`RLTrainer._group_step`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.config import ExperimentConfig
from core.device import resolve_device, tune_cpu_threads
from core.envs import build_env_family
from core.errors import TrainingDiverged
from core.nets.policy import PolicyNet
from core.rl.meta import Shared, ppo_outer, sample, trpo_outer
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
    wall_time: float = math.nan   # when the step ended, seconds since the epoch (a plot's clock axis)

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
    ``family``: an environment family built already (default: the config's). With a
    :class:`~core.training.distributed.Group` this process trains on its share of each meta-batch."""

    def __init__(self, source, family=None, group=None):
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
        self.group = group
        if group is not None:
            self._shard = group.shard(config.train.meta_batch)
            fraction = (self._shard.stop - self._shard.start) / config.train.meta_batch
            self._shared = Shared(fraction, lambda values: group.all_sum(values, self.iteration))

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
        if self.group is not None:
            sampled, outer, returns, steps = self._group_step(before)
        else:
            tasks = self.family.sample_tasks(config.train.meta_batch, self.generator)
            sampled = sample(self.policy, self.params, self.family, tasks, config, self.generator)
            outer = self._outer(sampled)
            returns = tuple(t.average_return for t in (*sampled.inner, sampled.post))
            steps = sum(t.steps for t in (*sampled.inner, sampled.post))
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
        return RLStepMetrics(self.iteration, returns[-1], returns, outer.grad_norm, time.perf_counter() - start,
                             outer.kl, outer.backtracks, outer.surrogate_gain, steps, time.time())

    def _outer(self, sampled, shared: Shared | None = None):
        if self.config.rl.outer == "trpo":
            return trpo_outer(self.policy, self.params, sampled, self.config, shared)
        return ppo_outer(self.policy, self.params, sampled, self.config, self.optimizer, shared)

    def _group_step(self, before: dict[str, torch.Tensor]):
        """One process of several: every process draws the whole meta-batch from the task generator
        (tasks only, here) and keeps its share; its actions come from its own stream. The outer step
        sums over processes (:class:`~core.rl.meta.Shared`), and one last exchange adds the returns
        (weighted by share), the steps taken and the stop votes. Raises
        :class:`~core.training.distributed.PeerFailed` with the state of the last completed iteration."""
        from core.training.distributed import PeerFailed

        config, group, fraction = self.config, self.group, self._shared.fraction
        position = self.generator.get_state()
        adam = [t.clone() for t in self._adam_tensors()] if config.rl.outer != "trpo" else None
        try:
            tasks = self.family.sample_tasks(config.train.meta_batch, self.generator)[self._shard]
            sampled = sample(self.policy, self.params, self.family, tasks, config, self._action_generator())
            outer = self._outer(sampled, self._shared)
            trajectories = (*sampled.inner, sampled.post)
            numbers = torch.tensor([*(t.average_return * fraction for t in trajectories),
                                    sum(t.steps for t in trajectories)], dtype=torch.float64)
            numbers = group.settle(group.reduce([], numbers, 1.0, self.iteration).tolist())
        except PeerFailed:
            self.generator.set_state(position)
            with torch.no_grad():
                for n, p in self.params.items():
                    p.copy_(before[n])
                for t, saved in zip(self._adam_tensors() if adam else (), adam or ()):
                    t.copy_(saved)
            raise
        return sampled, outer, tuple(numbers[:-1]), int(round(numbers[-1]))

    def _action_generator(self) -> torch.Generator:
        """This process's actions (and starts) for this iteration, seeded by run seed, rank and iteration:
        nothing to checkpoint, so a resumed run draws what the uninterrupted one would."""
        seed = np.random.SeedSequence([self.config.train.seed, SAMPLE_SEED_OFFSET, self.group.rank, self.iteration])
        return torch.Generator().manual_seed(int(seed.generate_state(1, np.uint64)[0]))

    def _adam_tensors(self) -> list[torch.Tensor]:
        o = self.optimizer
        return [*o.steps, *o.exp_avg, *o.exp_avg_sq]

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
