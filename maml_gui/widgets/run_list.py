"""The runs of this session: a table to compare, rename, annotate, sort and drop them.

Ticking a run compares it on every plot; the list only reports *which* runs are ticked
(``overlay_changed``) and leaves the data to its owner, so it stays a plain view. Each name
carries a swatch of the run's colour on the plots. Beside the scores stand the settings runs
differ by (TensorBoard's hyper-parameter table); any column sorts on a click of its header, by
value, and a run's state ("following", "completed"…) has a column of its own, so it is never
part of the run's name.
"""

from __future__ import annotations

from typing import Any, Hashable

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QMenu, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from maml_gui.session.overlays import run_color

NAME, ALGORITHM, ITERATIONS, LOSS, HELD_OUT, STATUS = range(6)
HYPER = ("inner lr", "steps", "meta lr", "K", "traj.", "batch", "outer", "max KL", "seed")   # keys of runs.hyperparameters
SUPERVISED_ONLY = ("K",)                      # shown while a supervised run is listed
RL_ONLY = ("traj.", "outer", "max KL")        # shown while a meta-RL run is listed
TIPS = {"Held-out": "After adapting to held-out tasks (the last step): query accuracy, query MSE, or average "
                    "return (meta-RL, higher is better)",
        "Status": "running, paused, following (another process writes it), completed, stopped, interrupted…",
        "inner lr": "Inner learning rate", "steps": "Inner steps (adaptation steps while training)",
        "meta lr": "Meta learning rate (meta-RL: the clipped-surrogate outer step's; TRPO's step has none)",
        "K": "Shots: support examples per task (per class for classification)",
        "traj.": "Meta-RL: trajectories sampled per task for each inner step and for the meta-objective",
        "outer": "Meta-RL: the outer step (trpo: a trust region bounded by max KL; ppo: a clipped surrogate "
                 "at the meta lr)",
        "max KL": "Meta-RL, TRPO: the bound on the KL divergence of one outer step",
        "batch": "Meta-batch: tasks per meta-iteration", "seed": "Random seed",
        "Note": "Your note about the run (double-click to write); saved with the project"}
LOSS_TIPS = {"loss": "The last meta-iteration's meta-loss (lower is better)",
             "return": "The last meta-iteration's meta-return: the adapted policies' average return "
                       "(higher is better)"}
NOTE_WIDTH = 220
NAME_WIDTH = (140, 280)   # px the name column takes: fitted to the names, within these bounds
NOTE = STATUS + 1 + len(HYPER)
HEADERS = ["Run", "Algorithm", "Iterations", "Final loss", "Held-out", "Status", *HYPER, "Note"]   # cell()'s keys
ID_ROLE = Qt.ItemDataRole.UserRole
SORT_ROLE = Qt.ItemDataRole.UserRole + 1   # what a column sorts by (numbers as numbers)


class _Cell(QTableWidgetItem):
    """Sorts by its ``SORT_ROLE`` value (else its text): "1,500" after "900", empty cells last."""

    def __lt__(self, other) -> bool:
        mine, theirs = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if mine is None or theirs is None or isinstance(mine, str) != isinstance(theirs, str):
            mine, theirs = self.text().lower(), other.text().lower()
            return (mine in ("–", ""), mine) < (theirs in ("–", ""), theirs)
        return mine < theirs


def _number(value) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


class RunList(QWidget):
    """Table of runs (name, algorithm, iterations, scores, state, settings, note); names are
    checkable, names and notes editable."""

    overlay_changed = Signal(list)   # run ids ticked for overlay, in table order
    renamed = Signal(object, str)    # run id, new name
    noted = Signal(object, str)      # run id, its new note
    deleted = Signal(object)         # run id
    selected = Signal(object)        # run id chosen by the user (it becomes the current run)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Interactive)
        for column in range(ALGORITHM, NOTE):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)   # the note takes what is left, and at least NOTE_WIDTH
        header.resizeSection(NOTE, NOTE_WIDTH)
        self.table.setWordWrap(False)   # one line a run: a long note ends in "…" (its tooltip has it all)
        for column, title in enumerate(HEADERS):
            if title in TIPS:
                self.table.horizontalHeaderItem(column).setToolTip(TIPS[title])
        header.setSectionsMovable(True)
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)   # creation order until a header is clicked
        self.table.setSortingEnabled(True)
        self.table.setToolTip("Tick runs to compare them on every plot (each in the colour of its swatch); "
                              "double-click a name to rename it or a note to write one; click a column's "
                              "header to sort by it.")
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
        self._notes: dict[Hashable, str] = {}
        self._rl: dict[Hashable, bool] = {}   # whether each run is a meta-RL run
        self._show_kinds()

    # ------------------------------------------------------------------ public API
    def add_run(self, run_id: Hashable, name: str, algorithm: str, color: str | None = None,
                hyper: dict | None = None, note: str = "", rl: bool = False, unused: dict | None = None) -> None:
        """Append a run (unticked); adding an existing id only renames it. Its name shows a swatch of
        ``color``, by default its :func:`~maml_gui.session.overlays.run_color` (the colour it has on the plots);
        ``hyper`` holds its settings by the names in :data:`HYPER` (one left out: a blank cell, whose
        tooltip is ``unused[name]``, why it means nothing for this run); ``rl``: a meta-RL run, whose
        final score is a return, not a loss."""
        if run_id in self._names:
            self.rename_run(run_id, name)
            return
        self.table.setSortingEnabled(False)   # or the row moves while its cells are filled in
        row = self.table.rowCount()
        self.table.blockSignals(True)
        self.table.insertRow(row)
        item = _Cell(name)
        item.setData(ID_ROLE, run_id)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEditable)
        item.setCheckState(Qt.CheckState.Unchecked)
        item.setData(Qt.ItemDataRole.DecorationRole, QColor(color or _default_color(run_id, row)))
        self.table.setItem(row, NAME, item)
        hyper = hyper or {}
        cells = [(ALGORITHM, algorithm, None), (ITERATIONS, "0", 0), (LOSS, "–", None), (HELD_OUT, "–", None),
                 (STATUS, "", None)]
        cells += [(STATUS + 1 + i, _number(hyper.get(key)), hyper.get(key)) for i, key in enumerate(HYPER)]
        unused = unused or {}
        for column, text, value in cells:
            cell = _Cell(text)
            cell.setData(SORT_ROLE, value)
            if column > STATUS and value is None and HEADERS[column] in unused:
                cell.setToolTip(unused[HEADERS[column]])
            cell.setFlags(cell.flags() & ~Qt.ItemFlag.ItemIsEditable)
            if column not in (ALGORITHM, STATUS):
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, column, cell)
        note_cell = _Cell(note)
        note_cell.setToolTip(note)
        self.table.setItem(row, NOTE, note_cell)
        self.table.blockSignals(False)
        self._names[run_id] = name
        self._notes[run_id] = note
        self._rl[run_id] = rl
        self.table.item(row, LOSS).setToolTip(LOSS_TIPS["return" if rl else "loss"])
        self.table.setSortingEnabled(True)
        self._fit_names()
        self._show_kinds()

    def _show_kinds(self) -> None:
        """Headers and columns for the kinds of run listed: "Final loss", "Final return", or both (each
        score then says which it is); the shots column while a supervised run is listed, the meta-RL
        settings while a meta-RL run is."""
        kinds = set(self._rl.values())
        mixed = kinds == {True, False}
        title = "Final loss / return" if mixed else "Final return" if kinds == {True} else "Final loss"
        header = self.table.horizontalHeaderItem(LOSS)
        header.setToolTip("\n".join(LOSS_TIPS[k] for k in ("loss", "return")) if mixed
                          else LOSS_TIPS["return" if kinds == {True} else "loss"])
        supervised, rl = False in kinds or not kinds, True in kinds   # an empty list: a supervised one's columns
        for key in (*SUPERVISED_ONLY, *RL_ONLY):
            self.table.setColumnHidden(HEADERS.index(key), not (rl if key in RL_ONLY else supervised))
        if header.text() != title:
            header.setText(title)
            for run_id in self._names:
                self._show_score(self.table.item(self._row(run_id), LOSS), run_id)

    def _show_score(self, cell: QTableWidgetItem, run_id: Hashable) -> None:
        """The final score's text: labelled "loss" or "return" while both kinds of run are listed."""
        value = cell.data(SORT_ROLE)
        text = "–" if value is None else f"{value:.4g}"
        if value is not None and len(set(self._rl.values())) == 2:
            text = f"{'return' if self._rl[run_id] else 'loss'} {text}"
        blocked = self.table.blockSignals(True)
        cell.setText(text)
        self.table.blockSignals(blocked)

    def _fit_names(self) -> None:
        self.table.resizeColumnToContents(NAME)
        self.table.setColumnWidth(NAME, min(max(self.table.columnWidth(NAME), NAME_WIDTH[0]), NAME_WIDTH[1]))

    def update_run(self, run_id: Hashable, iterations: int, final_loss: float | None,
                   held_out: tuple[float, str] | None = None, status: str | None = None) -> None:
        """The row's numbers; ``held_out`` is (score, "mse" | "accuracy") after adapting to held-out tasks."""
        row = self._row(run_id)   # every cell first: a sorted table moves the row as soon as one changes
        cells = {c: self.table.item(row, c) for c in (ITERATIONS, LOSS, HELD_OUT, STATUS)}
        self.table.blockSignals(True)
        try:
            cells[ITERATIONS].setData(SORT_ROLE, int(iterations))
            cells[ITERATIONS].setText(f"{int(iterations):,}")
            cells[LOSS].setData(SORT_ROLE, final_loss)
            self._show_score(cells[LOSS], run_id)
            if held_out is not None:
                score, metric = held_out
                cells[HELD_OUT].setData(SORT_ROLE, score)
                cells[HELD_OUT].setText(f"{score:.1%}" if metric == "accuracy" else f"{score:.4g}")
                what = {"accuracy": "query accuracy", "return": "average return (higher is better)"}.get(metric, "query MSE")
                cells[HELD_OUT].setToolTip(f"{what} after the last adaptation step, on held-out tasks")
            if status is not None:
                cells[STATUS].setText(status)
        finally:
            self.table.blockSignals(False)

    def set_note(self, run_id: Hashable, note: str) -> None:
        """Show ``note`` (without emitting ``noted``)."""
        item = self.table.item(self._row(run_id), NOTE)
        self.table.blockSignals(True)
        item.setText(note)
        item.setToolTip(note)
        self.table.blockSignals(False)
        self._notes[run_id] = note

    def note(self, run_id: Hashable) -> str:
        return self._notes[run_id]

    def status(self, run_id: Hashable) -> str:
        return self.table.item(self._row(run_id), STATUS).text()

    def cell(self, run_id: Hashable, header: str) -> str:
        """The text in ``run_id``'s row under the column titled ``header``."""
        return self.table.item(self._row(run_id), HEADERS.index(header)).text()

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
        """Show ``name``; ``renamed`` follows, as after an edit (the owner's own name: it ignores it)."""
        item = self.table.item(self._row(run_id), NAME)
        if item.text() != name:
            item.setText(name)
            self._fit_names()

    def remove_run(self, run_id: Hashable, notify: bool = True) -> None:
        """Drop a row; ``notify=False`` when the owner removed the run already (no ``deleted``)."""
        row = self._row(run_id)
        was_checked = run_id in self._checked
        self.table.removeRow(row)
        del self._names[run_id]
        self._notes.pop(run_id, None)
        self._rl.pop(run_id, None)
        self._show_kinds()
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
        if item.column() == NOTE:
            run_id = self.table.item(item.row(), NAME).data(ID_ROLE)
            if item.text() != self._notes.get(run_id):
                self._notes[run_id] = item.text()
                item.setToolTip(item.text())
                self.noted.emit(run_id, item.text())
            return
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
                row = self._row(run_id)
                self.table.selectRow(row)
                self.table.scrollToItem(self.table.item(row, NAME))   # a new current run is seen
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
        menu.addAction("Edit note", lambda: self.table.editItem(self.table.item(name_item.row(), NOTE)))
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
