"""The meta-RL views: the 2-D navigation trajectory view (goal, trajectories per step, a click places a
goal) and the return plots (data in, curves and labels out)."""

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from core.trained.loaded_model import AdaptationSnapshot
from maml_gui.session.runs import History
from maml_gui.widgets.adaptation_plot import AdaptationPlot
from maml_gui.widgets.return_plots import EpisodeStrip, MetaReturnPlot, StepReturnPlot
from core.rl.task_views import EpisodeReturns, TrajectoryFigure
from maml_gui.widgets.trajectory_view import GOAL_COLOR, TrajectoryView

GOAL = np.array([0.3, -0.2])


def figure(steps: int = 3, rollouts: int = 4, horizon: int = 6) -> TrajectoryFigure:
    """Trajectories that head further towards the goal with every step, the start row included."""
    t = np.linspace(0, 1, horizon + 1)[None, :, None]
    paths = []
    for s in range(steps + 1):
        spread = np.linspace(-0.1, 0.1, rollouts)[:, None, None] * np.array([1.0, -1.0])
        paths.append(t * (GOAL * s / steps + spread * (steps - s + 1)))
    return TrajectoryFigure(GOAL, tuple(paths), tuple(-40.0 + 12 * s for s in range(steps + 1)))


@pytest.fixture
def view(qtbot):
    v = TrajectoryView()
    qtbot.addWidget(v)
    v.resize(500, 420)
    v.show()
    qtbot.waitExposed(v)
    return v


def test_the_view_draws_the_goal_the_start_and_one_curve_per_step(view):
    fig = figure(steps=3, rollouts=4, horizon=6)
    view.show_figure(fig)
    drawn = view.drawn()
    assert len(drawn) == 4                                  # before adaptation + after 1, 2, 3 steps
    for (x, y), paths in zip(drawn, fig.paths):
        assert np.isnan(x).sum() == 3                       # 4 trajectories, one gap between each two
        np.testing.assert_allclose(x[np.isfinite(x)], paths[..., 0].ravel())
        np.testing.assert_allclose(y[np.isfinite(y)], paths[..., 1].ravel())
    assert view.goal() == pytest.approx((0.3, -0.2))
    assert view.legend_names() == ["goal", "before adaptation", "after 1 step", "after 2 steps", "after 3 steps"]
    (x0, x1), (y0, y1) = view.vb.viewRange()
    assert x0 <= -0.6 and x1 >= 0.6 and y0 <= -0.6 and y1 >= 0.6   # the goal square and its margin, all of it
    assert view.half_width() == pytest.approx(0.6)
    colors = {c.opts["pen"].color().name() for c in view._curves}
    assert len(colors) == 4                                 # one colour per step


def test_fewer_steps_after_more_hide_the_extra_curves(view):
    view.show_figure(figure(steps=3))
    view.show_figure(figure(steps=1))
    assert len(view.drawn()) == 2
    assert view.legend_names() == ["goal", "before adaptation", "after 1 step"]
    assert sum(c.isVisible() for c in view._curves) == 2


def test_a_click_emits_the_goal_in_data_coordinates_and_the_view_waits_for_its_trajectories(qtbot, view):
    view.show_figure(figure())
    pos = view.data_to_widget(-0.25, 0.1)
    with qtbot.waitSignal(view.goal_placed) as placed:
        qtbot.mouseClick(view.plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    pixel = 2 * view.half_width() / view.vb.width()   # one pixel, in data units
    x, y = placed.args
    assert x == pytest.approx(-0.25, abs=2 * pixel) and y == pytest.approx(0.1, abs=2 * pixel)
    assert view.pending() == (x, y) and view.goal() == pytest.approx((x, y))
    assert view.drawn() == []                               # the old goal's trajectories are gone
    assert view.legend_names() == ["goal (placed)"]
    assert view._goal.points()[0].brush().color() == QColor("white")   # hollow while it waits
    adapted = TrajectoryFigure(np.array([x, y]), figure().paths, placed=True)
    view.show_figure(adapted, reveal=True)                  # the steps appear one after another
    assert len(view.drawn()) == 1
    qtbot.waitUntil(lambda: len(view.drawn()) == 4, timeout=5000)
    assert view.pending() is None
    assert view.legend_names()[0] == "goal (placed)"
    assert view._goal.points()[0].brush().color() == QColor(GOAL_COLOR)   # filled once adapted to


def test_a_click_outside_the_goal_square_places_the_goal_on_its_edge(qtbot, view):
    view.show_figure(figure())
    pos = view.data_to_widget(0.58, -0.58)
    with qtbot.waitSignal(view.goal_placed) as placed:
        qtbot.mouseClick(view.plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert placed.args == [0.5, -0.5]


def test_a_right_click_places_no_goal(qtbot, view):
    view.show_figure(figure())
    with qtbot.assertNotEmitted(view.goal_placed):
        qtbot.mouseClick(view.plot.viewport(), Qt.MouseButton.RightButton, pos=view.data_to_widget(0.1, 0.1))
    assert view.goal() == pytest.approx((0.3, -0.2))


def history(n: int = 60, steps: int = 2) -> History:
    its = np.arange(1, n + 1)
    returns = np.column_stack([-40.0 + (25 + 5 * s) * s / steps * its / n for s in range(steps + 1)])
    h = History()
    h.append(its, -returns[:, -1], np.ones(n), np.full(n, 0.1), returns)
    return h


def test_the_meta_return_plot_draws_the_return_after_the_last_step_and_says_higher_is_better(qtbot):
    plot = MetaReturnPlot()
    qtbot.addWidget(plot)
    plot.set_smoothing(0.0)
    h = history()
    plot.set_history(h, "run 1 · maml · nav2d")
    qtbot.waitUntil(lambda: len(plot.data()["raw"][0]) == 60)
    x, y = plot.data()["raw"]
    np.testing.assert_array_equal(x, h.iterations)
    np.testing.assert_allclose(y, h.step_losses[:, -1])
    assert plot.y_label() == "average return (higher is better)"
    assert not plot.log_scale() and plot._log.isHidden()


def test_the_step_return_plot_draws_one_curve_per_inner_step(qtbot):
    plot = StepReturnPlot()
    qtbot.addWidget(plot)
    plot.set_smoothing(0.0)
    h = history(steps=2)
    plot.set_history(h, "run 1")
    qtbot.waitUntil(lambda: len(plot.data()) == 3 and len(plot.data()[0][0]) == 60)
    for s, (x, y) in enumerate(plot.data()):
        np.testing.assert_allclose(y, h.step_losses[:, s])
    assert plot.y_label().startswith("average return (higher is better")
    assert [name for _, name in plot.legend.entries()] == ["before adaptation", "after 1 step", "after 2 steps"]


def test_a_shortened_axis_label_stays_inside_its_axis(qtbot):
    """Shown in a short plot, the per-step label drops its parentheses; the shorter text is centred
    again (pyqtgraph places a label only on a resize, and kept the long text's place: cut off)."""
    plot = StepReturnPlot()
    qtbot.addWidget(plot)
    plot.resize(500, 420)
    plot.show()
    qtbot.waitExposed(plot)
    plot.resize(500, 230)
    qtbot.waitUntil(lambda: plot.plot.getPlotItem().getAxis("left").labelText == "average return")
    axis = plot.plot.getPlotItem().getAxis("left")
    top = axis.label.pos().y() - axis.label.boundingRect().width()   # the text runs upwards from its position
    assert 0 <= top and axis.label.pos().y() <= axis.size().height()


def test_held_out_returns_keep_their_negative_intervals_and_name_every_baseline(qtbot):
    plot = AdaptationPlot()
    qtbot.addWidget(plot)
    steps = np.arange(4)
    series = {"meta-learned": (np.array([-40.4, -11.7, -3.3, -3.2]), np.full(4, 2.0)),
              "pretrained": (np.array([-40.8, -19.7, -11.7, -8.5]), np.full(4, 2.5)),
              "random": (np.array([-82.7, -58.0, -53.8, -46.8]), np.full(4, 4.0)),
              "oracle": (np.full(4, -2.29), np.full(4, 0.3))}
    plot.show_snapshot(AdaptationSnapshot(200, "return", steps, series, tasks=40))
    drawn = plot.drawn()
    x, y, low, high = drawn["meta-learned"]
    np.testing.assert_allclose(low, [-42.4, -13.7, -5.3, -5.2])     # not clipped at 0 like a loss
    np.testing.assert_allclose(high, [-38.4, -9.7, -1.3, -1.2])
    np.testing.assert_allclose(drawn["random"][1], series["random"][0])
    assert [name for _, name in plot.legend.entries()] == ["meta-learned", "pretrained", "random", "oracle"]
    assert plot.y_label() == "average return (higher is better)"
    assert plot.plot.getPlotItem().getAxis("bottom").labelText == "policy-gradient steps on the task's own trajectories"
    assert not plot.log_scale() and plot._log.isHidden()
    assert plot._items["oracle"][0].opts["pen"].style() == Qt.PenStyle.DashDotLine
    plot.set_metric("mse")   # a supervised run shown next: its loss axis again
    assert plot.log_scale() and not plot._log.isHidden()
    assert plot.plot.getPlotItem().getAxis("bottom").labelText == "gradient steps on the support set"


def test_the_episode_strip_draws_every_episode_and_the_mean_per_step(qtbot):
    plot = EpisodeStrip()
    qtbot.addWidget(plot)
    returns = (np.array([-130.0, -120.0, -140.0]), np.array([-80.0, -70.0, -90.0]))
    plot.show_returns(EpisodeReturns(returns, task="goal velocity 1.3"))
    x, y = plot.points()
    np.testing.assert_array_equal(y, [-130, -120, -140, -80, -70, -90])
    assert np.all(np.abs(x - np.repeat([0, 1], 3)) < 0.5)
    steps, mean, ci = plot.means()
    np.testing.assert_allclose(mean, [-130.0, -80.0])
    np.testing.assert_allclose(ci, 1.96 * 10.0 / np.sqrt(3))
    assert [name for _, name in plot.legend.entries()] == ["one episode (3 per step)", "mean ± 95% CI"]
    plot.show_returns(None)
    assert len(plot.points()[0]) == 0 and not plot.legend.isVisible()


def _configs():
    from core.config import ExperimentConfig, FamilySpec
    supervised = ExperimentConfig()
    rl = ExperimentConfig(family=FamilySpec("nav2d", {})).replace("rl", rollouts=7, max_kl=0.02)
    return supervised, rl, rl.replace("rl", outer="ppo")


def _add(runs, run_id, config):
    from maml_gui.session.runs import hyperparameters, unused_settings
    runs.add_run(run_id, f"run {run_id}", config.algorithm.name, hyper=hyperparameters(config),
                 rl=config.is_rl, unused=unused_settings(config))


def test_the_run_list_says_loss_or_return_and_shows_the_settings_each_kind_of_run_has(qtbot):
    from maml_gui.widgets.run_list import HEADERS, LOSS, RunList
    supervised, trpo, ppo = _configs()
    runs = RunList()
    qtbot.addWidget(runs)
    title = runs.table.horizontalHeaderItem(LOSS).text
    hidden = {key: (lambda k=key: runs.table.isColumnHidden(HEADERS.index(k))) for key in ("K", "traj.", "outer", "max KL")}

    _add(runs, 1, trpo)                       # meta-RL only: a return, no shots, its own settings
    runs.update_run(1, 5, -12.34)
    assert title() == "Final return" and runs.cell(1, "Final loss") == "-12.34"
    assert "higher is better" in runs.table.horizontalHeaderItem(LOSS).toolTip()
    assert hidden["K"]() and not any(hidden[k]() for k in ("traj.", "outer", "max KL"))
    assert (runs.cell(1, "traj."), runs.cell(1, "outer"), runs.cell(1, "max KL")) == ("7", "trpo", "0.02")
    assert runs.cell(1, "K") == "" and runs.cell(1, "meta lr") == ""   # TRPO takes no meta learning rate
    meta_lr = runs.table.item(0, HEADERS.index("meta lr"))
    assert "TRPO" in meta_lr.toolTip()

    _add(runs, 2, supervised)                 # both kinds: each score says which it is
    runs.update_run(2, 5, 0.5)
    _add(runs, 3, ppo)
    runs.update_run(3, 5, -100.0)
    assert title() == "Final loss / return" and not hidden["K"]()
    assert runs.cell(1, "Final loss") == "return -12.34" and runs.cell(2, "Final loss") == "loss 0.5"
    assert runs.cell(2, "K") == str(supervised.train.shots) and runs.cell(2, "traj.") == ""
    assert runs.cell(3, "meta lr") == f"{ppo.train.meta_lr:g}" and runs.cell(3, "max KL") == ""
    runs.table.sortByColumn(LOSS, Qt.SortOrder.AscendingOrder)   # by value, not by its label
    assert runs.run_ids() == [3, 1, 2]
    runs.table.sortByColumn(HEADERS.index("traj."), Qt.SortOrder.AscendingOrder)
    assert runs.run_ids()[-1] == 2                                   # a blank cell sorts last

    runs.remove_run(1)
    runs.remove_run(3)                        # supervised only again: as before meta-RL
    assert title() == "Final loss" and runs.cell(2, "Final loss") == "0.5"
    assert not hidden["K"]() and all(hidden[k]() for k in ("traj.", "outer", "max KL"))
