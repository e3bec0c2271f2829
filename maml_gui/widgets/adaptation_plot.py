"""Scores on held-out tasks vs the number of adaptation steps, for the shown run and compared runs."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from ..overlays import Overlay
from .history_plot import OVERLAY_STYLE, set_pen
from .plot_base import PIXEL_CACHE, PlotBox, short_name
from .plot_colors import PALETTE, SERIES_COLORS

COMPARED_SERIES = "meta-learned"   # what a compared run shows: its meta-learned initialisation


def metric_label(metric: str) -> str:
    return "query accuracy (fraction correct)" if metric == "accuracy" else "query loss (MSE)"


def compared_series(snapshot) -> tuple[np.ndarray, np.ndarray] | None:
    """A compared run's (mean, ci95) per step: its meta-learned series (else its first one)."""
    if snapshot is None or not snapshot.series:
        return None
    return snapshot.series.get(COMPARED_SERIES) or next(iter(snapshot.series.values()))


class AdaptationPlot(PlotBox):
    """Held-out loss (or accuracy) vs number of adaptation steps, with 95% CI error bars; compared
    runs' meta-learned scores dashed in their colours (no bars: the scores table has them)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Adaptation on held-out tasks", "adaptation steps (gradient steps on the support set)", "", parent)
        self._items: dict[str, tuple[pg.PlotDataItem, pg.ErrorBarItem]] = {}
        self._data: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._run_color: str | None = None
        self._overlay_curves: list[pg.PlotDataItem] = []
        self._overlays: list[tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
        self._use_legend_row()
        self.legend.set_wanted(False)
        self.set_metric("mse")

    def set_metric(self, metric: str) -> None:
        self._set_label("left", metric_label(metric))

    def show_snapshot(self, snapshot, color: str | None = None) -> None:
        """Draw an ``inspection.AdaptationSnapshot`` of the shown run, its meta-learned series in
        ``color`` (its run colour; None: the default blue). The baselines keep their colours."""
        self.set_metric(snapshot.metric)
        self._run_color = color
        if COMPARED_SERIES in self._items and self._style(COMPARED_SERIES):
            self.legend.clear()
        for name, (mean, ci) in snapshot.series.items():
            self.set_series(name, snapshot.steps, mean, ci)

    def set_series(self, name: str, steps, mean, ci) -> None:
        if isinstance(mean, Mapping):  # EvalResult summaries are {step: value}
            mean, ci = [mean[s] for s in steps], [ci[s] for s in steps]
        steps, mean, ci = (np.asarray(a, dtype=float) for a in (steps, mean, ci))
        if name not in self._items:  # one line + error bars per series, made once
            line = self.plot.plot(symbol="o", symbolSize=7, symbolPen=None)
            bars = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0), beam=0.15)
            self.plot.addItem(bars)
            self._items[name] = (line, bars)
            self._style(name)
        line, bars = self._items[name]
        ok = np.isfinite(mean) & np.isfinite(ci)  # a diverged model must not break the view's bounds
        line.setData(steps[ok], mean[ok])
        bars.setData(x=steps[ok], y=mean[ok], height=2 * ci[ok])
        self._data[name] = (steps, mean, ci)
        self._sync_legend()
        self.vb.refresh_auto_range()

    def set_overlays(self, overlays: Sequence[Overlay]) -> None:
        """Compared runs: each one's meta-learned scores from its ``adaptation`` snapshot, dashed in its
        ``color``; runs without a snapshot are left out. [] removes them."""
        shown = []
        for overlay in overlays:
            series = compared_series(overlay.adaptation)
            if series is not None:
                steps = np.asarray(overlay.adaptation.steps, dtype=float)
                shown.append((overlay, (steps, *(np.asarray(a, dtype=float) for a in series))))
        while len(self._overlay_curves) < len(shown):   # a pool, grown only when needed
            curve = self.plot.plot(symbol="o", symbolSize=5, symbolPen=None)
            for part in (curve.curve, curve.scatter):   # blitted, not redrawn, while they do not change
                part.setCacheMode(PIXEL_CACHE)
            self._overlay_curves.append(curve)
        restyled = False
        for i, curve in enumerate(self._overlay_curves):
            if i >= len(shown):
                curve.setData([], [])
                curve.hide()
                continue
            overlay, (steps, mean, _) = shown[i]
            if set_pen(curve, overlay.color, 2, OVERLAY_STYLE):
                curve.setSymbolBrush(pg.mkBrush(overlay.color))
                restyled = True
            ok = np.isfinite(mean)
            curve.setData(steps[ok], mean[ok])
            curve.show()
        if restyled:
            self.legend.clear()
        self._overlays = [(overlay.name, data) for overlay, data in shown]
        self._sync_legend()
        self.vb.refresh_auto_range()

    def clear(self) -> None:
        """Empty the shown run's series (items are kept for the next evaluation); compared runs stay."""
        for line, bars in self._items.values():
            line.setData([], [])
            bars.setData(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0))
        self._data.clear()
        self._sync_legend()

    def data(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """{name: (steps, mean, ci95)} of the shown run, as drawn."""
        return dict(self._data)

    def overlay_data(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """{run name: (steps, mean, ci95)} of the compared runs' meta-learned series."""
        return dict(self._overlays)

    def overlay_curves(self) -> dict[str, pg.PlotDataItem]:
        """{run name: its curve} of the compared runs."""
        return {name: curve for (name, _), curve in zip(self._overlays, self._overlay_curves)}

    def _style(self, name: str) -> bool:
        """Pen, symbols and bars of a series: the run colour for its meta-learned one; returns whether the pen changed."""
        line, bars = self._items[name]
        if name == COMPARED_SERIES and self._run_color:
            color = self._run_color
        else:
            color = SERIES_COLORS.get(name, PALETTE[(list(self._items).index(name) + 3) % len(PALETTE)])
        if not set_pen(line, color, 2):
            return False
        line.setSymbolBrush(pg.mkBrush(color))
        bars.setData(pen=pg.mkPen(color, width=1.5))
        return True

    def _sync_legend(self) -> None:
        series = [(self._items[name][0], name) for name in self._data]
        overlays = [(curve, short_name(name)) for (name, _), curve in zip(self._overlays, self._overlay_curves)]
        self.legend.set_entries(series + overlays)
        self.legend.set_wanted(bool(series or overlays))
        self._fit_legend()
