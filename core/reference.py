"""A plain per-task autograd loop: the independent reference the vectorised engine is checked and timed against.

Written the way MAML is usually written by hand — one task at a time, an ``nn.Module`` called
through ``functional_call`` — and deliberately shares no code with ``core.algorithms``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .tasks import TaskBatch


def loop_meta_gradient(module: nn.Module, params: dict[str, torch.Tensor], batch: TaskBatch, inner_steps: int,
                       inner_lr: float | dict[str, torch.Tensor], first_order: bool = False,
                       classification: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Meta-loss and its gradient w.r.t. ``params`` (and learned per-weight rates when ``inner_lr`` is a dict)."""
    def loss_fn(p, x, y):
        out = functional_call(module, p, (x,))
        return F.cross_entropy(out, y) if classification else F.mse_loss(out, y)

    total = 0.0
    for t in range(batch.n_tasks):
        fast = dict(params)
        for _ in range(inner_steps):
            loss = loss_fn(fast, batch.support_x[t], batch.support_y[t])
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=not first_order)
            lrs = inner_lr if isinstance(inner_lr, dict) else {n: inner_lr for n in fast}
            fast = {n: w - lrs[n] * g for (n, w), g in zip(fast.items(), grads)}
        total = total + loss_fn(fast, batch.query_x[t], batch.query_y[t])
    meta_loss = total / batch.n_tasks
    leaves = list(params.values()) + (list(inner_lr.values()) if isinstance(inner_lr, dict) else [])
    grads = torch.autograd.grad(meta_loss, leaves)
    names = list(params) + ([f"inner_lr.{n}" for n in inner_lr] if isinstance(inner_lr, dict) else [])
    return meta_loss.detach(), dict(zip(names, grads))
