"""Every background job here starts the same way: a worker ``QObject`` moved to its own ``QThread``."""

from __future__ import annotations

from typing import Callable, Iterable

from PySide6.QtCore import QObject, QThread


def worker_thread(worker: QObject, name: str, on_finished: Callable[[], None], ends: Iterable) -> QThread:
    """A named thread that runs ``worker.run`` once started and quits when any signal in ``ends``
    fires; ``on_finished`` runs in the owner's thread once it has exited. Connect the worker's
    other signals before calling ``start()`` on the result, so none of its emissions is missed."""
    thread = QThread()
    thread.setObjectName(name)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    thread.finished.connect(on_finished)
    for signal in ends:
        signal.connect(thread.quit)
    return thread
