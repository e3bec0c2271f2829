"""One meta-iteration at a time, so any caller (CLI loop, GUI worker thread) can stop between steps."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from .config import ExperimentConfig
from .device import tune_cpu_threads
from .errors import TrainingDiverged
from .loaded_model import LoadedModel, copy_weights, weights_of
from .optim import MetaAdam
from .tasks import TaskBatch, TaskFamily


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
    """Owns the meta-parameters (weights and learned inner rates, built as a
    :class:`~core.loaded_model.LoadedModel`), the meta-optimiser (Adam) and the task sampler.
    ``step()`` performs exactly one meta-iteration.

    A family can be passed in for data that is not described by the spec alone (CSV data).
    """

    def __init__(self, config: ExperimentConfig, family: TaskFamily | None = None):
        model = LoadedModel(config, family=family, device=config.train.device)   # validates, checks sizes
        self.config, self.family, self.device = config, model.family, model.device
        self.net, self.algorithm = model.net, model.algorithm
        self.task_generator = torch.Generator().manual_seed(config.train.seed)
        self.params = {n: p.requires_grad_(True) for n, p in model.params.items()}
        tune_cpu_threads(sum(p.numel() for p in self.params.values()), self.device)   # training only: see device.py
        self.rates = model.rates
        for t in self.rates.tensors.values():
            t.requires_grad_(True)
        self.optimizer = MetaAdam(self.meta_parameters(), lr=config.train.meta_lr)
        self.iteration = 0

    # -- training -------------------------------------------------------------------------
    def sample_batch(self) -> TaskBatch:
        t = self.config.train
        return self.family.sample(t.meta_batch, t.shots, t.query, self.task_generator).to(self.device)

    def set_meta_lr(self, lr: float) -> None:
        """Applies from the next step; safe to change mid-run."""
        self.optimizer.lr = lr

    def step(self, batch: TaskBatch | None = None) -> StepMetrics:
        """One meta-iteration. Raises :class:`TrainingDiverged` (weights untouched) on NaN/inf."""
        start = time.perf_counter()
        batch = batch if batch is not None else self.sample_batch()
        self.optimizer.zero_grad(set_to_none=True)
        result = self.algorithm.meta_step(self.params, self.rates, batch, self.iteration)
        grads = [p.grad for p in self.meta_parameters() if p.grad is not None]
        grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        numbers = torch.cat([result.meta_loss.reshape(1), grad_norm.reshape(1), result.step_losses]).tolist()
        meta_loss, norm, step_losses = numbers[0], numbers[1], numbers[2:]
        if not (math.isfinite(meta_loss) and math.isfinite(norm)):
            self.optimizer.zero_grad(set_to_none=True)
            what = "meta-loss" if not math.isfinite(meta_loss) else "meta-gradient"
            raise TrainingDiverged(
                f"the {what} became {meta_loss if what == 'meta-loss' else norm} at iteration {self.iteration + 1}; "
                f"training stopped and the weights from iteration {self.iteration} were kept. "
                "Try a smaller inner or meta learning rate.")
        self.optimizer.step()
        self.iteration += 1
        accuracy = tuple(result.step_accuracy.tolist()) if result.step_accuracy is not None else None
        return StepMetrics(self.iteration, meta_loss, tuple(step_losses), norm, time.perf_counter() - start, accuracy)

    @property
    def gradient_path(self) -> str:
        return self.algorithm.gradient_path(self.params, self.rates)

    def meta_parameters(self) -> list[torch.Tensor]:
        return [*self.params.values(), *self.rates.tensors.values()]

    # -- state ----------------------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        """Detached CPU copies: ``model.<name>`` for weights, ``inner_lr.<name>`` for learned rates."""
        return weights_of(self.params, self.rates)

    def training_state(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Everything beyond the weights needed to resume exactly: Adam moments, the task
        sampler's generator state and the iteration count (tensors + string metadata)."""
        state = self.optimizer.state_dict()
        tensors = {"task_generator": self.task_generator.get_state()}
        for index, slots in state["state"].items():
            for key, value in slots.items():
                tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value).detach().cpu().clone()
        return tensors, {"iteration": str(self.iteration), "meta_lr": repr(state["param_groups"][0]["lr"])}

    def load_training_state(self, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
        state = self.optimizer.state_dict()
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for name, value in tensors.items():
            if name.startswith("optimizer."):
                _, index, key = name.split(".", 2)
                slots.setdefault(int(index), {})[key] = value.to(self.device) if key != "step" else value
        state["state"] = slots
        self.optimizer.load_state_dict(state)
        self.task_generator.set_state(tensors["task_generator"])
        self.iteration = int(metadata["iteration"])

    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy weights in (shapes already checked by the checkpoint reader)."""
        copy_weights(self.params, self.rates, tensors)
