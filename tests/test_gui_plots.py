"""Comparing runs on every plot: one curve per run in the run's colour, a readable legend, the scores table."""

import csv
import io
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtGui import QColor, QGuiApplication

from core.loaded_model import AdaptationSnapshot
from maml_gui.overlays import Overlay, run_color
from maml_gui.panels import PlotsArea
from maml_gui.runs import History

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
    assert [n for _, n in plots.steps.legend.entries()] == ["before adaptation", "after 1 step", "after 2 steps", *names]
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
