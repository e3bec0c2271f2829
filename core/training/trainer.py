"""One meta-iteration at a time, so any caller (CLI loop, GUI worker thread) can stop between steps."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from core.training.compiled import AUTO_MIN_SECONDS, MetaStep
from core.config import ExperimentConfig
from core.device import tune_cpu_threads
from core.errors import TrainingDiverged
from core.built import Built, prepare
from core.trained.loaded_model import copy_weights, weights_of
from core.training.optim import MetaAdam
from core.storage.schemas import check_training_state, untrained_slots
from core.tasks import TaskBatch, TaskFamily
from core.tasks.stream import TaskStream


@dataclass(frozen=True)
class StepMetrics:
    """Plain numbers from one meta-iteration; safe to hand to another thread."""

    iteration: int
    meta_loss: float
    step_losses: tuple[float, ...]
    grad_norm: float
    seconds: float
    step_accuracy: tuple[float, ...] | None = None


class MetaTrainer:
    """Owns the meta-parameters (a :class:`~core.built.Built`'s weights and learned inner rates, on
    ``train.device``), the meta-optimiser (Adam) and the task sampler. ``step()`` performs exactly
    one meta-iteration.

    ``experiment`` is a config (built here, with ``family`` when given: data a spec alone does not
    describe) or what the caller built already (its tensors become the trainer's).
    With a :class:`~core.training.distributed.Group` this process meta-trains on its share of each
    meta-batch and the meta-gradients of all processes are summed (see ``core/training/distributed.py``).
    """

    def __init__(self, experiment: ExperimentConfig | Built, family: TaskFamily | None = None, group=None):
        config = experiment.config if isinstance(experiment, Built) else experiment
        built = self.built = prepare(experiment, family, config.train.device)   # validates, checks sizes
        self.config, self.family, self.device = config, built.family, built.device
        self.net, self.algorithm = built.net, built.algorithm
        t = config.train
        self.tasks = TaskStream(self.family, t.meta_batch, t.shots, t.query, t.seed)
        self.group = group
        if group is not None:
            group.check_device(self.device)
            self._shard = group.shard(config.train.meta_batch)
            self._share = (self._shard.stop - self._shard.start) / config.train.meta_batch
        self.params = {n: p.requires_grad_(True) for n, p in built.params.items()}
        tune_cpu_threads(sum(p.numel() for p in self.params.values()), self.device)   # training only: see device.py
        self.rates = built.rates
        for t in self.rates.tensors.values():
            t.requires_grad_(True)
        # trained beside the network, saved in the training state only (pretrain's class head)
        self.extra_params = self.algorithm.start_training(self.family, self.params, config.train.seed)
        self.optimizer = MetaAdam(self.meta_parameters(), lr=config.train.meta_lr)
        self.iteration = 0
        self._n_losses = config.algorithm.inner_steps + 1
        # alone, the compiled step takes the Adam step too; a group exchanges gradients in between
        self._meta_step = MetaStep(self.algorithm, self.meta_parameters(), self.device,
                                   optimizer=self.optimizer if group is None else None)

    # -- training -------------------------------------------------------------------------
    def sample_batch(self) -> TaskBatch:
        """The whole meta-batch, also with a group (each process keeps its share in :meth:`step`)."""
        batch = self.tasks.next()
        return batch if self.device.type == "cpu" else batch.to(self.device)

    def set_meta_lr(self, lr: float) -> None:
        """Applies from the next step; safe to change mid-run."""
        self.optimizer.lr = lr

    def step(self, batch: TaskBatch | None = None) -> StepMetrics:
        """One meta-iteration. Raises :class:`TrainingDiverged` (weights untouched) on NaN/inf."""
        start = time.perf_counter()
        if self.group is not None:
            return self._group_step(start, batch)
        batch = batch if batch is not None else self.sample_batch()
        self.optimizer.zero_grad(set_to_none=True)
        numbers = self._meta_step(self.params, self.rates, batch, self.iteration).tolist()
        return self._finish(start, numbers)

    def _group_step(self, start: float, batch: TaskBatch | None) -> StepMetrics:
        """This process's share of the batch, then the exchange. Raises
        :class:`~core.training.distributed.PeerFailed` with the state of the last completed iteration
        (the sampler rewound too), so rank 0 can save it and a resumed run stays exact."""
        from core.training.distributed import PeerFailed, shard_batch

        sampler = self.tasks.position() if batch is None else None
        batch = shard_batch(batch if batch is not None else self.sample_batch(), self._shard)
        self.optimizer.zero_grad(set_to_none=True)
        numbers = self._meta_step(self.params, self.rates, batch, self.iteration)
        try:
            numbers = self.group.reduce(self.meta_parameters(), numbers, self._share, self.iteration)
        except PeerFailed:
            self.optimizer.zero_grad(set_to_none=True)
            if sampler is not None:
                self.tasks.rewind(sampler)
            raise
        return self._finish(start, self.group.settle(numbers.tolist()))

    def _finish(self, start: float, numbers: list[float]) -> StepMetrics:
        """Check the meta-step's numbers, then take the Adam step."""
        meta_loss, norm = numbers[0], numbers[1]
        step_losses, accuracy = numbers[2:2 + self._n_losses], numbers[2 + self._n_losses:] or None
        if not (math.isfinite(meta_loss) and math.isfinite(norm)):
            self.optimizer.zero_grad(set_to_none=True)
            what = "meta-loss" if not math.isfinite(meta_loss) else "meta-gradient"
            raise TrainingDiverged(
                f"the {what} became {meta_loss if what == 'meta-loss' else norm} at iteration {self.iteration + 1}; "
                f"training stopped and the weights from iteration {self.iteration} were kept. "
                "Try a smaller inner or meta learning rate.")
        if not self._meta_step.updated:
            self.optimizer.step()
        self.iteration += 1
        return StepMetrics(self.iteration, meta_loss, tuple(step_losses), norm, time.perf_counter() - start,
                           tuple(accuracy) if accuracy is not None else None)

    def compile_step(self, announce: Callable[[str], None] | None = None, backend="inductor") -> str | None:
        """Compile the meta-step as ``train.compile`` asks: "on", or "auto" when the remaining
        iterations would take over :data:`~core.training.compiled.AUTO_MIN_SECONDS` eager. Call it before
        training; it may take tens of seconds, so ``announce`` hears "compiling the meta-step…"
        first. Returns one line for the user (None when off); any failure leaves the step eager."""
        choice = self.config.train.compile
        if choice == "off" or self._meta_step.compiled:
            return None
        t = self.config.train
        # a throwaway batch of the run's shapes, drawn off the training stream so resuming stays exact
        probe = self.family.sample(t.meta_batch, t.shots, t.query, torch.Generator().manual_seed(t.seed + 1))
        if self.group is not None:
            from core.training.distributed import shard_batch

            probe = shard_batch(probe, self._shard)
        probe = probe.to(self.device)
        if choice == "auto":
            seconds = (t.iterations - self.iteration) * self._meta_step.eager_seconds(
                self.params, self.rates, probe, self.iteration)
            if seconds < AUTO_MIN_SECONDS:
                return (f"the meta-step runs eager: this run needs about {seconds:.0f} s of meta-steps, "
                        f"too short to pay for compiling (auto compiles from {AUTO_MIN_SECONDS:.0f} s)")
        return self._meta_step.compile(self.params, self.rates, probe, backend, announce)[1]

    @property
    def compiled(self) -> bool:
        return self._meta_step.compiled

    @property
    def compile_failure(self) -> str | None:
        """Why a compiled meta-step fell back to eager during the run, if it did."""
        return self._meta_step.failure

    @property
    def gradient_path(self) -> str:
        path = self.algorithm.gradient_path(self.params, self.rates)
        return f"{path}, compiled" if self._meta_step.compiled else path

    def meta_parameters(self) -> list[torch.Tensor]:
        return [*self.params.values(), *self.rates.tensors.values(), *self.extra_params.values()]

    # -- state ----------------------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        """Detached CPU copies: ``model.<name>`` for weights, ``inner_lr.<name>`` for learned rates."""
        return weights_of(self.params, self.rates)

    def training_state(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Everything beyond the weights needed to resume exactly: Adam moments, the task
        sampler's generator state, the algorithm's extra parameters and the iteration count
        (tensors + string metadata)."""
        state = self.optimizer.state_dict()
        tensors = {"task_generator": self.tasks.get_state()}
        tensors.update({n: t.detach().cpu().clone() for n, t in self.extra_params.items()})
        for index, slots in state["state"].items():
            for key, value in slots.items():
                tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value).detach().cpu().clone()
        return tensors, {"iteration": str(self.iteration), "meta_lr": repr(state["param_groups"][0]["lr"])}

    def load_training_state(self, tensors: dict[str, torch.Tensor], metadata: dict[str, str],
                            source: str | Path = "training state") -> None:
        """Restore what :meth:`training_state` saved, after checking it exactly against this trainer's
        meta-parameters (raises :class:`~core.storage.schemas.RunFileError` naming ``source`` and the key)."""
        check_training_state(source, tensors, metadata, [p.shape for p in self.meta_parameters()],
                             {n: t.shape for n, t in self.extra_params.items()},
                             optional=untrained_slots(self.params, self.algorithm.untrained()))
        state = self.optimizer.state_dict()
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for name, value in tensors.items():
            if name.startswith("optimizer."):
                _, index, key = name.split(".", 2)
                slots.setdefault(int(index), {})[key] = value.to(self.device) if key != "step" else value
        state["state"] = slots
        self.optimizer.load_state_dict(state)
        self.tasks.set_state(tensors["task_generator"])
        with torch.no_grad():
            for n, t in self.extra_params.items():
                if n in tensors:   # a state saved before the algorithm had them keeps the fresh ones
                    t.copy_(tensors[n])
        self.iteration = int(metadata["iteration"])

    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy weights in (shapes already checked by the checkpoint reader)."""
        copy_weights(self.params, self.rates, tensors)
