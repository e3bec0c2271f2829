"""Thumbnails of a few classes (one row per class, its name on the left), and the family editor's
panel for an imported image folder.

The grid paints its images itself: a preview of 5 × 4 small images is one paint, not twenty
labels to lay out, and the thumbnails grow or shrink with the space the panel gives them.
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QFont, QFontMetrics, QImage, QPainter, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolTip, QVBoxLayout, QWidget

GAP = 3
MIN_THUMB, MAX_THUMB = 14, 72
LABEL_SHARE = 0.42          # at most this share of the width goes to class names
PREVIEW_CLASSES, PREVIEW_EXAMPLES = 5, 4
NAME_SCALES = (1.0, 0.85, 0.75)   # a class name that does not fit its lines is tried in smaller type first
WARNING_CHARS = 90          # of the first warning shown in the panel (all of them in its tooltip)


class ImageGrid(QWidget):
    """Rows of ``uint8 [k, C, H, W]`` images (C = 1 grey or 3 RGB), each row named."""

    def __init__(self, parent: QWidget | None = None, empty_text: str = ""):
        super().__init__(parent)
        self._rows: list[np.ndarray] = []
        self._names: list[str] = []
        self._images: list[list[QImage]] = []
        self.empty_text = empty_text
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)

    # -- data ----------------------------------------------------------------------------------
    def set_rows(self, rows: Sequence[np.ndarray], names: Sequence[str]) -> None:
        self._rows = [np.ascontiguousarray(r, dtype=np.uint8) for r in rows]
        self._names = list(names)
        self._images = [[_qimage(img) for img in row] for row in self._rows]
        self.updateGeometry()
        self.update()

    def clear(self) -> None:
        self.set_rows([], [])

    def rows(self) -> list[tuple[str, tuple[int, ...]]]:
        """``(class name, images shape)`` per row: what tests and exports read."""
        return [(n, r.shape) for n, r in zip(self._names, self._rows)]

    def pixels(self, row: int) -> np.ndarray:
        return self._rows[row]

    # -- geometry ------------------------------------------------------------------------------
    def sizeHint(self) -> QSize:
        n = max(1, len(self._rows))
        return QSize(320, n * (40 + GAP))

    def minimumSizeHint(self) -> QSize:
        n = max(1, len(self._rows))
        return QSize(160, n * (MIN_THUMB + GAP))

    def _layout(self) -> tuple[int, int]:
        """(name column width, thumbnail side): thumbnails as tall as the rows allow, names get the
        width they leave (at least ``LABEL_SHARE`` of it), and thumbnails shrink when names need that."""
        k = max((len(r) for r in self._rows), default=1)
        fm = self.fontMetrics()
        widest = max((fm.horizontalAdvance(n) for n in self._names), default=0) + 8
        by_height = min(MAX_THUMB, (self.height() - GAP * len(self._rows)) // max(1, len(self._rows)))
        label = min(widest, max(int(self.width() * LABEL_SHARE), self.width() - k * (by_height + GAP)))
        by_width = (self.width() - label - GAP * k) // max(1, k)
        return label, max(MIN_THUMB, min(by_width, by_height))

    # -- painting ------------------------------------------------------------------------------
    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        text = self.palette().color(QPalette.ColorRole.WindowText)
        painter.setPen(text)
        if not self._rows:
            if self.empty_text:
                painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.empty_text)
            return
        label, side = self._layout()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, side < 28)
        for r, ((lines, font), images) in enumerate(zip(self._fitted_names(), self._images)):
            y = r * (side + GAP)
            painter.setFont(font)
            painter.drawText(QRect(0, y, label - 6, side), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                             "\n".join(lines))
            for c, image in enumerate(images):
                painter.drawImage(QRect(label + c * (side + GAP), y, side, side), image)
        painter.end()

    def shown_names(self) -> list[list[str]]:
        """Each row's name as drawn, line by line (see :meth:`_fitted_names`)."""
        return [lines for lines, _ in self._fitted_names()]

    def _fitted_names(self) -> list[tuple[list[str], QFont]]:
        """Each row's name on as many lines as the row's height holds (broken after "/", "_", spaces…),
        all in slightly smaller type if that makes them fit, elided in the middle only when even that fails."""
        if not self._rows:
            return []
        label, side = self._layout()
        for scale in NAME_SCALES:
            font = QFont(self.font())
            font.setPointSizeF(self.font().pointSizeF() * scale)
            fm = QFontMetrics(font)
            rows = [wrap_name(fm, name, label - 6, max(1, side // fm.lineSpacing())) for name in self._names]
            if all("…" in name or not any("…" in line for line in lines) for lines, name in zip(rows, self._names)):
                break
        return [(lines, font) for lines in rows]

    def event(self, event) -> bool:
        """A class name, also one cut short by the width, is shown whole in a tooltip."""
        if event.type() == event.Type.ToolTip and self._rows:
            _, side = self._layout()
            row = int(event.pos().y() // (side + GAP))
            if 0 <= row < len(self._names):
                QToolTip.showText(event.globalPos(), self._names[row], self)
            else:
                QToolTip.hideText()
            return True
        return super().event(event)


def wrap_name(fm: QFontMetrics, name: str, width: int, lines: int) -> list[str]:
    """``name`` on at most ``lines`` lines of at most ``width`` pixels, broken after "/", "_", "-" or a
    space (within a word only when one word is too wide); the last line elided in the middle if it
    must be (Omniglot's "images_background/Ojibwe_(Canadian_Aboriginal_Syllabics)/character01")."""
    if fm.horizontalAdvance(name) <= width or lines <= 1:
        return [fm.elidedText(name, Qt.TextElideMode.ElideMiddle, width)]
    pieces = []
    for token in re.split(r"(?<=[/_\- ])", name):
        while token and fm.horizontalAdvance(token) > width:   # one word wider than the column: cut it
            cut = len(token)
            while cut > 1 and fm.horizontalAdvance(token[:cut]) > width:
                cut -= 1
            pieces.append(token[:cut])
            token = token[cut:]
        if token:
            pieces.append(token)
    out = [""]
    for piece in pieces:
        if out[-1] and fm.horizontalAdvance(out[-1] + piece) > width:
            out.append("")
        out[-1] += piece
    if len(out) > lines:
        out = out[:lines - 1] + [fm.elidedText("".join(out[lines - 1:]), Qt.TextElideMode.ElideMiddle, width)]
    return [line.rstrip() for line in out]


def _qimage(image: np.ndarray) -> QImage:
    """``[C, H, W]`` uint8 -> a QImage that owns its pixels."""
    channels, height, width = image.shape
    if channels == 1:
        data = np.ascontiguousarray(image[0])
        return QImage(data.data, width, height, width, QImage.Format.Format_Grayscale8).copy()
    data = np.ascontiguousarray(image[:3].transpose(1, 2, 0))
    return QImage(data.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def episode_rows(family: Any, seed: int, classes: int = PREVIEW_CLASSES,
                 examples: int = PREVIEW_EXAMPLES) -> tuple[list[np.ndarray], list[str]]:
    """A few classes of one meta-train episode as displayable pixels, with their names.

    Episodes hold standardized floats; the family's normalization turns them back into 0–255.
    Classes with fewer examples than asked give what they have (down to one).
    """
    from core.errors import ConfigError   # engine only; no Qt there

    generator = torch.Generator().manual_seed(seed)
    for shots in sorted({examples, 2, 1}, reverse=True):
        try:
            batch = family.sample(1, shots, 0, generator)
            break
        except ConfigError:
            if shots == 1:
                raise
    names = family.episode_classes(batch)[0]
    n_way = len(names)
    x = batch.support_x[0].reshape(n_way, shots, *batch.support_x.shape[2:]).numpy()   # [N, K, C, H, W]
    norm = family.normalization or {}
    mean = np.asarray(norm.get("channel_mean", [0.0]), dtype=np.float32)[:, None, None]
    std = np.asarray(norm.get("channel_std", [1.0]), dtype=np.float32)[:, None, None]
    pixels = np.clip((x * std + mean) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    shown = min(classes, n_way)
    return [pixels[i] for i in range(shown)], [f"{i}: {names[i]}" for i in range(shown)]


def folder_rows(data: Any, classes: int = 6, examples: int = 5) -> tuple[list[np.ndarray], list[str]]:
    """The first examples of a few classes spread over a decoded folder (``ImageFolderData``)."""
    found = data.classes
    picks = np.linspace(0, len(found) - 1, min(classes, len(found))).round().astype(int) if found else []
    rows, names = [], []
    for i in dict.fromkeys(int(p) for p in picks):
        c = found[i]
        rows.append(data.images[c.start:c.start + min(examples, c.count)].numpy())
        names.append(c.name)
    return rows, names


class ImagePanel(QWidget):
    """Stands in for the path and image settings of an imported image folder: what it holds, in a
    few lines, and "Change…" (the import dialog reads it again at another size, or another folder)."""

    change_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warnings = QLabel()
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color: #8a5a00;")
        self.warnings.hide()
        self.change = QPushButton("Change…")
        self.change.setToolTip("Reopen the image folder import: another folder, image size, channels, rotations")
        self.change.clicked.connect(self.change_requested)
        text = QVBoxLayout()
        text.setContentsMargins(0, 0, 0, 0)
        text.addWidget(self.summary)
        text.addWidget(self.warnings)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(text, 1)
        layout.addWidget(self.change, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_family(self, params: dict[str, Any], family: Any | None) -> None:
        """``omniglot/`` — Omniglot layout, 1,623 classes (1,040 / 259 / 324), 28×28 grey, 25.4 MB."""
        path = str(params.get("path") or "")
        name = escape(Path(path).name + "/") if path else "no folder"
        self.summary.setToolTip(path)
        if family is None:
            self.summary.setText(f"<b>{name}</b> — not usable as it is (see below); Change… to fix it")
            self.warnings.hide()
            return
        sizes, data = family.split_sizes(), family.data
        size, channels = params.get("image_size", 28), params.get("channels", 1)
        layout = data.layout.split(" (")[0]
        self.summary.setText(
            f"<b>{name}</b> — {escape(layout)} layout, {len(data.classes):,} classes, {len(data.images):,} images; "
            f"episode classes {sizes['train']:,} / {sizes['val']:,} / {sizes['test']:,} "
            f"<span style='color:#555'>(train / val / test), {size}×{size} {'grey' if channels == 1 else 'RGB'}, "
            f"{family.nbytes / 1e6:.1f} MB in memory</span>")
        notes = family.warnings
        whole = notes[0] if notes else ""
        first = whole if len(whole) <= WARNING_CHARS else whole[:WARNING_CHARS] + "…"
        self.warnings.setText(f"{len(notes)} warning{'s' * (len(notes) != 1)}: {escape(first)}"
                              + (" (hover for all)" if len(notes) > 1 or first != whole else ""))
        self.warnings.setToolTip("\n\n".join(notes))
        self.warnings.setVisible(bool(notes))
