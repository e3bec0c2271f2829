"""The CSV import dialog's choices: layout and columns, task kind, normalization, split, shots and
query, with the rules that tie them together (the task column and target are no inputs, meta-train
takes what validation and test leave, episodes classify). Qt widgets only: the dialog reads the
files, checks the choices on a job thread and shows the verdict."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QFormLayout, QGridLayout, QGroupBox, QLabel,
                               QListWidget, QListWidgetItem, QRadioButton, QSpinBox, QWidget)

from maml_gui.importing.csv_choices import Tables
from maml_gui.importing.csv_episodes import episode_params, fitting_sizes, rows_split_needed
from maml_gui.importing.import_host import side_by_side


class CsvForm(QGroupBox):
    """How the rows of ``paths`` become tasks; disabled until :meth:`fill` gives it the columns.
    ``changed`` on every choice once filled, ``sizes_changed`` when shots or query change."""

    changed = Signal()
    sizes_changed = Signal()

    def __init__(self, paths: list[str], shots: int, query: int, parent: QWidget | None = None):
        super().__init__("How the rows become tasks", parent)
        self._paths = paths
        self._tables: Tables | None = None
        self._filling = False
        self._reserved: set[str] = set()   # the task column and target, which cannot be inputs
        self._build(shots, query)
        self.setEnabled(False)

    # -- what was chosen -----------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """The choices as ``CsvFamily`` settings (statistics recomputed from the meta-training tasks)."""
        long = self.layout_long.isChecked()
        return {"paths": list(self._paths), "task_column": self.task_column.currentText() or None if long else None,
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
        return episode_params(self._paths[0], self.target.currentText() or None, self.feature_names(),
                              self.n_way.value(), [b.value() / 100 for b in self.split_boxes], self.split_seed.value(),
                              label.labels if label is not None and label.name == self.target.currentText() else 0,
                              self.split_by.currentIndex() == 1)

    def choices(self) -> dict[str, Any]:
        return self.episode_params() if self.episodes() else self.params()

    def feature_names(self) -> list[str]:
        items = (self.features.item(i) for i in range(self.features.count()))
        return [it.data(Qt.ItemDataRole.UserRole) for it in items
                if it.checkState() == Qt.CheckState.Checked and it.flags() & Qt.ItemFlag.ItemIsEnabled]

    def set_features(self, names: list[str]) -> None:
        for i in range(self.features.count()):
            item = self.features.item(i)
            checked = item.data(Qt.ItemDataRole.UserRole) in names
            item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    def shots_query(self) -> tuple[int, int]:
        return self.shots.value(), self.query.value()

    def show_missing(self, missing: int, where: list[str]) -> None:
        """Offer to drop the rows with missing values the last check found (kept shown while ticked)."""
        self.drop_missing.setVisible(missing > 0 or self.drop_missing.isChecked())
        if missing:
            more = f" and {missing - len(where)} more" if missing > len(where) else ""
            self.drop_missing.setText(f"drop {missing} row{'s' * (missing > 1)} with missing values "
                                      f"({', '.join(where)}{more})")

    def show_sizes(self, text: str | None) -> None:
        """What shots + query keeps, from the last verdict (None: none fits these choices)."""
        self.sizes_hint.setText(text or "")
        self.sizes_hint.setVisible(text is not None)

    # -- filling and the rules between the choices ---------------------------------------------
    def fill(self, tables: Tables, initial: dict[str, Any]) -> None:
        """Columns of the first file; suggestions, or the choices being changed (``initial`` given).
        Nothing is announced while filling; the form is enabled and says ``changed`` once, at the end."""
        self._tables = tables
        self._filling = True
        try:
            self._fill(tables, initial)
        finally:
            self._filling = False
        self.setEnabled(True)
        self._on_choice()

    def _fill(self, tables: Tables, p: dict[str, Any]) -> None:
        columns = tables.tables[0].columns
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

    def _on_split_edited(self) -> None:
        """Validation or test changed: meta-train takes the rest (when that is possible)."""
        rest = 100 - self.split_boxes[1].value() - self.split_boxes[2].value()
        if rest >= 1 and not self._filling:
            self.split_boxes[0].blockSignals(True)
            self.split_boxes[0].setValue(rest)
            self.split_boxes[0].blockSignals(False)
        self._on_choice()

    def _on_choice(self, *_args) -> None:
        if not self._filling and self._tables is not None:
            self.sync()
            self.changed.emit()

    def _on_shots_query(self) -> None:
        if not self._filling and self._tables is not None:
            self.sizes_changed.emit()

    def sync(self) -> None:
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

    def _build(self, shots: int, query: int) -> None:
        self.layout_long = QRadioButton("one file, a column names the task")
        self.layout_files = QRadioButton("one task per file")
        self.layout_long.setToolTip("Long format: rows of every task in one file; pick the column with the task id")
        self.layout_files.setToolTip("A folder or several files with the same column names (matched by name)")
        self.layout_labels = QRadioButton("no tasks: N-way episodes over the labels")
        self.layout_labels.setToolTip("One file, one row per example and a label column: each label is a class, and "
                                      "episodes ask the network to tell N labels it never trained on apart")
        self.layout_hint = QLabel()
        self.layout_hint.setStyleSheet("color: #555;")
        self.task_column = QComboBox()
        self.task_column.setToolTip("The column that names the task (subject, site, machine…); ids stay labels")
        self.features = QListWidget()
        self.features.setToolTip("Input columns of the model (tick one or more numeric columns)")
        self.features.setMaximumHeight(96)
        self.target = QComboBox()
        self.target.setToolTip("The value to predict (regression) or the class label (classification)")
        self.regression = QRadioButton("regression")
        self.classification = QRadioButton("classification")
        self.classification.setToolTip("N-way K-shot episodes over the classes of the target column")
        self.n_way = QSpinBox()
        self.n_way.setRange(0, 100)
        self.n_way.setSpecialValueText("auto")
        self.n_way.setPrefix("classes per episode: ")
        self.n_way.setToolTip("N of N-way episodes; auto = min(5, number of classes)")
        self.shots, self.query = QSpinBox(), QSpinBox()
        for box, prefix, value in ((self.shots, "shots K ", shots), (self.query, "query ", query)):
            box.setRange(1, 10000)
            box.setPrefix(prefix)
            box.setValue(value)
        self.shots.setToolTip("Support rows per task (per class for classification); OK sets the training settings")
        self.query.setToolTip("Query rows per task (per class for classification); OK sets the training settings")
        self.sizes_hint = QLabel()
        self.sizes_hint.setWordWrap(True)
        self.sizes_hint.setStyleSheet("color: #555;")
        self.sizes_hint.setToolTip("A task is trained on only when it has shots + query rows")
        self.sizes_hint.hide()   # shown once the choices are checked
        self.normalize = QCheckBox("standardize inputs and target (statistics of the meta-training tasks only)")
        self.drop_missing = QCheckBox()
        self.drop_missing.setToolTip("Rows with an empty cell in a column used; otherwise they stop the import")
        self.drop_missing.hide()   # shown once missing values are found
        self.split_boxes = []
        for name in ("meta-train", "validation", "test"):
            box = QSpinBox()
            box.setRange(0, 100)
            box.setSuffix(" %")
            box.setToolTip(f"share of the tasks (not rows) for {name}")
            self.split_boxes.append(box)
        self.split_seed = QSpinBox()
        self.split_seed.setRange(0, 2**31 - 1)
        self.split_seed.setPrefix("seed ")
        self.split_seed.setToolTip("Which tasks go to which split")
        self.split_by = QComboBox()
        self.split_by.addItems(["by label", "by rows"])
        self.split_by.setToolTip("By label: meta-test episodes tell apart labels never trained on (needs enough labels "
                                 "for N-way episodes in meta-train and in test).\nBy rows: each label's rows are split; "
                                 "every episode uses the same labels, meta-test episodes only held-out rows (the "
                                 "choice for a file with few labels)")
        for group in ((self.layout_long, self.layout_files, self.layout_labels), (self.regression, self.classification)):
            buttons = QButtonGroup(self)
            for b in group:
                buttons.addButton(b)
        self.layout_long.setChecked(True)
        self.regression.setChecked(True)
        self.normalize.setChecked(True)
        self.split_boxes[0].setValue(70)
        self.split_boxes[1].setValue(15)
        self.split_boxes[2].setValue(15)

        form = QFormLayout()
        form.addRow("Layout", side_by_side(self.layout_long, self.layout_files, self.layout_hint))
        form.addRow("", side_by_side(self.layout_labels))
        form.addRow("Task column", self.task_column)
        form.addRow("Inputs", self.features)
        form.addRow("Target", self.target)
        form.addRow("Task kind", side_by_side(self.regression, self.classification, self.n_way))
        form.addRow("Per episode", side_by_side(self.shots, self.query))
        form.addRow("", self.sizes_hint)
        form.addRow("", self.normalize)
        form.addRow("", self.drop_missing)
        split = QWidget()
        grid = QGridLayout(split)
        grid.setContentsMargins(0, 0, 0, 0)
        for col, (text, box) in enumerate(zip(("meta-train", "validation", "test"), self.split_boxes)):
            grid.addWidget(QLabel(text), 0, col)
            grid.addWidget(box, 1, col)
        grid.addWidget(self.split_seed, 1, 3)
        grid.addWidget(self.split_by, 1, 4)
        self.split_title = QLabel("Split by task")
        form.addRow(self.split_title, split)

        for button in (self.layout_long, self.layout_files, self.layout_labels, self.regression, self.classification,
                       self.normalize, self.drop_missing):
            button.toggled.connect(self._on_choice)
        for combo in (self.task_column, self.target, self.split_by):
            combo.currentIndexChanged.connect(self._on_choice)
        self.features.itemChanged.connect(self._on_choice)
        for box in (self.n_way, self.split_seed):
            box.valueChanged.connect(self._on_choice)
        for box in (self.shots, self.query):
            box.valueChanged.connect(self._on_shots_query)
        self.split_boxes[0].valueChanged.connect(self._on_choice)
        for box in self.split_boxes[1:]:
            box.valueChanged.connect(self._on_split_edited)
        self.setLayout(form)
