"""MAML and its gradient-through-adaptation relatives: first-order MAML, Meta-SGD, MAML++, ANIL.

They differ only in which parameters adapt, how inner rates are held, which steps enter the
meta-loss and whether the inner gradient is differentiated (second order); one class covers all.
"""

from __future__ import annotations

import torch

from ..tasks import TaskBatch
from .base import Algorithm, MetaStepResult
from .inner import InnerRates, Params, inner_step, start, task_accuracy, task_losses


class MAML(Algorithm):
    """Second-order MAML (Finn et al. 2017): backpropagate through the inner SGD steps."""

    second_order = True

    def second_order_at(self, iteration: int) -> bool:
        return self.second_order

    def step_weights(self, iteration: int) -> torch.Tensor | None:
        """Weights of the query losses after steps 1..N in the meta-loss; None = last step only."""
        return None

    def meta_step(self, params: Params, rates: InnerRates, batch: TaskBatch, iteration: int) -> MetaStepResult:
        fwd, kind, names = self.net.forward, self.kind, self.adapt_names
        n_steps = self.spec.inner_steps
        create_graph = self.second_order_at(iteration)
        weights = self.step_weights(iteration)
        classify = kind == "classification"

        with torch.no_grad():
            out0 = fwd(params, batch.query_x)
            losses = [task_losses(out0, batch.query_y, kind).mean()]
            accs = [task_accuracy(out0, batch.query_y).mean()] if classify else []

        p = start(self.net, params, names, batch.n_tasks)
        meta_loss = None
        for s in range(n_steps):
            p = inner_step(self.net, p, names, batch.support_x, batch.support_y, kind, rates, s, create_graph)
            last = s == n_steps - 1
            if last or weights is not None:
                out = fwd(p, batch.query_x)
                q = task_losses(out, batch.query_y, kind).mean()
                term = q if weights is None else weights[s] * q
                meta_loss = term if meta_loss is None else meta_loss + term
            else:
                with torch.no_grad():
                    out = fwd(p, batch.query_x)
                    q = task_losses(out, batch.query_y, kind).mean()
            losses.append(q.detach())
            if classify:
                accs.append(task_accuracy(out.detach(), batch.query_y).mean())

        meta_loss.backward()
        return MetaStepResult(losses[-1], torch.stack(losses), torch.stack(accs) if classify else None)


class FOMAML(MAML):
    """First-order MAML: the inner gradient is treated as a constant (no second derivatives)."""

    second_order = False


class MetaSGD(MAML):
    """Meta-SGD (Li et al. 2017): a learned inner learning rate for every weight, meta-trained with it."""

    rate_mode = "per_param"


class ANIL(MAML):
    """ANIL (Raghu et al. 2020): only the output layer adapts in the inner loop; the body is shared."""

    adapt_head_only = True


class MAMLPlusPlus(MAML):
    """MAML++ (Antoniou et al. 2019): learned per-layer per-step rates (LSLR), multi-step loss
    annealed toward the last step over ``msl_iterations``, first order for the first
    ``first_order_iterations`` iterations then second order."""

    rate_mode = "per_step"

    def second_order_at(self, iteration: int) -> bool:
        return iteration >= self.spec.first_order_iterations

    def step_weights(self, iteration: int) -> torch.Tensor:
        n = self.spec.inner_steps
        progress = 1.0 if self.spec.msl_iterations == 0 else min(1.0, iteration / self.spec.msl_iterations)
        last = torch.zeros(n)
        last[-1] = 1.0
        return (1 - progress) * torch.full((n,), 1.0 / n) + progress * last
