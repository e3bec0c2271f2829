"""The Adapt panel's pages for a task read from files: labelled rows of a CSV file, or a folder of
labelled images (one folder per class).

Each page owns its widgets and what they hold (the file, its columns, the seed that draws the K
support examples) and emits ``changed`` when a setting that changes the task moves; the panel
(:mod:`maml_gui.adapt.view`) re-adapts on it and reads the page's values into its request.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QPushButton, QSpinBox, QWidget)

from core.trained.adapt import rows_text

MAX_SEED = 999_999


class _DrawPage(QWidget):
    """A file or folder, and a seed (with "New draw") that picks which K examples are the support set."""

    changed = Signal()

    def __init__(self, placeholder: str, choose_text: str, choose: Callable[[], None], seed_tip: str, draw_tip: str):
        super().__init__()
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.path = QLineEdit()
        self.path.setReadOnly(True)
        self.path.setPlaceholderText(placeholder)
        self.choose_button = QPushButton(choose_text)
        self.choose_button.clicked.connect(choose)
        self.path_row = QHBoxLayout()
        self.path_row.addWidget(self.path, 1)
        self.path_row.addWidget(self.choose_button)
        self.seed = QSpinBox()
        self.seed.setRange(0, MAX_SEED)
        self.seed.setToolTip(seed_tip)
        self.new_draw_button = QPushButton("New draw")
        self.new_draw_button.setToolTip(draw_tip)
        self.new_draw_button.clicked.connect(self.new_draw)
        self.draw_row = QHBoxLayout()   # narrow: the panel shares a 1280-pixel window's left column
        self.draw_row.addWidget(self.seed)
        self.draw_row.addWidget(self.new_draw_button)
        self.draw_row.addStretch(1)
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setStyleSheet("color: #555;")
        self.seed.valueChanged.connect(lambda _v: self.changed.emit())

    def new_draw(self) -> None:
        """Other support examples: the next seed (``changed`` re-adapts)."""
        self.seed.setValue((self.seed.value() + 1) % (MAX_SEED + 1))


class CsvRowsPage(_DrawPage):
    """Labelled rows of a CSV file: the target column, the input columns, and K rows drawn at random."""

    def __init__(self, choose: Callable[[], None]):
        super().__init__("a CSV file with a few labeled rows", "Choose…", choose,
                         "Which K rows are the support set: drawn at random with this seed (maml-gui adapt --seed "
                         "draws the same rows); the other rows score the adaptation",
                         "Draw other support rows (the next seed)")
        self.columns: list[str] = []
        self.target = QComboBox()
        self.target.setToolTip("The column to predict")
        self.features = QListWidget()
        self.features.setToolTip("The input columns, as many as the network takes")
        self.features.setMaximumHeight(80)
        self.draw_row.insertWidget(0, QLabel("drawn at random, seed"))
        self.form.addRow("File", self.path_row)
        self.form.addRow("Target", self.target)
        self.form.addRow("Inputs", self.features)
        self.form.addRow("Support", self.draw_row)
        self.form.addRow("", self.info)
        self.target.currentIndexChanged.connect(self._on_target)
        self.features.itemChanged.connect(lambda _item: self.changed.emit())

    def load(self, path, columns: list[str], target: str, features) -> None:
        """Show the file's columns with ``target`` and ``features`` chosen (no ``changed``)."""
        self.columns = list(columns)
        self.path.setText(str(path))
        self.target.blockSignals(True)
        self.target.clear()
        self.target.addItems(self.columns)
        self.target.setCurrentText(target)
        self.target.blockSignals(False)
        self._fill_features(set(features) - {target})

    def checked_features(self) -> list[str]:
        items = (self.features.item(i) for i in range(self.features.count()))
        return [item.text() for item in items if item.checkState() == Qt.CheckState.Checked]

    def show_outcome(self, outcome) -> None:
        """Which rows adapted and which score it (nothing for another source's outcome)."""
        task = outcome.task
        if outcome.request.source != "csv" or task.support_rows is None:
            text = ""
        elif task.query_x is None:
            text = "every row is in the support set: none left to score the adaptation (lower K)"
        else:
            text = f"support rows {rows_text(task.support_rows)}; the other {len(task.query_x)} (crosses) score it"
        self.info.setText(text)

    def _on_target(self) -> None:
        self._fill_features(set(self.checked_features()) - {self.target.currentText()})
        self.changed.emit()

    def _fill_features(self, checked: set[str]) -> None:
        target = self.target.currentText()
        self.features.blockSignals(True)
        self.features.clear()
        for name in self.columns:
            if name == target:
                continue
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name in checked else Qt.CheckState.Unchecked)
            self.features.addItem(item)
        self.features.blockSignals(False)


class ImageFolderPage(_DrawPage):
    """A folder of labelled images: one folder per class, K images of each drawn at random."""

    def __init__(self, choose: Callable[[], None]):
        super().__init__("a folder with one folder of images per class", "Choose folder…", choose,
                         "Which K images of each class are the support set: drawn at random with this seed "
                         "(maml-gui adapt --images --seed draws the same); the others score it",
                         "Draw other support images (the next seed)")
        self.choose_button.setToolTip("class/*.png (or .jpg, …): each class folder's name labels its images")
        self.form.addRow("Folder", self.path_row)
        self.form.addRow("Seed", self.draw_row)
        self.form.addRow("", self.info)

    def show_outcome(self, outcome) -> None:
        """The folder's classes behind the labels, the draw, and what was skipped reading it."""
        task, request = outcome.task, outcome.request
        if request.source != "images" or task.class_names is None:
            self.info.setText("")
            return
        names = " · ".join(f"{i} {name}" for i, name in enumerate(task.class_names))
        scored = f"the other {len(task.query_x)} score it" if task.query_x is not None else "none left to score it"
        text = f"{len(task.class_names)} classes: {names}; {request.shots} per class adapt (seed {request.seed}), {scored}"
        self.info.setText(text + "".join(f"\nwarning: {note}" for note in outcome.notes))
