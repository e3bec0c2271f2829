"""The history plots' x-axis choice: iteration, relative time, wall-clock time or training time."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QWidget

from .history_x import CLOCK_MODES, NO_CLOCK, X_AXES, X_NAMES, X_TIPS


class XAxisChoice(QComboBox):
    """Each choice with a tooltip saying what it measures; it shows what is drawn, and greys out relative
    and wall-clock time, saying why, while the shown run records no clock time."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        for i, mode in enumerate(X_AXES):
            self.addItem(X_NAMES[mode], mode)
            self.setItemData(i, X_TIPS[mode], Qt.ItemDataRole.ToolTipRole)
        self.show_state("iteration", "iteration", True)

    def show_state(self, chosen: str, used: str, clock: bool) -> None:
        """``chosen`` by the user, ``used`` for the shown run; ``clock``: whether that run has clock times."""
        for mode in CLOCK_MODES:
            item = self.model().item(list(X_AXES).index(mode))
            item.setEnabled(clock)
            item.setToolTip(X_TIPS[mode] if clock else NO_CLOCK.format(name="This run"))
        self.setCurrentIndex(list(X_AXES).index(used))
        tip = "What the x axis shows: meta-iterations, relative time, wall-clock time or training time"
        if used != chosen:
            tip += f".\n{X_NAMES[chosen].capitalize()} was chosen, but " + NO_CLOCK.format(name="this run")
        self.setToolTip(tip)
