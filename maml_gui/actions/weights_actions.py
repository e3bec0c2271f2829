"""Weights in and out of the window: export the current run, open a run or weights file, adapt.

Composed by the main window (``window.weights``). Every action is about the session's *current*
run and names it. Nothing here trusts a file: opening goes through the session
(:func:`core.trained.weights_io.open_weights`: safetensors, or ``torch.load`` with ``weights_only=True``),
and the window changes only after the file has been read and checked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QFileDialog, QFrame, QScrollArea

from core.storage.checkpoint import CONFIG_FILE, folder_notes, state_problem
from core.errors import MamlError
from core.storage.lock import lock_holder
from core.trained.weights_io import PT_SUFFIXES, config_sidecar, readme_sidecar

from maml_gui.adapt.view import AdaptView
from maml_gui.dialogs.export_dialog import ExportDialog
from maml_gui.session.following import is_run_folder, sweep_runs
from maml_gui.jobs.job_runner import JobRunner
from maml_gui.session.session import WeightsSource
from maml_gui.widgets.wheel_guard import guard_wheel

EXPORT_FOLDER_KEY = "export/folder"
OPEN_FOLDER_KEY = "open/folder"
WIDE_WINDOW = 1600   # px: from this width the Adapt panel gets a column of its own
WEIGHTS_FILTER = "Weights or run (*.safetensors *.pt *.pth config.json);;All files (*)"


def damage_notes(path: Path, config, state_read: bool = False) -> list[str]:
    """What is damaged beside the weights of an opened run folder (they were used): a settings file
    that differs or cannot be read, a training state that cannot continue the run exactly (not
    looked at again when ``state_read``: the open already read and checked it)."""
    folder = path.parent if path.name == CONFIG_FILE else path
    if not folder.is_dir():
        return []
    problem = None if state_read else state_problem(folder)
    notes = folder_notes(folder, config) + ([f"{problem}; Start continues from the weights with a fresh Adam "
                                             "state"] if problem else [])
    return [note.replace(f"{folder}{os.sep}", "") for note in notes]   # the run's name is shown already


class WeightsActions:
    def __init__(self, window):
        self.window = window
        self.session = window.session
        self.adapt_view: AdaptView | None = None
        self.adapt_dock: QDockWidget | None = None
        self.export_dialog: ExportDialog | None = None
        self._export_jobs = JobRunner(window, "maml-export")
        self._export_jobs.done.connect(self._on_export_done)
        self._export_jobs.failed.connect(self._on_export_failed)
        self.session.current_changed.connect(self._on_current_changed)

    def current_weights(self) -> WeightsSource | None:
        """The current run's last good weights, with a live family."""
        return self.session.weights_source()

    # -- export -------------------------------------------------------------------------------------
    def _export_source(self, source: WeightsSource | None) -> WeightsSource | None:
        """The weights to export (given, or the current run's); None after telling the user why not."""
        try:
            source = source or self.current_weights()
        except MamlError as exc:
            self.window.show_error(f"Cannot export weights: {exc}")
            return None
        if source is None:
            self.window.show_error("No weights to export yet: start a run or open weights (File → Open weights/run…).")
        return source

    def export_weights(self, path, fmt: str = "safetensors", *, readme: bool = True,
                       source: WeightsSource | None = None) -> Path | None:
        """Write the current (or given) weights to ``path``; asks before replacing any file."""
        source = self._export_source(source)
        if source is None:
            return None
        path = Path(path)
        force = self._confirm_replace(path, fmt, readme)
        if force is None:
            return None
        try:
            written = self.session.export_weights(source, path, fmt, force=force, readme=readme)
        except MamlError as exc:
            self.window.show_error(f"Cannot export weights: {exc}")
            return None
        self._exported(written, fmt, source)
        return written

    def choose_export_weights(self, source: WeightsSource | None = None) -> ExportDialog | None:
        """The export dialog (non-blocking); the file is written on a job thread (ONNX takes seconds)."""
        source = self._export_source(source)
        if source is None:
            return None
        folder = Path(str(self.window.settings.value(EXPORT_FOLDER_KEY, "") or Path.home()))
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", re.split(r" \(|, ", source.label)[0]).strip("-.") or "weights"
        stem = re.sub(r"\.(safetensors|pt|pth|onnx)$", "", stem) or "weights"
        title = "Export adapted weights" if "adapted to" in source.label else "Export weights"
        dialog = ExportDialog(self.window, title, f"Weights of {source.label}.", folder / f"{stem}.safetensors")
        dialog.requested.connect(lambda path, fmt, readme: self._export_from_dialog(dialog, source, path, fmt, readme))
        self.export_dialog = dialog
        dialog.open()
        return dialog

    def _export_from_dialog(self, dialog: ExportDialog, source: WeightsSource, path: Path, fmt: str,
                            readme: bool) -> None:
        force = self._confirm_replace(path, fmt, readme)
        if force is None:
            dialog.show_error("Nothing was written: choose another file name, or export again and confirm.")
            return
        dialog.set_busy(True)
        self._export_jobs.submit((dialog, fmt, source), lambda: self.session.export_weights(
            source, path, fmt, force=force, readme=readme))

    def _on_export_done(self, tag, written: Path) -> None:
        dialog, fmt, source = tag
        self._exported(written, fmt, source)
        dialog.finish()

    def _on_export_failed(self, tag, message: str) -> None:
        dialog = tag[0]
        dialog.show_error(f"Cannot export weights: {message}")
        if not dialog.isVisible():
            self.window.show_error(f"Cannot export weights: {message}")

    def _confirm_replace(self, path: Path, fmt: str, readme: bool) -> bool | None:
        """``force`` for the export: False when nothing exists, True once the user agreed, None if not."""
        targets = [path] + ([config_sidecar(path)] if fmt == "pt" else []) + ([readme_sidecar(path)] if readme else [])
        existing = [p for p in targets if p.exists() and not p.is_dir()]
        if not existing:
            return False
        names = ", ".join(p.name for p in existing)
        if self.window.confirm("Replace files?", f"{names} already exist{'s' * (len(existing) == 1)} in {path.parent}. "
                                                 "Replace?"):
            return True
        self.window.statusBar().showMessage("Export cancelled: nothing was overwritten.", 5000)
        return None

    def _exported(self, written: Path, fmt: str, source: WeightsSource) -> None:
        self.window.settings.setValue(EXPORT_FOLDER_KEY, str(Path(written).parent))
        self.window.statusBar().showMessage(f"Exported {source.label} as {fmt} to {written}", 8000)

    # -- open -------------------------------------------------------------------------------------
    def choose_open_weights(self) -> None:
        folder = str(self.window.settings.value(OPEN_FOLDER_KEY, "") or "")
        path, _ = QFileDialog.getOpenFileName(self.window, "Open weights or a run (its weights.safetensors or "
                                              "config.json)", folder, WEIGHTS_FILTER)
        if path:
            self.open_weights(path)

    def open_weights(self, path) -> bool:
        """Add a run folder or weights file as a run and make it current; its settings fill the panels.

        A refused file (code inside, truncated, another shape, a newer version) changes nothing
        but an error message.
        """
        w, path = self.window, Path(path)
        folder = path.parent if path.name == "config.json" else path
        if folder.is_dir() and (sweep_runs(folder) or (is_run_folder(folder) and lock_holder(folder) is not None)):
            return self.follow(folder)   # another process is writing it (or a sweep): follow it live
        if self.session.is_training() and not w.confirm("Reset the run?",
                                                         "Opening weights stops the current run. Continue?"):
            return False
        try:
            run = self.session.open_weights(path, w.panel_config())
        except MamlError as exc:
            w.show_error(str(exc))
            return False
        self.session.stop()
        w.files.show_settings(run.config)
        w.settings.setValue(OPEN_FOLDER_KEY, str(path.parent))
        if path.suffix.lower() in PT_SUFFIXES and not config_sidecar(path).exists():
            w.statusBar().showMessage(f"Opened {path.name}: it carries no settings, so the ones shown in the panels "
                                      "are used (every weight's shape fits them)", 15_000)
            return True
        how = ("Start continues this run exactly (Adam state and task stream included)" if run.training_state
               else "Start continues training from these weights")
        notes = damage_notes(path, run.config, state_read=run.training_state is not None)
        if notes:   # first, so the status bar shows it whole: what is damaged and what Start does instead
            w.statusBar().showMessage(f"Opened {run.name}, with a warning: {'; '.join(notes)}", 30_000)
            return True
        w.statusBar().showMessage(f"Opened {run.name}: {how}; Training → Adapt to a new task tries them on a task.",
                                  10_000)
        return True

    # -- runs other processes write -------------------------------------------------------------------
    def choose_follow(self) -> None:
        folder = str(self.window.settings.value(OPEN_FOLDER_KEY, "") or "")
        chosen = QFileDialog.getExistingDirectory(self.window, "Follow a run folder or a sweep folder", folder)
        if chosen:
            self.follow(chosen)

    def follow(self, folder) -> bool:
        """Show the run (or every run of the sweep) another process writes in ``folder``, live."""
        w = self.window
        try:
            runs = self.session.follow(folder)
        except MamlError as exc:
            w.show_error(str(exc))
            return False
        w.settings.setValue(OPEN_FOLDER_KEY, str(Path(folder).parent))
        if runs:   # the followed run is current: its settings in the panel, as selecting a run shows them
            w.show_run_settings(runs[0].run_id, ask=False)   # following is no request to replace edited ones
        what = runs[0].name if len(runs) == 1 else f"{len(runs)} runs of the sweep {Path(folder).name}"
        w.statusBar().showMessage(f"Following {what}: the curves grow as the run writes its folder; " + (
            "its settings are in the panel" if runs and not w.panel_config().changes(runs[0].config) else
            "the panel keeps its settings (select the run in the Runs list to load its own)"), 10_000)
        return True

    def drop_target(self, mime) -> Path | None:
        """The run or sweep folder a drag carries (one folder), else None (the CSV import takes it)."""
        urls = mime.urls() if mime.hasUrls() else []
        if len(urls) != 1 or not urls[0].isLocalFile():
            return None
        folder = Path(urls[0].toLocalFile())
        return folder if folder.is_dir() and (is_run_folder(folder) or sweep_runs(folder)) else None

    # -- adapt --------------------------------------------------------------------------------------
    def show_adapt_view(self) -> AdaptView:
        """The "Adapt to a new task" dock, made on first use; it adapts the current run's weights."""
        w = self.window
        if self.adapt_view is None:
            view = self.adapt_view = AdaptView(self._adapt_source, export=self.choose_export_weights)
            guard_wheel(view)
            scroll = QScrollArea()   # the panel scrolls inside its dock; it never makes the window taller
            scroll.setWidget(view)
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QFrame.Shape.NoFrame)
            dock = self.adapt_dock = QDockWidget("Adapt to a new task", w)
            dock.setObjectName("adapt_dock")
            dock.setWidget(scroll)
            if not w.restoreDockWidget(dock):
                if w.width() >= WIDE_WINDOW:   # room for a third column
                    w.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
                    w.resizeDocks([dock], [460], Qt.Orientation.Horizontal)
                else:   # a tab beside the Experiment panel: the four plots keep their width at 1280×800
                    w.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
                    w.tabifyDockWidget(w.findChild(QDockWidget, "experiment_dock"), dock)
            w.view_menu.addAction(dock.toggleViewAction())
        self.adapt_dock.show()
        self.adapt_dock.raise_()
        if self.adapt_view.result() is None and not self.adapt_view.is_busy():
            self.adapt_view.adapt(quiet=True)   # a held-out task right away
        return self.adapt_view

    def _adapt_source(self) -> WeightsSource | None:
        try:
            return self.current_weights()
        except MamlError:
            return None

    def _on_current_changed(self, _run) -> None:
        """An open Adapt panel follows the current run: its numbers are recomputed, never left stale."""
        view = self.adapt_view
        if view is None:
            return
        view.clear_result()
        if view.refresh() is not None and not self.adapt_dock.isHidden():   # open, if not on screen yet
            view.adapt(quiet=True)
