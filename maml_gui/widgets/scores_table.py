"""Held-out scores of the compared runs as numbers: mean ± 95% CI per run and adaptation step.

The adaptation plot shows the shapes; this table gives the values to quote, copy (tab-separated,
for a spreadsheet) or export as CSV. Rows are runs (with their colour), columns adaptation steps.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from maml_gui.session.overlays import Overlay
from .adaptation_plot import compared_series

EMPTY_HINT = "Tick runs in the Runs list to compare their held-out scores here."
APART_COLOR = "#777"


def _cell(mean: float, ci: float, metric: str) -> str:
    """Mean ± CI with as many decimals as the CI's first two significant digits need."""
    if not math.isfinite(mean):
        return "diverged"
    scale = 100 if metric == "accuracy" else 1
    unit = "%" if metric == "accuracy" else ""
    if not (math.isfinite(ci) and ci > 0):
        return f"{mean * scale:.4g}{unit} ± {ci * scale:.2g}{unit}"
    decimals = min(max(1 - math.floor(math.log10(ci * scale)), 0), 8)
    return f"{mean * scale:.{decimals}f}{unit} ± {ci * scale:.{decimals}f}{unit}"


class ScoresTable(QWidget):
    """Rows: runs (name with a colour swatch); columns: adaptation steps; cells: mean ± 95% CI of
    each run's meta-learned initialisation on its held-out tasks (loss, or accuracy for classifiers)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.table = QTableWidget(0, 1)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ContiguousSelection)
        self.table.verticalHeader().hide()
        self.caption = QLabel(EMPTY_HINT)
        self.caption.setStyleSheet("color: #555;")
        self.caption.setWordWrap(True)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the table to the clipboard, tab-separated (pastes into a spreadsheet).")
        self.copy_button.clicked.connect(self.copy)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setToolTip("Save the table as a CSV file: per run and step, the mean and its 95% CI half-width.")
        self.export_button.clicked.connect(lambda: self.export_csv())
        row = QHBoxLayout()
        row.setContentsMargins(4, 0, 4, 2)
        row.addWidget(self.caption, 1)
        row.addWidget(self.copy_button)
        row.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        self._rows: list[tuple[str, str, str, dict[int, tuple[float, float]]]] = []   # name, color, metric, {step: (mean, ci)}
        self._steps: list[int] = []
        self._apart: list[str] = []
        self._plotted = ""
        self.set_runs([])

    def set_runs(self, overlays: Sequence[Overlay], apart: Sequence[str] = (), plotted: str = "") -> None:
        """One row per run with an ``adaptation`` snapshot (others are left out), in the given order.
        ``apart``: names of compared runs the plots leave out, being of another kind than ``plotted``
        ("regression" or "classification"): their rows are greyed and the caption names them all."""
        self._apart, self._plotted = list(apart), plotted
        rows = []
        for overlay in overlays:
            series = compared_series(overlay.adaptation)
            if series is None:
                continue
            steps = np.asarray(overlay.adaptation.steps).astype(int).tolist()
            mean, ci = (np.asarray(a, dtype=float).tolist() for a in series)
            rows.append((overlay.name, overlay.color, overlay.adaptation.metric, dict(zip(steps, zip(mean, ci)))))
        self._rows = rows
        self._steps = sorted({s for *_, values in rows for s in values})
        self._fill()

    def not_plotted(self) -> list[str]:
        """The compared runs listed here but drawn on no plot (another kind of task)."""
        return list(self._apart)

    def rows(self) -> list[list[str]]:
        """The table as text, header first (what Copy puts on the clipboard)."""
        return [self._header()] + [[self.table.item(r, c).text() for c in range(self.table.columnCount())]
                                   for r in range(self.table.rowCount())]

    def to_csv(self, delimiter: str = ",") -> str:
        """Numbers in full: run, metric, then mean_s and ci95_s for each adaptation step s (empty where
        a run was not scored that far)."""
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
        writer.writerow(["run", "metric", *(f"{kind}_{s}" for s in self._steps for kind in ("mean", "ci95"))])
        for name, _, metric, values in self._rows:
            cells = [repr(v) if s in values else "" for s in self._steps for v in values.get(s, (None, None))]
            writer.writerow([name, metric, *cells])
        return buf.getvalue()

    def to_tsv(self) -> str:
        return self.to_csv(delimiter="\t")

    def copy(self) -> None:
        """The table to the clipboard, tab-separated."""
        QGuiApplication.clipboard().setText(self.to_tsv())

    def export_csv(self, path: str | Path | None = None) -> Path | None:
        """Write :meth:`to_csv` to ``path`` (asked for when None); returns the file written, or None."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export scores", "scores.csv", "CSV files (*.csv)")
            if not path:
                return None
        path = Path(path)
        path.write_text(self.to_csv(), encoding="utf-8")
        return path

    def _header(self) -> list[str]:
        return ["run"] + [f"{s} step{'s' * (s != 1)}" for s in self._steps]

    def _fill(self) -> None:
        table = self.table
        table.setRowCount(0)
        table.setColumnCount(1 + len(self._steps))
        table.setHorizontalHeaderLabels(self._header())
        table.setRowCount(len(self._rows))
        for r, (name, color, metric, values) in enumerate(self._rows):
            item = QTableWidgetItem(name)
            item.setData(Qt.ItemDataRole.DecorationRole, QColor(color))
            table.setItem(r, 0, item)
            for c, s in enumerate(self._steps, start=1):
                cell = QTableWidgetItem(_cell(*values[s], metric) if s in values else "–")
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                table.setItem(r, c, cell)
            if name in self._apart:
                self._mark_apart(r)
        table.resizeColumnsToContents()
        metrics = {metric for _, _, metric, _ in self._rows}
        if not self._rows:
            text = EMPTY_HINT if not self._apart else ""
        else:
            what = "query accuracy" if metrics == {"accuracy"} else "query loss" if metrics == {"mse"} else "score"
            text = (f"Meta-learned initialisation: {what} on held-out tasks after each number of "
                    "adaptation steps, mean ± 95% CI over the tasks.")
        self.caption.setText(" ".join(t for t in (text, self._apart_text()) if t))
        self.copy_button.setEnabled(bool(self._rows))
        self.caption.setToolTip(self._apart_text())
        self.export_button.setEnabled(bool(self._rows))

    def _apart_text(self) -> str:
        """Which compared runs the plots leave out, and why, in a line."""
        if not self._apart:
            return ""
        listed = {name for name, *_ in self._rows}
        other = {"regression": "classification runs (accuracy)", "rl": "supervised runs (losses, accuracy)"}.get(
            self._plotted, "regression runs (MSE)")
        axes = {"regression": "the plots' MSE axes", "classification": "the plots' accuracy and cross-entropy axes",
                "rl": "the plots' return axes"}
        text = f"Grey rows: {other}, not drawn on {axes.get(self._plotted, 'the plots')}."
        unscored = [n for n in self._apart if n not in listed]
        if unscored:
            text += f" Not plotted either (another kind of task, not scored yet): {', '.join(unscored)}."
        return text

    def _mark_apart(self, row: int) -> None:
        """Grey italic: this run is listed but drawn on no plot."""
        for c in range(self.table.columnCount()):
            item = self.table.item(row, c)
            item.setForeground(QColor(APART_COLOR))
            font = QFont(item.font())
            font.setItalic(True)
            item.setFont(font)
            item.setToolTip("Not plotted: another kind of task than the plots show, scored by another metric")
