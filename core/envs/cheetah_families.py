"""MAML's half-cheetah families in the registry: goal velocity and goal direction (paper §5.3, 200 steps).

The environments (and MuJoCo) live in :mod:`halfcheetah`, imported on first use; see there for the
rewards. Needs the ``rl`` extra.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from ..tasks.base import ParamField
from .family import HORIZON
from .gym_family import GymParamFamily

MUJOCO = ("gymnasium", "mujoco")
HORIZON_200 = replace(HORIZON, default=200)


class HalfCheetahVelFamily(GymParamFamily):
    name = "halfcheetah-vel"
    title = "half-cheetah, goal velocity (MuJoCo)"
    fields = (ParamField("velocity_range", "goal velocity range", "range", [0.0, 2.0], -10.0, 10.0,
                         help="each task's target forward speed is drawn uniformly from this interval"),
              HORIZON_200)
    task_names = ("velocity",)
    env_observation_dim = 17
    action_dim = 6
    requires: ClassVar[tuple[str, ...]] = MUJOCO

    def make_adapter(self):
        from .halfcheetah import goal_velocity_family
        return goal_velocity_family(self.horizon, tuple(self.params["velocity_range"]))


class HalfCheetahDirFamily(GymParamFamily):
    name = "halfcheetah-dir"
    title = "half-cheetah, goal direction (MuJoCo)"
    fields: ClassVar[tuple[ParamField, ...]] = (HORIZON_200,)
    task_names = ("direction",)
    env_observation_dim = 17
    action_dim = 6
    requires: ClassVar[tuple[str, ...]] = MUJOCO

    def make_adapter(self):
        from .halfcheetah import goal_direction_family
        return goal_direction_family(self.horizon)
