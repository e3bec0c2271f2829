"""Held-out scores of runs, and their pretrain baseline brought level, computed on job threads.

Scoring a run's weights takes about a second, so runs wait their turn (a sweep's seeds all end
at once) and each is scored with its latest weights. A finished run's baseline is trained to the
run's own number of updates in the background, so the comparison the plots show is fair.
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from core.config import ExperimentConfig
from core.loaded_model import LoadedModel
from core.tasks import build_family
from core.trainer import MetaTrainer

from .job_runner import JobRunner
from .runs import RunRecord


class RunScorer(QObject):
    scored = Signal(object, object)          # RunRecord, its new AdaptationSnapshot
    baseline_done = Signal(object, object)   # RunRecord, snapshot with the baseline level (None: cancelled)
    message = Signal(str, int)               # text for the status bar, milliseconds

    def __init__(self, parent: QObject, family_for: Callable[[ExperimentConfig], Any], tasks: Callable[[], int],
                 alive: Callable[[RunRecord], bool]):
        """``family_for`` gives the edited family a config uses (None: build it), ``tasks`` how many
        held-out tasks to score on, ``alive`` whether a run is still in the session."""
        super().__init__(parent)
        self._family_for, self._tasks, self._alive = family_for, tasks, alive
        self._waiting: dict[int, RunRecord] = {}
        self._scores = JobRunner(self, "maml-score")
        self._scores.busy_changed.connect(lambda busy: None if busy else self._next())
        self._scores.done.connect(self.scored)
        self._scores.failed.connect(lambda run, text: self.message.emit(f"Cannot score {run.name}: {text}", 10_000))
        self._baselines = JobRunner(self, "maml-baseline", reports_progress=True)
        self._baselines.done.connect(self.baseline_done)
        self._baselines.failed.connect(
            lambda run, text: self.message.emit(f"The pretrain baseline of {run.name} stopped: {text}", 10_000))

    def score(self, run: RunRecord) -> None:
        """Queue ``run`` for scoring (``scored`` follows)."""
        if not run.weights:
            return
        self._waiting[run.run_id] = run
        if not self._scores.is_busy():
            self._next()

    def _next(self) -> None:
        if not self._waiting or self._scores.is_busy():
            return
        run = self._waiting.pop(next(iter(self._waiting)))
        if not run.weights or not self._alive(run):
            self._next()
            return
        config, weights, family, tasks = run.config, run.weights, self._family_for(run.config), self._tasks()
        self._scores.submit(run, lambda: LoadedModel(config, weights, family).adaptation(tasks))

    def finish_baseline(self, run: RunRecord) -> bool:
        """Give the run's pretrain baseline as many updates as the run had, in the background.

        While training, the baseline only gets a small share of the time (so the run keeps its
        speed) and so far fewer updates: compared like that, pretraining looks worse than it is.
        Once the run ends, a pretrain network with the run's seed and task stream is trained to the
        run's iteration count and both are scored again on the same held-out tasks. True if started.
        """
        snapshot = run.adaptation
        target = run.weights_iteration
        if (not run.weights or snapshot is None or "pretrain" not in snapshot.series
                or snapshot.baseline_iterations >= target):
            return False
        config, weights, tasks = run.config, run.weights, self._tasks()
        edited = self._family_for(config)

        def train(report):
            family = edited or build_family(config.family)
            baseline = MetaTrainer(config.replace("algorithm", name="pretrain"), family)
            while baseline.iteration < target:
                baseline.step()
                if baseline.iteration % 100 == 0 and report(baseline.iteration / target):
                    return None   # cancelled: the run keeps the scores it has
            return LoadedModel(config, weights, family).adaptation(tasks, LoadedModel.of_trainer(baseline))

        self._baselines.submit(run, train)
        self.message.emit(f"Training the pretrain baseline of {run.name} to {target:,} updates, as many as the run "
                          "had (in the background)…", 8000)
        return True

    def cancel_baseline(self) -> None:
        """A new run needs the CPU more than a finished run's baseline."""
        self._baselines.cancel()

    def shutdown(self) -> None:
        self._baselines.shutdown()
        self._waiting.clear()   # nothing new starts once closing
        self._scores.shutdown()
