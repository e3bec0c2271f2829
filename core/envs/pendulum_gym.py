"""Pendulum-v1 with mass and length per task as a gymnasium meta-environment (``sample_tasks``/``set_task``),
for the adapter: the ``pendulum-mass-gym`` family. Needs gymnasium (the ``rl`` extra).
"""

from __future__ import annotations

import functools

from gymnasium.envs.classic_control.pendulum import PendulumEnv

from .gym_adapter import GymMetaFamily


class RandomPendulum(PendulumEnv):
    """Pendulum-v1 whose task is ``{"mass": m, "length": l}`` (gymnasium's ``m`` and ``l``)."""

    def __init__(self, mass_range=(0.5, 1.5), length_range=(0.5, 1.5), **kwargs):   # pendulum-mass's defaults
        super().__init__(**kwargs)
        self.mass_range, self.length_range = tuple(mass_range), tuple(length_range)

    def sample_tasks(self, n: int) -> list[dict[str, float]]:
        masses = self.np_random.uniform(*self.mass_range, size=n)
        lengths = self.np_random.uniform(*self.length_range, size=n)
        return [{"mass": float(m), "length": float(l)} for m, l in zip(masses, lengths)]

    def set_task(self, task: dict[str, float]) -> None:
        self.m, self.l = float(task["mass"]), float(task["length"])

    def get_task(self) -> dict[str, float]:
        return {"mass": self.m, "length": self.l}


def pendulum_gym_family(horizon: int, mass_range, length_range) -> GymMetaFamily:
    make = functools.partial(RandomPendulum, mass_range=tuple(mass_range), length_range=tuple(length_range))
    return GymMetaFamily("pendulum-mass-gym", make, horizon, task_fields=("mass", "length"))
