"""Environment families for meta-RL (the RL counterpart of `tasks/`): each samples tasks and steps all tasks ×
rollouts as one batch. Imports only `errors` and `tasks` (for the settings' form fields).

Families on gymnasium or MuJoCo (the optional ``rl`` extra: ``pip install 'maml-gui[rl]'``) import them
only on first use; building one without them refuses with one line naming the install command."""

from __future__ import annotations

from core.envs.base import EnvBatch, EnvFamily
from core.envs.cheetah_families import HalfCheetahDirFamily, HalfCheetahVelFamily
from core.envs.extra import INSTALL_HINT, missing_modules
from core.envs.family import ParamEnvFamily
from core.envs.gym_family import GymParamFamily
from core.envs.nav2d import Nav2DFamily
from core.envs.pendulum import PendulumMassFamily, PendulumMassGymFamily
from core.errors import ConfigError
from core.tasks import build_family
from core.tasks.spec import FamilySpec

# name -> class built as ``cls(params)``; other modules add their families here
ENV_FAMILIES: dict[str, type] = {cls.name: cls for cls in (Nav2DFamily, HalfCheetahVelFamily, HalfCheetahDirFamily,
                                                            PendulumMassFamily, PendulumMassGymFamily)}


def env_requires(name: str) -> tuple[str, ...]:
    """The optional packages a family needs beyond the base install (a form can mark what is missing)."""
    return getattr(ENV_FAMILIES[name], "requires", ())


def is_env_family(name: str) -> bool:
    return name in ENV_FAMILIES


def build_env_family(spec: FamilySpec):
    """Build and validate an environment family; raises :class:`ConfigError` naming the bad field."""
    try:
        cls = ENV_FAMILIES[spec.name]
    except KeyError:
        raise ConfigError("family.name", f"unknown environment family {spec.name!r}; choose one of "
                                         f"{', '.join(ENV_FAMILIES)}") from None
    return cls(spec.params)


def build_any_family(spec: FamilySpec):
    """The environment family ``spec`` names, else its task family: the one dispatch for callers that
    take either kind (the family editor, a run's config)."""
    return build_env_family(spec) if is_env_family(spec.name) else build_family(spec)


__all__ = ["ENV_FAMILIES", "INSTALL_HINT", "EnvBatch", "EnvFamily", "GymParamFamily", "Nav2DFamily", "ParamEnvFamily", "build_any_family",
           "build_env_family", "env_requires", "is_env_family", "missing_modules"]
