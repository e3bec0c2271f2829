"""The query loss after each inner step over meta-iterations: the gap between curves is what adaptation buys."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from maml_gui.session.overlays import Overlay
from .history_plot import EMPTY, HistoryPlot
from .plot_colors import BEFORE_STYLE, PALETTE, light, set_pen


def step_name(s: int) -> str:
    return "before adaptation" if s == 0 else f"after {s} step{'s' * (s > 1)}"


def step_pens(color: str, columns: int) -> list[tuple[object, Qt.PenStyle]]:
    """(colour, style) of the curves after 0..N inner steps of a run drawn in ``color``: dotted before
    adaptation, then solid from a light shade of the colour to the colour itself after the last step,
    so every curve of the run is in its run-list colour and the darkest is the adapted one."""
    pens = [(light(color, 0.0), BEFORE_STYLE)]
    for s in range(1, columns):
        amount = 0.55 * (columns - 1 - s) / max(columns - 2, 1)
        pens.append((light(color, amount), Qt.PenStyle.SolidLine))
    return pens[:columns]


class StepLossPlot(HistoryPlot):
    """Smoothed query loss after inner step s = 0..N of the shown run's ``History``, all in the run's
    colour (dotted before adaptation, solid and darker with each step); a compared run is one solid
    curve in its colour: its loss after all its inner steps. The line style says before or after
    adaptation, the colour which run; the legend says both."""

    overlay_style = Qt.PenStyle.SolidLine   # adapted, as the shown run's solid curves

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Query loss after each inner step", "query loss (MSE, smoothed)", parent)
        self._curves: list[pg.PlotDataItem] = []

    def data(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """One (iterations, smoothed loss) pair per inner step of the shown run, as handed to the plot."""
        return [self._series.get(c, EMPTY) for c in self._curves]

    def _values(self, history) -> np.ndarray:
        return history.step_losses

    def _overlay_values(self, history) -> np.ndarray | None:
        steps = history.step_losses
        return steps[:, -1] if steps.shape[1] else None

    def _overlay_label(self, overlay: Overlay) -> str:
        steps = overlay.history.step_losses.shape[1] - 1 if overlay.history is not None and len(overlay.history) else 0
        label = super()._overlay_label(overlay)
        return f"{label} · {step_name(steps)}" if steps > 0 else label

    def _columns_changed(self, columns: int) -> None:
        for curve in self._curves:
            self.plot.removeItem(curve)
            self._forget(curve)
        self._curves = [self.plot.plot() for _ in range(columns)]
        self._style_main(self._color)
        self.legend.clear()   # its samples are pictures of the old pens
        self._sync_legend()

    def _style_main(self, color: str | None) -> bool:
        changed = False
        for curve, (shade, style) in zip(self._curves, step_pens(color or PALETTE[0], len(self._curves))):
            changed |= set_pen(curve, shade, 2, style)
        return changed

    def _legend_main(self) -> list:
        # a legend for 100 steps would hide the plot: the first, second and last, the ramp implies the rest
        n = len(self._curves)
        return [(self._curves[s], step_name(s)) for s in sorted({0, 1, n - 1}) if 0 <= s < n]

    def _main_draws(self, x, raw, smooth, mode) -> list:
        if len(smooth) != len(self._curves):   # no history: empty every curve
            return [(curve, *EMPTY, mode) for curve in self._curves]
        return [(curve, x, smooth[s], mode) for s, curve in enumerate(self._curves)]
