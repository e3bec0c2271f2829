"""Trust-region policy optimisation over a list of parameter tensors (Schulman et al. 2015, as in
rllab/garage's ``ConjugateGradientOptimizer``): the natural-gradient direction by conjugate gradient on
exact Hessian-vector products of the mean KL, scaled to the KL bound, then a backtracking line search
that accepts only a step that improves the loss within the bound (else the parameters stay)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class TRPOResult:
    loss_before: float
    loss_after: float
    kl: float               # of the accepted step (0 when none was)
    grad_norm: float
    backtracks: int         # halvings (ratio steps) tried before the accepted one
    accepted: bool


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def unflat(vector: torch.Tensor, like) -> list[torch.Tensor]:
    """``vector`` cut back into tensors shaped like ``like`` (the inverse of :func:`flat`)."""
    return [piece.view_as(t) for piece, t in zip(vector.split([t.numel() for t in like]), like)]


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iterations: int,
                       residual_tol: float = 1e-10) -> torch.Tensor:
    """Solve ``A x = b`` for a symmetric positive definite ``A`` given as ``matvec``."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r.dot(r)
    for _ in range(iterations):
        if float(rr) < residual_tol:
            break
        ap = matvec(p)
        alpha = rr / p.dot(ap)
        x += alpha * p
        r -= alpha * ap
        new_rr = r.dot(r)
        p = r + (new_rr / rr) * p
        rr = new_rr
    return x


def kl_hvp(kl: torch.Tensor, params: list[torch.Tensor], damping: float = 0.0):
    """``v ↦ (∇²KL + damping) v`` by double backpropagation (exact, Pearlmutter)."""
    grads = flat(torch.autograd.grad(kl, params, create_graph=True))

    def matvec(v: torch.Tensor) -> torch.Tensor:
        hv = torch.autograd.grad(grads.dot(v), params, retain_graph=True)
        return flat(hv) + damping * v
    return matvec


def trpo_step(params: list[torch.Tensor], objective: Callable[[bool], tuple[torch.Tensor, torch.Tensor]],
              max_kl: float, cg_iterations: int = 10, damping: float = 1e-5, backtrack_ratio: float = 0.8,
              max_backtracks: int = 15, hvp: Callable[[torch.Tensor], torch.Tensor] | None = None,
              reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> TRPOResult:
    """One TRPO update of ``params`` (leaf tensors, changed in place). ``objective(differentiable)``
    returns ``(loss, kl)`` at the current values: the loss to lower and the mean KL from the sampling
    policy (0 at the start); ``differentiable=False`` is the line search's cheaper evaluation. ``hvp``:
    the KL's Hessian-vector product with damping (default: :func:`kl_hvp` of the objective's KL).

    ``reduce`` (a run split over processes) sums a tensor over them: then ``objective`` and ``hvp``
    give this process's part of the sums that make the means (``hvp`` without damping), and the
    gradient, every product and the line search's numbers are summed, so each process takes the same step."""
    loss, kl = objective(True)
    grads = flat(torch.autograd.grad(loss, params, retain_graph=hvp is None))
    loss_before = loss.detach()
    if reduce is None:
        matvec = hvp or kl_hvp(kl, params, damping)
    else:
        summed = reduce(torch.cat([grads, loss_before.reshape(1)]))
        grads, loss_before = summed[:-1], summed[-1]
        part = hvp or kl_hvp(kl, params)

        def matvec(v: torch.Tensor) -> torch.Tensor:
            return reduce(part(v)) + damping * v
    direction = conjugate_gradient(matvec, -grads, cg_iterations)
    before = [p.detach().clone() for p in params]
    loss_before = float(loss_before)
    shs = float(direction.dot(matvec(direction)))
    del loss, kl, matvec   # the graphs of the first evaluation
    if not (shs > 0 and torch.isfinite(direction).all()):
        return TRPOResult(loss_before, loss_before, 0.0, float(grads.norm()), 0, False)
    step = direction * (2 * max_kl / shs) ** 0.5
    for k in range(max_backtracks):
        _assign(params, before, step * backtrack_ratio ** k)
        with torch.no_grad():   # the inner steps take their gradients anyway (core.rl.inner.adapt)
            new_loss, new_kl = objective(False)
            if reduce is not None:
                new_loss, new_kl = reduce(torch.stack([new_loss, new_kl]))
        if float(new_loss) < loss_before and float(new_kl) <= max_kl:
            return TRPOResult(loss_before, float(new_loss), float(new_kl), float(grads.norm()), k, True)
    _assign(params, before, torch.zeros_like(step))
    return TRPOResult(loss_before, loss_before, 0.0, float(grads.norm()), max_backtracks, False)


@torch.no_grad()
def _assign(params: list[torch.Tensor], start: list[torch.Tensor], step: torch.Tensor) -> None:
    for p, s, d in zip(params, start, unflat(step, params)):
        p.copy_(s + d)
