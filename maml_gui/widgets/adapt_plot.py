"""The adapt view's function plot: the prediction after each step, and clicks that add or remove points.

A :class:`~maml_gui.widgets.function_plot.FunctionPlot` (same look as the main window's task view)
that in click mode keeps its axes still, so it can serve as a canvas for 1-D support points, and
that can also draw a task's held-back rows (its query set), which score the adaptation.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QWidget

from .function_plot import FunctionPlot
from .plot_colors import class_colors

DEFAULT_Y_SPAN = 5.0   # the clicking canvas shows y in ±5 until the user zooms
QUERY_NAME = "held-back rows (query)"
QUERY_COLOR = "#555555"


class AdaptPlot(FunctionPlot):
    """The function view, plus clicks: left adds a support point, right removes the nearest one."""

    point_added = Signal(float, float)
    point_removed = Signal(float, float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot.setTitle("Prediction after each adaptation step", size="11pt")
        self.legend.setColumnCount(2)        # a short, wide legend: the plot is small in the dock
        self.legend.setLabelTextSize("8pt")
        self._clicks = pg.ScatterPlotItem(size=11, pen=pg.mkPen("k", width=1.5), brush=pg.mkBrush("#ffdd57"))
        self._clicks.setZValue(20)
        self.plot.addItem(self._clicks)
        # the query rows: crosses, told apart from the support's round markers at a glance
        self._query = pg.ScatterPlotItem(size=9, symbol="x", pen=None, brush=pg.mkBrush(QUERY_COLOR))
        self._query.setZValue(15)
        self.plot.addItem(self._query)
        self._clicking = False
        self.plot.scene().sigMouseClicked.connect(self._on_click)

    def set_clicking(self, on: bool, x_range: tuple[float, float] | None = None) -> None:
        """In click mode the axes stay put (a canvas to click on) and right-click removes points."""
        entering = on and not self._clicking
        self._clicking = on
        self.plot.setMenuEnabled(not on)
        if not on:
            self._clicks.setData([], [])
        elif entering and x_range is not None:
            self.plot.setRange(xRange=x_range, yRange=(-DEFAULT_Y_SPAN, DEFAULT_Y_SPAN), padding=0.02)

    def show_clicks(self, points) -> None:
        """Draw the clicked points at once, before any adaptation result arrives."""
        xy = np.asarray(points, dtype=float).reshape(-1, 2)
        self._clicks.setData(xy[:, 0], xy[:, 1])

    def show_function(self, view, keep_range: bool = False, query=None) -> None:
        """The curves of ``view``; ``query`` (x, y): the task's held-back points, drawn as crosses."""
        x_range, y_range = self.plot.getPlotItem().vb.viewRange()
        self._query.setData([], [])
        super().show_function(view)
        entries = self.legend.entries()
        if not np.isfinite(np.asarray(view.truth, dtype=float)).any():   # clicked or CSV points: no true curve
            entries = [(item, name) for item, name in entries if item is not self._truth]
        if query is not None and self._set_query(*query):
            entries.append((self._query, QUERY_NAME))
        self.legend.set_entries(entries)
        self._fit_legend()
        self.vb.refresh_auto_range()
        if keep_range:
            self.plot.setRange(xRange=x_range, yRange=y_range, padding=0)

    def show_regions(self, grid_x, grid_y, labels, points_x, points_y, point_labels, query=None) -> None:
        """Decision regions; ``query`` (x₁, x₂, labels): the held-back points as crosses in their class colours."""
        self._query.setData([], [])
        super().show_regions(grid_x, grid_y, labels, points_x, points_y, point_labels)
        if query is not None and self._set_query(*query):
            self.legend.set_entries([(self._query, QUERY_NAME)])
            self.legend.set_wanted(True)
            self._fit_legend()
        self.vb.refresh_auto_range()

    def query_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The held-back points drawn (x, y); empty when none are."""
        return self._query.data["x"].copy(), self._query.data["y"].copy()

    def clear_view(self) -> None:
        """Nothing drawn (e.g. before the first click)."""
        self._truth.setData([], [])
        for curve in self._predictions:
            curve.hide()
        self._points.setData([], [])
        self._query.setData([], [])
        self._regions.hide()
        self.legend.clear()

    def _set_query(self, x, y, labels=None) -> bool:
        x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.any():
            return False
        if labels is None:
            self._query.setData(x[ok], y[ok], brush=pg.mkBrush(QUERY_COLOR))
        else:
            labels = np.asarray(labels, dtype=int).ravel()[ok]
            colors = class_colors(int(labels.max(initial=0)) + 1)
            self._query.setData(x[ok], y[ok], brush=[pg.mkBrush(colors[k]) for k in labels])
        return True

    def _on_click(self, event) -> None:
        if not self._clicking:
            return
        vb = self.plot.getPlotItem().vb
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        point = vb.mapSceneToView(event.scenePos())
        if event.button() == Qt.MouseButton.LeftButton:
            self.point_added.emit(float(point.x()), float(point.y()))
            event.accept()
        elif event.button() == Qt.MouseButton.RightButton:
            self.point_removed.emit(float(point.x()), float(point.y()))
            event.accept()
