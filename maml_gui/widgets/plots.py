"""Live training plots (pyqtgraph), updated in place at a bounded rate and cheap to paint.

Every curve is created once. ``append`` only writes into numpy buffers whose capacity doubles
and marks the plot dirty; a single-shot ~30 Hz timer then calls ``setData``. The full history
is kept (16 bytes per iteration and curve: a 1M-iteration run is ~16 MB), but what is handed
to the plot is decimated to at most ``MAX_DISPLAY_POINTS`` per curve by a power-of-two stride
anchored at the first point, so earlier points never jump between redraws. Smoothing is
computed on the full history (incrementally), so decimation never changes it. Each plot has
``data()`` returning numpy arrays of what it hands to the plot, for tests and export.

Painting runs on the GUI thread and holds Python's GIL (PySide6 keeps it inside ``QPainter``
calls), so every millisecond spent drawing is taken from training. Hence:

* each curve is reduced to about one bucket per pixel of the view before ``setData`` (min/max
  per bucket for raw values, the mean for smoothed ones; buckets are power-of-two sized and
  anchored, so the drawing is stable as data grows) instead of pyqtgraph's auto-downsampling;
* the auto-range is computed from that data right after ``setData``, and the view's transform
  applied then too (done in the paint event, both made pyqtgraph paint every update twice); it
  is snapped to coarse steps and kept while the data stay inside it, so the axes change rarely;
* axes and legends paint from pixmap caches, so their text is only re-rendered when the ticks
  or entries change; the grid is a separate item of plain lines (pyqtgraph's axes draw it
  across the whole view, which made them repaint whenever a curve changed);
* hidden axes do not re-layout their label text on range changes (no auto SI prefix, which
  also keeps "(x0.001)" off an accuracy axis).
* legends are compact, hidden while they have nothing to show, and their entries are built once;
  they are laid out in a row (or a few) at the top right, with the view's range raised to leave
  room for them, so they never hide a curve.
"""

from __future__ import annotations

import functools
import math
from typing import Mapping, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (QCheckBox, QGraphicsItem, QGraphicsObject, QHBoxLayout, QLabel, QSlider, QVBoxLayout,
                               QWidget)

pg.setConfigOptions(antialias=True, background="w", foreground="k")

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
SERIES_COLORS = {"meta-learned": PALETTE[0], "pretrain": PALETTE[1], "scratch": "#7f7f7f"}
MAX_DISPLAY_POINTS = 20_000
REDRAW_MS = 33
DEFAULT_SMOOTHING = 0.9
PIXEL_CACHE = QGraphicsItem.CacheMode.DeviceCoordinateCache
LEGEND_MARGIN = 8   # px between a legend and the edges of its view


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


class Legend(pg.LegendItem):
    """A compact legend on a translucent white card, painted from pixmap caches.

    It hides itself while it has no entries, or while its plot says there is nothing to label
    (``set_wanted(False)``), so empty plots show no empty box.
    """

    def __init__(self, offset=(-LEGEND_MARGIN, LEGEND_MARGIN)):
        super().__init__(offset=offset, brush=(255, 255, 255, 200), pen=(200, 200, 200),
                         labelTextSize="8pt", horSpacing=2, verSpacing=-7)
        self.layout.setContentsMargins(4, 0, 6, 0)
        self.setCacheMode(PIXEL_CACHE)
        self._wanted = True
        self._sync()

    def addItem(self, item, name):
        super().addItem(item, name)
        sample, label = self.items[-1]
        for part in (sample, label, label.item):
            part.setCacheMode(PIXEL_CACHE)

    def entries(self) -> list[tuple[object, str]]:
        return [(sample.item, label.text) for sample, label in self.items]

    def set_entries(self, entries: Sequence[tuple[object, str]]) -> None:
        """Make the legend list exactly ``entries`` (item, name); does nothing when it already does."""
        if self.entries() == list(entries):
            return
        self.clear()
        for item, name in entries:
            self.addItem(item, name)

    def fit_columns(self, width: float, most: int = 3) -> None:
        """Lay the entries out in as many columns (up to ``most``) as fit in ``width`` pixels
        (estimated from the entries' sizes: the layout is only redone when the count changes)."""
        entries = [sample.width() + label.minimumWidth() for sample, label in self.items]   # labels: unstretched
        left, _, right, _ = self.layout.getContentsMargins()
        spacing = self.layout.horizontalSpacing()
        columns = 1
        for n in range(min(most, len(entries)), 1, -1):   # entries fill the rows left to right
            if sum(max(entries[j::n]) for j in range(n)) + spacing * (2 * n - 1) + left + right <= width:
                columns = n
                break
        if columns != self.columnCount:
            self.setColumnCount(columns)

    def set_wanted(self, wanted: bool) -> None:
        self._wanted = wanted
        self._sync()

    def updateSize(self):
        # pyqtgraph sums the rows' current heights, which the layout has stretched to the previous
        # size (negative spacing made the card grow with every entry): use the layout's own hint
        if self.size is None:
            hint = self.layout.effectiveSizeHint(Qt.SizeHint.PreferredSize)
            self.setGeometry(0, 0, hint.width(), hint.height())
        self._sync()

    def _sync(self) -> None:
        visible = getattr(self, "_wanted", True) and bool(getattr(self, "items", None))
        if visible != self.isVisible():
            self.setVisible(visible)


def add_legend(widget: pg.PlotWidget) -> Legend:
    """Top-right compact legend; items plotted later with ``name=`` join it."""
    item = widget.getPlotItem()
    legend = Legend()
    legend.setParentItem(item.vb)
    item.legend = legend
    return legend


def ema_debiased(values: np.ndarray, weight: float, state: tuple[float, int] = (0.0, 0)):
    """TensorBoard's smoothing: an EMA started at 0 and divided by ``1 - weight**count``.

    Vectorised in blocks (within a block the recursion is a scaled cumsum; ``weight**-block``
    stays below e^10 so the scaling loses no precision); ``state`` carries the EMA and the count
    of finite values across calls, so new points are smoothed without redoing the history.
    Non-finite values are skipped (drawn as gaps). Returns ``(smoothed, state)``.
    """
    values = np.asarray(values, dtype=float)
    out = np.full(values.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(values))
    last, count = state
    if weight <= 0:
        out[finite] = values[finite]
        return out, (float(values[finite[-1]]) if len(finite) else last, count + len(finite))
    v = values[finite]
    smoothed = np.empty_like(v)
    block = max(1, int(10 / -math.log(weight)))
    for start in range(0, len(v), block):
        chunk = v[start:start + block]
        k = np.arange(1, len(chunk) + 1)
        ema = weight ** k * (last + (1 - weight) * np.cumsum(chunk * weight ** -k))
        smoothed[start:start + len(chunk)] = ema / (1 - weight ** (count + k))
        last, count = float(ema[-1]), count + len(chunk)
    out[finite] = smoothed
    return out, (last, count)


def display_index(n: int, limit: int = MAX_DISPLAY_POINTS) -> np.ndarray:
    """Indices drawn out of ``n``: a power-of-two stride (stable as data grows) plus the last point."""
    stride = 1 << max(0, math.ceil(math.log2(max(n, 1) / limit)))
    index = np.arange(0, n, stride)
    return index if n == 0 or index[-1] == n - 1 else np.append(index, n - 1)


def _finite_or_nan(y: np.ndarray) -> np.ndarray:
    """``y`` with ±inf turned into NaN (both are drawn as gaps)."""
    y = np.asarray(y, dtype=float)
    return y if np.isfinite(y).all() else np.where(np.isfinite(y), y, np.nan)


def to_pixels(x: np.ndarray, y: np.ndarray, pixels: int, mode: str = "peak",
              x_range: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a curve (``x`` increasing) to about one bucket per pixel of ``x_range`` (all of it if None).

    Buckets hold a power of two of points and start at a multiple of their size, so they do
    not move as points are appended. ``mode="peak"``: each bucket becomes its min and max (spikes
    stay visible); ``"mean"``: its mean (for smoothed curves). All-NaN buckets stay NaN (gaps).
    """
    x, y = np.asarray(x, dtype=float), _finite_or_nan(y)
    start, stop = 0, len(x)
    if x_range is not None and stop:
        start = max(0, int(np.searchsorted(x, x_range[0])) - 1)
        stop = min(len(x), int(np.searchsorted(x, x_range[1], side="right")) + 1)
    count = stop - start
    bucket = 1 << max(0, math.ceil(math.log2(max(count, 1) / max(pixels, 1))))
    start -= start % bucket
    x, y = x[start:stop], y[start:stop]
    if bucket == 1 or len(x) <= 2:
        return x, y
    full = len(x) // bucket * bucket
    parts_y = [y[:full].reshape(-1, bucket)] + ([y[full:][None, :]] if full < len(x) else [])
    if mode == "peak":
        lo = np.concatenate([np.fmin.reduce(p, axis=1) for p in parts_y])
        hi = np.concatenate([np.fmax.reduce(p, axis=1) for p in parts_y])
        return np.repeat(x[::bucket], 2), np.column_stack([lo, hi]).ravel()
    parts_x = [x[:full].reshape(-1, bucket)] + ([x[full:][None, :]] if full < len(x) else [])
    xs = np.concatenate([p.mean(axis=1) for p in parts_x])
    ok = [np.isfinite(p) for p in parts_y]
    sums = np.concatenate([np.where(f, p, 0.0).sum(axis=1) for f, p in zip(ok, parts_y)])
    counts = np.concatenate([f.sum(axis=1) for f in ok])
    with np.errstate(invalid="ignore", divide="ignore"):
        return xs, np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def value_bounds(arrays: Sequence[np.ndarray], log: bool = False) -> tuple[float, float] | None:
    """(min, max) over the finite values (positive ones, as log10, when ``log``); None if there are none."""
    lo, hi = math.inf, -math.inf
    for a in arrays:
        a = np.asarray(a, dtype=float)
        a = a[a > 0] if log else a[np.isfinite(a)]
        if a.size:
            lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
    if lo > hi:
        return None
    return (math.log10(lo), math.log10(hi)) if log else (lo, hi)


def snap_range(lo: float, hi: float, padding: float, anchored: bool = False) -> tuple[float, float]:
    """A padded view range in coarse power-of-two steps, so it changes only when the data outgrow it.

    ``anchored`` (x of a growing history): the start stays put and the width grows in steps of
    1/8..1/4 of it, so a live run re-labels its x axis about every fifth of its length rather than
    on every redraw; otherwise each end moves outwards to a multiple of 1/32..1/16 of the span
    after half the padding (the snapping supplies the rest: about pyqtgraph's margins).
    """
    span = hi - lo
    if not span > 0:
        half = max(abs(lo) * 0.05, 1e-9) if math.isfinite(lo) and lo else 0.5
        return lo - half, hi + half
    if anchored:
        q = 2.0 ** math.floor(math.log2(span / 4))
        width = math.ceil(span * (1 + 2 * padding) / q) * q
        return lo - padding * width, lo + (1 - padding) * width
    q = 2.0 ** math.floor(math.log2(span / 16))
    pad = padding / 2 * span
    return math.floor((lo - pad) / q) * q, math.ceil((hi + pad) / q) * q


def keep_or_snap(current, bounds: tuple[float, float], padding: float, anchored: bool = False) -> tuple[float, float]:
    """The current range while the data stay inside it (clear of its edges) and fill at least 60%
    of it; else :func:`snap_range`. A drifting loss or a new evaluation then re-labels an axis
    only now and then, not on every update."""
    lo, hi = bounds
    start, end = current
    span = hi - lo
    margin = padding / 4 * span
    if not anchored and span > 0 and start <= lo - margin and hi + margin <= end and span >= 0.6 * (end - start):
        return start, end
    return snap_range(lo, hi, padding, anchored)


def _set_curve(curve: pg.PlotDataItem, x, y) -> bool:
    """Gaps at non-finite values; a curve with no finite value is drawn empty (pyqtgraph cannot
    bound it). Returns whether anything is drawn."""
    y = np.asarray(y, dtype=float)
    if not np.isfinite(y).any():
        curve.setData([], [])
        return False
    curve.setData(x, y, connect="finite")
    return True


def _xy(curve: pg.PlotDataItem) -> tuple[np.ndarray, np.ndarray]:
    """The data handed to ``curve.setData``; empty arrays if none."""
    if curve.xData is None:
        return np.empty(0), np.empty(0)
    return curve.xData, curve.yData


class GrowingBuffer:
    """Rows appended in place; capacity doubles, so appending costs amortised O(rows)."""

    def __init__(self, columns: int, capacity: int = 1024):
        self._data = np.empty((capacity, columns))
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def columns(self) -> int:
        return self._data.shape[1]

    def extend(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=float).reshape(-1, self.columns)
        need = self._n + len(rows)
        if need > len(self._data):
            grown = np.empty((max(need, 2 * len(self._data)), self.columns))
            grown[:self._n] = self._data[:self._n]
            self._data = grown
        self._data[self._n:need] = rows
        self._n = need

    def view(self) -> np.ndarray:
        return self._data[:self._n]

    def clear(self) -> None:
        self._n = 0


class _ViewBox(pg.ViewBox):
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


class _PlotBox(QWidget):
    """A styled plot with a legend filling the widget; subclasses create their items once."""

    def __init__(self, title: str, x_label: str, y_label: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = pg.PlotWidget(viewBox=_ViewBox())
        self.vb: _ViewBox = self.plot.getPlotItem().getViewBox()
        style_plot(self.plot, title, x_label, y_label)
        self.legend = add_legend(self.plot)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self.plot, 1)

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
        if bounds is None or bounds is NotImplemented or not self.legend.isVisible():
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

    def _set_label(self, axis: str, text: str) -> None:
        if self.plot.getPlotItem().getAxis(axis).labelText != text:   # re-laying out text is not free
            self.plot.setLabel(axis, text)

    def _set_axes(self, title: str, x_label: str, y_label: str) -> None:
        if self.plot.getPlotItem().titleLabel.text != title:
            self.plot.setTitle(title, size="11pt")
        self._set_label("bottom", x_label)
        self._set_label("left", y_label)


class _HistoryPlot(_PlotBox):
    """Values over training iterations: buffers, smoothing, log scale and the bounded redraw."""

    def __init__(self, title: str, y_label: str, parent: QWidget | None = None):
        super().__init__(title, "meta-iteration", y_label, parent)
        self.legend.set_wanted(False)
        self._slider = QSlider(Qt.Orientation.Horizontal)
        self._slider.setRange(0, 99)
        self._slider.setValue(round(DEFAULT_SMOOTHING * 100))
        self._slider.setToolTip("Exponential moving average weight, as in TensorBoard (0 = raw values).")
        self._slider_text = QLabel()
        self._log = QCheckBox("Log scale")
        self._log.setToolTip("Show the loss on a logarithmic axis (losses span orders of magnitude).")
        controls = QHBoxLayout()
        controls.setContentsMargins(8, 2, 8, 4)
        controls.addWidget(QLabel("Smoothing"))
        controls.addWidget(self._slider, 1)
        controls.addWidget(self._slider_text)
        controls.addSpacing(12)
        controls.addWidget(self._log)
        self._layout.addLayout(controls)
        self._timer = QTimer(self, singleShot=True, interval=REDRAW_MS)
        self._timer.timeout.connect(self._redraw)
        self._slider.valueChanged.connect(self._on_smoothing)
        self._log.toggled.connect(self._on_log)
        self._buffer: GrowingBuffer | None = None      # columns: iteration, value 0..C-1
        self._smoothed: GrowingBuffer | None = None
        self._states: list[tuple[float, int]] = []
        # what was handed to the plot, per curve: (x, y) before the per-pixel reduction, and the key of that reduction
        self._series: dict[pg.PlotDataItem, tuple[np.ndarray, np.ndarray]] = {}
        self._reduced: dict[pg.PlotDataItem, tuple] = {}
        self._follow_x = True
        self.vb.range_source = self._data_range
        self.vb.anchor_x = True
        self.vb.sigResized.connect(self._fit_legend)
        self.vb.sigResized.connect(self._mark_dirty)                 # a wider view gets more buckets
        self.vb.sigXRangeChanged.connect(self._on_x_range)           # zoom/pan: reduce what is visible
        self.vb.sigStateChanged.connect(self._on_view_state)         # auto-range switched on/off
        self._on_smoothing(self._slider.value())

    def smoothing(self) -> float:
        return self._slider.value() / 100

    def set_smoothing(self, weight: float) -> None:
        self._slider.setValue(round(weight * 100))

    def set_log_scale(self, on: bool) -> None:
        self._log.setChecked(on)

    def reset(self) -> None:
        """Forget the run (curves stay, emptied)."""
        if self._buffer is not None:
            self._buffer.clear()
        self._restart_smoothing()

    def _extend(self, iterations, values: np.ndarray) -> None:
        iterations = np.asarray(iterations, dtype=float).reshape(-1, 1)
        values = np.asarray(values, dtype=float)
        values = values if values.ndim == 2 else values.reshape(len(iterations), -1)
        if self._buffer is None or self._buffer.columns != 1 + values.shape[1]:
            self._buffer, self._smoothed = GrowingBuffer(1 + values.shape[1]), GrowingBuffer(values.shape[1])
            self._states = [(0.0, 0)] * values.shape[1]
            self._columns_changed(values.shape[1])
        self._buffer.extend(np.hstack([iterations, values]))
        self._mark_dirty()

    def _columns_changed(self, columns: int) -> None:
        """Subclasses create their curves here (only when the number of series changes)."""

    def _mark_dirty(self, *_) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def _on_smoothing(self, value: int) -> None:
        self._slider_text.setText(f"{value / 100:.2f}")
        self._restart_smoothing()

    def _on_log(self, on: bool) -> None:
        self.plot.setLogMode(y=on)
        self.vb.refresh_auto_range()

    def _on_x_range(self, *_) -> None:
        if self.vb.state["autoRange"][0] is False:
            self._mark_dirty()

    def _on_view_state(self, *_) -> None:
        follow = self.vb.state["autoRange"][0] is not False
        if follow != self._follow_x:
            self._follow_x = follow
            self._mark_dirty()

    def _restart_smoothing(self) -> None:
        if self._smoothed is not None:
            self._smoothed.clear()
            self._states = [(0.0, 0)] * self._smoothed.columns
        self._mark_dirty()

    def _update_smoothed(self) -> None:
        """Smooth only the rows appended since the last redraw (the EMA state carries over)."""
        done, data = len(self._smoothed), self._buffer.view()
        if done == len(data):
            return
        new = np.empty((len(data) - done, self._smoothed.columns))
        for c in range(new.shape[1]):
            new[:, c], self._states[c] = ema_debiased(data[done:, 1 + c], self.smoothing(), self._states[c])
        self._smoothed.extend(new)

    def _displayed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(iterations, raw [n, C], smoothed [n, C]) decimated for drawing."""
        self._update_smoothed()
        data = self._buffer.view()
        index = display_index(len(data))
        return data[index, 0], data[index, 1:], self._smoothed.view()[index]

    def _draw(self, curves: Sequence[tuple[pg.PlotDataItem, np.ndarray, np.ndarray, str]]) -> None:
        """Hand each (curve, x, y, mode) to the plot, reduced to the view's pixels, then fit the view."""
        follow = self.vb.state["autoRange"][0] is not False
        x_range = None if follow else tuple(self.vb.viewRange()[0])
        pixels = max(64, int(self.vb.width()))
        for curve, x, y, mode in curves:
            old = self._series.get(curve)
            key = (pixels, x_range, mode, len(x))
            if old is not None and old[0] is x and old[1] is y and self._reduced.get(curve) == key:
                continue   # unchanged (an overlay)
            y = _finite_or_nan(y)
            self._series[curve] = (x, y) if np.isfinite(y).any() else (np.empty(0), np.empty(0))
            self._reduced[curve] = key
            _set_curve(curve, *to_pixels(x, y, pixels, mode, x_range))
        self.legend.set_wanted(any(len(x) for x, _ in self._series.values()))
        self.vb.refresh_auto_range()

    def _smooth_mode(self) -> str:
        """How smoothed curves are reduced to pixels: the mean per pixel (a clean 2-px line, and
        a third of the cost of drawing the jitter) unless the smoothing is so light that the
        curve is mostly raw values, whose spikes must stay visible."""
        return "mean" if self.smoothing() >= 0.5 else "peak"

    def _data_range(self, axis: int, x_range):
        """The auto-range source of the view: bounds of the data handed to the curves."""
        ctrl = self.plot.getPlotItem().ctrl
        if ctrl.fftCheck.isChecked() or ctrl.derivativeCheck.isChecked() or ctrl.phasemapCheck.isChecked():
            return NotImplemented   # pyqtgraph transforms the data: let it bound what it draws
        series = [(x, y) for curve, (x, y) in self._series.items() if len(x) and curve.isVisible()]
        if not series:
            return None
        if axis == 0:
            return min(float(x[0]) for x, _ in series), max(float(x[-1]) for x, _ in series)
        if x_range is not None:
            series = [(x, y[(x >= x_range[0]) & (x <= x_range[1])]) for x, y in series]
        return self._room_for_legend(value_bounds([y for _, y in series], log=ctrl.logYCheck.isChecked()))

    def _redraw(self) -> None:
        raise NotImplementedError


class LossPlot(_HistoryPlot):
    """Meta-loss vs iteration, raw and smoothed, with other runs overlaid for comparison."""

    def __init__(self, parent: QWidget | None = None, title: str = "Meta-training loss", y_label: str = "query loss (MSE)"):
        super().__init__(title, y_label, parent)
        self._raw = self.plot.plot(pen=pg.mkPen("#aec7e8", width=1), name="raw")
        self._smooth = self.plot.plot(pen=pg.mkPen(PALETTE[0], width=2), name="smoothed")
        self._overlay_data: list[tuple[str, np.ndarray, np.ndarray]] = []
        self._overlay_curves: list[pg.PlotDataItem] = []
        self._overlay_shown: list[tuple[np.ndarray, np.ndarray]] = []   # stride-decimated, smoothed
        self._overlays_dirty = False
        self._extend(np.empty(0), np.empty((0, 1)))

    def append(self, iterations: np.ndarray, losses: np.ndarray) -> None:
        self._extend(iterations, np.asarray(losses, dtype=float).reshape(-1, 1))

    def set_overlays(self, runs: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> None:
        """Other runs' losses, drawn smoothed with this plot's smoothing; [] removes them."""
        self._overlay_data = [(str(name), np.asarray(x, float), np.asarray(y, float)) for name, x, y in runs]
        while len(self._overlay_curves) < len(self._overlay_data):  # a pool, grown only when needed
            color = PALETTE[(len(self._overlay_curves) + 1) % len(PALETTE)]
            self._overlay_curves.append(self.plot.plot(pen=pg.mkPen(color, width=2, style=Qt.PenStyle.DashLine)))
        self._overlays_dirty = True
        self._mark_dirty()

    def data(self) -> dict:
        """{"raw": (x, y), "smoothed": (x, y), "overlays": {name: (x, y)}} as handed to the plot."""
        empty = (np.empty(0), np.empty(0))
        overlays = {name: self._series.get(curve, empty)
                    for curve, (name, _, _) in zip(self._overlay_curves, self._overlay_data)}
        return {"raw": self._series.get(self._raw, empty), "smoothed": self._series.get(self._smooth, empty),
                "overlays": overlays}

    def _redraw(self) -> None:
        x, raw, smooth = self._displayed()
        if self._overlays_dirty:
            self._overlays_dirty = False
            self._smooth_overlays()
        mode = self._smooth_mode()
        curves = [(self._raw, x, raw[:, 0], "peak"), (self._smooth, x, smooth[:, 0], mode)]
        curves += [(c, ox, oy, mode) for c, (ox, oy) in zip(self._overlay_curves, self._overlay_shown)]
        self._draw(curves)

    def _on_smoothing(self, value: int) -> None:
        self._overlays_dirty = True
        super()._on_smoothing(value)

    def _smooth_overlays(self) -> None:
        """Smooth the overlaid runs, show the curves in use and name them in the legend."""
        self._overlay_shown = []
        for i, curve in enumerate(self._overlay_curves):
            if i >= len(self._overlay_data):
                curve.setData([], [])
                curve.hide()
                self._series.pop(curve, None)
                continue
            _, ox, oy = self._overlay_data[i]
            index = display_index(len(ox))
            self._overlay_shown.append((ox[index], ema_debiased(oy, self.smoothing())[0][index]))
            curve.show()
        names = [(c, name) for c, (name, _, _) in zip(self._overlay_curves, self._overlay_data)]
        self.legend.set_entries([(self._raw, "raw"), (self._smooth, "smoothed"), *names])


class StepLossPlot(_HistoryPlot):
    """Query loss after each inner step s = 0..N: the gap between curves is what adaptation buys."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Query loss after each inner step", "query loss (MSE, smoothed)", parent)
        self._curves: list[pg.PlotDataItem] = []

    def append(self, iterations: np.ndarray, step_losses: np.ndarray) -> None:
        """``step_losses`` is ``[n, N+1]``; a different N starts a fresh set of curves."""
        step_losses = np.asarray(step_losses, dtype=float)
        self._extend(iterations, step_losses.reshape(len(np.atleast_1d(iterations)), -1))

    def data(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """One (iterations, smoothed loss) pair per inner step, as handed to the plot."""
        empty = (np.empty(0), np.empty(0))
        return [self._series.get(c, empty) for c in self._curves]

    def _columns_changed(self, columns: int) -> None:
        for curve in self._curves:
            self.plot.removeItem(curve)
            self._series.pop(curve, None)
            self._reduced.pop(curve, None)
        colors = step_colors(columns)
        self._curves = []
        for s in range(columns):
            pen = pg.mkPen(colors[s], width=2, style=Qt.PenStyle.DashLine if s == 0 else Qt.PenStyle.SolidLine)
            self._curves.append(self.plot.plot(pen=pen))
        # a legend for 100 steps would hide the plot: the first, second and last, the ramp implies the rest
        self.legend.set_entries([(self._curves[s], "before adaptation" if s == 0 else f"after {s} step{'s' * (s > 1)}")
                                 for s in sorted({0, 1, columns - 1}) if s < columns])

    def _redraw(self) -> None:
        if self._buffer is None:
            return
        x, _, smooth = self._displayed()
        mode = self._smooth_mode()
        self._draw([(curve, x, smooth[:, s], mode) for s, curve in enumerate(self._curves)])


def step_colors(n: int) -> list:
    """A light-to-dark ramp so later adaptation steps read as 'further along'."""
    ramp = _colormap("viridis")
    return [ramp.map(0.85 * (1 - i / max(n - 1, 1)), mode="qcolor") for i in range(n)]


class AdaptationPlot(_PlotBox):
    """Held-out loss (or accuracy) vs number of adaptation steps, with 95% CI error bars."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Adaptation on held-out tasks", "adaptation steps (gradient steps on the support set)", "", parent)
        self._items: dict[str, tuple[pg.PlotDataItem, pg.ErrorBarItem]] = {}
        self._data: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._use_legend_row()
        self.legend.set_wanted(False)
        self.set_metric("mse")

    def set_metric(self, metric: str) -> None:
        self._set_label("left", "query accuracy (fraction correct)" if metric == "accuracy" else "query loss (MSE)")

    def set_series(self, name: str, steps, mean, ci) -> None:
        if isinstance(mean, Mapping):  # EvalResult summaries are {step: value}
            mean, ci = [mean[s] for s in steps], [ci[s] for s in steps]
        steps, mean, ci = (np.asarray(a, dtype=float) for a in (steps, mean, ci))
        if name not in self._items:  # one line + error bars per series, made once
            color = SERIES_COLORS.get(name, PALETTE[(len(self._items) + 3) % len(PALETTE)])
            line = self.plot.plot(pen=pg.mkPen(color, width=2), symbol="o", symbolSize=7,
                                  symbolBrush=color, symbolPen=None, name=name)
            bars = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0), beam=0.15, pen=pg.mkPen(color, width=1.5))
            self.plot.addItem(bars)
            self._items[name] = (line, bars)
            self._fit_legend()
        line, bars = self._items[name]
        ok = np.isfinite(mean) & np.isfinite(ci)  # a diverged model must not break the view's bounds
        line.setData(steps[ok], mean[ok])
        bars.setData(x=steps[ok], y=mean[ok], height=2 * ci[ok])
        self._data[name] = (steps, mean, ci)
        self.legend.set_wanted(True)
        self.vb.refresh_auto_range()

    def clear(self) -> None:
        """Empty every series (items are kept for the next evaluation)."""
        for line, bars in self._items.values():
            line.setData([], [])
            bars.setData(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0))
        self._data.clear()
        self.legend.set_wanted(False)

    def data(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """{name: (steps, mean, ci95)} as drawn."""
        return dict(self._data)


class FunctionPlot(_PlotBox):
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
        """Draw a ``core.evaluation.FunctionView``; with many steps only a spread of them is shown."""
        n = len(view.predictions)
        steps = list(range(n)) if n <= self.MAX_STEP_CURVES else sorted(
            {0, 1, *np.linspace(0, n - 1, self.MAX_STEP_CURVES - 1).round().astype(int).tolist()})
        while len(self._predictions) < len(steps):
            self._predictions.append(self.plot.plot())
        self._regions.hide()
        self._region_labels = None
        self._set_axes("Adaptation to one held-out task", "x", "y")
        grid = np.asarray(view.grid, dtype=float)
        has_truth = _set_curve(self._truth, grid, view.truth)
        self._truth.show()
        colors = step_colors(len(steps))
        for i, s in enumerate(steps):   # pens (and their legend samples) change only with the step count
            style = Qt.PenStyle.DashLine if s == 0 else Qt.PenStyle.SolidLine
            pen = self._predictions[i].opts["pen"]
            if not (isinstance(pen, QPen) and pen.color() == colors[i] and pen.style() == style and pen.widthF() == 2):
                self._predictions[i].setPen(pg.mkPen(colors[i], width=2, style=style))
                self.legend.clear()   # its samples are cached pictures of the old pens
        for i, curve in enumerate(self._predictions):
            if i >= len(steps):
                curve.hide()
                continue
            _set_curve(curve, grid, view.predictions[steps[i]])
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

    def data(self) -> dict:
        """What is drawn: ``truth``, ``points``, ``predictions`` {step: (x, y)}, ``regions`` (labels image or None)."""
        return {"truth": _xy(self._truth) if self._truth.isVisible() else None,
                "points": (self._points.data["x"].copy(), self._points.data["y"].copy()),
                "predictions": {s: _xy(c) for s, c in zip(self._drawn_steps, self._predictions)},
                "regions": self._region_labels if self._regions.isVisible() else None}
