"""The numbers behind the meta-RL views, without Qt: trajectories as drawable lines, the square the
2-D navigation view spans, where a click puts a goal, and the per-episode return strip.

What the views draw is plain data (:class:`~core.rl.task_views.TrajectoryFigure`,
:class:`~core.rl.task_views.EpisodeReturns`: numpy arrays and floats), so the widgets are tested with arrays.
"""

from __future__ import annotations

import math

import numpy as np

from core.rl.task_views import TrajectoryFigure

GOAL_HALF = 0.5     # 2-D navigation goals are drawn in [-0.5, 0.5]² (MAML paper §5.3)
VIEW_MARGIN = 0.1   # the view shows the goal square plus this much on each side
VIEW_STEP = 0.25    # a view grown for trajectories that leave it grows in these steps (stable axes)
VIEW_MAX = 2.0      # never wider than ±this: a policy that runs away is cut off, the goal stays readable


def path_lines(paths: np.ndarray, start=None) -> tuple[np.ndarray, np.ndarray]:
    """All trajectories of one step as one curve ``(x, y)``, a NaN between trajectories (drawn with
    ``connect="finite"``: one item, one ``setData``, however many rollouts). A trajectory that ends
    early is NaN-padded: its padding joins the separator. ``start`` is put in front of each path
    when its first row is not the start already."""
    paths = np.asarray(paths, dtype=float)
    if paths.ndim == 2:
        paths = paths[None]
    if paths.size == 0:
        return np.empty(0), np.empty(0)
    if start is not None and not np.allclose(paths[:, 0], start, equal_nan=False):
        head = np.broadcast_to(np.asarray(start, dtype=float), (len(paths), 1, 2))
        paths = np.concatenate([head, paths], axis=1)
    gap = np.full((len(paths), 1, 2), np.nan)
    joined = np.concatenate([paths, gap], axis=1).reshape(-1, 2)[:-1]
    return joined[:, 0], joined[:, 1]


def path_ends(paths: np.ndarray) -> np.ndarray:
    """The last finite position of each trajectory ``[rollouts, 2]`` (where each one stopped)."""
    paths = np.asarray(paths, dtype=float)
    if paths.ndim == 2:
        paths = paths[None]
    ok = np.isfinite(paths).all(axis=2)
    last = np.where(ok.any(axis=1), ok.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1), 0)
    ends = paths[np.arange(len(paths)), last]
    return ends[ok.any(axis=1)]


def view_half_width(figure: TrajectoryFigure | None, half: float = GOAL_HALF, margin: float = VIEW_MARGIN,
                    step: float = VIEW_STEP, most: float = VIEW_MAX) -> float:
    """Half the side of the square view centred on the start: the goal square plus ``margin``, grown in
    ``step``s (so it changes rarely) to hold the goal and the adapted policy's trajectories, never past
    ``most``. The trajectories before adaptation do not widen it: an unadapted policy may wander far,
    and the figure is about where the adapted one goes (they are cut at the edge)."""
    extent = half
    if figure is not None:
        adapted = figure.paths[1:] or figure.paths
        values = [np.abs(np.asarray(figure.goal, dtype=float) - figure.start)]
        values += [np.abs(np.asarray(p, dtype=float) - figure.start) for p in adapted]
        finite = [v[np.isfinite(v)] for v in values]
        extent = max([extent, *(float(v.max()) for v in finite if v.size)])
    if extent <= half:
        return half + margin
    return min(most, math.ceil((extent + margin) / step) * step)


def clamp_goal(x: float, y: float, half: float = GOAL_HALF) -> tuple[float, float]:
    """A clicked goal, moved into the square goals are drawn from (a policy meta-trained on that square
    is only expected to adapt to goals inside it)."""
    return float(min(max(x, -half), half)), float(min(max(y, -half), half))


def step_label(s: int) -> str:
    return "before adaptation" if s == 0 else f"after {s} step{'s' * (s > 1)}"


def figure_caption(figure: TrajectoryFigure) -> str:
    """E.g. "goal (0.31, -0.12) · return −38.2 → −4.1 after 2 steps" for the line under the view."""
    goal = f"goal ({figure.goal[0]:.2f}, {figure.goal[1]:.2f})"
    returns = [r for r in figure.returns if math.isfinite(r)]
    if len(figure.returns) >= 2 and len(returns) == len(figure.returns):
        return (f"{goal} · average return {figure.returns[0]:.1f} → {figure.returns[-1]:.1f} "
                f"after {figure.steps} step{'s' * (figure.steps != 1)}")
    return goal


def strip_points(returns: tuple[np.ndarray, ...] | list, width: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A strip plot's points: ``(x, y, step)`` with each step's episodes spread over ``±width/2``
    around the step number in a fixed (not random) order, so a redraw never moves a point."""
    xs, ys, steps = [], [], []
    for s, values in enumerate(returns):
        values = np.asarray(values, dtype=float).ravel()
        values = values[np.isfinite(values)]
        n = len(values)
        offset = (np.arange(n) * 0.618034) % 1.0 - 0.5 if n > 1 else np.zeros(n)   # golden-ratio spread
        xs.append(s + width * offset)
        ys.append(values)
        steps.append(np.full(n, s))
    if not xs:
        return np.empty(0), np.empty(0), np.empty(0, dtype=int)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(steps).astype(int)


def mean_ci95(values) -> tuple[float, float]:
    """Mean and 95% confidence half-width (normal approximation, as the held-out scores use) of the finite values."""
    values = np.asarray(values, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), 0.0
    return float(values.mean()), float(1.96 * values.std(ddof=1) / math.sqrt(len(values)))

