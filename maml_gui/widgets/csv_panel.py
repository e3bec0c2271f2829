"""The family editor's CSV mode: what was imported, in one line, a "Change…" button, and the preview.

Imported data is not edited field by field (changing the split would invalidate the stored
normalization): the panel keeps the family's settings as the import dialog produced them and
gives them to the editor's ``spec()``; "Change…" asks for the dialog again.
"""

from __future__ import annotations

import copy
from html import escape
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from core.tasks.csv_family import CsvFamily
from core.tasks.csv_rows import DEFAULTS
from core.tasks.labelled_rows import LabelledRowsFamily

from .plot_colors import PALETTE, class_colors

PREVIEW_ROWS = 60         # rows per label the labelled-rows preview draws
TITLE_CHARS = 26          # label names its title lists before "+N more" (fits the side panel)
TITLE = "Your CSV data…"   # the combo entry: choosing it imports a file unless data was imported before
PANEL_FAMILIES = (CsvFamily, LabelledRowsFamily)   # families whose data the panel holds (set by the import dialog)


def _defaults(cls) -> dict[str, Any]:
    """The settings the panel holds for ``cls``: all of the CSV family's; a labelled CSV's data
    fields (its ``n_way`` and ``split_seed`` stay in the form)."""
    return copy.deepcopy(DEFAULTS) if cls is CsvFamily else {f.name: copy.deepcopy(f.default) for f in cls.data_fields}


class CsvPanel(QWidget):
    """Holds the CSV family's settings for the editor and says in one line what they give."""

    change_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.params: dict[str, Any] = {}
        self._cls: type = CsvFamily
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.change = QPushButton("Change…")
        self.change.setToolTip("Reopen the import dialog: files, columns, task kind, normalization, split")
        self.change.clicked.connect(self.change_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary, 1)
        layout.addWidget(self.change, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def has_data(self) -> bool:
        return bool(self.params)

    def register(self, getters: dict[str, Callable], setters: dict[str, Callable], widgets: dict[str, list],
                 labels: dict[str, str], reset: bool, cls: type = CsvFamily) -> None:
        """Stand in for the form: every CSV setting (for ``cls`` :class:`LabelledRowsFamily`, its
        data fields) reads from and writes to ``params``.

        ``reset`` (a spec is being shown): start from the defaults, so settings the spec omits do
        not keep values of an earlier import.
        """
        defaults = _defaults(cls)
        if reset or not self.params or cls is not self._cls:
            self.params = copy.deepcopy(defaults)
        self._cls = cls
        for name in defaults:
            getters[name] = lambda name=name, d=defaults: copy.deepcopy(self.params.get(name, d[name]))
            setters[name] = lambda value, name=name: self.params.__setitem__(name, copy.deepcopy(value))
            widgets[f"family.{name}"] = [self]
            labels[f"family.{name}"] = "CSV data"

    def show_family(self, family: CsvFamily | LabelledRowsFamily | None, params: dict[str, Any] | None = None,
                    building: bool = False) -> None:
        """``growth.csv — 40 tasks (28 / 6 / 6), inputs: age, target: height``; for labelled rows
        ``flowers.csv — 5-way episodes over 30 labels of 'species' (19 / 5 / 6), inputs: …``
        (``params``: a labelled CSV's settings, which the editor keeps rather than this panel)."""
        params = self.params if params is None else params
        source = _source(params.get("paths") or ([params["path"]] if params.get("path") else []))
        self.summary.setToolTip("\n".join(params.get("paths") or [params.get("path") or ""]))
        if family is None:
            self.summary.setText(f"<b>{source}</b> — reading the file…" if building else
                                 f"<b>{source}</b> — cannot be used as it is (see below); Change… to fix it")
            return
        if isinstance(family, LabelledRowsFamily):
            if family.params["split_rows"]:
                rows = family.split_rows()
                split = (f"every label in each split, rows {rows['train']} / {rows['val']} / {rows['test']} "
                         "meta-train / validation / test")
            else:
                sizes = family.split_sizes()
                split = f"{sizes['train']} / {sizes['val']} / {sizes['test']} meta-train / validation / test"
            self.summary.setText(
                f"<b>{source}</b> — {family.params['n_way']}-way episodes over {len(family.classes)} labels of "
                f"{family.target!r} ({split}), inputs: {', '.join(family.features)} <span style='color:#555'>"
                "(standardized; no task column: each label is a class)</span>")
            return
        sizes = family.split_sizes()
        kind = (f"classification, {len(family.classes or [])} classes" if family.kind == "classification"
                else "regression")
        scaled = ", standardized" if family.normalization else ""
        self.summary.setText(
            f"<b>{source or 'example: growth.csv'}</b> — {sum(sizes.values())} tasks "
            f"({sizes['train']} / {sizes['val']} / {sizes['test']}), inputs: {', '.join(family.features)}, "
            f"target: {family.target} <span style='color:#555'>({kind}{scaled})</span>")


def _source(paths: list[str]) -> str:
    names = [Path(p).name + ("/" if Path(p).is_dir() else "") for p in paths]
    return names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more" if names else ""


def draw_csv_preview(plot: pg.PlotWidget, curves: list, dots: pg.ScatterPlotItem, family: CsvFamily, seed: int) -> None:
    """A few meta-training tasks in the file's units: target against the first input column, one
    colour per task, joined by lines for a single input (classification: one task's rows by class)."""
    n_train = len(family.task_names("train"))
    first = f"{family.features[0]}" + (f" (1st of {family.input_dim} inputs)" if family.input_dim > 1 else "")
    if family.kind == "classification":
        for curve in curves:
            curve.hide()
        x, labels = family.task_points("train", seed % n_train)
        codes = np.unique(labels, return_inverse=True)[1]
        colors = class_colors(int(codes.max()) + 1)
        y = x[:, 1] if family.input_dim > 1 else codes.astype(float)
        dots.setData(x[:, 0], y, brush=[pg.mkBrush(colors[c]) for c in codes], symbol="o", size=7)
        _axis_labels(plot, family.features[0], family.features[1] if family.input_dim > 1 else f"{family.target} (class)")
        return
    xs, ys, brushes = [], [], []
    for i, curve in enumerate(curves):
        if i >= n_train:
            curve.hide()
            continue
        x, y = family.task_points("train", (seed * len(curves) + i) % n_train)
        order = np.argsort(x[:, 0], kind="stable")
        curve.setData(x[order, 0], y[order], connect="finite")
        curve.setVisible(family.input_dim == 1)   # with more inputs a line through the rows means nothing
        xs.append(x[:, 0])
        ys.append(y)
        brushes += [pg.mkBrush(PALETTE[i % len(PALETTE)])] * len(y)
    dots.setData(np.concatenate(xs), np.concatenate(ys), brush=brushes, symbol="o", size=5)
    _axis_labels(plot, first, family.target)


def draw_labelled_preview(plot: pg.PlotWidget, curves: list, dots: pg.ScatterPlotItem, family: LabelledRowsFamily,
                          seed: int) -> None:
    """The meta-train rows of one episode's N labels on the first two principal components of all
    meta-train rows (x against x₂ says little of 50 inputs), one colour per label, named in the title."""
    for curve in curves:
        curve.hide()
    sampler = family.sampler
    data = sampler.data.numpy().astype(np.float64)
    groups = sampler.splits["train"]
    ranges = [np.arange(int(sampler._starts[g]), int(sampler._starts[g] + sampler._counts[g])) for g in groups]
    train = data[np.concatenate(ranges)]
    _, _, vt = np.linalg.svd(train - train.mean(0), full_matrices=False)
    axes = vt[:2].T if family.input_dim > 1 else np.ones((1, 1))
    rng = np.random.default_rng(seed)
    shown = sorted(rng.choice(len(groups), size=min(family.params["n_way"], len(groups)), replace=False))
    colors = class_colors(len(shown))
    xs, ys, brushes = [], [], []
    for i, g in enumerate(shown):
        rows = rng.permutation(ranges[g])[:PREVIEW_ROWS]
        projected = data[rows] @ axes
        xs.append(projected[:, 0])
        ys.append(projected[:, 1] if family.input_dim > 1 else np.full(len(rows), float(i)))
        brushes += [pg.mkBrush(colors[i])] * len(rows)
    dots.setData(np.concatenate(xs), np.concatenate(ys), brush=brushes, symbol="o", size=7)
    plot.setTitle(f"Rows of {_named(colors, [sampler.class_name(groups[g]) for g in shown])}", size="10pt")
    if family.input_dim > 1:
        _axis_labels(plot, f"principal component 1 of {family.input_dim} inputs", "principal component 2")
    else:
        _axis_labels(plot, family.features[0], "label")


def _named(colors: list, names: list[str]) -> str:
    """The labels in their colours, as many as fit the side panel (a long title would widen it)."""
    shown, used = [], 0
    for color, name in zip(colors, names):
        if shown and used + len(name) > TITLE_CHARS:
            return ", ".join(shown) + f" +{len(names) - len(shown)} more"
        shown.append(f"<span style='color:{color.name()}'>{escape(name)}</span>")
        used += len(name) + 2
    return ", ".join(shown)


def _axis_labels(plot: pg.PlotWidget, bottom: str, left: str) -> None:
    """Set both axis titles, centred again: pyqtgraph places a title only on resize, so a longer
    one would start where the last one did and run off the plot."""
    for side, text in (("bottom", bottom), ("left", left)):
        plot.setLabel(side, text)
        plot.getPlotItem().getAxis(side).resizeEvent()
