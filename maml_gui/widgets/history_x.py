"""What the history plots draw along x: meta-iterations, relative time, wall-clock time or training time.

TensorBoard's three (step, relative, wall) plus the training time this app had before ``metrics.csv``
recorded clock times. Relative and wall-clock time come from the ``wall_time`` column; a run written by a
version before it has none, and is drawn against its training time instead (the plot says so).
"""

from __future__ import annotations

import numpy as np

from maml_gui.widgets.plot_math import training_time

X_AXES = {   # the choice: its axis label
    "iteration": "meta-iteration",
    "relative": "relative time (pauses included)",
    "wall": "wall-clock time",
    "time": "training time (meta-steps only)",
}
X_NAMES = {"iteration": "iteration", "relative": "relative time", "wall": "wall-clock time", "time": "training time"}
X_TIPS = {
    "iteration": "Meta-iterations on the x axis",
    "relative": "Clock time since each run's first meta-iteration began (pauses, held-out scoring, saving and the "
                "time between a stop and a Continue included): compared runs start together at 0, as TensorBoard's "
                "Relative",
    "wall": "The date and time of day each meta-iteration ended (local time): compared runs appear when they ran, "
            "a stopped and continued run shows its gap",
    "time": "The sum of the meta-iterations' own durations (metrics.csv's seconds): pauses, held-out scoring and "
            "saving are not counted",
}
CLOCK_MODES = ("relative", "wall")   # need metrics.csv's wall_time column
PAUSE_SECONDS, PAUSE_FACTOR = 2.0, 20.0   # a step between drawn points longer than both is a pause
NO_CLOCK = ("{name} was written by a version without metrics.csv's wall_time column, so it records no clock "
            "time: its curves are drawn against training time")


def used_mode(mode: str, history) -> str:
    """The x the shown run is drawn against: ``mode``, or training time when ``mode`` needs clock times
    that ``history`` lacks."""
    if mode in CLOCK_MODES and history is not None and len(history) and not history.has_wall_time():
        return "time"
    return mode


def x_values(history, mode: str) -> np.ndarray:
    """The x of each kept row of ``history`` (NaN where a clock mode meets a row without clock time)."""
    if mode == "time":
        return training_time(history.iterations, history.seconds)
    if mode == "wall":
        return history.wall_times
    if mode == "relative":
        return history.wall_times - (np.nan if history.started is None else history.started)
    return history.iterations


def drawable(x: np.ndarray, columns: list[np.ndarray], clock: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """``x`` and ``columns`` without the rows whose x is unknown, x never decreasing (a clock set back
    would otherwise fold the curve onto itself, and the plots reduce x in order). On a ``clock`` axis a
    pause (a stop, then Continue) breaks the curves: no line is drawn through time nothing trained."""
    keep = np.isfinite(x)
    if not keep.all():
        x, columns = x[keep], [c[keep] for c in columns]
    if len(x) > 1 and np.any(np.diff(x) < 0):
        x = np.maximum.accumulate(x)
    if clock and len(x) > 2:
        gaps = np.flatnonzero(_pauses(np.diff(x)))
        if len(gaps):
            x = np.insert(x, gaps + 1, (x[gaps] + x[gaps + 1]) / 2)
            columns = [np.insert(np.asarray(c, dtype=float), gaps + 1, np.nan) for c in columns]
    return x, columns


def _pauses(dx: np.ndarray) -> np.ndarray:
    """Which steps between drawn points are a pause: over :data:`PAUSE_SECONDS` and over
    :data:`PAUSE_FACTOR` times the typical step."""
    typical = float(np.median(dx)) if len(dx) else 0.0
    return (dx > PAUSE_SECONDS) & (dx > PAUSE_FACTOR * typical)


def mean_x(stack: list[np.ndarray]) -> np.ndarray:
    """The mean of the seeds' x at each point, over the seeds that know it (NaN where none does)."""
    values = np.vstack(stack)
    known = np.isfinite(values)
    count = known.sum(axis=0)
    total = np.where(known, values, 0.0).sum(axis=0)
    return np.divide(total, count, out=np.full(values.shape[1], np.nan), where=count > 0)
