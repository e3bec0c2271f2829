"""Axes of the plots: log-scale labels that never pile up, durations or clock times on a time axis, and the width
an axis label takes (so a plot can shorten a label that would be cut)."""

from __future__ import annotations

import html
import math

import pyqtgraph as pg
from PySide6.QtGui import QFontMetricsF, QTextDocument

from maml_gui.widgets.plot_math import TIME_STEPS, format_duration, time_tick_spacing

MANTISSA_ORDER = (1, 5, 2, 3, 4, 6, 7, 8, 9)   # which minor log ticks get a label first, room allowing


class LogAxis(pg.AxisItem):
    """An axis whose log-scale labels never print over one another.

    pyqtgraph labels every minor tick of a log axis (2, 3, … 9 × 10ⁿ) in a range of a decade or
    two: in a short plot they pile up. Here a minor tick keeps its label only where it has a text
    line of room from every label kept before it, taken in the order 1, 5, 2, 3, 4, 6, … (the
    decades first); the ticks and the grid stay. Linear axes are pyqtgraph's.
    """

    _length = 0.0

    def tickValues(self, minVal, maxVal, size):
        self._length = size   # the axis' length in pixels, which the labels are placed along
        return super().tickValues(minVal, maxVal, size)

    def logTickStrings(self, values, scale, spacing):
        strings = super().logTickStrings(values, scale, spacing)
        lo, hi = sorted(self.range)
        if spacing is not None or len(values) < 2 or hi <= lo or self._length <= 0:
            return strings   # a level of whole decades: pyqtgraph spaces those itself
        per_unit = self._length / (hi - lo)
        room = QFontMetricsF(self.style.get("tickFont") or self.font()).height() + 2
        listed = {round(v, 6) for v in values}
        kept = [d for d in range(math.ceil(lo), math.floor(hi) + 1) if round(d, 6) not in listed]   # other levels' decades

        def mantissa(v: float) -> int:
            return round(10 ** (v - math.floor(v + 1e-9)))

        order = sorted(range(len(values)), key=lambda i: (MANTISSA_ORDER.index(mantissa(values[i]))
                                                          if mantissa(values[i]) in MANTISSA_ORDER else 9, values[i]))
        shown = set()
        for i in order:
            if all(abs(values[i] - k) * per_unit >= room for k in kept):
                kept.append(values[i])
                shown.add(i)
        return [text if i in shown else "" for i, text in enumerate(strings)]


class TimeAxis(pg.DateAxisItem):
    """A bottom axis for meta-iterations (pyqtgraph's plain ticks), durations (``mode`` "durations":
    "45 s", "2:30", "1:05:00" at clock-friendly spacings: 30 s, 5 min, 1 h …) or clock times (``mode``
    "dates": seconds since the epoch as dates and times of day in local time, pyqtgraph's
    :class:`~pyqtgraph.DateAxisItem`)."""

    mode = "values"

    @property
    def durations(self) -> bool:
        return self.mode == "durations"

    def linkToView(self, view):
        self._linkToView_internal(view)   # no date limits on the view: iterations use the same axis

    def tickSpacing(self, minVal, maxVal, size):
        if self.mode != "durations" or self.logMode or not maxVal > minVal:
            return pg.AxisItem.tickSpacing(self, minVal, maxVal, size)
        step = time_tick_spacing(minVal, maxVal, size)
        if step == TIME_STEPS[0] and maxVal - minVal < 2 * step:   # under a couple of seconds: decimal ticks
            return pg.AxisItem.tickSpacing(self, minVal, maxVal, size)
        return [(step, 0.0)]

    def tickValues(self, minVal, maxVal, size):
        if self.mode == "dates" and not self.logMode and hasattr(self, "fontMetrics"):
            return super().tickValues(minVal, maxVal, size)
        return pg.AxisItem.tickValues(self, minVal, maxVal, size)

    def tickStrings(self, values, scale, spacing):
        if self.logMode or self.mode == "values" or (self.mode == "dates" and not hasattr(self, "fontMetrics")):
            return pg.AxisItem.tickStrings(self, values, scale, spacing)
        if self.mode == "dates":
            return super().tickStrings(values, scale, spacing)
        if spacing is not None and 0 < spacing * scale < 1:   # a run of a few seconds: "0.25 s"
            decimals = min(6, max(1, -math.floor(math.log10(spacing * scale))))
            return [f"{v * scale:.{decimals}f} s" for v in values]
        return [format_duration(v * scale) for v in values]


def label_width(axis: pg.AxisItem, text: str) -> float:
    """The width ``axis`` would give its label ``text`` (as pyqtgraph lays it out: styled HTML in a
    text item with the document's margins)."""
    style = ";".join(f"{k}: {v}" for k, v in axis.labelStyle.items())
    doc = QTextDocument()
    doc.setDefaultFont(axis.label.font())
    doc.setDocumentMargin(axis.label.document().documentMargin())
    doc.setHtml(f"<span style='{style}'>{html.escape(text)}</span>")
    return doc.size().width()
