"""Training from the session: start, continue, pause, step and stop the one run that trains, and
the controller's events that keep that run's record, its saves and its scores up to date.

:class:`TrainingControl` is a collaborator the session owns, like its saver and scorer: it reads
the session's runs, current run and preview task, calls its public actions (``set_current``,
``save_run``, ``score``, ``finish_baseline``), and reports through signals of its own that the
session passes on as its own.
"""

from __future__ import annotations

import copy

from PySide6.QtCore import QObject, QTimer, Signal

from core.config import ExperimentConfig
from core.training import resume as resume_rule
from maml_gui.jobs.training_controller import TrainingController
from maml_gui.session.run_saver import RunSaver
from maml_gui.session.run_scoring import RunScorer
from maml_gui.session.runs import RunRecord, rows_of


class TrainingControl(QObject):
    """The one run that trains (``active``) and the controller that trains it."""

    run_added = Signal(object)           # a new run that trains (it becomes current)
    run_changed = Signal(object)         # the training run's status changed
    current_changed = Signal(object)     # a continued run that is current: its views redraw
    history_grew = Signal(object)
    adaptation_changed = Signal(object)
    preview_changed = Signal(object)     # a task view of the training run while it is current
    training_changed = Signal()
    started = Signal(object)
    message = Signal(str, int)
    error = Signal(str)

    def __init__(self, session, controller: TrainingController, saver: RunSaver, scorer: RunScorer):
        super().__init__(session)
        self._session, self.controller, self._saver, self._scorer = session, controller, saver, scorer
        self.options = controller.options
        self.active: RunRecord | None = None      # the run the worker feeds
        self.stopping = False
        self._checkpoint_wanted = False
        self._checkpoint_timer = QTimer(self, singleShot=True)   # the training run's periodic save
        self._checkpoint_timer.timeout.connect(self._request_checkpoint)
        self._connect_controller()

    @property
    def current(self) -> RunRecord | None:
        return self._session.current

    def is_paused(self) -> bool:
        return self.controller.is_paused()

    def start(self, config: ExperimentConfig, *, paused: bool = False, steps: int = 0) -> RunRecord | None:
        """A new run (it becomes current). Started while an opened run is current, it continues
        that run: exactly (Adam state, task stream) when only the iteration count, meta learning
        rate or device changed, else from its weights with a fresh optimiser."""
        if self.controller.is_active():
            return None
        opened = self.current if self.current is not None and self.current.origin == "opened" else None
        initial, state = self.continuation(config)
        if state is not None and opened.weights_iteration >= config.train.iterations:
            self.message.emit(f"{opened.name} already ran {opened.weights_iteration:,} iterations: raise Iterations "
                              "to continue it", 10_000)
            return None
        self._scorer.cancel_baseline()
        run = self._session.runs.create(config)
        run.total = config.train.iterations
        if state is not None:   # the continued run carries the opened run's history on
            run.history = copy.deepcopy(opened.history)
        self.active, self.stopping = run, False
        self.run_added.emit(run)
        self._session.set_current(run.run_id)
        self._session.save_run(run)   # its folder (settings and any carried history) exists from the start
        self.controller.start(config, paused=paused, steps=steps, preview_index=self._session.preview_index,
                              initial_weights=initial, initial_state=state)
        self.message.emit(f"Continuing {opened.name} from iteration {opened.weights_iteration:,} as {run.name}"
                          if state is not None else f"Started {run.name}", 5000)
        self.training_changed.emit()
        return run

    def continuation(self, config: ExperimentConfig):
        """(weights, training state) that Start with ``config`` begins from: the current run's when
        it was opened from a file, as far as they fit ``config``; else (None, None)."""
        opened = self.current if self.current is not None and self.current.origin == "opened" else None
        if opened is None or not opened.weights:
            return None, None
        plan = resume_rule.continuation(config, opened.config, opened.weights, opened.training_state)   # as --resume
        if plan.weights is None:
            self.message.emit(f"The weights of {opened.name} do not fit these settings; "
                              "training starts from a fresh initialisation", 10_000)
        elif opened.training_state is None:
            self.message.emit(f"Training continues from the weights of {opened.name}", 8000)
        elif not plan.exact:
            self.message.emit(f"Training continues from the weights of {opened.name} with a fresh Adam state "
                              f"({', '.join(plan.changed)} changed)", 10_000)
        return plan.weights, plan.state

    def continue_problem(self, run: RunRecord | None) -> str | None:
        """Why ``run`` cannot carry on training in place (None: :meth:`continue_run` can)."""
        if run is None:
            return "no run is selected"
        if self.controller.is_active():
            return "a run is training"
        if run.origin != "trained" or run.status not in ("interrupted", "stopped"):
            return f"{run.name} is {run.status}, not stopped or interrupted"
        at = run.checkpoint_iteration
        if at is None:
            return f"{run.name} has no saved training state to continue from"
        if at >= run.config.train.iterations:
            return f"{run.name} already ran its {run.config.train.iterations:,} iterations"
        return None

    def continue_run(self, run: RunRecord | None = None) -> bool:
        """Carry a stopped or interrupted run on, in place and exactly: from its last saved
        weights and training state, with the metrics after that checkpoint dropped so none repeat."""
        run = run or self.current
        problem = self.continue_problem(run)
        if problem is not None:
            self.message.emit(f"Cannot continue: {problem}", 10_000)
            return False
        at = run.checkpoint_iteration
        run.history = run.history.truncated(at)
        run.weights_iteration, run.status, run.error = at, "starting", None
        run.total = run.config.train.iterations
        self._scorer.cancel_baseline()
        self.active, self.stopping = run, False
        if run is self.current:
            self.current_changed.emit(run)   # its plots redraw from the shortened history
        else:
            self._session.set_current(run.run_id)
        self.run_changed.emit(run)
        self.controller.start(run.config, preview_index=self._session.preview_index,
                              initial_weights=run.weights, initial_state=run.training_state)
        self.message.emit(f"Continuing {run.name} from iteration {at:,}", 5000)
        self.training_changed.emit()
        return True

    def interrupted_runs(self) -> list[RunRecord]:
        return [r for r in self._session.runs if r.status == "interrupted"]

    def toggle_pause(self) -> None:
        if self.controller.is_active() and not self.stopping:
            self.controller.resume() if self.controller.is_paused() else self.controller.pause()
            self.training_changed.emit()

    def pause(self) -> None:
        if self.controller.is_active() and not self.controller.is_paused() and not self.stopping:
            self.controller.pause()
            self.training_changed.emit()

    def resume(self) -> None:
        if self.controller.is_paused() and not self.stopping:
            self.controller.resume()
            self.training_changed.emit()

    def step(self, config: ExperimentConfig) -> None:
        """One meta-iteration, then paused (a new run when none is training)."""
        if self.controller.is_active():
            if not self.stopping:
                self.controller.step()
        else:
            self.start(config, paused=True, steps=1)
        self.training_changed.emit()

    def stop(self) -> None:
        if self.controller.is_active() and not self.stopping:
            self.stopping = True
            self.controller.stop()
            self.message.emit("Stopping after the current meta-iteration…", 0)
            self.training_changed.emit()

    def drop(self, run: RunRecord) -> None:
        """``run`` leaves the session: it stops if it trains, and its later events are ignored."""
        if run is self.active:
            self.stop()
            self.active = None

    def reset(self) -> None:
        """Stop any run and clear the views; every run stays in the session."""
        self.stop()
        self._session.set_current(None)

    def apply_live(self, config: ExperimentConfig) -> bool:
        """Apply a change of meta learning rate or iteration count to the training run; False when
        ``config`` changes anything else (that needs a new run)."""
        run = self.active
        if run is None or not self.controller.is_active():
            return True
        if config.live_changes(run.config):
            return False
        if config.train.iterations != run.config.train.iterations:
            self.controller.set_iterations(config.train.iterations)
            run.total = config.train.iterations
        if config.train.meta_lr != run.config.train.meta_lr:
            self.controller.set_meta_lr(config.train.meta_lr)
            self.message.emit(f"Meta learning rate of {run.name} is now {config.train.meta_lr:g}", 5000)
        run.config = run.config.replace("train", iterations=config.train.iterations, meta_lr=config.train.meta_lr)
        return True

    def _connect_controller(self) -> None:
        c = self.controller
        c.started.connect(self._on_started)
        c.progress.connect(self._on_progress)
        c.adaptation.connect(self._on_adaptation)
        c.preview.connect(self._on_preview)
        c.weights.connect(self._on_weights)
        c.state.connect(self._on_state)
        c.paused_changed.connect(self._on_paused_changed)
        c.notice.connect(lambda text: self.message.emit(text, 60_000))   # until replaced: a cold compile takes ~30 s
        c.activity.connect(lambda text: self.message.emit(text, 0 if text else 1))   # until done ("": clear)
        c.finished.connect(self._on_finished)
        c.failed.connect(self._on_failed)
        c.running_changed.connect(self._on_running_changed)
        c.scoring.connect(self._on_scoring)

    def _on_started(self, info) -> None:
        if self.active is not None:
            self.active.device = info.device
            self.active.status = "paused" if self.controller.is_paused() else "running"
            self.run_changed.emit(self.active)
        self.started.emit(info)

    def _on_progress(self, chunk) -> None:
        run = self.active
        if run is None:
            return
        rows = rows_of(chunk.iterations, chunk.meta_losses, chunk.grad_norms, chunk.seconds, chunk.step_losses,
                       chunk.wall_times)
        run.history.extend(rows)
        self._saver.add_rows(run.run_id, rows)   # metrics.csv: every row, the history may thin them
        run.rate, run.total = chunk.rate, chunk.total
        self.history_grew.emit(run)

    def _on_adaptation(self, snapshot) -> None:
        if self.active is not None:
            self.active.adaptation = snapshot
            self.adaptation_changed.emit(self.active)

    def _on_scoring(self, progress) -> None:
        """An image run's snapshot being scored in the background: its line beside the other jobs'."""
        run = self.active
        if progress is None or run is None:
            self._scorer.show_line("snapshot", "")
            return
        iteration, fraction = progress
        self._scorer.show_line("snapshot", f"{run.name}: scoring {self.options.eval_tasks:,} held-out tasks at "
                                           f"iteration {iteration:,} (in the background)… {fraction:.0%}")

    def _on_preview(self, preview) -> None:
        if self.active is not None and self.active is self.current:
            self.preview_changed.emit(preview)

    def _on_weights(self, weights) -> None:
        run = self.active
        if run is not None:
            run.weights = weights
            run.weights_iteration = run.iteration
            run.training_state = None   # until the matching state arrives (it follows at once)

    def _on_state(self, state) -> None:
        """The first state of a run is saved at once, later ones when the periodic save asked for them."""
        run = self.active
        if run is not None and int(state[1]["iteration"]) == run.weights_iteration:
            run.training_state = state
            if self._checkpoint_wanted or self._saver.saved_at(run.run_id) is None:
                self._checkpoint_wanted = False
                self._session.save_run(run)

    def _request_checkpoint(self) -> None:
        """Every ``save_interval`` s while a run trains: its weights and state after the current
        meta-iteration are sent and saved (:meth:`_on_state`), so a crash loses at most that much."""
        run = self.active
        if run is None or not self.controller.is_active():
            return
        self._checkpoint_timer.start(int(1000 * self._saver.interval(self.options.save_interval)))
        trained = run.iteration > (self._saver.saved_at(run.run_id) or 0)
        if trained and not self.controller.is_paused() and not self.stopping:
            self._checkpoint_wanted = self.controller.request_checkpoint()

    def _on_paused_changed(self, paused: bool) -> None:
        run = self.active
        if run is not None:
            run.status = "paused" if paused else "running"
            self.run_changed.emit(run)
            if paused and run.weights:
                self._session.save_run(run)
        self.training_changed.emit()

    def _on_finished(self, end) -> None:
        run = self.active
        if run is not None:
            run.status = end.reason
            self.message.emit(f"{run.name}: {end.reason} at iteration {end.iteration:,}", 10_000)

    def _on_failed(self, text: str) -> None:
        run = self.active
        if run is None:
            self.error.emit(f"Training stopped: {text}")
            return
        run.status, run.error = "failed", text
        kept = (f" The weights from iteration {run.weights_iteration:,} are kept."
                if run.weights and "weights" not in text else "")
        self.error.emit(f"{run.name}: {text}{kept}")

    def _on_running_changed(self, active: bool) -> None:
        if active:
            self._checkpoint_wanted = False
            self._checkpoint_timer.start(int(1000 * self._saver.interval(self.options.save_interval)))
        else:
            self._checkpoint_timer.stop()
            run, self.active, self.stopping = self.active, None, False
            if run is not None:
                run.rate = 0.0
                if run.status in ("starting", "running", "paused"):
                    run.status = "stopped"
                self.run_changed.emit(run)
                if run.weights or len(run.history):
                    self._session.save_run(run)
                if run.status != "failed" and not self._session.finish_baseline(run):
                    self._session.score(run)   # its final scores, in the background: Stop does not wait for them
        self.training_changed.emit()
