"""The pyqtgraph pieces every plot here shares, tuned so that painting stays cheap.

Painting runs on the GUI thread and holds Python's GIL (PySide6 keeps it inside ``QPainter``
calls), so every millisecond spent drawing is taken from training. Hence:

* the auto-range is computed by the plot's owner from the data it hands over, right after
  ``setData``, and the view's transform applied then too (done in the paint event, both made
  pyqtgraph paint every update twice); it is snapped to coarse steps and kept while the data
  stay inside it, so the axes change rarely (:class:`PlotViewBox`, :func:`items_bounds`);
* axes and legends paint from pixmap caches, so their text is only re-rendered when the ticks
  or entries change; the grid is a separate item of plain lines (:class:`Grid`: pyqtgraph's axes
  draw it across the whole view, which made them repaint whenever a curve changed);
* hidden axes do not re-layout their label text on range changes (no auto SI prefix, which
  also keeps "(x0.001)" off an accuracy axis);
* legends are compact, hidden while they have nothing to show, and their entries are built once;
  they are laid out in a row (or a few) at the top right, with the view's range raised to leave
  room for them, so they never hide a curve (:class:`PlotBox`).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QRectF, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsObject, QStyle, QToolButton, QVBoxLayout, QWidget

from maml_gui.widgets.plot_math import keep_or_snap, value_bounds
from .plot_axes import LogAxis, TimeAxis, label_width
from .plot_legend import LEGEND_MARGIN, PIXEL_CACHE, add_legend

pg.setConfigOptions(antialias=True, background="w", foreground="k")

EMPTY_RANGE = (0.0, 1.0)   # what an empty plot's axes span


def style_plot(widget: pg.PlotWidget, title: str, x_label: str, y_label: str) -> None:
    """One light look for every plot in the app."""
    widget.setBackground("w")
    widget.setTitle(title, size="11pt")
    widget.setLabel("bottom", x_label)
    widget.setLabel("left", y_label)
    item = widget.getPlotItem()
    for name in ("left", "bottom", "top", "right"):
        axis = item.getAxis(name)
        # no "(x0.001)" on an accuracy axis: the labels say the unit; and the hidden top and right
        # axes no longer re-layout their (invisible) label text on every range change
        axis.enableAutoSIPrefix(False)
        axis.setStyle(tickLength=0)      # the grid marks the ticks
        axis.setCacheMode(PIXEL_CACHE)   # ticks and text re-rendered only when the range changes
    Grid.install(item)
    widget.showGrid(x=True, y=True, alpha=0.2)


class Grid(QGraphicsObject):
    """The grid of a plot, at the axes' tick values with pyqtgraph's per-level opacity.

    pyqtgraph's axes draw the grid themselves, across the whole view: each axis then paints
    (or, cached, blends a pixmap the size of) the entire view whenever a curve changes. Here the
    axes only draw their strip and this item draws the lines directly: a few non-antialiased
    cosmetic lines, recomputed only when the range or size changes. The plot's own grid
    settings (context menu, ``showGrid``) drive it.
    """

    def __init__(self, plot_item: pg.PlotItem):
        super().__init__(plot_item.vb)
        self._item = plot_item
        self._show = (False, False)
        self._alpha = 0
        self._key = None
        self._draws: list[tuple[QPen, list[QLineF]]] = []
        self.setZValue(-1e5)   # above the view's background, below the data
        plot_item.vb.sigRangeChanged.connect(self._range_changed)
        plot_item.vb.sigResized.connect(self._resized)
        ctrl = plot_item.ctrl
        for signal in (ctrl.xGridCheck.toggled, ctrl.yGridCheck.toggled, ctrl.gridAlphaSlider.valueChanged):
            signal.connect(self.sync)   # after PlotItem.updateGrid, which turns the axes' grids on

    @classmethod
    def install(cls, plot_item: pg.PlotItem) -> "Grid":
        grid = getattr(plot_item, "_maml_grid", None)
        if grid is None:
            grid = plot_item._maml_grid = cls(plot_item)
        return grid

    def sync(self, *_) -> None:
        ctrl = self._item.ctrl
        self._show = (ctrl.xGridCheck.isChecked(), ctrl.yGridCheck.isChecked())
        self._alpha = ctrl.gridAlphaSlider.value()
        for name in ("top", "bottom", "left", "right"):
            axis = self._item.getAxis(name)
            if axis.grid is not False:
                axis.setGrid(False)
        self._key = None
        self.update()

    def _range_changed(self, *_) -> None:
        self.update()

    def _resized(self, *_) -> None:
        self.prepareGeometryChange()
        self._key = None

    def boundingRect(self) -> QRectF:
        return self._item.vb.boundingRect()

    def paint(self, painter, *args) -> None:
        vb = self._item.vb
        rect = vb.boundingRect()
        (x0, x1), (y0, y1) = vb.viewRange()
        key = (x0, x1, y0, y1, rect.width(), rect.height(), self._show, self._alpha,
               self._item.getAxis("bottom").logMode, self._item.getAxis("left").logMode)
        if key != self._key:
            self._key, self._draws = key, self._lines(rect, x0, x1, y0, y1)
        painter.setRenderHint(painter.RenderHint.Antialiasing, False)
        for pen, lines in self._draws:
            painter.setPen(pen)
            painter.drawLines(lines)

    def _lines(self, rect: QRectF, x0, x1, y0, y1) -> list:
        draws = []
        for show, name, lo, hi, length in ((self._show[0], "bottom", x0, x1, rect.width()),
                                           (self._show[1], "left", y0, y1, rect.height())):
            if not show or not hi > lo or length <= 0:
                continue
            axis = self._item.getAxis(name)
            color = axis.tickPen().color()
            for level, (_, values) in enumerate(axis.tickValues(lo, hi, length)):
                # the opacity pyqtgraph's AxisItem gives grid lines of this tick level
                alpha = 255 / (level + 1) * self._alpha / 255 * min(max(0.05 * length / (len(values) + 1), 0.0), 1.0)
                pen = QPen(QColor(color.red(), color.green(), color.blue(), int(alpha)))
                pen.setCosmetic(True)
                values = [v for v in values if lo <= v <= hi]
                if name == "bottom":
                    pos = [rect.left() + (v - lo) / (hi - lo) * rect.width() for v in values]
                    lines = [QLineF(x, rect.top(), x, rect.bottom()) for x in pos]
                else:
                    pos = [rect.top() + (hi - v) / (hi - lo) * rect.height() for v in values]
                    lines = [QLineF(rect.left(), y, rect.right(), y) for y in pos]
                if lines:
                    draws.append((pen, lines))
        return draws


def set_curve(curve: pg.PlotDataItem, x, y) -> bool:
    """Gaps at non-finite values; a curve with no finite value is drawn empty (pyqtgraph cannot
    bound it). Returns whether anything is drawn."""
    y = np.asarray(y, dtype=float)
    if not np.isfinite(y).any():
        curve.setData([], [])
        return False
    curve.setData(x, y, connect="finite")
    return True


SHORT_CURVE = 3   # curves of at most this many points get a dot at each (one point alone draws no line)


def mark_short(curve: pg.PlotDataItem) -> None:
    """A dot in the curve's colour at each point of a curve of at most :data:`SHORT_CURVE` finite
    points (a one-iteration run), none on longer ones; pyqtgraph is only told when that changes."""
    y = curve.yData
    short = y is not None and 0 < np.count_nonzero(np.isfinite(y)) <= SHORT_CURVE
    color = pg.mkPen(curve.opts["pen"]).color() if short else None
    brush = curve.opts.get("symbolBrush")
    if not short:
        if curve.opts.get("symbol") is not None:
            curve.setSymbol(None)
    elif curve.opts.get("symbol") != "o" or not hasattr(brush, "color") or brush.color() != color:
        curve.setSymbolPen(None)
        curve.setSymbolSize(7)
        curve.setSymbolBrush(pg.mkBrush(color))
        curve.setSymbol("o")


def curve_data(curve: pg.PlotDataItem) -> tuple[np.ndarray, np.ndarray]:
    """The data handed to ``curve.setData``; empty arrays if none."""
    if curve.xData is None:
        return np.empty(0), np.empty(0)
    return curve.xData, curve.yData

class PlotViewBox(pg.ViewBox):
    """A ViewBox whose auto-range can come from its owner instead of pyqtgraph's item scan.

    ``range_source(axis, x_range)`` returns the data bounds along ``axis`` in view coordinates
    (``x_range``: only data within it, for "visible data only"), None when there is nothing to
    bound, or NotImplemented to use pyqtgraph's own computation. The result is padded, snapped
    to coarse steps and kept while the data stay inside it (:func:`keep_or_snap`).
    """

    range_source = None
    anchor_x = False   # x of a growing history: fixed start, the end grows in steps

    def updateAutoRange(self):
        source = self.range_source
        if source is None or self._updatingRange or not any(self.state["autoRange"]):
            return super().updateAutoRange()
        ranges: dict[str, tuple[float, float]] = {}
        for ax, key in ((0, "xRange"), (1, "yRange")):
            if self.state["autoRange"][ax] is False:
                continue
            visible = None
            if ax == 1 and self.state["autoVisibleOnly"][1]:
                visible = ranges.get("xRange", self.viewRange()[0])
            bounds = source(ax, visible)
            if bounds is NotImplemented:
                return super().updateAutoRange()
            if bounds is None:   # nothing drawn: a neutral range, not the last data's (another metric's)
                bounds = EMPTY_RANGE
            if bounds is not None and all(map(math.isfinite, bounds)):
                anchored = ax == 0 and self.anchor_x
                ranges[key] = keep_or_snap(self.state["targetRange"][ax], bounds, self.suggestPadding(ax), anchored)
        self._autoRangeNeedsUpdate = False   # as pyqtgraph's own updateAutoRange leaves it
        target = self.state["targetRange"]
        if all(list(r) == target[0 if key == "xRange" else 1] for key, r in ranges.items()):
            return   # unchanged: nothing to re-layout, and no second paint
        if ranges:
            self._updatingRange = True
            try:
                self.setRange(padding=0.0, disableAutoRange=False, **ranges)
            finally:
                self._updatingRange = False

    def refresh_auto_range(self) -> None:
        """Apply the auto-range now (after new data), not in the next paint event: a range set
        while painting makes pyqtgraph paint everything a second time. The view's transform is
        applied now too: applied while painting, it makes each item report new bounds, which
        queues another auto-range and another paint."""
        if any(self.state["autoRange"]):
            self.updateAutoRange()
        self.updateMatrix()


def items_bounds(vb: pg.ViewBox, axis: int, x_range=None):
    """A ``range_source`` for views of a few simple items: bounds of the visible curves, scatter
    points, error bars and images' data, without pyqtgraph's per-item pixel bookkeeping.
    NotImplemented (pyqtgraph's own computation) when the view holds anything else."""
    arrays, lo, hi = [], math.inf, -math.inf
    for item in vb.addedItems:
        if not item.isVisible() or isinstance(item, (Grid, pg.InfiniteLine, pg.TextItem)):
            continue
        if isinstance(item, (pg.PlotDataItem, pg.PlotCurveItem)):
            if item.xData is None or not len(item.xData):
                continue
            x, y = item.xData, item.yData
            if isinstance(item, pg.PlotDataItem) and (item.opts["logMode"][0] or item.opts["logMode"][1]
                                                     or item.opts["fftMode"] or item.opts["derivativeMode"]):
                return NotImplemented
            values = [(x, y)]
        elif isinstance(item, pg.ScatterPlotItem):
            values = [(item.data["x"], item.data["y"])]
        elif isinstance(item, pg.ErrorBarItem):
            o = item.opts
            if o["x"] is None or o["y"] is None:
                continue
            x, y = np.asarray(o["x"], float), np.asarray(o["y"], float)
            if o["height"] is not None:
                down = up = np.asarray(o["height"], float) / 2
            else:
                down = 0 if o["bottom"] is None else np.asarray(o["bottom"], float)
                up = 0 if o["top"] is None else np.asarray(o["top"], float)
            if o["width"] is not None or o["left"] is not None or o["right"] is not None:
                return NotImplemented
            values = [(x, y - down), (x, y + up)]
        elif isinstance(item, pg.ImageItem):
            if item.image is None:
                continue
            rect = item.mapRectToParent(item.boundingRect())
            lo = min(lo, rect.left() if axis == 0 else rect.top())
            hi = max(hi, rect.right() if axis == 0 else rect.bottom())
            continue
        else:
            return NotImplemented
        for x, y in values:
            x, y = np.asarray(x, float), np.asarray(y, float)
            ok = np.isfinite(x) & np.isfinite(y)
            if x_range is not None:
                ok &= (x >= x_range[0]) & (x <= x_range[1])
            arrays.append((x if axis == 0 else y)[ok])
    bounds = value_bounds(arrays)
    if bounds is not None:
        lo, hi = min(lo, bounds[0]), max(hi, bounds[1])
    return (lo, hi) if lo <= hi else None


class PlotBox(QWidget):
    """A styled plot with a legend filling the widget; subclasses create their items once.

    The mouse zooms (wheel) and pans (drag) as in any pyqtgraph plot; ``reset_button`` (placed
    by subclasses in their row of controls) fits the view to the data again and puts a dragged
    legend back, in one click."""

    def __init__(self, title: str, x_label: str, y_label: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = pg.PlotWidget(viewBox=PlotViewBox(), axisItems={"left": LogAxis("left"), "bottom": TimeAxis("bottom")})
        self.vb: PlotViewBox = self.plot.getPlotItem().getViewBox()
        style_plot(self.plot, title, x_label, y_label)
        self.legend = add_legend(self.plot)
        self._y_label = y_label
        self.vb.sigResized.connect(self._fit_y_label)
        self.reset_button = QToolButton()
        self.reset_button.setText("Reset view")
        self.reset_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_BrowserReload))
        self.reset_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)   # the row is narrow
        self.reset_button.setAutoRaise(True)
        self.reset_button.setToolTip("Reset view: fit it to the data again after zooming (mouse wheel, or "
                                     "right-drag) or panning (drag), and put a moved legend back")
        self.reset_button.clicked.connect(self.reset_view)
        self.vb.sigStateChanged.connect(self._sync_reset)
        self.legend.dragged.connect(self._on_legend_dragged)
        self._sync_reset()
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self.plot, 1)

    def reset_view(self) -> None:
        """The whole data in view (auto-range on both axes) and the legend at its place."""
        self.legend.put_back()
        self.vb.enableAutoRange()
        self.vb.refresh_auto_range()

    def is_zoomed(self) -> bool:
        """Whether the user zoomed or panned (the view no longer follows the data)."""
        return not all(self.vb.state["autoRange"])

    def _sync_reset(self, *_) -> None:
        self.reset_button.setEnabled(self.is_zoomed() or self.legend.moved)

    def _on_legend_dragged(self) -> None:
        self._sync_reset()
        self.vb.refresh_auto_range()   # a legend moved off the top row needs no room there

    def _use_legend_row(self) -> None:
        """Auto-range from :func:`items_bounds`, raised at the top so the legend (in a row, top
        right) sits above the data instead of on it. (History plots do the same from their own bounds.)"""
        self.vb.range_source = self._bounds_below_legend
        self.vb.sigResized.connect(self._fit_legend)

    def _fit_legend(self, *_) -> None:
        width = self.vb.width()
        if width > 0 and self.legend.items:
            self.legend.fit_columns(width - 2 * LEGEND_MARGIN)

    def _bounds_below_legend(self, axis: int, x_range):
        bounds = items_bounds(self.vb, axis, x_range)
        return self._room_for_legend(bounds) if axis == 1 else bounds

    def _room_for_legend(self, bounds):
        """Raise the top of y ``bounds`` so that the legend row fits above the data."""
        if bounds is None or bounds is NotImplemented or not self.legend.isVisible() or self.legend.moved:
            return bounds
        self._fit_legend()   # entries may have been added by a subclass
        height = self.vb.height()
        share = (self.legend.height() + LEGEND_MARGIN + 2) / height if height > 0 else 0.0
        if not 0 < share < 0.5:   # a view too small for a legend row: let it overlap
            return bounds
        lo, hi = bounds
        span = hi - lo if hi > lo else max(abs(hi), 1.0)
        return lo, hi + span * share / (1 - share)

    def set_y_label(self, label: str) -> None:
        """E.g. "query loss (cross-entropy)" for classification families."""
        self._set_label("left", label)

    def y_label(self) -> str:
        """The y axis' label in full (the axis shows a shorter form when the plot is too short for it)."""
        return self._y_label

    def _set_label(self, axis: str, text: str) -> None:
        if axis == "left":
            self._y_label = text
            text = self._fitting_label(text)
        item = self.plot.getPlotItem().getAxis(axis)
        if item.labelText != text:   # re-laying out text is not free
            self.plot.setLabel(axis, text)
            item.resizeEvent()   # centre the new text: pyqtgraph places a label only when its axis is resized
        if axis == "left":
            item.setToolTip(self._y_label if text != self._y_label else "")

    def _fit_y_label(self, *_) -> None:
        self._set_label("left", self._y_label)

    def _fitting_label(self, text: str) -> str:
        """The longest of ``text``'s forms that fits along the y axis: in full, without the last
        clause in its parentheses, without the parentheses ("query loss (MSE, smoothed)" →
        "query loss (MSE)" → "query loss"); never cut off at the plot's top."""
        axis = self.plot.getPlotItem().getAxis("left")
        room = self.vb.height() - 4
        if room <= 0:
            return text
        forms = [text]
        if " (" in text and text.endswith(")"):
            inner = text[text.index(" (") + 2:-1]
            if ", " in inner:
                forms.append(text[:text.index(" (") + 2] + inner[:inner.rindex(", ")] + ")")
            forms.append(text[:text.index(" (")])
        fits = next((f for f in forms if label_width(axis, f) <= room), None)
        if fits is not None:
            return fits
        shortest = forms[-1]   # a tiny plot: elided, but never cut off mid-letter at the edge
        while len(shortest) > 1 and label_width(axis, shortest + "…") > room:
            shortest = shortest[:-1]
        return shortest.rstrip() + "…"

    def _set_axes(self, title: str, x_label: str, y_label: str) -> None:
        if self.plot.getPlotItem().titleLabel.text != title:
            self.plot.setTitle(title, size="11pt")
        self._set_label("bottom", x_label)
        self._set_label("left", y_label)

