"""Slow work off the GUI thread: one plain function at a time, its result or error as a signal.

Reading a CSV file, re-checking the import choices, adapting to a task, scoring opened weights
and writing an ONNX file take from milliseconds to minutes; none of them may freeze the window.
Each job is a plain callable (engine code, no Qt) run by a worker ``QObject`` on its own
``QThread``, started and registered by :mod:`maml_gui.jobs.threads` (which holds the garbage
collector off while it runs, and stops it when the window closes). A request made while a job
runs becomes the *pending* one (replacing any older pending request) and the running job's
result is dropped, so a burst of clicks costs at most two computations and the last one always
wins. A runner made with ``reports_progress`` calls its jobs as ``fn(report)``:
``report(fraction)`` emits progress and returns ``True`` once the job should stop (the contract
of ``core.data.csv_reader.read_csv``), so a superseded read ends early.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from core.device import BACKGROUND_THREADS, use_threads
from core.errors import MamlError

from maml_gui.jobs.threads import WorkerThread, live_threads, start_worker

PROGRESS_INTERVAL = 0.05   # s between progress signals (reading calls back far more often)


def live_jobs() -> list[QThread]:
    """Job threads still running (:func:`maml_gui.jobs.threads.live_threads` of kind "job")."""
    return live_threads("job")


class _Worker(QObject):
    progress = Signal(float)
    done = Signal(object, object)    # tag, result
    failed = Signal(object, str)     # tag, readable message

    def __init__(self, tag: Any, fn: Callable[..., Any], cancel: threading.Event, reports_progress: bool):
        super().__init__()
        self._tag, self._fn, self._cancel, self._reports = tag, fn, cancel, reports_progress
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
            use_threads(BACKGROUND_THREADS)   # beside training: one thread, no team that spin-waits
            result = self._fn(self._report) if self._reports else self._fn()
        except MamlError as exc:
            self.failed.emit(self._tag, str(exc))
        except (MemoryError, RuntimeError) as exc:   # torch reports shape and memory trouble this way
            first = str(exc).splitlines()[0] if str(exc) else ""
            self.failed.emit(self._tag, f"{type(exc).__name__}: {first}")
        except Exception as exc:  # noqa: BLE001 - every failure must reach the window, not kill the thread
            traceback.print_exc()
            self.failed.emit(self._tag, f"unexpected error: {type(exc).__name__}: {exc}")
        else:
            self.done.emit(self._tag, result)
        finally:
            self._fn = None


class JobRunner(QObject):
    """Owns at most one (thread, worker) pair plus one pending job; relays in the GUI thread.

    ``tag`` says what a result is for; ``busy_changed`` lets a view show that it is working.
    """

    progress = Signal(float)
    done = Signal(object, object)
    failed = Signal(object, str)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None, name: str = "maml-job", reports_progress: bool = False):
        super().__init__(parent)
        self._name, self._reports = name, reports_progress
        self._job: WorkerThread | None = None
        self._cancel: threading.Event | None = None
        self._pending: tuple[Any, Callable[..., Any]] | None = None
        self._busy = False

    def is_busy(self) -> bool:
        return self._job is not None or self._pending is not None

    def submit(self, tag: Any, fn: Callable[..., Any]) -> None:
        """Run ``fn`` now, or once the running job ends (its result is then dropped)."""
        if self._job is not None:
            self._pending = (tag, fn)
            self._cancel.set()
            return
        self._start(tag, fn)

    def cancel(self) -> None:
        """Forget the pending job and stop the running one (its result is dropped)."""
        self._pending = None
        if self._cancel is not None:
            self._cancel.set()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel and wait for the thread (a window or dialog closing). True once idle."""
        job = self._job
        return job is None or job.stop_and_wait(timeout_ms)

    def _start(self, tag: Any, fn: Callable[..., Any]) -> None:
        cancel = threading.Event()
        worker = _Worker(tag, fn, cancel, self._reports)
        worker.progress.connect(self._on_progress)
        worker.done.connect(self._on_done)
        worker.failed.connect(self._on_failed)
        self._cancel = cancel
        self._job = start_worker(worker, self._name, kind="job", ends=(worker.done, worker.failed),
                                 stop=self.cancel, on_released=self._on_released, owner=self, hold_gc=True)
        self._set_busy(True)

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def _wanted(self) -> bool:
        return self._cancel is not None and not self._cancel.is_set()

    @Slot(float)
    def _on_progress(self, fraction: float) -> None:
        if self._wanted():
            self.progress.emit(fraction)

    @Slot(object, object)
    def _on_done(self, tag, result) -> None:
        if self._wanted():
            self.done.emit(tag, result)

    @Slot(object, str)
    def _on_failed(self, tag, message) -> None:
        if self._wanted():
            self.failed.emit(tag, message)

    def _on_released(self) -> None:
        """The job's thread has exited: drop it, then start the pending job if there is one."""
        self._job = self._cancel = None
        if self._pending is not None:
            tag, fn = self._pending
            self._pending = None
            self._start(tag, fn)
        else:
            self._set_busy(False)
