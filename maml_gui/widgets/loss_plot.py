"""The meta-loss over meta-iterations: the shown run raw and smoothed, compared runs smoothed."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from .history_plot import EMPTY, HistoryPlot
from .plot_legend import short_name
from .plot_colors import PALETTE, light, set_pen


class LossPlot(HistoryPlot):
    """Meta-loss vs iteration of a run's ``History``, raw (light) and smoothed, with other runs overlaid."""

    def __init__(self, parent: QWidget | None = None, title: str = "Meta-training loss", y_label: str = "query loss (MSE)"):
        super().__init__(title, y_label, parent)
        self._raw = self.plot.plot(pen=pg.mkPen(light(PALETTE[0]), width=1))
        self._smooth = self.plot.plot(pen=pg.mkPen(PALETTE[0], width=2))

    def data(self) -> dict:
        """{"raw": (x, y), "smoothed": (x, y), "overlays": {name: (x, y)}} as handed to the plot."""
        return {"raw": self._series.get(self._raw, EMPTY), "smoothed": self._series.get(self._smooth, EMPTY),
                "overlays": self.overlay_data()}

    def _values(self, history) -> np.ndarray:
        return history.meta_losses[:, None]

    def _overlay_values(self, history) -> np.ndarray:
        return history.meta_losses

    def _style_main(self, color: str | None) -> bool:
        color = color or PALETTE[0]
        changed = set_pen(self._raw, light(color), 1)
        return set_pen(self._smooth, color, 2) or changed

    def _legend_main(self) -> list:
        return [(self._smooth, short_name(self._name))] if self._name else []

    def _main_draws(self, x, raw, smooth, mode) -> list:
        if not raw:
            return [(self._raw, *EMPTY, "peak"), (self._smooth, *EMPTY, mode)]
        return [(self._raw, x, raw[0], "peak"), (self._smooth, x, smooth[0], mode)]
