"""The session: the runs the user has, the one they are looking at, what they compare, what they edit.

Plain Python with Qt signals and no widgets: views render it and call its actions, tests drive
it without a window. It owns the training controller (one run trains at a time), the project
folder every run is written to as it trains (so closing never loses a run), and the jobs that
score and save runs off the GUI thread.

The *current* run is the one every view and every run action (export, adapt, continue) is
about: a new or opened run becomes current, selecting a run makes it current, and a change of
task family that the current run was not trained on clears it, so no view keeps old numbers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from core.storage.checkpoint import CONFIG_FILE, check_shapes, read_training_state, save_run
from core.storage.metrics import read_metrics
from core.config import ExperimentConfig
from core.errors import MamlError
from core.trained.export import config_sidecar, export_weights
from core.trained.loaded_model import preview_from_weights
from core.tasks import build_family
from core.trained.weights_io import PT_SUFFIXES, check_names
from core.trained.weights_io import open_weights as read_weights_file

from maml_gui.session.following import Follower, is_run_folder, is_sweep_folder, sweep_runs
from maml_gui.session.project import Project
from maml_gui.session.run_saver import RunSaver
from maml_gui.session.run_scoring import RunScorer
from maml_gui.session.runs import RunRecord, RunRegistry
from maml_gui.jobs.training import TrainingController, WorkerOptions

INDEX_DELAY_MS = 500      # edits are written to project.json at most this often


@dataclass(frozen=True)
class WeightsSource:
    """Weights to adapt or export and where they come from (``label`` names the run and iteration)."""

    config: ExperimentConfig
    weights: dict
    family: Any
    label: str


def same_family(a: ExperimentConfig, b: ExperimentConfig) -> bool:
    """The same tasks: family and its parameters, unstated ones at their defaults."""
    return not any(name.startswith("family.") for name in a.changes(b))


def _note(run: RunRecord) -> dict:
    return {"note": run.note} if run.note else {}


class Session(QObject):
    project_changed = Signal(object)     # Project: every run was replaced
    run_added = Signal(object)           # RunRecord
    run_removed = Signal(object)         # run id
    run_changed = Signal(object)         # RunRecord: its name, status, iteration or loss changed
    current_changed = Signal(object)     # RunRecord | None
    compared_changed = Signal(list)      # run ids, in run order
    history_grew = Signal(object)        # RunRecord whose history has new rows
    adaptation_changed = Signal(object)  # RunRecord whose held-out scores changed
    preview_changed = Signal(object)     # a Preview of the current run (or of a fresh network)
    family_changed = Signal()            # the task family or data being edited changed
    editing_changed = Signal()           # any setting being edited changed (a fresh network's task view)
    training_changed = Signal()          # a run started, paused, resumed, is stopping or ended
    started = Signal(object)             # training.RunStarted of the active run
    message = Signal(str, int)           # text for the status bar, milliseconds
    error = Signal(str)                  # a readable problem; nothing was changed

    def __init__(self, project: str | Path, options: WorkerOptions | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.controller = TrainingController(self, options)
        self.options = self.controller.options
        self.runs = RunRegistry()
        self.project = Project(project)
        self.current: RunRecord | None = None
        self.compared: list[int] = []
        self.active: RunRecord | None = None      # the run the worker feeds
        self.stopping = False
        self.editing = ExperimentConfig()
        self.editing_family = None                # the editor's family object (a CSV family holds its data)
        self.preview_index = 0
        self.save_problem: str | None = None      # the last write that failed, until one succeeds
        self._loaded = False                      # nothing is written before the project was read
        self._saver = RunSaver(self, lambda: self.project)
        self._saver.failed.connect(self._save_failed)
        self._saver.written.connect(self._save_ok)
        self._checkpoint_wanted = False
        self._checkpoint_timer = QTimer(self, singleShot=True)   # the training run's periodic save
        self._checkpoint_timer.timeout.connect(self._request_checkpoint)
        self._scorer = RunScorer(self, self._edited_family, lambda: self.options.eval_tasks,
                                 lambda run: self.runs.get(run.run_id) is run)
        self._scorer.scored.connect(self._on_scored)
        self._scorer.baseline_done.connect(self._on_baseline_done)
        self._scorer.message.connect(self.message)
        self.follower = Follower(self)            # runs other processes write
        self.follower.sweep_grew.connect(self._on_sweep_grew)
        self._index_timer = QTimer(self, singleShot=True, interval=INDEX_DELAY_MS)
        self._index_timer.timeout.connect(self.write_index)
        self._connect_controller()

    # -- the project -------------------------------------------------------------------------
    def load_project(self, folder: str | Path | None = None) -> list[str]:
        """Replace the session by the project in ``folder`` (created if new); returns the runs that
        could not be read, one line each. The caller stops training first."""
        if self.controller.is_active():
            raise MamlError("stop the training run before opening another project")
        if self._loaded:
            self.flush()
        self.follower.forget_all()
        same = folder is None or Path(folder).resolve() == self.project.folder.resolve()
        project = self.project if same else Project(folder)
        loaded = project.load()   # raises RunLocked (nothing changed) when another window has it open
        if project is not self.project:
            self.project.release()
        for warning in loaded.warnings:
            self.message.emit(warning, 10_000)
        self.project, self.runs, self.current, self.compared = project, RunRegistry(), None, []
        self._saver.forget()   # flushed above: only rows and checkpoints of the old project's runs
        for stored in loaded.runs:
            entry = stored.entry
            run = self.runs.restore(int(entry["id"]), str(entry["name"]), stored.config)
            run.folder, run.origin = entry["folder"], entry.get("origin", "trained")
            run.status = entry.get("status", "stopped")
            if run.status in ("starting", "running", "paused"):
                run.status = "interrupted"   # the window that trained it did not close normally
            run.weights, run.adaptation = stored.weights, stored.adaptation
            if stored.metrics is not None and len(stored.metrics):
                run.history.extend(stored.metrics)
            run.weights_iteration = int(entry.get("weights_iteration", run.iteration))
            run.training_state = stored.training_state
            run.total = run.config.train.iterations
            run.note = str(entry.get("note", ""))
        editing = loaded.index.get("editing")
        if editing:
            try:
                self.editing = ExperimentConfig.from_dict(editing)
            except MamlError:
                loaded.problems.append("the settings being edited could not be read; the defaults are shown")
        self._loaded = True
        self.project_changed.emit(project)
        for run in self.runs:
            self.run_added.emit(run)
        for entry in loaded.external:   # followed runs: read from where their writer keeps them
            try:
                run = self.follower.follow(entry["external"], int(entry["id"]), str(entry["name"]))
                run.note = str(entry.get("note", ""))
                if run.note:
                    self.run_changed.emit(run)
            except (MamlError, KeyError, ValueError, TypeError) as exc:
                loaded.problems.append(f"{entry.get('name', '?')}: {exc}")
        for folder in loaded.index.get("sweeps", []):   # sweeps still running when the window closed
            if isinstance(folder, str) and is_sweep_folder(Path(folder)):
                self.follower.watch_sweep(folder)
        self.compared = [i for i in loaded.index.get("compared", []) if self.runs.get(i) is not None]
        self.compared_changed.emit(list(self.compared))
        self.set_current(loaded.index.get("current"))
        if not project.exists():
            self.write_index()
        return loaded.problems

    def write_index(self) -> None:
        self._index_timer.stop()
        if not self._loaded:
            return
        index = {"runs": [{"id": r.run_id, "name": r.name, "folder": r.folder, "status": r.status, "origin": r.origin,
                           "weights_iteration": r.weights_iteration, **_note(r)} for r in self.runs if r.folder]
                + [{"id": r.run_id, "name": r.name, "external": str(self.follower.folder_of(r.run_id)),
                    "origin": "followed", **_note(r)} for r in self.runs if self.follower.folder_of(r.run_id) is not None],
                 "current": self.current.run_id if self._stored(self.current) else None,
                 "compared": [i for i in self.compared if self._stored(self.runs.get(i))],
                 "editing": self.editing.to_dict(),
                 "sweeps": [str(f) for f in self.follower.watched_sweeps()]}
        try:
            self.project.write_index(index)
        except MamlError as exc:
            self._save_failed(str(exc))

    def _stored(self, run: RunRecord | None) -> bool:
        """Whether the project's index names ``run``: a run folder of its own, or one it follows."""
        return run is not None and (bool(run.folder) or self.follower.folder_of(run.run_id) is not None)

    def unsaved_runs(self) -> list[RunRecord]:
        """Runs whose latest state is not on disk yet (a write is pending or failed)."""
        pending = self._saver.pending()
        return [r for r in self.runs if r.run_id in pending]

    def save_run(self, run: RunRecord, *, whole: bool = False) -> None:
        """Queue a write of ``run``'s folder (weights, training state, metrics, held-out scores) on
        the save job's thread (:meth:`RunSaver.save`: new metrics rows are appended); :meth:`flush`
        waits for it. ``whole``: rewrite its ``metrics.csv`` from the history (another project)."""
        self._saver.save(run, whole)
        if not self._index_timer.isActive():   # not restarted: saves more often than its delay must not starve it
            self._index_timer.start()

    def flush(self, timeout_ms: int = 30_000) -> bool:
        """Write everything now (closing, switching projects); False if something could not be written."""
        self._saver.shutdown(timeout_ms)
        try:
            self._saver.drain()
        except MamlError as exc:
            self._save_failed(str(exc))
            return False
        self.write_index()
        self._save_ok()
        return self.save_problem is None

    def _save_failed(self, text: str) -> None:
        self.save_problem = text
        self.error.emit(f"Cannot save to the project folder {self.project.folder}: {text}. The runs stay open here; "
                        "File → Save project as… writes them elsewhere.")

    def _save_ok(self) -> None:
        if self.save_problem is not None and not self._saver.pending():
            self.save_problem = None

    def save_project_as(self, folder: str | Path) -> bool:
        """Write every run and the settings into another (new or empty) folder and continue there."""
        folder = Path(folder)
        if (folder / "project.json").exists() and folder.resolve() != self.project.folder.resolve():
            self.error.emit(f"{folder} already holds a project: choose an empty folder")
            return False
        self._saver.shutdown()
        project = Project(folder)
        try:
            project.lock()
        except MamlError as exc:
            self.error.emit(str(exc))
            return False
        self.project.release()
        self.project, self._loaded = project, True
        for run in self.runs:
            if run.weights or len(run.history):
                self.save_run(run, whole=True)
        ok = self.flush()
        self.project_changed.emit(self.project)
        return ok

    # -- what the user edits and looks at -------------------------------------------------------
    def set_editing(self, config: ExperimentConfig, family=None) -> None:
        """The settings the panels show; a change of family or task data clears the views of a run
        that was trained on something else."""
        family_moved = not same_family(config, self.editing) or (family is not self.editing_family
                                                                   and config.family.name == "csv")
        edited = config != self.editing
        self.editing, self.editing_family = config, family
        if family_moved:
            run = self.current
            if run is not None and run is not self.active and not same_family(run.config, config):
                self.set_current(None)
            self.family_changed.emit()
        if edited or family_moved:
            self.editing_changed.emit()
        self._index_timer.start()

    def set_current(self, run_id) -> None:
        run = self.runs.get(run_id) if run_id is not None else None
        if run is self.current:
            return
        self.current = run
        self.current_changed.emit(run)
        if run is not None and run.adaptation is None and run.weights and run is not self.active:
            self.score(run)
        self._index_timer.start()

    def set_compared(self, run_ids: list) -> None:
        ids = [i for i in run_ids if self.runs.get(i) is not None]
        if ids != self.compared:
            self.compared = ids
            self.compared_changed.emit(list(ids))
            for run in self.compared_runs():
                if run.adaptation is None and run.weights and run is not self.active:
                    self.score(run)
            self._index_timer.start()

    def compared_runs(self) -> list[RunRecord]:
        return [r for r in (self.runs.get(i) for i in self.compared) if r is not None]

    def rename(self, run_id, name: str) -> None:
        """A new name (made unique), shown everywhere the run is: legends, tables, exports."""
        run = self.runs.get(run_id)
        name = name.strip()
        if run is not None and name and name != run.name:
            run.name = self.runs.unique_name(name, run.run_id)
            self.run_changed.emit(run)
            self._index_timer.start()

    def set_note(self, run_id, note: str) -> None:
        """The user's free text about a run, kept in the project's index."""
        run = self.runs.get(run_id)
        if run is not None and note != run.note:
            run.note = note
            self.run_changed.emit(run)
            self._index_timer.start()

    def delete(self, run_id) -> None:
        """Remove a run from the session and its folder from the project (a training run stops first)."""
        run = self.runs.get(run_id)
        if run is None:
            return
        if run is self.active:
            self.stop()
            self.active = None
        if run is self.current:
            self.set_current(None)
        self.runs.remove(run_id)
        self._saver.forget(run_id)
        if run_id in self.compared:
            self.set_compared([i for i in self.compared if i != run_id])
        if run.folder:
            self._saver.shutdown()
            self.project.remove_run(run.folder)
        self.follower.forget(run_id)   # a followed run's folder belongs to its writer: never deleted
        self.run_removed.emit(run_id)
        self.write_index()

    # -- training ---------------------------------------------------------------------------------
    def is_training(self) -> bool:
        return self.controller.is_active()

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
        run = self.runs.create(config)
        run.total = config.train.iterations
        if state is not None:   # the continued run carries the opened run's history on
            run.history = copy.deepcopy(opened.history)
        self.active, self.stopping = run, False
        self.run_added.emit(run)
        self.set_current(run.run_id)
        self.save_run(run)   # its folder (settings and any carried history) exists from the start
        self.controller.start(config, paused=paused, steps=steps, preview_index=self.preview_index,
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
        model_only = {k: v for k, v in opened.weights.items() if k.startswith("model.")}
        for weights in (opened.weights, model_only):   # learned inner rates are dropped when the algorithm changed
            try:
                check_shapes("the opened weights", config, weights)
                check_names("the opened weights", config, weights)
            except MamlError:
                continue
            break
        else:
            self.message.emit(f"The weights of {opened.name} do not fit these settings; "
                              "training starts from a fresh initialisation", 10_000)
            return None, None
        if opened.training_state is None:
            self.message.emit(f"Training continues from the weights of {opened.name}", 8000)
            return weights, None
        changed = config.continue_changes(opened.config)
        if changed:
            self.message.emit(f"Training continues from the weights of {opened.name} with a fresh Adam state "
                              f"({', '.join(changed)} changed)", 10_000)
            return weights, None
        return weights, opened.training_state

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
            self.set_current(run.run_id)
        self.run_changed.emit(run)
        self.controller.start(run.config, preview_index=self.preview_index,
                              initial_weights=run.weights, initial_state=run.training_state)
        self.message.emit(f"Continuing {run.name} from iteration {at:,}", 5000)
        self.training_changed.emit()
        return True

    def interrupted_runs(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status == "interrupted"]

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

    def reset(self) -> None:
        """Stop any run and clear the views; every run stays in the session."""
        self.stop()
        self.set_current(None)

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
        run.history.append(chunk.iterations, chunk.meta_losses, chunk.grad_norms, chunk.seconds, chunk.step_losses)
        rows = [chunk.iterations, chunk.meta_losses, chunk.grad_norms, chunk.seconds, chunk.step_losses]
        self._saver.add_rows(run.run_id, np.column_stack(rows).astype(np.float64))   # metrics.csv: every row
        run.rate, run.total = chunk.rate, chunk.total
        self.history_grew.emit(run)

    def _on_adaptation(self, snapshot) -> None:
        if self.active is not None:
            self.active.adaptation = snapshot
            self.adaptation_changed.emit(self.active)

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
                self.save_run(run)

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
                self.save_run(run)
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
                    self.save_run(run)
                if run.status != "failed" and not self.finish_baseline(run):
                    self.score(run)   # its final scores, in the background: Stop does not wait for them
        self.training_changed.emit()

    # -- runs other processes write -----------------------------------------------------------------
    def follow(self, folder: str | Path) -> list[RunRecord]:
        """Follow a run folder, or every run of a sweep folder, as live runs (the first becomes
        current); a sweep that still runs is watched, so its later runs are followed (and compared)
        as their folders appear. Raises MamlError when the folder holds neither."""
        folder = Path(folder)
        sweep = is_sweep_folder(folder)
        folders = sweep_runs(folder) or ([folder] if is_run_folder(folder) else [])
        if not folders and not sweep:
            raise MamlError(f"{folder} is neither a run folder nor a sweep folder")
        runs = [self.follower.follow(f) for f in folders]
        if sweep:
            self.follower.watch_sweep(folder)
        if runs:
            self.set_current(runs[0].run_id)
        if len(runs) > 1:
            self.set_compared([r.run_id for r in runs[1:]])
        self._index_timer.start()
        return runs

    def _on_sweep_grew(self, runs: list) -> None:
        """Runs that appeared in a watched sweep: compared with the others (the first becomes current
        when none is)."""
        if self.current is None:
            self.set_current(runs[0].run_id)
            runs = runs[1:]
        self.set_compared(self.compared + [r.run_id for r in runs if r is not self.current])
        self._index_timer.start()

    def is_followed(self, run: RunRecord | None) -> bool:
        return run is not None and run.run_id in self.follower.followed

    # -- weights in and out ---------------------------------------------------------------------------
    def open_weights(self, path: str | Path, fallback: ExperimentConfig) -> RunRecord:
        """Add a run folder or a weights file as a run (it becomes current); raises MamlError with a
        readable message, changing nothing, when the file is refused. A bare ``state_dict`` without
        its settings sidecar is tried against ``fallback`` (the settings shown)."""
        path = Path(path)
        if path.name == CONFIG_FILE and path.is_file():   # a run folder, chosen by its settings file
            path = path.parent
        bare = path.suffix.lower() in PT_SUFFIXES and path.is_file() and not config_sidecar(path).exists()
        try:
            config, weights = read_weights_file(path, fallback if bare else None)
        except (MamlError, OSError) as exc:
            hint = " (it has no settings file next to it, and the settings shown do not fit it)" if bare else ""
            raise MamlError(f"Cannot open {path.name}{hint}: {exc}") from None
        run = self.runs.create(config, f"{path.name} (opened)")
        run.origin, run.status, run.weights = "opened", "opened", weights
        run.total = config.train.iterations
        metrics = read_metrics(path) if path.is_dir() else None
        if metrics is not None:
            run.history.extend(metrics)
            run.weights_iteration = run.iteration
            run.training_state = read_training_state(path, run.weights_iteration)
        self.run_added.emit(run)
        self.save_run(run)
        self.set_current(run.run_id)
        if run.adaptation is None:
            self.score(run)
        return run

    def weights_source(self, run: RunRecord | None = None) -> WeightsSource | None:
        """The current (or given) run's last good weights with a live family, for export and adapt."""
        run = run or self.current
        if run is None or not run.weights:
            return None
        at = f", iteration {run.weights_iteration:,}" if run.weights_iteration else ""
        return WeightsSource(run.config, run.weights, self.family_for(run.config), f"{run.name}{at}")

    def is_classification(self, run: RunRecord | None) -> bool:
        """Whether ``run`` (None: the family being edited) learns classes, without reading its data
        again when its held-out scores or the edited family already tell."""
        if run is not None and run.adaptation is not None:
            return run.adaptation.metric == "accuracy"
        config = run.config if run is not None else self.editing
        try:
            return self.family_for(config).kind == "classification"
        except MamlError:
            return False

    def family_for(self, config: ExperimentConfig):
        """The edited family when it is the one ``config`` names (a CSV family keeps its loaded data),
        else one built from the settings."""
        return self._edited_family(config) or build_family(config.family)

    def _edited_family(self, config: ExperimentConfig):
        """The edited family object when ``config`` names it, else None: a job builds its own, so a
        CSV file is never read again on the GUI thread."""
        if self.editing_family is not None and same_family(self.editing, config):
            return self.editing_family
        return None

    def export_weights(self, source: WeightsSource, path: Path, fmt: str, *, force: bool, readme: bool = True) -> Path:
        return export_weights((source.config, source.weights), fmt, path, force=force, family=source.family,
                              readme=readme)

    def export_run_folder(self, folder: str | Path, run: RunRecord | None = None) -> Path:
        run = run or self.current
        if run is None or not run.weights:
            raise MamlError("No weights to export yet: start a run first.")
        # the state is only ever kept for the iteration of the weights (see _on_state)
        return save_run(folder, run.config, run.weights, run.history.rows(), training_state=run.training_state)

    # -- views computed from a run ---------------------------------------------------------------
    def score(self, run: RunRecord) -> None:
        """The held-out adaptation curves of a run's weights, on a job thread (``adaptation_changed`` follows)."""
        self._scorer.score(run)

    def _on_scored(self, run: RunRecord, snapshot) -> None:
        if self.runs.get(run.run_id) is run:
            run.adaptation = snapshot
            self.adaptation_changed.emit(run)
            if run.folder:
                self.save_run(run)

    def finish_baseline(self, run: RunRecord) -> bool:
        """Train the run's pretrain baseline to the run's number of updates in the background
        (:meth:`RunScorer.finish_baseline`); True if started."""
        return self._scorer.finish_baseline(run, self.options.baseline)

    def _on_baseline_done(self, run: RunRecord, snapshot) -> None:
        if snapshot is None or self.runs.get(run.run_id) is not run:
            return
        run.adaptation = snapshot
        self.adaptation_changed.emit(run)
        self.save_run(run)
        self.message.emit(f"{run.name}: the pretrain baseline now has {snapshot.baseline_iterations:,} updates, as "
                          "many as the run", 8000)

    def idle_preview(self):
        """The task view without a worker: the current run's weights (or a fresh network) on task
        ``preview_index``. Raises MamlError when it cannot be drawn."""
        run = self.current
        config = run.config if run is not None else self.editing
        family = self.family_for(config)
        return preview_from_weights(config, run.weights if run is not None else None, self.preview_index,
                                    run.weights_iteration if run is not None else 0, family=family)

    def next_task(self) -> bool:
        """Show another held-out task; True when the worker will send it."""
        self.preview_index += 1
        return self.controller.request_preview(self.preview_index)

    # -- closing --------------------------------------------------------------------------------
    def close(self, timeout_ms: int = 60_000) -> bool:
        """Stop training and write everything; False when training would not stop in time. What
        could not be written is in ``save_problem`` (and ``unsaved_runs()``)."""
        if not self.controller.shutdown() and not self.controller.shutdown(timeout_ms=timeout_ms):
            return False
        self._scorer.shutdown()
        self.follower.shutdown()
        self.flush()
        self._loaded = False   # nothing more is written: the locks go, another window may open it
        self.project.release()
        return True
