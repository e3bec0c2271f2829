"""Live training plots (pyqtgraph), updated in place at a bounded rate.

Every curve is created once. ``append`` only writes into numpy buffers whose capacity doubles
and marks the plot dirty; a single-shot ~30 Hz timer then calls ``setData``. The full history
is kept (16 bytes per iteration and curve: a 1M-iteration run is ~16 MB), but what is *drawn*
is decimated to at most ``MAX_DISPLAY_POINTS`` per curve by a power-of-two stride anchored at
the first point, so earlier points never jump between redraws and draw time stays bounded.
Smoothing is computed on the full history (incrementally), so decimation never changes it.
Each plot has ``data()`` returning numpy arrays of what it draws, for tests and export.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

pg.setConfigOptions(antialias=True, background="w", foreground="k")

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
SERIES_COLORS = {"meta-learned": PALETTE[0], "pretrain": PALETTE[1], "scratch": "#7f7f7f"}
MAX_DISPLAY_POINTS = 20_000
REDRAW_MS = 33
DEFAULT_SMOOTHING = 0.9


def style_plot(widget: pg.PlotWidget, title: str, x_label: str, y_label: str) -> None:
    """One light look for every plot in the app."""
    widget.setBackground("w")
    widget.setTitle(title, size="11pt")
    widget.setLabel("bottom", x_label)
    widget.setLabel("left", y_label)
    widget.showGrid(x=True, y=True, alpha=0.2)


def class_colors(n: int) -> list:
    """Distinct colours for ``n`` classes: the palette, or a ramp when there are more classes."""
    if n <= len(PALETTE):
        return [pg.mkColor(c) for c in PALETTE[:max(n, 1)]]
    return [pg.colormap.get("turbo").map(i / (n - 1), mode="qcolor") for i in range(n)]


def add_legend(widget: pg.PlotWidget) -> pg.LegendItem:
    """Top-right legend on a translucent white card, so curves under it stay visible."""
    return widget.addLegend(offset=(-10, 10), brush=(255, 255, 255, 200), pen=(200, 200, 200))


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


def _set_curve(curve: pg.PlotDataItem, x, y) -> None:
    """Gaps at non-finite values; a curve with no finite value is drawn empty (pyqtgraph cannot bound it)."""
    y = np.asarray(y, dtype=float)
    curve.setData(*((x, y) if np.isfinite(y).any() else ([], [])), connect="finite")


def _xy(curve: pg.PlotDataItem) -> tuple[np.ndarray, np.ndarray]:
    """The data handed to ``curve.setData`` (before view-level downsampling); empty arrays if none."""
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


class _PlotBox(QWidget):
    """A styled plot with a legend filling the widget; subclasses create their items once."""

    def __init__(self, title: str, x_label: str, y_label: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        style_plot(self.plot, title, x_label, y_label)
        self.legend = add_legend(self.plot)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self.plot, 1)

    def set_y_label(self, label: str) -> None:
        """E.g. "query loss (cross-entropy)" for classification families."""
        self.plot.setLabel("left", label)

    def _set_axes(self, title: str, x_label: str, y_label: str) -> None:
        self.plot.setTitle(title, size="11pt")
        self.plot.setLabel("bottom", x_label)
        self.plot.setLabel("left", y_label)


class _HistoryPlot(_PlotBox):
    """Values over training iterations: buffers, smoothing, log scale and the bounded redraw."""

    def __init__(self, title: str, y_label: str, parent: QWidget | None = None):
        super().__init__(title, "meta-iteration", y_label, parent)
        self.plot.setDownsampling(auto=True, mode="peak")
        self.plot.setClipToView(True)
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
        self._log.toggled.connect(lambda on: self.plot.setLogMode(y=on))
        self._buffer: GrowingBuffer | None = None      # columns: iteration, value 0..C-1
        self._smoothed: GrowingBuffer | None = None
        self._states: list[tuple[float, int]] = []
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

    def _mark_dirty(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def _on_smoothing(self, value: int) -> None:
        self._slider_text.setText(f"{value / 100:.2f}")
        self._restart_smoothing()

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
        """{"raw": (x, y), "smoothed": (x, y), "overlays": {name: (x, y)}} as drawn."""
        overlays = {name: _xy(c) for c, (name, _, _) in zip(self._overlay_curves, self._overlay_data)}
        return {"raw": _xy(self._raw), "smoothed": _xy(self._smooth), "overlays": overlays}

    def _redraw(self) -> None:
        x, raw, smooth = self._displayed()
        _set_curve(self._raw, x, raw[:, 0])
        _set_curve(self._smooth, x, smooth[:, 0])
        if self._overlays_dirty:
            self._overlays_dirty = False
            self._redraw_overlays()

    def _on_smoothing(self, value: int) -> None:
        self._overlays_dirty = True
        super()._on_smoothing(value)

    def _redraw_overlays(self) -> None:
        for i, curve in enumerate(self._overlay_curves):
            self.legend.removeItem(curve)
            if i >= len(self._overlay_data):
                curve.setData([], [])
                curve.hide()
                continue
            name, ox, oy = self._overlay_data[i]
            index = display_index(len(ox))
            _set_curve(curve, ox[index], ema_debiased(oy, self.smoothing())[0][index])
            curve.show()
            self.legend.addItem(curve, name)


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
        """One (iterations, smoothed loss) pair per inner step, as drawn."""
        return [_xy(c) for c in self._curves]

    def _columns_changed(self, columns: int) -> None:
        for curve in self._curves:
            self.legend.removeItem(curve)
            self.plot.removeItem(curve)
        colors = step_colors(columns)
        self._curves = []
        for s in range(columns):
            pen = pg.mkPen(colors[s], width=2, style=Qt.PenStyle.DashLine if s == 0 else Qt.PenStyle.SolidLine)
            curve = self.plot.plot(pen=pen)
            if s in (0, 1, columns - 1):  # a legend for 100 steps would hide the plot
                self.legend.addItem(curve, "before adaptation" if s == 0 else f"after {s} step{'s' * (s > 1)}")
            self._curves.append(curve)

    def _redraw(self) -> None:
        if self._buffer is None:
            return
        x, _, smooth = self._displayed()
        for s, curve in enumerate(self._curves):
            _set_curve(curve, x, smooth[:, s])


def step_colors(n: int) -> list:
    """A light-to-dark ramp so later adaptation steps read as 'further along'."""
    ramp = pg.colormap.get("viridis")
    return [ramp.map(0.85 * (1 - i / max(n - 1, 1)), mode="qcolor") for i in range(n)]


class AdaptationPlot(_PlotBox):
    """Held-out loss (or accuracy) vs number of adaptation steps, with 95% CI error bars."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Adaptation on held-out tasks", "adaptation steps (gradient steps on the support set)", "", parent)
        self._items: dict[str, tuple[pg.PlotDataItem, pg.ErrorBarItem]] = {}
        self._data: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.set_metric("mse")

    def set_metric(self, metric: str) -> None:
        self.plot.setLabel("left", "query accuracy (fraction correct)" if metric == "accuracy" else "query loss (MSE)")

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
        line, bars = self._items[name]
        ok = np.isfinite(mean) & np.isfinite(ci)  # a diverged model must not break the view's bounds
        line.setData(steps[ok], mean[ok])
        bars.setData(x=steps[ok], y=mean[ok], height=2 * ci[ok])
        self._data[name] = (steps, mean, ci)

    def clear(self) -> None:
        """Empty every series (items are kept for the next evaluation)."""
        for line, bars in self._items.values():
            line.setData([], [])
            bars.setData(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0))
        self._data.clear()

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
        self.plot.addItem(self._regions)
        self._truth = self.plot.plot(pen=pg.mkPen("#d62728", width=3))
        self._predictions: list[pg.PlotDataItem] = []
        self._points = pg.ScatterPlotItem(size=9, pen=pg.mkPen("k", width=1))
        self.plot.addItem(self._points)
        self._drawn_steps: list[int] = []
        self._region_labels: np.ndarray | None = None

    def show_function(self, view) -> None:
        """Draw a ``core.evaluation.FunctionView``; with many steps only a spread of them is shown."""
        n = len(view.predictions)
        steps = list(range(n)) if n <= self.MAX_STEP_CURVES else sorted(
            {0, 1, *np.linspace(0, n - 1, self.MAX_STEP_CURVES - 1).round().astype(int).tolist()})
        while len(self._predictions) < len(steps):
            self._predictions.append(self.plot.plot())
        self.legend.clear()
        self.legend.show()
        self._regions.hide()
        self._region_labels = None
        self._set_axes("Adaptation to one held-out task", "x", "y")
        grid = np.asarray(view.grid, dtype=float)
        _set_curve(self._truth, grid, view.truth)
        self._truth.show()
        self.legend.addItem(self._truth, "true function")
        colors = step_colors(len(steps))
        for i, curve in enumerate(self._predictions):
            if i >= len(steps):
                curve.hide()
                continue
            s = steps[i]
            style = Qt.PenStyle.DashLine if s == 0 else Qt.PenStyle.SolidLine
            curve.setPen(pg.mkPen(colors[i], width=2, style=style))
            _set_curve(curve, grid, view.predictions[s])
            curve.show()
            self.legend.addItem(curve, "before adaptation" if s == 0 else f"after {s} step{'s' * (s > 1)}")
        sx, sy = np.asarray(view.support_x, float), np.asarray(view.support_y, float)
        ok = np.isfinite(sx) & np.isfinite(sy)
        self._points.setData(sx[ok], sy[ok], brush=pg.mkBrush("#ffffff"), symbol="o")
        self.legend.addItem(self._points, f"support ({len(view.support_x)} points)")
        self._drawn_steps = steps
        self.plot.enableAutoRange()

    def show_regions(self, grid_x, grid_y, labels, points_x, points_y, point_labels) -> None:
        """Decision regions: ``labels[h, w]`` over axes ``grid_x`` (w) and ``grid_y`` (h); points by class."""
        gx, gy = np.asarray(grid_x, float), np.asarray(grid_y, float)
        gx, gy = (gx[0] if gx.ndim == 2 else gx), (gy[:, 0] if gy.ndim == 2 else gy)
        labels = self._region_labels = np.asarray(labels, dtype=int)
        point_labels = np.asarray(point_labels, dtype=int)
        colors = class_colors(int(max(labels.max(initial=0), point_labels.max(initial=0))) + 1)
        light = np.array([c.getRgb() for c in colors], dtype=np.ubyte)
        light[:, 3] = 70
        self._regions.setImage(light[labels].transpose(1, 0, 2), autoLevels=False)
        self._regions.setRect(QRectF(gx[0], gy[0], gx[-1] - gx[0], gy[-1] - gy[0]))
        self._regions.show()
        self._truth.hide()
        for curve in self._predictions:
            curve.hide()
        self.legend.clear()
        self.legend.hide()  # colours are classes; an empty legend card would only hide points
        self._drawn_steps = []
        self._points.setData(np.asarray(points_x, float), np.asarray(points_y, float),
                             brush=[pg.mkBrush(colors[k]) for k in point_labels], symbol="o")
        self._set_axes("Decision regions after adaptation", "x₁", "x₂")
        self.plot.enableAutoRange()

    def data(self) -> dict:
        """What is drawn: ``truth``, ``points``, ``predictions`` {step: (x, y)}, ``regions`` (labels image or None)."""
        return {"truth": _xy(self._truth) if self._truth.isVisible() else None,
                "points": (self._points.data["x"].copy(), self._points.data["y"].copy()),
                "predictions": {s: _xy(c) for s, c in zip(self._drawn_steps, self._predictions)},
                "regions": self._region_labels if self._regions.isVisible() else None}
