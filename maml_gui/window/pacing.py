"""How often the window redraws while training, kept within a CPU budget.

Qt paints hold Python's GIL (PySide6 does not release it inside ``QPainter`` calls), so every
millisecond the GUI thread spends drawing is a millisecond the training thread cannot run.
The window measures its own thread's CPU time and stretches its refresh intervals when it
uses more than its budget, shrinking them again when there is room: fast machines get smooth
plots, slow ones keep their training speed.

The GUI's work comes in bursts (a plot refresh, an evaluation snapshot), so the share is
averaged over a few seconds: judged over single half-second windows, the quiet windows between
refreshes kept shrinking the interval that the busy ones had just stretched, and the thread
used about 1.5x its budget on average.
"""

from __future__ import annotations

import math
import time


class Pacer:
    """A multiplicative stretch factor for refresh intervals, driven by the GUI thread's CPU share."""

    def __init__(self, budget: float = 0.04, longest: float = 8.0, grow: float = 1.5, shrink: float = 1.25,
                 window: float = 2.0, relax_below: float = 0.7):
        self.budget = budget            # target share of one core used by the GUI thread while training
        self.longest = longest          # never stretch beyond this factor
        self.grow, self.shrink = grow, shrink
        self.window = window            # s: time constant of the averaged share
        self.relax_below = relax_below  # shrink the stretch only below this fraction of the budget
        self.scale = 1.0
        self._mark: tuple[float, float] | None = None
        self._cpu = self._wall = 0.0    # exponentially weighted CPU and wall seconds

    def restart(self) -> None:
        """Forget the measurement (training resumed or started); keep the learned scale."""
        self._mark = (time.thread_time(), time.perf_counter())
        self._cpu = self._wall = 0.0

    def relax(self) -> None:
        """Not training: nothing competes with the GUI, so refresh at full rate."""
        self.scale, self._mark = 1.0, None
        self._cpu = self._wall = 0.0

    def share(self) -> float:
        """The GUI thread's recent CPU share (averaged over about ``window`` seconds)."""
        return self._cpu / self._wall if self._wall > 0 else 0.0

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
        keep = math.exp(-wall / self.window)
        self._cpu, self._wall = self._cpu * keep + cpu, self._wall * keep + wall
        share = self.share()
        if share > self.budget:   # in proportion to the excess (at least 10%, at most ``grow``)
            self.scale = min(self.longest, self.scale * min(self.grow, max(1.1, share / self.budget)))
        elif share < self.budget * self.relax_below:
            self.scale = max(1.0, self.scale / self.shrink)
        return self.scale
