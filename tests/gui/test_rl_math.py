"""The meta-RL views' numbers without Qt: trajectories as one curve, the view's square, clicked goals, the strip."""

import math
import subprocess
import sys

import numpy as np
import pytest

from core.config import ExperimentConfig, FamilySpec
from core.rl.task_views import TrajectoryFigure
from maml_gui.session.overlays import run_kind
from maml_gui.widgets.rl_math import (clamp_goal, figure_caption, mean_ci95, path_ends, path_lines, strip_points,
                                      view_half_width)


def test_rl_math_loads_no_qt():
    code = ("import sys, maml_gui.widgets.rl_math; "
            "print(','.join(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_path_lines_joins_trajectories_with_one_gap_each_and_keeps_early_ends_as_gaps():
    paths = np.array([[[0, 0], [0.1, 0.0], [0.2, 0.0]],
                      [[0, 0], [0.0, -0.1], [np.nan, np.nan]]])   # the second ended after one step
    x, y = path_lines(paths)
    assert len(x) == 3 + 1 + 3
    np.testing.assert_array_equal(x[:3], [0, 0.1, 0.2])
    assert math.isnan(x[3]) and math.isnan(y[3])
    np.testing.assert_array_equal(y[4:6], [0, -0.1])
    assert math.isnan(y[6])


def test_path_lines_puts_the_start_in_front_of_paths_that_lack_it():
    x, y = path_lines(np.array([[[0.1, 0.1], [0.2, 0.2]]]), start=(0.0, 0.0))
    np.testing.assert_array_equal(x, [0.0, 0.1, 0.2])
    np.testing.assert_array_equal(y, [0.0, 0.1, 0.2])


def test_path_ends_are_each_trajectorys_last_position():
    paths = np.array([[[0, 0], [0.1, 0.2], [0.3, 0.4]], [[0, 0], [0.5, 0.1], [np.nan, np.nan]]])
    np.testing.assert_array_equal(path_ends(paths), [[0.3, 0.4], [0.5, 0.1]])


def test_the_view_is_the_goal_square_plus_margin_and_grows_in_steps_for_the_adapted_trajectories():
    near = TrajectoryFigure(np.array([0.4, -0.3]), (np.zeros((2, 5, 2)),))
    assert view_half_width(None) == pytest.approx(0.6)
    assert view_half_width(near) == pytest.approx(0.6)
    far = np.zeros((1, 3, 2))
    far[0, 2] = (-1.3, 0.2)   # an adapted policy that overshoots
    grown = view_half_width(TrajectoryFigure(np.array([0.1, 0.1]), (np.zeros((1, 3, 2)), far)))
    assert grown == pytest.approx(1.5) and grown >= 1.3 + 0.1
    assert view_half_width(TrajectoryFigure(np.array([0.1, 0.1]), (far, np.zeros((1, 3, 2))))) == pytest.approx(0.6)
    far[0, 2] = (50.0, 0.0)
    assert view_half_width(TrajectoryFigure(np.array([0.1, 0.1]), (far,))) == 2.0


def test_a_clicked_goal_is_moved_into_the_goal_square():
    assert clamp_goal(0.2, -0.3) == (0.2, -0.3)
    assert clamp_goal(0.9, -2.0) == (0.5, -0.5)


def test_the_caption_says_the_goal_and_the_return_before_and_after():
    figure = TrajectoryFigure(np.array([0.31, -0.12]), (np.zeros((1, 2, 2)),) * 3, (-38.24, -9.0, -4.06))
    assert figure_caption(figure) == "goal (0.31, -0.12) · average return -38.2 → -4.1 after 2 steps"
    assert figure_caption(TrajectoryFigure(np.array([0.0, 0.5]), (np.zeros((1, 2, 2)),))) == "goal (0.00, 0.50)"


def test_strip_points_spread_each_step_around_its_number_the_same_way_every_time():
    returns = (np.array([-10.0, -12.0, -11.0]), np.array([-3.0, np.nan, -2.0]))
    x, y, steps = strip_points(returns, width=0.3)
    np.testing.assert_array_equal(steps, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(y, [-10, -12, -11, -3, -2])
    assert np.all(np.abs(x - steps) <= 0.15 + 1e-12)
    assert len(set(np.round(x[:3], 6))) == 3   # the episodes of a step do not sit on one another
    np.testing.assert_array_equal(strip_points(returns)[0], x)


def test_mean_ci95_is_the_normal_interval_over_finite_values():
    mean, ci = mean_ci95([1.0, 2.0, 3.0, np.nan])
    assert mean == 2.0 and ci == pytest.approx(1.96 * 1.0 / math.sqrt(3))
    assert mean_ci95([4.0]) == (4.0, 0.0)
    assert all(math.isnan(v) for v in mean_ci95([]))


def test_meta_rl_runs_are_a_kind_of_their_own_on_the_plots():
    assert run_kind(ExperimentConfig(family=FamilySpec("nav2d", {}))) == "rl"
    assert run_kind(ExperimentConfig(family=FamilySpec("sinusoid", {}))) == "regression"
    assert run_kind(ExperimentConfig(family=FamilySpec("blobs", {}))) == "classification"
