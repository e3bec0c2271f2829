"""A plain per-task autograd loop: the independent reference the vectorised engine is checked and timed against.

Written the way MAML is usually written by hand — one task at a time, an ``nn.Module`` called
through ``functional_call`` — and deliberately shares no code with ``core.algorithms``.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from core.tasks import TaskBatch


def loop_meta_gradient(module: nn.Module, params: dict[str, torch.Tensor], batch: TaskBatch, inner_steps: int,
                       inner_lr: float | dict[str, torch.Tensor], first_order: bool = False,
                       classification: bool = False, adapt_names: list[str] | None = None,
                       per_step_rates: bool = False,
                       step_weights: list[float] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Meta-loss and its gradient w.r.t. ``params`` (and learned rates when ``inner_lr`` is a dict:
    per weight, or per step when ``per_step_rates``, MAML++'s ``[steps]`` per layer).

    ``adapt_names``: the weights that adapt (ANIL: the head), default all. ``step_weights``: the
    multi-step loss (query loss after step ``s+1`` weighted ``step_weights[s]``), default the last
    step only. A module whose ``forward`` takes ``step`` (per-step batch norm) is told the inner
    step: the support pass of step ``s`` and the query pass after ``s`` steps use ``step=s``.
    """
    stepped = "step" in inspect.signature(module.forward).parameters

    def loss_fn(p, x, y, step):
        out = functional_call(module, p, (x,), {"step": step} if stepped else {})
        return F.cross_entropy(out, y) if classification else F.mse_loss(out, y)

    names = list(params) if adapt_names is None else list(adapt_names)
    weights = step_weights if step_weights is not None else [0.0] * (inner_steps - 1) + [1.0]
    total = 0.0
    for t in range(batch.n_tasks):
        fast = dict(params)
        for s in range(inner_steps):
            loss = loss_fn(fast, batch.support_x[t], batch.support_y[t], s)
            grads = torch.autograd.grad(loss, [fast[n] for n in names], create_graph=not first_order)
            for n, g in zip(names, grads):
                lr = inner_lr[n] if isinstance(inner_lr, dict) else inner_lr
                lr = lr[min(s, lr.shape[0] - 1)] if per_step_rates else lr
                fast[n] = fast[n] - lr * g
            if weights[s]:
                total = total + weights[s] * loss_fn(fast, batch.query_x[t], batch.query_y[t], s + 1)
    meta_loss = total / batch.n_tasks
    leaves = list(params.values()) + (list(inner_lr.values()) if isinstance(inner_lr, dict) else [])
    grads = torch.autograd.grad(meta_loss, leaves, allow_unused=True)
    grads = [torch.zeros_like(leaf) if g is None else g for leaf, g in zip(leaves, grads)]
    names = list(params) + ([f"inner_lr.{n}" for n in inner_lr] if isinstance(inner_lr, dict) else [])
    return meta_loss.detach(), dict(zip(names, grads))
