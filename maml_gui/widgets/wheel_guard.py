"""Scrolling a settings panel must not change the settings it scrolls past.

Qt hands a wheel event to whatever spin box or combo box is under the pointer, focused or not,
so scrolling the Experiment panel turned Meta-batch 25 into 22 on the way down. The guard makes
those fields take the wheel only once they have focus (a click or Tab); otherwise the event goes
on to the scroll area, which scrolls.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractScrollArea, QAbstractSpinBox, QComboBox, QWidget

GUARDED = (QAbstractSpinBox, QComboBox)


class WheelGuard(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Wheel and isinstance(watched, GUARDED) and not watched.hasFocus():
            area = watched.parent()
            while area is not None and not isinstance(area, QAbstractScrollArea):
                area = area.parent()
            if area is not None:   # the panel scrolls instead
                QCoreApplication.sendEvent(area.verticalScrollBar(), event)
            return True
        return False


_GUARD = WheelGuard()


def guard_wheel(root: QWidget) -> None:
    """Guard every spin box and combo box under ``root`` (call again after adding fields)."""
    for field in root.findChildren(QWidget):
        if isinstance(field, GUARDED) and not field.property("wheel_guarded"):
            field.setFocusPolicy(Qt.FocusPolicy.StrongFocus)   # wheel focus would defeat the guard
            field.installEventFilter(_GUARD)
            field.setProperty("wheel_guarded", True)
