"""The plots' legends: compact, painted from a pixmap cache, hidden while empty, laid out in a row
(or a few) that stays inside its view; names are cut short."""

from __future__ import annotations

from typing import Sequence

import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import QGraphicsItem

PIXEL_CACHE = QGraphicsItem.CacheMode.DeviceCoordinateCache   # axes and legends paint from a pixmap

LEGEND_MARGIN = 8    # px between a legend and the edges of its view
LEGEND_COLUMNS = 4   # at most, as many as fit
NAME_LENGTH = 28     # legend names are cut to this many characters


class Legend(pg.LegendItem):
    """A compact legend on a translucent white card, painted from pixmap caches.

    It hides itself while it has no entries, or while its plot says there is nothing to label
    (``set_wanted(False)``), so empty plots show no empty box. The user can drag it off the data
    (``dragged``; ``moved`` then says so) and :meth:`put_back` returns it to the top right.
    """

    dragged = Signal()
    moved = False

    def __init__(self, offset=(-LEGEND_MARGIN, LEGEND_MARGIN)):
        super().__init__(offset=offset, brush=(255, 255, 255, 200), pen=(200, 200, 200),
                         labelTextSize="8pt", horSpacing=2, verSpacing=-7)
        self.layout.setContentsMargins(4, 0, 6, 0)
        self.setCacheMode(PIXEL_CACHE)
        self.setToolTip("Drag the legend off the data; Reset view puts it back")
        self._wanted = True
        self._sync()

    def mouseDragEvent(self, ev):
        super().mouseDragEvent(ev)
        if ev.button() == Qt.MouseButton.LeftButton:
            self.moved = True
            if ev.isFinish():
                self._keep_inside()
                self.dragged.emit()

    def _keep_inside(self) -> None:
        """Never dropped (partly) outside its view, which clips it."""
        parent = self.parentItem()
        if parent is None:
            return
        rect, room = self.mapRectToParent(self.boundingRect()), parent.boundingRect()
        dx = max(room.left() - rect.left(), 0.0) + min(room.right() - rect.right(), 0.0)
        dy = max(room.top() - rect.top(), 0.0) + min(room.bottom() - rect.bottom(), 0.0)
        if dx or dy:
            self.autoAnchor(self.pos() + QPointF(dx, dy))

    def put_back(self) -> None:
        """At the top right of the view again (where the plots leave room for it above the data)."""
        self.anchor(itemPos=(1, 0), parentPos=(1, 0), offset=(-LEGEND_MARGIN, LEGEND_MARGIN))
        if self.moved:
            self.moved = False
            self.dragged.emit()

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

    def fit_columns(self, width: float, most: int = LEGEND_COLUMNS) -> None:
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


def short_name(name: str, length: int = NAME_LENGTH) -> str:
    """A run name as a legend shows it: long ones end in "…" (the run list has them in full)."""
    return name if len(name) <= length else name[:length - 1].rstrip() + "…"
