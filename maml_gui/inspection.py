"""The live views' data, computed by :class:`core.loaded_model.LoadedModel`; these names stay
importable from here for the views that draw it."""

from __future__ import annotations

from core.evaluation import FunctionView
from core.loaded_model import (EVAL_TASKS, AdaptationSnapshot, LoadedModel, Preview, adaptation_steps,
                               preview_from_weights)
from core.task_views import DataView, RegionsView

__all__ = ["EVAL_TASKS", "AdaptationSnapshot", "DataView", "FunctionView", "LoadedModel", "Preview", "RegionsView",
           "adaptation_steps", "preview_from_weights"]
