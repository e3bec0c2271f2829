"""Writing runs into the project folder off the GUI thread.

The latest snapshot of each run waits here until the save job's thread writes it, so a burst of
saves writes each run once; closing (:meth:`RunSaver.drain` on the GUI thread) writes whatever is
left. A training run is written at most every :data:`SAVE_INTERVAL` seconds, stretched so writing
(which holds the GIL) takes at most :data:`SAVE_SHARE` of the time.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from PySide6.QtCore import QObject, Signal

from .job_runner import JobRunner
from .project import Project, RunSnapshot

SAVE_INTERVAL = 15.0      # s at least between writes of a training run's folder (and at every pause, stop, end)
SAVE_SHARE = 0.01         # ... stretched so that writing takes at most this share of the time


class RunSaver(QObject):
    failed = Signal(str)   # a write failed; its snapshot stays pending
    written = Signal()     # the save job finished its round

    def __init__(self, parent: QObject, project: Callable[[], Project]):
        super().__init__(parent)
        self._project = project   # where to write: the session's project at the time of writing
        self._pending: dict[int, RunSnapshot] = {}
        self._lock = threading.Lock()
        self._last: dict[int, float] = {}
        self._cost = 0.0          # s the last folder write took
        self._job = JobRunner(self, "maml-save")
        self._job.failed.connect(lambda _tag, text: self.failed.emit(text))
        self._job.done.connect(lambda _tag, _result: self.written.emit())

    def queue(self, run_id: int, snapshot: RunSnapshot) -> None:
        """Replace ``run_id``'s pending snapshot and have the save job write it."""
        with self._lock:
            self._pending[run_id] = snapshot
        self._last[run_id] = time.perf_counter()
        self._job.submit("save", self.drain)

    def due(self, run_id: int) -> bool:
        """Whether a training run has waited long enough since its last write."""
        interval = max(SAVE_INTERVAL, self._cost / SAVE_SHARE)
        return time.perf_counter() - self._last.get(run_id, 0.0) >= interval

    def pending(self) -> set[int]:
        """Runs whose latest snapshot is not on disk yet (waiting, or its write failed)."""
        with self._lock:
            return set(self._pending)

    def forget(self, run_id: int) -> None:
        with self._lock:
            self._pending.pop(run_id, None)

    def drain(self) -> None:
        """Write every pending snapshot (on the save job's thread, or on the GUI thread when
        closing); raises :class:`~core.errors.MamlError` and leaves the snapshot pending."""
        while True:
            with self._lock:
                if not self._pending:
                    return
                run_id, snap = next(iter(self._pending.items()))
            start = time.perf_counter()
            self._project().write_run(snap)
            self._cost = time.perf_counter() - start
            with self._lock:
                if self._pending.get(run_id) is snap:
                    del self._pending[run_id]

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Wait for the save job (closing, switching projects, deleting a run's folder)."""
        return self._job.shutdown(timeout_ms)
