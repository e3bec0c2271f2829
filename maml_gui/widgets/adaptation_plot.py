"""Scores on held-out tasks vs the number of adaptation steps, for the shown run and compared runs.

A learned inner rate used past the steps it was trained for can blow a few tasks' losses up to
1e+20. The engine counts those tasks (``AdaptationSnapshot.diverged``, the definition
``maml-gui evaluate`` uses) and leaves no mean at their steps; this plot says so in a note
under the axis, bounds its axes by the finite values only, draws losses on a log axis by
default, and never draws a loss's confidence interval below zero.
"""

from __future__ import annotations

import html
from typing import Mapping, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QWidget

from maml_gui.session.overlays import Band, Overlay, across_seeds
from maml_gui.widgets.plot_math import value_bounds
from .history_plot import OVERLAY_STYLE, tip_bands
from .plot_base import PlotBox
from .plot_legend import PIXEL_CACHE, short_name
from .plot_colors import PALETTE, SERIES_COLORS, set_pen

COMPARED_SERIES = "meta-learned"   # what a compared run shows: its meta-learned initialisation
ORACLE_STYLE = Qt.PenStyle.DashDotLine   # the oracle (told the task) is the ceiling, not a method
CI_FLOOR = 0.01                    # a loss's CI is drawn down to this fraction of its mean at most (never to 0)
NOTE_ROW = 4                       # the PlotItem layout's row under the bottom axis
NOTE_COLOR = "#b22222"
RETURN_LABEL = "average return (higher is better)"


def metric_label(metric: str) -> str:
    if metric == "return":   # meta-RL: the policy's average return on held-out tasks
        return RETURN_LABEL
    return "query accuracy (fraction correct)" if metric == "accuracy" else "query loss (MSE)"


def steps_label(metric: str) -> str:
    """The x axis: an RL task adapts on its own trajectories, a supervised one on its support set."""
    return "policy-gradient steps on the task's own trajectories" if metric == "return" \
        else "gradient steps on the support set"


def compared_series(snapshot) -> tuple[np.ndarray, np.ndarray] | None:
    """A compared run's (mean, ci95) per step: its meta-learned series (else its first one)."""
    if snapshot is None or not snapshot.series:
        return None
    return snapshot.series.get(COMPARED_SERIES) or next(iter(snapshot.series.values()))


def compared_diverged(snapshot) -> np.ndarray | None:
    """The diverged-task counts of :func:`compared_series` (None for snapshots saved without them)."""
    diverged = getattr(snapshot, "diverged", None) or {}
    if snapshot is None or not snapshot.series:
        return None
    name = COMPARED_SERIES if COMPARED_SERIES in snapshot.series else next(iter(snapshot.series))
    return diverged.get(name)


def shown_points(steps, mean, ci, loss: bool, log: bool, bounded: bool = True):
    """What is drawn of a series: (x, y, low, high) at the steps with a finite mean and CI (a
    positive mean on a log axis). The CI ends are clipped to what the score can be: a loss's
    lower end to ``CI_FLOOR`` of its mean (a normal CI of a skewed loss often reaches below 0,
    which a loss never does, and a log axis cannot show 0), an accuracy's to [0, 1]; a return
    (``bounded=False``, on a linear axis) is not clipped."""
    steps, mean, ci = (np.asarray(a, dtype=float) for a in (steps, mean, ci))
    ok = np.isfinite(mean) & np.isfinite(ci)
    if log:
        ok &= mean > 0
    x, y, half = steps[ok], mean[ok], np.abs(ci[ok])
    low, high = y - half, y + half
    if not bounded and not log:
        return x, y, low, high
    if loss or log:
        low = np.maximum(low, y * CI_FLOOR)
    else:
        low = np.maximum(low, 0.0)
    if not loss:
        high = np.minimum(high, 1.0)
    return x, y, low, high


def diverged_note(name: str, diverged, tasks: int = 0, steps=None) -> str:
    """E.g. "meta-learned: 22 of 50 tasks diverged at step ≥ 4 (no mean from there on)" from the
    diverged-task counts per step (at ``steps``, default 0, 1, …); "" if none diverged."""
    if diverged is None:
        return ""
    counts = np.asarray(diverged, dtype=int)
    if not counts.size or counts.max() <= 0:
        return ""
    index = int(np.argmax(counts > 0))
    first = int(steps[index]) if steps is not None and len(steps) == len(counts) else index
    n = int(counts.max())
    of = f" of {tasks}" if tasks else ""
    return f"{name}: {n}{of} task{'s' * (n != 1 or bool(tasks))} diverged at step ≥ {first} (no mean from there on)"


def set_points(line: pg.PlotDataItem, x, y) -> None:
    """``line.setData``, also emptying its symbols when there is nothing to draw: pyqtgraph then only
    hides them, keeping their last points, which a log axis turned into NaN (a return's negative
    values), and bounding those warns on every paint."""
    line.setData(x, y)
    if not len(x):
        line.scatter.clear()


class NoteLabel(pg.LabelItem):
    """Text under a plot's axis that wraps to the width it is given (a plain LabelItem makes its
    plot at least as wide as its longest line, cutting the plot off in a narrow window) and
    tells ``on_height`` the height the wrapped text needs."""

    def __init__(self, on_height):
        self._on_height = None
        super().__init__("", size="9pt", color=NOTE_COLOR, justify="left")
        self._on_height = on_height

    def updateMin(self):
        # as wide as its column lets it be, never wider; the row height (set from on_height) decides the rest
        self.setMinimumSize(0, 0)
        self._sizeHint = {Qt.SizeHint.MinimumSize: (0, 0), Qt.SizeHint.PreferredSize: (0, 0),
                          Qt.SizeHint.MaximumSize: (-1, -1)}

    def resizeEvent(self, ev):
        width = self.rect().width()
        self.item.setTextWidth(width if width > 40 else -1)
        super().resizeEvent(ev)
        if self._on_height is not None:
            self._on_height(self.item.boundingRect().height() if self.text else 0.0)


class AdaptationPlot(PlotBox):
    """Held-out loss (or accuracy) vs number of adaptation steps, with 95% CI error bars; compared
    runs' meta-learned scores dashed in their colours (no bars: the scores table has them).

    A "Log scale" switch (on for losses, off for accuracy, set again when the metric changes);
    under the axis, a note per series (and compared run) whose tasks diverged.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Adaptation on held-out tasks", "gradient steps on the support set", "", parent)
        self._items: dict[str, tuple[pg.PlotDataItem, pg.ErrorBarItem]] = {}
        self._data: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._drawn: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}   # x, y, low, high
        self._notes: dict[str, str] = {}
        self._run_color: str | None = None
        self._labels: dict[str, str] = {}   # legend text of a series, where not its name
        self._metric: str | None = None
        self._overlay_curves: list[pg.PlotDataItem] = []
        self._overlays: list[tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
        self._overlay_notes: list[str] = []
        self._overlay_drawn: list[tuple[np.ndarray, np.ndarray]] = []
        self._band_items: list[tuple[pg.PlotDataItem, pg.PlotDataItem, pg.PlotDataItem, pg.FillBetweenItem]] = []
        self._bands: list[tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = []   # steps, mean, lo, hi
        self._band_drawn: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._band_tips: dict[str, str] = {}
        self._log = QCheckBox("Log scale")
        self._log.setToolTip("Show the scores on a logarithmic axis (on by default for losses, which span "
                             "orders of magnitude across steps and runs).")
        controls = QHBoxLayout()
        controls.setContentsMargins(8, 2, 8, 4)
        controls.addStretch(1)
        controls.addWidget(self._log)
        controls.addWidget(self.reset_button)
        self._layout.addLayout(controls)
        self._note = NoteLabel(self._fit_note)
        item = self.plot.getPlotItem()
        item.layout.addItem(self._note, NOTE_ROW, 1)
        self._fit_note(0.0)
        self.vb.range_source = self._data_range
        self.vb.sigResized.connect(self._fit_legend)
        self.legend.set_wanted(False)
        self._log.toggled.connect(self._on_log)
        item.ctrl.logYCheck.toggled.connect(self._log.setChecked)   # the context menu's switch is this one
        self.set_metric("mse")

    # ------------------------------------------------------------------ public API
    def set_metric(self, metric: str) -> None:
        """Label the axes; a new metric also sets the log scale to its default (on for a loss; off for
        an accuracy, and for a return, which is negative in most RL tasks)."""
        self._set_label("left", metric_label(metric))
        self._set_label("bottom", steps_label(metric))
        if metric != self._metric:
            self._metric = metric
            self.set_log_scale(metric not in ("accuracy", "return"))
            self._log.setVisible(metric != "return")   # returns are mostly negative: no log axis

    def set_log_scale(self, on: bool) -> None:
        self._log.setChecked(on)

    def log_scale(self) -> bool:
        return self._log.isChecked()

    def show_snapshot(self, snapshot, color: str | None = None, own: str | None = None) -> None:
        """Draw an ``AdaptationSnapshot`` of the shown run, its meta-learned series in ``color``
        (its run colour; None: the default blue) and called ``own`` when given. The baselines keep
        their colours."""
        self.set_metric(snapshot.metric)
        self._run_color = color
        if COMPARED_SERIES in self._items and self._style(COMPARED_SERIES):
            self.legend.clear()
        diverged = getattr(snapshot, "diverged", None) or {}
        # the baseline's legend says how far it trained: a reader sees when it had fewer updates
        updates = snapshot.baseline_iterations
        self._labels = {"pretrain": f"pretrain ({updates:,} update{'s' * (updates != 1)})"} if updates else {}
        if own:   # the run's own series, when "meta-learned" would not be true (a pretrain run)
            self._labels[COMPARED_SERIES] = own
        for name, (mean, ci) in snapshot.series.items():
            self.set_series(name, snapshot.steps, mean, ci, diverged.get(name), getattr(snapshot, "tasks", 0))

    def set_series(self, name: str, steps, mean, ci, diverged=None, tasks: int = 0) -> None:
        """One series' mean and CI per step; ``diverged`` (tasks per step) adds its note."""
        if isinstance(mean, Mapping):  # EvalResult summaries are {step: value}
            mean, ci = [mean[s] for s in steps], [ci[s] for s in steps]
        if isinstance(diverged, Mapping):
            diverged = [diverged.get(s, 0) for s in steps]
        steps, mean, ci = (np.asarray(a, dtype=float) for a in (steps, mean, ci))
        if name not in self._items:  # one line + error bars per series, made once
            line = self.plot.plot(symbol="o", symbolSize=7, symbolPen=None)
            bars = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0), beam=0.15)
            self.plot.addItem(bars)
            self._items[name] = (line, bars)
            self._style(name)
        self._data[name] = (steps, mean, ci)
        self._notes[name] = diverged_note(name, diverged, tasks, steps)
        self._draw_series(name)
        self._sync_note()
        self._sync_legend()
        self.vb.refresh_auto_range()

    def set_overlays(self, overlays: Sequence[Overlay]) -> None:
        """Compared runs: each one's meta-learned scores from its ``adaptation`` snapshot, dashed in its
        ``color``; runs without a snapshot are left out. [] removes them."""
        shown, notes = [], []
        for overlay in overlays:
            series = compared_series(overlay.adaptation)
            if series is not None:
                steps = np.asarray(overlay.adaptation.steps, dtype=float)
                shown.append((overlay, (steps, *(np.asarray(a, dtype=float) for a in series))))
                notes.append(diverged_note(short_name(overlay.name), compared_diverged(overlay.adaptation),
                                           getattr(overlay.adaptation, "tasks", 0), steps))
        while len(self._overlay_curves) < len(shown):   # a pool, grown only when needed
            curve = self.plot.plot(symbol="o", symbolSize=5, symbolPen=None)
            for part in (curve.curve, curve.scatter):   # blitted, not redrawn, while they do not change
                part.setCacheMode(PIXEL_CACHE)
            self._overlay_curves.append(curve)
        restyled = False
        for curve in self._overlay_curves[len(shown):]:
            set_points(curve, [], [])
            curve.hide()
        for (overlay, _), curve in zip(shown, self._overlay_curves):
            if set_pen(curve, overlay.color, 2, OVERLAY_STYLE):
                curve.setSymbolBrush(pg.mkBrush(overlay.color))
                restyled = True
        if restyled:
            self.legend.clear()
        self._overlays = [(overlay.name, data) for overlay, data in shown]
        self._overlay_notes = notes
        self._draw_overlays()
        self._sync_note()
        self._sync_legend()
        self.vb.refresh_auto_range()

    def set_bands(self, bands: Sequence[Band]) -> None:
        """Sweep configurations: per step, the mean over seeds of each seed's meta-learned score,
        shaded from the lowest seed to the highest (min–max); seeds not yet scored, or scored at
        other steps than the first, are left out, and a band needs two. [] removes them."""
        shown = []
        for band in bands:
            series = [(np.asarray(a.steps, dtype=float), np.asarray(compared_series(a)[0], dtype=float))
                      for a in band.adaptations if compared_series(a) is not None]
            if len(series) < 2:
                continue
            steps = series[0][0]
            stack = np.stack([mean for st, mean in series if np.array_equal(st, steps)])
            if len(stack) >= 2:
                shown.append((band, (steps, *across_seeds(stack))))
        while len(self._band_items) < len(shown):
            mean = self.plot.plot(symbol="o", symbolSize=5, symbolPen=None)
            low, high = self.plot.plot(), self.plot.plot()
            fill = pg.FillBetweenItem(low, high)
            self.plot.addItem(fill)
            self._band_items.append((mean, low, high, fill))
        restyled = False
        for items in self._band_items[len(shown):]:
            for item in items[:3]:
                item.setData([], [])
            for item in items:
                item.hide()
        for (band, _), (mean, low, high, fill) in zip(shown, self._band_items):
            if set_pen(mean, band.color, 2):
                mean.setSymbolBrush(pg.mkBrush(band.color))
                edge, shade = pg.mkColor(band.color), pg.mkColor(band.color)
                edge.setAlpha(110)
                shade.setAlpha(50)
                for curve in (low, high):
                    curve.setPen(pg.mkPen(edge, width=1))
                fill.setBrush(shade)
                restyled = True
        if restyled:
            self.legend.clear()
        self._bands = [(band.name, data) for band, data in shown]
        self._band_tips = {band.name: band.tip for band, _ in shown}
        self._draw_bands()
        self._sync_legend()
        self.vb.refresh_auto_range()

    def band_data(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """{band name: (steps, mean, min, max) across its seeds} as computed (before clipping for a log axis)."""
        return dict(self._bands)

    def band_items(self) -> dict[str, pg.FillBetweenItem]:
        return {name: items[3] for (name, _), items in zip(self._bands, self._band_items)}

    def clear(self) -> None:
        """Empty the shown run's series (items are kept for the next evaluation); compared runs stay."""
        for line, bars in self._items.values():
            set_points(line, [], [])
            bars.setData(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0), bottom=np.zeros(0), height=None)
        self._data.clear()
        self._drawn.clear()
        self._notes.clear()
        self._labels = {}
        self._sync_note()
        self._sync_legend()

    def data(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """{name: (steps, mean, ci95)} of the shown run, as given (NaN where no mean)."""
        return dict(self._data)

    def drawn(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """{name: (steps, mean, CI low, CI high)} of the shown run as drawn: finite, the CI clipped."""
        return dict(self._drawn)

    def overlay_data(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """{run name: (steps, mean, ci95)} of the compared runs' meta-learned series."""
        return dict(self._overlays)

    def overlay_curves(self) -> dict[str, pg.PlotDataItem]:
        """{run name: its curve} of the compared runs."""
        return {name: curve for (name, _), curve in zip(self._overlays, self._overlay_curves)}

    def note(self) -> str:
        """The diverged-tasks note under the axis, one line per series or run ("" when none diverged)."""
        return "\n".join(self._note_lines())

    # ------------------------------------------------------------------ drawing
    def _draw_series(self, name: str) -> None:
        line, bars = self._items[name]
        log = self.log_scale()
        x, y, low, high = self._drawn[name] = shown_points(*self._data[name], self._metric not in ("accuracy", "return"),
                                                           log, bounded=self._metric != "return")
        set_points(line, x, y)   # the line follows the plot's log mode itself; the error bars do not
        if log:
            centre = np.log10(y)
            bars.setData(x=x, y=centre, top=np.log10(high) - centre, bottom=centre - np.log10(low), height=None)
        else:
            bars.setData(x=x, y=y, top=high - y, bottom=y - low, height=None)

    def _draw_overlays(self) -> None:
        log = self.log_scale()
        self._overlay_drawn = []
        for (_, (steps, mean, _)), curve in zip(self._overlays, self._overlay_curves):
            ok = np.isfinite(mean) & ((mean > 0) if log else True)
            self._overlay_drawn.append((steps[ok], mean[ok]))
            set_points(curve, steps[ok], mean[ok])
            curve.show()

    def _draw_bands(self) -> None:
        log = self.log_scale()
        self._band_drawn = []
        for (_, (steps, mean, low, high)), items in zip(self._bands, self._band_items):
            ok = np.isfinite(mean) & np.isfinite(low) & np.isfinite(high) & ((low > 0) if log else True)
            drawn = (steps[ok], mean[ok], low[ok], high[ok])
            self._band_drawn.append(drawn)
            for curve, y in zip(items[:3], drawn[1:]):
                set_points(curve, drawn[0], y)
            for item in items:
                item.show()

    def _data_range(self, axis: int, x_range):
        """The auto-range source: bounds of the finite values drawn (CI ends included), in the
        view's coordinates (log10 on a log axis), with room for the legend row above them."""
        drawn = [(x, (y, low, high)) for x, y, low, high in self._drawn.values()]
        drawn += [(x, (y,)) for x, y in self._overlay_drawn]
        drawn += [(x, (y, low, high)) for x, y, low, high in self._band_drawn]
        if axis == 0:
            return value_bounds([x for x, _ in drawn])
        values = []
        for x, ys in drawn:
            inside = slice(None) if x_range is None else (x >= x_range[0]) & (x <= x_range[1])
            values += [y[inside] for y in ys]
        return self._room_for_legend(value_bounds(values, log=self.log_scale()))

    def _on_log(self, on: bool) -> None:
        if self.plot.getPlotItem().ctrl.logYCheck.isChecked() != on:
            self.plot.setLogMode(y=on)
        for name in self._data:
            self._draw_series(name)
        self._draw_overlays()
        self._draw_bands()
        self.vb.refresh_auto_range()

    def _fit_note(self, text_height: float) -> None:
        """Give the note's row the height its (wrapped) text needs; none while it is empty."""
        height = float(int(text_height) + 2) if text_height > 0 else 0.0
        layout = self.plot.getPlotItem().layout
        if layout.rowMaximumHeight(NOTE_ROW) != height or layout.rowMinimumHeight(NOTE_ROW) != height:
            layout.setRowFixedHeight(NOTE_ROW, height)
            self._note.setMaximumHeight(height)
        self._note.setVisible(height > 0)

    def _note_lines(self) -> list[str]:
        return [n for n in (*self._notes.values(), *self._overlay_notes) if n]

    def _sync_note(self) -> None:
        lines = self._note_lines()
        text = "<br>".join(html.escape(line) for line in lines)
        if text != self._note.text:
            self._note.setText(text)   # its resize handler sets the row height

    def _style(self, name: str) -> bool:
        """Pen, symbols and bars of a series: the run colour for its meta-learned one; returns whether the pen changed."""
        line, bars = self._items[name]
        if name == COMPARED_SERIES and self._run_color:
            color = self._run_color
        else:
            color = SERIES_COLORS.get(name, PALETTE[(list(self._items).index(name) + 3) % len(PALETTE)])
        style = ORACLE_STYLE if name == "oracle" else Qt.PenStyle.SolidLine   # a bound, not a competitor
        if not set_pen(line, color, 2, style):
            return False
        line.setSymbolBrush(pg.mkBrush(color))
        bars.setData(pen=pg.mkPen(color, width=1.5))
        return True

    def _sync_legend(self) -> None:
        series = [(self._items[name][0], self._labels.get(name, name)) for name in self._data]
        overlays = [(curve, short_name(name)) for (name, _), curve in zip(self._overlays, self._overlay_curves)]
        overlays += [(items[0], name) for (name, _), items in zip(self._bands, self._band_items)]
        self.legend.set_entries(series + overlays)
        tip_bands(self.legend, self._band_tips)
        self.legend.set_wanted(bool(series or overlays))
        self._fit_legend()
