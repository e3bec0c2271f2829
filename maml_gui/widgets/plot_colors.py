"""The colours of the plots: series, classes and adaptation steps (run colours: ``maml_gui.session.overlays``)."""

from __future__ import annotations

import functools

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
# meta-RL names its baselines as the MAML paper's figure does: pretrained, random (initialisation), oracle
SERIES_COLORS = {"meta-learned": PALETTE[0], "pretrain": PALETTE[1], "scratch": "#7f7f7f",
                 "pretrained": PALETTE[1], "random": "#7f7f7f", "oracle": "#2ca02c"}
# line styles, one meaning each: dotted = before adaptation (every plot of adapted curves); on the
# meta-loss and held-out plots, where every curve is adapted, dashed = a compared run
BEFORE_STYLE = Qt.PenStyle.DotLine


@functools.lru_cache(maxsize=None)
def _colormap(name: str) -> pg.ColorMap:
    """pyqtgraph reads a colour map from its file on every ``colormap.get`` (~10 ms)."""
    return pg.colormap.get(name)


def class_colors(n: int) -> list:
    """Distinct colours for ``n`` classes: the palette, or a ramp when there are more classes."""
    if n <= len(PALETTE):
        return [pg.mkColor(c) for c in PALETTE[:max(n, 1)]]
    ramp = _colormap("turbo")
    return [ramp.map(i / (n - 1), mode="qcolor") for i in range(n)]


def step_colors(n: int) -> list:
    """A light-to-dark ramp so later adaptation steps read as 'further along'."""
    ramp = _colormap("viridis")
    return [ramp.map(0.85 * (1 - i / max(n - 1, 1)), mode="qcolor") for i in range(n)]


def light(color, amount: float = 0.6) -> QColor:
    """``color`` mixed with white (opaque: cheaper to paint than a translucent pen)."""
    c = QColor(color)
    mix = lambda v: round(v + (255 - v) * amount)   # noqa: E731
    return QColor(mix(c.red()), mix(c.green()), mix(c.blue()))


def set_pen(curve: pg.PlotDataItem, color, width: float = 2, style=Qt.PenStyle.SolidLine) -> bool:
    """Give ``curve`` this pen unless it has it already; returns whether it changed (a legend
    then has to redraw its sample, a cached picture of the old pen)."""
    pen = curve.opts["pen"]
    color = QColor(color)
    if hasattr(pen, "color") and pen.color() == color and pen.widthF() == width and pen.style() == style:
        return False
    curve.setPen(pg.mkPen(color, width=width, style=style))
    return True
