"""The history plots' x axis: iteration, relative time, wall-clock time (a date axis) and training time;
runs of a version whose metrics.csv has no wall_time column fall back to training time and say why."""

import time

import numpy as np

from maml_gui.session.overlays import Overlay
from maml_gui.session.runs import History
from maml_gui.window.panels import PlotsArea
from tests.gui.test_plot_style import tick_labels

T0 = 1.8e9   # 2027-01-15, seconds since the epoch


def timed(n: int, start: float | None, pause_after: int | None = None, pause: float = 0.0) -> History:
    """``n`` meta-iterations of 0.5 s each from ``start`` (None: no clock times, as an old metrics.csv),
    with a ``pause`` of wall time after iteration ``pause_after`` (a stop, then Continue)."""
    h = History()
    its = np.arange(1, n + 1)
    loss = 0.5 + 1 / its
    wall = None if start is None else start + 0.5 * its + np.where(its > (pause_after or n), pause, 0.0)
    h.append(its, loss, 2 / np.sqrt(its), np.full(n, 0.5), np.column_stack([loss * 2, loss]), wall)
    return h


def area(qtbot) -> PlotsArea:
    plots = PlotsArea()
    plots.resize(1000, 700)
    qtbot.addWidget(plots)
    plots.show()
    qtbot.waitExposed(plots)
    return plots


def pick(plots: PlotsArea, mode: str) -> None:
    """The user picks ``mode`` in the loss plot's x choice: every history plot follows."""
    index = plots.loss._x_choice.findData(mode)
    assert plots.loss._x_choice.model().item(index).isEnabled()
    plots.loss._x_choice.setCurrentIndex(index)
    plots.loss._x_choice.activated.emit(index)


def bottom(plots: PlotsArea, view=None):
    return (view or plots.loss).plot.getPlotItem().getAxis("bottom")


def test_relative_and_wall_clock_time_switch_the_x_data_and_the_labels(qtbot):
    plots = area(qtbot)
    resumed = timed(100, T0, pause_after=60, pause=300.0)   # stopped for 5 minutes after iteration 60
    later = timed(40, T0 + 3600)                            # ran an hour later
    plots.set_history(resumed, "run 1", "#1f77b4")
    plots.set_overlays([Overlay("run 2", "#2ca02c", later)])
    assert [plots.loss._x_choice.itemText(i) for i in range(4)] == \
        ["iteration", "relative time", "wall-clock time", "training time"]
    qtbot.waitUntil(lambda: len(plots.loss.data()["raw"][0]) == 100)

    pick(plots, "relative")
    for view in plots.history_plots():
        assert view.x_axis() == view.x_axis_used() == "relative"
        assert bottom(plots, view).labelText.startswith("relative time")
    qtbot.waitUntil(lambda: plots.loss.data()["raw"][0][-1] == 350.0)
    x, y = plots.loss.data()["raw"]
    assert len(x) == 101 and np.isnan(y[60]) and np.isfinite(np.delete(y, 60)).all()   # the pause breaks the line
    x = np.delete(x, 60)
    np.testing.assert_allclose(x[:60], 0.5 * np.arange(1, 61))       # since the run began (its first step)
    np.testing.assert_allclose(x[60:], 0.5 * np.arange(61, 101) + 300)   # the pause is real time
    assert np.diff(x).max() == 300.5
    np.testing.assert_allclose(plots.loss.overlay_data()["run 2"][0], 0.5 * np.arange(1, 41))   # starts aligned
    texts = [t for _, t in tick_labels(bottom(plots))]
    assert texts and all(t.endswith(" s") or ":" in t for t in texts), texts

    pick(plots, "wall")
    assert bottom(plots).labelText == "wall-clock time" and bottom(plots).mode == "dates"
    qtbot.waitUntil(lambda: plots.loss.data()["raw"][0][0] == T0 + 0.5)
    np.testing.assert_allclose(plots.loss.data()["raw"][0][-1], T0 + 350.0)
    np.testing.assert_allclose(plots.loss.overlay_data()["run 2"][0][[0, -1]], [T0 + 3600.5, T0 + 3620])   # when it ran
    np.testing.assert_allclose(plots.steps.data()[0][0][[0, -1]], [T0 + 0.5, T0 + 350.0])
    plots.loss.reset_view()
    plots.loss.vb.refresh_auto_range()
    texts = [t for _, t in tick_labels(bottom(plots))]
    clock = time.strftime("%H:%M", time.localtime(T0 + 1800))[:2]   # the hour, in local time as the axis shows
    assert texts and all(":" in t or t.isdigit() for t in texts) and any(t.startswith(clock) for t in texts), texts

    pick(plots, "iteration")
    qtbot.waitUntil(lambda: plots.loss.data()["raw"][0][-1] == 100)
    assert bottom(plots).mode == "values" and bottom(plots).labelText == "meta-iteration"


def test_a_run_without_clock_times_is_drawn_against_training_time_and_says_why(qtbot):
    plots = area(qtbot)
    old, new = timed(30, None), timed(20, T0)
    plots.set_history(new, "new run", "#1f77b4")
    plots.set_overlays([Overlay("old run", "#2ca02c", old)])
    pick(plots, "wall")
    qtbot.waitUntil(lambda: len(plots.loss.data()["raw"][0]) == 20)
    assert len(plots.loss.overlay_data()["old run"][0]) == 0   # it cannot be placed in time
    assert "old run (no clock time)" in [n for _, n in plots.loss.legend.entries()]

    plots.set_history(old, "old run", "#2ca02c")   # selecting the old run
    plots.set_overlays([])
    choice = plots.loss._x_choice
    assert plots.loss.x_axis() == "wall" and plots.loss.x_axis_used() == "time"
    assert choice.currentData() == "time" and "wall_time" in choice.toolTip()
    for mode in ("relative", "wall"):
        item = choice.model().item(choice.findData(mode))
        assert not item.isEnabled() and "no clock" in item.toolTip()
    assert bottom(plots).labelText.startswith("training time") and bottom(plots).mode == "durations"
    qtbot.waitUntil(lambda: plots.loss.data()["raw"][0][-1] == 15.0)
    np.testing.assert_allclose(plots.loss.data()["raw"][0], 0.5 * np.arange(1, 31))

    plots.set_history(new, "new run", "#1f77b4")   # back to a run with clock times: the choice is kept
    assert plots.loss.x_axis_used() == "wall" and choice.currentData() == "wall"
    qtbot.waitUntil(lambda: plots.loss.data()["raw"][0][0] == T0 + 0.5)


def test_an_old_run_continued_gets_its_clock_axis_for_the_new_rows(qtbot):
    """Rows before the wall_time column have no place in time; the continued rows do."""
    plots = area(qtbot)
    h = timed(10, None)
    plots.set_history(h, "run 1", "#1f77b4")
    plots.set_x_axis("relative")
    assert plots.loss.x_axis_used() == "time"
    its = np.arange(11, 16)
    h.append(its, np.ones(5), np.ones(5), np.full(5, 0.5), np.ones((5, 2)), T0 + 0.5 * (its - 10))
    plots.refresh()
    qtbot.waitUntil(lambda: plots.loss.x_axis_used() == "relative" and len(plots.loss.data()["raw"][0]) == 5)
    np.testing.assert_allclose(plots.loss.data()["raw"][0], 0.5 * np.arange(1, 6))


def test_window_runs_write_their_clock_times_and_an_old_project_continues_with_them(qtbot, tmp_path):
    """A window run's metrics.csv gets wall_time as the CLI's does; a run of a project written before the
    column loads without clock times, and continued, its new rows have them (the file gains the column)."""
    import shutil
    from dataclasses import replace
    from pathlib import Path

    from core.storage.metrics import METRICS_FILE, read_metrics
    from maml_gui.jobs.training import WorkerOptions
    from maml_gui.session.session import Session
    from .support import tiny

    old = tmp_path / "old"
    shutil.copytree(Path(__file__).parents[1] / "data" / "project-0567a30", old)

    session = Session(old, WorkerOptions(eval_tasks=4, inspect_interval=0.3, save_interval=0.3))
    try:
        assert session.load_project() == []
        runs = list(session.runs)
        assert all(len(r.history) and not r.history.has_wall_time() for r in runs)
        run = runs[1]   # as if stopped at 30 of 40 iterations, so it may be continued
        run.config = replace(run.config, train=replace(run.config.train, iterations=40))
        run.status = "stopped"
        before = time.time()
        with qtbot.waitSignal(session.controller.running_changed, timeout=60_000,
                              check_params_cb=lambda active: not active):
            assert session.training.continue_run(run)
        assert session.flush()
        after = time.time()
        assert run.history.has_wall_time() and run.iteration == 40
        folder = old / run.folder
        assert (folder / METRICS_FILE).read_text().splitlines()[0].endswith(",wall_time")
        table = read_metrics(folder)
        assert table[:, 0].tolist() == list(range(1, 41))
        assert np.isnan(table[:30, -1]).all()
        assert (before - 0.01 <= table[30:, -1]).all() and (table[30:, -1] <= after + 0.01).all()

        with qtbot.waitSignal(session.controller.running_changed, timeout=60_000,
                              check_params_cb=lambda active: not active):
            new = session.training.start(tiny(15))   # a new window run
        assert session.flush()
        table = read_metrics(old / new.folder)
        assert table.shape[0] == 15 and np.isfinite(table[:, -1]).all() and np.all(np.diff(table[:, -1]) >= 0)
        np.testing.assert_allclose(new.history.wall_times, table[:, -1], rtol=0, atol=6e-4)   # ms in the file
    finally:
        assert session.close()



def test_curves_csv_ends_with_each_rows_clock_time():
    from core.config import ExperimentConfig
    from maml_gui.session.runs import RunRecord, curves_csv

    new, old = RunRecord(1, "new", ExperimentConfig()), RunRecord(2, "old", ExperimentConfig())
    new.history, old.history = timed(3, T0), timed(2, None)
    lines = curves_csv([new, old]).splitlines()
    assert lines[0].endswith(",step_loss_1,wall_time")
    assert lines[1].endswith(f",{T0 + 0.5:.3f}") and lines[-1].endswith(",")   # the old run: no clock time


def test_a_run_of_a_fraction_of_a_second_still_gets_time_ticks(qtbot):
    """Training time of a short run is a few hundredths of a second: the axis labels them, not nothing."""
    plots = area(qtbot)
    h = History()
    its = np.arange(1, 31)
    h.append(its, 1 / its, np.ones(30), np.full(30, 0.001), np.ones((30, 2)))   # 30 steps of 1 ms
    plots.set_history(h, "run 1", "#1f77b4")
    plots.set_x_axis("time")
    qtbot.waitUntil(lambda: len(plots.loss.data()["raw"][0]) == 30 and np.isclose(plots.loss.data()["raw"][0][-1], 0.03))
    plots.loss.vb.refresh_auto_range()
    texts = [t for _, t in tick_labels(bottom(plots))]
    assert len(texts) >= 2 and all(t.endswith(" s") and "." in t for t in texts), texts
