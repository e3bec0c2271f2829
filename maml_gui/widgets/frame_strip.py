"""A few frames of held-out episodes (:class:`core.rl.frames.Frames`): one row per policy (before
adaptation, after the last inner step), labelled on its left with its episode's return, the time step
in each frame's corner; or one grey line saying why there are none.

The frames are painted, scaled to the space there is (the task view is a corner of the window), never
below a size where a pendulum or a cheetah still reads.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from core.rl.frames import Frames

PAD = 4              # pixels between frames
MIN_WIDTH = 48       # a frame is never drawn narrower
LABEL_WIDTH = 96     # the column of row labels (which policy, its return)
TEXT, NOTE, SHADE = QColor("#333333"), QColor("#666666"), QColor(255, 255, 255, 190)


def _qimage(pixels: np.ndarray) -> QImage:
    """A copy (Qt keeps no pointer into numpy) of ``uint8 [H, W, 3]`` RGB pixels."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w = pixels.shape[:2]
    return QImage(pixels.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class FrameStrip(QWidget):
    """Rows of frames, or a note; :meth:`show_frames` replaces what is shown."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._frames: Frames | None = None
        self._images: list[list] = []
        self._caption = ""
        self._note = ""
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def show_frames(self, frames: Frames, caption: str = "") -> None:
        """``frames`` (with no images, its note) under ``caption`` (whose policy, which task)."""
        self._frames = frames
        self._images = [[_qimage(a) for a in row] for row in frames.images]
        self._caption = caption if frames.images else ""
        self._note = frames.note or ("" if frames.images else "no frames")
        self.setToolTip("" if not frames.images else f"{caption}\nThe first held-out episode of this task, before "
                        "adaptation and after the last policy-gradient step, at a few time steps spread over it")
        self.update()

    def show_note(self, text: str) -> None:
        """No frames (yet): say why or what is happening."""
        self._frames, self._images, self._caption, self._note = None, [], "", text
        self.update()

    def frames(self) -> Frames | None:
        return self._frames

    def note(self) -> str:
        return self._note

    def caption(self) -> str:
        return self._caption

    def sizeHint(self) -> QSize:
        return QSize(420, 130)

    def minimumSizeHint(self) -> QSize:
        return QSize(160, 2 * self.fontMetrics().height() + 8)   # a note's two lines

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        fm = painter.fontMetrics()
        area = self.rect().adjusted(2, 2, -2, -2)
        if not self._images:
            painter.setPen(NOTE)
            painter.drawText(area, int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap), self._note)
            return
        frames, rows = self._frames, len(self._images)
        label_width = max(LABEL_WIDTH, area.width() // 5)
        row_height = area.height() // rows
        for r, images in enumerate(self._images):
            top = area.top() + r * row_height
            n = max(len(images), 1)
            aspect = images[0].height() / max(images[0].width(), 1) if images else 0.75
            room = area.width() - label_width - PAD * n
            width = max(int(min(room / n, (row_height - PAD) / aspect)), MIN_WIDTH)
            height = int(width * aspect)
            # the label wraps ("before / adaptation") where the column is narrow; the return goes under it
            text = frames.labels[r] + (f"\nreturn {frames.returns[r]:,.1f}" if r < len(frames.returns) else "")
            painter.setPen(TEXT)
            painter.drawText(QRect(area.left(), top, label_width - PAD, max(height, 3 * fm.height())),
                             int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap),
                             text)
            for i, image in enumerate(images):
                rect = QRect(area.left() + label_width + i * (width + PAD), top, width, height)
                painter.drawImage(rect, image)
                text = f"t {frames.times[r][i]}"
                box = QRect(rect.left(), rect.bottom() - fm.height(), fm.horizontalAdvance(text) + 6, fm.height() + 1)
                painter.fillRect(box, SHADE)
                painter.setPen(TEXT)
                painter.drawText(box, int(Qt.AlignmentFlag.AlignCenter), text)
