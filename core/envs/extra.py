"""The optional ``rl`` extra (gymnasium, mujoco): whether it is installed, and the one-line refusal when not.

Kept apart from the families that need it so the registry can name a missing package before anything
imports it (an ImportError deep in gymnasium would be a traceback, not an answer).
"""

from __future__ import annotations

import importlib.util

from ..errors import ConfigError

INSTALL_HINT = "pip install 'maml-gui[rl]'"


def missing_modules(modules: tuple[str, ...]) -> list[str]:
    """The modules of ``modules`` that cannot be found (without importing any of them)."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def require(family: str, modules: tuple[str, ...]) -> None:
    """Raise :class:`ConfigError` naming ``family``, the missing packages and the install line."""
    missing = missing_modules(modules)
    if missing:
        raise ConfigError("family.name", f"{family} needs the optional package{'s' if len(missing) > 1 else ''} "
                                         f"{' and '.join(missing)}; install the rl extra: {INSTALL_HINT}")
