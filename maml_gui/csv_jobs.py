"""Run one slow function at a time off the GUI thread, with progress and cooperative cancel (CSV import).

Used by the CSV import dialog: reading a large file, then rebuilding the family after each
change of a setting. A worker ``QObject`` is moved to a plain ``QThread``; the function gets a
``report(fraction) -> bool`` callback (``True`` means "stop", the contract of
``core.csv_reader.read_csv``). A newer request cancels the running one and waits its turn, so
only the latest request's result is delivered. Results and errors cross threads as plain objects.
"""

from __future__ import annotations

import gc
import threading
import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from core.errors import MamlError

PROGRESS_INTERVAL = 0.05   # s between progress signals (reading calls back far more often)

Job = Callable[[Callable[[float], bool]], Any]
_LIVE_THREADS: set[QThread] = set()
_gc_holds = 0
_gc_resume = False


def _hold_gc(hold: bool) -> None:
    """No automatic garbage collection while a job thread runs.

    Reading a table allocates millions of objects, so the cyclic collector would run on the job's
    thread, and a collection there can destroy Qt objects left in reference cycles (a closed
    dialog, an old window): Qt then deadlocks against the GUI thread or crashes. Collection is
    turned back on (if it was on) when the last job ends; the jobs themselves make no cycles.
    """
    global _gc_holds, _gc_resume
    if hold:
        if _gc_holds == 0:
            _gc_resume = gc.isenabled()
            gc.disable()
        _gc_holds += 1
    else:
        _gc_holds -= 1
        if _gc_holds == 0 and _gc_resume:
            gc.enable()


def live_threads() -> list[QThread]:
    """Background threads started and not yet finished (tests assert this is empty after each test)."""
    return [t for t in list(_LIVE_THREADS) if t.isRunning()]


class _Worker(QObject):
    progress = Signal(float)
    done = Signal(object)
    failed = Signal(object)    # a MamlError (a bug becomes one, with its type named)

    def __init__(self, job: Job, cancel: threading.Event):
        super().__init__()
        self._job, self._cancel = job, cancel
        self._last = 0.0

    def _report(self, fraction: float) -> bool:
        now = time.perf_counter()
        if fraction >= 1.0 or now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self.progress.emit(float(fraction))
        return self._cancel.is_set()

    @Slot()
    def run(self) -> None:
        try:
            result = self._job(self._report)
        except MamlError as exc:
            self.failed.emit(exc)
        except Exception as exc:  # noqa: BLE001 - a bug must reach the dialog as a message, not kill the thread
            traceback.print_exc()
            self.failed.emit(MamlError(f"unexpected error: {type(exc).__name__}: {exc}"))
        else:
            self.done.emit(result)
        finally:
            self._job = None


class BackgroundRunner(QObject):
    """Owns at most one (thread, worker) pair; ``submit`` while busy replaces the queued request."""

    progress = Signal(float)
    done = Signal(str, object)     # tag, result
    failed = Signal(str, object)   # tag, MamlError
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread: QThread | None = None
        self._worker: _Worker | None = None
        self._cancel: threading.Event | None = None
        self._tag = ""
        self._pending: tuple[str, Job] | None = None

    def is_busy(self) -> bool:
        return self._thread is not None or self._pending is not None

    def submit(self, tag: str, job: Job) -> None:
        """Run ``job(report)``; a running job is cancelled first and its result dropped."""
        if self._thread is not None:
            self._pending = (tag, job)
            self._cancel.set()
            return
        self._start(tag, job)

    def cancel(self) -> None:
        """Stop the running job (its result is dropped) and forget the queued one."""
        self._pending = None
        if self._cancel is not None:
            self._cancel.set()

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel and wait for the thread (dialog closing). True once it has ended."""
        self.cancel()
        thread = self._thread
        if thread is None:
            return True
        thread.quit()
        if not thread.wait(timeout_ms):
            return False
        self._release()
        return True

    def _start(self, tag: str, job: Job) -> None:
        thread = QThread()
        thread.setObjectName(f"maml-{tag}")
        cancel = threading.Event()
        worker = _Worker(job, cancel)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        thread.finished.connect(self._on_thread_finished)
        worker.progress.connect(self._on_worker_progress)
        worker.done.connect(self._on_worker_done)
        worker.failed.connect(self._on_worker_failed)
        worker.done.connect(thread.quit)
        worker.failed.connect(thread.quit)
        self._thread, self._worker, self._cancel, self._tag = thread, worker, cancel, tag
        _LIVE_THREADS.add(thread)
        _hold_gc(True)
        busy = self._pending is None   # a queued request keeps the runner busy throughout
        thread.start()
        if busy:
            self.busy_changed.emit(True)

    # -- relays (queued into the GUI thread) -----------------------------------------------
    @Slot(float)
    def _on_worker_progress(self, fraction: float) -> None:
        if self._cancel is not None and not self._cancel.is_set():
            self.progress.emit(fraction)

    @Slot(object)
    def _on_worker_done(self, result) -> None:
        if self._cancel is not None and not self._cancel.is_set():
            self.done.emit(self._tag, result)

    @Slot(object)
    def _on_worker_failed(self, error) -> None:
        if self._cancel is not None and not self._cancel.is_set():
            self.failed.emit(self._tag, error)

    @Slot()
    def _on_thread_finished(self) -> None:
        if self._thread is not None and self._thread.isFinished():
            self._release()

    def _release(self) -> None:
        """Forget the finished pair (Python owns both: no deleteLater), then start what was queued."""
        self._thread.wait()
        _LIVE_THREADS.discard(self._thread)
        _hold_gc(False)
        self._thread = self._worker = self._cancel = None
        pending, self._pending = self._pending, None
        if pending is not None:
            self._start(*pending)
        else:
            self.busy_changed.emit(False)
