"""What the adapt view asks for, and what it gets back: plain data around one engine call.

Qt-free on purpose: :func:`run_adaptation` runs on a job thread. The task comes from
:mod:`core.trained.adapt` and the losses, adapted weights and drawn curves from
:meth:`core.trained.loaded_model.LoadedModel.adapt_and_view`, so the numbers in the view are the
engine's numbers (the same as :func:`core.trained.loaded_model.adapt_weights` on exported weights).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.trained.adapt import AdaptResult, AdaptTask, csv_rows_task, held_out_task, image_folder_task, points_task
from core.config import ExperimentConfig
from core.errors import ConfigError
from core.trained.evaluation import FunctionView
from core.trained.loaded_model import LoadedModel
from core.trained.task_views import RegionsView, has_curves

SOURCES = ("held_out", "csv", "points", "images")

__all__ = ["AdaptOutcome", "AdaptRequest", "AdaptTask", "can_click", "make_task", "run_adaptation"]


@dataclass(frozen=True)
class AdaptRequest:
    """Everything one adaptation needs; ``source`` picks which of the task fields apply."""

    config: ExperimentConfig
    weights: dict
    family: Any
    steps: int
    lr: float | None = None                       # None: the run's inner rates (learned where they are)
    source: str = "held_out"
    task_index: int = 0                           # held_out
    shots: int = 10                               # held_out (K per task), csv (K rows), images (K per class)
    points: tuple[tuple[float, float], ...] = ()  # points: (x, y) clicked on the function view
    csv_path: str | None = None                   # csv
    target: str | None = None
    features: tuple[str, ...] | None = None
    x_range: tuple[float, float] | None = None    # points: the span the plot shows
    seed: int = 0                                 # csv, images: which K are the support (as ``maml-gui adapt --seed``)
    image_folder: str | None = None               # images: one folder per class


@dataclass(frozen=True)
class AdaptOutcome:
    request: AdaptRequest
    task: AdaptTask
    result: AdaptResult
    view: FunctionView | RegionsView | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.result.support_losses) - 1


def can_click(family) -> bool:
    """Clicked points make sense for 1-D regression only (one x, one y)."""
    return family is not None and has_curves(family)


def make_task(request: AdaptRequest) -> AdaptTask:
    if request.source == "held_out":
        return held_out_task(request.config, request.family, request.task_index, request.shots)
    if request.source == "points":
        if not request.points:
            raise ConfigError("points", "click on the plot to add support points")
        return points_task(request.points)
    if request.source == "csv":
        if not request.csv_path or not request.target:
            raise ConfigError("csv", "choose a CSV file and its target column")
        return csv_rows_task(request.csv_path, request.target, request.features, request.shots, request.family,
                             request.seed)
    if request.source == "images":
        if not request.image_folder:
            raise ConfigError("images", "choose a folder with one folder of images per class")
        return image_folder_task(request.image_folder, request.family, request.shots, request.seed)
    raise ConfigError("source", f"unknown task source {request.source!r}; one of {', '.join(SOURCES)}")


def run_adaptation(request: AdaptRequest) -> AdaptOutcome:
    """Adapt ``request.weights`` to the task it names; losses, adapted weights and the view from core."""
    task = make_task(request)
    model = LoadedModel(request.config, request.weights, request.family)
    result, view = model.adapt_and_view(task, request.steps, request.lr, request.x_range)
    return AdaptOutcome(request, task, result, view, list(task.notes))
