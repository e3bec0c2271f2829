"""How often the window redraws while training, kept within a CPU budget.

Qt paints hold Python's GIL (PySide6 does not release it inside ``QPainter`` calls), so every
millisecond the GUI thread spends drawing is a millisecond the training thread cannot run.
The window measures its own thread's CPU time and stretches its refresh intervals when it
uses more than its budget, shrinking them again when there is room: fast machines get smooth
plots, slow ones keep their training speed.
"""

from __future__ import annotations

import time


class Pacer:
    """A multiplicative stretch factor for refresh intervals, driven by the GUI thread's CPU share."""

    def __init__(self, budget: float = 0.04, longest: float = 8.0, grow: float = 1.5, shrink: float = 1.25):
        self.budget = budget            # target share of one core used by the GUI thread while training
        self.longest = longest          # never stretch beyond this factor
        self.grow, self.shrink = grow, shrink
        self.scale = 1.0
        self._mark: tuple[float, float] | None = None

    def restart(self) -> None:
        """Forget the measurement (training resumed or started); keep the learned scale."""
        self._mark = (time.thread_time(), time.perf_counter())

    def relax(self) -> None:
        """Not training: nothing competes with the GUI, so refresh at full rate."""
        self.scale, self._mark = 1.0, None

    def sample(self) -> float:
        """Call regularly from the GUI thread while training; returns the (possibly new) scale."""
        now = (time.thread_time(), time.perf_counter())
        if self._mark is None:
            self._mark = now
            return self.scale
        cpu, wall = now[0] - self._mark[0], now[1] - self._mark[1]
        if wall < 0.5:
            return self.scale
        self._mark = now
        share = cpu / wall
        if share > self.budget:
            self.scale = min(self.longest, self.scale * self.grow)
        elif share < self.budget / 2:
            self.scale = max(1.0, self.scale / self.shrink)
        return self.scale
