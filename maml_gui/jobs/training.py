"""Training off the GUI thread: the worker that steps the engine (its controller: ``training_controller``).

The worker is a plain ``QObject`` moved to a ``QThread``; it builds its trainers inside the thread, so
no module, optimiser or graph-holding tensor is touched by two threads. The GUI calls it only through
thread-safe methods (a queued signal would never arrive while the loop runs); it answers with plain
data: numpy arrays, floats, frozen dataclasses and detached CPU weight copies.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass, replace

import numpy as np
import torch
from PySide6.QtCore import QObject, QThread, Signal, Slot

from core.config import ExperimentConfig
from core.device import BACKGROUND_THREADS, use_threads
from core.errors import MamlError, TrainingDiverged
from core.rl.kinds import inspector_of, trainer_for as make_trainer
from core.trained.loaded_model import LoadedModel
from core.trained.snapshots import ScoreRequest
from core.training.trainer import MetaTrainer, StepMetrics

from maml_gui.jobs.threads import live_threads as _registered_threads


def reserve_gui_core() -> int:
    """Leave one CPU core to the GUI thread: cap torch's intra-op threads at ``cores - 1``.

    On small machines torch's default (one thread per core) makes its worker threads fight
    the GUI thread, and each meta-iteration's many small ops then wait on one another: on a
    2-core machine with other work running, a default-size MAML step got more than 10x slower. Returns the thread count now used.
    """
    global _TRAINING_THREADS
    cores = os.cpu_count() or 1
    threads = max(1, min(torch.get_num_threads(), cores - 1))
    torch.set_num_threads(threads)
    _TRAINING_THREADS = max(1, threads - BACKGROUND_JOBS * BACKGROUND_THREADS)
    return threads


BACKGROUND_JOBS = 2          # held-out scoring and a finished run's pretrain baseline may run beside training
_TRAINING_THREADS = max(1, (os.cpu_count() or 1) - 1 - BACKGROUND_JOBS * BACKGROUND_THREADS)


def training_threads() -> int:
    """Intra-op threads of a training thread: the cores left to torch once the GUI thread and the
    background jobs (one thread each) have theirs, so that all of them together never ask for more
    threads than cores (on 2 cores every job runs on one thread)."""
    return _TRAINING_THREADS


MAX_INSPECT_INTERVAL = 120.0   # s: the plots of a run whose scoring is slow still move every two minutes


def inspect_interval(base: float, cost: float, share: float) -> float:
    """Seconds between snapshots: ``base``, stretched while a snapshot costs more than ``share`` of
    the time, up to :data:`MAX_INSPECT_INTERVAL`. Scoring an image run's held-out tasks takes
    seconds; stretched only 3× (as before), it took most of the time and the run trained at 0.13×
    its headless speed (glyphs, conv-4, first order, meta-batch 8, 2-core CPU)."""
    return min(max(base, cost / max(share, 1e-6)), max(base, MAX_INSPECT_INTERVAL))


def live_threads() -> list[QThread]:
    """Training threads still running (:func:`maml_gui.jobs.threads.live_threads` of kind "training")."""
    return _registered_threads("training")


@dataclass(frozen=True)
class WorkerOptions:
    """How the worker shares its time between training, the baseline and the live views.

    ``baseline_share``: the pretrain baseline (a second trainer, algorithm "pretrain") takes a
    step whenever it has used less than this fraction of the time spent on meta-steps.
    """

    emit_interval: float = 0.05     # s between progress emissions (at most ~20 per second)
    inspect_interval: float = 2.0   # s between adaptation / preview / weights snapshots
    inspect_share: float = 0.03     # ... stretched so they take at most this share of the time
    eval_tasks: int = 50
    baseline: bool = True
    baseline_share: float = 0.03
    save_interval: float = 15.0     # s between writes of the training run's folder (a crash loses at most this)
    background_share: float = 0.5   # an image run's snapshots, scored on a job thread, keep it busy at most this share


def scores_in_background(config: ExperimentConfig, family) -> bool:
    """Whether a run's held-out snapshots are scored on a job thread, from copies of its weights: an
    image run's take seconds and held its training to 0.2× its headless speed; a small network's take
    milliseconds and stay in the training thread, at the iteration they show."""
    return not config.is_rl and getattr(family, "input_shape", None) is not None


@dataclass(frozen=True)
class RunStarted:
    device: str
    total: int
    baseline: bool
    gradient_path: str = ""


@dataclass(frozen=True)
class ProgressChunk:
    """Metrics of consecutive meta-iterations since the previous chunk."""

    iterations: np.ndarray           # int64 [n]
    meta_losses: np.ndarray          # [n]
    step_losses: np.ndarray          # [n, inner_steps + 1]
    step_accuracy: np.ndarray | None
    grad_norms: np.ndarray           # [n]
    seconds: np.ndarray              # [n] compute time of each meta-iteration
    wall_times: np.ndarray           # [n] when each ended, seconds since the epoch (metrics.csv's wall_time)
    stamp: float                     # time.perf_counter() when the chunk left the worker
    rate: float                      # recent meta-iterations per second (0 while paused)
    total: int                       # target iteration count

    @property
    def last_iteration(self) -> int:
        return int(self.iterations[-1])


@dataclass(frozen=True)
class RunEnd:
    reason: str       # "completed" | "stopped"
    iteration: int


SCORING_QUIET = 1.0   # s of held-out scoring before the status bar says that it runs


def row_values(row) -> tuple[float, tuple[float, ...]]:
    """(the meta-objective, its value per inner step) of a step's metrics: a meta-RL run's meta-return and
    return per step sit where a supervised run's meta-loss and loss per step do (as in ``metrics.csv``)."""
    if hasattr(row, "step_returns"):
        return row.meta_return, row.step_returns
    return row.meta_loss, row.step_losses


class TrainingWorker(QObject):
    """Steps a :class:`MetaTrainer` until done or stopped; every unit of work ends in a signal."""

    started = Signal(object)         # RunStarted
    progress = Signal(object)        # ProgressChunk
    adaptation = Signal(object)      # inspection.AdaptationSnapshot
    preview = Signal(object)         # inspection.Preview
    weights = Signal(object)         # dict[str, Tensor], detached CPU copies
    state = Signal(object)           # MetaTrainer.training_state() of the same iteration, right after weights
    paused_changed = Signal(bool)    # the loop really is (not) waiting
    notice = Signal(str)             # a non-fatal problem (the baseline diverged ...)
    score_request = Signal(object)   # ScoreRequest: an image run's snapshot to score off this thread (scoring_done follows)
    activity = Signal(str)           # what runs besides meta-steps, with progress ("" once it is done)
    finished = Signal(object)        # RunEnd
    failed = Signal(str)             # a readable message; the last good weights were emitted first

    def __init__(self, config: ExperimentConfig, options: WorkerOptions | None = None, *,
                 start_paused: bool = False, steps: int = 0, preview_index: int = 0,
                 initial_weights: dict | None = None, initial_state: tuple[dict, dict] | None = None):
        super().__init__()
        self._config = config
        self._initial_weights = initial_weights   # detached CPU tensors, copied in by the thread
        self._initial_state = initial_state       # Adam moments, sampler state, iteration: resume exactly
        self._options = options or WorkerOptions()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._wake = threading.Event()
        if start_paused:
            self._paused.set()
        self._pending_steps = steps
        self._pending_lr: float | None = None
        self._total = config.train.iterations
        self._inspect_interval = self._options.inspect_interval
        self._preview_request: int | None = None
        self._goal_request: tuple[float, ...] | None = None
        self._goal: tuple[float, ...] | None = None   # a task the user placed: previews adapt to it until "New task"
        self._checkpoint_request = False
        self._first = False   # the first meta-iteration is announced until it is done
        self._preview_index = preview_index
        self._buffer: list[StepMetrics] = []
        self._trainer: MetaTrainer | None = None
        self._inspector: LoadedModel | None = None   # the trainer's live weights, scored and previewed
        self._baseline: MetaTrainer | None = None
        self._meta_time = self._baseline_time = self._inspect_cost = 0.0
        self._last_emit = self._rate_time = self._last_inspect = time.perf_counter()
        self._rate_iteration, self._rate = 0, 0.0
        self._background = False        # snapshots scored on a job thread (scores_in_background)
        self._scoring = False           # ... one of them is being scored now
        self._score_wanted = False      # ... and another is due once it is done (coalesced: the latest weights)

    # -- called from the GUI thread (thread-safe) --------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def pause(self) -> None:
        self._paused.set()
        self._wake.set()

    def resume(self) -> None:
        self._paused.clear()
        self._wake.set()

    def step_once(self) -> None:
        """Pause (if running) and do exactly one more meta-iteration."""
        with self._lock:
            self._pending_steps += 1
        self._paused.set()
        self._wake.set()

    def set_meta_lr(self, lr: float) -> None:
        with self._lock:
            self._pending_lr = float(lr)
        self._wake.set()

    def set_iterations(self, total: int) -> None:
        with self._lock:
            self._total = int(total)
        self._wake.set()

    def set_inspect_interval(self, seconds: float) -> None:
        """How often to refresh the adaptation scores, task view and weights snapshot."""
        with self._lock:
            self._inspect_interval = float(seconds)

    def request_preview(self, task_index: int) -> None:
        with self._lock:
            self._preview_request = int(task_index)
            self._goal_request = None
        self._wake.set()

    def request_goal(self, task: tuple[float, ...]) -> None:
        """Meta-RL: adapt to this task (a goal the user placed) now and in every later preview."""
        with self._lock:
            self._goal_request = tuple(float(v) for v in task)
        self._wake.set()

    def request_checkpoint(self) -> None:
        """Send the weights and training state after the current meta-iteration (to be saved)."""
        with self._lock:
            self._checkpoint_request = True
        self._wake.set()

    def scoring_done(self, seconds: float) -> None:
        """A background snapshot (``score_request``) ended after ``seconds``: the next may follow."""
        with self._lock:
            self._scoring = False
            self._inspect_cost = float(seconds)
            self._last_inspect = time.perf_counter()
        self._wake.set()

    # -- the thread's work -------------------------------------------------------------------
    @Slot()
    def run(self) -> None:
        try:
            reason = self._run()
        except TrainingDiverged as exc:
            self._fail(str(exc))
        except (torch.OutOfMemoryError, MemoryError):
            self._fail("out of memory: try a smaller meta-batch, smaller hidden layers or fewer inner steps. "
                       "The weights from the last completed iteration were kept.")
        except MamlError as exc:
            self._fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - every failure must reach the window, never kill the thread silently
            traceback.print_exc()
            self._fail(f"training stopped by an unexpected error: {type(exc).__name__}: {exc}")
        else:
            self.finished.emit(RunEnd(reason, self._trainer.iteration))
        finally:
            self._trainer = self._inspector = self._baseline = None

    def _fail(self, message: str) -> None:
        try:
            self._flush(0.0)
            if self._inspector is not None and not self._background:   # the views show the weights that are kept
                self._inspect(self._inspector, self._baseline)
            else:
                self._emit_weights()
        except Exception:  # noqa: BLE001 - the failure message matters more than a last snapshot
            traceback.print_exc()
        self.failed.emit(message)

    def _run(self) -> str:
        opts = self._options
        use_threads(training_threads())   # this thread's own count (see core.device.use_threads)
        self.activity.emit("Building the task family…")
        trainer = self._trainer = make_trainer(self._config)
        if self._initial_weights:   # continue from opened weights (shapes checked by the window)
            trainer.load_weights(self._initial_weights)
            if self._initial_state is not None:
                try:
                    trainer.load_training_state(*self._initial_state)
                except (KeyError, ValueError, RuntimeError) as exc:   # a state file that does not fit
                    trainer = self._trainer = make_trainer(self._config)
                    trainer.load_weights(self._initial_weights)
                    self.notice.emit(f"the saved training state does not fit this run ({exc}); Adam restarts")
            self._initial_weights = self._initial_state = None
        note = trainer.compile_step(announce=self.notice.emit)   # in this thread: the window stays live
        if note:
            self.notice.emit(note)
        baseline = None
        if opts.baseline and self._config.algorithm.name != "pretrain":
            baseline = make_trainer(self._config.replace("algorithm", name="pretrain"))
        self.started.emit(RunStarted(str(trainer.device), self._total, baseline is not None, trainer.gradient_path))
        inspector = self._inspector = inspector_of(trainer)
        self._baseline = baseline
        self._background = scores_in_background(self._config, trainer.family)
        # no held-out scoring before the first meta-step: the first inspection follows after inspect_interval
        self._emit_weights()
        self.activity.emit("Drawing a held-out task for the task view…")
        self.preview.emit(inspector.preview(self._preview_index))
        self._first = not self._paused.is_set()
        self.activity.emit("Running the first meta-iteration…" if self._first else "")
        self._last_emit = self._rate_time = self._last_inspect = time.perf_counter()
        announced_pause = False
        while not self._stop.is_set():
            self._apply_requests(trainer, inspector)
            self._send_score_request(trainer, baseline)
            if trainer.iteration >= self._total:
                self._emit_weights()   # the window scores them in the background (Stop never waits for that)
                return "completed"
            single = False
            if self._paused.is_set():
                self._wake.clear()  # cleared before the checks: a request made after this wakes the wait
                single = self._take_single_step()
                if not single:
                    if self._stop.is_set() or not self._paused.is_set() or self._has_requests():
                        continue
                    if not announced_pause:
                        announced_pause = True
                        self._flush(0.0)
                        self._inspect(inspector, baseline)
                        self.paused_changed.emit(True)
                    self._wake.wait(0.5)
                    continue
            elif announced_pause:
                announced_pause = False
                self._rate_time, self._rate_iteration = time.perf_counter(), trainer.iteration
                self.paused_changed.emit(False)
            self._train_once(trainer, baseline)
            if single:
                self._flush(0.0)
                self._inspect(inspector, baseline)
            else:
                self._flush(opts.emit_interval)
                if self._inspect_due():
                    self._inspect(inspector, baseline)
        self._emit_weights()
        return "stopped"

    def _train_once(self, trainer: MetaTrainer, baseline: MetaTrainer | None) -> None:
        start = time.perf_counter()
        self._buffer.append(trainer.step())
        mid = time.perf_counter()
        first, self._first = self._first, False
        if first:   # a conv net's first meta-iteration can take many seconds: the status bar said so
            self._flush(0.0)
        self._meta_time += mid - start
        if baseline is not None and self._baseline_time < self._options.baseline_share * self._meta_time:
            if first:
                self.activity.emit("The pretrain baseline's first update…")
            try:
                baseline.step()
            except TrainingDiverged as exc:
                self.notice.emit(f"the pretrain baseline stopped: {exc}")
                self._options = replace(self._options, baseline=False)
            self._baseline_time += time.perf_counter() - mid
        if first:
            self.activity.emit("")

    def _take_single_step(self) -> bool:
        with self._lock:
            if self._pending_steps > 0:
                self._pending_steps -= 1
                return True
        return False

    def _has_requests(self) -> bool:
        with self._lock:
            return self._pending_lr is not None or self._preview_request is not None or self._checkpoint_request \
                or self._goal_request is not None

    def _apply_requests(self, trainer: MetaTrainer, inspector: LoadedModel) -> None:
        with self._lock:
            lr, self._pending_lr = self._pending_lr, None
            preview, self._preview_request = self._preview_request, None
            goal, self._goal_request = self._goal_request, None
            checkpoint, self._checkpoint_request = self._checkpoint_request, False
        if checkpoint:
            self._emit_weights()
        if lr is not None:
            trainer.set_meta_lr(lr)
        if preview is not None:
            self._preview_index, self._goal = preview, None
            self.preview.emit(inspector.preview(preview))
        if goal is not None:
            self._goal = goal
            self.preview.emit(self._preview_of(inspector))

    def _preview_of(self, inspector) -> object:
        """The task view's data: the placed task adapted to, else held-out task ``preview_index``."""
        if self._goal is not None:
            return inspector.adapt_to(self._goal, placed=True)
        return inspector.preview(self._preview_index)

    def _inspect_due(self) -> bool:
        with self._lock:
            if self._background and (self._scoring or self._score_wanted):
                return False
            share = self._options.background_share if self._background else self._options.inspect_share
            return time.perf_counter() - self._last_inspect >= inspect_interval(
                self._inspect_interval, self._inspect_cost, share)

    def _send_score_request(self, trainer: MetaTrainer, baseline: MetaTrainer | None) -> None:
        """An image run's due snapshot: copies of the weights (and the baseline's) go to the window's
        job thread once the previous one is done; training goes on while they are scored."""
        with self._lock:
            if not self._score_wanted or self._scoring:
                return
            self._score_wanted, self._scoring = False, True
        weights, baseline = self._emit_weights(), baseline if self._options.baseline else None
        if weights is None:   # not finite: nothing worth scoring
            self.scoring_done(0.0)
            return
        self.score_request.emit(ScoreRequest(weights, trainer.iteration, baseline and baseline.weights(),
                                             baseline.iteration if baseline else 0, self._preview_index))

    def _inspect(self, inspector: LoadedModel, baseline: MetaTrainer | None) -> None:
        """Adaptation scores, the preview task and a weights snapshot, all at the current iteration.
        A Stop cancels the scoring between parts (:meth:`LoadedModel.adaptation`'s ``report``). An
        image run's are scored on a job thread instead (:meth:`_send_score_request`)."""
        if self._background:
            with self._lock:
                self._score_wanted = True
            self._send_score_request(self._trainer, baseline)
            return
        start = time.perf_counter()
        if not self._options.baseline:
            baseline = None
        reference = inspector_of(baseline) if baseline is not None else None
        tasks, shown = self._options.eval_tasks, []

        def report(fraction: float) -> bool:
            now = time.perf_counter()
            if now - start > SCORING_QUIET and (not shown or now - shown[-1] >= 0.5):   # only slow scoring is announced
                shown.append(now)
                self.activity.emit(f"Scoring the run on {tasks:,} held-out tasks… {fraction:.0%}")
            return self._stop.is_set()

        snapshot = inspector.adaptation(tasks, reference, report)
        if shown:
            self.activity.emit("")
        if snapshot is not None:
            self.adaptation.emit(snapshot)
            self.preview.emit(self._preview_of(inspector))
        self._emit_weights()
        self._last_inspect = time.perf_counter()
        self._inspect_cost = self._last_inspect - start

    def _emit_weights(self) -> dict | None:
        """Weights and training state (the weights are returned; None when not finite); the metrics
        rows up to them go first, so a save of the state never lacks the rows it resumes after."""
        self._flush(0.0)
        if self._trainer is not None:
            weights = self._trainer.weights()
            if all(bool(torch.isfinite(t).all()) for t in weights.values()):
                self.weights.emit(weights)
                self.state.emit(self._trainer.training_state())
                return weights
        return None

    def _flush(self, min_interval: float) -> None:
        now = time.perf_counter()
        if not self._buffer or now - self._last_emit < min_interval:
            return
        rows, self._buffer = self._buffer, []
        iteration = rows[-1].iteration
        if now > self._rate_time and not self._paused.is_set():
            recent = (iteration - self._rate_iteration) / (now - self._rate_time)
            self._rate = recent if self._rate == 0 else 0.7 * self._rate + 0.3 * recent
        elif self._paused.is_set():
            self._rate = 0.0
        self._rate_time, self._rate_iteration, self._last_emit = now, iteration, now
        accuracy = getattr(rows[0], "step_accuracy", None) is not None
        values = [row_values(r) for r in rows]
        self.progress.emit(ProgressChunk(
            np.fromiter((r.iteration for r in rows), np.int64, len(rows)),
            np.fromiter((main for main, _ in values), np.float64, len(rows)),
            np.array([steps for _, steps in values], np.float64),
            np.array([r.step_accuracy for r in rows], np.float64) if accuracy else None,
            np.fromiter((r.grad_norm for r in rows), np.float64, len(rows)),
            np.fromiter((r.seconds for r in rows), np.float64, len(rows)),
            np.fromiter((r.wall_time for r in rows), np.float64, len(rows)),
            now, self._rate, self._total))


