"""Every background thread the window starts, in one registry with one shutdown path.

Training (:class:`~maml_gui.jobs.training_controller.TrainingController`) and the short jobs — reading files,
scoring, exporting, adapting (:class:`~maml_gui.jobs.job_runner.JobRunner`) — start their threads
here, the same way: a worker ``QObject`` (no parent) moved to a plain ``QThread`` whose
``started`` runs ``worker.run``, quitting when one of the worker's terminal signals fires.
:func:`start_worker` registers the pair from ``start`` until its thread has exited and its owner
has been told (``on_released``, in the GUI thread). :func:`live_threads` is what tests check
after each test; :func:`shutdown_all` is what the window calls when it closes (and the
application when it quits).

Why not ``superqt.utils.thread_worker`` (checked: superqt 0.9)? Its workers are ``QRunnable``\\ s
on the global ``QThreadPool``: the pool's threads are shared with anything else using it and
outlive their work, so "no thread left" cannot be asked of them; a worker started from a
thread with an event loop only reaches the pool on a later timer tick, after a shutdown could
have looked; ``await_workers`` raises instead of answering true/false; each worker swaps the
process-wide ``warnings`` hooks from its own thread (a race with pytest's warnings-as-errors);
its ``QThread`` variant frees objects with ``deleteLater``, which PySide does not survive here
(see :meth:`WorkerThread._release`); and it needs Python 3.11 and ``qtpy``. What we need on top
— direct thread-safe calls into the training loop, a latest-request-wins queue, the garbage
collector held off on job threads, a bounded wait — it would leave to us anyway.
"""

from __future__ import annotations

import gc
import time
from typing import Callable, Iterable

from PySide6.QtCore import QObject, QThread, Slot
from shiboken6 import Shiboken

_REGISTRY: set["WorkerThread"] = set()
_gc_holds = 0
_gc_resume = False


def live_threads(kind: str | None = None) -> list[QThread]:
    """Registered threads still running (of one ``kind`` — "training", "job" — or all)."""
    return [w.thread for w in list(_REGISTRY) if (kind is None or w.kind == kind) and w.thread.isRunning()]


def shutdown_all(timeout_ms: int = 30_000, within: QObject | None = None) -> bool:
    """Ask every background worker to stop, then wait for all of them, ``timeout_ms`` in all.

    ``within``: only those whose owner is this object or one of its descendants (one window of
    several), plus any whose owner Qt has already deleted. Every worker is asked first, so they
    wind down together. True once none of them runs; False leaves the stragglers registered,
    and a later call can wait again.
    """
    workers = [w for w in list(_REGISTRY) if within is None or w.owned_by(within)]
    for worker in workers:
        worker.request_stop()
    deadline = time.monotonic() + timeout_ms / 1000
    for worker in workers:
        worker.wait(max(0, int((deadline - time.monotonic()) * 1000)))
    return not any(w.is_running() for w in workers)


def _hold_gc(hold: bool) -> None:
    """No automatic garbage collection while a thread that asked for it runs.

    Reading a table allocates millions of objects, so the cyclic collector would run on the job's
    thread, and a collection there can destroy Qt objects left in reference cycles (a closed
    dialog, an old window): Qt then deadlocks against the GUI thread or crashes. Collection is
    turned back on (if it was on) when the last such thread ends; the jobs themselves make no cycles.
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


class WorkerThread(QObject):
    """One worker on its own thread, registered until the thread has exited.

    Lives in the GUI thread (it is made there), so ``thread.finished`` reaches
    :meth:`_on_thread_finished` queued, in the GUI thread, like every other owner slot.
    """

    def __init__(self, worker: QObject, name: str, *, kind: str, ends: Iterable, stop: Callable[[], None],
                 on_released: Callable[[], None], owner: QObject | None = None, hold_gc: bool = False):
        super().__init__()
        self.worker, self.name, self.kind = worker, name, kind
        self._stop, self._on_released, self._owner, self._hold = stop, on_released, owner, hold_gc
        self._released = False
        self.thread = QThread()
        self.thread.setObjectName(name)
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)
        self.thread.finished.connect(self._on_thread_finished)
        for signal in ends:
            signal.connect(self.thread.quit)

    def start(self) -> None:
        _REGISTRY.add(self)
        if self._hold:
            _hold_gc(True)
        self.thread.start()

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def owned_by(self, ancestor: QObject) -> bool:
        """Whether the owner is ``ancestor`` or below it (an owner deleted by Qt counts as yours)."""
        if self._owner is None:
            return False
        if not Shiboken.isValid(self._owner):
            return True
        obj = self._owner
        while obj is not None:
            if obj is ancestor:
                return True
            obj = obj.parent()
        return False

    def request_stop(self) -> None:
        """Ask the worker to stop (a direct, thread-safe call) and the thread's loop to quit once it
        returns (Qt keeps a quit made before the loop starts)."""
        if not self._released:
            self._stop()
            self.thread.quit()

    def wait(self, timeout_ms: int) -> bool:
        """Wait up to ``timeout_ms`` for the thread to exit; True once it has (and is released)."""
        if self._released:
            return True
        if not self.thread.wait(timeout_ms):
            return False
        self._release()
        return True

    def stop_and_wait(self, timeout_ms: int) -> bool:
        self.request_stop()
        return self.wait(timeout_ms)

    @Slot()
    def _on_thread_finished(self) -> None:
        if not self._released and self.thread.isFinished():
            self._release()

    def _release(self) -> None:
        """Forget the pair once its thread has fully exited, then tell the owner.

        Python owns the thread and the worker (no ``deleteLater``): a C++ deletion racing the
        wrapper's own deletion crashes PySide, so the owner drops the last references in
        ``on_released``, after ``wait()``. An owner already deleted by Qt is not called.
        """
        self._released = True
        self.thread.wait()
        _REGISTRY.discard(self)
        if self._hold:
            _hold_gc(False)
        if self._owner is None or Shiboken.isValid(self._owner):
            self._on_released()


def start_worker(worker: QObject, name: str, *, kind: str, ends: Iterable, stop: Callable[[], None],
                 on_released: Callable[[], None], owner: QObject | None = None,
                 hold_gc: bool = False) -> WorkerThread:
    """Start ``worker.run`` on a new registered thread named ``name``.

    ``ends``: the worker's terminal signals (the thread quits when one fires); ``stop``: a
    thread-safe call that makes the worker return soon; ``on_released``: runs in the GUI thread
    once the thread has exited (``owner``, when given, must still exist). ``hold_gc``: no
    automatic garbage collection while it runs (see :func:`_hold_gc`). Connect the worker's other
    signals before calling this, so none of its emissions is missed.
    """
    handle = WorkerThread(worker, name, kind=kind, ends=ends, stop=stop, on_released=on_released,
                          owner=owner, hold_gc=hold_gc)
    handle.start()
    return handle
