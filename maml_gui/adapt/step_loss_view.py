"""The loss after each adaptation step: a small (log-scale) plot and the exact numbers in a table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QHeaderView, QTableWidget, QTableWidgetItem, QTabWidget,
                               QWidget)

from maml_gui.widgets.plot_axes import LogAxis
from maml_gui.widgets.plot_base import style_plot
from maml_gui.widgets.plot_legend import add_legend
from maml_gui.widgets.plot_colors import PALETTE

if TYPE_CHECKING:
    from maml_gui.adapt.task import AdaptOutcome


class StepLossView(QTabWidget):
    """The loss after each step: a small plot and the exact numbers in a table."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = pg.PlotWidget(axisItems={"left": LogAxis("left")})
        style_plot(self.plot, "", "adaptation steps", "loss")
        self.plot.setMinimumHeight(140)
        self._legend = add_legend(self.plot)
        self._support = self.plot.plot(pen=pg.mkPen(PALETTE[0], width=2), symbol="o", symbolSize=6,
                                       symbolBrush=PALETTE[0], symbolPen=None, name="support (the K points)")
        self._query = self.plot.plot(pen=pg.mkPen(PALETTE[1], width=2), symbol="s", symbolSize=6,
                                     symbolBrush=PALETTE[1], symbolPen=None, name="query (held-back points)")
        self.table = QTableWidget(0, 3)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.addTab(self.plot, "Loss per step")
        self.addTab(self.table, "Table")
        self.log_scale = QCheckBox("log scale")
        self.log_scale.setToolTip("Losses often fall by orders of magnitude in the first steps")
        self.log_scale.toggled.connect(lambda on: self.plot.setLogMode(y=on))
        self.log_scale.setChecked(True)
        self.setCornerWidget(self.log_scale)

    def show_result(self, outcome: AdaptOutcome, loss_name: str) -> None:
        r = outcome.result
        steps = np.arange(len(r.support_losses), dtype=float)
        self.plot.setLabel("left", f"loss ({loss_name})")
        self._support.setData(steps, np.asarray(r.support_losses, dtype=float))
        self._legend.removeItem(self._query)
        if r.query_losses is not None:
            self._query.setData(steps, np.asarray(r.query_losses, dtype=float))
            self._query.show()
            self._legend.addItem(self._query, "query (held-back points)")
        else:
            self._query.setData([], [])
            self._query.hide()
        columns = ["step", "support loss"] + (["query loss"] if r.query_losses is not None else []) \
            + (["query accuracy"] if r.query_accuracy is not None else [])
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels(columns)
        self.table.setRowCount(len(steps))
        for s in range(len(steps)):
            values = [str(s), f"{r.support_losses[s]:.6g}"]
            if r.query_losses is not None:
                values.append(f"{r.query_losses[s]:.6g}")
            if r.query_accuracy is not None:
                values.append(f"{r.query_accuracy[s]:.1%}")
            for c, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(s, c, item)

    def clear(self) -> None:
        self._support.setData([], [])
        self._query.setData([], [])
        self.table.setRowCount(0)

    def data(self) -> dict:
        """{"support": (steps, losses), "query": (steps, losses)} as drawn (empty arrays when absent)."""
        def xy(curve):
            return (np.empty(0), np.empty(0)) if curve.xData is None else (curve.xData, curve.yData)

        return {"support": xy(self._support), "query": xy(self._query)}
