"""The plots' numbers without Qt: smoothing, decimation to pixels, axis ranges, run colours."""

import math
import subprocess
import sys

import numpy as np
import pytest

from maml_gui.session.overlays import RUN_COLORS, run_color
from maml_gui.widgets.plot_math import (SmoothedColumns, display_index, ema_debiased, keep_or_snap, snap_range,
                                        to_pixels, value_bounds)


def test_plot_math_and_overlays_load_no_qt():
    code = ("import sys, maml_gui.widgets.plot_math, maml_gui.session.overlays; "
            "print(','.join(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ---------------------------------------------------------------- smoothing
def test_ema_matches_tensorboard_loop_incrementally():
    rng = np.random.default_rng(0)
    values = rng.normal(size=5000) + 3
    expected, last = [], 0.0
    for i, v in enumerate(values, start=1):
        last = last * 0.99 + 0.01 * v
        expected.append(last / (1 - 0.99 ** i))
    head, state = ema_debiased(values[:1234], 0.99)
    tail, _ = ema_debiased(values[1234:], 0.99, state)
    np.testing.assert_allclose(np.concatenate([head, tail]), expected, rtol=1e-9)
    np.testing.assert_array_equal(ema_debiased(values, 0.0)[0], values)


def test_debiasing_starts_at_the_first_value_not_at_zero():
    smoothed, _ = ema_debiased(np.full(50, 7.0), 0.99)
    np.testing.assert_allclose(smoothed, 7.0)   # a plain EMA from 0 would start at 0.07


def test_non_finite_values_are_gaps_that_do_not_poison_the_smoothing():
    smoothed, _ = ema_debiased(np.array([1.0, np.nan, np.inf, 1.0]), 0.9)
    assert math.isnan(smoothed[1]) and math.isnan(smoothed[2])
    np.testing.assert_allclose(smoothed[[0, 3]], 1.0)


def test_smoothed_columns_extend_incrementally_and_start_over_when_thinned():
    rng = np.random.default_rng(1)
    table = rng.normal(size=(300, 2))
    smoother = SmoothedColumns()
    smoother.update(table[:100], 0.9, generation=1)
    grown = smoother.update(table, 0.9, generation=1).copy()
    np.testing.assert_allclose(grown[:, 1], ema_debiased(table[:, 1], 0.9)[0], rtol=1e-12)
    thinned = table[::2]
    np.testing.assert_allclose(smoother.update(thinned, 0.9, generation=2)[:, 0], ema_debiased(thinned[:, 0], 0.9)[0])
    np.testing.assert_allclose(smoother.update(thinned, 0.5, generation=2)[:, 0], ema_debiased(thinned[:, 0], 0.5)[0])
    assert smoother.update(np.empty((4, 0)), 0.5).shape == (4, 0)


# ---------------------------------------------------------------- decimation
def test_display_index_is_a_stable_power_of_two_stride_plus_the_last_point():
    assert len(display_index(10, limit=100)) == 10
    index = display_index(1003, limit=100)
    assert len(index) <= 101 and index[-1] == 1002
    assert np.all(np.diff(index[:-1]) == 16)
    np.testing.assert_array_equal(display_index(1050, limit=100)[:len(index) - 1], index[:-1])   # growing moves no point


def test_peak_decimation_keeps_each_pixels_min_and_max():
    rng = np.random.default_rng(2)
    x, y = np.arange(4096.0), rng.normal(size=4096)
    y[1000], y[3000] = 50.0, -50.0   # single-point spikes must survive
    px, py = to_pixels(x, y, pixels=64)
    assert len(px) == len(py) == 2 * 64
    buckets = y.reshape(64, 64)
    np.testing.assert_array_equal(py[0::2], buckets.min(axis=1))
    np.testing.assert_array_equal(py[1::2], buckets.max(axis=1))
    assert py.max() == 50.0 and py.min() == -50.0


def test_mean_decimation_and_gaps():
    x, y = np.arange(256.0), np.arange(256.0)
    y[:64] = np.nan
    px, py = to_pixels(x, y, pixels=4, mode="mean")
    assert math.isnan(py[0])
    np.testing.assert_allclose(py[1:], [95.5, 159.5, 223.5])
    np.testing.assert_allclose(px, [31.5, 95.5, 159.5, 223.5])


def test_to_pixels_reduces_only_the_visible_range_and_leaves_short_curves_alone():
    x, y = np.arange(10_000.0), np.sin(np.arange(10_000.0))
    px, _ = to_pixels(x, y, pixels=100, x_range=(2000, 3000))
    assert px.min() >= 1900 and px.max() <= 3100 and len(px) <= 2 * 100 + 4
    short = to_pixels(np.arange(5.0), np.arange(5.0), pixels=100)
    np.testing.assert_array_equal(short[1], np.arange(5.0))


# ---------------------------------------------------------------- axis ranges
def test_bounds_ignore_non_finite_values():
    assert value_bounds([np.array([1.0, np.nan, 3.0, np.inf]), np.array([-np.inf, 2.0])]) == (1.0, 3.0)
    assert value_bounds([np.array([np.nan]), np.empty(0)]) is None


def test_log_bounds_use_the_positive_finite_values_as_log10():
    assert value_bounds([np.array([0.0, -1.0, 0.01, 100.0, np.inf])], log=True) == pytest.approx((-2.0, 2.0))
    assert value_bounds([np.array([0.0, -3.0])], log=True) is None


def test_snapped_ranges_hold_the_data_and_change_rarely():
    lo, hi = snap_range(0.13, 0.91, 0.02)
    assert lo < 0.13 and hi > 0.91
    assert keep_or_snap((lo, hi), (0.15, 0.9), 0.02) == (lo, hi)   # still inside and filling it: kept
    assert keep_or_snap((lo, hi), (0.15, 5.0), 0.02) != (lo, hi)   # outgrown: snapped anew
    start, end = snap_range(1, 1000, 0.02, anchored=True)
    assert start < 1 and end > 1000
    assert snap_range(3.0, 3.0, 0.02) == pytest.approx((2.85, 3.15))


def test_values_a_rounding_apart_get_a_readable_range():
    """A run's first loss and its smoothed copy differ in the last bit: the axis spans 5% about
    them, not 1e-14 labelled with 16 digits."""
    lo, hi = snap_range(1.31339502334594, 1.31339502334595, 0.05)
    assert lo == pytest.approx(1.31339502334594 * 0.95) and hi == pytest.approx(1.31339502334595 * 1.05)
    assert snap_range(0.0, 1e-12, 0.05)[1] - snap_range(0.0, 1e-12, 0.05)[0] < 1e-11   # tiny values stay tiny


# ---------------------------------------------------------------- run colours
def test_run_colours_are_distinct_and_stable():
    colors = [run_color(i) for i in range(1, 25)]
    assert len(set(colors)) == 24 and colors[:len(RUN_COLORS)] == list(RUN_COLORS)
    assert all(len(c) == 7 and c.startswith("#") for c in colors)
    assert run_color(3) == run_color(3)


def test_training_time_adds_up_the_steps_durations_also_for_a_thinned_history():
    from maml_gui.widgets.plot_math import training_time
    np.testing.assert_allclose(training_time([1, 2, 3], [0.5, 1.0, 0.5]), [0.5, 1.5, 2.0])
    # every 4th row kept: each stands for the 4 iterations since the previous one
    np.testing.assert_allclose(training_time([4, 8, 12], [1.0, 2.0, 1.0]), [1.0, 9.0, 13.0])
    np.testing.assert_allclose(training_time([1, 2], [np.nan, 1.0]), [0.0, 1.0])   # an unknown duration adds nothing
    assert training_time([], []).shape == (0,)


def test_time_ticks_fall_on_clock_friendly_steps_and_read_as_durations():
    from maml_gui.widgets.plot_math import format_duration, time_tick_spacing
    assert time_tick_spacing(0, 100, 700) == 10
    assert time_tick_spacing(0, 3000, 700) == 300
    assert time_tick_spacing(0, 7 * 3600, 700) == 3600
    assert [format_duration(v) for v in (0, 45, 150, 3900)] == ["0 s", "45 s", "2:30", "1:05:00"]
