"""Reading a run folder that another process is still writing: only what was added since last time.

``metrics.csv`` grows by appended lines, and is sometimes replaced whole (a checkpoint rewrites
it atomically, dropping rows past the checkpoint). :class:`MetricsTail` reads the new bytes only,
keeps a partial last line until its newline arrives, and starts over when the file was replaced
or shrank — so following a long run costs about what its new rows cost, never a re-read per poll.
Rows come in :func:`~core.storage.metrics.read_metrics`' columns: a file of a version before
``wall_time`` gets NaN there, as its header says.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.storage.metrics import METRICS_FILE, WALL_TIME

PARTIAL_METRICS = ".metrics.csv.partial"   # where a run that has not saved yet streams its rows


@dataclass
class TailUpdate:
    rows: np.ndarray      # [new rows, columns] as read_metrics gives them (iteration … step losses, wall_time)
    reset: bool           # the file was replaced: ``rows`` is the whole table, drop what was read before


class MetricsTail:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._key: tuple[str, int, int] | None = None   # (file, inode, device) being read
        self._offset = 0
        self._pending = b""                              # a last line without its newline yet
        self._columns: int | None = None
        self._wall = True                                # the file's header ends with wall_time

    def read(self) -> TailUpdate:
        """Rows appended since the last call (a replaced file: all of it, with ``reset``)."""
        path = metrics_path(self.folder)
        empty = np.empty((0, self._columns or 0))
        if path is None:
            return TailUpdate(empty, False)
        try:
            with path.open("rb") as f:
                st = os.fstat(f.fileno())
                key = (path.name, st.st_ino, st.st_dev)
                reset = key != self._key or st.st_size < self._offset
                if reset:
                    self._key, self._offset, self._pending, self._wall = key, 0, b"", True
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return TailUpdate(empty, False)
        self._offset += len(data)
        data = self._pending + data
        cut = data.rfind(b"\n") + 1
        self._pending = data[cut:]
        rows = self._parse(data[:cut])
        return TailUpdate(rows, reset)

    def _parse(self, data: bytes) -> np.ndarray:
        values = []
        for line in data.split(b"\n"):
            cells = line.strip().split(b",")
            if not cells or not cells[0] or not cells[0][:1].isdigit():   # the header, blank lines
                if cells[0].strip() == b"iteration":
                    self._wall = cells[-1].strip() == WALL_TIME.encode()
                continue
            try:
                values.append([float(c) for c in cells] + ([] if self._wall else [float("nan")]))
            except ValueError:
                continue   # a line torn by a crash mid-write is skipped, not fatal
        if not values:
            return np.empty((0, self._columns or 0))
        width = max(len(v) for v in values) if self._columns is None else self._columns
        values = [v for v in values if len(v) == width]
        self._columns = width
        return np.asarray(values, dtype=np.float64).reshape(-1, width)


def metrics_path(folder: Path) -> Path | None:
    """The metrics file a run folder holds (or the one a run of an older version streams into)."""
    for name in (METRICS_FILE, PARTIAL_METRICS):
        path = Path(folder) / name
        if path.is_file():
            return path
    return None


def last_iteration(folder: str | Path) -> int:
    """The last complete row's iteration in a run's metrics (0 if none), read from the file's tail
    only: a sweep's progress line asks this of every running run every poll."""
    path = metrics_path(Path(folder))
    if path is None:
        return 0
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = f.read().split(b"\n")[:-1]   # the part after the last newline is not complete yet
    except OSError:
        return 0
    for line in reversed(lines):
        head = line.split(b",", 1)[0]
        if head.isdigit():
            return int(head)
    return 0


def file_stamp(path: str | Path) -> tuple[int, int] | None:
    """(modification time ns, size) of a file, None when absent: cheap to poll for a new checkpoint."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
