"""The oracle baseline's environment: any family whose observation also carries the task (the goal),
so one policy can solve every task without adapting (the MAML paper's "oracle" for 2-D navigation)."""

from __future__ import annotations

import torch


class _OracleBatch:
    def __init__(self, batch, tasks: torch.Tensor):
        self.batch, self.tasks = batch, tasks

    def step(self, actions: torch.Tensor):
        obs, reward, done = self.batch.step(actions)
        return torch.cat([obs, self.tasks.to(obs.dtype)], dim=1), reward, done


class OracleFamily:
    """``family`` with the task appended to every observation."""

    def __init__(self, family):
        self.inner = family
        self.name = f"{family.name}-oracle"
        self.observation_dim = family.observation_dim + getattr(family, "task_dim", 0)
        self.action_dim, self.discrete, self.horizon = family.action_dim, family.discrete, family.horizon
        self.warnings: list[str] = []

    def sample_tasks(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.inner.sample_tasks(n, generator)

    def reset(self, tasks: torch.Tensor, rollouts: int, generator: torch.Generator):
        batch, obs = self.inner.reset(tasks, rollouts, generator)
        repeated = tasks.repeat_interleave(rollouts, dim=0)
        return _OracleBatch(batch, repeated), torch.cat([obs, repeated.to(obs.dtype)], dim=1)
