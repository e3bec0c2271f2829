"""Task-family editor: pick a family, edit its settings, see a few tasks it generates.

The form is built from the family's ``ParamField`` descriptions, so a new family needs no
GUI code. Validation is the engine's (``build_family``): its ``ConfigError.field`` says which
input to mark, so the rules live in one place and the form never evaluates a formula itself.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QColor, QFontDatabase, QPalette
from PySide6.QtWidgets import (QAbstractSpinBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from core.config import FamilySpec
from core.csv_reader import CsvError
from core.errors import ConfigError
from core.tasks import FAMILIES, ParamField, TaskFamily, build_family
from core.tasks.csv_family import CsvFamily
from core.tasks.formula import FormulaError, parse_formula

from .csv_panel import TITLE as CSV_TITLE, CsvPanel, draw_csv_preview
from .plot_base import style_plot
from .plot_colors import PALETTE, class_colors

PREVIEW_TASKS = 5
PREVIEW_POINTS = 200     # grid points per true-function curve
PREVIEW_SAMPLES = 20     # noisy sample points per task (regression) or per class (blobs)
DEBOUNCE_MS = 150
INVALID_STYLE = 'QLineEdit[invalid="true"] { border: 1px solid #d62728; border-radius: 2px; padding: 1px; }'
INVALID_BASE = "#fde3e3"
NEW_RANGE = [0.0, 1.0]   # range offered for a parameter that first appears in a typed formula


class NumberBox(QDoubleSpinBox):
    """A spin box that keeps full float precision (pi stays pi) but shows at most 6 decimals."""

    def __init__(self, minimum: float | None = None, maximum: float | None = None, parent=None):
        super().__init__(parent)
        self.setDecimals(15)
        self.setRange(-1e9 if minimum is None else minimum, 1e9 if maximum is None else maximum)
        self.setSingleStep(0.1)
        self.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:
        text = f"{value:.6f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()


class FamilyEditor(QWidget):
    """Edits a :class:`FamilySpec`; ``changed`` on every edit, ``validity_changed`` when it flips."""

    changed = Signal()
    validity_changed = Signal(bool)
    import_requested = Signal()   # "Your CSV data…" chosen with nothing imported yet, or CSV "Change…"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._getters: dict[str, Callable[[], Any]] = {}
        self._setters: dict[str, Callable[[Any], None]] = {}
        self._field_widgets: dict[str, list[QWidget]] = {}   # "family.amplitude" -> widgets to mark
        self._labels: dict[str, str] = {}
        self._ranges_grid: QGridLayout | None = None
        self._range_memory: dict[str, list[float]] = {}       # formula ranges survive retyping a name
        self._error: ConfigError | None = None
        self._family: TaskFamily | None = None
        self._preview_seed = 0
        self._updating = False

        self._combo = QComboBox()
        for name, cls in FAMILIES.items():
            self._combo.addItem(CSV_TITLE if cls is CsvFamily else cls.title, name)
        self._shown_name = self._combo.currentData()
        self.csv_panel = CsvPanel()   # stands in for the form when the family is imported CSV data
        self.csv_panel.change_requested.connect(self.import_requested)
        self._combo.setToolTip("Which family of tasks to meta-learn; each task is drawn from it at random.")
        self._form_host = QWidget()
        self._form = QFormLayout(self._form_host)
        self._form.setContentsMargins(0, 0, 0, 0)
        self._error_label = QLabel()
        self._error_label.setStyleSheet("color: #d62728;")
        self._error_label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self._error_label.setWordWrap(True)
        self._error_label.hide()

        self.preview = pg.PlotWidget()
        style_plot(self.preview, "Sample tasks", "x", "y")
        self.preview.setMinimumHeight(180)
        self._curves = [self.preview.plot(pen=pg.mkPen(PALETTE[i], width=2)) for i in range(PREVIEW_TASKS)]
        self._dots = pg.ScatterPlotItem(size=5, pen=None)
        self.preview.addItem(self._dots)
        self._new_tasks = QPushButton("New tasks")
        self._new_tasks.setToolTip("Draw different example tasks from the same family.")
        self._new_tasks.clicked.connect(self._on_new_tasks)

        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self._redraw_preview)

        header = QHBoxLayout()
        header.addWidget(QLabel("Family"))
        header.addWidget(self._combo, 1)
        preview_bar = QHBoxLayout()
        preview_bar.addStretch(1)
        preview_bar.addWidget(self._new_tasks)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self._form_host)
        layout.addWidget(self.csv_panel)
        layout.addWidget(self._error_label)
        layout.addWidget(self.preview, 1)
        layout.addLayout(preview_bar)
        self.setStyleSheet(INVALID_STYLE)

        self._combo.currentIndexChanged.connect(self._on_family_chosen)
        self._build_form(FAMILIES[self._combo.currentData()])
        self._validate()
        self._redraw_preview()

    # ------------------------------------------------------------------ public API
    def spec(self) -> FamilySpec:
        """The family as edited, every field included (even when invalid: ``error()`` says why)."""
        return FamilySpec(self._combo.currentData(), {name: get() for name, get in self._getters.items()})

    def set_spec(self, spec: FamilySpec) -> None:
        """Show ``spec``; settings it omits take the family's defaults, unknown ones are dropped."""
        index = self._combo.findData(spec.name)
        if index < 0:
            raise ConfigError("family.name", f"unknown family {spec.name!r}")
        self._updating = True
        try:
            self._combo.setCurrentIndex(index)
            self._build_form(FAMILIES[spec.name])
            # the formula first: typing it rebuilds the range rows, which the ranges then fill
            for name, value in sorted(dict(spec.params).items(), key=lambda kv: kv[0] == "ranges"):
                if name in self._setters:
                    try:
                        self._setters[name](value)
                    except (TypeError, ValueError, IndexError, AttributeError):
                        raise ConfigError(f"family.{name}", f"cannot show {value!r} in the form") from None
        finally:
            self._updating = False
        self._on_edit()

    def error(self) -> str | None:
        """``"family.<field>: reason"`` for the first invalid setting, or None."""
        return None if self._error is None else str(self._error)

    def error_field(self) -> str | None:
        return None if self._error is None else self._error.field

    def family(self) -> TaskFamily | None:
        """The last valid family built from the form (None while invalid)."""
        return self._family if self._error is None else None

    def preview_data(self) -> dict[str, Any]:
        """What the preview draws: ``curves`` [(x, y)] and ``points`` (x, y) — for tests and export."""
        curves = [c.getData() for c in self._curves if c.isVisible() and c.getData()[0] is not None]
        return {"curves": curves, "points": (self._dots.data["x"].copy(), self._dots.data["y"].copy())}

    # ------------------------------------------------------------------ form
    def _build_form(self, cls: type[TaskFamily]) -> None:
        while self._form.rowCount():
            self._form.removeRow(0)
        for table in (self._getters, self._setters, self._field_widgets, self._labels):
            table.clear()
        self._ranges_grid = None
        self._field_widgets["family.name"] = [self._combo]
        self._shown_name = cls.name
        self.csv_panel.setVisible(cls is CsvFamily)
        if cls is CsvFamily:
            self.csv_panel.register(self._getters, self._setters, self._field_widgets, self._labels, self._updating)
        for f in () if cls is CsvFamily else cls.fields:
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

    # ------------------------------------------------------------------ validation and preview
    def _on_family_chosen(self) -> None:
        if not self._updating and self._combo.currentData() == CsvFamily.name and not self.csv_panel.has_data():
            self._updating = True   # keep showing the current family until data is imported
            self._combo.setCurrentIndex(self._combo.findData(self._shown_name))
            self._updating = False
            self.import_requested.emit()
        elif not self._updating:
            self._build_form(FAMILIES[self._combo.currentData()])
            self._on_edit()

    def _on_edit(self) -> None:
        if self._updating:
            return
        self._validate()
        self.changed.emit()
        self._timer.start()

    def _validate(self) -> None:
        was_valid = self._error is None
        try:
            self._family, self._error = build_family(self.spec()), None
        except ConfigError as exc:
            self._error = exc
        except CsvError as exc:  # an imported file moved or changed since
            self._error = ConfigError("family.paths", str(exc))
        except Exception as exc:  # a bug or torch error must not take the form down
            self._error = ConfigError("family", f"cannot build this family: {exc}")
        self._show_error()
        if self._shown_name == CsvFamily.name:
            self.csv_panel.show_family(self.family())
        if was_valid != (self._error is None):
            self.validity_changed.emit(self._error is None)

    def _show_error(self) -> None:
        bad = _widgets_for(self._field_widgets, self._error.field) if self._error else []
        for widgets in self._field_widgets.values():
            for w in widgets:
                mark_invalid(w, w in bad, self._error.message if w in bad else "")
        if self._error is None:
            self._error_label.hide()
            return
        label = self._labels.get(self._error.field, self._error.field or "family")
        self._error_label.setText(f"{label}: {self._error.message}")
        self._error_label.show()

    def _on_new_tasks(self) -> None:
        self._preview_seed += 1
        self._redraw_preview()

    def _redraw_preview(self) -> None:
        """Sample tasks with a fixed seed, so editing a setting shows its effect on the same draws."""
        family = self.family()
        if family is None:
            return  # keep the last good preview; the error label says what is wrong
        try:
            generator = torch.Generator().manual_seed(self._preview_seed)
            if family.tabular:
                draw_csv_preview(self.preview, self._curves, self._dots, family, self._preview_seed)
            elif family.x_range is not None:
                self._draw_functions(family, generator)
            else:
                self._draw_points(family, generator)
        except Exception as exc:  # e.g. a formula that overflows: report, keep the form alive
            self._error_label.setText(f"preview failed: {exc}")
            self._error_label.show()

    def _draw_functions(self, family: TaskFamily, generator: torch.Generator) -> None:
        """Generated 1-D regression: a few tasks' true functions over the x range, with sampled points."""
        batch = family.sample(PREVIEW_TASKS, PREVIEW_SAMPLES, 1, generator)
        low, high = family.x_range
        grid = torch.linspace(low, high, PREVIEW_POINTS).reshape(1, -1, 1).repeat(PREVIEW_TASKS, 1, 1)
        with torch.no_grad():
            truth = family.function(batch.task_params, grid)[..., 0].numpy().astype(float)
        x = grid[0, :, 0].numpy()
        for curve, y in zip(self._curves, truth):  # gaps where f(x) is not finite (log of a negative, ...)
            curve.setData(*((x, y) if np.isfinite(y).any() else ([], [])), connect="finite")
            curve.show()
        xs, ys = batch.support_x.reshape(-1).numpy(), batch.support_y.reshape(-1).numpy()
        keep = np.flatnonzero(np.isfinite(ys))  # pyqtgraph cannot place a NaN point
        colors = np.repeat(np.arange(PREVIEW_TASKS), PREVIEW_SAMPLES)[keep]
        self._dots.setData(xs[keep], ys[keep], brush=[pg.mkBrush(PALETTE[c]) for c in colors], symbol="o", size=5)
        if not np.isfinite(truth).any():
            self._error_label.setText("note: the formula gives no finite value on this x range")
            self._error_label.show()

    def _draw_points(self, family: TaskFamily, generator: torch.Generator) -> None:
        """Classification: one task's points coloured by class (labels only mean something within a task)."""
        batch = family.sample(1, PREVIEW_SAMPLES, 1, generator)
        for curve in self._curves:
            curve.hide()
        points, labels = batch.support_x[0].numpy(), batch.support_y[0].numpy()
        colors = class_colors(family.output_dim)
        brushes = [pg.mkBrush(colors[int(k)]) for k in labels]
        self._dots.setData(points[:, 0], points[:, 1], brush=brushes, symbol="o", size=7)


def _row(lo: QWidget, middle: QWidget, hi: QWidget, on_edit: Callable[[], None]) -> QWidget:
    host = QWidget()
    layout = QHBoxLayout(host)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in (lo, middle, hi):
        layout.addWidget(w, 0 if w is middle else 1)
    lo.valueChanged.connect(on_edit)
    hi.valueChanged.connect(on_edit)
    return host


def _widgets_for(widgets: dict[str, list[QWidget]], field: str) -> list[QWidget]:
    """The inputs behind a ConfigError field: exact match, else the nearest parent path."""
    while field:
        if field in widgets:
            return widgets[field]
        field = field.rpartition(".")[0]
    return []


def mark_invalid(widget: QWidget, invalid: bool, reason: str = "") -> None:
    """Tint the field and put the reason in its tooltip (its help text comes back once fixed).

    A pink base colour keeps the native spin-box arrows (a style-sheet border would replace
    them); line edits also get a red border through ``INVALID_STYLE``.
    """
    if bool(widget.property("invalid")) == invalid:
        if invalid:
            widget.setToolTip(reason)
        return
    if invalid:
        widget.setProperty("help", widget.toolTip())
        widget.setToolTip(reason)
        palette = widget.palette()
        palette.setColor(QPalette.ColorRole.Base, QColor(INVALID_BASE))
        widget.setPalette(palette)
    else:
        widget.setToolTip(widget.property("help") or "")
        widget.setPalette(QPalette())
    widget.setProperty("invalid", invalid)
    widget.style().unpolish(widget)
    widget.style().polish(widget)
