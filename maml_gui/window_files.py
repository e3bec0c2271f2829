"""The File menu's work: experiments (open, save, recent), weights, plots and curves.

A mixin of :class:`~maml_gui.main_window.MainWindow` so the window file stays one screenful
of composition; every method here is a plain call that tests drive directly, the
``choose_*`` ones only put a file dialog in front.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from core.checkpoint import CONFIG_FILE, METRICS_FILE, WEIGHTS_FILE, save_run
from core.config import ExperimentConfig
from core.errors import MamlError

from . import experiment_io as io
from .menus import fill_recent
from .runs import curves_csv
from .window_weights import WeightsActionsMixin


class FileActionsMixin(WeightsActionsMixin):
    """Needs the window's ``runs``, ``run_list``, ``plots``, ``controller``, ``recent`` and ``_path``."""

    def new_experiment(self) -> None:
        self._replace_config(ExperimentConfig(), None)

    def open_experiment(self, path) -> bool:
        try:
            config = io.load_experiment(path)
        except io.ExperimentIOError as exc:
            self.show_error(str(exc))
            if not Path(path).exists():
                self.recent.remove(path)
                fill_recent(self.actions.recent, self.recent.paths(), self.open_experiment)
            return False
        if not self._replace_config(config, Path(path)):
            return False
        self.recent.add(path)
        fill_recent(self.actions.recent, self.recent.paths(), self.open_experiment)
        self.statusBar().showMessage(f"Opened {path}", 5000)
        return True

    def _replace_config(self, config: ExperimentConfig, path: Path | None) -> bool:
        if self.controller.is_active():
            if not self.confirm("Reset the run?", "Loading other settings stops the current run. Continue?"):
                return False
            self.reset()
        previous = self.panel_config()
        try:
            self.set_config(config)
        except MamlError as exc:   # valid for the engine but not showable in the form: keep what was there
            self.set_config(previous)
            self.show_error(f"Cannot show these settings: {exc}")
            return False
        self._path = path
        self._update_title()
        return True

    def save_experiment(self, path) -> Path | None:
        """Write the panels' settings as JSON; invalid settings are refused (they could not be opened)."""
        config = self.panel_config()
        try:
            problem = self.family_editor.error() or self.hyper_panel.error()
            if problem is None:
                config.validate()
        except MamlError as exc:
            problem = str(exc)
        if problem is not None:
            self.show_error(f"Cannot save: {problem}")
            return None
        try:
            written = io.save_experiment(path, config)
        except io.ExperimentIOError as exc:
            self.show_error(str(exc))
            return None
        self._path = written
        self.recent.add(written)
        fill_recent(self.actions.recent, self.recent.paths(), self.open_experiment)
        self._update_title()
        self.statusBar().showMessage(f"Saved {written}", 5000)
        return written

    def export_run_folder(self, folder) -> Path | None:
        """A run folder (config.json, weights.safetensors, metrics.csv) that the CLI and Open read back."""
        run = self.selected_run()
        if run is None or not run.weights:
            self.show_error("No weights to export yet: start a run first.")
            return None
        existing = [n for n in (CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE) if (Path(folder) / n).exists()]
        if existing and not self.confirm("Replace the run?", f"{folder} already holds {', '.join(existing)}. Replace?"):
            return None
        try:
            # the state is only ever kept for the iteration of the weights (see MainWindow._on_state)
            written = save_run(folder, run.config, run.weights, run.history.rows(), training_state=run.training_state)
        except MamlError as exc:
            self.show_error(f"Cannot export weights: {exc}")
            return None
        self.statusBar().showMessage(f"Exported {run.name} (weights of iteration {run.weights_iteration:,}) to {written}", 8000)
        return written

    def export_plot(self, key: str, path) -> Path | None:
        try:
            written = io.export_plot(self.plots.plot_item(key), path)
        except io.ExperimentIOError as exc:
            self.show_error(str(exc))
            return None
        self.statusBar().showMessage(f"Saved {written}", 5000)
        return written

    def export_curves(self, path) -> Path | None:
        ids = [r.run_id for r in (self._shown,) if r is not None] + self.run_list.checked()
        runs = [self.runs.get(i) for i in dict.fromkeys(ids) if self.runs.get(i) is not None]
        if not runs:
            self.show_error("No curves to export: start a run or tick runs in the run list.")
            return None
        try:
            io.write_text(path, curves_csv(runs))
        except io.ExperimentIOError as exc:
            self.show_error(str(exc))
            return None
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return Path(path)

    def choose_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open experiment", str(self._path or ""), "Experiments (*.json);;All files (*)")
        if path:
            self.open_experiment(path)

    def choose_save(self, ask: bool = False) -> None:
        path = self._path
        if ask or path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save experiment", str(self._path or "experiment.json"), "Experiments (*.json)")
        if path:
            self.save_experiment(path)

    def choose_export_run_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the run (settings, weights, metrics) into folder")
        if folder:
            self.export_run_folder(folder)

    def choose_plot_export(self, key: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export plot", f"{key}.png", "PNG image (*.png);;SVG image (*.svg)")
        if path:
            self.export_plot(key, path)

    def choose_export_curves(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export curves", "curves.csv", "CSV (*.csv)")
        if path:
            self.export_curves(path)

    def _update_title(self) -> None:
        self.setWindowTitle(f"MAML Explorer — {self._path.name if self._path else 'untitled experiment'}")
