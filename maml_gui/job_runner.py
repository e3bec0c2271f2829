"""Short jobs off the GUI thread: one plain function at a time, its result or error as a signal.

Adapting to a task, scoring opened weights and writing an ONNX file take from a few
milliseconds to several seconds; none of them may freeze the window. Each job is a plain
callable (engine code, no Qt) run by a worker ``QObject`` on its own ``QThread``. A job asked
for while another runs waits as the *pending* one, and a newer request replaces it, so a burst
of clicks costs at most two computations and the last one always wins.
(``csv_jobs`` is the CSV import's runner, with progress and cancellation for long reads.)
"""

from __future__ import annotations

import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from core.errors import MamlError

_LIVE: set[QThread] = set()


def live_jobs() -> list[QThread]:
    """Job threads started and not yet finished (tests assert this is empty after each test)."""
    return [t for t in list(_LIVE) if t.isRunning()]


class _Worker(QObject):
    done = Signal(object, object)    # tag, result
    failed = Signal(object, str)     # tag, readable message

    def __init__(self, tag: Any, fn: Callable[[], Any]):
        super().__init__()
        self._tag, self._fn = tag, fn

    @Slot()
    def run(self) -> None:
        try:
            result = self._fn()
        except MamlError as exc:
            self.failed.emit(self._tag, str(exc))
        except (MemoryError, RuntimeError) as exc:   # torch reports shape and memory trouble this way
            first = str(exc).splitlines()[0] if str(exc) else ""
            self.failed.emit(self._tag, f"{type(exc).__name__}: {first}")
        except Exception as exc:  # noqa: BLE001 - every failure must reach the window
            traceback.print_exc()
            self.failed.emit(self._tag, f"unexpected error: {type(exc).__name__}: {exc}")
        else:
            self.done.emit(self._tag, result)


class JobRunner(QObject):
    """Owns at most one (thread, worker) pair plus one pending job; relays results in the GUI thread.

    ``tag`` says what a result is for (the caller checks it is still wanted); ``busy_changed``
    lets a view show that it is working.
    """

    done = Signal(object, object)
    failed = Signal(object, str)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None, name: str = "maml-job"):
        super().__init__(parent)
        self._name = name
        self._thread: QThread | None = None
        self._worker: _Worker | None = None
        self._pending: tuple[Any, Callable[[], Any]] | None = None
        self._busy = False

    def is_busy(self) -> bool:
        return self._thread is not None or self._pending is not None

    def submit(self, tag: Any, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` now, or after the running job (replacing any job already waiting)."""
        if self._thread is not None:
            self._pending = (tag, fn)
            return
        self._start(tag, fn)

    def cancel_pending(self) -> None:
        self._pending = None

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Drop the pending job and wait for the running one (window closing). True once idle."""
        self._pending = None
        thread = self._thread
        if thread is None:
            return True
        thread.quit()   # the worker's own quit is queued to this (now waiting) thread; Qt keeps an early quit
        if not thread.wait(timeout_ms):
            return False
        self._release()
        return True

    def _start(self, tag: Any, fn: Callable[[], Any]) -> None:
        thread = QThread()
        thread.setObjectName(self._name)
        worker = _Worker(tag, fn)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.done.connect(self._on_done)
        worker.failed.connect(self._on_failed)
        worker.done.connect(thread.quit)
        worker.failed.connect(thread.quit)
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._worker = thread, worker
        _LIVE.add(thread)
        thread.start()
        self._set_busy(True)

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    @Slot(object, object)
    def _on_done(self, tag, result) -> None:
        if self._pending is None:   # a newer request makes this result stale
            self.done.emit(tag, result)

    @Slot(object, str)
    def _on_failed(self, tag, message) -> None:
        if self._pending is None:
            self.failed.emit(tag, message)

    @Slot()
    def _on_thread_finished(self) -> None:
        if self._thread is not None and self._thread.isFinished():
            self._release()

    def _release(self) -> None:
        """Forget the pair once its thread has exited (Python owns both: no ``deleteLater``,
        as in :class:`~maml_gui.training.TrainingController`), then start the pending job."""
        self._thread.wait()
        _LIVE.discard(self._thread)
        self._thread = self._worker = None
        if self._pending is not None:
            tag, fn = self._pending
            self._pending = None
            self._start(tag, fn)
        else:
            self._set_busy(False)
