"""How the settings panels mark an invalid input: a red border drawn over the field (on top of its
own frame, the same on line edits, spin boxes and lists) on a pink ground, with the reason as its
tooltip until it is fixed."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QWidget

INVALID_COLOR = "#d62728"
INVALID_BASE = "#fde3e3"
# a pink ground from the style sheet (a style-sheet border would replace the native spin-box arrows);
# the red border is an InvalidFrame drawn over the field, the same on every kind of input
INVALID_STYLE = f'QLineEdit[invalid="true"], QAbstractSpinBox[invalid="true"] {{ background: {INVALID_BASE}; }}'


class InvalidFrame(QWidget):
    """A red border drawn over an invalid field, on top of its own frame; clicks go through."""

    def __init__(self, field: QWidget):
        super().__init__(field)
        self.setObjectName("invalid-frame")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        field.installEventFilter(self)
        self.setGeometry(field.rect())

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Resize:
            self.setGeometry(watched.rect())
            self.raise_()
        return False

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setPen(QPen(QColor(INVALID_COLOR), 1.5))
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.75, 0.75, -0.75, -0.75), 2, 2)


def mark_invalid(widget: QWidget, invalid: bool, reason: str = "") -> None:
    """Mark the field (red border, pink ground where the style allows) and put the reason in its
    tooltip (its help text comes back once fixed)."""
    if bool(widget.property("invalid")) == invalid:
        if invalid:
            widget.setToolTip(reason)
        return
    frame = widget.findChild(InvalidFrame, "invalid-frame", Qt.FindChildOption.FindDirectChildrenOnly)
    if invalid:
        widget.setProperty("help", widget.toolTip())
        widget.setToolTip(reason)
        frame = frame or InvalidFrame(widget)
        frame.raise_()
        frame.show()
    else:
        widget.setToolTip(widget.property("help") or "")
        if frame is not None:
            frame.hide()
    widget.setProperty("invalid", invalid)
    widget.style().unpolish(widget)
    widget.style().polish(widget)
