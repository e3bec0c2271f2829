"""The inner step (vanilla policy gradient on a task's own trajectories) and the outer objectives
(importance-weighted surrogate, its clipped variant, the mean KL), batched over tasks.

Shared parameters are expanded to one copy per task before the inner step, so one backward gives
every task's gradient, and ``create_graph`` keeps the graph for MAML's second-order meta-gradient.
"""

from __future__ import annotations

import torch

from core.nets.policy import PolicyNet
from core.rl.rollouts import Batch

Params = dict[str, torch.Tensor]


def per_task(params: Params, n_tasks: int) -> Params:
    """Shared parameters as ``[T, …]`` views (per-task parameters stay as they are)."""
    if params["layers.0.weight"].dim() == 3:
        return params
    return {n: p.unsqueeze(0).expand(n_tasks, *p.shape) for n, p in params.items()}


def vpg_loss(policy: PolicyNet, params: Params, batch: Batch) -> torch.Tensor:
    """Σ over tasks of each task's REINFORCE loss, ``-mean(log π(a|s) · A)`` over its steps taken."""
    log_prob = policy.log_prob(params, batch.observations, batch.actions)
    return -(log_prob * batch.advantages * batch.weights).sum()


def adapt(policy: PolicyNet, params: Params, batch: Batch, lr: float, first_order: bool = False,
          create_graph: bool = True) -> Params:
    """One policy-gradient step per task: ``θ_i' = θ_i - lr ∇ L_i(θ_i)``. ``first_order`` treats the
    gradient as a constant (first-order MAML); ``create_graph=False`` gives plain numbers (for sampling)."""
    if not create_graph:   # plain numbers: a graph of its own, dropped at once
        with torch.enable_grad():
            theta = per_task({n: p.detach().requires_grad_(True) for n, p in params.items()},
                             batch.observations.shape[0])
            grads = torch.autograd.grad(vpg_loss(policy, theta, batch), list(theta.values()))
        return {n: theta[n].detach() - lr * g for (n, g) in zip(theta, grads)}
    theta = per_task(params, batch.observations.shape[0])
    names = list(theta)
    grads = torch.autograd.grad(vpg_loss(policy, theta, batch), [theta[n] for n in names],
                                create_graph=not first_order)
    return {n: theta[n] - lr * (g.detach() if first_order else g) for n, g in zip(names, grads)}


def adapt_steps(policy: PolicyNet, params: Params, batches: list[Batch], lrs: list[float], first_order: bool = False,
                create_graph: bool = True) -> Params:
    """The inner loop: one step per batch of trajectories (each sampled with the previous step's policy)."""
    for batch, lr in zip(batches, lrs):
        params = adapt(policy, params, batch, lr, first_order, create_graph)
    return params


@torch.no_grad()
def old_policy(policy: PolicyNet, params: Params, batch: Batch) -> tuple[torch.Tensor, tuple]:
    """The sampling policy's log-probabilities and distribution on ``batch``: the outer step's reference."""
    return policy.log_prob(params, batch.observations, batch.actions), policy.distribution(params, batch.observations)


def surrogate(policy: PolicyNet, params: Params, batch: Batch, old_log_prob: torch.Tensor,
              clip: float | None = None) -> torch.Tensor:
    """Mean over tasks of ``mean(π/π_old · A)`` (PPO's clipped version with ``clip``): to maximise."""
    ratio = torch.exp(policy.log_prob(params, batch.observations, batch.actions) - old_log_prob)
    gain = ratio * batch.advantages
    if clip is not None:
        gain = torch.minimum(gain, ratio.clamp(1 - clip, 1 + clip) * batch.advantages)
    return (gain * batch.weights).sum() / batch.weights.shape[0]


def mean_kl(policy: PolicyNet, params: Params, batch: Batch, old_distribution: tuple) -> torch.Tensor:
    """Mean over tasks of the mean KL(π_old ‖ π) over their steps taken."""
    return (policy.kl(old_distribution, params, batch.observations) * batch.weights).sum() / batch.weights.shape[0]
