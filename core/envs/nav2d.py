"""2-D navigation (MAML paper §5.3, as in its released code): a point starts at (0, 0) and walks to a
goal drawn uniformly in a square; all tasks × trajectories step as one tensor.

Observation: the position. Action: a velocity in units of ``max_speed``, clipped to ``[-1, 1]`` per axis
(the released code wraps the environment in rllab's ``normalize``, which maps the policy's ``[-1, 1]`` to
the ``±0.1`` action box: a policy with log-std 0 starts exploring at ±0.1, not at ten times it). Reward:
minus the Euclidean distance from the new position to the goal. A trajectory ends after ``horizon``
steps, or once the point is within ``tolerance`` of the goal on each axis (that step still pays its
reward; later steps pay 0). With ``observe_goal`` the observation also holds the goal (the oracle).
"""

from __future__ import annotations

import torch

from core.envs.family import HORIZON, ParamEnvFamily
from core.tasks.base import ParamField


def velocity(actions: torch.Tensor, max_speed: float) -> torch.Tensor:
    """The step a policy's actions take: ``±1`` is ``±max_speed`` per axis, clipped beyond."""
    return actions.clamp(-1.0, 1.0) * max_speed


class Nav2DBatch:
    """Running 2-D navigation trajectories: ``goals`` (N, 2), one row per trajectory."""

    def __init__(self, goals: torch.Tensor, horizon: int, max_speed: float, tolerance: float,
                 observe_goal: bool = False):
        self.goals, self.horizon, self.max_speed, self.tolerance = goals, horizon, max_speed, tolerance
        self.observe_goal = observe_goal
        self.position = torch.zeros_like(goals)
        self.done = torch.zeros(len(goals), dtype=torch.bool, device=goals.device)
        self.t = 0

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        live = ~self.done
        moved = self.position + velocity(actions, self.max_speed)
        self.position = torch.where(live.unsqueeze(1), moved, self.position)
        offset = self.position - self.goals
        reward = torch.where(live, -offset.norm(dim=1), torch.zeros((), dtype=offset.dtype, device=offset.device))
        self.t += 1
        reached = (offset.abs() < self.tolerance).all(dim=1)
        self.done = self.done | reached | (self.t >= self.horizon)
        return self.observation(), reward, self.done.clone()

    def observation(self) -> torch.Tensor:
        return torch.cat([self.position, self.goals], dim=1) if self.observe_goal else self.position.clone()


class Nav2DFamily(ParamEnvFamily):
    name = "nav2d"
    title = "2-D navigation (point to a goal)"
    fields = (
        ParamField("goal_range", "goal range", "range", [-0.5, 0.5], -100.0, 100.0,
                   help="each goal's x and y are drawn uniformly from this interval"),
        HORIZON,
        ParamField("max_speed", "max speed", "float", 0.1, 1e-6, 100.0, help="the step an action of ±1 takes per axis (larger actions are clipped to it)"),
        ParamField("tolerance", "goal tolerance", "float", 0.01, 0.0, 100.0,
                   help="a trajectory ends within this distance of the goal on each axis"),
    )
    data_fields = (ParamField("observe_goal", "observe the goal", "bool", False,
                              help="the observation is the position and the goal (the oracle baseline's view)"),)
    oracle_params = {"observe_goal": True}
    task_names = ("goal x", "goal y")
    action_dim = 2

    @property
    def observation_dim(self) -> int:
        return 4 if self.params["observe_goal"] else 2

    def sample_tasks(self, n: int, generator: torch.Generator) -> torch.Tensor:
        low, high = self.params["goal_range"]
        return torch.rand(n, 2, generator=generator) * (high - low) + low

    def reset(self, tasks: torch.Tensor, rollouts: int, generator: torch.Generator) -> tuple[Nav2DBatch, torch.Tensor]:
        goals = tasks.repeat_interleave(rollouts, dim=0)
        batch = Nav2DBatch(goals, self.horizon, float(self.params["max_speed"]), float(self.params["tolerance"]),
                           bool(self.params["observe_goal"]))
        return batch, batch.observation()
