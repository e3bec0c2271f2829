"""Comparing runs on every plot: one curve per run in the run's colour, a readable legend, the scores table."""

import csv
import io
import math
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtGui import QColor, QGuiApplication, QImage
from PySide6.QtWidgets import QGraphicsItem

from core.trained.loaded_model import AdaptationSnapshot
from maml_gui.actions.experiment_io import FIGURE_SIZE, PNG_SCALE, export_plot, figure_layout
from maml_gui.session.overlays import Overlay, run_color
from maml_gui.window.panels import PlotsArea
from maml_gui.session.runs import History

STEPS = np.arange(11)


def history(n: int, level: float, inner_steps: int = 2) -> History:
    h = History()
    its = np.arange(1, n + 1)
    loss = level + 1 / its
    h.append(its, loss, np.zeros(n), np.zeros(n), np.column_stack([loss * (inner_steps + 1 - s) for s in range(inner_steps + 1)]))
    return h


def snapshot(level: float, metric: str = "mse") -> AdaptationSnapshot:
    mean = level + 1 / (1 + STEPS)
    return AdaptationSnapshot(100, metric, STEPS, {"meta-learned": (mean, np.full(11, 0.01)),
                                                   "scratch": (mean + 1, np.full(11, 0.1))})


def runs(n: int) -> list[Overlay]:
    return [Overlay(f"run {i} · maml · sinusoid", run_color(i), history(40 + 10 * i, 0.1 * i), snapshot(0.1 * i))
            for i in range(1, n + 1)]


@pytest.fixture
def plots(qtbot):
    area = PlotsArea()
    area.resize(1200, 800)
    qtbot.addWidget(area)
    area.show()
    qtbot.waitExposed(area)
    return area


def pen_color(curve) -> str:
    return curve.opts["pen"].color().name()


def test_three_runs_are_overlaid_on_every_plot_in_their_colours(qtbot, plots):
    compared = runs(3)
    plots.set_history(compared[0].history)
    plots.set_overlays(compared)
    names = [r.name for r in compared]
    colors = {r.name: QColor(r.color).name() for r in compared}
    qtbot.waitUntil(lambda: all(len(x) for x, _ in plots.loss.overlay_data().values())
                    and all(len(x) for x, _ in plots.steps.overlay_data().values()))
    for view in (plots.loss, plots.steps, plots.adaptation):
        curves = view.overlay_curves()
        assert list(curves) == names, view
        assert {name: pen_color(c) for name, c in curves.items()} == colors, view
        assert len(set(colors.values())) == 3
    x, y = plots.loss.overlay_data()[names[2]]
    np.testing.assert_array_equal(x, np.arange(1, 71))
    x, y = plots.steps.overlay_data()[names[1]]   # a compared run's loss after all its inner steps
    assert len(x) == 60 and y[0] == pytest.approx(compared[1].history.step_losses[0, -1])
    steps, mean, ci = plots.adaptation.overlay_data()[names[0]]
    np.testing.assert_allclose(mean, compared[0].adaptation.series["meta-learned"][0])
    # the legends name the runs only (and the per-step plot's step curves), no raw/smoothed entries
    assert [n for _, n in plots.loss.legend.entries()] == names
    assert [n for _, n in plots.steps.legend.entries()] == ["before adaptation", "after 1 step", "after 2 steps",
                                                            *(f"{n} · after 2 steps" for n in names)]   # adapted
    plots.show_adaptation(snapshot(0.5))
    assert [n for _, n in plots.adaptation.legend.entries()] == ["meta-learned", "scratch", *names]
    plots.set_overlays(compared[1:])
    qtbot.waitUntil(lambda: list(plots.loss.overlay_data()) == names[1:])
    assert list(plots.steps.overlay_curves()) == names[1:] and list(plots.adaptation.overlay_data()) == names[1:]
    assert plots.scores.table.rowCount() == 2
    plots.set_overlays([])
    qtbot.waitUntil(lambda: plots.loss.overlay_data() == {} and plots.steps.overlay_data() == {})
    assert plots.adaptation.overlay_data() == {} and plots.scores.table.rowCount() == 0


def test_a_compared_run_that_trains_follows_after_refresh(qtbot, plots):
    run = runs(1)[0]
    plots.set_overlays([run])
    qtbot.waitUntil(lambda: len(plots.loss.overlay_data()[run.name][0]) == 50)
    its = np.arange(51, 61)
    run.history.append(its, np.ones(10), np.zeros(10), np.zeros(10), np.ones((10, 3)))
    plots.refresh()
    qtbot.waitUntil(lambda: len(plots.loss.overlay_data()[run.name][0]) == 60
                    and len(plots.steps.overlay_data()[run.name][0]) == 60)


def test_eight_runs_keep_the_legend_above_the_curves(qtbot, plots):
    compared = runs(8)
    plots.set_overlays(compared)
    view = plots.loss
    qtbot.waitUntil(lambda: len(view.legend.entries()) == 8 and all(len(x) for x, _ in view.overlay_data().values()))
    assert view.legend.isVisible()
    highest = max(float(np.nanmax(y)) for _, y in view.overlay_data().values())
    legend_bottom = view.vb.mapSceneToView(view.legend.sceneBoundingRect().bottomLeft()).y()
    assert legend_bottom >= highest, "the legend covers the curves"
    assert view.legend.height() < 0.5 * view.vb.height()


def test_show_comparison_takes_run_records(qtbot, plots):
    records = [SimpleNamespace(run_id=i, name=f"run {i}", history=history(30, 0.1 * i), adaptation=None) for i in (4, 7)]
    plots.show_comparison(records)
    qtbot.waitUntil(lambda: list(plots.loss.overlay_data()) == ["run 4", "run 7"])
    assert pen_color(plots.loss.overlay_curves()["run 7"]) == QColor(run_color(7)).name()
    assert plots.adaptation.overlay_data() == {} and plots.scores.table.rowCount() == 0   # not scored yet


def test_scores_table_shows_mean_and_ci_per_run_and_step(qtbot, plots):
    compared = runs(3)
    compared[2] = Overlay("classifier", run_color(9), None, AdaptationSnapshot(
        5, "accuracy", np.arange(3), {"meta-learned": (np.array([0.5, 0.75, 0.875]), np.array([0.1, 0.05, 0.025]))}))
    plots.set_overlays(compared)
    table = plots.scores
    assert table.table.rowCount() == 3 and table.table.columnCount() == 1 + 11
    assert table.rows()[0] == ["run", "0 steps", "1 step", *(f"{s} steps" for s in range(2, 11))]
    assert table.table.item(0, 0).text() == compared[0].name
    assert table.table.item(0, 0).data(1).name() == QColor(run_color(1)).name()   # DecorationRole: the swatch
    assert table.table.item(0, 2).text() == "0.600 ± 0.010"
    assert table.table.item(2, 2).text() == "75.0% ± 5.0%" and table.table.item(2, 1).text() == "50% ± 10%" and table.table.item(2, 5).text() == "–"
    rows = list(csv.reader(io.StringIO(table.to_csv())))
    assert rows[0][:6] == ["run", "metric", "mean_0", "ci95_0", "mean_1", "ci95_1"]
    assert rows[1][:4] == [compared[0].name, "mse", "1.1", "0.01"]
    assert rows[3][:6] == ["classifier", "accuracy", "0.5", "0.1", "0.75", "0.05"] and rows[3][8:] == [""] * 16
    table.copy()
    assert QGuiApplication.clipboard().text() == table.to_csv().replace(",", "\t")


def test_scores_table_exports_a_csv_file(qtbot, plots, tmp_path):
    plots.set_overlays(runs(2))
    written = plots.scores.export_csv(tmp_path / "scores.csv")
    assert written.read_text(encoding="utf-8") == plots.scores.to_csv()
    assert plots.scores.to_csv().count("\n") == 3


def diverging_snapshot() -> AdaptationSnapshot:
    """Meta-SGD past its trained steps: the mean is gone (NaN) from step 6, where tasks diverged;
    at step 3 a skewed loss has a CI wider than its mean (a normal CI reaching below 0)."""
    mean = 2.0 / (1 + STEPS)
    scratch = mean + 3
    ci = mean / 4
    ci[3] = 3 * mean[3]
    mean[6:], ci[6:] = np.nan, np.nan
    return AdaptationSnapshot(100, "mse", STEPS, {"meta-learned": (mean, ci), "scratch": (scratch, np.full(11, 0.1))},
                              diverged={"meta-learned": np.array([0] * 6 + [2, 3, 3, 4, 5]), "scratch": np.zeros(11, int)},
                              tasks=50)


def test_diverged_tasks_leave_a_finite_log_axis_and_are_named_under_it(qtbot, plots):
    view = plots.adaptation
    plots.show_adaptation(diverging_snapshot())
    assert view.log_scale() and view.plot.getPlotItem().getAxis("left").logMode
    x, y, low, high = view.drawn()["meta-learned"]
    assert list(x) == list(range(6)) and np.isfinite(y).all()
    assert (low > 0).all() and low[3] == pytest.approx(0.01 * y[3]), "a loss's CI never reaches 0"
    _, bars = view._items["meta-learned"]
    assert (10 ** (bars.opts["y"] - bars.opts["bottom"]) > 0).all()
    lo, hi = view.vb.viewRange()[1]   # log10 units
    assert math.isfinite(lo) and math.isfinite(hi)
    top = max(float(h.max()) for _, _, _, h in view.drawn().values())
    bottom = min(float(low.min()) for _, _, low, _ in view.drawn().values())
    assert 10 ** lo <= bottom and top <= 10 ** hi <= 100 * top, "the axis is bounded by the finite values"
    assert view.note() == "meta-learned: 5 of 50 tasks diverged at step ≥ 6 (no mean from there on)"
    assert view._note.isVisible() and "5 of 50 tasks diverged" in view._note.text
    view.set_log_scale(False)
    lo, hi = view.vb.viewRange()[1]
    assert not view.plot.getPlotItem().getAxis("left").logMode and hi <= 2 * top
    assert (bars.opts["y"] - bars.opts["bottom"] > 0).all()
    view.set_metric("accuracy")
    assert not view.log_scale()
    view.set_metric("mse")
    assert view.log_scale()
    view.clear()
    assert view.note() == "" and not view._note.isVisible()


def test_compared_runs_that_diverged_are_named_too(qtbot, plots):
    compared = runs(2)
    compared[1] = Overlay("metasgd run", run_color(5), None, diverging_snapshot())
    plots.set_overlays(compared)
    view = plots.adaptation
    assert view.note() == "metasgd run: 5 of 50 tasks diverged at step ≥ 6 (no mean from there on)"
    x, y = view.overlay_curves()["metasgd run"].getOriginalDataset()
    assert list(x) == list(range(6))
    old = AdaptationSnapshot(1, "mse", STEPS, {"meta-learned": (np.ones(11), np.zeros(11))})   # saved before counts
    plots.set_overlays([Overlay("old", run_color(1), None, old)])
    assert view.note() == "" and list(view.overlay_data()) == ["old"]


def marker_paths(svg, color: str) -> list:
    """The filled round shapes (Bezier paths) drawn in ``color`` in an exported SVG."""
    import xml.etree.ElementTree as ET

    ns = "{http://www.w3.org/2000/svg}"
    return [path for group in ET.parse(svg).getroot().iter(f"{ns}g") if group.get("fill") == color
            for path in group.iter(f"{ns}path") if "C" in path.get("d", "")]


def test_an_exported_svg_draws_markers_as_vector_shapes(qtbot, plots, tmp_path, qtlog):
    from PySide6.QtSvg import QSvgRenderer

    plots.show_adaptation(diverging_snapshot())
    path = export_plot(plots.plot_item("adaptation"), tmp_path / "adaptation.svg")
    text = path.read_text(encoding="utf-8")
    assert "<image" not in text, "no bitmap: not the markers' pixmap atlas, not a cached axis or legend"
    assert 'viewBox="0 0 640 400"' in text
    # a circle per point (6 meta-learned, 11 scratch) and one in the legend sample each
    assert len(marker_paths(path, "#1f77b4")) == 6 + 1 and len(marker_paths(path, "#7f7f7f")) == 11 + 1
    assert "diverged at step" in text   # the note is in the figure
    assert QSvgRenderer(str(path)).isValid()
    assert not [r for r in qtlog.records if "Invalid path data" in r.message]


def test_an_exported_png_is_a_legible_figure_of_the_documented_size(qtbot, plots, tmp_path):
    view = plots.adaptation
    plots.show_adaptation(diverging_snapshot())
    item = plots.plot_item("adaptation")
    before = item.geometry()
    with figure_layout(item):   # what the export paints: the figure's layout, nothing from a pixmap cache
        assert (item.geometry().width(), item.geometry().height()) == FIGURE_SIZE
        assert all(i.cacheMode() == QGraphicsItem.CacheMode.NoCache for i in item.scene().items())
        line, _ = view._items["meta-learned"]
        assert line.scatter._exportOpts is not False   # markers as paths, not from the pixmap atlas
    assert item.geometry() == before and view.legend.cacheMode() != QGraphicsItem.CacheMode.NoCache
    path = export_plot(item, tmp_path / "adaptation.png")
    image = QImage(str(path))
    assert (image.width(), image.height()) == (1600, 1000) == (FIGURE_SIZE[0] * PNG_SCALE, FIGURE_SIZE[1] * PNG_SCALE)
    assert round(image.dotsPerMeterX() * 0.0254) == 240
    plots.resize(500, 400)   # the figure does not depend on the plot's size on screen
    qtbot.waitUntil(lambda: item.geometry() != before)
    image = QImage(str(export_plot(item, tmp_path / "small.png")))
    assert (image.width(), image.height()) == (1600, 1000)


def test_the_diverged_note_wraps_in_a_narrow_plot_instead_of_widening_it(qtbot):
    from maml_gui.widgets.adaptation_plot import AdaptationPlot

    view = AdaptationPlot()
    qtbot.addWidget(view)
    view.resize(330, 300)
    view.show()
    qtbot.waitExposed(view)
    view.show_snapshot(diverging_snapshot())
    item = view.plot.getPlotItem()
    note = view._note
    text = note.item.boundingRect
    qtbot.waitUntil(lambda: note.rect().width() > 0 and note.rect().height() >= text().height())
    assert item.geometry().width() <= view.plot.viewport().width()
    assert text().width() <= note.rect().width() + 1
    assert text().height() > 1.5 * 14, "wrapped onto a second line (a 9-pt line is about 14-18 px), all of it shown"


def test_an_evaluate_summary_names_its_first_diverged_step():
    from maml_gui.widgets.adaptation_plot import diverged_note

    assert diverged_note("model", [0, 0, 3], 0, (0, 1, 10)) == \
        "model: 3 tasks diverged at step ≥ 10 (no mean from there on)"
    assert diverged_note("model", [0, 1, 1], 0) == "model: 1 task diverged at step ≥ 1 (no mean from there on)"
    assert diverged_note("model", [0, 0]) == "" and diverged_note("model", None) == ""
