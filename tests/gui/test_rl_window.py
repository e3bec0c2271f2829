"""Meta-RL in the window: 2-D navigation in the family list with its settings, a short run that draws
meta-return points and writes a run folder with returns, and a goal placed by a click."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from core.config import ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from core.rl.task_views import TrajectoryFigure
from maml_gui.jobs.training import WorkerOptions

OPTIONS = WorkerOptions(eval_tasks=4, inspect_interval=0.3)


def nav2d(iterations: int = 3) -> ExperimentConfig:
    config = ExperimentConfig(family=FamilySpec("nav2d", {"horizon": 8}), model=ModelSpec(hidden=(8,)),
                              train=TrainSpec(meta_batch=2, iterations=iterations))
    return config.replace("rl", rollouts=3)


def test_the_family_list_offers_2d_navigation_with_its_settings(qtbot, make_window):
    window = make_window()
    combo = window.family_editor._combo
    index = combo.findData("nav2d")
    assert index >= 0 and "2-D navigation" in combo.itemText(index)
    combo.setCurrentIndex(index)
    spec = window.family_editor.spec()
    assert spec.name == "nav2d" and spec.params["goal_range"] == [-0.5, 0.5] and spec.params["horizon"] == 100
    assert window.family_editor.error() is None
    panel = window.hyper_panel
    assert not panel._rl_group.isHidden()                       # trajectories per task, outer step, γ, λ, max KL
    assert not panel._train_form.isRowVisible(panel.shots)      # no support set in RL
    panel.rollouts.setValue(7)
    config = window.panel_config()
    assert config.is_rl and config.rl.rollouts == 7
    assert window.plots.is_rl()                                  # the plots say "return" before any run
    assert window.plots.adaptation.y_label() == "average return (higher is better)"
    combo.setCurrentIndex(combo.findData("sinusoid"))            # back to regression: its plots and fields again
    assert not window.plots.is_rl() and panel._rl_group.isHidden() and panel._train_form.isRowVisible(panel.shots)


def test_a_short_nav2d_run_in_the_window_draws_meta_return_points_and_saves_returns(qtbot, make_window):
    window = make_window(nav2d(iterations=3))
    window.start()
    session = window.session
    qtbot.waitUntil(lambda: session.current is not None and session.current.status == "completed", timeout=60_000)
    run = session.current
    plots = window.plots
    assert plots.is_rl() and plots.history_plots()[0] is plots.meta_return
    plots.meta_return.set_smoothing(0.0)
    qtbot.waitUntil(lambda: len(plots.meta_return.data()["raw"][0]) == 3, timeout=10_000)
    x, y = plots.meta_return.data()["raw"]
    np.testing.assert_array_equal(x, [1, 2, 3])
    np.testing.assert_allclose(y, run.history.step_losses[:, -1])      # the return after the inner step
    assert np.all(y < 0)                                                # minus distances: a return, not a loss
    qtbot.waitUntil(lambda: len(plots.step_returns.data()) == 2 and len(plots.step_returns.data()[0][0]) == 3,
                    timeout=10_000)
    qtbot.waitUntil(lambda: run.adaptation is not None, timeout=30_000)  # scored after the end, in the background
    assert run.adaptation.metric == "return"
    # then its baselines are trained to the run's 3 updates and scored beside it: the paper's figure
    qtbot.waitUntil(lambda: "oracle" in run.adaptation.series, timeout=60_000)
    assert set(run.adaptation.series) == {"meta-learned", "pretrained", "random", "oracle"}
    assert run.adaptation.baseline_iterations == 3
    oracle = run.adaptation.series["oracle"][0]
    assert np.all(oracle == oracle[0])                                  # told the goal, not adapted: one value
    qtbot.waitUntil(lambda: set(plots.adaptation.drawn()) == set(run.adaptation.series), timeout=10_000)
    qtbot.waitUntil(lambda: plots.task_page() == "trajectories", timeout=10_000)
    figure = plots.trajectories.figure()
    assert isinstance(figure, TrajectoryFigure) and len(plots.trajectories.drawn()) == figure.steps + 1
    adapt = window.weights.show_adapt_view()   # the supervised Adapt panel points to the trajectory view instead
    assert "trajectory view" in adapt.weights_label.text() and not adapt.is_busy() and not adapt.adapt()
    window.shutdown()
    metrics = (session.project.folder / run.folder / "metrics.csv").read_text().splitlines()
    assert metrics[0] == "iteration,meta_return,grad_norm,seconds,step_return_0,step_return_1,wall_time"
    assert len(metrics) == 1 + 3

    again = make_window(project=session.project.folder)        # the project reopened: the run as it was
    restored = next(r for r in again.session.runs if r.name == run.name)
    again.session.set_current(restored.run_id)
    assert again.plots.is_rl() and restored.config.is_rl and restored.adaptation.metric == "return"
    again.plots.meta_return.set_smoothing(0.0)
    qtbot.waitUntil(lambda: len(again.plots.meta_return.data()["raw"][0]) == 3, timeout=10_000)
    np.testing.assert_allclose(again.plots.meta_return.data()["raw"][1], y)
    assert set(again.plots.adaptation.drawn()) == {"meta-learned", "pretrained", "random", "oracle"}


def test_a_click_in_the_trajectory_view_adapts_the_policy_to_the_placed_goal(qtbot, make_window):
    window = make_window(nav2d())
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    view = window.plots.trajectories
    qtbot.waitUntil(lambda: window.plots.task_page() == "trajectories" and view.figure() is not None, timeout=10_000)
    held_out = view.figure().goal.copy()
    with qtbot.waitSignal(view.goal_placed) as placed:
        qtbot.mouseClick(view.plot.viewport(), Qt.MouseButton.LeftButton, pos=view.data_to_widget(0.3, -0.25))
    goal = placed.args
    qtbot.waitUntil(lambda: view.figure() is not None and view.figure().placed, timeout=10_000)
    np.testing.assert_allclose(view.figure().goal, goal, atol=1e-6)
    assert not np.allclose(view.figure().goal, held_out)
    assert goal == pytest.approx((0.3, -0.25), abs=0.02)
    assert "your goal" in window.plots.task_caption.text()
    qtbot.waitUntil(lambda: len(view.drawn()) == view.figure().steps + 1, timeout=5000)   # revealed step by step
    window.plots.new_task_button.click()                  # a held-out goal again
    qtbot.waitUntil(lambda: not view.figure().placed, timeout=10_000)


def test_a_sweep_of_nav2d_settings_launched_from_the_window_trains_and_follows_meta_rl_runs(qtbot, make_window):
    """Run as a sweep… passes the settings shown on (``sweep --config``): it said "unknown family 'nav2d'"."""
    from maml_gui.dialogs.sweep_dialog import parse_sweep

    config = ExperimentConfig(family=FamilySpec("nav2d", {"horizon": 10}), model=ModelSpec(hidden=(8,)),
                              train=TrainSpec(meta_batch=2, iterations=2)).replace("rl", rollouts=2)
    window = make_window(config)
    out = window.launch.default_out("sweep")
    child = window.launch.run_sweep(parse_sweep("0-1", "", 2, 3, str(out)))
    assert child is not None
    qtbot.waitUntil(lambda: not window.launch.children, timeout=120_000)
    assert child.proc.returncode == 0, child.out.with_name(child.out.name + ".log").read_text()
    followed = lambda: [f.run for f in window.session.follower.followed.values()]   # noqa: E731
    qtbot.waitUntil(lambda: len(followed()) == 2 and all(r.iteration == 2 for r in followed()), timeout=20_000)
    assert all(r.config.is_rl for r in followed()) and window.error_banner.isHidden()
    assert window.run_list.table.horizontalHeaderItem(3).text() == "Final return"


def test_run_in_n_processes_trains_meta_rl_settings_and_follows_the_run(qtbot, make_window):
    """It was refused ("meta-RL runs train in one process") before ``train --nproc`` took RL runs."""
    window = make_window(nav2d())
    child = window.launch.run_processes(2)
    assert child is not None
    qtbot.waitUntil(lambda: not window.launch.children, timeout=120_000)
    assert child.proc.returncode == 0, child.out.with_name(child.out.name + ".log").read_text()
    followed = lambda: [f.run for f in window.session.follower.followed.values()]   # noqa: E731
    qtbot.waitUntil(lambda: any(r.iteration == 3 for r in followed()), timeout=20_000)
    assert all(r.config.is_rl for r in followed()) and window.error_banner.isHidden()


def test_the_trajectory_view_exports_as_the_task_plot(qtbot, make_window, tmp_path):
    window = make_window(nav2d())
    qtbot.waitUntil(lambda: window.plots.task_page() == "trajectories" and window.plots.trajectories.figure()
                    is not None, timeout=10_000)
    for name in ("trajectories.png", "trajectories.svg"):
        written = window.files.export_plot("task", tmp_path / name)
        assert written == tmp_path / name and written.stat().st_size > 0
    assert "goal" in (tmp_path / "trajectories.svg").read_text()   # the view's legend, not an empty plot
    assert window.error_banner.isHidden()


def test_your_own_module_is_refused_for_meta_rl_before_a_file_is_picked(qtbot, make_window, monkeypatch):
    from maml_gui.dialogs import user_module_dialog

    opened = []
    monkeypatch.setattr(user_module_dialog.UserModuleDialog, "exec", lambda self: opened.append(self) or 0)
    window = make_window(nav2d())
    window.choose_user_module()
    assert not opened and "a meta-RL policy is an MLP" in window.error_banner.text()
