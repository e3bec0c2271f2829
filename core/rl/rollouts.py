"""Trajectories of every task at once: all tasks × rollouts step as one batch, one Python loop over
time only; a task's processed trajectories (advantages, weights) are what the inner and outer steps use."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.nets.policy import PolicyNet
from core.rl.returns import discounted_returns, fit_linear_baseline, gae, normalise


@dataclass
class Trajectories:
    """``observations [T, R, H, D]``, ``actions [T, R, H, A]`` (``[T, R, H]`` discrete), ``rewards``
    and ``mask [T, R, H]`` (steps taken); ``H`` is the longest trajectory, at most the horizon."""

    tasks: torch.Tensor
    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    mask: torch.Tensor

    @property
    def task_returns(self) -> torch.Tensor:
        """Each task's average undiscounted return over its trajectories ``[T]``."""
        return (self.rewards * self.mask).sum(-1).mean(-1)

    @property
    def average_return(self) -> float:
        return float(self.task_returns.mean())

    @property
    def steps(self) -> int:
        return int(self.mask.sum())


@torch.no_grad()
def collect(policy: PolicyNet, params: dict[str, torch.Tensor], family, tasks: torch.Tensor, rollouts: int,
            generator: torch.Generator, per_task: bool = False) -> Trajectories:
    """Run ``rollouts`` trajectories of each task with ``params`` (shared, or ``[T, …]`` per task with
    ``per_task``), sampling actions from the policy with ``generator``."""
    n_tasks = len(tasks)
    env, obs = family.reset(tasks, rollouts, generator)
    alive = torch.ones(n_tasks * rollouts, dtype=torch.bool, device=obs.device)
    observations, actions, rewards, masks = [], [], [], []
    for _ in range(family.horizon):
        o = obs.view(n_tasks, rollouts, -1) if per_task else obs
        a = policy.sample(params, o, generator)
        a = a.reshape(n_tasks * rollouts, *a.shape[(2 if per_task else 1):])
        observations.append(obs)
        actions.append(a)
        masks.append(alive)
        obs, reward, done = env.step(a)
        rewards.append(reward * alive)
        alive = ~done
        if not bool(alive.any()):
            break

    def stack(items):
        x = torch.stack(items, dim=1)
        return x.view(n_tasks, rollouts, *x.shape[1:])

    return Trajectories(tasks, stack(observations), stack(actions), stack(rewards).to(obs.dtype),
                        stack(masks).to(obs.dtype))


@dataclass
class Batch:
    """Trajectories flattened per task for the losses: ``observations [T, N, D]``, ``actions``,
    ``advantages [T, N]`` (normalised per task) and ``weights [T, N]`` (1 / the task's steps taken on
    steps taken, else 0: a sum with them is each task's mean over its steps)."""

    observations: torch.Tensor
    actions: torch.Tensor
    advantages: torch.Tensor
    weights: torch.Tensor


def process(trajectories: Trajectories, gamma: float, gae_lambda: float, normalise_advantages: bool = True) -> Batch:
    """Advantages from each task's own linear feature baseline (refit per task), as MAML's inner step uses."""
    tr = trajectories
    returns = discounted_returns(tr.rewards, tr.mask, gamma)
    values = fit_linear_baseline(tr.observations, returns, tr.mask)
    advantages = gae(tr.rewards, values, tr.mask, gamma, gae_lambda)
    if normalise_advantages:
        advantages = normalise(advantages, tr.mask)
    t = len(tr.tasks)
    mask = tr.mask.reshape(t, -1)
    weights = mask / mask.sum(-1, keepdim=True).clamp(min=1)
    n = mask.shape[1]
    return Batch(tr.observations.reshape(t, n, -1), tr.actions.reshape(t, n, *tr.actions.shape[3:]),
                 advantages.reshape(t, -1), weights)
