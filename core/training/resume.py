"""One rule for carrying a run on under new settings, shared by ``maml-gui train --resume`` and the
window's Start over an opened run: which of its weights fit the new settings, whether its Adam
state and task stream carry over, and which changed settings forbid that (all but those in
:data:`~core.config.CONTINUE_CHANGES`). The command line refuses what is not exact; the window
starts from the weights with a fresh Adam state instead."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.built import Built, build
from core.config import CONTINUE_CHANGES, ExperimentConfig
from core.errors import MamlError
from core.storage.checkpoint import check_shapes

Weights = dict[str, torch.Tensor]
TrainingState = tuple[dict[str, torch.Tensor], dict[str, str]]


@dataclass(frozen=True)
class Continuation:
    """What a run under new settings takes over. ``weights``: the previous weights as far as they
    fit (learned inner rates dropped when only the network's weights do; None: a fresh
    initialisation); ``state``: the Adam moments, task sampler and iteration, only when the run
    continues exactly; ``changed``: the settings that forbid continuing exactly."""

    weights: Weights | None
    state: TrainingState | None
    changed: tuple[str, ...]

    @property
    def exact(self) -> bool:
        return self.state is not None

    @property
    def problem(self) -> str | None:
        """Why the run cannot continue exactly, naming the settings (None when nothing forbids it)."""
        if not self.changed:
            return None
        allowed = ", ".join(CONTINUE_CHANGES[:-1]) + " and " + CONTINUE_CHANGES[-1]
        return f"{', '.join(self.changed)} cannot change a resumed run (only {allowed} can)"


def continuation(config: ExperimentConfig, previous: ExperimentConfig, weights: Weights | None,
                 state: TrainingState | None = None, built: Built | None = None) -> Continuation:
    """How a run of ``previous`` (its ``weights`` and training ``state``, either may be missing)
    carries on under ``config``. Where settings beyond :data:`CONTINUE_CHANGES` changed, the
    weights are checked against what ``config`` builds (``built``, else built here); otherwise
    they fit as they are (read and checked under ``previous``, which builds the same network)."""
    changed = tuple(config.continue_changes(previous))
    if not weights:
        return Continuation(None, None, changed)
    if changed:
        weights = _fitting(config, weights, built)
    if weights is None or state is None or changed:
        return Continuation(weights, None, changed)
    return Continuation(weights, state, changed)


def _fitting(config: ExperimentConfig, weights: Weights, built: Built | None) -> Weights | None:
    """``weights``, else their network part alone (the algorithm's learned rates are another
    algorithm's), as far as they fit what ``config`` builds; None when neither does."""
    try:
        built = built if built is not None else build(config)
    except MamlError:   # settings that cannot be built: nothing fits them
        return None
    model_only = {k: v for k, v in weights.items() if k.startswith("model.")}
    for candidate in (weights, model_only):
        try:
            check_shapes("the previous weights", built, candidate)
        except MamlError:
            continue
        return candidate
    return None
