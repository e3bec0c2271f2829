"""MAML and its gradient-through-adaptation relatives: first-order MAML, Meta-SGD, MAML++, ANIL.

They differ only in which parameters adapt, how inner rates are held, which steps enter the
meta-loss and whether the inner gradient is differentiated (second order); one class covers all.
"""

from __future__ import annotations

import torch

from ..tasks import TaskBatch
from . import closed_form, one_step
from .base import Algorithm, MetaStepResult
from .inner import InnerRates, Params, inner_step, mean_loss, start, task_accuracy


class MAML(Algorithm):
    """Second-order MAML (Finn et al. 2017): backpropagate through the inner SGD steps."""

    second_order = True
    closed_form = True  # use the hand-derived gradient where it applies; False forces autograd

    def second_order_at(self, iteration: int) -> bool:
        return self.second_order

    def step_weights(self, iteration: int) -> torch.Tensor | None:
        """Weights of the query losses after steps 1..N in the meta-loss; None = last step only."""
        return None

    def _closed_form(self, params: Params, rates: InnerRates):
        """The hand-derived implementation (module) that serves these settings, or None for autograd."""
        if not self.closed_form:
            return None
        if one_step.applies(self, params, rates):
            return one_step
        return closed_form if closed_form.applies(self.net, self.adapt_names, params) else None

    def gradient_path(self, params: Params, rates: InnerRates) -> str:
        module = self._closed_form(params, rates)
        if module is not None:
            return "closed form, one-step kernels" if module is one_step else "closed form"
        if getattr(self.net, "batch_statistics", False):
            if self.adapt_head_only:
                return "autograd, shared body batched over tasks"
            return ("autograd, grouped convolutions; inner steps per task" if self.second_order_at(0)
                    else "autograd, grouped convolutions")
        return "batched autograd" if hasattr(self.net, "n_layers") else "vmap autograd"

    def meta_step(self, params: Params, rates: InnerRates, batch: TaskBatch, iteration: int) -> MetaStepResult:
        module = self._closed_form(params, rates)
        if module is not None:
            if batch.support_x.dim() > 3:   # an MLP on images: the closed forms take flat points
                batch = TaskBatch(batch.support_x.flatten(2), batch.support_y, batch.query_x.flatten(2), batch.query_y)
            return module.meta_step(self, params, rates, batch, iteration)
        fwd, kind, names = self.net.forward, self.kind, self.adapt_names
        n_steps = self.spec.inner_steps
        create_graph = self.second_order_at(iteration)
        weights = self.step_weights(iteration)
        classify = kind == "classification"

        losses: list[torch.Tensor] = []
        accs: list[torch.Tensor] = []

        def record(out: torch.Tensor, loss: torch.Tensor) -> None:
            losses.append(loss.detach())
            if classify:
                accs.append(task_accuracy(out.detach(), batch.query_y).mean())

        if weights is not None:  # multi-step loss: every step's query output stays in the graph
            with torch.no_grad():
                out0 = fwd(params, batch.query_x)
                record(out0, mean_loss(out0, batch.query_y, kind))
        p = start(self.net, params, names, batch.n_tasks)
        meta_loss = None
        for s in range(n_steps):
            peek = batch.query_x if weights is None else None  # query loss before this step, same forward
            p, before = inner_step(self.net, p, names, batch.support_x, batch.support_y, kind, rates, s,
                                   create_graph, peek_x=peek)
            if before is not None:
                record(before, mean_loss(before, batch.query_y, kind))
            if weights is not None:
                out = fwd(p, batch.query_x)
                q = mean_loss(out, batch.query_y, kind)
                meta_loss = weights[s] * q if meta_loss is None else meta_loss + weights[s] * q
                record(out, q)
        if weights is None:
            out = fwd(p, batch.query_x)
            meta_loss = mean_loss(out, batch.query_y, kind)
            record(out, meta_loss)

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
