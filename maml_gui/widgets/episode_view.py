"""The task view of an image run: one meta-test episode, its support set and the query labels the
network predicts after a chosen number of adaptation steps.

Draws a :class:`core.trained.task_views.EpisodeView` (plain arrays): per class, a line with its label and
full name, then its support images (grey frame) and its query images framed green (predicted
right) or red (wrong) with the predicted label *under* each, never on it. The images flow onto
more lines rather than shrink below a readable size; the episode scrolls when the panel is too
small for it (the Adapt panel is a narrow column). A slider picks the step (default: the last);
the accuracy after every step is written out, so the effect of adapting reads at a glance. The
images are painted, not one widget each: an episode can hold a hundred of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QEvent, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPen
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QScrollArea, QSizePolicy, QSlider, QToolTip, QVBoxLayout,
                               QWidget)

RIGHT, WRONG, SUPPORT = "#2ca02c", "#d62728", "#9a9a9a"
MIN_CELL, MAX_CELL = 28, 72   # pixels an image is drawn at: at least (readable) / at most
PAD = 4                       # between images
FRAME = 2                     # width of a query image's right/wrong frame
GAP = 14                      # between the support and the query images of a class
INDENT = 8                    # the images of a class sit under its name, indented


def _qimage(pixels: np.ndarray) -> QImage:
    """A copy (Qt keeps no pointer into numpy) of ``uint8 [H, W]`` grey or ``[H, W, 3]`` RGB pixels."""
    pixels = np.ascontiguousarray(pixels)
    h, w = pixels.shape[:2]
    if pixels.ndim == 2:
        return QImage(pixels.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    return QImage(pixels.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


@dataclass(frozen=True)
class Tile:
    kind: str        # "support" or "query"
    label: int       # the class (row) it belongs to
    index: int       # into the view's support or query images
    rect: QRect      # the image; a query image's predicted label is drawn just below it


@dataclass(frozen=True)
class Plan:
    cell: int
    names: list      # (label, QRect of its name line)
    tiles: list      # Tile
    height: int      # what it all needs


class EpisodeCanvas(QWidget):
    """Paints the classes; the images are fitted to the width the widget gets, onto more lines when
    they would otherwise be smaller than ``MIN_CELL``."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.view = None
        self.step = 0
        self._support: list[QImage] = []
        self._query: list[QImage] = []
        self._plan: Plan | None = None
        self._room = QSize(520, 320)   # the space it is shown in (a scroll area's viewport)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumWidth(2 * MIN_CELL + GAP + INDENT)

    def set_view(self, view) -> None:
        self.view = view
        self._support = [_qimage(p) for p in view.support_images] if view is not None else []
        self._query = [_qimage(p) for p in view.query_images] if view is not None else []
        self.fit(self._room)
        self.update()

    def set_step(self, step: int) -> None:
        self.step = step
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(520, 320)

    def fit(self, room: QSize) -> None:
        """Lay the episode out for ``room``: as large as fits, at least ``MIN_CELL`` (then taller than
        ``room``, and the scroll area around it scrolls)."""
        self._room = QSize(room)
        self._plan = None
        need = self.plan().height if self.view is not None else 0
        self.setMinimumHeight(need if need > room.height() else 0)

    # -- geometry -----------------------------------------------------------------------------
    def _rows(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per label: indices of its support images and of its query images."""
        v = self.view
        return [(np.flatnonzero(v.support_labels == c), np.flatnonzero(v.query_labels == c)) for c in range(v.n_way)]

    def _header(self) -> int:
        return self.fontMetrics().height() + 4

    def _small(self) -> QFont:
        small = QFont(self.font())
        small.setPointSizeF(max(6.0, small.pointSizeF() * 0.8))
        return small

    def plan(self) -> Plan:
        """Where every name and image goes, for the room given to :meth:`fit`."""
        if self._plan is None:
            width, height = max(self._room.width(), self.minimumWidth()), self._room.height()
            for cell in range(MAX_CELL, MIN_CELL - 1, -2):
                plan = self._flow(cell, width)
                if plan.height <= height:
                    break
            self._plan = plan
        return self._plan

    def _flow(self, cell: int, width: int) -> Plan:
        name_h, label_h = self.fontMetrics().height() + 2, QFontMetrics(self._small()).height()
        line_h = cell + label_h + PAD
        names, tiles, y = [], [], self._header()
        for label, (support, query) in enumerate(self._rows()):
            names.append((label, QRect(0, y, width, name_h)))
            y += name_h
            x, top, start = INDENT, y, INDENT
            for kind, indices in (("support", support), ("query", query)):
                if kind == "query" and x > INDENT:
                    x += GAP
                    # wrapped queries line up under the first one while that leaves room for four a line
                    start = x if width - x >= 4 * (cell + PAD) else INDENT
                for index in indices:
                    if x + cell > width and x > start:   # the next line
                        x, top = start, top + line_h
                    tiles.append(Tile(kind, label, int(index), QRect(x, top, cell, cell)))
                    x += cell + PAD
            y = top + line_h + 2
        return Plan(cell, names, tiles, y)

    def name_text(self, label: int) -> str:
        """A class's line as drawn: its label and name, shortened in the middle only when the whole
        width of the panel cannot hold it."""
        rect = dict(self.plan().names)[label]
        return self.fontMetrics().elidedText(f"{label}  {self.view.class_names[label]}", Qt.TextElideMode.ElideMiddle,
                                             rect.width() - 4)

    def tiles(self) -> list[Tile]:
        return self.plan().tiles if self.view is not None else []

    def hit(self, pos) -> str:
        """What is under ``pos``, in words (the tooltip): a class's full name, or an image's verdict."""
        if self.view is None:
            return ""
        v, plan = self.view, self.plan()
        for label, rect in plan.names:
            if rect.contains(pos):
                return f"label {label}: {v.class_names[label]}"
        below = QFontMetrics(self._small()).height()
        for t in plan.tiles:
            if not t.rect.adjusted(0, 0, 0, below if t.kind == "query" else 0).contains(pos):
                continue
            if t.kind == "support":
                return f"support image of label {t.label}: {v.class_names[t.label]}"
            predicted = int(v.predictions[self.step][t.index])
            # a task of fewer classes than the network's N ways (a folder of images) leaves labels without a class
            name = v.class_names[predicted] if predicted < v.n_way else "no class of this task"
            verdict = "right" if predicted == t.label else f"wrong: predicted {predicted} ({name})"
            return f"query image of label {t.label} ({v.class_names[t.label]}), {verdict}"
        return ""

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            text = self.hit(event.pos())
            if text:
                QToolTip.showText(event.globalPos(), text, self)
            else:
                QToolTip.hideText()
            return True
        return super().event(event)

    def paintEvent(self, event) -> None:
        if self.view is None:
            return
        v, plan = self.view, self.plan()
        painter = QPainter(self)
        metrics, small = QFontMetrics(self.font()), self._small()
        below = QFontMetrics(small).height()
        painter.setPen(QColor("#555"))
        painter.drawText(QRect(0, 0, self.width(), self._header()), Qt.AlignmentFlag.AlignLeft, metrics.elidedText(
            "grey: support · query: green right, red wrong, predicted label below",
            Qt.TextElideMode.ElideRight, self.width()))
        painter.setPen(QColor("#222"))
        for label, rect in plan.names:
            painter.drawText(rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, self.name_text(label))
        predicted = v.predictions[self.step]
        painter.setFont(small)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for t in plan.tiles:
            if t.kind == "support":
                painter.drawImage(t.rect, self._support[t.index])
                painter.setPen(QPen(QColor(SUPPORT), 1))
                painter.drawRect(t.rect.adjusted(-1, -1, 0, 0))
                continue
            p = int(predicted[t.index])
            color = QColor(RIGHT if p == v.query_labels[t.index] else WRONG)
            painter.drawImage(t.rect, self._query[t.index])
            painter.setPen(QPen(color, FRAME))
            painter.drawRect(t.rect.adjusted(-1, -1, 0, 0))
            painter.drawText(QRect(t.rect.left(), t.rect.bottom() + 2, t.rect.width(), below),
                             Qt.AlignmentFlag.AlignCenter, str(p))
        painter.end()


class _Scroll(QScrollArea):
    """Scrolls the canvas when the episode needs more height than it is given; lays it out anew
    for every size (a scroll bar's width is always kept free, so showing one never re-flows it)."""

    def __init__(self, canvas: EpisodeCanvas):
        super().__init__()
        self.canvas = canvas
        self.setWidget(canvas)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def resizeEvent(self, event) -> None:
        bar = self.verticalScrollBar().sizeHint().width()
        self.canvas.fit(QSize(max(event.size().width() - bar, 1), event.size().height()))
        super().resizeEvent(event)

    def sizeHint(self) -> QSize:
        return self.canvas.sizeHint()


class _ElidedLabel(QLabel):
    """One line that shows as much of its text as fits, ending in "…": a long title never makes the
    episode wider than the panel it is in (the Adapt panel shares a narrow column)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(40)

    def set_full_text(self, text: str) -> None:
        self._full = text
        self._fit()

    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        self.setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, max(self.width(), 1)))


class EpisodeWidget(QWidget):
    """The canvas, a step slider and the accuracy after each step."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.view = None
        self._follow_last = True   # until the user picks a step, new episodes show the last one
        self.canvas = EpisodeCanvas()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setPageStep(1)
        self.slider.setToolTip("Which adaptation step the predicted labels are shown after (0: before adapting)")
        self.slider.valueChanged.connect(self._on_slider)
        self.step_label = QLabel()
        self.title = _ElidedLabel()
        self.title.setStyleSheet("font-weight: bold;")
        self.accuracy_label = QLabel()
        self.accuracy_label.setWordWrap(True)
        self.accuracy_label.setStyleSheet("color: #444;")
        self.accuracy_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        bar = QHBoxLayout()
        bar.addWidget(self.title, 1)   # takes what the step label and slider leave, eliding its text
        bar.addWidget(self.step_label)
        bar.addWidget(self.slider)
        self.slider.setMinimumWidth(80)
        self.slider.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Fixed)   # the title gets the rest
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 2)
        layout.setSpacing(3)
        layout.addLayout(bar)
        self.scroll = _Scroll(self.canvas)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.accuracy_label)

    def show_episode(self, view, title: str = "") -> None:
        """Draw an ``EpisodeView``; the step shown stays where the user put it (clamped), else the last."""
        self.view = view
        self.canvas.set_view(view)
        shots = len(view.support_labels) // max(view.n_way, 1)
        self.title.set_full_text(title or f"{view.n_way}-way {shots}-shot episode")
        self.title.setToolTip("One episode over meta-test classes, never trained on")
        step = view.steps if self._follow_last else min(self.slider.value(), view.steps)
        self.slider.blockSignals(True)
        self.slider.setRange(0, view.steps)
        self.slider.setValue(step)
        self.slider.blockSignals(False)
        self.accuracy_label.setText(f"query accuracy after 0..{view.steps} steps: "
                                    + " · ".join(f"{a:.0%}" for a in view.accuracy))
        self._show_step(step)

    def set_step(self, step: int) -> None:
        self.slider.setValue(step)

    def step(self) -> int:
        return self.canvas.step

    def cells(self) -> list[dict]:
        """The query images as drawn now: true and predicted label and frame colour, in the view's order."""
        v = self.view
        if v is None:
            return []
        predicted = v.predictions[self.canvas.step]
        return [{"true": int(t), "predicted": int(p), "color": RIGHT if p == t else WRONG}
                for t, p in zip(v.query_labels, predicted)]

    def clear(self) -> None:
        self.view = None
        self.canvas.set_view(None)
        self.title.set_full_text("")
        self.step_label.setText("")
        self.accuracy_label.setText("")

    def _on_slider(self, step: int) -> None:
        self._follow_last = self.view is not None and step == self.view.steps
        self._show_step(step)

    def _show_step(self, step: int) -> None:
        self.canvas.set_step(step)
        v = self.view
        when = "before adapting" if step == 0 else f"after {step} step{'s' * (step != 1)}"
        self.step_label.setText(f"{when}: {v.accuracy[step]:.0%} right")
