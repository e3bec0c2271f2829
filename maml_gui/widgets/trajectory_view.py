"""2-D navigation up close: the MAML paper's figure of one goal, the trajectories before adaptation and
after each inner step, live; a click places a goal of the user's own."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QWidget

from core.rl.task_views import TrajectoryFigure
from maml_gui.widgets.rl_math import (GOAL_HALF, clamp_goal, path_lines, step_label,
                                      view_half_width)
from .plot_base import PlotBox, curve_data
from .plot_colors import set_pen

GOAL_COLOR = "#d62728"
BEFORE_COLOR = "#7f7f7f"
# after 1, 2, 3 … steps: distinct hues (not the goal's red), in the order the paper's figure reads
STEP_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22")
REVEAL_MS = 350   # a placed goal's trajectories appear one step after another, this far apart


def step_pen(s: int) -> tuple[str, Qt.PenStyle, float]:
    """(colour, style, width) of the trajectories after ``s`` steps: dotted grey before adaptation."""
    if s == 0:
        return BEFORE_COLOR, Qt.PenStyle.DashLine, 1.5
    return STEP_COLORS[(s - 1) % len(STEP_COLORS)], Qt.PenStyle.SolidLine, 1.5


class TrajectoryView(PlotBox):
    """The goal (a red star), the start (a black square at the origin), the square goals are drawn
    from (dashed), and every trajectory of the policy after 0..N inner steps, one colour per step.

    The axes are square and span the goal square plus a margin, grown in coarse steps when trajectories
    leave it. A left click in the view emits ``goal_placed(x, y)`` in data coordinates (moved into the
    goal square); the view shows the goal at once, and the trajectories when :meth:`show_figure` is
    handed the policy's adaptation to it.
    """

    goal_placed = Signal(float, float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("2-D navigation: trajectories on one goal", "x", "y", parent)
        self.setToolTip("Click to place a goal: the policy adapts to it with its inner steps")
        self.vb.setAspectLocked(True)
        self.vb.setMouseEnabled(x=False, y=False)   # a click places a goal; the view is the paper's square
        self.vb.setMenuEnabled(False)
        self.vb.disableAutoRange()
        self.plot.getPlotItem().hideButtons()   # no "A" (auto-range) button: the range is the paper's square
        self._square = self.plot.plot(pen=pg.mkPen("#bbbbbb", width=1, style=Qt.PenStyle.DashLine))
        h = GOAL_HALF
        self._square.setData([-h, h, h, -h, -h], [-h, -h, h, h, -h])
        self._curves: list[pg.PlotDataItem] = []
        self._start = pg.ScatterPlotItem(size=9, symbol="s", pen=pg.mkPen("k"), brush=pg.mkBrush("k"))
        self._goal = pg.ScatterPlotItem(size=20, symbol="star", pen=pg.mkPen("#7a1010", width=1),
                                        brush=pg.mkBrush(GOAL_COLOR))
        for item in (self._start, self._goal):
            item.setZValue(10)   # over the trajectories, which often end on the goal
            self.plot.addItem(item)
        self._start.setData([0.0], [0.0])
        self._figure: TrajectoryFigure | None = None
        self._shown_steps = 0
        self._pending: tuple[float, float] | None = None
        self._reveal = QTimer(self, interval=REVEAL_MS)
        self._reveal.timeout.connect(self._reveal_next)
        self.legend.setColumnCount(1)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        self._fit_range()

    # ------------------------------------------------------------------ public API
    def show_figure(self, figure: TrajectoryFigure | None, reveal: bool = False) -> None:
        """Draw ``figure`` (None: nothing but the goal square). ``reveal``: the steps appear one after
        another (a placed goal: the user watches the policy adapt), else all at once."""
        self._reveal.stop()
        self._figure, self._pending = figure, None
        if figure is None:
            self._goal.setData([], [])
            self._start.setData([0.0], [0.0])
            self._show_steps(0)
            self._fit_range()
            return
        self._goal.setData([float(figure.goal[0])], [float(figure.goal[1])], symbol="star",
                           brush=pg.mkBrush(GOAL_COLOR))   # filled again after a hollow pending goal
        self._start.setData([float(figure.start[0])], [float(figure.start[1])])
        while len(self._curves) < len(figure.paths):
            self._curves.append(self.plot.plot())
        for s, (curve, paths) in enumerate(zip(self._curves, figure.paths)):
            color, style, width = step_pen(s)
            if set_pen(curve, color, width, style):
                self.legend.clear()   # its samples are pictures of the old pens
            curve.setData(*path_lines(paths, figure.start), connect="finite")
        self._fit_range()
        if reveal and len(figure.paths) > 1:
            self._show_steps(1)
            self._reveal.start()
        else:
            self._show_steps(len(figure.paths))

    def set_pending(self, x: float, y: float) -> None:
        """A goal placed and not yet adapted to: shown hollow, without the previous goal's trajectories."""
        self._reveal.stop()
        self._pending = (x, y)
        self._goal.setData([x], [y], symbol="star", brush=pg.mkBrush("w"))
        self._show_steps(0)

    def figure(self) -> TrajectoryFigure | None:
        return self._figure

    def pending(self) -> tuple[float, float] | None:
        """The placed goal the view waits for trajectories of, or None."""
        return self._pending

    def goal(self) -> tuple[float, float] | None:
        """The goal drawn (a placed one too), or None."""
        x, y = self._goal.data["x"], self._goal.data["y"]
        return (float(x[0]), float(y[0])) if len(x) else None

    def drawn(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(x, y) of each step's curve as handed to the plot (NaN between trajectories), shown steps only."""
        return [curve_data(c) for c in self._curves[:self._shown_steps]]

    def legend_names(self) -> list[str]:
        return [name for _, name in self.legend.entries()]

    def half_width(self) -> float:
        """Half the side of the data square the view spans (the widget's aspect may add room to one axis)."""
        (x0, x1), _ = self.vb.targetRange()
        return (x1 - x0) / 2

    def data_to_widget(self, x: float, y: float):
        """Where the point ``(x, y)`` lies in the plot widget's own coordinates (for clicks in tests)."""
        return self.plot.mapFromScene(self.vb.mapViewToScene(pg.Point(x, y)))

    # ------------------------------------------------------------------ drawing
    def _show_steps(self, n: int) -> None:
        self._shown_steps = n
        for s, curve in enumerate(self._curves):
            curve.setVisible(s < n)
        entries = [(self._goal, "goal (placed)" if self._pending or (self._figure and self._figure.placed) else "goal")] \
            if self.goal() is not None else []
        entries += [(self._curves[s], step_label(s)) for s in range(n)]
        self.legend.set_entries(entries)
        self.legend.set_wanted(bool(entries))

    def _reveal_next(self) -> None:
        if self._figure is None or self._shown_steps >= len(self._figure.paths):
            self._reveal.stop()
            return
        self._show_steps(self._shown_steps + 1)
        if self._shown_steps >= len(self._figure.paths):
            self._reveal.stop()

    def _fit_range(self) -> None:
        h = view_half_width(self._figure)
        if self._pending is not None:
            h = max(h, view_half_width(None))
        self.vb.setRange(xRange=(-h, h), yRange=(-h, h), padding=0.0)

    def reset_view(self) -> None:
        self.legend.put_back()
        self._fit_range()

    def is_zoomed(self) -> bool:
        return False   # the view is not zoomed or panned by the mouse

    # ------------------------------------------------------------------ events
    def _on_click(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        pos = event.scenePos()
        if not self.vb.sceneBoundingRect().contains(pos) or self.legend.sceneBoundingRect().contains(pos):
            return
        point = self.vb.mapSceneToView(pos)
        x, y = clamp_goal(point.x(), point.y())
        self.set_pending(x, y)
        self.goal_placed.emit(x, y)
