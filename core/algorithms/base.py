"""The contract between the trainer and an algorithm."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import PER_STEP_ALGORITHMS, AlgorithmSpec
from ..errors import ConfigError
from ..tasks import TaskBatch
from .inner import InnerRates, Params, fine_tune, fine_tune_steps


@dataclass
class MetaStepResult:
    """What one meta-iteration produced, still as tensors (the trainer turns them into floats once).

    ``step_losses[s]`` is the mean query loss after ``s`` inner steps (0..N); ``step_accuracy``
    is the same for accuracy (classification only).
    """

    meta_loss: torch.Tensor
    step_losses: torch.Tensor
    step_accuracy: torch.Tensor | None = None


class Algorithm:
    """Computes a meta-gradient into ``.grad`` of the meta-parameters, and adapts for evaluation."""

    rate_mode = "fixed"
    adapt_head_only = False

    needs_inner_graph = True   # False: the inner loop is never differentiated (Reptile, pretrain)

    def __init__(self, spec: AlgorithmSpec, net, kind: str):
        if not self.needs_inner_graph and getattr(net, "n_sets", 0):
            raise ConfigError("model.batch_norm", PER_STEP_ALGORITHMS)
        self.spec, self.net, self.kind = spec, net, kind

    @property
    def adapt_names(self) -> list[str]:
        fixed = set(getattr(self.net, "meta_only_names", ()))   # meta-learned, never adapted (per-step batch norm)
        return [n for n in (self.net.head_names if self.adapt_head_only else self.net.names) if n not in fixed]

    def make_rates(self, params: Params) -> InnerRates:
        return InnerRates(self.rate_mode, self.spec.inner_lr, params, self.adapt_names, self.spec.inner_steps)

    def start_training(self, family, params: Params, seed: int) -> Params:
        """Called once by the trainer before its optimiser exists; returns meta-parameters trained beside
        the network (pretrain's class head), kept in the training state, never in the weights. None here."""
        return {}

    def untrained(self) -> set[str]:
        """Names of network parameters this algorithm never gives a gradient (so Adam keeps no state for
        them and a training state rightly lacks their slots). None here."""
        return set()

    def meta_step(self, params: Params, rates: InnerRates, batch: TaskBatch, iteration: int) -> MetaStepResult:
        raise NotImplementedError

    def gradient_path(self, params: Params, rates: InnerRates) -> str:
        """How the meta-gradient is computed, in words (speed depends on it)."""
        return "autograd"

    def adapt(self, params: Params, rates: InnerRates, x: torch.Tensor, y: torch.Tensor, steps: int) -> list[Params]:
        """Fine-tune a copy per task on its support set; the params after 0..steps steps."""
        return fine_tune(self.net, params, self.adapt_names, x, y, self.kind, rates, steps)

    def adapt_steps(self, params: Params, rates: InnerRates, x: torch.Tensor, y: torch.Tensor, steps: int):
        """:meth:`adapt` one step at a time (an iterator of the params after 0..steps steps)."""
        return fine_tune_steps(self.net, params, self.adapt_names, x, y, self.kind, rates, steps)
