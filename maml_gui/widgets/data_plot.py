"""The task view, extended to draw a CSV task (``core.trained.task_views.DataView``) next to the built-in views.

A subclass rather than an edit of ``plots.FunctionPlot``: the generated families' function and
decision-region views stay as they are; this adds the task's own rows, and for several inputs a
predicted-vs-true scatter. Items are created once and updated in place, like every plot here.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from .function_plot import FunctionPlot
from .plot_base import set_curve as _set_curve
from .plot_colors import BEFORE_STYLE, step_colors

ROWS_BRUSH = (120, 120, 120, 140)


class TaskPlot(FunctionPlot):
    """:class:`FunctionPlot` plus :meth:`show_data` for CSV tasks."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows = pg.ScatterPlotItem(size=6, pen=None, brush=pg.mkBrush(*ROWS_BRUSH))
        self._after = pg.ScatterPlotItem(size=7, pen=None, brush=pg.mkBrush("#1f77b4"))
        self._diagonal = self.plot.plot(pen=pg.mkPen("#888", width=1, style=Qt.PenStyle.DashLine))
        for item in (self._rows, self._after):
            self.plot.addItem(item)
        self._data_kind: str | None = None
        self._hide_data()

    def show_function(self, view) -> None:
        self._hide_data()
        super().show_function(view)

    def show_regions(self, *args) -> None:
        self._hide_data()
        super().show_regions(*args)

    def show_data(self, view) -> None:
        """Draw a ``DataView``: the task's rows with the curve after each step, or predicted vs true."""
        self.legend.clear()
        self.legend.show()
        self._regions.hide()
        self._region_labels = None
        self._truth.hide()
        self._data_kind = view.kind
        if view.kind == "curve":
            self._show_curve(view)
        else:
            self._show_scatter(view)
        self.plot.enableAutoRange()

    def data(self) -> dict:
        """As :meth:`FunctionPlot.data`, plus ``kind`` ("curve" / "scatter" for CSV tasks, else None),
        ``rows`` (the task's other rows, or predictions before adaptation) and ``after`` (scatter)."""
        out = super().data()
        out["kind"] = self._data_kind
        out["rows"] = (self._rows.data["x"].copy(), self._rows.data["y"].copy()) if self._rows.isVisible() else None
        out["after"] = (self._after.data["x"].copy(), self._after.data["y"].copy()) if self._after.isVisible() else None
        return out

    def _show_curve(self, view) -> None:
        steps = sorted({0, 1, len(view.predictions) - 1})   # real rows say more than many close curves
        while len(self._predictions) < len(steps):
            self._predictions.append(self.plot.plot())
        self._set_axes(f"Adaptation to task {view.task!r} (meta-test)", view.x_label, view.y_label)
        self._rows.setData(**_finite(view.rows_x, view.rows_y))
        self._rows.show()
        self.legend.addItem(self._rows, f"the task's other rows ({len(view.rows_x)})")
        colors = step_colors(len(steps))
        for i, curve in enumerate(self._predictions):
            if i >= len(steps):
                curve.hide()
                continue
            s = steps[i]
            style = BEFORE_STYLE if s == 0 else Qt.PenStyle.SolidLine
            curve.setPen(pg.mkPen(colors[i], width=2, style=style))
            _set_curve(curve, view.grid, view.predictions[s])
            curve.show()
            self.legend.addItem(curve, "before adaptation" if s == 0 else f"after {s} step{'s' * (s > 1)}")
        self._points.setData(**_finite(view.support_x, view.support_y), brush=pg.mkBrush("#ffffff"), symbol="o")
        self.legend.addItem(self._points, f"support ({len(view.support_x)} rows)")
        self._drawn_steps = steps
        self._after.hide()
        self._diagonal.hide()

    def _show_scatter(self, view) -> None:
        for curve in self._predictions:
            curve.hide()
        self._drawn_steps = []
        self._points.setData([], [])
        self._set_axes(f"Task {view.task!r} (meta-test): predicted vs true", view.x_label, view.y_label)
        truth = np.asarray(view.rows_y, float)
        before, after = np.asarray(view.predictions[0], float), np.asarray(view.predictions[-1], float)
        self._rows.setData(**_finite(truth, before))
        self._after.setData(**_finite(truth, after))
        self._rows.show()
        self._after.show()
        values = np.concatenate([truth, before, after])
        values = values[np.isfinite(values)]
        if values.size:
            self._diagonal.setData([values.min(), values.max()], [values.min(), values.max()])
            self._diagonal.show()
        steps = len(view.predictions) - 1
        self.legend.addItem(self._rows, "before adaptation")
        self.legend.addItem(self._after, f"after {steps} step{'s' * (steps != 1)}")
        self.legend.addItem(self._diagonal, "perfect prediction")

    def _hide_data(self) -> None:
        self._data_kind = None
        for item in (self._rows, self._after, self._diagonal):
            item.hide()


def _finite(x, y) -> dict:
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    return {"x": x[ok], "y": y[ok]}
