"""How the plots look: the shown run in its own colour, readable log axes and labels, legends the
user can move, a one-click reset of zoom and pan."""

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtTest import QTest

from core.trained.loaded_model import AdaptationSnapshot
from maml_gui.actions.experiment_io import export_plot
from maml_gui.session.overlays import Overlay
from maml_gui.window.panels import PlotsArea
from maml_gui.session.runs import History

STEPS = np.arange(11)


def history(n: int, inner_steps: int = 3) -> History:
    h = History()
    its = np.arange(1, n + 1)
    loss = 0.5 + 1 / its
    h.append(its, loss, 2 / np.sqrt(its), np.full(n, 0.5), np.column_stack([loss * (inner_steps + 1 - s) for s in range(inner_steps + 1)]))
    return h


def area(qtbot, width=1000, height=700) -> PlotsArea:
    plots = PlotsArea()
    plots.resize(width, height)
    qtbot.addWidget(plots)
    plots.show()
    qtbot.waitExposed(plots)
    return plots


def test_the_per_step_plot_draws_the_shown_run_in_its_colour_dotted_before_adaptation(qtbot):
    plots = area(qtbot)
    green = "#2ca02c"
    plots.set_history(history(50), "run 2", green)
    qtbot.waitUntil(lambda: [len(x) for x, _ in plots.steps.data()] == [50] * 4)
    curves = plots.steps._curves
    pens = [c.opts["pen"] for c in curves]
    assert len(pens) == 4
    hue = QColor(green).hsvHue()
    assert all(abs(p.color().hsvHue() - hue) <= 2 for p in pens), [p.color().name() for p in pens]
    assert pens[0].style() == Qt.PenStyle.DotLine and pens[0].color().name() == green
    assert pens[-1].style() == Qt.PenStyle.SolidLine and pens[-1].color().name() == green   # the adapted curve
    assert all(p.style() == Qt.PenStyle.SolidLine for p in pens[1:])
    lightness = [p.color().lightness() for p in pens[1:]]
    assert lightness == sorted(lightness, reverse=True) and lightness[0] > lightness[-1]   # darker with each step
    plots.set_history(plots.steps.history(), "run 4", "#9467bd")   # another run: its colour
    assert all(abs(c.opts["pen"].color().hsvHue() - QColor("#9467bd").hsvHue()) <= 2 for c in curves)
    assert curves[-1].opts["pen"].color().name() == "#9467bd"
    assert [n for _, n in plots.steps.legend.entries()] == ["before adaptation", "after 1 step", "after 3 steps"]


def test_a_pretrain_baseline_of_one_update_is_singular(qtbot):
    plots = area(qtbot)
    mean = 1 / (1 + STEPS)
    series = {"meta-learned": (mean, mean * 0.1), "pretrain": (mean * 2, mean * 0.1)}
    plots.show_adaptation(AdaptationSnapshot(1, "mse", STEPS, series, baseline_iterations=1))
    assert [n for _, n in plots.adaptation.legend.entries()] == ["meta-learned", "pretrain (1 update)"]
    plots.show_adaptation(AdaptationSnapshot(1, "mse", STEPS, series, baseline_iterations=1200))
    assert [n for _, n in plots.adaptation.legend.entries()] == ["meta-learned", "pretrain (1,200 updates)"]


def tick_labels(axis) -> list:
    """(rectangle, text) of each tick label the axis draws (empty labels take no room)."""
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        _, _, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [(rect, text) for rect, _, text in texts if text]


def text_rects(axis):
    return [rect for rect, _ in tick_labels(axis)]


def test_log_axis_tick_labels_never_overlap_in_a_short_plot(qtbot):
    plots = area(qtbot, 1000, 520)   # a held-out plot about 130 px high, as at 1280x800
    view = plots.adaptation
    for hi, lo in ((0.6, 0.05), (0.9, 0.3), (2.5, 0.4), (30, 0.2)):
        mean = np.geomspace(hi, lo, 11)
        view.show_snapshot(AdaptationSnapshot(10, "mse", STEPS, {"meta-learned": (mean, mean * 0.05)}))
        assert view.log_scale()
        axis = view.plot.getPlotItem().getAxis("left")
        qtbot.waitUntil(lambda: len(text_rects(axis)) >= 2)
        rects = sorted(text_rects(axis), key=lambda r: r.top())
        assert view.vb.height() < 200
        for upper, lower in zip(rects, rects[1:]):
            assert upper.bottom() <= lower.top() + 1, f"labels overlap for scores {lo}..{hi}"


def test_a_y_label_too_long_for_a_short_plot_is_shortened_not_cut(qtbot):
    plots = area(qtbot, 1000, 520)   # a held-out plot about 130 px high, as at 1280x800
    view = plots.adaptation
    view.set_metric("accuracy")
    axis = view.plot.getPlotItem().getAxis("left")
    qtbot.waitUntil(lambda: 110 < view.vb.height() < 180)
    shown = axis.labelText
    assert axis.label.boundingRect().width() <= view.vb.height(), f"{shown!r} is cut"
    assert view.y_label() == "query accuracy (fraction correct)"
    assert shown == "query accuracy" and axis.toolTip() == "query accuracy (fraction correct)"
    plots.resize(1000, 1400)   # tall enough: the label in full again
    qtbot.waitUntil(lambda: axis.labelText == "query accuracy (fraction correct)")
    assert axis.toolTip() == ""


def drag(widget, start: QPoint, by: QPoint, steps: int = 8) -> None:
    view = widget.viewport()
    QTest.mousePress(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for k in range(1, steps + 1):
        QTest.mouseMove(view, start + by * (k / steps))
    QTest.mouseRelease(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start + by)


def test_a_dragged_legend_stays_where_the_user_put_it_and_reset_view_undoes_zoom_and_drag(qtbot):
    plots = area(qtbot)
    view = plots.loss
    view.set_history(history(200), "run 1", "#1f77b4")
    qtbot.waitUntil(lambda: view.legend.isVisible() and len(view.data()["smoothed"][0]) == 200)
    assert not view.reset_button.isEnabled()   # nothing to reset yet
    full_x, full_y = (list(r) for r in view.vb.viewRange())
    top = max(view.data()["raw"][1])
    assert full_y[1] > top * 1.1   # room for the legend row above the data
    start = view.plot.mapFromScene(view.legend.sceneBoundingRect().center())
    drag(view.plot, start, QPoint(-150, 60))
    qtbot.waitUntil(lambda: view.legend.moved)
    assert view.legend.pos().x() < view.vb.width() - view.legend.width() - 100   # it moved left
    drag(view.plot, view.plot.mapFromScene(view.legend.sceneBoundingRect().center()), QPoint(-2000, 0))
    inside = view.legend.mapRectToParent(view.legend.boundingRect())
    assert inside.left() >= -0.5 and inside.right() <= view.vb.width() + 0.5   # never dropped off the view
    assert view.reset_button.isEnabled()
    view.vb.scaleBy((0.5, 0.5))   # zoom in, as the mouse wheel does
    qtbot.waitUntil(lambda: view.is_zoomed())
    assert view.vb.viewRange()[0][1] < full_x[1]
    view.reset_button.click()
    qtbot.waitUntil(lambda: not view.is_zoomed() and not view.legend.moved)
    assert not view.reset_button.isEnabled()
    x, y = view.vb.viewRange()
    assert x[0] <= 1 and 200 <= x[1] <= 1.3 * full_x[1]   # the whole data again
    assert y[1] > top * 1.1 and y[1] <= 1.3 * full_y[1]   # the legend's row above it
    right = view.legend.mapRectToParent(view.legend.boundingRect()).right()
    assert abs(right - (view.vb.width() - 8)) <= 2   # back at the top right


def test_the_gradient_norm_is_plotted_beside_the_loss(qtbot, tmp_path):
    plots = area(qtbot)
    h = history(120)
    plots.set_history(h, "run 1", "#1f77b4")
    assert plots.loss_tabs.tabText(1) == "Gradient norm"
    plots.loss_tabs.setCurrentWidget(plots.grad)
    qtbot.waitUntil(lambda: len(plots.grad.data()["raw"][0]) == 120)
    x, y = plots.grad.data()["raw"]
    np.testing.assert_allclose(y, 2 / np.sqrt(np.arange(1, 121)))
    assert plots.grad.y_label() == "gradient norm (L2)" and plots.grad.log_scale()
    path = export_plot(plots.plot_item("grad"), tmp_path / "grad.png")   # File ▸ Export plot has it too
    assert QImage(str(path)).width() > 0


def test_history_plots_can_be_drawn_against_training_time(qtbot):
    plots = area(qtbot)
    h = history(100)   # every meta-iteration took 0.5 s
    compared = history(40)
    plots.set_history(h, "run 1", "#1f77b4")
    plots.set_overlays([Overlay("run 2", "#2ca02c", compared)])
    qtbot.waitUntil(lambda: len(plots.loss.data()["raw"][0]) == 100)
    np.testing.assert_array_equal(plots.loss.data()["raw"][0], np.arange(1, 101))
    index = plots.loss._x_choice.findData("time")
    plots.loss._x_choice.setCurrentIndex(index)
    plots.loss._x_choice.activated.emit(index)   # the user picks "time" on one plot: all of them follow
    for view in plots.history_plots():
        assert view.x_axis() == "time"
        assert view.plot.getPlotItem().getAxis("bottom").labelText.startswith("training time")
    qtbot.waitUntil(lambda: plots.loss.data()["raw"][0][-1] == 50.0 and plots.steps.data()[0][0][-1] == 50.0)
    np.testing.assert_allclose(plots.loss.data()["raw"][0], 0.5 * np.arange(1, 101))
    np.testing.assert_allclose(plots.loss.overlay_data()["run 2"][0], 0.5 * np.arange(1, 41))
    axis = plots.loss.plot.getPlotItem().getAxis("bottom")
    texts = [t for _, t in tick_labels(axis)]
    assert texts and all(t.endswith(" s") or ":" in t for t in texts), texts
    plots.set_x_axis("iteration")
    qtbot.waitUntil(lambda: plots.loss.data()["raw"][0][-1] == 100)
