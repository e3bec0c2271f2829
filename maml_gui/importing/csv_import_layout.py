"""The CSV import dialog's widgets and layout: files and preview, layout and columns, task kind,
normalization, split, shots and query; :class:`~maml_gui.importing.csv_import_dialog.CsvImportDialog`
inherits them and wires their behaviour."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (QAbstractItemView, QButtonGroup, QCheckBox, QComboBox, QDialogButtonBox, QFormLayout,
                               QGridLayout, QGroupBox, QHBoxLayout, QLabel, QListWidget, QProgressBar, QPushButton,
                               QRadioButton, QSpinBox, QTableView, QVBoxLayout, QWidget)

from maml_gui.importing.import_host import side_by_side

PREVIEW_ROWS = 50
ROLE_COLORS = {"task": "#fdf0c2", "input": "#dbe9f8", "target": "#d5efcf"}
ERROR_STYLE = "color: #b3261e;"


def describe_paths(paths: list[str]) -> str:
    names = [Path(p).name + ("/" if Path(p).is_dir() else "") for p in paths]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def common_folder(files: list[Path]) -> str:
    parents = {p.parent for p in files}
    return f"{parents.pop().name}/" if len(parents) == 1 else f"{len(parents)} folders"


class CsvImportLayout:
    """Builds the dialog's widgets (a part of ``CsvImportDialog``, which calls :meth:`_build`)."""

    def _build(self) -> None:
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

        self.settings_box = QGroupBox("How the rows become tasks")
        self.settings_box.setLayout(self._settings_form())
        self.settings_box.setEnabled(False)
        self.split_label = QLabel()
        self.split_label.setWordWrap(True)
        self.split_label.setStyleSheet("font-weight: bold;")
        self.warnings_list = QListWidget()
        self.warnings_list.setWordWrap(True)
        self.warnings_list.setToolTip("Things that did not stop the import: skipped tasks, dropped rows, conversions")
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result_box = QGroupBox("Result")
        side = QVBoxLayout(self.result_box)
        side.addWidget(self.split_label)
        side.addWidget(self.error_label)
        side.addWidget(QLabel("Warnings"))
        side.addWidget(self.warnings_list, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.settings_box, 3)
        bottom.addWidget(self.result_box, 2)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Use these tasks")
        self.ok_button.setEnabled(False)
        self.buttons.accepted.connect(self._on_ok)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(reading)
        layout.addWidget(self.table, 1)
        layout.addWidget(legend)
        layout.addLayout(bottom)
        layout.addWidget(self.buttons)

    def _settings_form(self) -> QFormLayout:
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
        shots, query = self._start_shots_query
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
        return form
