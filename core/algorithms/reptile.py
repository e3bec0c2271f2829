"""Reptile (Nichol et al. 2018): move the initialisation toward each task's fine-tuned weights."""

from __future__ import annotations

import torch

from ..tasks import TaskBatch
from .base import Algorithm, MetaStepResult
from .inner import InnerRates, Params, task_accuracy, task_losses


class Reptile(Algorithm):
    """The meta-gradient is ``θ − mean_t φ_t`` (φ_t: θ after N SGD steps on task t's support),
    handed to the meta-optimiser like any gradient (the paper's Adam variant)."""

    needs_inner_graph = False   # per-step batch-norm sets would never be trained

    def meta_step(self, params: Params, rates: InnerRates, batch: TaskBatch, iteration: int) -> MetaStepResult:
        kind, classify = self.kind, self.kind == "classification"
        trajectory = self.adapt(params, rates, batch.support_x, batch.support_y, self.spec.inner_steps)
        losses, accs = [], []
        with torch.no_grad():
            for p in trajectory:
                out = self.net.forward(p, batch.query_x)
                losses.append(task_losses(out, batch.query_y, kind).mean())
                if classify:
                    accs.append(task_accuracy(out, batch.query_y).mean())
        final = trajectory[-1]
        for n in self.adapt_names:
            params[n].grad = params[n].detach() - final[n].mean(0)
        return MetaStepResult(losses[-1], torch.stack(losses), torch.stack(accs) if classify else None)
