"""What the adapt view computes, as plain data: the task to adapt to, and what adapting did.

Qt-free on purpose: :func:`run_adaptation` runs on a job thread and its inputs and outputs are
frozen dataclasses of tensors, lists and floats. The losses come from
:func:`core.adapt.adapt_weights` itself, so the numbers in the view are the engine's numbers
(the same call a user makes on exported weights); the curves drawn after each step follow the
same inner loop (``Algorithm.adapt`` with the same rates) on a grid of inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.adapt import AdaptResult, adapt_weights, task_from_csv
from core.algorithms import InnerRates
from core.config import ExperimentConfig
from core.errors import ConfigError
from core.evaluation import FunctionView, held_out_tasks
from core.tasks import FunctionFamily
from core.trainer import MetaTrainer

from .inspection import REGION_RESOLUTION, RegionsView

ADAPT_SEED_OFFSET = 104_729   # the adapt view's held-out tasks: a stream apart from the previews
GRID_POINTS = 200
SOURCES = ("held_out", "csv", "points")


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
    shots: int = 10                               # held_out (K per task) and csv (the first K rows)
    points: tuple[tuple[float, float], ...] = ()  # points: (x, y) clicked on the function view
    csv_path: str | None = None                   # csv
    target: str | None = None
    features: tuple[str, ...] | None = None
    x_range: tuple[float, float] | None = None    # points: the span the plot shows


@dataclass(frozen=True)
class AdaptTask:
    """One task: ``x [K, D]``; ``y [K, out]`` or labels ``[K]``; a query set when there is one."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor | None
    query_y: torch.Tensor | None
    title: str
    task_params: dict | None = None               # a generated function's parameters (to draw the truth)


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
    return family is not None and family.kind == "regression" and family.input_dim == 1 and family.output_dim == 1


def make_task(request: AdaptRequest) -> AdaptTask:
    family = request.family
    if request.source == "held_out":
        seed = request.config.train.seed + ADAPT_SEED_OFFSET + request.task_index
        batch = held_out_tasks(family, 1, request.shots, request.config.train.query, seed)
        params = {k: v.cpu() for k, v in batch.task_params.items()} if batch.task_params else None
        return AdaptTask(batch.support_x[0], batch.support_y[0], batch.query_x[0], batch.query_y[0],
                         f"held-out task #{request.task_index + 1}", params)
    if request.source == "points":
        if not request.points:
            raise ConfigError("points", "click on the plot to add support points")
        xy = torch.tensor(request.points, dtype=torch.get_default_dtype())
        n = len(request.points)
        # contiguous copies: a strided column gives other float rounding than the same numbers given directly
        return AdaptTask(xy[:, :1].contiguous(), xy[:, 1:].contiguous(), None, None, f"{n} clicked point{'s' * (n != 1)}")
    if request.source == "csv":
        if not request.csv_path or not request.target:
            raise ConfigError("csv", "choose a CSV file and its target column")
        task = task_from_csv(request.csv_path, request.target, request.features,
                             classification=family.kind == "classification", input_dim=family.input_dim, family=family)
        k, n = min(request.shots, len(task.x)), len(task.x)
        name = Path(request.csv_path).name
        if k == n:
            return AdaptTask(task.x, task.y, None, None, f"{name}: all {n} rows as support (no query rows left)")
        return AdaptTask(task.x[:k], task.y[:k], task.x[k:], task.y[k:],
                         f"{name}: rows 1–{k} as support, {k + 1}–{n} as query")
    raise ConfigError("source", f"unknown task source {request.source!r}; one of {', '.join(SOURCES)}")


def run_adaptation(request: AdaptRequest) -> AdaptOutcome:
    """Adapt ``request.weights`` to the task; losses and adapted weights from ``adapt_weights``."""
    task = make_task(request)
    result = adapt_weights(request.config, request.weights, task.support_x, task.support_y, request.steps, request.lr,
                           query_x=task.query_x, query_y=task.query_y, family=request.family)
    family = request.family
    view = None
    if can_click(family):
        view = _function_view(request, task)
    elif family.kind == "classification" and family.input_dim == 2:
        view = _regions_view(request, task, result)
    return AdaptOutcome(request, task, result, view)


def _trainer(request: AdaptRequest) -> MetaTrainer:
    trainer = MetaTrainer(request.config.replace("train", device="cpu"), request.family)
    trainer.load_weights(request.weights)
    return trainer


def _grid_range(request: AdaptRequest, task: AdaptTask) -> tuple[float, float]:
    """The family's x range (or the plot's span) widened to hold every point of the task."""
    xs = [task.support_x.flatten()] + ([task.query_x.flatten()] if task.query_x is not None else [])
    xs = torch.cat(xs)
    low, high = float(xs.min()), float(xs.max())
    span = request.x_range
    if span is None and isinstance(request.family, FunctionFamily):
        span = tuple(request.family.params["x_range"])
    if span is not None:
        return min(low, float(span[0])), max(high, float(span[1]))
    pad = max(0.25 * (high - low), 0.5)
    return low - pad, high + pad


def _function_view(request: AdaptRequest, task: AdaptTask) -> FunctionView:
    """Predictions on a grid after each step, with the true function when the task has one."""
    trainer = _trainer(request)
    alg, net = trainer.algorithm, trainer.net
    dtype = next(iter(trainer.params.values())).dtype
    low, high = _grid_range(request, task)
    grid = torch.linspace(low, high, GRID_POINTS, dtype=dtype).reshape(1, GRID_POINTS, 1)
    rates = trainer.rates if request.lr is None else InnerRates("fixed", float(request.lr), trainer.params,
                                                                alg.adapt_names, 1)
    sx, sy = task.support_x.to(dtype)[None], task.support_y.to(dtype)[None]
    trajectory = alg.adapt(trainer.params, rates, sx, sy, request.steps)
    with torch.no_grad():
        predictions = [net.forward(p, grid)[0, :, 0].tolist() for p in trajectory]
    truth = [float("nan")] * GRID_POINTS
    if task.task_params and isinstance(request.family, FunctionFamily):
        truth = request.family.function(task.task_params, grid.cpu())[0, :, 0].tolist()
    return FunctionView(grid[0, :, 0].tolist(), truth, task.support_x[:, 0].tolist(), task.support_y[:, 0].tolist(),
                        predictions)


def _regions_view(request: AdaptRequest, task: AdaptTask, result: AdaptResult) -> RegionsView:
    """Decision regions of the adapted network around the task's points."""
    trainer = _trainer(request)
    points = torch.cat([task.support_x] + ([task.query_x] if task.query_x is not None else [])).double()
    low, high = points.min(0).values - 1.0, points.max(0).values + 1.0
    gx = torch.linspace(float(low[0]), float(high[0]), REGION_RESOLUTION)
    gy = torch.linspace(float(low[1]), float(high[1]), REGION_RESOLUTION)
    yy, xx = torch.meshgrid(gy, gx, indexing="ij")
    dtype = next(iter(trainer.params.values())).dtype
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1).unsqueeze(0).to(dtype)
    adapted = {n: result.weights[f"model.{n}"] for n in trainer.params}
    with torch.no_grad():
        labels = trainer.net.forward(adapted, grid).argmax(-1).reshape(REGION_RESOLUTION, REGION_RESOLUTION)
    accuracy = result.query_accuracy[-1] if result.query_accuracy else float("nan")
    sx = task.support_x.cpu().numpy()
    return RegionsView(gx.numpy(), gy.numpy(), labels.numpy(), sx[:, 0].copy(), sx[:, 1].copy(),
                       np.asarray(task.support_y.cpu()), float(accuracy), request.steps)
