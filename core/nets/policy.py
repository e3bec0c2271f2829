"""Policies as a parameter dict plus a functional forward, like the networks beside them.

A Gaussian policy (continuous actions): an MLP gives the mean, ``log_std`` (one per action
dimension, not depending on the state) the spread, as in the MAML paper's RL experiments. A
categorical policy (discrete actions): the MLP gives the logits. Parameters may be shared
(``[out, in]``, ``[A]``) or one set per task (``[T, out, in]``, ``[T, A]``), so every task's adapted
policy runs in one batched forward.
"""

from __future__ import annotations

import math

import torch

from core.config import ModelSpec
from core.nets.models import MLPNet, Params

LOG_STD = "log_std"


class PolicyNet:
    """``forward(params, obs)`` -> action mean (Gaussian) or logits (categorical); ``obs`` is ``[N, D]``
    with shared parameters or ``[T, N, D]`` with per-task ones."""

    def __init__(self, observation_dim: int, action_dim: int, spec: ModelSpec, discrete: bool = False,
                 init_log_std: float = 0.0):
        self.observation_dim, self.action_dim, self.discrete = observation_dim, action_dim, discrete
        self.mlp = MLPNet(observation_dim, action_dim, spec)
        self.names = [*self.mlp.names, *(() if discrete else (LOG_STD,))]
        self.init_log_std = init_log_std

    def init(self, generator: torch.Generator, device="cpu", dtype=None) -> Params:
        params = self.mlp.init(generator, device, dtype)
        if not self.discrete:
            params[LOG_STD] = torch.full((self.action_dim,), self.init_log_std, dtype=dtype or torch.get_default_dtype(),
                                         device=device)
        return params

    def forward(self, params: Params, obs: torch.Tensor) -> torch.Tensor:
        return self.mlp.forward(params, obs)

    def log_prob(self, params: Params, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log π(a | s), one per row of ``obs`` (``[N]`` or ``[T, N]``)."""
        out = self.forward(params, obs)
        if self.discrete:
            return torch.log_softmax(out, -1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        log_std = _per_row(params[LOG_STD], out)
        z = (actions - out) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def sample(self, params: Params, obs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        out = self.forward(params, obs)
        if self.discrete:
            flat = torch.softmax(out, -1).reshape(-1, out.shape[-1])
            return torch.multinomial(flat, 1, generator=generator).view(out.shape[:-1])
        noise = torch.randn(out.shape, generator=generator, dtype=out.dtype, device=out.device)
        return out + noise * torch.exp(_per_row(params[LOG_STD], out))

    def distribution(self, params: Params, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mean, log_std broadcast to it) for a Gaussian, (logits, None) for a categorical policy."""
        out = self.forward(params, obs)
        return (out, None) if self.discrete else (out, _per_row(params[LOG_STD], out).expand_as(out))

    def kl(self, old: tuple[torch.Tensor, torch.Tensor | None], params: Params, obs: torch.Tensor) -> torch.Tensor:
        """KL(old ‖ π_params) per row, ``old`` from :meth:`distribution` (detached by the caller)."""
        mean, log_std = self.distribution(params, obs)
        old_mean, old_log_std = old
        if self.discrete:
            p_old = torch.log_softmax(old_mean, -1)
            return (p_old.exp() * (p_old - torch.log_softmax(mean, -1))).sum(-1)
        var, old_var = torch.exp(2 * log_std), torch.exp(2 * old_log_std)
        return ((old_var + (old_mean - mean).pow(2)) / (2 * var) + log_std - old_log_std - 0.5).sum(-1)


def _per_row(log_std: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Shared ``[A]`` or per-task ``[T, A]`` log-std, shaped to broadcast over ``out``'s rows."""
    return log_std if log_std.dim() == 1 else log_std.unsqueeze(-2)

