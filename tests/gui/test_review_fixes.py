"""Findings of the review of issue 20: a one-iteration run is visible, line styles mean one thing each,
a followed run's settings reach the panel, long class names are readable, banners hide no plot title."""

import numpy as np

from maml_gui.session.overlays import Overlay
from tests.gui.test_wall_clock_axis import T0, area, timed


def test_a_one_iteration_run_is_drawn_as_a_dot(qtbot):
    """One point draws no line: very short curves get a dot in their colour, longer ones none."""
    plots = area(qtbot)
    plots.set_history(timed(1, T0), "run 1", "#d62728")
    plots.set_overlays([Overlay("run 2", "#2ca02c", timed(2, T0))])
    qtbot.waitUntil(lambda: len(plots.loss.data()["raw"][0]) == 1)
    for view in plots.history_plots():
        view.refresh()
    qtbot.waitUntil(lambda: all(c.opts["symbol"] == "o" for c in plots.loss.plot.getPlotItem().listDataItems()
                                if c.yData is not None and len(c.yData)))
    drawn = [c for c in plots.loss.plot.getPlotItem().listDataItems() if c.yData is not None and len(c.yData)]
    assert len(drawn) >= 3   # raw, smoothed, the compared run
    assert {c.opts["symbolBrush"].color().name() for c in drawn} >= {"#2ca02c"}
    steps = [c for c in plots.steps.plot.getPlotItem().listDataItems() if c.yData is not None and len(c.yData)]
    assert steps and all(c.opts["symbol"] == "o" for c in steps)
    longer = timed(50, T0)
    plots.set_history(longer, "run 1", "#d62728")
    qtbot.waitUntil(lambda: len(plots.loss.data()["raw"][0]) == 50)
    main = [c for c in plots.loss.plot.getPlotItem().listDataItems() if c.yData is not None and len(c.yData) > 3]
    assert main and all(c.opts["symbol"] is None for c in main)


def test_line_styles_mean_one_thing_each_and_the_legend_says_which(qtbot):
    """Dotted is "before adaptation" (per-step plot and task view alike); a compared run on the per-step plot
    is its adapted loss, so solid like the shown run's adapted curves, named with its step count; dashed is
    left to the plots where every curve is adapted (meta-loss, held-out)."""
    from PySide6.QtCore import Qt

    from core.trained.evaluation import FunctionView
    from maml_gui.widgets.function_plot import FunctionPlot

    plots = area(qtbot)
    plots.set_history(timed(40, T0), "run 1", "#1f77b4")
    plots.set_overlays([Overlay("run 2", "#2ca02c", timed(30, T0))])
    qtbot.waitUntil(lambda: len(plots.steps.overlay_data()["run 2"][0]) == 30)
    styles = {name: c.opts["pen"].style() for name, c in plots.steps.overlay_curves().items()}
    assert styles == {"run 2": Qt.PenStyle.SolidLine}
    pens = [c.opts["pen"].style() for c in plots.steps._curves]
    assert pens == [Qt.PenStyle.DotLine, Qt.PenStyle.SolidLine]
    assert [n for _, n in plots.steps.legend.entries()] == ["before adaptation", "after 1 step", "run 2 · after 1 step"]
    assert plots.loss.overlay_curves()["run 2"].opts["pen"].style() == Qt.PenStyle.DashLine

    task = FunctionPlot()
    qtbot.addWidget(task)
    grid = np.linspace(-5, 5, 20)
    task.show_function(FunctionView(grid.tolist(), np.sin(grid).tolist(), [0.0], [0.0],
                                    [(np.sin(grid) * s / 10).tolist() for s in range(11)]))
    before = [c for c, n in task.legend.entries() if n == "before adaptation"]
    assert before and before[0].opts["pen"].style() == Qt.PenStyle.DotLine


def test_following_a_run_loads_its_settings_as_selecting_one_does(qtbot, make_window, tmp_path):
    """A followed run becomes current: the panel shows its settings (Start trains a new run with them),
    as it does for a window run the user selects; settings edited for no run are kept, without a prompt."""
    from core.cli.main import main
    from core.config import ExperimentConfig
    from .support import tiny

    out = tmp_path / "cli-run"
    assert main(["train", "--algorithm", "reptile", "--inner-steps", "2", "--iterations", "5", "--meta-batch", "2",
                 "--out", str(out)]) == 0
    window = make_window(tiny(iterations=3))   # settings edited for no run: following keeps them
    assert window.weights.follow(out)
    run = window.session.current
    assert window.hyper_panel.algorithm_spec().name == "maml" and window.panel_config().changes(run.config)
    assert "the panel keeps its settings" in window.statusBar().currentMessage()

    window.set_config(ExperimentConfig())   # the defaults: nothing would be lost
    window.session.set_current(None)
    assert window.weights.follow(out)
    assert window.session.current is run and window.session.is_followed(run)
    assert window.hyper_panel.algorithm_spec().name == "reptile" and window.hyper_panel.inner_steps.value() == 2
    assert not window.panel_config().changes(run.config)
    assert f"Settings of <b>{run.name}</b>" in window.panel_source.text()
    assert "its settings are in the panel" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: run.iteration == 5 and run.history.has_wall_time(), timeout=10_000)   # the curves too


def test_long_class_names_in_an_image_preview_wrap_instead_of_being_cut(qtbot):
    """Class names (Omniglot's are long) are drawn whole: on two or three lines where one is too short,
    in slightly smaller type if need be, and elided (whole in the tooltip) only when rows are too low."""
    from PySide6.QtGui import QFontMetrics

    from maml_gui.widgets.image_grid import ImageGrid

    names = ["0: alphabet 26 / character 18", "Alphabet_of_the_Magi/character14",
             "Ojibwe_(Canadian_Aboriginal_Syllabics)/character01", "images_background/Japanese_(hiragana)/character13",
             "Greek/character03"]
    grid = ImageGrid()
    qtbot.addWidget(grid)
    grid.set_rows([np.zeros((4, 1, 28, 28), np.uint8)] * len(names), names)
    for width in (366, 300, 250):   # the family panel's grid at 1280×800 is 366×215; narrower panels
        grid.resize(width, 215)
        label, _ = grid._layout()
        shown = grid.shown_names()
        assert len(shown[2]) >= 2, shown   # wrapped where needed
        for (lines, font), name in zip(grid._fitted_names(), names):
            assert "".join(lines).replace(" ", "") == name.replace(" ", ""), (width, lines)   # nothing cut
            assert all(QFontMetrics(font).horizontalAdvance(line) <= label - 6 for line in lines)
    grid.resize(200, 60)   # rows of one line each: elided in the middle, whole in the tooltip
    shown = grid.shown_names()
    assert all(len(lines) == 1 for lines in shown) and "…" in shown[2][0]


def test_the_banners_cover_no_plot_title_and_move_nothing(qtbot, make_window):
    from PySide6.QtCore import QPoint, QRect
    from tests.gui.test_panels import places, settle, shown_at_1280

    window = shown_at_1280(qtbot, make_window())
    before = places(window)
    p = window.plots
    plots = [p.loss, p.steps, p.adaptation, p.task]

    def title(plot) -> QRect:
        label = plot.plot.getPlotItem().titleLabel
        rect = plot.plot.mapFromScene(label.mapRectToScene(label.boundingRect())).boundingRect()
        return QRect(plot.plot.mapTo(window, rect.topLeft()), rect.size())

    titles = [title(plot) for plot in plots]
    assert all(t.height() > 10 for t in titles)
    for message in ("Training failed: one line", "Training failed: " + "a long and detailed reason " * 20):
        window.show_error(message)
        window.hyper_panel.hidden.setText("40,x")   # and why Start is disabled, in the amber banner
        settle()
        assert places(window) == before
        for banner in (window.error_banner, window.problem_banner):
            rect = QRect(banner.mapTo(window, QPoint(0, 0)), banner.size())
            assert banner.isVisible() and rect.height() > 20
            assert not any(rect.intersects(t) for t in titles), (rect, titles)
        window.hyper_panel.hidden.setText("40")
    window.resize(1100, 760)   # the titles move with the plots: the banners follow
    settle()
    titles = [title(plot) for plot in plots]
    rect = QRect(window.error_banner.mapTo(window, QPoint(0, 0)), window.error_banner.size())
    assert not any(rect.intersects(t) for t in titles)
