"""Returns, advantages and the linear feature baseline, batched over tasks.

Every tensor here is laid out ``[T, R, H]`` (tasks, trajectories of a task, time steps) with a
``mask`` marking the steps a trajectory really took (it may end before the horizon).
"""

from __future__ import annotations

import torch


def discounted_cumsum(x: torch.Tensor, discount: float) -> torch.Tensor:
    """``y[..., t] = Σ_{k≥t} discount^(k-t) x[..., k]`` along the last axis, as one matrix product."""
    h = x.shape[-1]
    t = torch.arange(h, device=x.device, dtype=x.dtype)
    power = t.unsqueeze(0) - t.unsqueeze(1)                 # [i, j] = j - i
    weights = torch.where(power >= 0, torch.as_tensor(discount, dtype=x.dtype, device=x.device) ** power.clamp(min=0),
                          torch.zeros((), dtype=x.dtype, device=x.device))
    return x @ weights.transpose(0, 1)


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """The discounted return from each step to the end of its trajectory (0 on steps not taken)."""
    return discounted_cumsum(rewards * mask, gamma) * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimation; the value past a trajectory's last step is 0 (it ended, or
    the horizon cut it, as in rllab/garage). With ``lam = 1``: the return minus the baseline."""
    m = mask.to(rewards.dtype)
    values = values * m
    following = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], dim=-1) * torch.cat(
        [m[..., 1:], torch.zeros_like(m[..., :1])], dim=-1)
    deltas = (rewards + gamma * following - values) * m
    return discounted_cumsum(deltas, gamma * lam) * m


def baseline_features(observations: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """rllab/garage's ``LinearFeatureBaseline`` features per step: the observation clipped to ±10, its
    square, the time step / 100 and its square and cube, and 1. ``observations``: ``[T, R, H, D]``."""
    obs = observations.clamp(-10, 10)
    h = observations.shape[2]
    al = (torch.arange(h, device=obs.device, dtype=obs.dtype) / 100.0).view(1, 1, h, 1).expand(*obs.shape[:3], 1)
    features = torch.cat([obs, obs * obs, al, al * al, al ** 3, torch.ones_like(al)], dim=-1)
    return features * mask.unsqueeze(-1).to(features.dtype)


def fit_linear_baseline(observations: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                        reg: float = 1e-5) -> torch.Tensor:
    """Each task's least-squares fit of its returns on :func:`baseline_features` (ridge ``reg``, raised
    ×10 up to 5 times while the solution is not finite, as garage does); returns the fitted values
    ``[T, R, H]`` (0 on steps not taken)."""
    features = baseline_features(observations, mask)
    t, r, h, f = features.shape
    x = features.reshape(t, r * h, f).double()
    y = (returns * mask).reshape(t, r * h, 1).double()
    gram, target = x.transpose(1, 2) @ x, x.transpose(1, 2) @ y
    eye = torch.eye(f, dtype=x.dtype, device=x.device)
    for _ in range(5):
        coefficients = torch.linalg.solve(gram + reg * eye, target)
        if torch.isfinite(coefficients).all():
            break
        reg *= 10
    return (x @ coefficients).reshape(t, r, h).to(returns.dtype) * mask


def normalise(advantages: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Each task's advantages to mean 0 and standard deviation 1 over its steps taken."""
    m = mask.to(advantages.dtype)
    dims = tuple(range(1, advantages.dim()))
    n = m.sum(dims, keepdim=True).clamp(min=1)
    mean = (advantages * m).sum(dims, keepdim=True) / n
    var = ((advantages - mean).pow(2) * m).sum(dims, keepdim=True) / n
    return (advantages - mean) / (var.sqrt() + eps) * m
