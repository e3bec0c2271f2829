"""Held-out snapshots of a training run scored from copies of its weights, off its training thread.

Scoring an image run's 50 held-out tasks (meta-learned, pretrain and scratch, 11 steps each) takes
seconds to half a minute on a CPU; done in the training thread, it held training up (0.2× its
headless speed in the window). The window instead hands detached copies of the weights to a
background job that scores them here, while training goes on. One :class:`SnapshotScorer` serves
one run: it builds its networks on first use (in the job's thread) and keeps the held-out batch and
the scratch scores, so later snapshots compare with earlier ones and cost only the trained series.
Its user runs at most one :meth:`SnapshotScorer.score` at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from core.config import ExperimentConfig
from core.trained.adapt import Weights
from core.trained.loaded_model import AdaptationSnapshot, LoadedModel, Preview


@dataclass(frozen=True)
class ScoreRequest:
    """Detached CPU copies of a run's weights (and its pretrain baseline's) at one iteration."""

    weights: Weights
    iteration: int
    baseline_weights: Weights | None = None
    baseline_iteration: int = 0
    preview_index: int = 0


@dataclass(frozen=True)
class ScoredSnapshot:
    snapshot: AdaptationSnapshot
    preview: Preview
    seconds: float      # wall time the scoring took


class SnapshotScorer:
    """Scores :class:`ScoreRequest` s of one run on ``tasks`` held-out tasks (as the worker's own
    :meth:`LoadedModel.adaptation` would) and draws its task view at the same weights."""

    def __init__(self, config: ExperimentConfig, tasks: int):
        self.config, self.tasks = config, tasks
        self._model: LoadedModel | None = None
        self._baseline: LoadedModel | None = None
        self._iterations = (0, 0)

    def score(self, request: ScoreRequest, report: Callable[[float], bool] | None = None) -> ScoredSnapshot | None:
        """None when ``report`` asked to stop (a Stop, a new run, the window closing)."""
        start = time.perf_counter()
        self._iterations = (request.iteration, request.baseline_iteration)
        if self._model is None:
            self._model = LoadedModel(self.config, iteration=lambda: self._iterations[0])
        self._model.load_weights(request.weights)
        baseline = None
        if request.baseline_weights is not None:
            if self._baseline is None:
                self._baseline = LoadedModel(self.config.replace("algorithm", name="pretrain"), family=self._model.family,
                                             iteration=lambda: self._iterations[1])
            baseline = self._baseline
            baseline.load_weights(request.baseline_weights)
        snapshot = self._model.adaptation(self.tasks, baseline, report)
        if snapshot is None or (report is not None and report(1.0)):
            return None
        preview = self._model.preview(request.preview_index)
        return ScoredSnapshot(snapshot, preview, time.perf_counter() - start)
