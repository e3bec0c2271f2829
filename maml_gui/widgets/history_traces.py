"""What a history plot keeps per compared run (a :class:`Trace`) and per sweep configuration (a
:class:`BandTrace`: the mean across seeds and the band between the lowest and the highest)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor

from maml_gui.session.overlays import Band, Overlay
from maml_gui.widgets.plot_math import SmoothedColumns

from .plot_colors import set_pen

EMPTY = (np.empty(0), np.empty(0))


class Trace:
    """One compared run on a history plot: its curve, and its smoothed values kept between redraws."""

    def __init__(self, curve: pg.PlotDataItem):
        self.curve = curve
        self.overlay: Overlay | None = None
        self.smoother = SmoothedColumns()
        self.key = None
        self.shown = EMPTY


class BandTrace:
    """One sweep configuration on a history plot: the mean across its seeds (solid) and the band
    from the lowest to the highest seed (two thin edges and the fill between them)."""

    def __init__(self, plot: pg.PlotWidget):
        self.mean = plot.plot()
        self.low, self.high = plot.plot(), plot.plot()
        self.fill = pg.FillBetweenItem(self.low, self.high)
        plot.addItem(self.fill)
        self.band: Band | None = None
        self.smoothers: dict[int, SmoothedColumns] = {}
        self.key = None
        self.shown = (np.empty(0), np.empty(0), np.empty(0), np.empty(0))

    def curves(self) -> tuple[pg.PlotDataItem, pg.PlotDataItem, pg.PlotDataItem]:
        return self.mean, self.low, self.high

    def style(self, color: str) -> bool:
        changed = set_pen(self.mean, color, 2)
        if changed:
            edge = QColor(color)
            edge.setAlpha(110)
            for curve in (self.low, self.high):
                curve.setPen(pg.mkPen(edge, width=1))
            fill = QColor(color)
            fill.setAlpha(50)
            self.fill.setBrush(fill)
        return changed

    def set_visible(self, on: bool) -> None:
        for item in (*self.curves(), self.fill):
            item.setVisible(on)
