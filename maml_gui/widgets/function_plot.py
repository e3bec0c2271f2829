"""One held-out task up close: the true function, the support points and the prediction after each step."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QPen
from PySide6.QtWidgets import QWidget

from .plot_base import PlotBox, curve_data, set_curve
from .plot_colors import BEFORE_STYLE, class_colors, step_colors


class FunctionPlot(PlotBox):
    """One task up close: the true function, its K support points and the prediction after each step;
    for 2-D classification the decision regions after adaptation instead."""

    MAX_STEP_CURVES = 6

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Adaptation to one held-out task", "x", "y", parent)
        self._regions = pg.ImageItem()
        self._regions.hide()
        self.plot.addItem(self._regions)
        self._truth = self.plot.plot(pen=pg.mkPen("#d62728", width=3))
        self._predictions: list[pg.PlotDataItem] = []
        self._points = pg.ScatterPlotItem(size=9, pen=pg.mkPen("k", width=1))
        self.plot.addItem(self._points)
        self._drawn_steps: list[int] = []
        self._region_labels: np.ndarray | None = None
        self._use_legend_row()

    def show_function(self, view) -> None:
        """Draw a ``core.trained.evaluation.FunctionView``; with many steps only a spread of them is shown."""
        n = len(view.predictions)
        steps = list(range(n)) if n <= self.MAX_STEP_CURVES else sorted(
            {0, 1, *np.linspace(0, n - 1, self.MAX_STEP_CURVES - 1).round().astype(int).tolist()})
        while len(self._predictions) < len(steps):
            self._predictions.append(self.plot.plot())
        self._regions.hide()
        self._region_labels = None
        self._set_axes("Adaptation to one held-out task", "x", "y")
        grid = np.asarray(view.grid, dtype=float)
        has_truth = set_curve(self._truth, grid, view.truth)
        self._truth.show()
        colors = step_colors(len(steps))
        for i, s in enumerate(steps):   # pens (and their legend samples) change only with the step count
            style = BEFORE_STYLE if s == 0 else Qt.PenStyle.SolidLine
            pen = self._predictions[i].opts["pen"]
            if not (isinstance(pen, QPen) and pen.color() == colors[i] and pen.style() == style and pen.widthF() == 2):
                self._predictions[i].setPen(pg.mkPen(colors[i], width=2, style=style))
                self.legend.clear()   # its samples are cached pictures of the old pens
        for i, curve in enumerate(self._predictions):
            if i >= len(steps):
                curve.hide()
                continue
            set_curve(curve, grid, view.predictions[steps[i]])
            curve.show()
        sx, sy = np.asarray(view.support_x, float), np.asarray(view.support_y, float)
        ok = np.isfinite(sx) & np.isfinite(sy)
        self._points.setData(sx[ok], sy[ok], brush=pg.mkBrush("#ffffff"), symbol="o")
        # the first, second and last step are named; the colour ramp places the ones between
        named = [i for i, s in enumerate(steps) if i in (0, 1, len(steps) - 1)]
        self.legend.set_entries([*([(self._truth, "true function")] if has_truth else []),
                                 *[(self._predictions[i], "before adaptation" if steps[i] == 0 else
                                    f"after {steps[i]} step{'s' * (steps[i] > 1)}") for i in named],
                                 (self._points, f"support ({len(view.support_x)} points)")])
        self.legend.set_wanted(True)
        self._fit_legend()
        self._drawn_steps = steps
        self.vb.enableAutoRange()
        self.vb.refresh_auto_range()

    def show_regions(self, grid_x, grid_y, labels, points_x, points_y, point_labels) -> None:
        """Decision regions: ``labels[h, w]`` over axes ``grid_x`` (w) and ``grid_y`` (h); points by class."""
        gx, gy = np.asarray(grid_x, float), np.asarray(grid_y, float)
        gx, gy = (gx[0] if gx.ndim == 2 else gx), (gy[:, 0] if gy.ndim == 2 else gy)
        labels = np.asarray(labels, dtype=int)
        point_labels = np.asarray(point_labels, dtype=int)
        colors = class_colors(int(max(labels.max(initial=0), point_labels.max(initial=0))) + 1)
        light = np.array([c.getRgb() for c in colors], dtype=np.ubyte)
        light[:, 3] = 70
        self._regions.setImage(light[labels].transpose(1, 0, 2), autoLevels=False)
        self._regions.setRect(QRectF(gx[0], gy[0], gx[-1] - gx[0], gy[-1] - gy[0]))
        self._region_labels = labels
        self._regions.show()
        self._truth.hide()
        for curve in self._predictions:
            curve.hide()
        self.legend.clear()   # colours are classes; an empty legend hides itself
        self._drawn_steps = []
        self._points.setData(np.asarray(points_x, float), np.asarray(points_y, float),
                             brush=[pg.mkBrush(colors[k]) for k in point_labels], symbol="o")
        self._set_axes("Decision regions after adaptation", "x₁", "x₂")
        self.vb.enableAutoRange()
        self.vb.refresh_auto_range()

    def clear(self) -> None:
        """Nothing drawn (no task to show): every curve and scatter in the view emptied, images hidden."""
        for item in self.vb.addedItems:
            if isinstance(item, (pg.PlotDataItem, pg.ScatterPlotItem)):
                item.setData([], [])
            elif isinstance(item, pg.ImageItem):
                item.hide()
        self._region_labels = None
        self._drawn_steps = []
        self.legend.clear()

    def data(self) -> dict:
        """What is drawn: ``truth``, ``points``, ``predictions`` {step: (x, y)}, ``regions`` (labels image or None)."""
        return {"truth": curve_data(self._truth) if self._truth.isVisible() else None,
                "points": (self._points.data["x"].copy(), self._points.data["y"].copy()),
                "predictions": {s: curve_data(c) for s, c in zip(self._drawn_steps, self._predictions)},
                "regions": self._region_labels if self._regions.isVisible() else None}
