"""A trained network ready to use: adapt it to a task, score it on held-out tasks, predict.

The window (opened weights, the adapt view), the training worker (over its live trainer) and the
command line all compute through this class, so every view shows the engine's own numbers. It
holds weights and inner rates but no optimiser or task sampler, and it never changes torch's
process-wide settings: the thread count is the trainer's business, not a reader's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from core.trained.adapt import AdaptResult, AdaptTask, Weights, check_adapt_settings, check_task
from core.algorithms import InnerRates
from core.algorithms.inner import Params, task_accuracy, task_losses
from core.config import ExperimentConfig
from core.built import Built, prepare
from core.errors import ConfigError
from core.trained.evaluation import (FunctionView, function_view, held_out_tasks, mean_and_ci, per_step_scores,
                                     scratch_params)
from core.trained.task_views import (GRID_POINTS, DataView, EpisodeView, RegionsView, curve_range, episode_view,
                                     has_curves, region_grid, regions_view, rows_view)
from core.tasks import TaskBatch, TaskFamily

EVAL_TASKS = 50             # held-out tasks scored for the adaptation curves
PREVIEW_SEED_OFFSET = 7919  # preview tasks come from another stream than the scored batch

TaskView = FunctionView | RegionsView | DataView | EpisodeView | None


def adaptation_steps(config: ExperimentConfig) -> int:
    """How far the adaptation curves look: at least 10 steps, and at least as far as training adapts."""
    return max(10, config.algorithm.inner_steps)


@dataclass(frozen=True)
class AdaptationSnapshot:
    """Mean score (and 95% CI half-width) on a fixed held-out batch after 0..M adaptation steps.

    ``diverged`` counts, per series and step, the tasks that diverged by then
    (:func:`core.trained.evaluation.diverged_tasks`, as ``maml-gui evaluate`` counts them); the mean and
    CI are NaN at those steps. Snapshots saved before it existed load with it empty.
    """

    iteration: int
    metric: str                                        # "mse" | "accuracy"
    steps: np.ndarray                                  # [M + 1]
    series: dict[str, tuple[np.ndarray, np.ndarray]]   # name -> (mean [M + 1], ci95 [M + 1])
    baseline_iterations: int = 0
    diverged: dict[str, np.ndarray] = field(default_factory=dict)   # name -> diverged tasks [M + 1]
    tasks: int = 0                                     # held-out tasks scored (0: not recorded)


@dataclass(frozen=True)
class Preview:
    """One held-out task as the task view draws it (None: no view for this family; ``note`` then
    says why, in words for the window)."""

    iteration: int
    task_index: int
    view: TaskView
    note: str = ""


class LoadedModel:
    """A network's weights and inner rates for one experiment and family.

    ``LoadedModel(config, weights)`` reads saved weights (a fresh initialisation without them,
    the trainer's own); :meth:`of_trainer` shares a running trainer's tensors, so its scores
    follow training. The held-out batch behind :meth:`adaptation` is drawn once, so successive
    snapshots compare, and the scratch reference (a fresh network) is scored once with it.
    """

    def __init__(self, source: ExperimentConfig | Built, weights: Weights | None = None,
                 family: TaskFamily | None = None, *, device: str = "cpu", iteration: int | Callable[[], int] = 0):
        """``source``: a config (built here, with ``family`` when given, on ``device``) or what a
        caller built already (used as it is: its tensors become this model's). ``iteration``: the
        count behind the weights, or a function that tells it (a live trainer's)."""
        built = prepare(source, family, device if not isinstance(source, Built) else None)
        self.built = built
        self.config, self.family, self.device = built.config, built.family, built.device
        self.net, self.algorithm, self.params, self.rates = built.net, built.algorithm, built.params, built.rates
        self._iteration = iteration
        self._scored: tuple[TaskBatch, tuple[np.ndarray, ...]] | None = None   # batch, scratch scores
        if weights:
            self.load_weights(weights)

    @classmethod
    def of_trainer(cls, trainer) -> "LoadedModel":
        """The live tensors of a :class:`~core.training.trainer.MetaTrainer` (no copies) and its iteration count."""
        return cls(trainer.built, iteration=lambda: trainer.iteration)

    @property
    def iteration(self) -> int:
        """Meta-iterations behind these weights (as given, or the trainer's now)."""
        return self._iteration() if callable(self._iteration) else self._iteration

    # -- weights ----------------------------------------------------------------------------------
    def load_weights(self, tensors: Weights) -> None:
        """Copy ``model.*`` and any ``inner_lr.*`` tensors in (shapes already checked by the reader)."""
        copy_weights(self.params, self.rates, tensors)

    def weights(self) -> Weights:
        return weights_of(self.params, self.rates)

    def rates_for(self, lr: float | None = None) -> InnerRates:
        """The run's inner rates (learned ones where the algorithm learns them), or one fixed ``lr``."""
        if lr is None:
            return self.rates
        return InnerRates("fixed", float(lr), self.params, self.algorithm.adapt_names, 1)

    # -- adapting and predicting -----------------------------------------------------------------
    def trajectory(self, support_x: torch.Tensor, support_y: torch.Tensor, steps: int,
                   lr: float | None = None) -> list[Params]:
        """Per-task params after 0..steps steps on each task's support set (``[T, K, D]`` inputs)."""
        return self.algorithm.adapt(self.params, self.rates_for(lr), support_x, support_y, steps)

    def predict(self, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        """The network's output for ``x`` (``[T, N, D]`` with per-task ``params``), without a graph."""
        with torch.no_grad():
            return self.net.forward(self.params if params is None else params, x)

    def adapt(self, support_x, support_y, steps: int, lr: float | None = None, *, query_x=None,
              query_y=None) -> AdaptResult:
        """Fine-tune on one task (``x [K, D]``) for ``steps`` steps: losses after each step and the
        adapted weights (what :func:`core.trained.loaded_model.adapt_weights` returns)."""
        check_adapt_settings(steps, lr)
        net, kind = self.net, self.family.kind
        dtype = next(iter(self.params.values())).dtype
        sx, sy = (t.to(self.device) for t in self._checked("support", support_x, support_y, dtype))
        trajectory = self.trajectory(sx[None], sy[None], steps, lr)
        with torch.no_grad():
            support = torch.stack([task_losses(net.forward(p, sx[None]), sy[None], kind)[0] for p in trajectory])
            query = accuracy = None
            if query_x is not None or query_y is not None:
                qx, qy = (t.to(self.device) for t in self._checked("query", query_x, query_y, dtype))
                outs = [net.forward(p, qx[None]) for p in trajectory]
                query = tuple(torch.stack([task_losses(o, qy[None], kind)[0] for o in outs]).tolist())
                if kind == "classification":
                    accuracy = tuple(torch.stack([task_accuracy(o, qy[None])[0] for o in outs]).tolist())
        final = trajectory[-1]
        adapted = {f"model.{n}": (v[0] if v.dim() > self.params[n].dim() else v).detach().cpu().clone()
                   for n, v in final.items()}
        adapted.update({f"inner_lr.{n}": t.detach().cpu().clone() for n, t in self.rates.tensors.items()})
        return AdaptResult(tuple(support.tolist()), query, accuracy, adapted)

    def _checked(self, name: str, x, y, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`~core.trained.adapt.check_task`, which knows flat inputs ``[N, D]`` only: images ``[N, C, H, W]``
        are checked flattened and given back in their shape."""
        shape = getattr(self.family, "input_shape", None)
        if shape is not None and x is not None and torch.as_tensor(x).dim() == 4:
            x = torch.as_tensor(x)
            if tuple(x.shape[1:]) != tuple(shape):
                raise ConfigError(f"{name}.x", f"expected images of shape {tuple(shape)}, got {tuple(x.shape[1:])}")
            flat, y = check_task(name, x.reshape(len(x), -1), y, self.net, self.family.kind, dtype)
            return flat.reshape(len(x), *shape), y
        return check_task(name, x, y, self.net, self.family.kind, dtype)

    def adapt_and_view(self, task: AdaptTask, steps: int, lr: float | None = None,
                       x_range: tuple[float, float] | None = None) -> tuple[AdaptResult, TaskView]:
        """:meth:`adapt` to ``task``, and what to draw: the prediction after each step on a grid over
        ``x_range`` (default: the family's) widened to the task's points, for a curve family; the
        adapted decision regions for 2-D classification; the episode for images; else nothing."""
        result = self.adapt(task.support_x, task.support_y, steps, lr, query_x=task.query_x, query_y=task.query_y)
        if getattr(self.family, "input_shape", None) is not None and task.query_x is not None:
            dtype = next(iter(self.params.values())).dtype
            batch = TaskBatch(*(t.to(self.device)[None] for t in (task.support_x.to(dtype), task.support_y,
                                                                   task.query_x.to(dtype), task.query_y)),
                              dict(task.task_params or {}))   # held-out tasks keep their [1, ...] params
            return result, episode_view(self, batch, steps, lr, task.class_names)
        if has_curves(self.family):
            return result, self._curve(task, steps, lr, x_range if x_range is not None else self.family.x_range)
        if self.family.kind == "classification" and self.family.input_dim == 2:
            points = torch.cat([task.support_x] + ([task.query_x] if task.query_x is not None else [])).double()
            gx, gy, grid = region_grid(points)
            adapted = {n: result.weights[f"model.{n}"] for n in self.params}
            accuracy = result.query_accuracy[-1] if result.query_accuracy else math.nan
            dtype = next(iter(self.params.values())).dtype
            return result, regions_view(self.net, adapted, (gx, gy, grid.to(dtype)), task.support_x, task.support_y,
                                        accuracy, steps)
        return result, None

    def _curve(self, task: AdaptTask, steps: int, lr: float | None, span) -> FunctionView:
        xs = torch.cat([task.support_x.flatten()] + ([task.query_x.flatten()] if task.query_x is not None else []))
        dtype = next(iter(self.params.values())).dtype
        sx, sy = task.support_x.to(dtype)[None], task.support_y.to(dtype)[None]
        batch = TaskBatch(sx, sy, sx[:, :0], sy[:, :0], task.task_params or {})   # no query: only the curve is drawn
        return function_view(self.algorithm, self.params, self.rates_for(lr), self.family, batch, steps, GRID_POINTS,
                             self.device, curve_range(xs, span))[0]

    # -- scoring ----------------------------------------------------------------------------------
    def held_out(self, n_tasks: int, seed: int | None = None) -> TaskBatch:
        """Held-out tasks with the run's shots (and as many query points as the family can give)."""
        t = self.config.train
        query = self.family.held_out_query(t.shots, t.query)
        return held_out_tasks(self.family, n_tasks, t.shots, query, t.seed if seed is None else seed, self.device)

    def scores(self, batch: TaskBatch, steps: int, lr: float | None = None) -> torch.Tensor:
        """``[steps + 1, T]``: each task's query MSE (or accuracy) after 0..steps steps."""
        return per_step_scores(self.algorithm, self.params, self.rates_for(lr), batch, steps)

    def scratch_scores(self, batch: TaskBatch, steps: int) -> torch.Tensor:
        """:meth:`scores` of a freshly initialised network fine-tuned with the fixed inner rate."""
        params = scratch_params(self.algorithm, self.config.train.seed, self.device)
        fixed = InnerRates("fixed", self.algorithm.spec.inner_lr, params, self.algorithm.adapt_names, 1)
        return per_step_scores(self.algorithm, params, fixed, batch, steps)

    def adaptation(self, tasks: int = EVAL_TASKS, baseline: "LoadedModel | None" = None,
                   report: Callable[[float], bool] | None = None) -> AdaptationSnapshot | None:
        """Mean and 95% CI per adaptation step on ``tasks`` held-out tasks, for these weights,
        ``baseline``'s (the pretrain reference) and a fresh network's (series "meta-learned",
        "pretrain", "scratch"). With ``report``, the tasks are scored a few at a time and
        ``report(fraction done)`` is called in between: True cancels (None is returned), so a
        caller that must stop (a Stop, a window closing) never waits for the whole batch."""
        steps = adaptation_steps(self.config)
        metric = self.family.metric
        models = {"meta-learned": self} | ({"pretrain": baseline} if baseline is not None else {})
        fresh = self._scored is None or self._scored[0].n_tasks != tasks
        parts = _Parts(report, tasks * (len(models) + fresh))
        if fresh:
            batch = self.held_out(tasks)
            scratch = parts.scores(lambda b: self.scratch_scores(b, steps), batch)
            if scratch is None:
                return None
            self._scored = batch, mean_and_ci(scratch, metric)
        batch, scratch = self._scored
        scored = {}
        for name, model in models.items():
            scores = parts.scores(lambda b, model=model: model.scores(b, steps), batch)
            if scores is None:
                return None
            scored[name] = mean_and_ci(scores, metric)
        scored["scratch"] = scratch
        return AdaptationSnapshot(self.iteration, metric, np.arange(steps + 1),
                                  {name: (mean, ci) for name, (mean, ci, _) in scored.items()},
                                  baseline.iteration if baseline is not None else 0,
                                  {name: diverged for name, (_, _, diverged) in scored.items()}, batch.n_tasks)

    # -- the task view ----------------------------------------------------------------------------
    def preview(self, task_index: int) -> Preview:
        """Held-out task ``task_index`` as the task view draws it: the adapted curve (1-D regression),
        decision regions (2-D classification), a CSV task's rows in the file's units, an image
        episode with the labels predicted after each step, else nothing (and why)."""
        view = self._preview_view(task_index)
        return Preview(self.iteration, task_index, view, "" if view is not None else self._no_view())

    def _no_view(self) -> str:
        family = self.family
        if family.kind == "classification" and family.input_dim != 2:
            return f"no task view for {family.input_dim}-dimensional rows"
        if family.tabular:
            return "no held-out task has more rows than the shots"
        return "no task view for this family"

    def _preview_view(self, task_index: int) -> TaskView:
        family = self.family
        seed = self.config.train.seed + PREVIEW_SEED_OFFSET
        steps = adaptation_steps(self.config)
        if family.tabular and family.kind == "regression":
            return rows_view(self, task_index, steps, seed)
        if getattr(family, "input_shape", None) is not None:
            return episode_view(self, self.held_out(1, seed + task_index), steps)
        classify = family.kind == "classification" and family.input_dim == 2
        if not classify and family.x_range is None:
            return None
        batch = self.held_out(1, seed + task_index)
        if classify:
            return self.regions(batch, self.config.algorithm.inner_steps)
        return function_view(self.algorithm, self.params, self.rates, family, batch, steps, device=self.device)[0]

    def regions(self, batch: TaskBatch, steps: int) -> RegionsView:
        """Adapt on the first task's support set, then classify every point of a grid around its data."""
        points = torch.cat([batch.support_x[0], batch.query_x[0]]).cpu()
        gx, gy, grid = region_grid(points)
        adapted = self.trajectory(batch.support_x, batch.support_y, steps)[-1]
        with torch.no_grad():
            accuracy = (self.net.forward(adapted, batch.query_x).argmax(-1) == batch.query_y).double().mean()
        return regions_view(self.net, adapted, (gx, gy, grid.to(batch.support_x)), batch.support_x[0],
                            batch.support_y[0], float(accuracy), steps)


class _Parts:
    """Scores held-out tasks a few at a time between ``report`` calls: parts grow while they take
    under :data:`PART_SECONDS`, so fast models keep their batching and slow ones report often."""

    PART_SECONDS = 0.2

    def __init__(self, report: Callable[[float], bool] | None, total: int):
        self.report, self.total, self.done, self.size = report, max(1, total), 0, 1

    def scores(self, score: Callable[[TaskBatch], torch.Tensor], batch: TaskBatch) -> torch.Tensor | None:
        if self.report is None:
            return score(batch)
        parts, start = [], 0
        while start < batch.n_tasks:
            if self.report(min(1.0, self.done / self.total)):
                return None
            end = min(batch.n_tasks, start + self.size)
            began = time.perf_counter()
            parts.append(score(_tasks(batch, start, end)))
            if time.perf_counter() - began < self.PART_SECONDS / 2:
                self.size *= 2
            self.done += end - start
            start = end
        return torch.cat(parts, dim=1)


def _tasks(batch: TaskBatch, start: int, end: int) -> TaskBatch:
    """Tasks ``start:end`` of a batch (each task is scored on its own data only)."""
    params = {k: v[start:end] for k, v in batch.task_params.items()
              if isinstance(v, torch.Tensor) and v.dim() and len(v) == batch.n_tasks}
    return TaskBatch(batch.support_x[start:end], batch.support_y[start:end], batch.query_x[start:end],
                     batch.query_y[start:end], params)


def preview_from_weights(config: ExperimentConfig | Built, weights: Weights | None, task_index: int, iteration: int = 0,
                         family: TaskFamily | None = None) -> Preview:
    """:meth:`LoadedModel.preview` of saved weights (a fresh initialisation without them), on the CPU."""
    return LoadedModel(config, weights, family, iteration=iteration).preview(task_index)


def copy_weights(params: Params, rates: InnerRates, tensors: Weights) -> None:
    """Copy saved tensors into live ones: ``model.<name>`` into params, ``inner_lr.<name>`` into learned rates."""
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(tensors[f"model.{n}"])
        for n, t in rates.tensors.items():
            if f"inner_lr.{n}" in tensors:
                t.copy_(tensors[f"inner_lr.{n}"])


def weights_of(params: Params, rates: InnerRates) -> Weights:
    """Detached CPU copies: ``model.<name>`` for weights, ``inner_lr.<name>`` for learned rates."""
    out = {f"model.{n}": p.detach().cpu().clone() for n, p in params.items()}
    out.update({f"inner_lr.{n}": t.detach().cpu().clone() for n, t in rates.tensors.items()})
    return out


def adapt_weights(config: ExperimentConfig | Built, weights: Weights, support_x: torch.Tensor, support_y: torch.Tensor,
                  steps: int, lr: float | None = None, *, query_x: torch.Tensor | None = None,
                  query_y: torch.Tensor | None = None, family=None) -> AdaptResult:
    """Fine-tune on ``support`` for ``steps`` steps. ``lr=None`` uses the run's inner rates
    (learned ones where the algorithm has them); a number replaces them with one fixed rate.
    ``config`` may be what a caller built already (then ``family`` is its own)."""
    check_adapt_settings(steps, lr)
    return LoadedModel(config, weights, family).adapt(support_x, support_y, steps, lr, query_x=query_x, query_y=query_y)
