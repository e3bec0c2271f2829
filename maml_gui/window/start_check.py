"""Why the settings in the panels cannot start a run: the check behind Start's banner."""

from __future__ import annotations

from typing import Callable

from core.config import ExperimentConfig
from core.device import resolve_device
from core.errors import MamlError
from core.training.memory import fit_problem

from maml_gui.dialogs.user_module_dialog import module_problem


def config_problem(config: ExperimentConfig, family_for: Callable) -> str | None:
    """Invalid settings, an unavailable device, a conv-4 run that would not fit in memory, or the
    user's module not fitting the family (run on one task); None when Start may go."""
    try:
        config.validate()
        resolve_device(config.train.device)
        if config.model.name == "conv4":   # image runs can outgrow memory; MLPs here never do
            return fit_problem(config, family_for(config))
        if config.model.name == "module":   # your module, on one task of the family shown
            return module_problem(config, family_for(config))
    except MamlError as exc:
        return str(exc)
    return None
