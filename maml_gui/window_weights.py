"""Weights in and out of the window: export to a file, open a run or a weights file, adapt to a new task.

A mixin of :class:`~maml_gui.window_files.FileActionsMixin` (and so of the main window). The
plain methods (``export_weights(path, fmt)``, ``open_weights(path)``, ``show_adapt_view()``)
are what tests drive; ``choose_*`` put a dialog in front. Nothing here trusts a file: opening
goes through :func:`core.weights_io.open_weights` (safetensors, or ``torch.load`` with
``weights_only=True``), and the window changes only after the file has been read and checked.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QFileDialog

from core.checkpoint import CONFIG_FILE, METRICS_FILE, STATE_FILE, check_shapes, load_training_state
from core.config import ExperimentConfig
from core.errors import MamlError
from core.export import config_sidecar, export_weights, readme_sidecar
from core.tasks import FAMILIES, build_family
from core.weights_io import PT_SUFFIXES, check_names
from core.weights_io import open_weights as read_weights_file

from .adapt_view import AdaptView, WeightsSource
from .job_runner import JobRunner
from .export_dialog import ExportDialog
from .inspection import Inspector

EXPORT_FOLDER_KEY = "export/folder"
OPEN_FOLDER_KEY = "open/folder"
WEIGHTS_FILTER = "Weights or run (*.safetensors *.pt *.pth config.json);;All files (*)"


class WeightsActionsMixin:
    """Needs the window's ``runs``, ``run_list``, ``plots``, ``controller``, ``settings`` and ``confirm``."""

    _opened = None            # the RunRecord of weights opened from a file, while it is the one shown
    adapt_view: AdaptView | None = None
    adapt_dock: QDockWidget | None = None
    export_dialog: ExportDialog | None = None
    _export_jobs: JobRunner | None = None
    _score_jobs: JobRunner | None = None

    # -- what the weights are -------------------------------------------------------------------
    def current_weights(self) -> WeightsSource | None:
        """The selected (else shown, else newest) run's last good weights, with a live family."""
        run = self.selected_run()
        if run is None or not run.weights:
            return None
        at = f", iteration {run.weights_iteration:,}" if run.weights_iteration else ""
        return WeightsSource(run.config, run.weights, self._live_family(run.config), f"{run.name}{at}")

    def _live_family(self, config: ExperimentConfig):
        """The editor's family when it shows these settings (a CSV family keeps its loaded data and
        normalization), else one rebuilt from the settings."""
        family = self.family_editor.family()
        if family is not None and self.family_editor.spec() == config.family:
            return family
        return build_family(config.family)

    # -- export -------------------------------------------------------------------------------------
    def _export_source(self, source: WeightsSource | None) -> WeightsSource | None:
        """The weights to export (given, or the current ones); None after telling the user why not."""
        try:
            source = source or self.current_weights()
        except MamlError as exc:
            self.show_error(f"Cannot export weights: {exc}")
            return None
        if source is None:
            self.show_error("No weights to export yet: start a run or open weights (File → Open weights/run…).")
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
            written = export_weights((source.config, source.weights), fmt, path, force=force, family=source.family,
                                     readme=readme)
        except MamlError as exc:
            self.show_error(f"Cannot export weights: {exc}")
            return None
        self._exported(written, fmt, source)
        return written

    def choose_export_weights(self, source: WeightsSource | None = None) -> ExportDialog | None:
        """The export dialog (non-blocking); the file is written on a job thread (ONNX takes seconds)."""
        source = self._export_source(source)
        if source is None:
            return None
        folder = Path(str(self.settings.value(EXPORT_FOLDER_KEY, "") or Path.home()))
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", re.split(r" \(|, ", source.label)[0]).strip("-.") or "weights"
        title = "Export adapted weights" if "adapted to" in source.label else "Export weights"
        dialog = ExportDialog(self, title, f"Weights of {source.label}.", folder / f"{stem}.safetensors")
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
        if self._export_jobs is None:
            self._export_jobs = JobRunner(self, "maml-export")
            self._export_jobs.done.connect(self._on_export_done)
            self._export_jobs.failed.connect(self._on_export_failed)
        dialog.set_busy(True)
        config, weights, family = source.config, source.weights, source.family
        self._export_jobs.submit((dialog, fmt, source), lambda: export_weights(
            (config, weights), fmt, path, force=force, family=family, readme=readme))

    def _on_export_done(self, tag, written: Path) -> None:
        dialog, fmt, source = tag
        self._exported(written, fmt, source)
        dialog.finish()

    def _on_export_failed(self, tag, message: str) -> None:
        dialog = tag[0]
        dialog.show_error(f"Cannot export weights: {message}")
        if not dialog.isVisible():
            self.show_error(f"Cannot export weights: {message}")

    def _confirm_replace(self, path: Path, fmt: str, readme: bool) -> bool | None:
        """``force`` for the export: False when nothing exists, True once the user agreed, None if not."""
        targets = [path] + ([config_sidecar(path)] if fmt == "pt" else []) + ([readme_sidecar(path)] if readme else [])
        existing = [p for p in targets if p.exists() and not p.is_dir()]
        if not existing:
            return False
        names = ", ".join(p.name for p in existing)
        if self.confirm("Replace files?", f"{names} already exist{'s' * (len(existing) == 1)} in {path.parent}. "
                                          "Replace?"):
            return True
        self.statusBar().showMessage("Export cancelled: nothing was overwritten.", 5000)
        return None

    def _exported(self, written: Path, fmt: str, source: WeightsSource) -> None:
        self.settings.setValue(EXPORT_FOLDER_KEY, str(Path(written).parent))
        self.statusBar().showMessage(f"Exported {source.label} as {fmt} to {written}", 8000)

    # -- open -------------------------------------------------------------------------------------
    def choose_open_weights(self) -> None:
        folder = str(self.settings.value(OPEN_FOLDER_KEY, "") or "")
        path, _ = QFileDialog.getOpenFileName(self, "Open weights or a run (its weights.safetensors or config.json)",
                                              folder, WEIGHTS_FILTER)
        if path:
            self.open_weights(path)

    def open_weights(self, path) -> bool:
        """Show the experiment of a run folder or weights file, with its weights as the current ones.

        Nothing in the window changes unless the file is read and checked completely; a refused
        file (code inside, truncated, another shape, a newer version) leaves only an error message.
        """
        path = Path(path)
        if path.name == CONFIG_FILE and path.is_file():   # a run folder, chosen by its settings file
            path = path.parent
        # a bare state_dict has no settings: without its .config.json sidecar the panels' settings
        # are tried (the engine checks that every shape fits them)
        bare = path.suffix.lower() in PT_SUFFIXES and path.is_file() and not config_sidecar(path).exists()
        try:
            config, weights = read_weights_file(path, self.panel_config() if bare else None)
        except (MamlError, OSError) as exc:
            hint = " (it has no settings file next to it, and the settings shown do not fit it)" if bare else ""
            self.show_error(f"Cannot open {path.name}{hint}: {exc}")
            return False
        if not self._replace_config(config, None):
            return False
        run = self.runs.create(config)
        run.name = f"{path.name} (opened)"
        run.weights, run.status = weights, "opened"
        metrics = read_metrics(path)
        if metrics is not None:
            run.history.append(metrics[:, 0], metrics[:, 1], metrics[:, 2], metrics[:, 3], metrics[:, 4:])
            run.weights_iteration = run.iteration
            run.training_state = read_training_state(path, run.weights_iteration)
        self.run_list.add_run(run.run_id, run.name, config.algorithm.name)
        if metrics is not None:
            self.run_list.update_run(run.run_id, run.iteration, run.final_loss)
        self.settings.setValue(OPEN_FOLDER_KEY, str(path.parent))
        self._show_opened(run, metrics)
        if bare:
            self.statusBar().showMessage(f"Opened {path.name}: it carries no settings, so the ones shown in the panels "
                                         "are used (every weight's shape fits them)", 15_000)
        return True

    def _show_opened(self, run, metrics: np.ndarray | None) -> None:
        self._shown = self._opened = run
        self._clear_views()
        self._label_losses(run.config)
        if len(run.history):
            self._show_history(run)
            self.status.show(run.iteration, run.config.train.iterations, 0.0, "opened")
        self._refresh_idle_preview()
        self._score_opened(run)
        self._update_actions()
        if self.adapt_view is not None:
            self.adapt_view.refresh()
        how = ("Start continues this run exactly (Adam state and task stream included)" if run.training_state
               else "Start continues training from these weights")
        self.statusBar().showMessage(f"Opened {run.name}: {how}; Training → Adapt to a new task tries them on a task.",
                                     10_000)

    def _show_history(self, run) -> None:
        history = run.history
        self.loss_plot.append(history.iterations, history.meta_losses)
        self.step_plot.append(history.iterations, history.step_losses)

    def _score_opened(self, run) -> None:
        """The adaptation curves of the opened weights, on a job thread (about a second for 50 tasks)."""
        if self._score_jobs is None:
            self._score_jobs = JobRunner(self, "maml-score")
            self._score_jobs.done.connect(self._on_scored)
            self._score_jobs.failed.connect(
                lambda _run, message: self.statusBar().showMessage(f"Cannot score the opened weights: {message}", 10_000))
        config, weights, tasks = run.config, run.weights, self.controller.options.eval_tasks

        def score():
            from core.trainer import MetaTrainer

            trainer = MetaTrainer(config.replace("train", device="cpu"))
            trainer.load_weights(weights)
            return Inspector(trainer, tasks).adaptation(None)

        self._score_jobs.submit(run, score)

    def _on_scored(self, run, snapshot) -> None:
        if run is not self._shown:
            return
        self.adaptation_plot.set_metric(snapshot.metric)
        for name, (mean, ci) in snapshot.series.items():
            self.adaptation_plot.set_series(name, snapshot.steps, mean, ci)

    def _initial_weights(self, config: ExperimentConfig) -> dict | None:
        """Start from the opened weights while they are shown and fit the settings (learned inner
        rates are dropped when the algorithm changed); otherwise from a fresh initialisation."""
        run = self._opened
        if run is None or run is not self._shown or not run.weights:
            return None
        model_only = {k: v for k, v in run.weights.items() if k.startswith("model.")}
        for weights in (run.weights, model_only):
            try:
                check_shapes("the opened weights", config, weights)
                check_names("the opened weights", config, weights)
            except MamlError:
                continue
            self.statusBar().showMessage(f"Training continues from the weights of {run.name}", 8000)
            return weights
        self.statusBar().showMessage(f"The weights of {run.name} do not fit these settings; "
                                     "training starts from a fresh initialisation", 10_000)
        return None

    def _initial_state(self, config: ExperimentConfig):
        """The opened run's training state when Start may continue it exactly: its settings are
        unchanged but for the iteration count and the meta learning rate (as for ``train --resume``)."""
        run = self._opened
        if run is None or run.training_state is None:
            return None
        if _resumable_view(config) != _resumable_view(run.config):
            self.statusBar().showMessage(f"Training continues from the weights of {run.name} with a fresh Adam state "
                                         "(the settings changed)", 10_000)
            return None
        return run.training_state

    # -- adapt --------------------------------------------------------------------------------------
    def show_adapt_view(self) -> AdaptView:
        """The "Adapt to a new task" dock, made on first use."""
        if self.adapt_view is None:
            view = self.adapt_view = AdaptView(self._adapt_source, export=self.choose_export_weights)
            dock = self.adapt_dock = QDockWidget("Adapt to a new task", self)
            dock.setObjectName("adapt_dock")
            dock.setWidget(view)
            if not self.restoreDockWidget(dock):
                self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
                self.resizeDocks([dock], [460], Qt.Orientation.Horizontal)
            self.view_menu.addAction(dock.toggleViewAction())
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

    # -- closing --------------------------------------------------------------------------------------
    def shutdown_jobs(self, timeout_ms: int = 30_000) -> bool:
        """Wait for export / scoring / adaptation jobs (each is short); True once none runs."""
        runners = [r for r in (self._export_jobs, self._score_jobs) if r is not None]
        ok = all([r.shutdown(timeout_ms) for r in runners])
        return (self.adapt_view.shutdown(timeout_ms) if self.adapt_view is not None else True) and ok

    def closeEvent(self, event) -> None:
        """Runs after the window stopped training (``MainWindow.closeEvent`` calls up to here)."""
        self.shutdown_jobs()
        super().closeEvent(event)


def _resumable_view(config: ExperimentConfig) -> dict:
    """What must stay equal to continue a run exactly: everything but the iteration count, the
    meta learning rate and the device, with the family's unstated settings at their defaults."""
    family = FAMILIES.get(config.family.name)
    params = {f.name: f.default for f in getattr(family, "fields", ())}
    params.update(config.family.params)
    return config.replace("train", iterations=0, meta_lr=0.0, device="cpu").replace("family", params=params).to_dict()


def read_training_state(path: Path, iteration: int):
    """A run folder's saved Adam moments and sampler state, when they belong to ``iteration``
    (otherwise, or when absent or unreadable, None: training would restart Adam)."""
    if not path.is_dir() or not (path / STATE_FILE).is_file():
        return None
    try:
        tensors, metadata = load_training_state(path)
    except (MamlError, OSError, ValueError):
        return None
    return (tensors, metadata) if metadata.get("iteration") == str(iteration) else None


def read_metrics(path: Path) -> np.ndarray | None:
    """A run folder's ``metrics.csv`` as ``[rows, 4 + steps]`` (iteration, meta_loss, grad_norm,
    seconds, step losses), or None when there is none or it cannot be read (it is optional)."""
    file = path / METRICS_FILE if path.is_dir() else None
    if file is None or not file.is_file():
        return None
    try:
        with open(file, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], [r for r in rows[1:] if r]
        if header[:4] != ["iteration", "meta_loss", "grad_norm", "seconds"] or not body:
            return None
        data = np.array(body, dtype=float)
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    return data if data.ndim == 2 and data.shape[1] == len(header) and data.shape[1] > 4 else None
