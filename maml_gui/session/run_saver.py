"""Writing runs into the project folder off the GUI thread.

Each run's pending snapshot waits here until the save job's thread writes it; a newer snapshot
replaces its weights and state but keeps its metrics rows (snapshots of a training run carry only
the rows since the last one, appended to ``metrics.csv``), so a burst of saves writes each run
once and never loses or repeats a row. Closing (:meth:`RunSaver.drain` on the GUI thread) writes
whatever is left. A training run is written every :meth:`interval` seconds: the session's
``save_interval`` (15 s by default), stretched so writing (which holds the GIL for what it
formats) takes at most :data:`SAVE_SHARE` of one core.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, Signal

from core.storage.atomic import atomic_write
from core.storage.checkpoint import save_run
from core.storage.metrics import METRICS_FILE, metrics_table_csv, read_metrics
from maml_gui.jobs.job_runner import JobRunner
from maml_gui.session.project import Project, RunSnapshot
from maml_gui.session.runs import RunRecord

SAVE_SHARE = 0.01         # writing a training run takes at most this share of the time


def every_row(run: RunRecord, folder: Path | None) -> np.ndarray:
    """``run``'s metrics with every iteration: the run folder's ``metrics.csv`` (``folder``, which
    holds them all) plus the history's rows past it; the history alone (decimated past
    ``HISTORY_LIMIT`` rows) when there is no such file or it does not fit the history."""
    table = run.history.table()
    if run.history.stride == 1:   # nothing thinned: the history holds every row already
        return table
    stored = read_metrics(folder) if folder is not None and len(table) else None
    if stored is None or stored.shape[1] != table.shape[1]:
        return table
    stored = stored[stored[:, 0] <= table[-1, 0]]
    if not len(stored) or len(stored) < np.count_nonzero(table[:, 0] <= stored[-1, 0]):
        return table
    return np.concatenate([stored, table[table[:, 0] > stored[-1, 0]]])


def write_run_copy(folder: str | Path, run: RunRecord, rows_from: Path | None) -> Path:
    """``run`` as a run folder of its own at ``folder`` (Export run folder…): its weights and training
    state, and every metrics row (``rows_from``'s ``metrics.csv`` has those the history thinned out)."""
    save_run(folder, run.config, run.weights, None, training_state=run.training_state)
    atomic_write(Path(folder) / METRICS_FILE, metrics_table_csv(every_row(run, rows_from), rl=run.config.is_rl))
    return Path(folder)


def merged(older: RunSnapshot | None, newer: RunSnapshot) -> RunSnapshot:
    """``newer``, carrying ``older``'s rows when ``newer`` only appends to them."""
    if older is None or not newer.append:
        return newer
    rows = [t for t in (older.metrics, newer.metrics) if t.ndim == 2 and len(t)]
    metrics = np.concatenate(rows) if len(rows) > 1 else rows[0] if rows else newer.metrics
    return dataclasses.replace(newer, metrics=metrics, append=older.append)


class RunSaver(QObject):
    failed = Signal(str)   # a write failed; its snapshot stays pending
    written = Signal()     # the save job finished its round

    def __init__(self, parent: QObject, project: Callable[[], Project]):
        super().__init__(parent)
        self._project = project   # where to write: the session's project at the time of writing
        self._pending: dict[int, RunSnapshot] = {}
        self._writing: set[int] = set()
        self._fresh: dict[int, list[np.ndarray]] = {}   # metrics rows of a training run not in a snapshot yet
        self._saved_at: dict[int, int] = {}             # the iteration of each run's last checkpoint queued
        self._lock = threading.Lock()
        self.cost = 0.0           # CPU seconds the last folder write took on its thread
        self._job = JobRunner(self, "maml-save")
        self._job.failed.connect(lambda _tag, text: self.failed.emit(text))
        self._job.done.connect(lambda _tag, _result: self.written.emit())

    def add_rows(self, run_id: int, rows: np.ndarray) -> None:
        """Metrics rows a training run just made (``metrics.csv``'s columns), for its next write."""
        self._fresh.setdefault(run_id, []).append(rows)

    def save(self, run: RunRecord, whole: bool = False, rows_from: Path | None = None) -> None:
        """Queue a write of ``run``'s folder. Its ``metrics.csv`` only gets the rows made since the
        last write appended (every row, whatever the run's length, while the plots keep a decimated
        history), unless the folder is new or ``whole`` (another project): then it is written from
        the run's history (with every row of ``rows_from``'s ``metrics.csv``: :func:`every_row`)."""
        fresh = self._fresh.pop(run.run_id, [])
        if whole or not run.folder:
            run.folder = run.folder or self._project().new_run_folder(run.run_id, run.name)
            metrics, append = every_row(run, rows_from), False
        else:
            metrics, append = (np.concatenate(fresh) if fresh else np.empty((0, 0))), True
        if run.weights and run.training_state is not None:
            self._saved_at[run.run_id] = int(run.training_state[1]["iteration"])
        self.queue(run.run_id, RunSnapshot(run.folder, run.config, run.weights, run.training_state, metrics,
                                           run.adaptation, append))

    def saved_at(self, run_id: int) -> int | None:
        """The iteration of the last checkpoint of ``run_id`` queued for writing (None: none yet)."""
        return self._saved_at.get(run_id)

    def queue(self, run_id: int, snapshot: RunSnapshot) -> None:
        """Add ``snapshot`` to ``run_id``'s pending one and have the save job write it."""
        with self._lock:
            self._pending[run_id] = merged(self._pending.get(run_id), snapshot)
        self._job.submit("save", self.drain)

    def interval(self, every: float) -> float:
        """Seconds until a training run's next write: ``every``, or longer when writing costs more
        than its share (waiting on the disk costs no CPU, so only the thread's CPU time counts)."""
        return max(every, self.cost / SAVE_SHARE)

    def pending(self) -> set[int]:
        """Runs whose latest snapshot is not on disk yet (waiting, being written, or its write failed)."""
        with self._lock:
            return set(self._pending) | self._writing

    def forget(self, run_id: int | None = None) -> None:
        """Drop what waits to be written of one run (None: of every run, another project is opened)."""
        with self._lock:
            for key in list(self._pending) if run_id is None else [run_id]:
                self._pending.pop(key, None)
        for held in (self._fresh, self._saved_at):
            held.pop(run_id, None) if run_id is not None else held.clear()

    def drain(self) -> None:
        """Write every pending snapshot (on the save job's thread, or on the GUI thread when
        closing); raises :class:`~core.errors.MamlError` and leaves the snapshot pending."""
        while True:
            with self._lock:
                if not self._pending:
                    return
                run_id = next(iter(self._pending))
                snap = self._pending.pop(run_id)   # rows queued while it is written wait for the next round
                self._writing.add(run_id)
            cpu = time.thread_time()
            try:
                self._project().write_run(snap)
            except BaseException:
                with self._lock:   # its rows go first again (a partly appended file is cut on the retry)
                    newer = self._pending.pop(run_id, None)
                    self._pending[run_id] = snap if newer is None else merged(snap, newer)
                raise
            finally:
                with self._lock:
                    self._writing.discard(run_id)
            self.cost = time.thread_time() - cpu

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Wait for the save job (closing, switching projects, deleting a run's folder)."""
        return self._job.shutdown(timeout_ms)
