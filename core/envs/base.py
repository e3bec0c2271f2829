"""What every meta-RL environment family offers the engine.

A task is a row of a float tensor (a goal, a target velocity, a pendulum's mass and length), so tasks are
sampled, saved and handed between processes as plain numbers. All tasks × rollouts step together as one
batch: row ``i * rollouts + j`` is trajectory ``j`` of task ``i``.
"""

from __future__ import annotations

from typing import Protocol

import torch


class EnvBatch(Protocol):
    """Running environments for a batch of trajectories."""

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``actions``: (N, action_dim) float, or (N,) long for discrete actions. Returns the next
        observations (N, observation_dim), the rewards (N,) and ``done`` (N,) bool: the trajectory ended
        at this step. A trajectory that has ended keeps returning ``done`` and reward 0."""
        ...


class EnvFamily(Protocol):
    """A family of tasks (environments that differ in their task parameters)."""

    name: str
    observation_dim: int
    action_dim: int          # continuous: length of the action vector; discrete: the number of actions
    discrete: bool
    horizon: int             # steps per trajectory at most

    def sample_tasks(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` tasks as an (n, task_dim) float tensor."""
        ...

    def reset(self, tasks: torch.Tensor, rollouts: int, generator: torch.Generator) -> tuple[EnvBatch, torch.Tensor]:
        """Start ``rollouts`` trajectories of each task; returns the batch and the first observations
        (len(tasks) * rollouts, observation_dim)."""
        ...
