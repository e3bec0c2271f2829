"""The meta-RL plots over meta-iterations and over held-out episodes.

An RL run's metric table keeps the supervised columns (``History``): where a supervised run has its
query loss after inner step s, an RL run has the average return of its fresh trajectories after s
policy-gradient steps. These plots read those columns, and say that higher is better.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from maml_gui.widgets.adaptation_plot import RETURN_LABEL
from core.rl.task_views import EpisodeReturns
from maml_gui.widgets.rl_math import mean_ci95, step_label, strip_points
from .loss_plot import LossPlot
from .plot_base import PlotBox, curve_data
from .plot_colors import PALETTE, step_colors
from .step_loss_plot import StepLossPlot


class MetaReturnPlot(LossPlot):
    """The meta-return: the average return of the adapted policies (after the last inner step) per
    meta-iteration, raw and smoothed; compared runs dashed. Higher is better, so no log axis."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, "Meta-return (after adaptation)", RETURN_LABEL)
        self._log.hide()   # returns are negative in most tasks
        self._log.setChecked(False)

    def _values(self, history) -> np.ndarray:
        returns = history.step_losses   # an RL run's average returns after 0..N inner steps
        return returns[:, -1:] if returns.shape[1] else np.empty((len(history), 0))

    def _overlay_values(self, history) -> np.ndarray | None:
        returns = history.step_losses
        return returns[:, -1] if returns.shape[1] else None


class StepReturnPlot(StepLossPlot):
    """The average return before adaptation and after each inner step, per meta-iteration: the gap
    between the curves is what one policy-gradient step on a task's own trajectories buys."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._set_axes("Return before and after each inner step", "meta-iteration",
                       "average return (higher is better, smoothed)")
        self._log.hide()
        self._log.setChecked(False)


class EpisodeStrip(PlotBox):
    """Held-out episodes of a family with no picture of its own: each episode's return as a point,
    at the number of inner steps the policy took on its task's own trajectories, with the mean and
    its 95% confidence interval per step."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Held-out episodes: return per episode", "policy-gradient steps on the task's own trajectories",
                         "return per episode (higher is better)", parent)
        self._points = pg.ScatterPlotItem(size=6, pen=None)
        self.plot.addItem(self._points)
        self._mean = self.plot.plot(pen=pg.mkPen(PALETTE[0], width=2), symbol="o", symbolSize=8,
                                    symbolBrush=pg.mkBrush(PALETTE[0]), symbolPen=None)
        self._bars = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0), beam=0.15,
                                     pen=pg.mkPen(PALETTE[0], width=1.5))
        self.plot.addItem(self._bars)
        self._episodes: EpisodeReturns | None = None
        self._stats: tuple[np.ndarray, np.ndarray, np.ndarray] = (np.empty(0),) * 3
        self._bottom = self.plot.getPlotItem().getAxis("bottom")
        self._use_legend_row()

    def show_returns(self, episodes: EpisodeReturns | None) -> None:
        """Draw each step's episodes (None empties the plot)."""
        self._episodes = episodes
        returns = () if episodes is None else episodes.returns
        x, y, steps = strip_points(returns)
        colors = step_colors(len(returns))
        self._points.setData(x, y, brush=[pg.mkBrush(colors[s]) for s in steps])
        stats = [mean_ci95(r) for r in returns]
        s = np.arange(len(returns), dtype=float)
        mean = np.array([m for m, _ in stats], dtype=float)
        ci = np.array([c for _, c in stats], dtype=float)
        ok = np.isfinite(mean) & np.isfinite(ci)
        self._stats = (s[ok], mean[ok], ci[ok])
        self._mean.setData(s[ok], mean[ok])
        self._bars.setData(x=s[ok], y=mean[ok], height=2 * ci[ok])
        self._bottom.setTicks([[(float(i), "before" if i == 0 else str(i)) for i in range(len(returns))]] if len(returns) else None)
        n = max((len(r) for r in returns), default=0)
        self.legend.set_entries([(self._points, f"one episode ({n} per step)"), (self._mean, "mean ± 95% CI")]
                                if len(x) else [])
        self.legend.set_wanted(bool(len(x)))
        self.vb.enableAutoRange()
        self.vb.refresh_auto_range()

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the episodes' points as drawn."""
        return np.asarray(self._points.data["x"]), np.asarray(self._points.data["y"])

    def means(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps, mean, ci95) per step as drawn."""
        return self._stats

    def mean_curve(self) -> tuple[np.ndarray, np.ndarray]:
        return curve_data(self._mean)

    def step_names(self) -> list[str]:
        return [step_label(s) for s in range(0 if self._episodes is None else len(self._episodes.returns))]
