"""The main window: composes the experiment panels, the live plots, the run list and the controls.

Everything a menu, toolbar button or shortcut does is a plain public method (``start``,
``open_experiment(path)``, ``export_weights(path, fmt)`` ...) that tests call directly; the
``choose_*`` methods only add a file dialog in front of them.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Callable

import numpy as np

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMessageBox, QScrollArea, QVBoxLayout, QWidget

from core.config import ExperimentConfig
from core.device import resolve_device
from core.errors import MamlError

from . import experiment_io as io
from .csv_import import CsvImportMixin
from .inspection import preview_from_weights
from .menus import build_actions, build_menus, build_toolbar, fill_recent
from .pacing import Pacer
from .panels import BASELINE_HELP, ErrorBanner, PlotsArea, StatusReadout
from .runs import RunRecord, RunRegistry
from .training import TrainingController, WorkerOptions
from .widgets.family_editor import FamilyEditor
from .widgets.hyper_panel import HyperPanel
from .widgets.run_list import ID_ROLE, NAME, RunList
from .window_files import FileActionsMixin

STATUS_INTERVAL = 0.25    # s between status-bar / run-list refreshes
PLOT_INTERVAL_MS = 250    # the history plots take new points at most this often (stretched by the pacer)
INSPECT_STRETCH = 2.5     # the adaptation / task views slow down at most this much under the pacer
OVERLAY_INTERVAL = 2.0    # s between refreshes of a ticked run that is still training
RUN_ROW_INTERVAL = 1.0    # s between updates of the training run's row in the run list


def _live_invariant(config: ExperimentConfig) -> ExperimentConfig:
    """The config with the settings that apply live (meta lr, iteration count) blanked out."""
    return config.replace("train", meta_lr=1.0, iterations=1)


class MainWindow(FileActionsMixin, CsvImportMixin, QMainWindow):
    def __init__(self, config: ExperimentConfig | None = None, settings: QSettings | None = None,
                 options: WorkerOptions | None = None):
        super().__init__()
        self.settings = settings if settings is not None else QSettings()
        self.recent = io.RecentFiles(self.settings)
        self.confirm: Callable[[str, str], bool] = self._ask   # tests replace it to answer prompts
        self.controller = TrainingController(self, options)
        self.runs = RunRegistry()
        self.pacer = Pacer()
        self._active: RunRecord | None = None    # the run the worker feeds
        self._shown: RunRecord | None = None     # the run drawn in the live plots
        self._stopping = False
        self._syncing = False
        self._problem: str | None = None
        self._path: Path | None = None
        self._preview_index = 0
        self._last_chunk = None
        self._last_status = self._last_overlay = self._last_row = 0.0

        self.family_editor = FamilyEditor()
        # its pyqtgraph preview asks for ~480 px; in the scrolling side panel that squeezed the form
        self.family_editor.preview.setMaximumHeight(240)
        self.hyper_panel = HyperPanel()
        self.plots = PlotsArea()
        self.loss_plot, self.step_plot = self.plots.loss, self.plots.steps
        self.adaptation_plot, self.function_plot = self.plots.adaptation, self.plots.task
        self.run_list = RunList()
        self.error_banner = ErrorBanner()
        self.problem_banner = ErrorBanner(kind="warning", closable=False)   # why Start is disabled
        self.problem_label = self.problem_banner.label
        self.actions = build_actions(self)
        build_menus(self, self.actions)
        build_toolbar(self, self.actions)
        self._build_layout(options or self.controller.options)
        self.status = StatusReadout(self.statusBar())
        self._connect()
        self._init_csv_import()   # drops, File → Import CSV…, the family panel's "Change…"
        self._plot_pending: list = []
        self._plot_timer = QTimer(self, singleShot=True, interval=PLOT_INTERVAL_MS)
        self._plot_timer.timeout.connect(self._flush_plots)
        self._preview_timer = QTimer(self, singleShot=True, interval=300)
        self._preview_timer.timeout.connect(self._refresh_idle_preview)
        self.set_config(config or ExperimentConfig())
        fill_recent(self.actions.recent, self.recent.paths(), self.open_experiment)
        self._restore_geometry()
        self._update_title()

    # -- composition -------------------------------------------------------------------------
    def _build_layout(self, options: WorkerOptions) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 0)
        layout.addWidget(self.error_banner)
        layout.addWidget(self.problem_banner)
        layout.addWidget(self.plots, 1)
        self.setCentralWidget(central)
        self.adaptation_plot.setToolTip(BASELINE_HELP.format(tasks=options.eval_tasks, share=options.baseline_share,
                                                             interval=options.inspect_interval))
        panel = QWidget()
        column = QVBoxLayout(panel)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.family_editor)
        column.addWidget(self.hyper_panel)
        column.addStretch(1)   # spare height goes below the form, not into the family preview
        scroll = QScrollArea()
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(300)
        docks = []
        for title, name, widget, area in (("Experiment", "experiment_dock", scroll, Qt.DockWidgetArea.LeftDockWidgetArea),
                                          ("Runs", "runs_dock", self.run_list, Qt.DockWidgetArea.BottomDockWidgetArea)):
            dock = QDockWidget(title, self)
            dock.setObjectName(name)
            dock.setWidget(widget)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                             | QDockWidget.DockWidgetFeature.DockWidgetClosable)
            self.addDockWidget(area, dock)
            self.view_menu.addAction(dock.toggleViewAction())
            docks.append(dock)
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.resize(1280, 800)
        self.resizeDocks(docks[:1], [400], Qt.Orientation.Horizontal)
        self.resizeDocks(docks[1:], [130], Qt.Orientation.Vertical)

    def _connect(self) -> None:
        c = self.controller
        c.started.connect(self._on_started)
        c.progress.connect(self._on_progress)
        c.adaptation.connect(self._on_adaptation)
        c.preview.connect(self._on_preview)
        c.weights.connect(self._on_weights)
        c.state.connect(self._on_state)
        c.paused_changed.connect(self._on_paused_changed)
        c.notice.connect(lambda text: self.statusBar().showMessage(text, 10_000))
        c.finished.connect(self._on_finished)
        c.failed.connect(self._on_failed)
        c.running_changed.connect(self._on_running_changed)
        for panel in (self.family_editor, self.hyper_panel):
            panel.changed.connect(self._on_config_edited)
            panel.validity_changed.connect(lambda _valid: self._refresh_validity())
        self.hyper_panel.meta_lr_changed.connect(self._on_meta_lr)
        self.run_list.overlay_changed.connect(lambda _ids: self._refresh_overlays())
        self.run_list.renamed.connect(self._on_run_renamed)
        self.run_list.deleted.connect(self._on_run_deleted)
        self.plots.new_task.connect(self.new_task)

    # -- the experiment ----------------------------------------------------------------------
    def panel_config(self) -> ExperimentConfig:
        """What the panels show (not necessarily valid: see ``start_problem``)."""
        hp = self.hyper_panel
        return ExperimentConfig(self.family_editor.spec(), hp.model_spec(), hp.algorithm_spec(), hp.train_spec())

    def set_config(self, config: ExperimentConfig) -> None:
        self._syncing = True
        try:
            self.family_editor.set_spec(config.family)
            self.hyper_panel.set_config(config)
        finally:
            self._syncing = False
        self._on_config_edited()

    def start_problem(self) -> str | None:
        """Why Start is disabled, or None."""
        return self._problem

    def _refresh_validity(self) -> None:
        problem = self.family_editor.error() or self.hyper_panel.error()
        if problem is None:
            try:
                config = self.panel_config()
                config.validate()
                resolve_device(config.train.device)
            except MamlError as exc:
                problem = str(exc)
        self._problem = problem
        self.problem_label.setText(f"Cannot start: {problem}" if problem else "")
        self.problem_banner.setVisible(problem is not None)
        self._update_actions()

    def _on_config_edited(self) -> None:
        self._refresh_validity()
        if self._syncing:
            return
        if self._active is not None and self.controller.is_active() and not self._stopping:
            new, old = self.panel_config(), self._active.config
            if _live_invariant(new) != _live_invariant(old):
                if self.confirm("Reset the run?", "This change needs a new run. Stop the current run and reset?"):
                    self.reset()
                else:
                    self._syncing = True
                    try:
                        live = old.replace("train", meta_lr=new.train.meta_lr, iterations=new.train.iterations)
                        self.family_editor.set_spec(live.family)
                        self.hyper_panel.set_config(live)
                    finally:
                        self._syncing = False
                    self._refresh_validity()
                return
            if new.train.iterations != old.train.iterations:
                self.controller.set_iterations(new.train.iterations)
                self._active.config = old.replace("train", iterations=new.train.iterations)
        elif self._shown is None:
            self._preview_timer.start()

    def _on_meta_lr(self, lr: float) -> None:
        if self._active is not None and self.controller.is_active():
            self.controller.set_meta_lr(lr)
            self._active.config = self._active.config.replace("train", meta_lr=lr)

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    # -- training controls ---------------------------------------------------------------------
    def start(self) -> None:
        if self.controller.is_active():
            if self.controller.is_paused() and not self._stopping:
                self.controller.resume()
                self._update_actions()
            return
        self._begin(paused=False, steps=0)

    def toggle_pause(self) -> None:
        if not self.controller.is_active() or self._stopping:
            self._update_actions()
            return
        self.controller.resume() if self.controller.is_paused() else self.controller.pause()
        self._update_actions()

    def step(self) -> None:
        if self.controller.is_active():
            if not self._stopping:
                self.controller.step()
        else:
            self._begin(paused=True, steps=1)
        self._update_actions()

    def stop(self) -> None:
        if self.controller.is_active():
            self._stopping = True
            self.controller.stop()
            self.statusBar().showMessage("Stopping after the current meta-iteration…")
        self._update_actions()

    def reset(self) -> None:
        """Stop any run and clear the live views; the run stays in the run list."""
        self.stop()
        self._shown = None
        self._clear_views()
        self._update_actions()
        self._preview_timer.start()

    def _clear_views(self) -> None:
        """Empty the live plots, status and error banner (reset, or before showing opened weights)."""
        self._plot_pending.clear()
        self.loss_plot.reset()
        self.step_plot.reset()
        self.adaptation_plot.clear()
        self.status.clear()
        self.error_banner.hide()

    def _begin(self, paused: bool, steps: int) -> None:
        if self._problem is not None:
            self.statusBar().showMessage(f"Cannot start: {self._problem}", 10_000)
            return
        config = self.panel_config()
        initial = self._initial_weights(config)   # opened weights, while they are the ones shown
        state = self._initial_state(config) if initial is not None else None
        if state is not None and self._opened.weights_iteration >= config.train.iterations:
            self.statusBar().showMessage(
                f"{self._opened.name} already ran {self._opened.weights_iteration:,} iterations: raise Iterations "
                "to continue it", 10_000)
            return
        run = self.runs.create(config)
        self.run_list.add_run(run.run_id, run.name, config.algorithm.name)
        self._active = self._shown = run
        self._stopping = False
        self._plot_pending.clear()
        self.loss_plot.reset()
        self.step_plot.reset()
        self.adaptation_plot.clear()
        self.error_banner.hide()
        self.status.clear()
        self._label_losses(config)
        if state is not None:   # the resumed run carries the opened run's history on
            run.history = copy.deepcopy(self._opened.history)
            self._show_history(run)
        self.controller.start(config, paused=paused, steps=steps, preview_index=self._preview_index,
                              initial_weights=initial, initial_state=state)
        opened = self._opened
        self.statusBar().showMessage(f"Continuing {opened.name} from iteration {opened.weights_iteration:,} as {run.name}"
                                     if state is not None else f"Started {run.name}", 5000)
        self._update_actions()

    def _label_losses(self, config: ExperimentConfig) -> None:
        """The history plots say which loss they show: MSE, or cross-entropy for classification."""
        loss = "cross-entropy" if getattr(self.family_editor.family(), "kind", "") == "classification" else "MSE"
        self.loss_plot.plot.setLabel("left", f"query loss ({loss})")
        self.step_plot.plot.setLabel("left", f"query loss ({loss}, smoothed)")

    def _update_actions(self) -> None:
        a, active = self.actions, self.controller.is_active()
        paused = self.controller.is_paused()
        a.start.setEnabled((not active and self._problem is None) or (paused and not self._stopping))
        a.start.setToolTip(f"Cannot start: {self._problem}" if self._problem and not active
                           else "Start training (or resume a paused run) (Ctrl+Return)")
        a.pause.setEnabled(active and not self._stopping)
        a.pause.setChecked(paused)
        a.pause.setText("Resume" if paused else "Pause")
        a.step.setEnabled((active and not self._stopping) or (not active and self._problem is None))
        a.stop.setEnabled(active and not self._stopping)
        a.reset.setEnabled(active or self._shown is not None)

    # -- worker events ---------------------------------------------------------------------------
    def _on_started(self, info) -> None:
        if self._active is not None:
            self._active.device = info.device
            self._active.status = "paused" if self.controller.is_paused() else "running"
        self.status.set_device(info.device, info.gradient_path)

    def _on_progress(self, chunk) -> None:
        run = self._active
        if run is None:
            return
        run.history.append(chunk.iterations, chunk.meta_losses, chunk.grad_norms, chunk.seconds, chunk.step_losses)
        if run is self._shown:
            self._plot_pending.append(chunk)
            if not self._plot_timer.isActive():
                self._plot_timer.start()
        self._last_chunk = chunk
        now = time.perf_counter()
        if now - self._last_status >= STATUS_INTERVAL:
            self._refresh_status(now)

    def _flush_plots(self) -> None:
        """Hand the buffered points to the history plots in one go.

        Repainting a pyqtgraph plot is Python work on the GUI thread that competes with the
        training thread for the GIL; batching to a few repaints a second keeps training speed
        within a few percent of headless (see ``gui_bench``), pauses and ends flush at once.
        """
        self._plot_timer.stop()
        chunks, self._plot_pending = self._plot_pending, []
        if not chunks:
            return
        its = np.concatenate([c.iterations for c in chunks])
        self.loss_plot.append(its, np.concatenate([c.meta_losses for c in chunks]))
        self.step_plot.append(its, np.concatenate([c.step_losses for c in chunks]))

    def _refresh_status(self, now: float) -> None:
        self._last_status = now
        run, chunk = self._active, self._last_chunk
        if run is None or chunk is None:
            return
        if self.controller.is_active() and not self.controller.is_paused():
            self._pace(self.pacer.sample())
        if run is self._shown:
            state = "running" if self.controller.is_active() and not self.controller.is_paused() else run.status
            self.status.show(run.iteration, chunk.total, chunk.rate, state)
        if run.run_id in self.runs_in_list() and (now - self._last_row >= RUN_ROW_INTERVAL
                                                  or not self.controller.is_active() or self.controller.is_paused()):
            self._last_row = now
            self.run_list.update_run(run.run_id, run.iteration, run.final_loss)
        if run.run_id in self.run_list.checked() and now - self._last_overlay >= OVERLAY_INTERVAL:
            self._refresh_overlays()

    def _pace(self, scale: float) -> None:
        """Apply the pacer's stretch to the plot refresh and the worker's snapshot interval."""
        interval = int(PLOT_INTERVAL_MS * scale)
        if interval != self._plot_timer.interval():
            self._plot_timer.setInterval(interval)
            inspect_scale = min(scale, INSPECT_STRETCH)
            self.controller.set_inspect_interval(self.controller.options.inspect_interval * inspect_scale)

    def _on_adaptation(self, snapshot) -> None:
        if self._active is None or self._active is not self._shown:
            return
        self.adaptation_plot.set_metric(snapshot.metric)
        for name, (mean, ci) in snapshot.series.items():
            self.adaptation_plot.set_series(name, snapshot.steps, mean, ci)

    def _on_preview(self, preview) -> None:
        if self._active is not None and self._active is not self._shown:
            return
        self.plots.show_preview(preview)

    def _on_weights(self, weights) -> None:
        if self._active is not None:
            self._active.weights = weights
            self._active.weights_iteration = self._active.iteration
            self._active.training_state = None   # until the matching state arrives (it follows at once)

    def _on_state(self, state) -> None:
        if self._active is not None and int(state[1]["iteration"]) == self._active.weights_iteration:
            self._active.training_state = state

    def _on_paused_changed(self, paused: bool) -> None:
        self._flush_plots()
        self.pacer.relax() if paused else self.pacer.restart()
        self._pace(self.pacer.scale)
        if self._active is not None:
            self._active.status = "paused" if paused else "running"
        self._refresh_status(time.perf_counter())
        self._update_actions()

    def _on_finished(self, end) -> None:
        run = self._active
        if run is not None:
            run.status = end.reason
            self.statusBar().showMessage(f"{run.name}: {end.reason} at iteration {end.iteration:,}", 10_000)

    def _on_failed(self, message: str) -> None:
        run = self._active
        if run is not None:
            run.status, run.error = "failed", message
            kept = (f" The weights from iteration {run.weights_iteration:,} are kept."
                    if run.weights and "weights" not in message else "")
            self.show_error(f"{run.name}: {message}{kept}")
        else:
            self.show_error(f"Training stopped: {message}")

    def _on_running_changed(self, active: bool) -> None:
        if active:
            self.pacer.restart()
        else:
            self._flush_plots()
            self.pacer.relax()
            self._pace(1.0)
            self._refresh_status(time.perf_counter())
            if self._shown is self._active and self._active is not None and self._last_chunk is not None:
                self.status.show(self._active.iteration, self._last_chunk.total, 0.0, self._active.status)
            self._active, self._stopping = None, False
            self._refresh_overlays()
            if self._shown is None:   # reset while the thread was winding down
                self._preview_timer.start()
        self._update_actions()

    def show_error(self, message: str) -> None:
        """Readable, non-blocking: a banner above the plots and the status bar."""
        self.error_banner.show_message(message)
        self.statusBar().showMessage(message, 15_000)

    # -- the task view ---------------------------------------------------------------------------
    def new_task(self) -> None:
        self._preview_index += 1
        if not self.controller.request_preview(self._preview_index):
            self._refresh_idle_preview()

    def _refresh_idle_preview(self) -> None:
        """Without a worker, draw the preview here from the shown run's weights (or a fresh network)."""
        if self.controller.is_active():
            return
        run = self._shown
        if run is None and self._problem is not None:
            return
        try:
            preview = preview_from_weights(run.config if run else self.panel_config(), run.weights if run else None,
                                           self._preview_index, run.weights_iteration if run else 0)
        except (MamlError, RuntimeError) as exc:
            self.statusBar().showMessage(f"Cannot draw the task view: {exc}", 10_000)
            return
        self.plots.show_preview(preview)

    # -- runs -----------------------------------------------------------------------------------
    def runs_in_list(self) -> list:
        return self.run_list.run_ids()

    def selected_run(self) -> RunRecord | None:
        """The run selected in the list, else the one shown in the plots, else the newest."""
        rows = {index.row() for index in self.run_list.table.selectedIndexes()}
        if rows:
            return self.runs.get(self.run_list.table.item(rows.pop(), NAME).data(ID_ROLE))
        return self._shown or next(reversed(list(self.runs)), None)

    def _refresh_overlays(self) -> None:
        self._last_overlay = time.perf_counter()
        runs = [self.runs.get(i) for i in self.run_list.checked()]
        self.loss_plot.set_overlays([(r.name, r.history.iterations.copy(), r.history.meta_losses.copy())
                                     for r in runs if r is not None])

    def _on_run_renamed(self, run_id, name: str) -> None:
        run = self.runs.get(run_id)
        if run is not None:
            run.name = name
            self._refresh_overlays()

    def _on_run_deleted(self, run_id) -> None:
        run = self.runs.get(run_id)
        if run is None:
            return
        if run is self._shown:
            self.reset()
        elif run is self._active:
            self.stop()
        self.runs.remove(run_id)
        self._refresh_overlays()

    # -- window state ------------------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        geometry, state = self.settings.value("window/geometry"), self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, event) -> None:
        self._preview_timer.stop()
        if not self.controller.shutdown() and not self.controller.shutdown(timeout_ms=60_000):
            self.show_error("Training does not stop (a meta-iteration is still running); try closing again.")
            event.ignore()
            return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()
        super().closeEvent(event)
