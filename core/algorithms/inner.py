"""The pieces every gradient-based algorithm shares: task losses, inner rates, the inner loop.

The whole meta-batch moves together. Two ways to get every task's own inner gradient at once:

* fast path (:class:`~core.nets.models.MLPNet`): a hand-written batched backward pass. At step 0
  all tasks share ``θ``, so the forward uses the shared weights and only the gradients are
  per task; ``θ − α·g`` then broadcasts to per-task weights ``[T, …]``.
* generic path (any network): ``θ`` expanded along a task dimension; because task ``t``'s loss
  depends only on copy ``t``, one ``autograd.grad`` of the *summed* losses gives all gradients.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

Params = dict[str, torch.Tensor]


def task_losses(out: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-task mean loss ``[T]``: MSE for regression, cross-entropy for classification."""
    if kind == "classification":
        t, n, c = out.shape
        return F.cross_entropy(out.reshape(t * n, c), y.reshape(t * n), reduction="none").view(t, n).mean(1)
    return (out - y).pow(2).flatten(1).mean(1)


def mean_loss(out: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean of the per-task losses (all tasks have the same size), in one fused op."""
    if kind == "classification":
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    return F.mse_loss(out, y)


def sgd_update(p: torch.Tensor, g: torch.Tensor, lr) -> torch.Tensor:
    """``p − lr·g``; one op (and one backward node) when the rate is a plain number."""
    return torch.sub(p, g, alpha=lr) if isinstance(lr, float) else p - lr * g


def task_accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (out.argmax(-1) == y).to(out.dtype).mean(1)


class InnerRates:
    """Inner-loop learning rates: fixed, per parameter element (Meta-SGD) or per layer and step (MAML++ LSLR).

    Learned rates live in ``tensors`` (meta-parameters the optimiser updates); steps past the
    trained count reuse the last step's rate, so evaluation may adapt for longer than training.
    """

    def __init__(self, mode: str, base_lr: float, params: Params, names: Sequence[str], steps: int):
        self.mode, self.base_lr = mode, base_lr
        if mode == "fixed":
            self.tensors: Params = {}
        elif mode == "per_param":
            self.tensors = {n: torch.full_like(params[n], base_lr) for n in names}
        elif mode == "per_step":
            self.tensors = {n: torch.full((steps,), base_lr, dtype=params[n].dtype, device=params[n].device) for n in names}
        else:
            raise ValueError(mode)

    def lr(self, name: str, step: int):
        if self.mode == "fixed":
            return self.base_lr
        rate = self.tensors[name]
        return rate[min(step, rate.shape[0] - 1)] if self.mode == "per_step" else rate


def _manual(net, names: Sequence[str], params: Params) -> bool:
    return getattr(net, "has_manual_backward", False) and len(names) == len(params)


def start(net, params: Params, names: Sequence[str], n_tasks: int, detach: bool = False) -> Params:
    """Parameters to begin the inner loop from. ``detach`` starts a fresh graph (no meta-gradient)."""
    if _manual(net, names, params):
        return {n: p.detach() for n, p in params.items()} if detach else dict(params)
    out = {n: p.detach() for n, p in params.items()} if detach else dict(params)
    for n in names:
        p = out[n].unsqueeze(0).expand(n_tasks, *out[n].shape)
        out[n] = p.clone().requires_grad_(True) if detach else p
    return out


def inner_step(net, params: Params, names: Sequence[str], x: torch.Tensor, y: torch.Tensor, kind: str,
               rates: InnerRates, step: int, create_graph: bool,
               peek_x: torch.Tensor | None = None) -> tuple[Params, torch.Tensor | None]:
    """One SGD step on every task's support set; returns the new per-task params and, when
    ``peek_x`` is given, the network's (detached) output on it *before* the step.

    ``create_graph`` keeps the inner gradient differentiable (second order); without it the
    gradient is a constant and only the identity path to ``θ`` remains (first order).
    """
    if _manual(net, names, params):
        with torch.set_grad_enabled(create_graph):
            grads, peek = net.task_grads(params, x, y, kind, peek_x=peek_x)
        return {n: sgd_update(params[n], grads[n], rates.lr(n, step)) for n in params}, peek
    k = x.shape[1]
    peek = None
    if peek_x is not None and getattr(net, "batch_statistics", False):
        # batch norm: the peeked points must not share the support's statistics, so their own pass
        with torch.no_grad():
            peek = net.forward(params, peek_x)
        peek_x = None
    # a gradient differentiated again runs the formulation whose double backward is fast (conv nets)
    forward = getattr(net, "second_order_forward", net.forward) if create_graph else net.forward
    out = forward(params, x if peek_x is None else torch.cat([x, peek_x], 1))
    losses = task_losses(out[:, :k], y, kind)
    grads = torch.autograd.grad(losses.sum(), [params[n] for n in names], create_graph=create_graph)
    new = dict(params)
    for n, g in zip(names, grads):
        new[n] = sgd_update(params[n], g, rates.lr(n, step))
    advance = getattr(net, "advance", None)   # per-step weights (MAML++'s per-step batch norm) move on
    if advance is not None:
        new = advance(new)
    return new, out[:, k:].detach() if peek_x is not None else peek


def fine_tune(net, params: Params, names: Sequence[str], x: torch.Tensor, y: torch.Tensor, kind: str,
              rates: InnerRates, steps: int) -> list[Params]:
    """Detached per-task fine-tuning (Reptile, evaluation): the params after 0, 1, … ``steps`` steps."""
    return list(fine_tune_steps(net, params, names, x, y, kind, rates, steps))


def fine_tune_steps(net, params: Params, names: Sequence[str], x: torch.Tensor, y: torch.Tensor, kind: str,
                    rates: InnerRates, steps: int) -> Iterator[Params]:
    """:func:`fine_tune` one step at a time: yields the (detached) params after 0, 1, … ``steps``
    steps, so a caller that scores as it goes keeps one step's weights, not the whole trajectory."""
    with torch.enable_grad():
        p = start(net, params, names, x.shape[0], detach=True)
        fixed = ConstantRates(rates)
        yield {n: v.detach() for n, v in p.items()}
        for s in range(steps):
            p, _ = inner_step(net, p, names, x, y, kind, fixed, s, create_graph=False)
            p = {n: (v.detach().requires_grad_(v.requires_grad) if n in names else v) for n, v in p.items()}
            yield {n: v.detach() for n, v in p.items()}


class ConstantRates:
    """Rates read as constants: fine-tuning never differentiates through learned rates."""

    def __init__(self, rates: InnerRates):
        self._rates = rates

    def lr(self, name, step):
        r = self._rates.lr(name, step)
        return r.detach() if isinstance(r, torch.Tensor) else r
