"""Pendulum-v1 with mass and length per task as a gymnasium meta-environment (``sample_tasks``/``set_task``),
run through the gymnasium adapter: the same family as :mod:`pendulum`, stepped one environment at a
time by gymnasium. It shows the adapter working without MuJoCo and checks the torch version against
gymnasium's own code. Needs gymnasium (the ``rl`` extra).
"""

from __future__ import annotations

from gymnasium.envs.classic_control.pendulum import PendulumEnv

from .gym_adapter import GymMetaFamily
from .pendulum import HORIZON, LENGTH_RANGE, MASS_RANGE


class RandomPendulum(PendulumEnv):
    """Pendulum-v1 whose task is ``{"mass": m, "length": l}`` (gymnasium's ``m`` and ``l``)."""

    def sample_tasks(self, n: int) -> list[dict[str, float]]:
        masses = self.np_random.uniform(*MASS_RANGE, size=n)
        lengths = self.np_random.uniform(*LENGTH_RANGE, size=n)
        return [{"mass": float(m), "length": float(l)} for m, l in zip(masses, lengths)]

    def set_task(self, task: dict[str, float]) -> None:
        self.m, self.l = float(task["mass"]), float(task["length"])

    def get_task(self) -> dict[str, float]:
        return {"mass": self.m, "length": self.l}


def pendulum_gym_family(horizon: int | None = None) -> GymMetaFamily:
    return GymMetaFamily("pendulum-mass-gym", RandomPendulum, horizon or HORIZON, task_fields=("mass", "length"))
