"""The File menu's work: projects, experiments (open, save, recent), run folders, plots and curves.

Composed by the main window (``window.files``). The plain methods are what tests drive; the
``choose_*`` ones only put a file dialog in front. A project holds every run and is written as
it changes; an experiment file is the shareable settings alone, so opening one (or New) asks
before replacing settings that were edited and not saved.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMenu

from core.storage.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from core.storage.metrics import METRICS_FILE
from core.config import ExperimentConfig
from core.errors import MamlError

from maml_gui.actions import experiment_io as io
from maml_gui.dialogs.user_module_dialog import ask_for_run_modules, project_run_folders
from maml_gui.session.runs import curves_csv


class FileActions:
    def __init__(self, window):
        self.window = window
        self.session = window.session
        self.path: Path | None = None                   # the experiment file the settings came from
        self.saved: ExperimentConfig | None = None      # what that file (or New) holds

    # -- experiments (settings only) -------------------------------------------------------------
    def new_experiment(self) -> bool:
        return self._replace_config(ExperimentConfig(), None)

    def open_experiment(self, path) -> bool:
        try:
            config = io.load_experiment(path)
        except io.ExperimentIOError as exc:
            self.window.show_error(str(exc))
            if not Path(path).exists():
                self.window.recent.remove(path)
                self.refresh_recent()
            return False
        if not self._replace_config(config, Path(path)):
            return False
        self.window.recent.add(path)
        self.refresh_recent()
        self.window.statusBar().showMessage(f"Opened {path}", 5000)
        return True

    def edited(self) -> bool:
        """The panels hold settings that no experiment file has (and no run was started with)."""
        config = self.window.panel_config()
        known = [ExperimentConfig(), *([self.saved] if self.saved is not None else []),
                 *(run.config for run in self.session.runs)]
        return all(config.changes(other) for other in known)

    def _replace_config(self, config: ExperimentConfig, path: Path | None) -> bool:
        w = self.window
        if self.session.is_training():
            if not w.confirm("Reset the run?", "Loading other settings stops the current run. Continue?"):
                return False
            w.reset()
        elif self.edited() and config.changes(w.panel_config()) and not w.confirm(
                "Replace the settings?", "The settings being edited are not saved in an experiment file "
                "(File → Save experiment keeps them). Replace them?"):
            return False
        previous = w.panel_config()
        try:
            w.set_config(config)
        except MamlError as exc:   # valid for the engine but not showable in the form: keep what was there
            w.set_config(previous)
            w.show_error(f"Cannot show these settings: {exc}")
            return False
        self.path, self.saved = path, config
        self.update_title()
        return True

    def show_settings(self, config: ExperimentConfig) -> None:
        """Fill the panels with a run's settings (opened weights): they are its, not an experiment file's."""
        self.window.set_config(config)
        self.path, self.saved = None, config
        self.update_title()

    def save_experiment(self, path) -> Path | None:
        """Write the panels' settings as JSON; invalid settings are refused (they could not be opened)."""
        w = self.window
        config = w.panel_config()
        try:
            problem = w.family_editor.error() or w.hyper_panel.error()
            if problem is None:
                config.validate()
        except MamlError as exc:
            problem = str(exc)
        if problem is not None:
            w.show_error(f"Cannot save: {problem}")
            return None
        try:
            written = io.save_experiment(path, config)
        except io.ExperimentIOError as exc:
            w.show_error(str(exc))
            return None
        self.path, self.saved = written, config
        w.recent.add(written)
        self.refresh_recent()
        self.update_title()
        w.statusBar().showMessage(f"Saved {written}", 5000)
        return written

    def refresh_recent(self) -> None:
        fill_recent(self.window.actions.recent, self.window.recent.paths(), self.open_experiment)

    def update_title(self) -> None:
        experiment = self.path.name if self.path else "untitled experiment"
        self.window.setWindowTitle(f"project {self.session.project.name} — {experiment}")

    # -- projects (every run) --------------------------------------------------------------------------
    def open_project(self, folder) -> bool:
        """Switch to the project in ``folder`` (a new one when it holds none); the current one is
        written first, so nothing is lost."""
        w = self.window
        if self.session.is_training():
            if not w.confirm("Stop the run?", "Opening another project stops the training run (it is saved). Continue?"):
                return False
            if not self.session.controller.shutdown(60_000):
                w.show_error("Training does not stop (a meta-iteration is still running); try again.")
                return False
        refused = ask_for_run_modules(project_run_folders(folder), w.confirm)   # your own modules: ask first
        try:
            problems = refused + self.session.load_project(folder)
        except MamlError as exc:
            w.show_error(f"Cannot open the project: {exc}")
            return False
        w.set_config(self.session.editing)
        if problems:
            w.show_error("Some runs of this project could not be read: " + "; ".join(problems))
        w.offer_continue()
        w.statusBar().showMessage(f"Project {self.session.project.folder}: {len(self.session.runs)} runs", 8000)
        return True

    def save_project_as(self, folder) -> bool:
        return self.session.save_project_as(folder)

    # -- run folders, plots, curves -------------------------------------------------------------------
    def export_run_folder(self, folder) -> Path | None:
        """A run folder (config.json, weights.safetensors, metrics.csv) that the CLI and Open read back."""
        w, run = self.window, self.session.current
        if run is None or not run.weights:
            w.show_error("No weights to export yet: start a run first.")
            return None
        existing = [n for n in (CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE) if (Path(folder) / n).exists()]
        if existing and not w.confirm("Replace the run?", f"{folder} already holds {', '.join(existing)}. Replace?"):
            return None
        try:
            written = self.session.export_run_folder(folder, run)
        except MamlError as exc:
            w.show_error(f"Cannot export weights: {exc}")
            return None
        w.statusBar().showMessage(f"Exported {run.name} (weights of iteration {run.weights_iteration:,}) to {written}", 8000)
        return written

    def export_plot(self, key: str, path) -> Path | None:
        plots = self.window.plots
        if key == "task" and plots.task_page() in ("episode", "note"):   # pictures or a sentence, not a plot
            return self._export_task_widget(path)
        try:
            written = io.export_plot(plots.plot_item(key), path)
        except io.ExperimentIOError as exc:
            self.window.show_error(str(exc))
            return None
        self.window.statusBar().showMessage(f"Saved {written}", 5000)
        return written

    def _export_task_widget(self, path) -> Path | None:
        """An image episode is pictures, not a plot: saved as the PNG it looks like (never SVG)."""
        plots, path = self.window.plots, Path(path)
        if plots.task_page() != "episode":
            self.window.show_error("The task view shows no plot for this run, so there is nothing to export.")
            return None
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        image = plots.episode.grab().toImage()
        if not image.save(str(path)):
            self.window.show_error(f"cannot write {path}")
            return None
        self.window.statusBar().showMessage(f"Saved {path} (the episode view is saved as an image)", 5000)
        return path

    def export_curves(self, path) -> Path | None:
        s = self.session
        runs = list({id(r): r for r in ([s.current] if s.current else []) + s.compared_runs()}.values())
        if not runs:
            self.window.show_error("No curves to export: start a run or tick runs in the run list.")
            return None
        try:
            io.write_text(path, curves_csv(runs))
        except io.ExperimentIOError as exc:
            self.window.show_error(str(exc))
            return None
        self.window.statusBar().showMessage(f"Saved {path}", 5000)
        return Path(path)

    # -- dialogs in front of the plain methods -------------------------------------------------------
    def choose_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open experiment", str(self.path or ""),
                                              "Experiments (*.json);;All files (*)")
        if path:
            self.open_experiment(path)

    def choose_save(self, ask: bool = False) -> None:
        path = self.path
        if ask or path is None:
            path, _ = QFileDialog.getSaveFileName(self.window, "Save experiment", str(self.path or "experiment.json"),
                                                  "Experiments (*.json)")
        if path:
            self.save_experiment(path)

    def choose_open_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Open or create a project folder",
                                                  str(self.session.project.folder.parent))
        if folder:
            self.open_project(folder)

    def choose_save_project_as(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Save the project (every run) into an empty folder")
        if folder:
            self.save_project_as(folder)

    def choose_export_run_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Export the run (settings, weights, metrics) into folder")
        if folder:
            self.export_run_folder(folder)

    def choose_plot_export(self, key: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Export plot", f"{key}.png",
                                              "PNG image (*.png);;SVG image (*.svg)")
        if path:
            self.export_plot(key, path)

    def choose_export_curves(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Export curves", "curves.csv", "CSV (*.csv)")
        if path:
            self.export_curves(path)


def fill_recent(menu: QMenu, paths: list[str], open_path) -> None:
    menu.clear()
    for i, path in enumerate(paths):
        action = menu.addAction(f"&{i + 1}  {Path(path).name}", lambda p=path: open_path(p))
        action.setToolTip(path)
        action.setStatusTip(path)
    menu.setEnabled(bool(paths))
