"""The controller that owns the training worker's thread, in the GUI thread: it starts the one
worker, passes the GUI's requests to it by direct call and relays its signals. An image run's
held-out snapshots are scored here, on a job thread of their own (one thread, one job at a time),
from the copies of the weights the worker sends: training never waits for them, and Stop or a
new run cancels the one in flight."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from core.config import ExperimentConfig
from core.trained.snapshots import ScoreRequest, SnapshotScorer

from maml_gui.jobs.job_runner import JobRunner
from maml_gui.jobs.threads import WorkerThread, start_worker
from maml_gui.jobs.training import TrainingWorker, WorkerOptions


_RELAYED = ("started", "progress", "adaptation", "preview", "weights", "state", "paused_changed", "notice",
            "activity", "finished", "failed")


class TrainingController(QObject):
    """Owns at most one (thread, worker) pair and relays the worker's signals in the GUI thread.

    The thread is started and registered by :mod:`maml_gui.jobs.threads`, so the window's
    :func:`~maml_gui.jobs.threads.shutdown_all` stops it along with every job.
    """

    started = Signal(object)
    progress = Signal(object)
    adaptation = Signal(object)
    preview = Signal(object)
    weights = Signal(object)
    state = Signal(object)
    paused_changed = Signal(bool)
    notice = Signal(str)
    activity = Signal(str)
    finished = Signal(object)
    failed = Signal(str)
    running_changed = Signal(bool)   # a training thread exists (running or paused)
    scoring = Signal(object)         # (iteration, fraction done) of a background snapshot; None once it ends

    def __init__(self, parent: QObject | None = None, options: WorkerOptions | None = None):
        super().__init__(parent)
        self.options = options or WorkerOptions()
        self._job: WorkerThread | None = None
        self._worker: TrainingWorker | None = None
        self._paused = False
        self._scorer: SnapshotScorer | None = None   # the training run's, built on its first snapshot
        self._scored_iteration = 0
        self._snapshots = JobRunner(self, "maml-snapshot", reports_progress=True)
        self._snapshots.done.connect(self._on_scored)
        self._snapshots.failed.connect(self._on_scoring_failed)
        self._snapshots.progress.connect(lambda f: self.scoring.emit((self._scored_iteration, f)))

    def is_active(self) -> bool:
        return self._job is not None

    def is_paused(self) -> bool:
        return self._job is not None and self._paused

    def start(self, config: ExperimentConfig, *, paused: bool = False, steps: int = 0, preview_index: int = 0,
              initial_weights: dict | None = None, initial_state: tuple[dict, dict] | None = None) -> None:
        """``initial_weights`` (``model.*`` / ``inner_lr.*``): start from them instead of a fresh
        initialisation; with ``initial_state`` (a saved run's training state) continue it exactly."""
        if self._job is not None:
            raise RuntimeError("a training run is already active; stop it first")
        worker = TrainingWorker(config, self.options, start_paused=paused, steps=steps, preview_index=preview_index,
                                initial_weights=initial_weights, initial_state=initial_state)
        for name in _RELAYED:   # queued into the GUI thread, where this controller lives
            getattr(worker, name).connect(getattr(self, name))
        worker.score_request.connect(self._on_score_request)
        self._worker, self._paused = worker, paused
        self._scorer = SnapshotScorer(config, self.options.eval_tasks)
        self._job = start_worker(worker, "maml-training", kind="training", ends=(worker.finished, worker.failed),
                                 stop=worker.stop, on_released=self._on_released, owner=self)
        self.running_changed.emit(True)

    # -- direct, thread-safe requests ----------------------------------------------------------
    def pause(self) -> None:
        if self._worker is not None:
            self._paused = True
            self._worker.pause()

    def resume(self) -> None:
        if self._worker is not None:
            self._paused = False
            self._worker.resume()

    def step(self) -> None:
        if self._worker is not None:
            self._paused = True
            self._worker.step_once()

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()
        self._cancel_scoring()

    def set_meta_lr(self, lr: float) -> None:
        if self._worker is not None:
            self._worker.set_meta_lr(lr)

    def set_iterations(self, total: int) -> None:
        if self._worker is not None:
            self._worker.set_iterations(total)

    def set_inspect_interval(self, seconds: float) -> None:
        if self._worker is not None:
            self._worker.set_inspect_interval(seconds)

    def request_preview(self, task_index: int) -> bool:
        """Ask the worker for another preview task; False when no run is active."""
        if self._worker is None:
            return False
        self._worker.request_preview(task_index)
        return True

    def request_goal(self, task) -> bool:
        """Meta-RL: ask the worker to adapt to ``task`` (placed by the user); False when no run is active."""
        if self._worker is None:
            return False
        self._worker.request_goal(task)
        return True

    def request_checkpoint(self) -> bool:
        """Ask the worker for its weights and state after the current meta-iteration; False when no run is active."""
        if self._worker is None:
            return False
        self._worker.request_checkpoint()
        return True

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Stop and wait for the thread (window closing, app quitting). True once it has ended."""
        self._cancel_scoring()
        job = self._job
        return (job is None or job.stop_and_wait(timeout_ms)) and self._snapshots.shutdown(timeout_ms)

    # -- an image run's snapshots, scored on a job thread ----------------------------------------
    def is_scoring(self) -> bool:
        return self._snapshots.is_busy()

    def _on_score_request(self, request: ScoreRequest) -> None:
        worker, scorer = self._worker, self._scorer
        if worker is None or scorer is None or self.sender() is not worker:
            return   # a run that has ended (its worker is told nothing: it is gone)
        self._scored_iteration = request.iteration
        self._snapshots.submit(worker, lambda report: scorer.score(request, report))

    def _on_scored(self, worker, scored) -> None:
        self.scoring.emit(None)
        if worker is not self._worker:
            return
        if scored is not None:
            self.adaptation.emit(scored.snapshot)
            self.preview.emit(scored.preview)
        worker.scoring_done(scored.seconds if scored is not None else 0.0)

    def _on_scoring_failed(self, worker, message: str) -> None:
        self.scoring.emit(None)
        if worker is self._worker:
            self.notice.emit(f"scoring the held-out tasks failed: {message}")
            worker.scoring_done(0.0)

    def _cancel_scoring(self) -> None:
        if self._snapshots.is_busy():
            self._snapshots.cancel()
            self.scoring.emit(None)

    def _on_released(self) -> None:
        """The thread has exited (:meth:`maml_gui.jobs.threads.WorkerThread._release` says why the
        last references are dropped only now)."""
        self._cancel_scoring()   # a finished run's final scores are the session's (RunScorer), not a snapshot's
        self._job = self._worker = self._scorer = None
        self._paused = False
        self.running_changed.emit(False)
