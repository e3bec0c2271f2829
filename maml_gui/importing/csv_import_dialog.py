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

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QStandardItem
from PySide6.QtWidgets import QDialog, QHeaderView, QListWidgetItem, QWidget

from core.tasks.csv_family import CsvFamily

from maml_gui.importing.csv_choices import (Checked, Tables, check_choices, local_problem, read_tables, split_summary,
                                            tasks_kept)
from maml_gui.importing.csv_episodes import (check_episodes, episode_params, episode_problem, episodes_summary,
                                             labels_kept, fitting_sizes, rows_split_needed)
from maml_gui.importing.csv_import_layout import (PREVIEW_ROWS, ROLE_COLORS, CsvImportLayout, common_folder,
                                                  describe_paths)
from maml_gui.importing.import_host import ImportDialogBase

CHECK_DEBOUNCE_MS = 120


# -- the dialog -------------------------------------------------------------------------------------
class CsvImportDialog(CsvImportLayout, ImportDialogBase, QDialog):
    """Choose how CSV files become tasks. ``updated`` fires each time the verdict (or a read error) is shown."""

    updated = Signal()

    def __init__(self, paths: list[str], params: dict[str, Any] | None = None, *, shots: int = 5, query: int = 10,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Import CSV data")
        self.paths = [str(Path(p).expanduser().resolve()) for p in paths]
        self._initial = dict(params or {})
        self._start_shots_query = shots, query
        self._tables: Tables | None = None
        self._checked: Checked | None = None
        self._problem: str | None = "reading the files…"
        self._filling = False
        self._reserved: set[str] = set()   # the task column and target, which cannot be inputs
        self._make_jobs("maml-csv", CHECK_DEBOUNCE_MS)
        self._build()
        self.resize(1000, 760)
        paths = list(self.paths)   # the job holds no reference to the dialog
        self._runner.submit("read", lambda report: read_tables(paths, report))

    # -- public ------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """The choices as ``CsvFamily`` settings (statistics recomputed from the meta-training tasks)."""
        long = self.layout_long.isChecked()
        return {"paths": list(self.paths), "task_column": self.task_column.currentText() or None if long else None,
                "features": self.feature_names(), "target": self.target.currentText() or None,
                "classification": self.classification.isChecked(),
                "split": [b.value() / 100 for b in self.split_boxes], "split_seed": self.split_seed.value(),
                "normalize": self.normalize.isChecked(), "drop_missing": self.drop_missing.isChecked(),
                "n_way": self.n_way.value() if self.classification.isChecked() else 0, "normalization": None}

    def episodes(self) -> bool:
        """Whether the choice is N-way episodes over a label column (the ``labelled_csv`` family)."""
        return self.layout_labels.isChecked()

    def episode_params(self) -> dict[str, Any]:
        """The choices as ``labelled_csv`` settings (only meaningful when :meth:`episodes`)."""
        label = self._tables.label if self._tables is not None else None
        return episode_params(self.paths[0], self.target.currentText() or None, self.feature_names(),
                              self.n_way.value(), [b.value() / 100 for b in self.split_boxes], self.split_seed.value(),
                              label.labels if label is not None and label.name == self.target.currentText() else 0,
                              self.split_by.currentIndex() == 1)

    def _choices(self) -> dict[str, Any]:
        return self.episode_params() if self.episodes() else self.params()

    def family(self) -> CsvFamily | None:
        """The family the current choices give, once checked and valid."""
        return self._checked.family if self._problem is None and self._checked else None

    def feature_names(self) -> list[str]:
        items = (self.features.item(i) for i in range(self.features.count()))
        return [it.data(Qt.ItemDataRole.UserRole) for it in items
                if it.checkState() == Qt.CheckState.Checked and it.flags() & Qt.ItemFlag.ItemIsEnabled]

    def set_features(self, names: list[str]) -> None:
        for i in range(self.features.count()):
            item = self.features.item(i)
            checked = item.data(Qt.ItemDataRole.UserRole) in names
            item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

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
        self._filling = True
        try:
            if len(tables.files) > 1:
                self.preview_file.addItems([p.name for p in tables.files])
                self.preview_file.show()
                self.preview_file_label.show()
            self._fill_choices(tables)
        finally:
            self._filling = False
        self.settings_box.setEnabled(True)
        self._fill_preview()
        self._on_choice()

    def _fill_choices(self, tables: Tables) -> None:
        """Columns of the first file; suggestions, or the choices being changed (``params`` given)."""
        p, columns = self._initial, tables.tables[0].columns
        several = len(tables.files) > 1
        self.layout_hint.setText(f"(suggested for {len(tables.files)} file{'s' * several})")
        long = bool(p["task_column"]) if "task_column" in p else not several
        (self.layout_long if long else self.layout_files).setChecked(True)
        self.task_column.addItems(columns)
        self.target.addItems(columns)
        for name in columns:
            item = QListWidgetItem(name if tables.numeric[name] else f"{name}  (text)")
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.features.addItem(item)
        guess = tables.suggestion
        task = p.get("task_column") or guess.task_column
        self.task_column.setCurrentIndex(self.task_column.findText(task) if task else -1)   # none: ask for one
        self.task_column.setPlaceholderText("" if task else "none found: choose the column whose values group "
                                                            "rows into tasks")
        if "target" in p:
            numeric = [c for c in columns if tables.numeric[c] and c != (task if long else None)]
            target = p["target"] or (numeric[-1] if numeric else columns[-1])
            features, classification = p.get("features") or [c for c in numeric if c != target], p.get("classification")
        else:
            target, features, classification = guess.target, guess.features, guess.classification
        self.target.setCurrentText(target)
        self.set_features(features)
        (self.classification if classification else self.regression).setChecked(True)
        self.n_way.setValue(int(p.get("n_way") or 0))
        self.normalize.setChecked(bool(p.get("normalize", True)))
        self.drop_missing.setChecked(bool(p.get("drop_missing", False)))
        for box, value in zip(self.split_boxes, p.get("split", [0.7, 0.15, 0.15])):
            box.setValue(round(100 * value))
        self.split_seed.setValue(int(p.get("split_seed", 0)))
        label = tables.label
        proposed = not p and not guess.task_column and label is not None
        if p.get("path") or proposed:   # a labelled_csv spec being changed, or the proposal
            split = [b.value() / 100 for b in self.split_boxes]
            rows = p.get("split_rows") if p else rows_split_needed(label, split)
            self.split_by.setCurrentIndex(int(bool(rows)))   # by rows where too few labels to split them
            if not p:   # as many shots + query as the smallest label (its held-out rows) holds
                for box, value in zip((self.shots, self.query), fitting_sizes(label, split, rows, *self.shots_query())):
                    box.setValue(value)
            self.layout_labels.setChecked(True)
            self.classification.setChecked(True)
            target = p.get("target") or label.name
            self.target.setCurrentText(target)
            self.set_features(p.get("features") or [c for c in columns if tables.numeric[c] and c != target])
            self.n_way.setValue(int(p.get("n_way") or 0))

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
        p = self.params()
        roles = {c: "input" for c in p["features"] or []}
        roles.update({p["target"]: "target"} if p["target"] else {})
        roles.update({p["task_column"]: "task"} if p["task_column"] else {})
        for col in range(self.model.columnCount()):
            name = self.model.horizontalHeaderItem(col).text()
            color = QColor(ROLE_COLORS[roles[name]]) if name in roles else QColor(0, 0, 0, 0)
            for row in range(self.model.rowCount()):
                self.model.item(row, col).setBackground(color)

    # -- choices -------------------------------------------------------------------------------
    def _on_split_edited(self) -> None:
        """Validation or test changed: meta-train takes the rest (when that is possible)."""
        rest = 100 - self.split_boxes[1].value() - self.split_boxes[2].value()
        if rest >= 1 and not self._filling:
            self.split_boxes[0].blockSignals(True)
            self.split_boxes[0].setValue(rest)
            self.split_boxes[0].blockSignals(False)
        self._on_choice()

    def _on_choice(self, *_args) -> None:
        if self._filling or self._tables is None:
            return
        self._sync_enabled()
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

    def _sync_enabled(self) -> None:
        """The task column and the target cannot also be inputs; per-file layout has no task column."""
        long = self.layout_long.isChecked()
        self.task_column.setEnabled(long)
        episodes = self.episodes()
        if episodes:
            self.classification.setChecked(True)
        for w in (self.regression, self.classification, self.normalize):
            w.setEnabled(not episodes)   # episodes classify, and always standardize on meta-train labels
        label = self._tables.label
        self.layout_labels.setEnabled(label is not None or episodes)
        self.layout_labels.setToolTip(self.layout_labels.toolTip().split("\n")[0] + (
            f"\nproposed label column: {label.name!r} ({label.labels} labels)" if label is not None else
            "\nno text or whole-number column here has 3..1000 repeated values (needs one file)"))
        self.n_way.setVisible(self.classification.isChecked())
        self.split_by.setVisible(episodes)
        self.split_title.setText("Split" if episodes else "Split by task")
        unit = ("each label's rows" if self.split_by.currentIndex() else "the labels") if episodes else "the tasks"
        for box, name in zip(self.split_boxes, ("meta-train", "validation", "test")):
            box.setToolTip(f"share of {unit} for {name}")
        reserved = {self.target.currentText()} | ({self.task_column.currentText()} if long else set())
        released, self._reserved = self._reserved - reserved, reserved
        self.features.blockSignals(True)
        for i in range(self.features.count()):
            item = self.features.item(i)
            name, flags = item.data(Qt.ItemDataRole.UserRole), item.flags()
            if name in reserved:
                item.setFlags(flags & ~Qt.ItemFlag.ItemIsEnabled)
                item.setCheckState(Qt.CheckState.Unchecked)
            else:
                item.setFlags(flags | Qt.ItemFlag.ItemIsEnabled)
                if name in released and self._tables.numeric.get(name):   # no longer the target: an input again
                    item.setCheckState(Qt.CheckState.Checked)
        self.features.blockSignals(False)

    def _local_problem(self) -> str | None:
        """Choices that need no reading to refuse (the engine checks everything else)."""
        split = [b.value() for b in self.split_boxes]
        if self.episodes():
            return episode_problem(self.episode_params(), split)
        return local_problem(self.params(), self._tables, self.layout_long.isChecked(), split)

    def _check(self) -> None:
        params, tables = self._choices(), self._tables.tables
        shots, query = self.shots_query()
        if self.episodes():
            self._runner.submit("check", lambda report: check_episodes(params, tables[0], shots, query))
            return
        self._runner.submit("check", lambda report: check_choices(params, tables, shots, query, report))

    def _show_checked(self, checked: Checked) -> None:
        self._checked = checked
        self.drop_missing.setVisible(checked.missing > 0 or self.drop_missing.isChecked())
        if checked.missing:
            more = f" and {checked.missing - len(checked.missing_where)} more" if checked.missing > len(checked.missing_where) else ""
            self.drop_missing.setText(f"drop {checked.missing} row{'s' * (checked.missing > 1)} with missing values "
                                      f"({', '.join(checked.missing_where)}{more})")
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
        fresh = checked is not None and checked.family is not None and checked.params == self._choices()
        need = sum(self.shots_query())
        self.sizes_hint.setText("" if not fresh else labels_kept(checked.capacities, need, self.split_by.currentIndex() == 1) if self.episodes()
                                else tasks_kept(checked.capacities, need, checked.family.kind))
        self.sizes_hint.setVisible(fresh)

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


