"""The meta-loss over meta-iterations: the shown run raw and smoothed, compared runs smoothed."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from ..overlays import Overlay, run_color
from ..runs import History
from .history_plot import EMPTY, HistoryPlot, light, set_pen
from .plot_base import short_name
from .plot_colors import PALETTE


class LossPlot(HistoryPlot):
    """Meta-loss vs iteration of a run's ``History``, raw (light) and smoothed, with other runs overlaid."""

    def __init__(self, parent: QWidget | None = None, title: str = "Meta-training loss", y_label: str = "query loss (MSE)"):
        super().__init__(title, y_label, parent)
        self._raw = self.plot.plot(pen=pg.mkPen(light(PALETTE[0]), width=1))
        self._smooth = self.plot.plot(pen=pg.mkPen(PALETTE[0], width=2))
        self._own: History | None = None

    def set_overlays(self, overlays: Sequence[Overlay]) -> None:
        """Compared runs (see :meth:`HistoryPlot.set_overlays`). Entries may still be the old
        ``(name, iterations, losses)`` tuples, coloured by their position, until the window passes
        ``Overlay`` objects."""
        super().set_overlays([entry if isinstance(entry, Overlay) else _legacy_overlay(i, *entry)
                              for i, entry in enumerate(overlays)])

    def append(self, iterations, losses) -> None:
        """The old way in, kept until the window hands the plot its run's ``History``: rows go to a
        ``History`` of the plot's own (so they are stored twice)."""
        if self._own is None or self._history is not self._own:
            self._own = History()
            self.set_history(self._own, self._name, self._color)
        n = len(np.atleast_1d(iterations))
        nan = np.full(n, np.nan)
        self._own.append(np.atleast_1d(iterations), np.reshape(losses, n), nan, nan, np.empty((n, 0)))
        self.refresh()

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


def _legacy_overlay(index: int, name, iterations, losses) -> Overlay:
    history = History()
    n = len(iterations)
    nan = np.full(n, np.nan)
    history.append(np.asarray(iterations), np.asarray(losses, float), nan, nan, np.empty((n, 0)))
    return Overlay(str(name), run_color(index + 1), history)
