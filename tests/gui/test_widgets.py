"""Widget tests: drive each widget through its own API, assert on the data it shows (never pixels)."""

import math
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QIcon

from core.config import ExperimentConfig, FamilySpec
from core.trained.evaluation import FunctionView
from maml_gui.widgets.family_editor import FamilyEditor
from maml_gui.widgets.hyper_panel import HyperPanel
from maml_gui.session.overlays import run_color
from maml_gui.widgets.plot_math import MAX_DISPLAY_POINTS
from maml_gui.session.runs import History
from maml_gui.widgets.adaptation_plot import AdaptationPlot
from maml_gui.widgets.function_plot import FunctionPlot
from maml_gui.widgets.loss_plot import LossPlot
from maml_gui.widgets.run_list import RunList
from maml_gui.widgets.step_loss_plot import StepLossPlot

ICONS = Path(__file__).resolve().parents[2] / "assets" / "icons"


@pytest.fixture
def editor(qtbot):
    widget = FamilyEditor()
    qtbot.addWidget(widget)
    return widget


def _range_boxes(editor, field):
    return editor.form.field_widgets[field]


# ---------------------------------------------------------------- FamilyEditor
def test_family_editor_defaults_to_a_valid_sinusoid(editor):
    assert editor.spec().name == "sinusoid"
    assert editor.error() is None
    assert editor.spec().params["amplitude"] == [0.1, 5.0]
    assert editor.spec().params["phase"] == [0.0, math.pi]  # full precision kept by the spin boxes


def test_amplitude_min_above_max_is_marked_then_cleared(editor, qtbot):
    low, high = _range_boxes(editor, "family.amplitude")
    with qtbot.waitSignal(editor.validity_changed) as blocker:
        low.setValue(6.0)
    assert blocker.args == [False]
    assert "amplitude" in editor.error() and "larger than max" in editor.error()
    assert low.property("invalid") and "larger than max" in low.toolTip()
    assert not editor._error_label.isHidden()
    with qtbot.waitSignal(editor.validity_changed) as blocker:
        high.setValue(7.0)
    assert blocker.args == [True]
    assert editor.error() is None and not low.property("invalid")
    assert editor.spec().params["amplitude"] == [6.0, 7.0]


def test_bad_formula_names_the_unknown_function(editor, qtbot):
    editor.set_spec(FamilySpec("formula", {}))
    assert editor.error() is None
    edit = editor.form.field_widgets["family.expression"][0]
    with qtbot.waitSignal(editor.validity_changed) as blocker:
        edit.setText("a*sine(x)")
    assert blocker.args == [False]
    assert editor.error_field() == "family.expression" and "'sine'" in editor.error()
    assert edit.property("invalid")
    edit.setText("a*sin(x) + d")  # a new parameter gets its own range row
    assert editor.error() is None
    assert set(editor.spec().params["ranges"]) == {"a", "d"}
    assert editor.spec().params["ranges"]["a"] == [0.1, 5.0]  # kept from before


def test_set_spec_round_trips_a_formula_family(editor):
    spec = FamilySpec("formula", {"expression": "k*x^2", "ranges": {"k": [-2.0, 3.0]}, "noise": 0.5})
    editor.set_spec(spec)
    params = editor.spec().params
    assert params["expression"] == "k*x^2" and params["ranges"] == {"k": [-2.0, 3.0]} and params["noise"] == 0.5


def test_preview_draws_tasks_and_new_tasks_changes_them(editor, qtbot):
    qtbot.waitUntil(lambda: len(editor.preview_data()["curves"]) == 5)
    x, y = editor.preview_data()["curves"][0]
    assert len(x) == len(y) == 200 and np.isfinite(y).all()
    editor._new_tasks.click()
    assert not np.allclose(editor.preview_data()["curves"][0][1], y)
    low, _ = _range_boxes(editor, "family.amplitude")
    low.setValue(99.0)  # invalid: the last good preview stays
    editor._redraw_preview()
    assert len(editor.preview_data()["curves"]) == 5


def test_blobs_preview_is_a_scatter(editor, qtbot):
    editor.set_spec(FamilySpec("blobs", {"n_way": 3}))
    qtbot.waitUntil(lambda: len(editor.preview_data()["points"][0]) == 3 * 20)
    assert editor.preview_data()["curves"] == []


# ---------------------------------------------------------------- HyperPanel
def test_hyper_panel_round_trips_a_config(qtbot):
    panel = HyperPanel()
    qtbot.addWidget(panel)
    config = ExperimentConfig().replace("model", hidden=(64, 32, 16), activation="tanh")
    config = config.replace("algorithm", name="mamlpp", inner_steps=5, inner_lr=0.05, msl_iterations=200)
    config = config.replace("train", meta_lr=0.0005, meta_batch=8, shots=5, query=15, iterations=1234, seed=7)
    panel.set_config(config)
    assert (panel.model_spec(), panel.algorithm_spec(), panel.train_spec()) == (config.model, config.algorithm, config.train)
    assert not panel._mamlpp.isHidden()
    panel.set_config(ExperimentConfig())
    assert panel._mamlpp.isHidden()


def test_hyper_panel_meta_lr_signal_and_hidden_layer_errors(qtbot):
    panel = HyperPanel()
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.meta_lr_changed) as blocker:
        panel.meta_lr.setValue(0.002)
    assert blocker.args == [pytest.approx(0.002)]
    with qtbot.waitSignal(panel.validity_changed) as blocker:
        panel.hidden.setText("40,abc")
    assert blocker.args == [False] and "'abc' is not a whole number" in panel.error()
    panel.hidden.setText("40,0")
    assert "model.hidden" in panel.error()
    panel.hidden.setText(" 20, 20 ")
    assert panel.error() is None and panel.model_spec().hidden == (20, 20)
    panel.set_training(True)
    assert panel.meta_lr.isEnabled() and not panel.shots.isEnabled()


# ---------------------------------------------------------------- plots
def history(iterations, meta_losses, step_losses=None, limit=None) -> History:
    """A run's History as training fills it."""
    h = History(limit) if limit else History()
    n = len(iterations)
    steps = np.empty((n, 0)) if step_losses is None else step_losses
    h.append(np.asarray(iterations), meta_losses, np.zeros(n), np.zeros(n), steps)
    return h


def test_loss_plot_draws_its_history_after_the_timer(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    h = history(np.arange(1, 51), np.linspace(2.0, 1.0, 50))
    plot.set_history(h)
    assert len(plot.data()["raw"][0]) == 0  # nothing is drawn before the redraw timer fires
    qtbot.waitUntil(lambda: len(plot.data()["raw"][0]) == 50)
    h.append(np.arange(51, 101), np.linspace(1.0, 0.5, 50), np.zeros(50), np.zeros(50), np.empty((50, 0)))
    plot.refresh()   # the plot reads the history in place: no copy of its rows
    qtbot.waitUntil(lambda: len(plot.data()["raw"][0]) == 100)
    (x, y), (sx, sy) = plot.data()["raw"], plot.data()["smoothed"]
    np.testing.assert_array_equal(x, np.arange(1, 101))
    assert y[0] == 2.0 and y[-1] == 0.5
    assert len(sx) == len(sy) == 100 and sy[0] == pytest.approx(2.0)
    plot.set_smoothing(0.0)
    qtbot.waitUntil(lambda: np.array_equal(plot.data()["smoothed"][1], y))
    plot.set_log_scale(True)
    plot.set_history(None)
    qtbot.waitUntil(lambda: len(plot.data()["raw"][0]) == 0)


def test_a_thinned_history_is_redrawn_in_full(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.set_smoothing(0.0)
    h = history(np.arange(1, 101), np.arange(1, 101, dtype=float), limit=100)
    plot.set_history(h)
    qtbot.waitUntil(lambda: len(plot.data()["raw"][0]) == 100)
    h.append(np.arange(101, 111), np.arange(101, 111, dtype=float), np.zeros(10), np.zeros(10), np.empty((10, 0)))
    assert h.stride == 2
    plot.refresh()
    qtbot.waitUntil(lambda: len(plot.data()["raw"][0]) == len(h))
    x, y = plot.data()["smoothed"]
    np.testing.assert_array_equal(x, np.arange(2, 111, 2))
    np.testing.assert_array_equal(y, x)


def test_long_runs_are_decimated_for_display(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    n = 3 * MAX_DISPLAY_POINTS
    plot.set_history(history(np.arange(n), np.ones(n), limit=4 * MAX_DISPLAY_POINTS))
    qtbot.waitUntil(lambda: len(plot.data()["raw"][0]) > 0)
    assert len(plot.data()["raw"][0]) <= MAX_DISPLAY_POINTS + 1 and plot.data()["raw"][0][-1] == n - 1


def test_step_loss_plot_has_one_curve_per_inner_step(qtbot):
    plot = StepLossPlot()
    qtbot.addWidget(plot)
    plot.set_history(history(np.arange(20), np.ones(20), np.tile([3.0, 2.0, 1.5, 1.0], (20, 1))))
    qtbot.waitUntil(lambda: len(plot.data()) == 4 and all(len(x) == 20 for x, _ in plot.data()))
    assert [y[-1] for _, y in plot.data()] == pytest.approx([3.0, 2.0, 1.5, 1.0])
    assert [name for _, name in plot.legend.entries()] == ["before adaptation", "after 1 step", "after 3 steps"]
    plot.set_history(history(np.arange(5), np.ones(5), np.tile([2.0, 1.0], (5, 1))))   # another run: a new N
    qtbot.waitUntil(lambda: len(plot.data()) == 2 and all(len(x) == 5 for x, _ in plot.data()))


def test_adaptation_plot_series(qtbot):
    plot = AdaptationPlot()
    qtbot.addWidget(plot)
    plot.set_series("meta-learned", [0, 1, 10], [2.0, 0.5, 0.1], [0.1, 0.05, 0.01])
    plot.set_series("scratch", [0, 1, 10], [3.0, 2.8, 2.0], [0.2, 0.2, 0.2])
    plot.set_metric("accuracy")
    steps, mean, ci = plot.data()["meta-learned"]
    np.testing.assert_array_equal(mean, [2.0, 0.5, 0.1])
    assert set(plot.data()) == {"meta-learned", "scratch"}
    plot.clear()
    assert plot.data() == {}


def test_function_plot_shows_truth_support_and_steps(qtbot):
    plot = FunctionPlot()
    qtbot.addWidget(plot)
    grid = np.linspace(-5, 5, 50)
    view = FunctionView(grid.tolist(), np.sin(grid).tolist(), [0.0, 1.0], [0.0, 0.84],
                        [(np.sin(grid) * s / 10).tolist() for s in range(11)])
    plot.show_function(view)
    data = plot.data()
    np.testing.assert_allclose(data["truth"][1], np.sin(grid))
    assert sorted(data["predictions"])[0] == 0 and 10 in data["predictions"] and len(data["predictions"]) <= 6
    np.testing.assert_array_equal(data["points"][0], [0.0, 1.0])
    labels = np.arange(12).reshape(3, 4) % 3
    plot.show_regions(np.linspace(0, 1, 4), np.linspace(0, 1, 3), labels, [0.5], [0.5], [2])
    assert plot.data()["truth"] is None and plot.data()["predictions"] == {}
    np.testing.assert_array_equal(plot.data()["regions"], labels)


# ---------------------------------------------------------------- RunList
def test_run_list_check_rename_delete(qtbot):
    runs = RunList()
    qtbot.addWidget(runs)
    runs.add_run("r1", "first", "MAML")
    runs.add_run("r2", "second", "Reptile")
    runs.update_run("r1", 1500, 0.01234)
    assert runs.table.item(0, 2).text() == "1,500" and runs.table.item(0, 3).text() == "0.01234"
    with qtbot.waitSignal(runs.overlay_changed) as blocker:
        runs.set_checked("r2", True)
    assert blocker.args == [["r2"]] and runs.checked() == ["r2"]
    with qtbot.waitSignal(runs.overlay_changed) as blocker:
        runs.table.item(1, 0).setText("renamed")  # what a double-click edit does
    assert runs.name("r2") == "renamed"
    with qtbot.waitSignal(runs.overlay_changed) as blocker:
        runs.remove_run("r2")
    assert blocker.args == [[]] and runs.run_ids() == ["r1"]


def test_run_list_shows_each_runs_plot_colour(qtbot):
    runs = RunList()
    qtbot.addWidget(runs)
    for run_id in (1, 2, 3):
        runs.add_run(run_id, f"run {run_id}", "maml")
    assert [runs.color(i) for i in (1, 2, 3)] == [run_color(i) for i in (1, 2, 3)]
    runs.set_color(2, "#123456")
    assert runs.color(2) == "#123456"


def test_icons_load():
    for name in ("start", "pause", "step", "stop", "reset", "open", "save", "export"):
        assert not QIcon(str(ICONS / f"{name}.svg")).pixmap(24, 24).isNull(), name


def test_adaptation_plot_takes_eval_summaries_and_regions_many_classes(qtbot):
    plot = AdaptationPlot()
    qtbot.addWidget(plot)
    plot.set_series("pretrain", (0, 1, 10), {0: 1.0, 1: 0.8, 10: 0.5}, {0: 0.1, 1: 0.1, 10: 0.1})
    np.testing.assert_array_equal(plot.data()["pretrain"][1], [1.0, 0.8, 0.5])
    regions = FunctionPlot()
    qtbot.addWidget(regions)
    labels = np.arange(15 * 15).reshape(15, 15) % 15  # more classes than palette colours
    regions.show_regions(np.arange(15), np.arange(15), labels, [1.0], [2.0], [14])
    np.testing.assert_array_equal(regions.data()["regions"], labels)
