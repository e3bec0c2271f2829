"""The task view's page for a meta-RL family with no picture of its own: the per-episode return strip,
and under it a few frames of one held-out episode before and after adaptation.

The inspector only records the episodes (:class:`core.rl.frames.FilmRequest`); they are filmed here on a
job thread of this page (:func:`core.rl.frames.film`: Pillow for the pendulum, an offscreen MuJoCo
renderer for the half-cheetah), never on the GUI thread or the training thread. Filming paces itself:
after a film that took ``d`` seconds the next waits until filming has used at most :data:`FILM_SHARE`
of the time, so a slow renderer (software EGL: tenths of a second a frame) never competes with
training for long; a newer episode replaces one still waiting, and a film always shows once done.
Nothing is filmed while the page is not visible (another task view, a hidden or closed window).
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from core.rl.frames import FilmRequest, Frames, film
from core.rl.task_views import EpisodeReturns
from maml_gui.jobs.job_runner import JobRunner
from maml_gui.widgets.frame_strip import FrameStrip
from maml_gui.widgets.return_plots import EpisodeStrip

FILM_SHARE = 0.25      # filming's share of the time, at most (the wait after a film of d s: d / share - d)
MAX_WAIT = 30.0        # s: frames of a slow renderer still follow the run
POLL = 0.05            # s between looks at the cancel flag while waiting
QWIDGETSIZE_MAX = (1 << 24) - 1


def _film_after(delay: float, request: FilmRequest, report) -> tuple[Frames, float] | None:
    """Wait ``delay`` seconds (None once cancelled), then film: the frames and the seconds filming took."""
    end = time.monotonic() + delay
    while time.monotonic() < end:
        if report(0.0):
            return None
        time.sleep(min(POLL, max(end - time.monotonic(), 0.0)))
    start = time.perf_counter()
    frames = film(request)
    return frames, time.perf_counter() - start


def _same_task(a: FilmRequest, b: FilmRequest | None) -> bool:
    """Whether two requests film the same family's same task (newer frames of it may wait their turn)."""
    return (b is not None and a.family == b.family and len(a.clips) == len(b.clips) > 0
            and np.array_equal(a.clips[0].task, b.clips[0].task))


class EpisodePage(QWidget):
    """The return strip over the frames; :meth:`show_returns` takes an :class:`EpisodeReturns`."""

    def __init__(self, strip: EpisodeStrip, parent: QWidget | None = None):
        super().__init__(parent)
        self.strip = strip
        self.frames = FrameStrip()
        self._runner = JobRunner(self, name="maml-frames", reports_progress=True)
        self._runner.done.connect(self._on_filmed)
        self._runner.failed.connect(self._on_failed)
        self._filming = False                                   # a film waits or runs (its result not yet here)
        self._waiting: tuple[FilmRequest, str] | None = None   # the newest episode, while a film runs
        self._next_at = 0.0                                     # monotonic time the next film may start
        self._shown = False
        self._roomy = True                                       # room for frames (not a note alone)
        self._filmed: FilmRequest | None = None                  # the request filmed last (or being filmed)
        self.split = QSplitter(Qt.Orientation.Vertical)   # the user may give the frames more room
        self.split.addWidget(strip)
        self.split.addWidget(self.frames)
        self.split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.split)

    def show_returns(self, view: EpisodeReturns, caption: str = "") -> None:
        """Draw the strip now and film ``view``'s episodes (``caption``: whose policy, which task)."""
        self.strip.show_returns(view)
        if view.film is None:
            self._note("")
            return
        if self.frames.frames() is None or not _same_task(view.film, self._filmed):
            self._note("drawing frames of the first episode…")   # not another task's frames meanwhile
        if self._filming or not self.isVisible():
            self._waiting = (view.film, caption)   # filmed once shown (a hidden or closed window films nothing)
        else:
            self._start(view.film, caption)

    def is_filming(self) -> bool:
        return self._filming or self._runner.is_busy()

    def _start(self, request: FilmRequest, caption: str) -> None:
        self._filming, self._filmed = True, request
        delay = max(0.0, self._next_at - time.monotonic())
        self._runner.submit(caption, lambda report: _film_after(delay, request, report))

    def _on_filmed(self, caption: str, result) -> None:
        self._filming = False
        if result is not None:
            frames, seconds = result
            self._next_at = time.monotonic() + min(seconds * (1 / FILM_SHARE - 1), MAX_WAIT)
            self.frames.show_frames(frames, caption)
            self._fit(bool(frames.images))
        self._next()

    def _on_failed(self, caption: str, message: str) -> None:
        self._filming = False
        self._note(f"no frames: {message}")
        self._next()

    def _note(self, text: str) -> None:
        self.frames.show_note(text)
        self._fit(False)

    def _fit(self, frames: bool) -> None:
        """Frames get 45% of the height; a note alone (why there are none) two lines, the strip the rest."""
        if frames == self._roomy:
            return
        self._roomy = frames
        self.frames.setMaximumHeight(QWIDGETSIZE_MAX if frames else 2 * self.fontMetrics().height() + 8)
        if frames and self._shown:
            self._share()

    def _share(self) -> None:
        strip = self.height() * 55 // 100
        self.split.setSizes([strip, self.height() - strip])

    def _next(self) -> None:
        if self._filming or not self.isVisible():
            return
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self._start(*waiting)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._shown:   # the first time: 55% / 45% (the strip's size hint would take it all)
            self._shown = True
            self._share()
        self._next()
