"""The base of the plots over meta-iterations, which draw columns of runs' ``History`` objects.

A run's ``History`` (``maml_gui.session.runs``) is the one store of its metrics: a plot only holds a
reference to it (and to each compared run's) and what it derives for drawing. ``refresh()`` is
cheap to call after every chunk: it starts a single-shot ~30 Hz timer, whose redraw then

* smooths only the rows appended since the last redraw (``SmoothedColumns``; a full pass when
  the history was thinned, which its ``stride`` tells), on the kept rows as TensorBoard does;
* hands each curve at most ``MAX_DISPLAY_POINTS`` points (a power-of-two stride anchored at the
  first point, so points never jump between redraws), reduced to about one bucket per pixel of
  the view (min/max for raw values, the mean for smoothed ones) before ``setData``;
* leaves alone every curve whose history did not change (compared runs that are not training).

So the per-frame Python work does not grow with the length of a run, and the view's range is
computed from the data handed over (``PlotViewBox``), with room for the legend above it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider, QWidget

from maml_gui.session.overlays import Band, Overlay, align_common, across_seeds
from maml_gui.widgets.plot_math import SmoothedColumns, display_index, finite_or_nan, to_pixels, value_bounds
from .history_x import CLOCK_MODES, X_AXES, drawable, mean_x, used_mode, x_values
from .history_traces import EMPTY, BandTrace, Trace
from .plot_base import PlotBox, mark_short, set_curve
from .plot_legend import PIXEL_CACHE, short_name
from .plot_colors import set_pen
from .x_axis_choice import XAxisChoice

REDRAW_MS = 33
DEFAULT_SMOOTHING = 0.9
OVERLAY_STYLE = Qt.PenStyle.DashLine


def tip_bands(legend, tips: dict[str, str]) -> None:
    """Give the legend entries of bands their tooltip (what the shading spans)."""
    for _sample, label in legend.items:
        label.setToolTip(tips.get(label.text, ""))


class HistoryPlot(PlotBox):
    """Columns of the shown run's ``History`` over meta-iterations (raw and smoothed), compared
    runs smoothed and dashed in their colours, a smoothing slider and a log-scale switch.

    Subclasses say which columns they draw (:meth:`_values`, :meth:`_overlay_values`), create
    their curves (:meth:`_columns_changed`) and hand them to :meth:`_draw` (:meth:`_main_draws`).
    """

    overlay_style = OVERLAY_STYLE   # how compared runs are drawn
    x_axis_changed = Signal(str)   # "iteration" | "relative" | "wall" | "time" (X_AXES), chosen by the user

    def __init__(self, title: str, y_label: str, parent: QWidget | None = None):
        super().__init__(title, X_AXES["iteration"], y_label, parent)
        self.legend.set_wanted(False)
        self._slider = QSlider(Qt.Orientation.Horizontal)
        self._slider.setRange(0, 99)
        self._slider.setValue(round(DEFAULT_SMOOTHING * 100))
        self._slider.setToolTip("Exponential moving average weight, as in TensorBoard (0 = raw values).")
        self._slider_text = QLabel()
        self._log = QCheckBox("Log scale")
        self._log.setToolTip("Show the loss on a logarithmic axis (losses span orders of magnitude).")
        self._x_choice = XAxisChoice()
        self._x_mode = "iteration"   # the user's choice
        self._x_used = "iteration"   # what the shown run is drawn against (training time without clock times)
        controls = QHBoxLayout()
        controls.setContentsMargins(8, 2, 8, 4)
        controls.addWidget(QLabel("Smoothing"))
        controls.addWidget(self._slider, 1)
        controls.addWidget(self._slider_text)
        controls.addSpacing(8)
        controls.addWidget(self._log)
        controls.addWidget(QLabel("x:"))
        controls.addWidget(self._x_choice)
        controls.addWidget(self.reset_button)
        self._layout.addLayout(controls)
        self._timer = QTimer(self, singleShot=True, interval=REDRAW_MS)
        self._timer.timeout.connect(self._redraw)
        self._slider.valueChanged.connect(self._on_smoothing)
        self._log.toggled.connect(self._on_log)
        self._x_choice.activated.connect(lambda i: self._on_x_choice(self._x_choice.itemData(i)))
        self._history = None
        self._sync_x_choice()
        self._name = ""
        self._color: str | None = None
        self._columns = -1
        self._smoother = SmoothedColumns()
        self._main_key = None
        self._main = (np.empty(0), [], [])       # (x, raw columns, smoothed columns) as last handed over
        self._traces: list[Trace] = []
        self._bands: list[BandTrace] = []
        # per curve: the arrays last handed to it (to skip unchanged ones), what they were with
        # non-finite values as NaN (``data()``), and the key of their per-pixel reduction
        self._sources: dict[pg.PlotDataItem, tuple[np.ndarray, np.ndarray]] = {}
        self._series: dict[pg.PlotDataItem, tuple[np.ndarray, np.ndarray]] = {}
        self._reduced: dict[pg.PlotDataItem, tuple] = {}
        self._bounds: dict[tuple[pg.PlotDataItem, bool], tuple[float, float] | None] = {}   # (curve, log): y bounds
        self._follow_x = True
        self._stale = False
        self.vb.range_source = self._data_range
        self.vb.anchor_x = True
        self.vb.sigResized.connect(self._fit_legend)
        self.vb.sigResized.connect(self._mark_dirty)                 # a wider view gets more buckets
        self.vb.sigXRangeChanged.connect(self._on_x_range)           # zoom/pan: reduce what is visible
        self.vb.sigStateChanged.connect(self._on_view_state)         # auto-range switched on/off
        self._on_smoothing(self._slider.value())

    # ------------------------------------------------------------------ public API
    def set_history(self, history, name: str = "", color: str | None = None) -> None:
        """Draw ``history`` (a run's ``History``, read again on every redraw; None empties the
        plot), in ``color`` (None: the default blue), named ``name`` in the legend when given."""
        if history is not self._history:
            self._history = history
            self._smoother.clear()
            self._main_key = None
            if not self._apply_x():
                self._sync_x_choice()
        if (name, color) != (self._name, self._color):
            self._name, self._color = name, color
            if self._style_main(color):
                self.legend.clear()
            self._sync_legend()
        self.refresh()

    def history(self):
        """The ``History`` drawn (None if none)."""
        return self._history

    def refresh(self) -> None:
        """Draw what the histories hold now, within ~33 ms; calls in between share one redraw."""
        self._mark_dirty()

    def set_overlays(self, overlays: Sequence[Overlay]) -> None:
        """Compared runs (their ``history``), smoothed like the shown run, dashed in their
        ``color`` and named in the legend; [] removes them. Their histories are read on every
        redraw, so a compared run that is still training follows after :meth:`refresh`."""
        overlays = list(overlays)
        spare = {id(t.overlay.history): t.smoother for t in self._traces
                 if t.overlay is not None and t.overlay.history is not None}
        while len(self._traces) < len(overlays):   # a pool of curves, grown only when needed
            curve = self.plot.plot()
            # a compared run that is not training is blitted from a pixmap while the view's range
            # stays put (the range is snapped, so most redraws), instead of being stroked again
            curve.curve.setCacheMode(PIXEL_CACHE)
            self._traces.append(Trace(curve))
        restyled = False
        for i, trace in enumerate(self._traces):
            if i >= len(overlays):
                if trace.overlay is not None:
                    trace.overlay, trace.key, trace.shown = None, None, EMPTY
                    self._forget(trace.curve)
                    trace.curve.setData([], [])
                    trace.curve.hide()
                continue
            overlay = overlays[i]
            if trace.overlay is None or trace.overlay.history is not overlay.history:
                trace.smoother = spare.pop(id(overlay.history), None) or SmoothedColumns()
                trace.key = None
            trace.overlay = overlay
            restyled |= set_pen(trace.curve, overlay.color, 2, self.overlay_style)
            trace.curve.show()
        if restyled:
            self.legend.clear()
        self._sync_legend()
        self._mark_dirty()

    def set_bands(self, bands: Sequence[Band]) -> None:
        """Sweep configurations, one curve each: the mean of their seeds' smoothed curves, solid in
        the band's ``color``, shaded from the lowest seed to the highest (min–max, not a confidence
        interval), on the iterations every seed has reached; [] removes them."""
        bands = list(bands)
        while len(self._bands) < len(bands):
            self._bands.append(BandTrace(self.plot))
        restyled = False
        for i, trace in enumerate(self._bands):
            if i >= len(bands):
                if trace.band is not None:
                    trace.band, trace.key, trace.smoothers = None, None, {}
                    for curve in trace.curves():
                        self._forget(curve)
                        curve.setData([], [])
                    trace.set_visible(False)
                continue
            band = bands[i]
            if trace.band is None or [id(h) for h in trace.band.histories] != [id(h) for h in band.histories]:
                trace.smoothers = {id(h): trace.smoothers.get(id(h)) or SmoothedColumns() for h in band.histories}
                trace.key = None
            trace.band = band
            restyled |= trace.style(band.color)
            trace.set_visible(True)
        if restyled:
            self.legend.clear()
        self._sync_legend()
        self._mark_dirty()

    def band_data(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """{band name: (iterations, mean, min, max) across its seeds} as handed to the plot."""
        out = {}
        for t in self._active_bands():
            x, mean = self._series.get(t.mean, EMPTY)
            out[t.band.name] = (x, mean, self._series.get(t.low, EMPTY)[1], self._series.get(t.high, EMPTY)[1])
        return out

    def band_items(self) -> dict[str, pg.FillBetweenItem]:
        """{band name: its fill} (the shaded area between the lowest and the highest seed)."""
        return {t.band.name: t.fill for t in self._active_bands()}

    def overlay_data(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{run name: (iterations, smoothed values)} of the compared runs, as handed to the plot."""
        return {t.overlay.name: self._series.get(t.curve, EMPTY) for t in self._active_traces()}

    def overlay_curves(self) -> dict[str, pg.PlotDataItem]:
        """{run name: its curve} of the compared runs."""
        return {t.overlay.name: t.curve for t in self._active_traces()}

    def smoothing(self) -> float:
        return self._slider.value() / 100

    def set_smoothing(self, weight: float) -> None:
        self._slider.setValue(round(weight * 100))

    def set_log_scale(self, on: bool) -> None:
        self._log.setChecked(on)

    def log_scale(self) -> bool:
        return self._log.isChecked()

    def x_axis(self) -> str:
        """The x axis chosen (:data:`~maml_gui.widgets.history_x.X_AXES`)."""
        return self._x_mode

    def x_axis_used(self) -> str:
        """What the x axis shows now: the choice, or "time" when it needs clock times the shown run lacks."""
        return self._x_used

    def set_x_axis(self, mode: str) -> None:
        """Draw against "iteration", "relative" (clock seconds since each run began), "wall" (the clock
        time: a date axis) or "time" (training time in seconds, see :func:`training_time`)."""
        if mode not in X_AXES or mode == self._x_mode:
            return
        self._x_mode = mode
        self._apply_x()
        self._sync_x_choice()

    def _apply_x(self) -> bool:
        """Put the axis in the mode the shown run is drawn against; returns whether it changed."""
        used = used_mode(self._x_mode, self._history)
        if used == self._x_used:
            return False
        self._x_used = used
        axis = self.plot.getPlotItem().getAxis("bottom")
        axis.mode = {"wall": "dates", "relative": "durations", "time": "durations"}.get(used, "values")
        self._set_label("bottom", X_AXES[used])
        self._main_key = None   # every curve's x changes
        for trace in [*self._traces, *self._bands]:
            trace.key = None
        self._sync_x_choice()
        self._sync_legend()     # compared runs without clock times say so
        self.vb.enableAutoRange()   # the old x range means nothing on the new axis
        self._mark_dirty()
        return True

    def _sync_x_choice(self) -> None:
        h = self._history
        self._x_choice.show_state(self._x_mode, self._x_used, h is None or not len(h) or h.has_wall_time())

    def reset(self) -> None:
        """Show no run (the curves stay, emptied); compared runs stay."""
        self.set_history(None, self._name, self._color)

    # ------------------------------------------------------------------ what subclasses define
    def _values(self, history) -> np.ndarray:
        """The columns drawn for the shown run, ``[n, C]`` (a view into the history)."""
        raise NotImplementedError

    def _overlay_values(self, history) -> np.ndarray | None:
        """The one column drawn for a compared run, ``[n]``; None if it has none."""
        raise NotImplementedError

    def _columns_changed(self, columns: int) -> None:
        """Create the shown run's curves (only when the number of columns changes)."""

    def _style_main(self, color: str | None) -> bool:
        """Colour the shown run's curves; returns whether a pen changed."""
        return False

    def _legend_main(self) -> list[tuple[object, str]]:
        """Legend entries for the shown run's curves."""
        return []

    def _main_draws(self, x: np.ndarray, raw: list, smooth: list, mode: str) -> list:
        """(curve, x, y, mode) for each of the shown run's curves."""
        raise NotImplementedError

    # ------------------------------------------------------------------ drawing
    def _redraw(self) -> None:
        if not self.isVisible() and self.window().isVisible():
            self._stale = True   # behind another tab: drawn when shown, not in the GIL's busiest time
            return
        if self._x_used != used_mode(self._x_mode, self._history):
            self._apply_x()   # a run without clock times got some (continued), or the reverse
        weight, mode = self.smoothing(), self._smooth_mode()
        x, raw, smooth = self._main_shown(weight)
        curves = self._main_draws(x, raw, smooth, mode)
        curves += [(t.curve, *self._trace_shown(t, weight), mode) for t in self._active_traces()]
        for t in self._active_bands():
            x, mean, low, high = self._band_shown(t, weight)
            curves += [(t.mean, x, mean, mode), (t.low, x, low, mode), (t.high, x, high, mode)]
        self._draw(curves)

    def _main_shown(self, weight: float):
        """(x, raw columns, smoothed columns) of the shown run, decimated; the very same arrays
        while its history has neither grown nor been thinned (so their curves are not redrawn)."""
        h = self._history
        key = None if h is None else (len(h), h.stride, weight, self._x_used)
        if key is not None and key == self._main_key:
            return self._main
        values = None if h is None else self._values(h)
        if values is not None and values.shape[1] != self._columns:
            self._columns = values.shape[1]
            self._columns_changed(self._columns)
        if values is None or not len(values):
            main = (np.empty(0), [np.empty(0)] * max(self._columns, 0), [np.empty(0)] * max(self._columns, 0))
        else:
            smooth = self._smoother.update(values, weight, h.stride)
            index = display_index(len(values))
            shown_raw, shown_smooth = values[index], smooth[index]
            x, columns = drawable(self._x_of(h)[index], [*shown_raw.T, *shown_smooth.T], self._clock())
            main = (x, columns[:self._columns], columns[self._columns:])
        self._main_key, self._main = key, main
        return main

    def _trace_shown(self, trace: Trace, weight: float) -> tuple[np.ndarray, np.ndarray]:
        """A compared run's (x, smoothed y), decimated; recomputed only when its history changed."""
        h = trace.overlay.history
        key = None if h is None else (len(h), h.stride, weight, self._x_used)
        if key is None or key != trace.key:
            y = None if h is None or not len(h) else self._overlay_values(h)
            if y is None:
                trace.shown = EMPTY
            else:
                smooth = trace.smoother.update(y[:, None], weight, h.stride)[:, 0]
                index = display_index(len(y))
                x, (shown,) = drawable(self._x_of(h)[index], [smooth[index]], self._clock())
                trace.shown = (x, shown)
            trace.key = key
        return trace.shown

    def _band_shown(self, trace: BandTrace, weight: float):
        """(x, mean, min, max) of a band's seeds, smoothed each like a compared run, decimated;
        recomputed only when one of their histories changed."""
        key = (tuple((len(h), h.stride) for h in trace.band.histories), weight, self._x_used)
        if key != trace.key:
            series, seeds = [], []
            for h in trace.band.histories:
                y = self._overlay_values(h) if len(h) else None
                if y is not None:
                    smooth = trace.smoothers.setdefault(id(h), SmoothedColumns()).update(y[:, None], weight, h.stride)
                    series.append((h.iterations, smooth[:, 0]))
                    seeds.append(h)
            x, stack = align_common(series)
            if self._x_used != "iteration" and len(x):   # at each iteration, the seeds' mean time
                x = mean_x([self._x_of(h)[np.searchsorted(h.iterations, x)] for h in seeds])
            mean, low, high = across_seeds(stack)
            index = display_index(len(x))
            x, columns = drawable(x[index], [mean[index], low[index], high[index]]) if len(x) else (np.empty(0), [])
            trace.shown = (x, *columns) if len(x) else (np.empty(0),) * 4
            trace.key = key
        return trace.shown

    def _clock(self) -> bool:
        return self._x_used in CLOCK_MODES

    def _x_of(self, history) -> np.ndarray:
        """The x of each kept row of ``history`` on the axis in use (NaN: no clock time, not drawn)."""
        return x_values(history, self._x_used)

    def _active_bands(self) -> list[BandTrace]:
        return [t for t in self._bands if t.band is not None]

    def _active_traces(self) -> list[Trace]:
        return [t for t in self._traces if t.overlay is not None]

    def _sync_legend(self) -> None:
        """Run names only (and what the shown run's curves mean, where that is not obvious)."""
        entries = self._legend_main() + [(t.curve, self._overlay_label(t.overlay)) for t in self._active_traces()] \
            + [(t.mean, t.band.name) for t in self._active_bands()]
        self.legend.set_entries(entries)
        tip_bands(self.legend, {t.band.name: t.band.tip for t in self._active_bands()})
        self._fit_legend()

    def _overlay_label(self, overlay: Overlay) -> str:
        """A compared run's legend entry; on a clock axis, one without clock times says why it is missing."""
        h = overlay.history
        if self._x_used in CLOCK_MODES and h is not None and len(h) and not h.has_wall_time():
            return f"{short_name(overlay.name)} (no clock time)"
        return short_name(overlay.name)

    def _forget(self, curve: pg.PlotDataItem) -> None:
        for cache in (self._sources, self._series, self._reduced):
            cache.pop(curve, None)
        for log in (False, True):
            self._bounds.pop((curve, log), None)

    def _draw(self, curves: Sequence[tuple[pg.PlotDataItem, np.ndarray, np.ndarray, str]]) -> None:
        """Hand each (curve, x, y, mode) to the plot, reduced to the view's pixels, then fit the view."""
        follow = self.vb.state["autoRange"][0] is not False
        x_range = None if follow else tuple(self.vb.viewRange()[0])
        pixels = max(64, int(self.vb.width()))
        key = (pixels, x_range)
        for curve, x, y, mode in curves:
            source = self._sources.get(curve)
            if source is not None and source[0] is x and source[1] is y and self._reduced.get(curve) == (*key, mode):
                continue   # unchanged
            self._sources[curve], self._reduced[curve] = (x, y), (*key, mode)
            y = finite_or_nan(y)
            self._series[curve] = (x, y) if np.isfinite(y).any() else EMPTY
            self._bounds.pop((curve, False), None)
            self._bounds.pop((curve, True), None)
            set_curve(curve, *to_pixels(x, y, pixels, mode, x_range))
        for curve, *_ in curves:
            mark_short(curve)   # a one-iteration run is a dot, not nothing
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
        curves = [curve for curve, (x, _) in self._series.items() if len(x) and curve.isVisible()]
        if not curves:
            return None
        if axis == 0:
            return (min(float(self._series[c][0][0]) for c in curves),
                    max(float(self._series[c][0][-1]) for c in curves))
        log = ctrl.logYCheck.isChecked()
        if x_range is not None:
            visible = [y[(x >= x_range[0]) & (x <= x_range[1])] for x, y in map(self._series.get, curves)]
            return self._room_for_legend(value_bounds(visible, log=log))
        bounds = []   # each curve's bounds are computed once per setData, not on every redraw
        for curve in curves:
            key = (curve, log)
            if key not in self._bounds:
                self._bounds[key] = value_bounds([self._series[curve][1]], log=log)
            bounds.append(self._bounds[key])
        bounds = [b for b in bounds if b is not None]
        if not bounds:
            return None
        return self._room_for_legend((min(lo for lo, _ in bounds), max(hi for _, hi in bounds)))

    # ------------------------------------------------------------------ events
    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self._stale = False
            self._mark_dirty()

    def _mark_dirty(self, *_) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def _on_smoothing(self, value: int) -> None:
        self._slider_text.setText(f"{value / 100:.2f}")
        self._mark_dirty()

    def _on_log(self, on: bool) -> None:
        self.plot.setLogMode(y=on)
        self.vb.refresh_auto_range()

    def _on_x_choice(self, mode: str) -> None:
        self.set_x_axis(mode)
        self.x_axis_changed.emit(mode)

    def _on_x_range(self, *_) -> None:
        if self.vb.state["autoRange"][0] is False:
            self._mark_dirty()

    def _on_view_state(self, *_) -> None:
        follow = self.vb.state["autoRange"][0] is not False
        if follow != self._follow_x:
            self._follow_x = follow
            self._mark_dirty()
