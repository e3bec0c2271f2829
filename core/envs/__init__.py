"""Environment families for meta-RL (the RL counterpart of `tasks/`): each samples tasks and steps all tasks × rollouts as one batch.

``ENV_FAMILIES`` maps a family's name to a factory ``factory(horizon=None) -> EnvFamily`` (``None``: the
family's own horizon). Families on gymnasium or MuJoCo (the optional ``rl`` extra) are imported only when
built, and refuse with one line naming ``pip install 'maml-gui[rl]'`` when it is missing.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError
from .base import EnvBatch, EnvFamily
from .extra import INSTALL_HINT, missing_modules, require
from .pendulum import PendulumMassFamily

EnvFactory = Callable[..., EnvFamily]
GYM = ("gymnasium",)
MUJOCO = ("gymnasium", "mujoco")


def _halfcheetah_vel(horizon: int | None = None) -> EnvFamily:
    require("halfcheetah-vel", MUJOCO)
    from .halfcheetah import goal_velocity_family
    return goal_velocity_family(horizon)


def _halfcheetah_dir(horizon: int | None = None) -> EnvFamily:
    require("halfcheetah-dir", MUJOCO)
    from .halfcheetah import goal_direction_family
    return goal_direction_family(horizon)


def _pendulum_gym(horizon: int | None = None) -> EnvFamily:
    require("pendulum-mass-gym", GYM)
    from .pendulum_gym import pendulum_gym_family
    return pendulum_gym_family(horizon)


ENV_FAMILIES: dict[str, EnvFactory] = {
    "halfcheetah-vel": _halfcheetah_vel,
    "halfcheetah-dir": _halfcheetah_dir,
    "pendulum-mass": PendulumMassFamily,
    "pendulum-mass-gym": _pendulum_gym,
}
# the packages each family needs beyond the base install (a form can grey out what is missing)
ENV_REQUIRES: dict[str, tuple[str, ...]] = {"halfcheetah-vel": MUJOCO, "halfcheetah-dir": MUJOCO,
                                            "pendulum-mass-gym": GYM}


def build_env_family(name: str, horizon: int | None = None) -> EnvFamily:
    """Build a family by name; raises :class:`ConfigError` for an unknown name, a bad horizon or a missing extra."""
    try:
        factory = ENV_FAMILIES[name]
    except KeyError:
        raise ConfigError("family.name", f"unknown environment family {name!r}; choose one of "
                                         f"{', '.join(ENV_FAMILIES)}") from None
    if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1):
        raise ConfigError("horizon", f"the horizon must be a positive whole number of steps, not {horizon!r}")
    return factory(horizon=horizon)


__all__ = ["ENV_FAMILIES", "ENV_REQUIRES", "INSTALL_HINT", "EnvBatch", "EnvFactory", "EnvFamily", "build_env_family",
           "missing_modules"]
