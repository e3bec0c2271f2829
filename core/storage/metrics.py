"""A run's ``metrics.csv``: one row per meta-iteration, appended and fsynced before each checkpoint,
cut back to the checkpoint's iteration on resume, read back as a numpy table."""

from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from core.ranges import MAX_ITERATIONS
from core.storage.atomic import StorageError, atomic_write, reason_of
from core.storage.schemas import RunFileError, regular_file

METRICS_FILE = "metrics.csv"


METRIC_COLUMNS = ("iteration", "meta_loss", "grad_norm", "seconds")
# a meta-RL run's table has the same shape: the adapted policies' average return, and the return
# before each inner step and after the last (step_return_0 is the unadapted policy's)
RL_METRIC_COLUMNS = ("iteration", "meta_return", "grad_norm", "seconds")


def _header(n_steps: int, rl: bool = False) -> list[str]:
    if rl:
        return [*RL_METRIC_COLUMNS, *(f"step_return_{s}" for s in range(n_steps))]
    return [*METRIC_COLUMNS, *(f"step_loss_{s}" for s in range(n_steps))]


def _values(r) -> tuple:
    """(meta-loss or meta-return, the per-step values) of a trainer's step metrics."""
    if hasattr(r, "step_returns"):
        return r.meta_return, r.step_returns
    return r.meta_loss, r.step_losses


def _row(r) -> list:
    main, steps = _values(r)
    return [r.iteration, repr(main), repr(r.grad_norm), f"{r.seconds:.6f}", *(repr(x) for x in steps)]


def _line(r) -> str:
    """:func:`_row` as the csv module writes it (no field needs quoting), without its overhead."""
    main, steps = _values(r)
    losses = "".join(f",{x!r}" for x in steps)
    return f"{r.iteration},{main!r},{r.grad_norm!r},{r.seconds:.6f}{losses}\n"


def metrics_kind(run_dir: str | Path) -> str | None:
    """"rl" when a run folder's ``metrics.csv`` holds returns (meta-RL), "loss" for losses, None when unreadable."""
    try:
        with open(Path(run_dir) / METRICS_FILE, "rb") as f:
            first = f.read(4096).split(b"\n", 1)[0].decode("utf-8", "replace")
    except OSError:
        return None
    return "rl" if first.startswith(",".join(RL_METRIC_COLUMNS)) else "loss" if first.startswith(
        ",".join(METRIC_COLUMNS)) else None


def metrics_csv(rows: Iterable) -> bytes:
    """One row per iteration; ``step_loss_s`` columns for the query loss after each inner step."""
    rows = list(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_header(max((len(r.step_losses) for r in rows), default=0)))
    writer.writerows(_row(r) for r in rows)
    return buf.getvalue().encode()


def metrics_table_csv(table: np.ndarray, rl: bool = False) -> bytes:
    """:func:`metrics_csv` of a ``[rows, 4 + steps]`` table in :func:`read_metrics`' columns, byte for
    byte, about 3x faster: a window saving a long run holds the GIL for less time."""
    table = np.asarray(table, dtype=np.float64)
    steps = table.shape[1] - len(METRIC_COLUMNS) if table.ndim == 2 and table.size else 0
    lines = [",".join(_header(steps, rl))]
    lines += [f"{int(r[0])},{r[1]!r},{r[2]!r},{r[3]:.6f}" + "".join(f",{v!r}" for v in r[4:]) for r in table.tolist()]
    return ("\n".join(lines) + "\n").encode()


def append_metrics_table(run_dir: str | Path, table: np.ndarray, rl: bool = False) -> None:
    """Append the rows of a ``[rows, 4 + steps]`` table to ``metrics.csv`` and fsync, as a checkpoint's
    first file: rows from the table's first iteration on that the file already holds (left by a crash
    or a failed save, or past the checkpoint a run continues from) are cut first, so none repeats. A
    missing or empty file gets the header. Costs what the new rows cost, not the run's whole history."""
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2 or not len(table):
        return
    path = Path(run_dir) / METRICS_FILE
    header = b""
    try:
        if path.is_file() and path.stat().st_size:
            cut_metrics(path, int(table[0, 0]) - 1)
        else:
            header = (",".join(_header(table.shape[1] - len(METRIC_COLUMNS), rl)) + "\n").encode()
        lines = "".join(f"{int(r[0])},{r[1]!r},{r[2]!r},{r[3]:.6f}" + "".join(f",{v!r}" for v in r[4:]) + "\n"
                        for r in table.tolist())
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as f:
            f.write(header + lines.encode())
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {reason_of(exc)}", reason_of(exc)) from None


def read_metrics(run_dir: str | Path) -> np.ndarray | None:
    """A run folder's ``metrics.csv`` as ``[rows, 4 + steps]`` (the columns :func:`metrics_csv`
    writes), or None when there is none or it is not one of ours: the metrics are optional. A last
    line without its newline is a row being appended by a running ``train``: it is left out."""
    path = Path(run_dir) / METRICS_FILE
    try:
        if not path.is_file():   # a FIFO would block the reader
            return None
        text = path.read_text(encoding="utf-8")
        if not text.endswith("\n"):
            text = text[:text.rfind("\n") + 1]
        rows = list(csv.reader(io.StringIO(text, newline="")))
        header, body = rows[0], [r for r in rows[1:] if r]
        steps = len(header) - len(METRIC_COLUMNS)
        if steps <= 0 or header not in (_header(steps), _header(steps, rl=True)) or not body:
            return None
        data = np.array(body, dtype=float)
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    if data.ndim != 2 or data.shape[1] != len(header):
        return None
    it = data[:, 0]
    whole = np.isfinite(it) & (it >= 0) & (it <= MAX_ITERATIONS) & (it == np.floor(it))
    if not whole.all():   # the rows before the first that is no iteration (garbage a crash or an edit left)
        data = data[:int(np.argmin(whole))]
    return data if len(data) else None


def cut_metrics(path: str | Path, iteration: int | None) -> int | None:
    """Drop the rows of ``metrics.csv`` past ``iteration`` (None: only a half-written last line) and
    return the iteration of the last row left (None: none),
    reading from the end: a crash between appending rows and committing their checkpoint leaves a
    few, and the resumed run writes them again. Everything after the last row up to ``iteration``
    goes, whatever it is (rows, text, a NUL-filled block a crash left): rows are cut by their
    iteration number, so a resumed run never writes a row twice."""
    with open(path, "r+b") as f:
        size = pos = f.seek(0, os.SEEK_END)
        buf = b""
        while True:
            cut = _cut_point(buf, pos, iteration)
            if cut is not None or pos == 0:
                break
            step = min(1 << 20, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
        cut = size if cut is None else cut
        if cut < size:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
        start = max(0, cut - 4096)   # the last row kept: its iteration, for a caller that checks for a gap
        f.seek(start)
        lines = f.read(cut - start).rsplit(b"\n", 2)
        first = lines[-2].split(b",", 1)[0].strip() if len(lines) >= 2 else b""
        return int(first) if first.isdigit() and len(first) <= 12 else None


def _cut_point(buf: bytes, pos: int, iteration: int | None) -> int | None:
    """The file offset just after the last whole line of ``buf`` (read from offset ``pos``) to keep."""
    end = buf.rfind(b"\n")
    while end >= 0:
        start = buf.rfind(b"\n", 0, end) + 1
        if start == 0 and pos > 0:
            return None   # this line may begin before buf: read further back
        if iteration is None or pos + start == 0:   # the header line stays
            return pos + end + 1
        first = buf[start:end].split(b",", 1)[0].strip()
        if first.isdigit() and len(first) <= 12 and int(first) <= iteration:
            return pos + end + 1
        end = start - 1   # past the checkpoint, or not a row at all (a crash's garbage): cut
    return pos if pos == 0 else None


def _check_header(path: Path, n_steps: int, rl: bool = False) -> None:
    """Refuse to append to a file that does not start with this run's header (an empty one is
    started again): rows after someone else's first line would make a table no reader takes."""
    try:
        with open(path, "rb") as f:
            first = f.read(1 << 16).split(b"\n", 1)[0]
    except OSError as exc:
        raise RunFileError(path, "", f"cannot read it: {exc.strerror or exc}") from None
    expected = ",".join(_header(n_steps, rl)).encode()
    if first and first.rstrip(b"\r") != expected:
        raise RunFileError(path, "header", f"the first line is not this run's header ({expected[:40].decode()}…), so "
                                           "the resumed rows cannot be appended; move the file away to resume "
                                           "without the earlier rows")


class MetricsLog:
    """``metrics.csv`` of a command-line run, append-only. Rows are appended about once a second
    (:meth:`stream`, no fsync) so a window following the run sees them grow; :meth:`flush` appends
    the rest and fsyncs at a checkpoint, :meth:`commit` makes them part of it and :meth:`rollback`
    cuts the file back to the last checkpoint after a failed save, so a retry never duplicates a
    row. ``resume`` appends to an existing file, cut to the rows up to ``upto`` (rows a crash left
    past the checkpoint are dropped there too)."""

    STREAM_EVERY = 1.0   # s between appends while training

    def __init__(self, run_dir: str | Path, n_steps: int, resume: bool = False, upto: int | None = None,
                 clock=time.monotonic, rl: bool = False):
        self.path = Path(run_dir) / METRICS_FILE
        self.last_row: int | None = None   # on resume: the iteration of the last row kept
        if resume and os.path.lexists(self.path):
            _check_header(regular_file(self.path, "metrics table"), n_steps, rl)
        try:
            if resume and self.path.is_file():
                self.last_row = cut_metrics(self.path, upto)
            if not (resume and self.path.is_file() and self.path.stat().st_size):
                atomic_write(self.path, (",".join(_header(n_steps, rl)) + "\n").encode())
            self._committed = self._written = self.path.stat().st_size
        except OSError as exc:
            raise StorageError(f"cannot write {self.path}: {reason_of(exc)}", reason_of(exc)) from None
        self._pending: list[str] = []
        self._streamed = 0          # pending rows already in the file (past the checkpoint)
        self.pending_bytes = 0
        self._clock = clock
        self._next_stream = clock() + self.STREAM_EVERY

    def write(self, row) -> None:
        line = _line(row)
        self._pending.append(line)
        self.pending_bytes += len(line)
        if self._clock() >= self._next_stream:
            self.stream()

    def stream(self) -> None:
        """Append the rows not in the file yet, without fsync; a failure waits for the checkpoint."""
        self._next_stream = self._clock() + self.STREAM_EVERY
        data = "".join(self._pending[self._streamed:]).encode()
        if not data:
            return
        try:
            with open(self.path, "r+b") as f:
                f.seek(self._written)
                f.write(data)
        except OSError:
            return   # the checkpoint's flush writes them (and reports the problem)
        self._written += len(data)
        self._streamed = len(self._pending)

    def flush(self) -> None:
        """Append the waiting rows (over anything a failed attempt left) and fsync."""
        data = "".join(self._pending).encode()
        try:
            with open(self.path, "r+b") as f:
                f.seek(self._committed)
                f.write(data)
                f.truncate()
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise StorageError(f"cannot write {self.path}: {reason_of(exc)}", reason_of(exc)) from None
        self._written = self._committed + len(data)
        self._streamed = len(self._pending)

    def commit(self) -> None:
        self._committed = self._written
        self._pending.clear()
        self._streamed = 0
        self.pending_bytes = 0

    def rollback(self) -> None:
        try:
            os.truncate(self.path, self._committed)
        except OSError:
            pass   # the rows past the checkpoint are cut on resume anyway
        self._written = self._committed
        self._streamed = 0

    def close(self) -> None:
        self.flush()
        self.commit()
