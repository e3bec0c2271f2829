"""MAML's half-cheetah families (paper §5.3) on gymnasium's ``HalfCheetah-v5``: goal velocity and goal direction.

As in the authors' released code (rllab ``half_cheetah_env_rand.py`` / ``_rand_direc.py``, 200-step
trajectories): goal velocity tasks draw a target speed from U[0, 2] and reward ``-|v - goal| - 0.05 ‖a‖²``;
goal direction tasks draw a direction of +1 or -1 with equal chance and reward ``direction · v - 0.05 ‖a‖²``.
``v`` is the forward velocity of the root over one step (gymnasium's ``x_velocity``, as learn2learn and
garage use; the released code read the torso's centre-of-mass velocity) and ``a`` the action clipped to
[-1, 1]. Observations are gymnasium's 17 numbers (positions without x, velocities); the released code
also appended the torso's centre of mass. Tasks are dicts with learn2learn's and garage's keys
``velocity`` and ``direction``.

Needs the ``rl`` extra (gymnasium and mujoco); the registry's families (:mod:`cheetah_families`) import
this module on first use and say so when it is missing.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from typing import Any

if sys.platform.startswith("linux"):
    # the task view's frames render offscreen: EGL needs no display (gymnasium tries GLFW first, which
    # needs one; OSMesa is often absent); a user's own MUJOCO_GL wins
    os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402 - after MUJOCO_GL is chosen
import numpy as np  # noqa: E402
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv  # noqa: E402

from .gym_adapter import GymMetaFamily  # noqa: E402

HORIZON = 200
CONTROL_COST = 0.05
VELOCITY_RANGE = (0.0, 2.0)
_COMPILING = threading.Lock()
FRAME_CAMERA = {"type": mujoco.mjtCamera.mjCAMERA_TRACKING, "trackbodyid": 1, "distance": 3.0, "elevation": -15.0}


@functools.lru_cache(maxsize=4)
def _compiled_model(path: str) -> mujoco.MjModel:
    """One compiled model per process, shared by every cheetah (each keeps its own MjData): a meta-batch is
    hundreds of environments, and each compile costs milliseconds, a megabyte and, with mujoco >= 4, a
    deprecation warning about gymnasium's XML printed to the terminal (silenced here)."""
    # the warning hook is global: two threads' first compiles (training, the task view's frames) would
    # otherwise restore it under each other, and the second's warning would be printed
    with _COMPILING:
        previous = mujoco.get_mju_user_warning()
        mujoco.set_mju_user_warning(lambda message: None)
        try:
            return mujoco.MjModel.from_xml_path(path)
        finally:
            mujoco.set_mju_user_warning(previous)


class _MetaCheetah(HalfCheetahEnv):
    """HalfCheetah-v5 with a task and MAML's reward; subclasses say how tasks are drawn and scored."""

    def __init__(self, **kwargs: Any):
        # the task view's frames: a camera that follows the torso, close enough to read at 160×120
        # (HalfCheetah-v5's default stays put at 4 m); rendering is all it changes
        kwargs.setdefault("default_camera_config", dict(FRAME_CAMERA))
        super().__init__(**kwargs)

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        model = _compiled_model(self.fullpath)
        return model, mujoco.MjData(model)

    def step(self, action: np.ndarray):
        obs, _, terminated, truncated, info = super().step(action)
        control = CONTROL_COST * float(np.sum(np.square(action)))
        goal = self._goal_reward(info["x_velocity"])
        info.update(goal_reward=goal, control_cost=control)
        return obs, goal - control, terminated, truncated, info

    def _goal_reward(self, velocity: float) -> float:
        raise NotImplementedError


class HalfCheetahGoalVelocity(_MetaCheetah):
    """Run at a target forward speed; a task is ``{"velocity": v}``, v ~ U[0, 2] (or ``velocity_range``)."""

    def __init__(self, velocity_range: tuple[float, float] = VELOCITY_RANGE, **kwargs: Any):
        super().__init__(**kwargs)
        self.velocity_range = velocity_range
        self.goal_velocity = 1.0

    def sample_tasks(self, n: int) -> list[dict[str, float]]:
        return [{"velocity": float(v)} for v in self.np_random.uniform(*self.velocity_range, size=n)]

    def set_task(self, task: dict[str, float]) -> None:
        self.goal_velocity = float(task["velocity"])

    def get_task(self) -> dict[str, float]:
        return {"velocity": self.goal_velocity}

    def _goal_reward(self, velocity: float) -> float:
        return -abs(velocity - self.goal_velocity)


class HalfCheetahGoalDirection(_MetaCheetah):
    """Run forward (+1) or backward (-1) as fast as possible; a task is ``{"direction": ±1}``."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.direction = 1.0

    def sample_tasks(self, n: int) -> list[dict[str, float]]:
        return [{"direction": float(d)} for d in self.np_random.choice([-1.0, 1.0], size=n)]

    def set_task(self, task: dict[str, float]) -> None:
        self.direction = 1.0 if float(task["direction"]) >= 0 else -1.0

    def get_task(self) -> dict[str, float]:
        return {"direction": self.direction}

    def _goal_reward(self, velocity: float) -> float:
        return self.direction * velocity


def goal_velocity_family(horizon: int | None = None, velocity_range: tuple[float, float] = VELOCITY_RANGE) -> GymMetaFamily:
    make = functools.partial(HalfCheetahGoalVelocity, velocity_range=tuple(velocity_range))
    return GymMetaFamily("halfcheetah-vel", make, horizon or HORIZON, task_fields=("velocity",))


def goal_direction_family(horizon: int | None = None) -> GymMetaFamily:
    return GymMetaFamily("halfcheetah-dir", HalfCheetahGoalDirection, horizon or HORIZON, task_fields=("direction",))
