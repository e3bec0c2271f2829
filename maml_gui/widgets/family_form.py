"""The family editor's form: one widget per setting of the chosen family (numbers, ranges, a
formula with its parameters' ranges, switches), built from the family's ``fields``;
:class:`~maml_gui.widgets.family_editor.FamilyEditor` inherits it."""

from __future__ import annotations

import copy
from typing import Any, Callable

from PySide6.QtCore import QSize
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (QAbstractSpinBox, QCheckBox, QDoubleSpinBox, QGridLayout, QHBoxLayout, QLabel, QLineEdit,
                               QSizePolicy, QSpinBox, QWidget)

from core.tasks import ParamField, TaskFamily
from core.tasks.csv_family import CsvFamily
from core.tasks.formula import FormulaError, parse_formula

from .csv_panel import PANEL_FAMILIES

PREVIEW_TITLE = "Sample tasks"
COMPACT_EXTRA = 28   # px a spin box needs beside its text (arrows, frame)
NEW_RANGE = [0.0, 1.0]   # range offered for a parameter that first appears in a typed formula
FORM_KINDS = ("range", "float", "int", "formula", "ranges", "bool")   # kinds the form has widgets for
IMAGE_FAMILIES = ("glyphs", "images")   # previewed as a grid of example images
DIALOG_ONLY = {"images": ("image_size", "channels")}   # changed in the import dialog (it reloads the images)


class FamilyForm:
    """Builds and reads the form (a part of ``FamilyEditor``, which calls :meth:`_build_form`)."""

    def _build_form(self, cls: type[TaskFamily]) -> None:
        while self._form.rowCount():
            self._form.removeRow(0)
        for table in (self._getters, self._setters, self._field_widgets, self._labels):
            table.clear()
        self._ranges_grid = None
        self._field_widgets["family.name"] = [self._combo]
        self._shown_name = cls.name
        self.csv_panel.setVisible(cls in PANEL_FAMILIES)   # labelled rows: the file and Change…
        self.preview.setTitle(PREVIEW_TITLE, size="11pt")
        self.image_panel.setVisible(cls.name == "images")
        images = cls.name in IMAGE_FAMILIES
        self.preview.setVisible(not images)
        self.image_grid.setVisible(images)
        self.image_grid.clear()   # a new family's examples come once it is built
        if cls is CsvFamily:
            self.csv_panel.register(self._getters, self._setters, self._field_widgets, self._labels, self._updating)
        data_fields = getattr(cls, "data_fields", ())   # environment families have none
        shown = [] if cls is CsvFamily else [f for f in cls.fields + data_fields
                                              if f.kind in FORM_KINDS and f.name not in DIALOG_ONLY.get(cls.name, ())]
        if cls is not CsvFamily:   # everything else (files, columns, split) is kept as imported
            kept = self._kept.setdefault(cls.name, {})
            for f in cls.fields + data_fields:
                if f not in shown:
                    kept.setdefault(f.name, copy.deepcopy(f.default))
                    self._labels[f"family.{f.name}"] = f.label
                    self._field_widgets[f"family.{f.name}"] = []   # the error label names it
        for f in shown:
            self._labels[f"family.{f.name}"] = f.label
            widget = getattr(self, f"_make_{f.kind}")(f)
            label = QLabel(f.label)
            label.setToolTip(f.help)
            widget.setToolTip(f.help)
            self._form.addRow(label, widget)
        self.preview.setLabel("bottom", "x₁" if cls.kind == "classification" else "x")
        self.preview.setLabel("left", "x₂" if cls.kind == "classification" else "y")

    def _number(self, f: ParamField, value: Any) -> QWidget:
        box = QSpinBox() if f.kind == "int" else NumberBox(f.minimum, f.maximum)
        if f.kind == "int":
            box.setRange(int(f.minimum if f.minimum is not None else -10**6), int(f.maximum if f.maximum is not None else 10**6))
        box.setValue(int(value) if f.kind == "int" else float(value))
        box.valueChanged.connect(self._on_edit)
        return box

    def _make_range(self, f: ParamField) -> QWidget:
        lo, hi = NumberBox(f.minimum, f.maximum), NumberBox(f.minimum, f.maximum)
        self._setters[f.name] = lambda v: (lo.setValue(float(v[0])), hi.setValue(float(v[1])))
        self._setters[f.name](f.default)
        self._getters[f.name] = lambda: [lo.value(), hi.value()]
        self._field_widgets[f"family.{f.name}"] = [lo, hi]
        return _row(lo, QLabel("to"), hi, self._on_edit)

    def _make_float(self, f: ParamField) -> QWidget:
        box = self._number(f, f.default)
        cast = int if f.kind == "int" else float
        self._getters[f.name], self._setters[f.name] = box.value, lambda v: box.setValue(cast(v))
        self._field_widgets[f"family.{f.name}"] = [box]
        return box

    _make_int = _make_float

    def _make_bool(self, f: ParamField) -> QWidget:
        box = QCheckBox()
        box.setChecked(bool(f.default))
        box.toggled.connect(self._on_edit)
        self._getters[f.name], self._setters[f.name] = box.isChecked, lambda v: box.setChecked(bool(v))
        self._field_widgets[f"family.{f.name}"] = [box]
        return box

    def _make_formula(self, f: ParamField) -> QWidget:
        edit = QLineEdit(str(f.default))
        edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        edit.setPlaceholderText("e.g. a*sin(b*x + c)")
        edit.textChanged.connect(self._on_formula_text)
        self._getters[f.name], self._setters[f.name] = edit.text, lambda v: edit.setText(str(v))
        self._field_widgets[f"family.{f.name}"] = [edit]
        return edit

    def _make_ranges(self, f: ParamField) -> QWidget:
        host = QWidget()
        self._ranges_grid = QGridLayout(host)
        self._ranges_grid.setContentsMargins(0, 0, 0, 0)
        self._ranges_grid.setColumnStretch(1, 1)
        self._ranges_grid.setColumnStretch(2, 1)
        self._range_memory = {k: list(v) for k, v in f.default.items()}
        self._getters[f.name] = self._ranges_value
        self._setters[f.name] = self._set_ranges
        self._field_widgets[f"family.{f.name}"] = [host]
        self._set_ranges(f.default)
        return host

    def _ranges_value(self) -> dict[str, list[float]]:
        return {name: [lo.value(), hi.value()] for name, (lo, hi) in self._range_boxes().items()}

    def _range_boxes(self) -> dict[str, tuple[NumberBox, NumberBox]]:
        return {k[len("family.ranges."):]: tuple(w) for k, w in self._field_widgets.items() if k.startswith("family.ranges.")}

    def _set_ranges(self, ranges: dict[str, Any]) -> None:
        """Rebuild the name/min/max rows (one per formula parameter, in the order typed)."""
        grid = self._ranges_grid
        for key in [k for k in self._field_widgets if k.startswith("family.ranges.")]:
            del self._field_widgets[key]
        while grid.count():
            old = grid.takeAt(0).widget()
            old.hide()
            old.deleteLater()
        for col, text in enumerate(("parameter", "min", "max")):
            grid.addWidget(QLabel(f"<i>{text}</i>"), 0, col)
        for row, (name, value) in enumerate(dict(ranges).items(), start=1):
            lo, hi = NumberBox(), NumberBox()
            lo.setValue(float(value[0]))
            hi.setValue(float(value[1]))
            for box in (lo, hi):
                box.valueChanged.connect(self._on_edit)
            grid.addWidget(QLabel(name), row, 0)
            grid.addWidget(lo, row, 1)
            grid.addWidget(hi, row, 2)
            self._field_widgets[f"family.ranges.{name}"] = [lo, hi]
            self._labels[f"family.ranges.{name}"] = f"range of {name}"

    def _on_formula_text(self, text: str) -> None:
        """Keep one range row per parameter the formula names; parsing is the engine's, never eval."""
        try:
            names = parse_formula(text).parameters
        except FormulaError:
            names = None  # keep the rows; the validation below marks the formula
        if names is not None and self._ranges_grid is not None and tuple(self._range_boxes()) != names:
            self._range_memory.update(self._ranges_value())
            self._set_ranges({n: self._range_memory.get(n, NEW_RANGE) for n in names})
        self._on_edit()


class NumberBox(QDoubleSpinBox):
    """A spin box that keeps full float precision (pi stays pi) but shows at most 6 decimals."""

    def __init__(self, minimum: float | None = None, maximum: float | None = None, parent=None):
        super().__init__(parent)
        self.setDecimals(15)
        self.setRange(-1e9 if minimum is None else minimum, 1e9 if maximum is None else maximum)
        self.setSingleStep(0.1)
        self.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.setKeyboardTracking(False)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, self.sizePolicy().verticalPolicy())   # shrinks to its minimum

    def minimumSizeHint(self) -> QSize:
        """Room for a value like -12.3456, not for the widest number the range allows: two boxes of a
        range row then fit the side panel at its usual width, whichever family is shown."""
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), self.fontMetrics().horizontalAdvance("-12.3456") + COMPACT_EXTRA), hint.height())

    def textFromValue(self, value: float) -> str:
        text = f"{value:.6f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()


def _row(lo: QWidget, middle: QWidget, hi: QWidget, on_edit: Callable[[], None]) -> QWidget:
    host = QWidget()
    layout = QHBoxLayout(host)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in (lo, middle, hi):
        layout.addWidget(w, 0 if w is middle else 1)
    lo.valueChanged.connect(on_edit)
    hi.valueChanged.connect(on_edit)
    return host


def widgets_for(widgets: dict[str, list[QWidget]], field: str) -> list[QWidget]:
    """The inputs behind a ConfigError field: exact match, else the nearest parent path."""
    while field:
        if field in widgets:
            return widgets[field]
        field = field.rpartition(".")[0]
    return []
