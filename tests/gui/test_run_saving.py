"""A window run's folder follows its training: written at once, then every ``save_interval`` seconds
by appending what changed, never more than that behind, so a crash (SIGKILL) loses at most that."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core.storage.checkpoint import load_run, load_training_state
from core.storage.metrics import read_metrics
from maml_gui.session.project import Project
from maml_gui.session.session import Session
from maml_gui.jobs.training import WorkerOptions

from .support import tiny


OPTIONS = WorkerOptions(eval_tasks=4, inspect_interval=0.3, save_interval=0.3)
ROOT = Path(__file__).resolve().parents[2]

# The window as a user runs it, on its own project and settings, training a sinusoid run that does not end.
CHILD = r"""
import sys
from pathlib import Path
from PySide6.QtCore import QSettings
from core.config import ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from maml_gui.app import application
from maml_gui.window.main_window import MainWindow
from maml_gui.jobs.training import WorkerOptions

folder, every = Path(sys.argv[1]), float(sys.argv[2])
app = application()
config = ExperimentConfig(family=FamilySpec("sinusoid", {}), model=ModelSpec(hidden=(8,)),
                          train=TrainSpec(meta_batch=2, shots=5, query=5, iterations=100_000_000))
settings = QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)
window = MainWindow(config, settings=settings, options=WorkerOptions(eval_tasks=4, save_interval=every),
                    project=folder / "project")
window.show()
window.start()
app.exec()
"""


def checkpoint(project: Path) -> int:
    """The iteration of the training state committed in the project's one run folder (-1: none yet)."""
    for state in project.glob("runs/*/training_state.safetensors"):
        try:
            return int(load_training_state(state.parent)[1]["iteration"])
        except Exception:  # noqa: BLE001 - a file being replaced right now: look again
            return -1
    return -1


def test_a_window_killed_mid_run_comes_back_with_its_training(qtbot, tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "OMP_NUM_THREADS": "1", "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), "0.3"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    project = tmp_path / "project"
    try:
        qtbot.waitUntil(lambda: checkpoint(project) > 0, timeout=60_000)
        first = checkpoint(project)
        qtbot.waitUntil(lambda: checkpoint(project) > first, timeout=30_000)   # written again: periodically
        child.send_signal(signal.SIGKILL)
        killed = time.time()
        child.wait(timeout=10)
    finally:
        child.kill()
        child.wait()
        stderr = child.stderr.read().decode()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL, stderr
    [folder] = project.glob("runs/*")
    behind = killed - (folder / "training_state.safetensors").stat().st_mtime
    print(f"SIGKILL {behind:.2f} s after the last checkpoint (iteration {checkpoint(project)})")
    assert behind < 15.0, "a crash loses at most about one save interval of training"

    session = Session(project, OPTIONS)
    try:
        assert session.load_project() == []
        [run] = list(session.runs)
        at = checkpoint(project)
        assert run.status == "interrupted" and run.checkpoint_iteration == at > first
        np.testing.assert_array_equal(run.history.iterations, np.arange(1, at + 1))   # every row, once
        np.testing.assert_array_equal(read_metrics(folder)[:, 0], np.arange(1, at + 1))
        _, weights = load_run(folder)
        assert all(torch.equal(run.weights[k], weights[k]) for k in weights)
        assert session.training.continue_problem(run) is None
    finally:
        assert session.close()


def test_a_finished_window_run_writes_every_iteration_to_metrics_csv(qtbot, make_window):
    window = make_window(tiny(400))
    with qtbot.waitSignal(window.session.controller.running_changed, timeout=30_000,
                          check_params_cb=lambda active: not active):
        window.start()
        run = window.session.active
        run.history.limit = 64   # the plots keep a decimated history, as for a 70,000-iteration run
    assert window.session.flush()
    assert run.history.stride > 1 and len(run.history) < 400
    metrics = read_metrics(window.session.project.folder / run.folder)
    np.testing.assert_array_equal(metrics[:, 0], np.arange(1, 401))


def test_a_periodic_write_appends_to_metrics_csv_instead_of_rewriting_it(qtbot, tmp_path):
    session = Session(tmp_path / "project", OPTIONS)
    session.load_project()
    try:
        run = session.training.start(tiny())
        path = lambda: tmp_path / "project" / run.folder / "metrics.csv"  # noqa: E731
        rows = lambda: read_metrics(path().parent) if run.folder else None  # noqa: E731 - None while being created
        qtbot.waitUntil(lambda: rows() is not None and len(rows()) > 5, timeout=30_000)
        before, inode = path().read_bytes(), path().stat().st_ino
        qtbot.waitUntil(lambda: path().stat().st_size > len(before), timeout=30_000)
        assert path().stat().st_ino == inode, "appended in place, not replaced by a rewrite"
        assert path().read_bytes().startswith(before)
        session.training.stop()
        qtbot.waitUntil(lambda: not session.is_training(), timeout=30_000)
    finally:
        assert session.close()
    rows = read_metrics(path().parent)[:, 0]
    np.testing.assert_array_equal(rows, np.arange(1, run.iteration + 1))


def test_a_failed_write_loses_no_row_and_repeats_none(qtbot, tmp_path, monkeypatch):
    session = Session(tmp_path / "project", OPTIONS)
    session.load_project()
    real, calls = Project.write_run, []

    def flaky(self, snap):
        calls.append(snap)
        if len(calls) == 3:   # halfway: the rows are appended, the training state is not
            from core.storage.metrics import append_metrics_table

            append_metrics_table(self.folder / snap.folder, snap.metrics)
            from core.errors import MamlError

            raise MamlError("No space left on device")
        real(self, snap)

    monkeypatch.setattr(Project, "write_run", flaky)
    try:
        run = session.training.start(tiny())
        qtbot.waitUntil(lambda: len(calls) >= 5, timeout=30_000)
        session.training.stop()
        qtbot.waitUntil(lambda: not session.is_training(), timeout=30_000)
        assert session.flush() and session.save_problem is None
    finally:
        session.close()
    rows = read_metrics(tmp_path / "project" / run.folder)[:, 0]
    np.testing.assert_array_equal(rows, np.arange(1, run.iteration + 1))   # the rows of the failed write, once


@pytest.mark.parametrize("every", [0.3, 15.0])
def test_the_save_interval_is_the_sessions_setting(qtbot, tmp_path, every):
    from maml_gui.session.run_saver import SAVE_SHARE, RunSaver

    session = Session(tmp_path / "p", WorkerOptions(save_interval=every))
    assert session.options.save_interval == every
    saver = RunSaver(session, lambda: session.project)
    assert saver.interval(every) == every
    saver.cost = 2 * SAVE_SHARE * every   # writing took twice its share: the next write waits twice as long
    assert saver.interval(every) == pytest.approx(2 * every)


def test_stop_does_not_wait_for_held_out_scoring_which_says_what_it_does(qtbot, tmp_path):
    """Scoring half a million held-out tasks takes a minute; Stop answers within a part of it."""
    slow = WorkerOptions(eval_tasks=500_000, inspect_interval=0.05, baseline=False)
    session = Session(tmp_path / "project", slow)
    session.load_project()
    messages, jobs = [], []
    session.message.connect(lambda text, ms: messages.append(text))
    session.job_status.connect(jobs.append)
    said = lambda start, lines=messages: any(m.startswith(start) for m in lines)  # noqa: E731
    try:
        run = session.training.start(tiny())
        qtbot.waitUntil(lambda: said("Scoring the run on 500,000 held-out tasks… "), timeout=30_000)
        assert {"Building the task family…", "Running the first meta-iteration…"} <= set(messages)
        assert run.iteration > 0   # it trained before scoring
        with qtbot.waitSignal(session.controller.running_changed, timeout=10_000, check_params_cb=lambda on: not on):
            session.training.stop()
        assert run.status == "stopped" and run.adaptation is None   # the scoring was cancelled, not waited for
        # the final scores are computed in the background, with their progress in the status bar
        qtbot.waitUntil(lambda: said(f"{run.name}: scoring 500,000 held-out tasks (in the background)… ", jobs),
                        timeout=30_000)
        assert not said(f"{run.name}: scoring"), "background progress never takes the status bar's message"

        assert run.weights is not None and (tmp_path / "project" / run.folder / "weights.safetensors").is_file()
    finally:
        assert session.close()   # closing cancels the background scoring too
    assert run.adaptation is None


@pytest.mark.timeout(60)
def test_a_fifo_in_place_of_a_runs_config_is_named_not_opened(tmp_path):
    """Reopening a project never opens a FIFO left as a run's config.json (it would hang the window):
    the run is reported by name and the others load."""
    folder = tmp_path / "project"
    (folder / "runs" / "001-x").mkdir(parents=True)
    os.mkfifo(folder / "runs" / "001-x" / "config.json")
    (folder / "project.json").write_text('{"format": 1, "runs": [{"folder": "runs/001-x", "name": "x"}]}')
    project = Project(folder)
    try:
        loaded = project.load()
    finally:
        project.release()
    assert loaded.runs == [] and len(loaded.problems) == 1
    assert loaded.problems[0].startswith("x: ") and "config.json: is a named pipe (FIFO)" in loaded.problems[0]


def test_save_project_as_and_export_copy_every_row_of_a_long_run(qtbot, make_window, tmp_path):
    """The copies take the project's metrics.csv (every iteration), not the plots' decimated history."""
    window = make_window(tiny(400))
    with qtbot.waitSignal(window.session.controller.running_changed, timeout=30_000,
                          check_params_cb=lambda active: not active):
        window.start()
        run = window.session.active
        run.history.limit = 64   # as a run past 50,000 iterations: the history keeps every other row
    assert window.session.flush() and len(run.history) < 400
    window.session.export_run_folder(tmp_path / "exported", run)
    np.testing.assert_array_equal(read_metrics(tmp_path / "exported")[:, 0], np.arange(1, 401))
    assert window.session.save_project_as(tmp_path / "elsewhere")
    np.testing.assert_array_equal(read_metrics(tmp_path / "elsewhere" / run.folder)[:, 0], np.arange(1, 401))


def test_background_progress_has_its_own_place_and_never_covers_a_message(make_window):
    """Scoring progress came as status-bar messages every half second, so "exported to …" or an error
    vanished at once under "scoring 8 held-out tasks… 44%"."""
    window = make_window()
    window.statusBar().showMessage("Exported weights.safetensors", 8000)
    window.session.job_status.emit("run 1: scoring 8 held-out tasks (in the background)… 44%")
    assert window.statusBar().currentMessage() == "Exported weights.safetensors"
    assert window.jobs_label.isVisibleTo(window) and window.jobs_label.text().endswith("44%")
    window.session.job_status.emit("")
    assert not window.jobs_label.isVisibleTo(window)
