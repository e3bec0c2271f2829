"""The runs of this session: a table to compare, rename and drop them.

Ticking a run compares it on every plot; the list only reports *which* runs are ticked
(``overlay_changed``) and leaves the data to its owner, so it stays a plain view. Each name
carries a swatch of the run's colour on the plots.
"""

from __future__ import annotations

from typing import Any, Hashable

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QMenu, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from ..overlays import run_color

NAME, ALGORITHM, ITERATIONS, LOSS = range(4)
ID_ROLE = Qt.ItemDataRole.UserRole


class RunList(QWidget):
    """Table of runs (name, algorithm, iterations, final loss); names are checkable and editable."""

    overlay_changed = Signal(list)   # run ids ticked for overlay, in table order
    renamed = Signal(object, str)    # run id, new name
    deleted = Signal(object)         # run id
    selected = Signal(object)        # run id chosen by the user (it becomes the current run)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Run", "Algorithm", "Iterations", "Final loss"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        for column in (ALGORITHM, ITERATIONS, LOSS):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setToolTip("Tick runs to compare them on every plot (each in the colour of its swatch); "
                                 "double-click a name to rename it.")
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._on_context_menu)
        self.table.itemChanged.connect(self._on_item_changed)

        self._delete = QPushButton("Delete")
        self._delete.setToolTip("Remove the selected run from this list (Del).")
        self._delete.clicked.connect(self._on_delete_selected)
        self._delete.setEnabled(False)
        self.table.itemSelectionChanged.connect(self._on_selection)
        QShortcut(QKeySequence.StandardKey.Delete, self.table, activated=self._on_delete_selected,
                  context=Qt.ShortcutContext.WidgetShortcut)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self._delete)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        self._checked: list[Hashable] = []
        self._names: dict[Hashable, str] = {}

    # ------------------------------------------------------------------ public API
    def add_run(self, run_id: Hashable, name: str, algorithm: str, color: str | None = None) -> None:
        """Append a run (unticked); adding an existing id only renames it. Its name shows a swatch of
        ``color``, by default its :func:`~maml_gui.overlays.run_color` (the colour it has on the plots)."""
        if run_id in self._names:
            self.rename_run(run_id, name)
            return
        row = self.table.rowCount()
        self.table.blockSignals(True)
        self.table.insertRow(row)
        item = QTableWidgetItem(name)
        item.setData(ID_ROLE, run_id)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEditable)
        item.setCheckState(Qt.CheckState.Unchecked)
        item.setData(Qt.ItemDataRole.DecorationRole, QColor(color or _default_color(run_id, row)))
        self.table.setItem(row, NAME, item)
        for column, text in ((ALGORITHM, algorithm), (ITERATIONS, "0"), (LOSS, "–")):
            cell = QTableWidgetItem(text)
            cell.setFlags(cell.flags() & ~Qt.ItemFlag.ItemIsEditable)
            if column != ALGORITHM:
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, column, cell)
        self.table.blockSignals(False)
        self._names[run_id] = name

    def update_run(self, run_id: Hashable, iterations: int, final_loss: float | None) -> None:
        row = self._row(run_id)
        self.table.item(row, ITERATIONS).setText(f"{int(iterations):,}")
        self.table.item(row, LOSS).setText("–" if final_loss is None else f"{final_loss:.4g}")

    def set_color(self, run_id: Hashable, color: str) -> None:
        """The swatch of a run, when the plots give it another colour than its default."""
        self.table.blockSignals(True)
        self.table.item(self._row(run_id), NAME).setData(Qt.ItemDataRole.DecorationRole, QColor(color))
        self.table.blockSignals(False)

    def color(self, run_id: Hashable) -> str:
        """The swatch's colour as "#rrggbb"."""
        return self.table.item(self._row(run_id), NAME).data(Qt.ItemDataRole.DecorationRole).name()

    def checked(self) -> list:
        """Run ids ticked for overlay, in table order."""
        return list(self._checked)

    def set_checked(self, run_id: Hashable, on: bool) -> None:
        state = Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
        self.table.item(self._row(run_id), NAME).setCheckState(state)

    def rename_run(self, run_id: Hashable, name: str) -> None:
        self.table.item(self._row(run_id), NAME).setText(name)

    def remove_run(self, run_id: Hashable, notify: bool = True) -> None:
        """Drop a row; ``notify=False`` when the owner removed the run already (no ``deleted``)."""
        row = self._row(run_id)
        was_checked = run_id in self._checked
        self.table.removeRow(row)
        del self._names[run_id]
        if notify:
            self.deleted.emit(run_id)
        if was_checked:
            self._sync_checked()

    def name(self, run_id: Hashable) -> str:
        return self._names[run_id]

    def run_ids(self) -> list:
        return [self.table.item(r, NAME).data(ID_ROLE) for r in range(self.table.rowCount())]

    # ------------------------------------------------------------------ events
    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != NAME:
            return
        run_id, text = item.data(ID_ROLE), item.text().strip()
        if not text:  # an empty name is not a name: put the old one back
            item.setText(self._names[run_id])
            return
        if text != self._names[run_id]:
            self._names[run_id] = text
            self.renamed.emit(run_id, text)
            if run_id in self._checked:
                self.overlay_changed.emit(self.checked())  # the legend shows names
        self._sync_checked()

    def _sync_checked(self) -> None:
        ticked = [self.table.item(r, NAME).data(ID_ROLE) for r in range(self.table.rowCount())
                  if self.table.item(r, NAME).checkState() == Qt.CheckState.Checked]
        if ticked != self._checked:
            self._checked = ticked
            self.overlay_changed.emit(self.checked())

    def select_run(self, run_id: Hashable | None) -> None:
        """Show ``run_id`` as the selected row (None: no row), without emitting ``selected``."""
        self.table.blockSignals(True)
        try:
            self.table.clearSelection()
            self.table.setCurrentIndex(QModelIndex())   # or removing a row would select its neighbour
            if run_id is not None and run_id in self._names:
                self.table.selectRow(self._row(run_id))
        finally:
            self.table.blockSignals(False)
        self._delete.setEnabled(self._selected() is not None)

    def _on_selection(self) -> None:
        run_id = self._selected()
        self._delete.setEnabled(run_id is not None)
        if run_id is not None:
            self.selected.emit(run_id)

    def _on_delete_selected(self) -> None:
        run_id = self._selected()
        if run_id is not None:
            self.remove_run(run_id)

    def _on_context_menu(self, pos) -> None:
        item = self.table.itemAt(pos)
        if item is None:
            return
        name_item = self.table.item(item.row(), NAME)
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.table.editItem(name_item))
        menu.addAction("Delete", lambda: self.remove_run(name_item.data(ID_ROLE)))
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def _selected(self) -> Any:
        rows = {index.row() for index in self.table.selectedIndexes()}
        return self.table.item(rows.pop(), NAME).data(ID_ROLE) if rows else None

    def _row(self, run_id: Hashable) -> int:
        for row in range(self.table.rowCount()):
            if self.table.item(row, NAME).data(ID_ROLE) == run_id:
                return row
        raise KeyError(f"no run {run_id!r} in the list")


def _default_color(run_id: Hashable, row: int) -> str:
    """A run id that is a number picks its colour; any other id, its row."""
    return run_color(run_id if isinstance(run_id, int) else row + 1)
