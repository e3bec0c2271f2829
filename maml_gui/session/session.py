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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from core.storage.atomic import atomic_write
from core.storage.checkpoint import CONFIG_FILE, read_training_state, save_run
from core.storage.metrics import METRICS_FILE, metrics_table_csv, read_metrics
from core.config import ExperimentConfig
from core.errors import MamlError
from core.trained.export import config_sidecar, export_weights
from core.trained.loaded_model import preview_from_weights
from core.tasks import build_family
from core.trained.weights_io import PT_SUFFIXES
from core.trained.weights_io import open_weights_built

from maml_gui.session.following import Follower, is_run_folder, is_sweep_folder, sweep_runs
from maml_gui.session.project import Project, project_index
from maml_gui.session.run_saver import RunSaver, every_row
from maml_gui.session.run_scoring import RunScorer
from maml_gui.session.runs import RunRecord, RunRegistry
from maml_gui.session.training_control import TrainingControl
from maml_gui.jobs.training import WorkerOptions
from maml_gui.jobs.training_controller import TrainingController

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


class Session(TrainingControl, QObject):
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
    job_status = Signal(str)             # background scoring and baseline jobs with their progress ("": none)
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
        self._scorer.job_status.connect(self.job_status)
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
        followed = {r.run_id: self.follower.folder_of(r.run_id) for r in self.runs}
        index = project_index(self.runs, {i: f for i, f in followed.items() if f is not None},
                              current=self.current.run_id if self._stored(self.current) else None,
                              compared=[i for i in self.compared if self._stored(self.runs.get(i))],
                              editing=self.editing, sweeps=self.follower.watched_sweeps())
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

    def save_run(self, run: RunRecord) -> None:
        """Queue a write of ``run``'s folder (weights, training state, metrics, held-out scores) on
        the save job's thread (:meth:`RunSaver.save`: new metrics rows are appended); :meth:`flush`
        waits for it."""
        self._saver.save(run)
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
        try:   # the old folders' metrics.csv, which hold every row, are copied from below
            self._saver.drain()
        except MamlError:
            pass   # what they lack comes from the history
        old = self.project
        old.release()
        self.project, self._loaded = project, True
        for run in self.runs:
            if run.weights or len(run.history):
                self._saver.save(run, True, old.folder / run.folder if run.folder else None)
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
            built, weights = open_weights_built(path, fallback if bare else None)
        except (MamlError, OSError) as exc:
            hint = " (it has no settings file next to it, and the settings shown do not fit it)" if bare else ""
            raise MamlError(f"Cannot open {path.name}{hint}: {exc}") from None
        config = built.config
        run = self.runs.create(config, f"{path.name} (opened)")
        run.origin, run.status, run.weights = "opened", "opened", weights
        run.total = config.train.iterations
        metrics = read_metrics(path) if path.is_dir() else None
        if metrics is not None:
            run.history.extend(metrics)
            run.weights_iteration = run.iteration
            run.training_state = read_training_state(path, run.weights_iteration, built)
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
        save_run(folder, run.config, run.weights, None, training_state=run.training_state)
        # every row: the project's metrics.csv has them all, the history keeps every other past 50,000
        atomic_write(Path(folder) / METRICS_FILE, metrics_table_csv(
            every_row(run, self.project.folder / run.folder if run.folder else None)))
        return Path(folder)

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
        n = snapshot.baseline_iterations
        self.message.emit(f"{run.name}: the pretrain baseline now has {n:,} update{'s' * (n != 1)}, as "
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
