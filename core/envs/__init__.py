"""Environment families for meta-RL (the RL counterpart of `tasks/`): each samples tasks and steps all tasks ×
rollouts as one batch. Imports only `errors` and `tasks` (for the settings' form fields)."""

from __future__ import annotations

from core.envs.base import EnvBatch, EnvFamily
from core.envs.family import ParamEnvFamily
from core.envs.nav2d import Nav2DFamily
from core.errors import ConfigError
from core.tasks.spec import FamilySpec

# name -> class built as ``cls(params)``; other modules add their families here
ENV_FAMILIES: dict[str, type] = {cls.name: cls for cls in (Nav2DFamily,)}


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


__all__ = ["ENV_FAMILIES", "EnvBatch", "EnvFamily", "Nav2DFamily", "ParamEnvFamily", "build_env_family",
           "is_env_family"]
