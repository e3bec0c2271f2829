"""Held-out evaluation: how well does the learned initialisation adapt to tasks it never saw?

The tasks come from a generator seeded apart from the training stream, so the same seed
always gives the same held-out tasks and never the tasks that were trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from core.algorithms import Algorithm, InnerRates
from core.algorithms.inner import Params, task_accuracy, task_losses
from core.tasks import TaskBatch, TaskFamily

EVAL_SEED_OFFSET = 1_000_003  # keeps held-out tasks off the training stream (which uses the seed itself)
DIVERGED_FACTOR = 100.0       # a task loss this many times above its starting level has blown up
LOSS_FLOOR = 1e-6             # the starting level is never taken below this (a perfect start is not a scale)
EVAL_MEMORY = 256 * 2**20     # bytes the held-out tasks being adapted may take at once (see per_step_scores)
MAX_CHUNK = 256               # held-out tasks adapted at a time at most (small networks: a few MB)


@dataclass(frozen=True)
class Summary:
    """Mean and 95% CI half-width per step. ``diverged`` counts the tasks that diverged by that
    step (:func:`diverged_tasks`: e.g. many steps past what a learned rate was trained for);
    their presence makes the mean NaN on purpose rather than hiding them or letting one task's
    1e+20 stand for the mean."""

    mean: dict[int, float]
    ci95: dict[int, float]
    diverged: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalResult:
    """Loss (MSE) or accuracy after each number of adaptation steps, with 95% confidence half-widths."""

    metric: str
    shots: int
    tasks: int
    steps: tuple[int, ...]
    model: Summary
    scratch: Summary

    def to_dict(self) -> dict:
        """JSON-safe: a non-finite number becomes ``null`` (JSON has no NaN)."""
        def keyed(d):
            return {str(k): (v if math.isfinite(v) else None) for k, v in d.items()}

        return {"metric": self.metric, "shots": self.shots, "tasks": self.tasks, "steps": list(self.steps),
                "mean": keyed(self.model.mean), "ci95": keyed(self.model.ci95),
                "scratch": {"mean": keyed(self.scratch.mean), "ci95": keyed(self.scratch.ci95)},
                "diverged": {str(k): v for k, v in self.model.diverged.items()}}


def held_out_tasks(family: TaskFamily, n_tasks: int, shots: int, query: int, seed: int, device="cpu") -> TaskBatch:
    """Generated families draw fresh tasks; a data family (CSV) draws from its meta-test split."""
    generator = torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET)
    return family.sample_held_out(n_tasks, shots, query, generator).to(device)


def per_step_scores(algorithm: Algorithm, params: Params, rates: InnerRates, batch: TaskBatch,
                    steps: int, chunk: int | None = None, at: Sequence[int] | None = None) -> torch.Tensor:
    """``[steps + 1, T]``: each task's query MSE (or accuracy) after 0..steps adaptation steps; with
    ``at``, ``[len(at), T]``: only after those steps (the adaptation still runs every step, but the
    query set is scored only where asked).

    Tasks are adapted ``chunk`` at a time (default: as many as fit :data:`EVAL_MEMORY` by
    :func:`chunk_size`): each task adapts on its own, so the scores are those of one batch, and the
    memory (one step's adapted weights per task, one pass's activations) stays that of one chunk
    whatever the number of tasks (``evaluate --tasks 20000`` once asked for one 6 GB tensor)."""
    at = tuple(range(steps + 1)) if at is None else tuple(at)
    wanted = set(at)
    chunk = chunk or chunk_size(algorithm.net, params, batch)
    parts = []
    for start in range(0, max(batch.n_tasks, 1), chunk):
        part = slice(start, start + chunk)
        query_x, query_y = batch.query_x[part], batch.query_y[part]
        rows = {}
        for s, p in enumerate(algorithm.adapt_steps(params, rates, batch.support_x[part], batch.support_y[part], steps)):
            if s not in wanted:
                continue
            with torch.no_grad():
                out = algorithm.net.forward(p, query_x)
                rows[s] = (task_accuracy(out, query_y) if algorithm.kind == "classification"
                           else task_losses(out, query_y, "regression"))
        parts.append(torch.stack([rows[s] for s in at]))
    return torch.cat(parts, dim=1)


def chunk_size(net, params: Params, batch: TaskBatch, budget: int | None = None) -> int:
    """Held-out tasks to adapt at once within ``budget`` bytes (default :data:`EVAL_MEMORY`), from the engine's memory estimate:
    a support pass's activations kept for its backward, a query pass's, and four copies of the
    weights per task (current, gradient, next, the one being scored)."""
    per_point = net.activation_floats() if hasattr(net, "activation_floats") else 2 * sum(getattr(net, "sizes", [0, 256])[1:])
    points = batch.support_x.shape[1] + batch.query_x.shape[1]
    weights = sum(p.numel() for p in params.values())
    per_task = batch.support_x.element_size() * (per_point * points + 4 * weights)
    return int(max(1, min(MAX_CHUNK, (budget or EVAL_MEMORY) // max(1, per_task))))


def diverged_tasks(scores: torch.Tensor, metric: str = "mse") -> torch.Tensor:
    """``[steps + 1, T]`` bool: has the task diverged by this step? The one definition the CLI's
    ``evaluate`` and the window's adaptation plot share.

    A score diverged when it is NaN/inf or, for a loss, above ``DIVERGED_FACTOR`` times the
    task's loss before adapting (step 0; never taken below the batch's median step-0 loss, so a
    task that happens to start near zero is not flagged for an ordinary loss). Once diverged, a
    task counts as diverged at every later step. Accuracy is bounded: only NaN counts there.
    """
    values = scores.detach().double().cpu()
    bad = ~torch.isfinite(values)
    if metric != "accuracy" and values.shape[0]:
        start = values[0]
        finite = torch.isfinite(start)
        typical = float(start[finite].median()) if finite.any() else math.inf
        level = torch.where(finite, start.clamp(min=typical), torch.full_like(start, typical)).clamp(min=LOSS_FLOOR)
        bad |= values > DIVERGED_FACTOR * level
    return bad.int().cummax(0).values.bool() if bad.shape[0] else bad


def mean_and_ci(scores: torch.Tensor, metric: str = "mse") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[steps + 1, T]`` scores -> (mean, 95% CI half-width, diverged task count) per step; mean
    and CI are NaN at every step where a task diverged (:func:`diverged_tasks`), so plots leave a
    gap and say how many tasks blew up instead of drawing one task's 1e+20 as the mean."""
    values = scores.detach().double().cpu().numpy()
    diverged = diverged_tasks(scores, metric).sum(1).numpy().astype(int)
    n = values.shape[1]
    with np.errstate(invalid="ignore", over="ignore"):
        mean = values.mean(1)
        ci = 1.96 * values.std(1, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(mean)
    bad = ~(np.isfinite(mean) & np.isfinite(ci)) | (diverged > 0)
    mean[bad], ci[bad] = np.nan, np.nan
    return mean, ci, diverged


def summarise(scores: torch.Tensor, steps: tuple[int, ...], metric: str = "mse",
              rows: Sequence[int] | None = None) -> Summary:
    """The steps ``steps`` of :func:`mean_and_ci`; ``scores``' rows are the steps ``rows`` (default
    every step from 0). A task counts as diverged at a step once it diverged at a scored step up to it."""
    mean, half, diverged = mean_and_ci(scores, metric)
    row = {s: i for i, s in enumerate(range(scores.shape[0]) if rows is None else rows)}
    return Summary({s: float(mean[row[s]]) for s in steps}, {s: float(half[row[s]]) for s in steps},
                   {s: int(diverged[row[s]]) for s in steps})


def scratch_params(algorithm: Algorithm, seed: int, device) -> Params:
    """A freshly initialised network: the reference any meta-learned start has to beat."""
    return algorithm.net.init(torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET + 1), device)


def evaluate(algorithm: Algorithm, params: Params, rates: InnerRates, family: TaskFamily, *, tasks: int = 100,
             shots: int = 10, steps: tuple[int, ...] = (0, 1, 10), query: int = 100, seed: int = 0,
             device="cpu") -> EvalResult:
    steps = tuple(sorted(set(int(s) for s in steps)))
    batch = held_out_tasks(family, tasks, shots, query, seed, device)
    fixed = InnerRates("fixed", algorithm.spec.inner_lr, params, algorithm.adapt_names, 1)
    # the query set is scored only at the steps asked for; a loss also at step 0, the level that
    # tells a diverged task (diverged_tasks)
    rows = steps if family.metric == "accuracy" else tuple(sorted({0, *steps}))
    model = per_step_scores(algorithm, params, rates, batch, max(steps), at=rows)
    scratch = per_step_scores(algorithm, scratch_params(algorithm, seed, device), fixed, batch, max(steps), at=rows)
    return EvalResult(family.metric, shots, tasks, steps, summarise(model, steps, family.metric, rows),
                      summarise(scratch, steps, family.metric, rows))


@dataclass
class FunctionView:
    """One 1-D regression task drawn as in the MAML paper's Figure 2: the true curve, the K
    support points, and the prediction on a grid after each adaptation step."""

    grid: list[float]
    truth: list[float]
    support_x: list[float]
    support_y: list[float]
    predictions: list[list[float]] = field(default_factory=list)  # [step][grid point]


def function_view(algorithm: Algorithm, params: Params, rates: InnerRates, family: TaskFamily,
                  batch: TaskBatch, steps: int, points: int = 200, device="cpu",
                  x_range: tuple[float, float] | None = None) -> list[FunctionView]:
    """Predictions on a grid over ``x_range`` (default: the family's) for every task in ``batch``;
    the truth is NaN where a task has no known function (clicked points, rows of a file)."""
    low, high = x_range if x_range is not None else family.x_range
    t = batch.n_tasks
    grid = torch.linspace(low, high, points, device=device).reshape(1, points, 1).expand(t, points, 1)
    if batch.task_params and family.x_range is not None:
        truth = family.function({k: v.cpu() for k, v in batch.task_params.items()}, grid.cpu())
    else:
        truth = torch.full(grid.shape, math.nan)
    trajectory = algorithm.adapt(params, rates, batch.support_x, batch.support_y, steps)
    with torch.no_grad():
        preds = torch.stack([algorithm.net.forward(p, grid) for p in trajectory])  # [S+1, T, P, 1]
    views = []
    for i in range(t):
        views.append(FunctionView(grid[i, :, 0].tolist(), truth[i, :, 0].tolist(), batch.support_x[i, :, 0].tolist(),
                                  batch.support_y[i, :, 0].tolist(), preds[:, i, :, 0].tolist()))
    return views
