"""The adapt view's function plot: the prediction after each step, and clicks that add or remove points.

A :class:`~maml_gui.widgets.function_plot.FunctionPlot` (same look as the main window's task view)
that in click mode keeps its axes still, so it can serve as a canvas for 1-D support points.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QWidget

from .function_plot import FunctionPlot

DEFAULT_Y_SPAN = 5.0   # the clicking canvas shows y in ±5 until the user zooms


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

    def show_function(self, view, keep_range: bool = False) -> None:
        x_range, y_range = self.plot.getPlotItem().vb.viewRange()
        super().show_function(view)
        if not np.isfinite(np.asarray(view.truth, dtype=float)).any():   # clicked or CSV points: no true curve
            self.legend.removeItem(self._truth)
        if keep_range:
            self.plot.setRange(xRange=x_range, yRange=y_range, padding=0)

    def clear_view(self) -> None:
        """Nothing drawn (e.g. before the first click)."""
        self._truth.setData([], [])
        for curve in self._predictions:
            curve.hide()
        self._points.setData([], [])
        self._regions.hide()
        self.legend.clear()

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
