"""The main window: composes the experiment panel, the plots, the run list and the controls.

It holds no session state: the runs, the current run, what is compared and what is edited
live in :class:`~maml_gui.session.session.Session` (``window.session``); :class:`LiveViews` renders
it, and the file, weights and CSV actions are small composed objects (``window.files``,
``window.weights``, ``window.csv``) whose plain methods tests call directly. The window's own
methods are the training controls, which read the panels and hand the settings to the session.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QSettings, QStandardPaths, Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMessageBox, QScrollArea, QVBoxLayout, QWidget

from core.config import ExperimentConfig
from core.envs import is_env_family
from core.errors import MamlError
from core.storage.lock import LOCK_FILE, RunLocked

from maml_gui.actions import experiment_io as io
from maml_gui.importing.csv_import import CsvImport
from maml_gui.widgets.field_names import readable
from maml_gui.actions.file_actions import FileActions
from maml_gui.dialogs.user_module_dialog import ask_for_run_modules, pick_user_module, project_run_folders
from maml_gui.window.help_menu import build_help_menu
from maml_gui.importing.image_import import ImageImport
from maml_gui.actions.launch_actions import LaunchActions
from maml_gui.window.live_views import LiveViews
from maml_gui.window.start_check import config_problem
from maml_gui.window.menus import build_actions, build_menus, build_toolbar
from maml_gui.window.panels import BASELINE_HELP, BannerOverlay, ErrorBanner, PlotsArea, StatusBar, StatusReadout
from maml_gui.session.session import Session
from maml_gui.jobs.threads import shutdown_all
from maml_gui.jobs.training import WorkerOptions
from maml_gui.actions.weights_actions import WeightsActions
from maml_gui.widgets.family_editor import FamilyEditor
from maml_gui.widgets.family_form import IMAGE_FAMILIES
from maml_gui.widgets.hyper_panel import HyperPanel
from maml_gui.widgets.run_list import RunList
from maml_gui.widgets.wheel_guard import guard_wheel

PROJECT_KEY = "project/folder"
EXPERIMENT_MIN_WIDTH = 300
NETWORK_NAMES = {"conv4": "Conv-4", "mlp": "the MLP"}
PANEL_SOURCE_HELP = ("Selecting a run in the Runs list loads its settings here; Start trains a new run with what "
                     "the panel shows (Training → Continue run carries a stopped run on instead).")
JOBS_WIDTH = 380          # px of the status bar for background jobs' progress (the rest: messages, readouts)
RUNS_DOCK_HEIGHT = 206    # five rows of the run list at 1280×800, above the scroll bar of its many columns


def default_project(settings: QSettings) -> Path:
    """The last project, else ``projects/default`` in the user's data folder."""
    last = settings.value(PROJECT_KEY)
    if last and Path(str(last)).is_dir():
        return Path(str(last))
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation) or str(Path.home() / ".maml-gui")
    return Path(base) / "projects" / "default"


class MainWindow(QMainWindow):
    def __init__(self, config: ExperimentConfig | None = None, settings: QSettings | None = None,
                 options: WorkerOptions | None = None, project: str | Path | None = None):
        super().__init__()
        self.setStatusBar(StatusBar())   # long messages end in "…", with the whole text on hover
        self.settings = settings if settings is not None else QSettings()
        self.recent = io.RecentFiles(self.settings)
        self.confirm: Callable[[str, str], bool] = self._ask   # tests replace it to answer prompts
        self.session = Session(project if project is not None else default_project(self.settings), options, self)
        self._syncing = False
        self._closed = False
        self._panel_named: tuple[int, str] | None = None   # (run id, name) the panel's top line names
        self._problem: str | None = None
        self.network_note = ""   # the last switch of network that followed the family
        self._panel_width: int | None = None   # the Experiment panel's width before a wide form widened it

        self.family_editor = FamilyEditor()
        # its pyqtgraph preview asks for ~480 px; in the scrolling side panel that squeezed the form
        self.family_editor.preview.setMaximumHeight(240)
        self.hyper_panel = HyperPanel()
        self.plots = PlotsArea()
        self.run_list = RunList()
        self.error_banner = ErrorBanner()
        self.problem_banner = ErrorBanner(kind="warning", closable=False)   # why Start is disabled
        self.resume_banner = ErrorBanner(kind="warning")   # runs a crash interrupted, with an offer to continue
        self.files = FileActions(self)
        self.weights = WeightsActions(self)
        self.csv = CsvImport(self)
        self.images = ImageImport(self)
        self.launch = LaunchActions(self)   # sweeps and --nproc runs as child processes
        self.actions = build_actions(self)
        build_menus(self, self.actions)
        build_toolbar(self, self.actions)
        build_help_menu(self, self.actions)
        self._build_layout(self.session.options)
        self.current_label = QLabel()   # permanent: a passing message must not hide which run is current
        self.current_label.setContentsMargins(8, 0, 8, 0)
        self.statusBar().addPermanentWidget(self.current_label)
        self.jobs_label = QLabel()   # background scoring / baseline progress (see _show_jobs)
        self.jobs_label.setObjectName("jobs")
        self.jobs_label.hide()
        self.statusBar().insertPermanentWidget(0, self.jobs_label)
        self.status = StatusReadout(self.statusBar())
        self.views = LiveViews(self.session, self.plots, self.run_list, self.status, self.current_label, self)
        self._connect()

        problems, elsewhere = self._open_first_project()
        self.settings.setValue(PROJECT_KEY, str(self.session.project.folder))
        self.set_config(config or self.session.editing)
        if problems:
            self.show_error("Some runs of this project could not be read: " + "; ".join(problems))
        if elsewhere:
            self.show_error(elsewhere)
        self.offer_continue()
        self.files.refresh_recent()
        self._restore_geometry()
        self.fit_experiment_panel()   # after a restored layout too: it never hides a control
        self.files.update_title()

    def _open_first_project(self) -> tuple[list[str], str | None]:
        """The launch's project; when another window has it open, a free sibling folder instead
        (two windows writing one project would corrupt it). Returns (problems, why elsewhere)."""
        wanted = self.session.project.folder
        try:
            refused = ask_for_run_modules(project_run_folders(wanted), self.confirm)   # your own modules: ask first
            return refused + self.session.load_project(), None
        except RunLocked as exc:
            n = 2
            while (wanted.with_name(f"{wanted.name}-{n}") / LOCK_FILE).exists():
                n += 1
            other = wanted.with_name(f"{wanted.name}-{n}")
            return self.session.load_project(other), (f"{exc}. This window uses the project {other} instead; "
                                                      "File → Open project… switches.")

    # -- composition -------------------------------------------------------------------------
    def _build_layout(self, options: WorkerOptions) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 0)
        layout.addWidget(self.plots, 1)
        self.banners = BannerOverlay(central, [self.error_banner, self.problem_banner, self.resume_banner],
                                     below=[self.plots.loss, self.plots.steps])
        self.setCentralWidget(central)
        self.plots.adaptation.setToolTip(BASELINE_HELP.format(tasks=options.eval_tasks, share=options.baseline_share,
                                                              interval=options.inspect_interval))
        panel = QWidget()
        column = QVBoxLayout(panel)
        column.setContentsMargins(0, 0, 0, 0)
        self.panel_source = QLabel()   # whose settings these are: the selected run's, or new ones
        self.panel_source.setContentsMargins(9, 4, 9, 0)
        self.panel_source.setStyleSheet("color: #444;")
        self.panel_source.setWordWrap(True)
        self.panel_source.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        # two lines kept whatever it says: selecting a run with a longer name never shifts the fields below
        self.panel_source.setMinimumHeight(2 * self.panel_source.fontMetrics().lineSpacing() + 4)
        column.addWidget(self.panel_source)
        column.addWidget(self.family_editor)
        column.addWidget(self.hyper_panel)
        column.addStretch(1)   # spare height goes below the form, not into the family preview
        scroll = self.experiment_scroll = QScrollArea()
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
        self.resizeDocks(docks[1:], [RUNS_DOCK_HEIGHT], Qt.Orientation.Vertical)

    def fit_experiment_panel(self) -> None:
        """The Experiment panel is as wide as its widest form needs (no horizontal scrolling, no
        field cut off), whatever family is shown or layout was restored."""
        scroll = self.experiment_scroll
        guard_wheel(scroll.widget())   # a new family brings new fields
        need = scroll.widget().minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() \
            + 2 * scroll.frameWidth()
        dock = self.findChild(QDockWidget, "experiment_dock")
        frame = dock.width() - scroll.width()   # the dock's own margins around the scroll area
        if need > scroll.width() and self._panel_width is None:
            self._panel_width = dock.width()   # widened for this form: narrowed again after it
        scroll.setMinimumWidth(max(EXPERIMENT_MIN_WIDTH, need))
        if self._panel_width is not None and need + frame <= self._panel_width:
            self.resizeDocks([dock], [self._panel_width], Qt.Orientation.Horizontal)
            self._panel_width = None

    def _connect(self) -> None:
        s = self.session
        s.training_changed.connect(self._update_actions)
        s.current_changed.connect(lambda _run: (self._update_actions(), self._label_panel()))
        s.training_changed.connect(self._label_panel)
        s.run_changed.connect(self._on_run_changed)
        self.run_list.selected.connect(self._on_run_selected)   # after the views made it current
        s.message.connect(lambda text, ms: self.statusBar().showMessage(readable(text, s.editing.family.name), ms))
        s.job_status.connect(self._show_jobs)
        s.error.connect(self.show_error)
        s.project_changed.connect(lambda project: (self.settings.setValue(PROJECT_KEY, str(project.folder)),
                                                   self.files.update_title()))
        # once the new family's form is laid out (the signal comes before that)
        self.family_editor.changed.connect(lambda: QTimer.singleShot(0, self.fit_experiment_panel))
        for panel in (self.family_editor, self.hyper_panel):
            panel.changed.connect(self._on_config_edited)
            panel.validity_changed.connect(lambda _valid: self._refresh_validity())
        self.hyper_panel.meta_lr_changed.connect(lambda _lr: self.session.training.apply_live(self.panel_config()))

    # -- the experiment being edited ------------------------------------------------------------
    def panel_config(self) -> ExperimentConfig:
        """What the panels show (not necessarily valid: see ``start_problem``)."""
        hp = self.hyper_panel
        return ExperimentConfig(self.family_editor.spec(), hp.model_spec(), hp.algorithm_spec(), hp.train_spec(),
                                hp.rl_spec())

    def choose_user_module(self) -> None:
        """Model → Network → Your own module (Python file)…"""
        if self.panel_config().is_rl:   # before the file is picked and run: a policy is the engine's MLP
            self.show_error("Your own module is for task families: a meta-RL policy is an MLP (set its hidden "
                            "layers in the Model panel)")
            return
        pick_user_module(self, self.panel_config, self.hyper_panel)

    def set_config(self, config: ExperimentConfig) -> None:
        self._syncing = True
        try:
            self.family_editor.set_spec(config.family)
            self.hyper_panel.set_config(config)
        finally:
            self._syncing = False
        self._on_config_edited()

    def _show_jobs(self, text: str) -> None:
        """Background jobs' progress has a place of its own in the status bar: it never covers what the
        bar says about the user's last action (an export, an error)."""
        label = self.jobs_label
        label.setText(label.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle, JOBS_WIDTH))   # keeps the %
        label.setToolTip(text if label.text() != text else "")
        label.setVisible(bool(text))

    def _on_run_selected(self, run_id) -> None:
        self.show_run_settings(run_id)

    def show_run_settings(self, run_id, ask: bool = True) -> None:
        """Selecting a run in the Runs list, or following one, loads its settings into the panels, so
        Start trains a new run with what they show. While a run trains they keep the training run's
        settings; settings edited for no run or file are replaced only when the user agrees (``ask``
        False: they are kept)."""
        s, run = self.session, self.session.runs.get(run_id)
        if run is None or run is not s.current or not self.panel_config().changes(run.config):
            return
        if s.is_training():
            self.statusBar().showMessage(f"The settings panel keeps those of {s.active.name}, which is training", 8000)
            return
        if self.files.edited() and not ask:
            return
        if self.files.edited() and not self.confirm(
                "Load the run's settings?", f"The settings being edited are held by no run or experiment file. "
                f"Replace them with those of {run.name}?"):
            self.statusBar().showMessage(f"{run.name} is shown; the panel keeps the edited settings", 8000)
            return
        try:
            self.files.show_settings(run.config)
        except MamlError as exc:
            self.show_error(f"Cannot show the settings of {run.name}: {exc}")
            return
        self.statusBar().showMessage(f"Settings of {run.name} loaded: Start trains a new run with them", 8000)

    def _on_run_changed(self, run) -> None:
        """Only a rename of the run the panel names changes its line (followed runs change every second)."""
        if self._panel_named is not None and self._panel_named[0] == run.run_id and self._panel_named[1] != run.name:
            self._label_panel()

    def _label_panel(self) -> None:
        """The line atop the Experiment panel says whose settings it shows: a run's, or new ones."""
        config, s = self.panel_config(), self.session
        source = next((r for r in (s.current, s.active) if r is not None and not config.changes(r.config)), None)
        self._panel_named = None if source is None else (source.run_id, source.name)
        if source is None:
            text = "New settings (no run has them yet)"
        else:
            training = source is s.active and s.is_training()
            text = f"Settings of <b>{html.escape(source.name)}</b>" + ("" if training else " · Start trains a new run")
        self.panel_source.setText(text)
        self.panel_source.setToolTip(PANEL_SOURCE_HELP)

    def start_problem(self) -> str | None:
        """Why Start is disabled, or None."""
        return self._problem

    def _refresh_validity(self) -> None:
        problem = self.family_editor.error() or self.hyper_panel.error()
        if problem is None:
            problem = config_problem(self.panel_config(), self.session.family_for)
        self._problem = None if problem is None else readable(problem, self.family_editor.spec().name)
        self.problem_banner.label.setText(f"Cannot start: {self._problem}" if problem else "")
        self.problem_banner.setVisible(problem is not None)
        self._update_actions()

    def _follow_data(self) -> bool:
        """The network follows the data: switching the family to images selects Conv-4, switching
        away from images the MLP (the status bar says so). True when it switched: the panel's own
        edit signal has then handled the edit already."""
        before, now = self.session.editing.family.name, self.family_editor.spec().name
        images = now in IMAGE_FAMILIES
        wanted = "conv4" if images else "mlp"
        if images == (before in IMAGE_FAMILIES) or self.hyper_panel.model_spec().name == wanted:
            return False
        self.network_note = (f"{'Image data' if images else 'Not image data'}: the network is now "
                             f"{NETWORK_NAMES[wanted]} (Model → Network changes it)")
        self.statusBar().showMessage(self.network_note, 10_000)
        self.hyper_panel.suggest_model(wanted)
        return True

    def take_network_note(self) -> str:
        """What the last family switch did to the network ("" if nothing), for an import's own message."""
        note, self.network_note = self.network_note, ""
        return note

    def _on_config_edited(self) -> None:
        if not self._syncing and self._follow_data():
            return
        self.hyper_panel.set_rl(is_env_family(self.family_editor.spec().name))   # its settings, not shots
        self._refresh_validity()
        config = self.panel_config()
        if not self._syncing and self.session.is_training() and not self.session.training.stopping:
            if not self.session.training.apply_live(config):
                if self.confirm("Reset the run?", "This change needs a new run. Stop the current run and reset?"):
                    self.reset()
                else:   # put the training run's settings back, with the live ones as edited
                    run = self.session.active
                    self.set_config(run.config.replace("train", meta_lr=config.train.meta_lr,
                                                       iterations=config.train.iterations))
                    return
        self.session.set_editing(config, self.family_editor.family())
        self._label_panel()

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def show_error(self, message: str) -> None:
        """Readable, non-blocking: a banner over the top of the plots (nothing moves) and the status bar."""
        message = readable(message, self.session.editing.family.name)   # fields as the panels name them
        self.error_banner.show_message(message)
        self.statusBar().showMessage(message, 15_000)

    # -- training controls ---------------------------------------------------------------------
    def start(self) -> None:
        if self.session.is_training():
            self.session.training.resume()
        elif self._can_start():
            self.error_banner.hide()
            self.session.training.start(self.panel_config())

    def toggle_pause(self) -> None:
        self.session.training.toggle_pause()
        self._update_actions()

    def step(self) -> None:
        if self.session.is_training() or self._can_start():
            if not self.session.is_training():
                self.error_banner.hide()
            self.session.training.step(self.panel_config())
        self._update_actions()

    def stop(self) -> None:
        self.session.training.stop()
        self._update_actions()

    def reset(self) -> None:
        """Stop any run and clear the views; every run stays in the run list."""
        self.session.training.reset()
        self.error_banner.hide()
        self._update_actions()

    def continue_run(self) -> None:
        """Training → Continue run: the current run carries on with its own settings."""
        run = self.session.current
        problem = self.session.training.continue_problem(run)
        if problem is not None:
            self.statusBar().showMessage(f"Cannot continue: {problem}", 10_000)
            return
        self.set_config(run.config)   # the panels show what the run trains with
        self.resume_banner.hide()
        self.error_banner.hide()
        self.session.training.continue_run(run)

    def offer_continue(self) -> None:
        """After a crash: name the runs it interrupted and offer to carry the latest one on."""
        training = self.session.training
        runs = [r for r in training.interrupted_runs() if training.continue_problem(r) is None]
        if not runs:
            self.resume_banner.hide()
            return
        run = runs[-1]
        names = ", ".join(f"{r.name} (at iteration {r.checkpoint_iteration:,})" for r in runs)
        self.resume_banner.show_message(
            f"MAML Explorer did not close normally; interrupted: {names}. Each continues exactly from its last "
            "checkpoint (select it, then Training → Continue run).",
            (f"Continue {run.name}", lambda: (self.session.set_current(run.run_id), self.continue_run())))

    def _can_start(self) -> bool:
        if self._problem is not None:
            self.statusBar().showMessage(f"Cannot start: {self._problem}", 10_000)
            return False
        return True

    def _update_actions(self) -> None:
        a, s = self.actions, self.session
        active, paused, stopping = s.is_training(), s.training.is_paused(), s.training.stopping
        a.start.setEnabled((not active and self._problem is None) or (paused and not stopping))
        a.start.setToolTip(f"Cannot start: {self._problem}" if self._problem and not active
                           else "Start training (or resume a paused run) (Ctrl+Return)")
        a.pause.setEnabled(active and not stopping)
        a.pause.setChecked(paused)
        a.pause.setText("Resume" if paused else "Pause")
        a.step.setEnabled((active and not stopping) or (not active and self._problem is None))
        a.stop.setEnabled(active and not stopping)
        a.reset.setEnabled(active or s.current is not None)
        a.continue_run.setEnabled(s.training.continue_problem(s.current) is None)

    # -- drops: a run or sweep folder is followed, an image folder imported, anything else goes to the CSV import
    def dragEnterEvent(self, event) -> None:
        folder = self.weights.drop_target(event.mimeData())
        if folder is not None:
            event.acceptProposedAction()
            self.statusBar().showMessage(f"Drop to follow {folder.name}", 5000)
            return
        images = self.images.drop_target(event.mimeData())
        if images is not None:
            event.acceptProposedAction()
            self.statusBar().showMessage(f"Drop to import the images in {images.name}/", 5000)
            return
        self.csv.drag_enter(event)

    def dragMoveEvent(self, event) -> None:
        event.acceptProposedAction()   # reached only after dragEnterEvent accepted

    def dragLeaveEvent(self, event) -> None:
        self.statusBar().clearMessage()

    def dropEvent(self, event) -> None:
        folder = self.weights.drop_target(event.mimeData())
        if folder is not None:
            event.acceptProposedAction()
            self.weights.follow(folder)
            return
        images = self.images.drop_target(event.mimeData())
        if images is not None:
            event.acceptProposedAction()
            self.images.import_images(images)
            return
        self.csv.drop(event)

    # -- window state ------------------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        geometry, state = self.settings.value("window/geometry"), self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def shutdown(self, timeout_ms: int = 60_000) -> bool:
        """Stop training, finish every job and write the project; False when something would be lost."""
        self.csv.close_dialog()
        self.images.close_dialog()
        if not self.launch.settle_on_close():   # launched children: stop them, or leave them running
            return False
        if not self.session.close(timeout_ms):
            self.show_error("Training does not stop (a meta-iteration is still running); try closing again.")
            return False
        shutdown_all(timeout_ms, within=self)   # export, adapt and CSV jobs
        if self.session.save_problem is not None and not self.confirm(
                "Close without saving?", f"Some runs could not be written to {self.session.project.folder} "
                f"({self.session.save_problem}). Close anyway and lose them?"):
            return False
        return True

    def closeEvent(self, event) -> None:
        if not self._closed and not self.shutdown():
            event.ignore()
            return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()
        self._closed = True
        super().closeEvent(event)
