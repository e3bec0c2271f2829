"""The MAML paper's baseline: one network trained jointly on all tasks, fine-tuned at test time."""

from __future__ import annotations

import torch

from ..tasks import TaskBatch
from .base import Algorithm, MetaStepResult
from .inner import InnerRates, Params, task_accuracy, task_losses


class Pretrain(Algorithm):
    """Minimise the mean loss over every point of every task (support and query together).

    The per-step losses come from fine-tuning a detached copy exactly as evaluation does, so
    its curves are comparable with MAML's.
    """

    needs_inner_graph = False   # per-step batch-norm sets would never be trained

    def meta_step(self, params: Params, rates: InnerRates, batch: TaskBatch, iteration: int) -> MetaStepResult:
        fwd, kind = self.net.forward, self.kind
        x = torch.cat([batch.support_x, batch.query_x], 1)
        y = torch.cat([batch.support_y, batch.query_y], 1)
        loss = task_losses(fwd(params, x), y, kind).mean()
        loss.backward()
        losses, accs = [], []
        with torch.no_grad():
            for p in self.adapt(params, rates, batch.support_x, batch.support_y, self.spec.inner_steps):
                out = fwd(p, batch.query_x)
                losses.append(task_losses(out, batch.query_y, kind).mean())
                if kind == "classification":
                    accs.append(task_accuracy(out, batch.query_y).mean())
        return MetaStepResult(loss.detach(), torch.stack(losses), torch.stack(accs) if accs else None)
