"""The task view of an image run: one meta-test episode, its support set and the query labels the
network predicts after a chosen number of adaptation steps.

Draws a :class:`core.task_views.EpisodeView` (plain arrays): one row per class — its label and
name, its support images, then the query images of that class framed green (predicted right) or
red (wrong) with the predicted label under each. A slider picks the step (default: the last);
the accuracy after every step is written out, so the effect of adapting reads at a glance. The
images are painted, not one widget each: an episode can hold a hundred of them.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSlider, QToolTip, QVBoxLayout, QWidget

RIGHT, WRONG = "#2ca02c", "#d62728"
MIN_CELL, MAX_CELL = 12, 72   # pixels an image is drawn at, at least / at most
PAD = 4                       # between images
FRAME = 2                     # width of a query image's right/wrong frame
GAP = 14                      # between the support and the query images of a row


def _qimage(pixels: np.ndarray) -> QImage:
    """A copy (Qt keeps no pointer into numpy) of ``uint8 [H, W]`` grey or ``[H, W, 3]`` RGB pixels."""
    pixels = np.ascontiguousarray(pixels)
    h, w = pixels.shape[:2]
    if pixels.ndim == 2:
        return QImage(pixels.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    return QImage(pixels.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class EpisodeCanvas(QWidget):
    """Paints the rows; the images are fitted to the space the widget gets."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.view = None
        self.step = 0
        self._support: list[QImage] = []
        self._query: list[QImage] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 120)

    def set_view(self, view) -> None:
        self.view = view
        self._support = [_qimage(p) for p in view.support_images] if view is not None else []
        self._query = [_qimage(p) for p in view.query_images] if view is not None else []
        self.update()

    def set_step(self, step: int) -> None:
        self.step = step
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(520, 320)

    # -- geometry -----------------------------------------------------------------------------
    def _rows(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per label: indices of its support images and of its query images."""
        v = self.view
        return [(np.flatnonzero(v.support_labels == c), np.flatnonzero(v.query_labels == c)) for c in range(v.n_way)]

    def _layout(self) -> tuple[int, int, int, int]:
        """(label column width, image cell size, header height, support column width)."""
        v, metrics = self.view, self.fontMetrics()
        header = metrics.height() + 4
        rows = self._rows()
        shots = max((len(s) for s, _ in rows), default=0)
        queries = max((len(q) for _, q in rows), default=0)
        full = max(metrics.horizontalAdvance(f"{c}  {n}") for c, n in enumerate(v.class_names)) + 8
        fit_h = (self.height() - header) // max(v.n_way, 1) - PAD
        images = (shots + queries) * (int(np.clip(fit_h, MIN_CELL, MAX_CELL)) + PAD) + GAP + 4
        label_w = int(np.clip(self.width() - images, min(90, full), full))   # names get what the images leave
        fit_w = (self.width() - label_w - GAP - 4) // max(shots + queries, 1) - PAD
        cell = int(np.clip(min(fit_w, fit_h), MIN_CELL, MAX_CELL))
        support_w = max(shots * (cell + PAD), metrics.horizontalAdvance("support") + 4)
        return label_w, cell, header, support_w

    def hit(self, pos) -> str:
        """What is under ``pos``, in words (the tooltip): a class's full name, or a query image's verdict."""
        if self.view is None:
            return ""
        v = self.view
        label_w, cell, top, support_w = self._layout()
        row = (pos.y() - top) // (cell + PAD)
        if pos.y() < top or not 0 <= row < v.n_way:
            return ""
        if pos.x() < label_w:
            return f"label {row}: {v.class_names[row]}"
        query = self._rows()[row][1]
        column = (pos.x() - label_w - support_w - GAP) // (cell + PAD)
        if pos.x() < label_w + support_w + GAP or not 0 <= column < len(query):
            return f"support image of label {row}: {v.class_names[row]}"
        predicted = int(v.predictions[self.step][query[column]])
        # a task of fewer classes than the network's N ways (a folder of images) leaves labels without a class
        name = v.class_names[predicted] if predicted < v.n_way else "no class of this task"
        verdict = "right" if predicted == row else f"wrong: predicted {predicted} ({name})"
        return f"query image of label {row} ({v.class_names[row]}), {verdict}"

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
        v = self.view
        painter = QPainter(self)
        label_w, cell, top, support_w = self._layout()
        small = QFont(self.font())
        small.setPointSizeF(max(6.0, small.pointSizeF() * 0.8))
        badge = QFontMetrics(small)
        metrics = QFontMetrics(self.font())
        query_x = label_w + support_w + GAP
        painter.setPen(QColor("#555"))
        painter.drawText(QRect(label_w, 0, support_w, top), Qt.AlignmentFlag.AlignLeft, "support")
        painter.drawText(QRect(query_x, 0, max(self.width() - query_x, 1), top), Qt.AlignmentFlag.AlignLeft,
                         metrics.elidedText("query: green right, red wrong",
                                            Qt.TextElideMode.ElideRight, max(self.width() - query_x, 1)))
        predicted = v.predictions[self.step]
        for label, (support, query) in enumerate(self._rows()):
            y = top + label * (cell + PAD)
            painter.setFont(self.font())
            painter.setPen(QColor("#222"))
            name = metrics.elidedText(f"{label}  {v.class_names[label]}", Qt.TextElideMode.ElideMiddle, label_w - 6)
            painter.drawText(QRect(0, y, label_w - 6, cell), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                             name)
            for i, index in enumerate(support):
                painter.drawImage(QRect(label_w + i * (cell + PAD), y, cell, cell), self._support[index])
            painter.setFont(small)
            for i, index in enumerate(query):
                x = query_x + i * (cell + PAD)
                color = QColor(RIGHT if predicted[index] == v.query_labels[index] else WRONG)
                painter.drawImage(QRect(x, y, cell, cell), self._query[index])
                painter.setPen(QPen(color, FRAME))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawRect(QRect(x, y, cell, cell).adjusted(-1, -1, 0, 0))
                text = str(int(predicted[index]))   # the predicted label on a badge in the corner
                w, h = badge.horizontalAdvance(text) + 4, badge.height()
                corner = QRect(x + cell - w, y + cell - h, w, h)
                painter.fillRect(corner, color)
                painter.setPen(QColor("white"))
                painter.drawText(corner, Qt.AlignmentFlag.AlignCenter, text)
        painter.end()


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
        layout.addWidget(self.canvas, 1)
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
