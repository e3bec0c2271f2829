"""The CSV import dialog: preview, layout, columns, task kind, normalization, split — and why OK is off.

Reading the files and every re-check after a change run on a background thread (``job_runner``)
with a progress bar and Cancel. The engine (``CsvFamily``) does all the checking, so what the
dialog shows when it refuses is the engine's message (file, line, column, what to do). Shots and
query are set here too, since what a file keeps depends on them: OK stays off while no meta-train
task has shots + query rows. The dialog changes nothing in the window: the caller takes
:meth:`family_spec` and :meth:`shots_query` after ``accepted``.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QListWidget,
                               QProgressBar, QPushButton, QTableView, QVBoxLayout, QWidget)

from core.tasks.csv_family import CsvFamily

from maml_gui.importing.csv_choices import (Checked, Tables, check_choices, local_problem, read_tables, split_summary,
                                            tasks_kept)
from maml_gui.importing.csv_episodes import check_episodes, episode_problem, episodes_summary, labels_kept
from maml_gui.importing.csv_form import CsvForm
from maml_gui.importing.import_host import ImportDialogBase

CHECK_DEBOUNCE_MS = 120
PREVIEW_ROWS = 50
ROLE_COLORS = {"task": "#fdf0c2", "input": "#dbe9f8", "target": "#d5efcf"}


def describe_paths(paths: list[str]) -> str:
    names = [Path(p).name + ("/" if Path(p).is_dir() else "") for p in paths]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def common_folder(files: list[Path]) -> str:
    parents = {p.parent for p in files}
    return f"{parents.pop().name}/" if len(parents) == 1 else f"{len(parents)} folders"


# -- the dialog -------------------------------------------------------------------------------------
class CsvImportDialog(ImportDialogBase):
    """Choose how CSV files become tasks. ``updated`` fires each time the verdict (or a read error) is shown."""

    updated = Signal()

    def __init__(self, paths: list[str], params: dict[str, Any] | None = None, *, shots: int = 5, query: int = 10,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Import CSV data")
        self.paths = [str(Path(p).expanduser().resolve()) for p in paths]
        self._initial = dict(params or {})
        self._tables: Tables | None = None
        self._checked: Checked | None = None
        self._problem: str | None = "reading the files…"
        self._make_jobs("maml-csv", CHECK_DEBOUNCE_MS)
        self._build((shots, query))
        self.resize(1000, 760)
        paths = list(self.paths)   # the job holds no reference to the dialog
        self._runner.submit("read", lambda report: read_tables(paths, report))

    def _build(self, shots_query: tuple[int, int]) -> None:
        self.files_label = QLabel(f"Reading {describe_paths(self.paths)}…")
        self.files_label.setWordWrap(True)
        self.preview_file = QComboBox()
        self.preview_file.setToolTip("Which file the preview shows")
        self.preview_file_label = QLabel("preview:")
        for w in (self.preview_file, self.preview_file_label):
            w.hide()
        self.preview_file.currentIndexChanged.connect(self._fill_preview)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setFormat("reading… %p%")
        self.cancel_read_button = QPushButton("Cancel reading")
        self.cancel_read_button.clicked.connect(self.cancel_reading)
        self.model = QStandardItemModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(False)
        self.table.verticalHeader().setToolTip("line in the file")
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.setMinimumHeight(200)

        top = QHBoxLayout()
        top.addWidget(self.files_label, 1)
        top.addWidget(self.preview_file_label)
        top.addWidget(self.preview_file)
        reading = QHBoxLayout()
        reading.addWidget(self.progress_bar, 1)
        reading.addWidget(self.cancel_read_button)
        legend = QLabel("  ".join(f'<span style="background:{c}">&nbsp;{role}&nbsp;</span>'
                                  for role, c in ROLE_COLORS.items()) + f" · first {PREVIEW_ROWS} rows; "
                        "row numbers are lines in the file")
        legend.setStyleSheet("color: #555;")

        self.form = CsvForm(self.paths, *shots_query)   # the choices, and the rules between them
        self.form.changed.connect(self._on_choice)
        self.form.sizes_changed.connect(self._on_shots_query)
        self.split_label = QLabel()
        self.split_label.setWordWrap(True)
        self.split_label.setStyleSheet("font-weight: bold;")
        self.warnings_list = QListWidget()
        self.warnings_list.setWordWrap(True)
        self.warnings_list.setToolTip("Things that did not stop the import: skipped tasks, dropped rows, conversions")
        self._make_verdict_widgets("Use these tasks")
        self.result_box = QGroupBox("Result")
        side = QVBoxLayout(self.result_box)
        side.addWidget(self.split_label)
        side.addWidget(self.error_label)
        side.addWidget(QLabel("Warnings"))
        side.addWidget(self.warnings_list, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.form, 3)
        bottom.addWidget(self.result_box, 2)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(reading)
        layout.addWidget(self.table, 1)
        layout.addWidget(legend)
        layout.addLayout(bottom)
        layout.addWidget(self.buttons)

    # -- public ------------------------------------------------------------------------------
    def shots_query(self) -> tuple[int, int]:
        return self.form.shots_query()

    def family(self) -> CsvFamily | None:
        """The family the current choices give, once checked and valid."""
        return self._checked.family if self._problem is None and self._checked else None

    def cancel_reading(self) -> None:
        if self._tables is None and self._runner.is_busy():
            self._runner.cancel()
            self._show_read_error("reading was cancelled; close this dialog, or import the files again",
                                  header="Cancelled reading")

    def done(self, result: int) -> None:
        """Closing (OK, Cancel, Esc, window close) stops any background work first."""
        self._timer.stop()
        self._runner.shutdown()
        super().done(result)

    # -- reading -------------------------------------------------------------------------------
    def _on_progress(self, fraction: float) -> None:
        self.progress_bar.setValue(int(fraction * 1000))

    def _on_done(self, tag: str, result) -> None:
        if tag == "read":
            self._on_read(result)
        else:
            self._show_checked(result)

    def _on_failed(self, tag: str, error) -> None:
        if tag == "read":
            self._show_read_error(str(error))
        else:
            self._checked = None
            self._set_problem(str(error))

    def _show_read_error(self, message: str, header: str = "Could not read") -> None:
        self._hide_progress()
        self.files_label.setText(f"<b>{header}</b> {escape(describe_paths(self.paths))}")
        self._set_problem(message)

    def _hide_progress(self) -> None:
        self.progress_bar.hide()
        self.cancel_read_button.hide()

    def _on_read(self, tables: Tables) -> None:
        self._tables = tables
        self._hide_progress()
        first = tables.tables[0]
        rows = sum(t.n_rows for t in tables.tables)
        delimiter = {",": "comma", ";": "semicolon", "\t": "tab", "|": "bar"}.get(first.delimiter, repr(first.delimiter))
        what = (f"{first.path.name}: {first.n_rows:,} rows" if len(tables.files) == 1
                else f"{len(tables.files)} files in {common_folder(tables.files)}: {rows:,} rows")
        header = "" if first.has_header else ", no header row (columns numbered)"
        self.files_label.setText(f"<b>{what}</b>, {len(first.columns)} columns, {delimiter}-separated, "
                                 f"{first.encoding}{header}")
        if len(tables.files) > 1:
            self.preview_file.addItems([p.name for p in tables.files])
            self.preview_file.show()
            self.preview_file_label.show()
        self._fill_preview()
        self.form.fill(tables, self._initial)   # its ``changed`` checks the suggested choices

    def _fill_preview(self) -> None:
        if self._tables is None:
            return
        table = self._tables.tables[max(0, self.preview_file.currentIndex())]
        rows = table.preview(PREVIEW_ROWS)
        self.model.clear()
        self.model.setHorizontalHeaderLabels(list(table.columns))
        for row in rows:
            self.model.appendRow([QStandardItem(cell) for cell in row])
        self.model.setVerticalHeaderLabels([str(int(n)) for n in table.lines[:len(rows)]])
        self._color_columns()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.resizeColumnsToContents()
        if header.length() < self.table.viewport().width():   # a few columns: spread them over the width
            header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)

    def _color_columns(self) -> None:
        if self._tables is None:
            return
        p = self.form.params()
        roles = {c: "input" for c in p["features"] or []}
        roles.update({p["target"]: "target"} if p["target"] else {})
        roles.update({p["task_column"]: "task"} if p["task_column"] else {})
        for col in range(self.model.columnCount()):
            name = self.model.horizontalHeaderItem(col).text()
            color = QColor(ROLE_COLORS[roles[name]]) if name in roles else QColor(0, 0, 0, 0)
            for row in range(self.model.rowCount()):
                self.model.item(row, col).setBackground(color)

    # -- choices -------------------------------------------------------------------------------
    def _on_choice(self) -> None:
        self._color_columns()
        problem = self._local_problem()
        if problem is not None:
            self._timer.stop()
            self._runner.cancel()
            self.split_label.setText("")
            self._show_sizes()
            self._set_problem(problem)
            return
        self._set_problem("checking…", final=False)
        self._timer.start()

    def _local_problem(self) -> str | None:
        """Choices that need no reading to refuse (the engine checks everything else)."""
        split = [b.value() for b in self.form.split_boxes]
        if self.form.episodes():
            return episode_problem(self.form.episode_params(), split)
        return local_problem(self.form.params(), self._tables, self.form.layout_long.isChecked(), split)

    def _check(self) -> None:
        params, tables = self.form.choices(), self._tables.tables
        shots, query = self.shots_query()
        if self.form.episodes():
            self._runner.submit("check", lambda report: check_episodes(params, tables[0], shots, query))
            return
        self._runner.submit("check", lambda report: check_choices(params, tables, shots, query, report))

    def _show_checked(self, checked: Checked) -> None:
        self._checked = checked
        self.form.show_missing(checked.missing, checked.missing_where)
        self.warnings_list.clear()
        self.warnings_list.addItems(checked.warnings)
        if not checked.warnings:
            self.warnings_list.addItem("none")
        self._show_sizes()
        summary = episodes_summary if "path" in checked.params else split_summary
        self.split_label.setText("" if checked.family is None else summary(checked.family))
        self._set_problem(checked.error)
        self._mark_cell(checked.error_at)

    def _on_shots_query(self) -> None:
        self._show_sizes()   # at once, from the last verdict; the check then says whether training can start
        self._on_choice()

    def _show_sizes(self) -> None:
        """How many tasks shots + query keeps, and which sums keep all of them (from the last verdict)."""
        checked = self._checked
        fresh = checked is not None and checked.family is not None and checked.params == self.form.choices()
        if not fresh:
            self.form.show_sizes(None)
            return
        need = sum(self.shots_query())
        by_rows = self.form.split_by.currentIndex() == 1
        self.form.show_sizes(labels_kept(checked.capacities, need, by_rows) if self.form.episodes()
                             else tasks_kept(checked.capacities, need, checked.family.kind))

    def _mark_cell(self, at) -> None:
        """Show the refused cell in the preview (red) when it is among the rows shown."""
        if at is None or self._tables is None:
            return
        path, line, column = at
        index = next((i for i, t in enumerate(self._tables.tables) if t.path == path), None)
        if index is None:
            return
        if index != max(0, self.preview_file.currentIndex()):
            self.preview_file.setCurrentIndex(index)
        table = self._tables.tables[index]
        rows = [int(n) for n in table.lines[:self.model.rowCount()]]
        if line in rows and column in table.columns:
            item = self.model.item(rows.index(line), table.columns.index(column))
            item.setBackground(QColor("#f4b4ae"))
            self.table.scrollTo(item.index())


