"""Task-family editor: pick a family, edit its settings, see a few tasks it generates.

The form is built from the family's ``ParamField`` descriptions, so a new family needs no
GUI code. Validation is the engine's (``build_family``): its ``ConfigError.field`` says which
input to mark, so the rules live in one place and the form never evaluates a formula itself.

Families of data chosen through an importer (CSV files, an image folder) are offered as "Your …"
entries that open the importer; their files and columns are kept here, not shown as fields.
Families whose building draws or decodes images (glyphs, an image folder) are built on a job
thread, so the window never waits on them; until one is ready ``error()`` says it is being built.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from core.config import FamilySpec
from core.data.csv_reader import CsvError
from core.errors import ConfigError
from core.envs import ENV_FAMILIES, build_any_family
from core.tasks import FAMILIES, TaskFamily
from core.tasks.csv_family import CsvFamily
from core.tasks.labelled_rows import LabelledRowsFamily

from maml_gui.widgets.field_names import label as field_label
from maml_gui.jobs.job_runner import JobRunner
from .csv_panel import PANEL_FAMILIES, TITLE as CSV_TITLE, CsvPanel, draw_csv_preview, draw_labelled_preview
from .family_form import DIALOG_ONLY, FORM_KINDS, IMAGE_FAMILIES, PREVIEW_TITLE, FamilyForm, widgets_for
from .image_grid import ImageGrid, ImagePanel, episode_rows
from .invalid_mark import INVALID_STYLE, mark_invalid
from .plot_base import style_plot
from .plot_colors import PALETTE, class_colors

PREVIEW_TASKS = 5
PREVIEW_POINTS = 200     # grid points per true-function curve
PREVIEW_SAMPLES = 20     # noisy sample points per task (regression) or per class (blobs)
DEBOUNCE_MS = 150
IMAGES_TITLE = "Your image folder…"   # the combo entry: choosing it imports a folder unless one was imported
IMPORTED = ("images", "labelled_csv")   # built only from imported data: offered through their importer
BUILDING = {"glyphs": "drawing the glyphs…", "images": "reading the images…", "labelled_csv": "reading the file…"}
CHEAP = ("n_way", "rotations", "split", "split_seed")   # glyphs changing only these are rebuilt from the cache


class FamilyEditor(QWidget):
    """Edits a :class:`FamilySpec`; ``changed`` on every edit, ``validity_changed`` when it flips."""

    changed = Signal()
    validity_changed = Signal(bool)
    import_requested = Signal()   # "Your CSV data…" chosen with nothing imported yet, or CSV "Change…"
    image_import_requested = Signal()   # "Your image folder…" likewise, or the image panel's "Change…"
    built = Signal()   # a family built on the job thread is in place (or refused)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._error: ConfigError | None = None
        self._family: TaskFamily | None = None
        self._preview_seed = 0
        self._updating = False
        self._kept: dict[str, dict[str, Any]] = {}   # per family: settings not shown as fields (files, split)
        self._built_spec: FamilySpec | None = None     # the spec of the last family built on the job thread
        self._building = False                         # waiting for the job thread's family
        self._runner = JobRunner(self, "maml-family")
        self._runner.done.connect(self._on_built)
        self._runner.failed.connect(self._on_build_failed)

        self._combo = QComboBox()
        for name, cls in FAMILIES.items():
            if name not in IMPORTED:
                self._combo.addItem(CSV_TITLE if cls is CsvFamily else cls.title, name)
        self._combo.addItem(IMAGES_TITLE, "images")
        for name, cls in ENV_FAMILIES.items():   # meta-RL: environments whose tasks differ in a goal, a speed …
            self._combo.addItem(f"{cls.title} · RL", name)
        self._shown_name = self._combo.currentData()
        self.csv_panel = CsvPanel()   # stands in for the form when the family is imported CSV data
        self.csv_panel.change_requested.connect(self.import_requested)
        self.image_panel = ImagePanel()   # says what an imported image folder holds
        self.image_panel.change_requested.connect(self.image_import_requested)
        self._combo.setToolTip("Which family of tasks to meta-learn; each task is drawn from it at random.")
        self._form_host = QWidget()
        self._form = QFormLayout(self._form_host)
        self._form.setContentsMargins(0, 0, 0, 0)
        self.form = FamilyForm(self._form, self._on_edit)   # the chosen family's fields
        self._error_label = QLabel()
        self._error_label.setStyleSheet("color: #d62728;")
        self._error_label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self._error_label.setWordWrap(True)
        self._error_label.hide()
        self._status_label = QLabel()   # "drawing the glyphs…": not an error, only not ready yet
        self._status_label.setStyleSheet("color: #555;")
        self._status_label.hide()

        self.preview = pg.PlotWidget()
        style_plot(self.preview, PREVIEW_TITLE, "x", "y")
        self.preview.setMinimumHeight(180)
        self._curves = [self.preview.plot(pen=pg.mkPen(PALETTE[i], width=2)) for i in range(PREVIEW_TASKS)]
        self._dots = pg.ScatterPlotItem(size=5, pen=None)
        self.preview.addItem(self._dots)
        self.image_grid = ImageGrid(empty_text="…")   # image families: a few classes of one episode
        self.image_grid.setMinimumHeight(180)   # as the plot: the side panel scrolls, so it gets its minimum
        self.image_grid.setMaximumHeight(240)
        self.image_grid.setToolTip("One sampled episode: a row per class (its label, then its name), a few examples "
                                   "each")
        self.image_grid.hide()
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
        layout.addWidget(self.image_panel)   # what the folder holds, above its N-way / split fields
        layout.addWidget(self.csv_panel)     # likewise the CSV file (a labelled file's N-way fields follow)
        layout.addWidget(self._form_host)
        layout.addWidget(self._error_label)
        layout.addWidget(self._status_label)
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.image_grid, 1)
        layout.addLayout(preview_bar)
        self.setStyleSheet(INVALID_STYLE)

        self._combo.currentIndexChanged.connect(self._on_family_chosen)
        self._build_form(family_class(self._combo.currentData()))
        self._validate()
        self._redraw_preview()

    def _build_form(self, cls: type[TaskFamily]) -> None:
        """The form for ``cls``: its fields, or the CSV panel standing in for them."""
        form = self.form
        form.clear()
        form.field_widgets["family.name"] = [self._combo]
        self._shown_name = cls.name
        self.csv_panel.setVisible(cls in PANEL_FAMILIES)   # labelled rows: the file and Change…
        self.preview.setTitle(PREVIEW_TITLE, size="11pt")
        self.image_panel.setVisible(cls.name == "images")
        images = cls.name in IMAGE_FAMILIES
        self.preview.setVisible(not images)
        self.image_grid.setVisible(images)
        self.image_grid.clear()   # a new family's examples come once it is built
        if cls is CsvFamily:
            self.csv_panel.register(form.getters, form.setters, form.field_widgets, form.labels, self._updating)
        data_fields = getattr(cls, "data_fields", ())   # environment families have none
        shown = [] if cls is CsvFamily else [f for f in cls.fields + data_fields
                                              if f.kind in FORM_KINDS and f.name not in DIALOG_ONLY.get(cls.name, ())]
        if cls is not CsvFamily:   # everything else (files, columns, split) is kept as imported
            kept = self._kept.setdefault(cls.name, {})
            for f in cls.fields + data_fields:
                if f not in shown:
                    kept.setdefault(f.name, copy.deepcopy(f.default))
                    form.labels[f"family.{f.name}"] = f.label
                    form.field_widgets[f"family.{f.name}"] = []   # the error label names it
        for f in shown:
            form.add(f)
        self.preview.setLabel("bottom", "x₁" if cls.kind == "classification" else "x")
        self.preview.setLabel("left", "x₂" if cls.kind == "classification" else "y")

    # ------------------------------------------------------------------ public API
    def spec(self) -> FamilySpec:
        """The family as edited, every field included (even when invalid: ``error()`` says why)."""
        name = self._combo.currentData()
        params = {key: copy.deepcopy(value) for key, value in self._kept.get(name, {}).items()}
        params.update({key: get() for key, get in self.form.getters.items()})
        return FamilySpec(name, params)

    def set_spec(self, spec: FamilySpec) -> None:
        """Show ``spec``; settings it omits take the family's defaults, unknown ones are dropped."""
        index = self._combo.findData(spec.name)
        if index < 0 and spec.name in FAMILIES:   # an imported family not offered in the list (labelled rows)
            self._combo.addItem(FAMILIES[spec.name].title, spec.name)
            index = self._combo.count() - 1
        if index < 0:
            raise ConfigError("family.name", f"unknown family {spec.name!r}")
        self._updating = True
        try:
            self._combo.setCurrentIndex(index)
            self._kept.pop(spec.name, None)   # settings the spec omits take the defaults
            self._build_form(family_class(spec.name))
            # the formula first: typing it rebuilds the range rows, which the ranges then fill
            for name, value in sorted(dict(spec.params).items(), key=lambda kv: kv[0] == "ranges"):
                if name in self.form.setters:
                    try:
                        self.form.setters[name](value)
                    except (TypeError, ValueError, IndexError, AttributeError):
                        raise ConfigError(f"family.{name}", f"cannot show {value!r} in the form") from None
                elif name in self._kept.get(spec.name, {}):
                    self._kept[spec.name][name] = copy.deepcopy(value)
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
        return {"curves": curves, "points": (self._dots.data["x"].copy(), self._dots.data["y"].copy()),
                "images": self.image_grid.rows() if not self.image_grid.isHidden() else []}

    def is_building(self) -> bool:
        """A family is being built on the job thread (``built`` fires when it is in place)."""
        return self._building

    def has_images(self) -> bool:
        """An image folder was imported (choosing "Your image folder…" shows it again)."""
        return bool(self._kept.get("images", {}).get("path"))

    # ------------------------------------------------------------------ validation and preview
    def _on_family_chosen(self) -> None:
        chosen = self._combo.currentData()
        ask = {CsvFamily.name: (self.csv_panel.has_data, self.import_requested),
               "images": (self.has_images, self.image_import_requested)}.get(chosen)
        if not self._updating and ask is not None and not ask[0]():
            self._updating = True   # keep showing the current family until data is imported
            self._combo.setCurrentIndex(self._combo.findData(self._shown_name))
            self._updating = False
            ask[1].emit()
        elif not self._updating:
            self._build_form(family_class(self._combo.currentData()))
            self._on_edit()

    def _on_edit(self) -> None:
        if self._updating:
            return
        self._validate()
        self.changed.emit()
        self._timer.start()

    def _validate(self) -> None:
        spec = self.spec()
        if self._in_background(spec):
            self._runner.submit(spec, lambda: _build(spec))   # the latest edit wins; older results are dropped
            self._set_result(None, ConfigError("family", f"{BUILDING[spec.name]} (a moment)"), building=True)
            return
        self._runner.cancel()   # a family built here supersedes one still being built
        family, error = _build(spec)
        self._set_result(family, error)

    def _in_background(self, spec: FamilySpec) -> bool:
        """Glyphs are drawn (seconds) unless only cheap settings changed; a folder or file is always read there."""
        if spec.name not in BUILDING:
            return False
        last = self._built_spec
        if spec.name != "glyphs" or last is None or last.name != spec.name:
            return True
        return any(v != last.params.get(k) for k, v in spec.params.items() if k not in CHEAP)

    def _set_result(self, family: TaskFamily | None, error: ConfigError | None, building: bool = False) -> None:
        was_valid = self._error is None
        self._family, self._error, self._building = family, error, building
        self._status_label.setText(error.message if building else "")
        self._status_label.setVisible(building)
        self._show_error(shown=not building)
        if self._shown_name == CsvFamily.name:
            self.csv_panel.show_family(self.family())
        elif self._shown_name == LabelledRowsFamily.name:
            self.csv_panel.show_family(self.family(), self.spec().params, building)
        if self._shown_name == "images" and not building:
            self.image_panel.show_family(self.spec().params, self.family())
        path = self._kept.get("images", {}).get("path")
        self._combo.setItemText(self._combo.findData("images"),
                                f"Image folder: {Path(path).name}/" if path else IMAGES_TITLE)
        if was_valid != (self._error is None):
            self.validity_changed.emit(self._error is None)

    def _on_built(self, spec: FamilySpec, result: tuple) -> None:
        if spec != self.spec():
            return   # an edit since: its own build is on the way
        self._built_spec = spec
        self._set_result(*result)
        self.changed.emit()   # the window reads the family (and whether it is valid) again
        self._redraw_preview()
        self.built.emit()

    def _on_build_failed(self, spec: FamilySpec, message: str) -> None:
        if spec == self.spec():
            self._set_result(None, ConfigError("family", f"cannot build this family: {message}"))
            self.changed.emit()
            self.built.emit()

    def _show_error(self, shown: bool = True) -> None:
        bad = widgets_for(self.form.field_widgets, self._error.field) if self._error and shown else []
        for widgets in self.form.field_widgets.values():
            for w in widgets:
                mark_invalid(w, w in bad, self._error.message if w in bad else "")
        if self._error is None or not shown:
            self._error_label.hide()
            return
        field = self._error.field
        label = self.form.labels.get(field) or field_label(field, self._shown_name) or field or "family"
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
            if getattr(family, "kind", "") == "rl":
                self._draw_env_tasks(family, generator)
            elif family.input_shape is not None:
                self.image_grid.set_rows(*episode_rows(family, self._preview_seed))
            elif family.tabular:
                draw_csv_preview(self.preview, self._curves, self._dots, family, self._preview_seed)
            elif isinstance(family, LabelledRowsFamily):
                draw_labelled_preview(self.preview, self._curves, self._dots, family, self._preview_seed)
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

    def _draw_env_tasks(self, family, generator: torch.Generator) -> None:
        """Meta-RL: tasks as points (a goal's x and y; a 1-number task along x)."""
        tasks = family.sample_tasks(PREVIEW_SAMPLES, generator).numpy()
        for curve in self._curves:
            curve.hide()
        names = tuple(getattr(family, "task_names", ())) or ("task",)
        y = tasks[:, 1] if tasks.shape[1] > 1 else np.zeros(len(tasks))
        self._dots.setData(tasks[:, 0], y, brush=pg.mkBrush(PALETTE[3]), symbol="star", size=10)
        self.preview.setLabel("bottom", names[0])
        self.preview.setLabel("left", names[1] if len(names) > 1 else "")

    def _draw_points(self, family: TaskFamily, generator: torch.Generator) -> None:
        """Classification: one task's points coloured by class (labels only mean something within a task)."""
        batch = family.sample(1, PREVIEW_SAMPLES, 1, generator)
        for curve in self._curves:
            curve.hide()
        points, labels = batch.support_x[0].numpy(), batch.support_y[0].numpy()
        colors = class_colors(family.output_dim)
        brushes = [pg.mkBrush(colors[int(k)]) for k in labels]
        self._dots.setData(points[:, 0], points[:, 1], brush=brushes, symbol="o", size=7)


def family_class(name: str) -> type:
    """The class of a task family or (meta-RL) environment family: its title, settings and kind."""
    return FAMILIES.get(name) or ENV_FAMILIES[name]


def _build(spec: FamilySpec) -> tuple[TaskFamily | None, ConfigError | None]:
    """The family, or why it cannot be built, as plain values (this also runs on a job thread)."""
    try:
        return build_any_family(spec), None
    except ConfigError as exc:
        return None, exc
    except CsvError as exc:  # an imported file moved or changed since
        return None, ConfigError("family.path" if spec.name == "labelled_csv" else "family.paths", str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug or torch error must not take the form down
        return None, ConfigError("family", f"cannot build this family: {exc}")


