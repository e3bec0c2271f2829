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
WALL_TIME = "wall_time"   # the last column: when the row's step ended, seconds since the epoch (UTC)
"""Files written before ``wall_time`` existed end with the step losses; they are read with NaN there, and
one is rewritten with the column (NaN in its old rows) before rows are appended to it. A table in memory
(:func:`read_metrics`, :func:`metrics_table_csv`) always has it: ``[rows, 4 + steps + 1]``."""


# a meta-RL run's table has the same shape: the adapted policies' average return, and the return
# before each inner step and after the last (step_return_0 is the unadapted policy's)
RL_METRIC_COLUMNS = ("iteration", "meta_return", "grad_norm", "seconds")


def _header(n_steps: int, wall: bool = True, rl: bool = False) -> list[str]:
    first, step = (RL_METRIC_COLUMNS, "step_return") if rl else (METRIC_COLUMNS, "step_loss")
    return [*first, *(f"{step}_{s}" for s in range(n_steps)), *([WALL_TIME] if wall else [])]


def _headers(n_steps: int, wall: bool) -> tuple[list[str], list[str]]:
    """The two headers a table of ``n_steps`` step columns may have: losses, or returns (meta-RL)."""
    return _header(n_steps, wall), _header(n_steps, wall, rl=True)


def table_steps(table: np.ndarray) -> int:
    """The number of step-loss columns of a table in :func:`read_metrics`' columns."""
    return max(0, table.shape[1] - len(METRIC_COLUMNS) - 1) if table.ndim == 2 else 0


def _values(r) -> tuple:
    """(meta-loss or meta-return, the per-step values) of a trainer's step metrics."""
    if hasattr(r, "step_returns"):
        return r.meta_return, r.step_returns
    return r.meta_loss, r.step_losses


def _row(r) -> list:
    main, steps = _values(r)
    return [r.iteration, repr(main), repr(r.grad_norm), f"{r.seconds:.6f}", *(repr(x) for x in steps),
            f"{r.wall_time:.3f}"]


def _line(r) -> str:
    """:func:`_row` as the csv module writes it (no field needs quoting), without its overhead."""
    main, steps = _values(r)
    losses = "".join(f",{x!r}" for x in steps)
    return f"{r.iteration},{main!r},{r.grad_norm!r},{r.seconds:.6f}{losses},{r.wall_time:.3f}\n"


def metrics_kind(run_dir: str | Path) -> str | None:
    """"rl" when a run folder's ``metrics.csv`` holds returns (meta-RL), "loss" for losses, None when unreadable."""
    try:
        with open(Path(run_dir) / METRICS_FILE, "rb") as f:
            first = f.read(4096).split(b"\n", 1)[0].decode("utf-8", "replace")
    except OSError:
        return None
    return "rl" if first.startswith(",".join(RL_METRIC_COLUMNS)) else "loss" if first.startswith(
        ",".join(METRIC_COLUMNS)) else None


def _table_line(r: list) -> str:
    """One row of a table (a list of floats in :func:`read_metrics`' columns) as :func:`_line` writes it."""
    return f"{int(r[0])},{r[1]!r},{r[2]!r},{r[3]:.6f}" + "".join(f",{v!r}" for v in r[4:-1]) + f",{r[-1]:.3f}"


def metrics_csv(rows: Iterable) -> bytes:
    """One row per iteration; ``step_loss_s`` columns for the query loss after each inner step, then
    ``wall_time``."""
    rows = list(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    rl = bool(rows) and hasattr(rows[0], "step_returns")
    writer.writerow(_header(max((len(_values(r)[1]) for r in rows), default=0), rl=rl))
    writer.writerows(_row(r) for r in rows)
    return buf.getvalue().encode()


def metrics_table_csv(table: np.ndarray, rl: bool = False) -> bytes:
    """:func:`metrics_csv` of a ``[rows, 4 + steps + 1]`` table in :func:`read_metrics`' columns, byte for
    byte, about 3x faster: a window saving a long run holds the GIL for less time."""
    table = np.asarray(table, dtype=np.float64)
    lines = [",".join(_header(table_steps(table) if table.size else 0, rl=rl))]
    lines += [_table_line(r) for r in table.tolist()]
    return ("\n".join(lines) + "\n").encode()


def _add_wall_column(path: Path, n_steps: int | None = None) -> None:
    """Rewrite a ``metrics.csv`` of a version before ``wall_time`` with the column (NaN in its rows), so
    the rows a continued run appends (with their clock time) make one table. Done once, on the first
    append; a file that already has the column, or is not one of ours, is left alone."""
    with open(path, "rb") as f:
        first = f.readline(1 << 16)
        header = first.rstrip(b"\r\n").decode("utf-8", "replace").split(",")
        steps = len(header) - len(METRIC_COLUMNS)
        if steps <= 0 or header not in _headers(steps, wall=False) or (n_steps is not None and steps != n_steps):
            return   # the usual case costs one line's read: appends stay as cheap as their rows
        rl = header == _header(steps, wall=False, rl=True)
        data = first + f.read()
    lines = data.split(b"\n")
    body = [line.rstrip(b"\r") + b",nan" for line in lines[1:-1] if line.strip()]   # [-1]: after the last newline
    atomic_write(path, b"\n".join([",".join(_header(steps, rl=rl)).encode(), *body]) + b"\n")


def append_metrics_table(run_dir: str | Path, table: np.ndarray, rl: bool = False) -> None:
    """Append the rows of a ``[rows, 4 + steps + 1]`` table to ``metrics.csv`` and fsync, as a checkpoint's
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
            _add_wall_column(path, table_steps(table))
        else:
            header = (",".join(_header(table_steps(table), rl=rl)) + "\n").encode()
        lines = "".join(_table_line(r) + "\n" for r in table.tolist())
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as f:
            f.write(header + lines.encode())
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {reason_of(exc)}", reason_of(exc)) from None


def read_metrics(run_dir: str | Path) -> np.ndarray | None:
    """A run folder's ``metrics.csv`` as ``[rows, 4 + steps + 1]`` (the columns :func:`metrics_csv`
    writes; ``wall_time`` NaN in a file written before it existed), or None when there is none or it
    is not one of ours: the metrics are optional. A last line without its newline is a row being
    appended by a running ``train``: it is left out."""
    path = Path(run_dir) / METRICS_FILE
    try:
        if not path.is_file():   # a FIFO would block the reader
            return None
        text = path.read_text(encoding="utf-8")
        if not text.endswith("\n"):
            text = text[:text.rfind("\n") + 1]
        rows = list(csv.reader(io.StringIO(text, newline="")))
        header, body = rows[0], [r for r in rows[1:] if r]
        wall = bool(header) and header[-1] == WALL_TIME
        steps = len(header) - len(METRIC_COLUMNS) - wall
        if steps <= 0 or header not in _headers(steps, wall) or not body:
            return None
        data = np.array(body, dtype=float)
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    if data.ndim != 2 or data.shape[1] != len(header):
        return None
    if not wall:
        data = np.column_stack([data, np.full(len(data), np.nan)])
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
    """Refuse to append to a file that does not start with this run's header, or that of a version
    before ``wall_time`` (an empty one is started again): rows after someone else's first line would
    make a table no reader takes."""
    try:
        with open(path, "rb") as f:
            first = f.read(1 << 16).split(b"\n", 1)[0]
    except OSError as exc:
        raise RunFileError(path, "", f"cannot read it: {exc.strerror or exc}") from None
    expected = ",".join(_header(n_steps, rl=rl)).encode()
    if first and first.rstrip(b"\r") not in (expected, ",".join(_header(n_steps, wall=False, rl=rl)).encode()):
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
                _add_wall_column(self.path, n_steps)
            if not (resume and self.path.is_file() and self.path.stat().st_size):
                atomic_write(self.path, (",".join(_header(n_steps, rl=rl)) + "\n").encode())
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
