"""The window's actions (with icons and shortcuts), its menus and its toolbar.

Actions only call the window's plain methods, so tests drive the same code paths by calling
those methods (or ``action.trigger()``) without menus or dialogs.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import QMenu, QStyle, QToolBar, QWidget

ICON_DIR = Path(str(files("maml_explorer_assets") / "icons"))  # shipped in the wheel, see pyproject.toml

_FALLBACK = {
    "start": QStyle.StandardPixmap.SP_MediaPlay, "pause": QStyle.StandardPixmap.SP_MediaPause,
    "step": QStyle.StandardPixmap.SP_MediaSkipForward, "stop": QStyle.StandardPixmap.SP_MediaStop,
    "reset": QStyle.StandardPixmap.SP_BrowserReload, "open": QStyle.StandardPixmap.SP_DialogOpenButton,
    "save": QStyle.StandardPixmap.SP_DialogSaveButton, "export": QStyle.StandardPixmap.SP_DriveFDIcon,
}


def icon(widget: QWidget, name: str) -> QIcon:
    """The app's own SVG icon, or the platform's standard icon when the file is missing."""
    path = ICON_DIR / f"{name}.svg"
    if path.is_file():
        found = QIcon(str(path))
        if not found.isNull():
            return found
    return widget.style().standardIcon(_FALLBACK[name])


@dataclass
class Actions:
    start: QAction
    pause: QAction
    step: QAction
    stop: QAction
    reset: QAction
    continue_run: QAction
    run_sweep: QAction
    run_processes: QAction
    adapt: QAction
    new: QAction
    open: QAction
    open_weights: QAction
    follow: QAction
    save: QAction
    save_as: QAction
    import_csv: QAction
    import_csv_folder: QAction
    import_images: QAction
    export_weights: QAction
    export_run_folder: QAction
    export_curves: QAction
    export_plots: dict[str, QAction]
    open_project: QAction
    save_project_as: QAction
    quit: QAction
    recent: QMenu


PLOT_TITLES = {"loss": "Meta-training loss", "grad": "Meta-gradient norm", "steps": "Per-step query loss",
               "adaptation": "Adaptation on held-out tasks", "task": "Held-out task view"}


def build_actions(window) -> Actions:
    def make(text, slot, shortcut=None, icon_name=None, tip=""):
        action = QAction(text, window)
        if icon_name:
            action.setIcon(icon(window, icon_name))
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        shown = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        action.setToolTip(f"{tip} ({shown})" if shown and tip else tip or text)
        action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    pause = make("Pause", window.toggle_pause, "Space", "pause", "Pause training / resume it")
    pause.setCheckable(True)
    plots = {key: make(f"{title}…", lambda key=key: window.files.choose_plot_export(key), None, None,
                       f"Save the {title.lower()} plot as PNG or SVG") for key, title in PLOT_TITLES.items()}
    return Actions(
        start=make("Start", window.start, "Ctrl+Return", "start", "Start training (or resume a paused run)"),
        pause=pause,
        step=make("Step", window.step, "Ctrl+Right", "step", "Run exactly one meta-iteration, then pause"),
        stop=make("Stop", window.stop, "Ctrl+.", "stop", "Stop training; the run and its weights are kept"),
        reset=make("Reset", window.reset, "Ctrl+R", "reset", "Stop and clear the live plots for a fresh run"),
        continue_run=make("Continue run", window.continue_run, "Ctrl+Shift+Return", None,
                          "Carry the selected stopped or interrupted run on from its last checkpoint, exactly"),
        run_sweep=make("Run as a sweep…", window.launch.choose_sweep, None, None,
                       "Train the settings shown over several seeds (and a grid of settings) in separate processes; "
                       "the window follows the runs and shows each setting as its mean across seeds"),
        run_processes=make("Run in N processes…", window.launch.choose_processes, None, None,
                           "Train the settings shown as one run, data-parallel over N local processes; the window "
                           "follows it"),
        new=make("New experiment", window.files.new_experiment, QKeySequence.StandardKey.New, None, "Default settings"),
        open=make("Open experiment…", window.files.choose_open, QKeySequence.StandardKey.Open, "open",
                  "Open an experiment file (JSON)"),
        save=make("Save experiment", window.files.choose_save, QKeySequence.StandardKey.Save, "save",
                  "Save the experiment settings as JSON"),
        save_as=make("Save experiment as…", lambda: window.files.choose_save(ask=True), QKeySequence.StandardKey.SaveAs,
                     None, "Save the experiment settings under a new name"),
        import_csv=make("Import CSV…", window.csv.choose_import_csv, "Ctrl+I", None,
                        "Meta-learn on your own data: CSV files (one long file with a task column, or one file "
                        "per task); you can also drop files or a folder onto the window"),
        import_csv_folder=make("Import CSV folder…", lambda: window.csv.choose_import_csv(folder=True), None, None,
                               "A folder of CSV files with the same columns, one task per file"),
        import_images=make("Import image folder…", window.images.choose_import_images, None, None,
                           "Few-shot image classification on your own images: a folder with one folder per class "
                           "(or Omniglot's alphabet/character folders, or train/ val/ test/); you can also drop it "
                           "onto the window"),
        export_weights=make("Export weights…", window.weights.choose_export_weights, "Ctrl+E", "export",
                            "Write the run's weights as safetensors, PyTorch .pt or ONNX, to use them elsewhere"),
        export_run_folder=make("Export run folder…", window.files.choose_export_run_folder, None, None,
                               "Write config.json, weights.safetensors and metrics.csv of a run into a folder"),
        open_weights=make("Open weights or run…", window.weights.choose_open_weights, "Ctrl+Shift+O", None,
                          "Open a run folder or a .safetensors / .pt weights file: continue training, evaluate, adapt"),
        follow=make("Follow a run or sweep folder…", window.weights.choose_follow, None, None,
                    "Watch a run that maml-gui train, a sweep or torchrun writes: its curves grow live"),
        adapt=make("Adapt to a new task…", window.weights.show_adapt_view, "Ctrl+Shift+A", None,
                   "Fine-tune the current weights on a held-out task, CSV rows or clicked points"),
        export_curves=make("Export curves as CSV…", window.files.choose_export_curves, None, None,
                           "Write the loss curves of the current and compared runs as CSV"),
        export_plots=plots,
        open_project=make("Open project…", window.files.choose_open_project, None, None,
                          "Open (or create) a project folder: every run in it comes back with its curves and weights"),
        save_project_as=make("Save project as…", window.files.choose_save_project_as, None, None,
                             "Write every run of this project into another folder and continue there"),
        quit=make("Quit", window.close, QKeySequence.StandardKey.Quit, None, "Close the window"),
        recent=QMenu("Recent experiments", window),
    )


def build_menus(window, actions: Actions) -> None:
    bar = window.menuBar()
    file = bar.addMenu("&File")
    for action in (actions.new, actions.open):
        file.addAction(action)
    file.addMenu(actions.recent)
    file.addAction(actions.open_weights)
    file.addAction(actions.follow)
    file.addSeparator()
    file.addAction(actions.open_project)
    file.addAction(actions.save_project_as)
    file.addSeparator()
    file.addAction(actions.save)
    file.addAction(actions.save_as)
    file.addSeparator()
    file.addAction(actions.import_csv)
    file.addAction(actions.import_csv_folder)
    file.addAction(actions.import_images)
    file.addSeparator()
    file.addAction(actions.export_weights)
    file.addAction(actions.export_run_folder)
    plots = file.addMenu(icon(window, "export"), "Export plot")
    for action in actions.export_plots.values():
        plots.addAction(action)
    file.addAction(actions.export_curves)
    file.addSeparator()
    file.addAction(actions.quit)
    network = bar.addMenu("&Model").addMenu("Network")
    window.user_module_action = network.addAction("Your own module (Python file)…")
    window.user_module_action.triggered.connect(window.choose_user_module)
    train = bar.addMenu("&Training")
    for action in (actions.start, actions.pause, actions.step, actions.stop, actions.reset, actions.continue_run):
        train.addAction(action)
    train.addSeparator()
    train.addAction(actions.run_sweep)
    train.addAction(actions.run_processes)
    train.addSeparator()
    train.addAction(actions.adapt)
    window.view_menu = bar.addMenu("&View")


def build_toolbar(window, actions: Actions) -> QToolBar:
    bar = QToolBar("Training", window)
    bar.setObjectName("training_toolbar")
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    bar.setMovable(False)
    for action in (actions.start, actions.pause, actions.step, actions.stop, actions.reset):
        bar.addAction(action)
    bar.addSeparator()
    for action in (actions.open, actions.save, actions.export_weights):
        bar.addAction(action)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
    return bar
