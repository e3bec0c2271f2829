"""The oracle baseline's view for any environment family: the task row appended to every observation.

MAML's paper compares against an oracle, a policy told the task (the goal velocity, the direction) that
needs no adaptation. A family mixes :class:`ObservesTask` in to offer the setting ``observe_task``, which
the evaluation's oracle baseline turns on through ``oracle_params``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ..tasks.base import ParamField

OBSERVE_TASK = ParamField("observe_task", "observe the task", "bool", False,
                          help="the observation also carries the task (the oracle baseline's view)")


class TaskObservingBatch:
    """A running batch whose observations end with each trajectory's task row."""

    def __init__(self, batch, task_rows: torch.Tensor):
        self.batch, self.task_rows = batch, task_rows

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        obs, reward, done = self.batch.step(actions)
        return torch.cat([obs, self.task_rows.to(obs.dtype)], dim=1), reward, done


class ObservesTask:
    """Mixin for a :class:`~core.envs.family.ParamEnvFamily`: ``env_observation_dim`` is what the environment
    itself observes; with ``observe_task`` the family's observation also carries the task."""

    data_fields: ClassVar[tuple[ParamField, ...]] = (OBSERVE_TASK,)
    oracle_params: ClassVar[dict[str, Any]] = {"observe_task": True}
    env_observation_dim: ClassVar[int] = 0
    params: dict[str, Any]
    task_names: ClassVar[tuple[str, ...]]

    @property
    def observation_dim(self) -> int:
        return self.env_observation_dim + (len(self.task_names) if self.params["observe_task"] else 0)

    def task_view(self, batch, obs: torch.Tensor, tasks: torch.Tensor, rollouts: int):
        """``(batch, obs)`` as the policy sees them: unchanged, or with the task appended."""
        if not self.params["observe_task"]:
            return batch, obs
        rows = torch.as_tensor(tasks).reshape(len(tasks), -1).repeat_interleave(rollouts, dim=0).to(obs.dtype)
        return TaskObservingBatch(batch, rows), torch.cat([obs, rows], dim=1)
