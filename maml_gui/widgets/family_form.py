"""The family editor's form: one widget per setting of the chosen family (numbers, ranges, a
formula with its parameters' ranges, switches), built from the family's ``fields``.
:class:`~maml_gui.widgets.family_editor.FamilyEditor` owns one and rebuilds it for each family."""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QSize
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (QAbstractSpinBox, QCheckBox, QDoubleSpinBox, QFormLayout, QGridLayout, QHBoxLayout,
                               QLabel, QLineEdit, QSizePolicy, QSpinBox, QWidget)

from core.tasks import ParamField
from core.tasks.formula import FormulaError, parse_formula

PREVIEW_TITLE = "Sample tasks"
COMPACT_EXTRA = 28   # px a spin box needs beside its text (arrows, frame)
NEW_RANGE = [0.0, 1.0]   # range offered for a parameter that first appears in a typed formula
FORM_KINDS = ("range", "float", "int", "formula", "ranges", "bool")   # kinds the form has widgets for
IMAGE_FAMILIES = ("glyphs", "images")   # previewed as a grid of example images
DIALOG_ONLY = {"images": ("image_size", "channels")}   # changed in the import dialog (it reloads the images)


class FamilyForm:
    """The rows of a family's fields in ``layout``, and the tables that read, set and mark them
    (keyed by field name, or ``family.<field>`` for marking and labels); every edit calls ``on_edit``."""

    def __init__(self, layout: QFormLayout, on_edit: Callable[[], None]):
        self._layout, self._on_edit = layout, on_edit
        self.getters: dict[str, Callable[[], Any]] = {}
        self.setters: dict[str, Callable[[Any], None]] = {}
        self.field_widgets: dict[str, list[QWidget]] = {}   # "family.amplitude" -> widgets to mark
        self.labels: dict[str, str] = {}
        self._ranges_grid: QGridLayout | None = None
        self._range_memory: dict[str, list[float]] = {}       # formula ranges survive retyping a name

    def clear(self) -> None:
        """No rows: a new family's follow."""
        while self._layout.rowCount():
            self._layout.removeRow(0)
        for table in (self.getters, self.setters, self.field_widgets, self.labels):
            table.clear()
        self._ranges_grid = None

    def add(self, f: ParamField) -> None:
        """A row for ``f``, at its default."""
        self.labels[f"family.{f.name}"] = f.label
        widget = getattr(self, f"_make_{f.kind}")(f)
        label = QLabel(f.label)
        label.setToolTip(f.help)
        widget.setToolTip(f.help)
        self._layout.addRow(label, widget)

    def _number(self, f: ParamField, value: Any) -> QWidget:
        box = QSpinBox() if f.kind == "int" else NumberBox(f.minimum, f.maximum)
        if f.kind == "int":
            box.setRange(int(f.minimum if f.minimum is not None else -10**6), int(f.maximum if f.maximum is not None else 10**6))
        box.setValue(int(value) if f.kind == "int" else float(value))
        box.valueChanged.connect(self._on_edit)
        return box

    def _make_range(self, f: ParamField) -> QWidget:
        lo, hi = NumberBox(f.minimum, f.maximum), NumberBox(f.minimum, f.maximum)
        self.setters[f.name] = lambda v: (lo.setValue(float(v[0])), hi.setValue(float(v[1])))
        self.setters[f.name](f.default)
        self.getters[f.name] = lambda: [lo.value(), hi.value()]
        self.field_widgets[f"family.{f.name}"] = [lo, hi]
        return _row(lo, QLabel("to"), hi, self._on_edit)

    def _make_float(self, f: ParamField) -> QWidget:
        box = self._number(f, f.default)
        cast = int if f.kind == "int" else float
        self.getters[f.name], self.setters[f.name] = box.value, lambda v: box.setValue(cast(v))
        self.field_widgets[f"family.{f.name}"] = [box]
        return box

    _make_int = _make_float

    def _make_bool(self, f: ParamField) -> QWidget:
        box = QCheckBox()
        box.setChecked(bool(f.default))
        box.toggled.connect(self._on_edit)
        self.getters[f.name], self.setters[f.name] = box.isChecked, lambda v: box.setChecked(bool(v))
        self.field_widgets[f"family.{f.name}"] = [box]
        return box

    def _make_formula(self, f: ParamField) -> QWidget:
        edit = QLineEdit(str(f.default))
        edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        edit.setPlaceholderText("e.g. a*sin(b*x + c)")
        edit.textChanged.connect(self._on_formula_text)
        self.getters[f.name], self.setters[f.name] = edit.text, lambda v: edit.setText(str(v))
        self.field_widgets[f"family.{f.name}"] = [edit]
        return edit

    def _make_ranges(self, f: ParamField) -> QWidget:
        host = QWidget()
        self._ranges_grid = QGridLayout(host)
        self._ranges_grid.setContentsMargins(0, 0, 0, 0)
        self._ranges_grid.setColumnStretch(1, 1)
        self._ranges_grid.setColumnStretch(2, 1)
        self._range_memory = {k: list(v) for k, v in f.default.items()}
        self.getters[f.name] = self._ranges_value
        self.setters[f.name] = self._set_ranges
        self.field_widgets[f"family.{f.name}"] = [host]
        self._set_ranges(f.default)
        return host

    def _ranges_value(self) -> dict[str, list[float]]:
        return {name: [lo.value(), hi.value()] for name, (lo, hi) in self._range_boxes().items()}

    def _range_boxes(self) -> dict[str, tuple[NumberBox, NumberBox]]:
        return {k[len("family.ranges."):]: tuple(w) for k, w in self.field_widgets.items() if k.startswith("family.ranges.")}

    def _set_ranges(self, ranges: dict[str, Any]) -> None:
        """Rebuild the name/min/max rows (one per formula parameter, in the order typed)."""
        grid = self._ranges_grid
        for key in [k for k in self.field_widgets if k.startswith("family.ranges.")]:
            del self.field_widgets[key]
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
            self.field_widgets[f"family.ranges.{name}"] = [lo, hi]
            self.labels[f"family.ranges.{name}"] = f"range of {name}"

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
