"""What the live views show about a trainer's current weights, computed as plain numpy data.

Qt-free on purpose: the training worker calls it on its own thread with its own trainers, and
the window calls it on the GUI thread (from a weights snapshot) when no run is active. Only
numpy arrays and floats leave this module, never tensors that belong to a trainer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from core.algorithms import InnerRates
from core.evaluation import FunctionView, function_view, held_out_tasks, per_step_scores, scratch_params
from core.tasks import FunctionFamily
from core.tasks.csv_family import CsvFamily
from core.trainer import MetaTrainer

from .csv_inspection import DataView, csv_view, eval_query

EVAL_TASKS = 50          # held-out tasks scored for the adaptation plot
PREVIEW_SEED_OFFSET = 7919  # preview tasks come from another stream than the scored batch
REGION_RESOLUTION = 90   # grid points per side for decision regions


def adaptation_steps(config) -> int:
    """How far the adaptation plot looks: at least 10 steps, and at least as far as training adapts."""
    return max(10, config.algorithm.inner_steps)


@dataclass(frozen=True)
class AdaptationSnapshot:
    """Mean score (and 95% CI half-width) on a fixed held-out batch after 0..M adaptation steps."""

    iteration: int
    metric: str                                        # "mse" | "accuracy"
    steps: np.ndarray                                  # [M + 1]
    series: dict[str, tuple[np.ndarray, np.ndarray]]   # name -> (mean [M + 1], ci95 [M + 1])
    baseline_iterations: int = 0


@dataclass(frozen=True)
class RegionsView:
    """A 2-D classification task: predicted class on a grid after adaptation, and the task's points."""

    grid_x: np.ndarray        # [W] x coordinates of the grid columns
    grid_y: np.ndarray        # [H] y coordinates of the grid rows
    labels: np.ndarray        # [H, W] predicted class
    points_x: np.ndarray      # support points
    points_y: np.ndarray
    point_labels: np.ndarray
    accuracy: float           # query accuracy after adaptation
    steps: int


@dataclass(frozen=True)
class Preview:
    """One held-out task as the function/regions view draws it."""

    iteration: int
    task_index: int
    view: FunctionView | RegionsView | DataView | None


def summarise(scores: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``[steps + 1, T]`` scores -> (mean, 95% CI half-width) per step; NaN where adaptation blew up
    (a huge inner learning rate sends the fine-tuned losses to inf), so plots leave a gap."""
    values = scores.detach().double().cpu().numpy()
    n = values.shape[1]
    with np.errstate(invalid="ignore", over="ignore"):
        mean = values.mean(1)
        ci = 1.96 * values.std(1, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(mean)
    bad = ~(np.isfinite(mean) & np.isfinite(ci))
    mean[bad], ci[bad] = np.nan, np.nan
    return mean, ci


class Inspector:
    """Scores a trainer on one fixed held-out batch and draws preview tasks for it.

    The batch is drawn once per run so successive snapshots are comparable; the scratch
    reference (a fresh initialisation fine-tuned with the fixed inner rate) never changes, so
    it is scored once.
    """

    def __init__(self, trainer: MetaTrainer, tasks: int = EVAL_TASKS):
        config = trainer.config
        self.trainer = trainer
        self.steps = adaptation_steps(config)
        self.metric = trainer.family.metric
        query = eval_query(trainer.family, config.train.shots, config.train.query)  # CSV tasks are small
        self.batch = held_out_tasks(trainer.family, tasks, config.train.shots, query,
                                    config.train.seed, trainer.device)
        self._scratch: tuple[np.ndarray, np.ndarray] | None = None

    def adaptation(self, baseline: MetaTrainer | None = None) -> AdaptationSnapshot:
        tr = self.trainer
        series = {"meta-learned": summarise(per_step_scores(tr.algorithm, tr.params, tr.rates, self.batch, self.steps))}
        if baseline is not None:
            series["pretrain"] = summarise(
                per_step_scores(baseline.algorithm, baseline.params, baseline.rates, self.batch, self.steps))
        series["scratch"] = self._scratch_scores()
        return AdaptationSnapshot(tr.iteration, self.metric, np.arange(self.steps + 1), series,
                                  baseline.iteration if baseline is not None else 0)

    def _scratch_scores(self) -> tuple[np.ndarray, np.ndarray]:
        if self._scratch is None:
            tr = self.trainer
            params = scratch_params(tr.algorithm, tr.config.train.seed, tr.device)
            fixed = InnerRates("fixed", tr.algorithm.spec.inner_lr, params, tr.algorithm.adapt_names, 1)
            self._scratch = summarise(per_step_scores(tr.algorithm, params, fixed, self.batch, self.steps))
        return self._scratch

    def preview(self, task_index: int) -> Preview:
        return Preview(self.trainer.iteration, task_index, preview_view(self.trainer, task_index, self.steps))


def preview_view(trainer: MetaTrainer, task_index: int, steps: int) -> FunctionView | RegionsView | DataView | None:
    """The function view for 1-D regression, decision regions for 2-D classification, a CSV task's rows
    with the adapted curve (or predicted vs true), else nothing."""
    family, config = trainer.family, trainer.config
    if isinstance(family, CsvFamily) and family.kind == "regression":
        return csv_view(trainer, task_index, steps, config.train.seed + PREVIEW_SEED_OFFSET)
    if not (isinstance(family, FunctionFamily) and family.input_dim == 1) and not (
            family.kind == "classification" and family.input_dim == 2):
        return None
    batch = held_out_tasks(family, 1, config.train.shots, eval_query(family, config.train.shots, config.train.query),
                           config.train.seed + PREVIEW_SEED_OFFSET + task_index, trainer.device)
    if family.kind == "classification":
        return decision_regions(trainer, batch, config.algorithm.inner_steps)
    return function_view(trainer.algorithm, trainer.params, trainer.rates, family, batch, steps, device=trainer.device)[0]


def decision_regions(trainer: MetaTrainer, batch, steps: int, resolution: int = REGION_RESOLUTION) -> RegionsView:
    """Adapt on the task's support set, then classify every point of a grid around its data."""
    algorithm = trainer.algorithm
    points = torch.cat([batch.support_x[0], batch.query_x[0]]).cpu()
    low, high = points.min(0).values - 1.0, points.max(0).values + 1.0
    gx = torch.linspace(float(low[0]), float(high[0]), resolution)
    gy = torch.linspace(float(low[1]), float(high[1]), resolution)
    yy, xx = torch.meshgrid(gy, gx, indexing="ij")                    # rows follow y, columns follow x
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1).unsqueeze(0).to(batch.support_x)
    adapted = algorithm.adapt(trainer.params, trainer.rates, batch.support_x, batch.support_y, steps)[-1]
    with torch.no_grad():
        labels = algorithm.net.forward(adapted, grid).argmax(-1).reshape(resolution, resolution)
        accuracy = (algorithm.net.forward(adapted, batch.query_x).argmax(-1) == batch.query_y).double().mean()
    sx = batch.support_x[0].cpu().numpy()
    return RegionsView(gx.numpy(), gy.numpy(), labels.cpu().numpy(), sx[:, 0].copy(), sx[:, 1].copy(),
                       batch.support_y[0].cpu().numpy(), float(accuracy), steps)


def preview_from_weights(config, weights: dict | None, task_index: int, iteration: int = 0) -> Preview:
    """A preview on the GUI thread when no run is active (a fresh initialisation if no weights)."""
    trainer = MetaTrainer(config.replace("train", device="cpu"))
    if weights:
        trainer.load_weights(weights)
    return Preview(iteration, task_index, preview_view(trainer, task_index, adaptation_steps(config)))
