"""A CSV file read into named text columns (:class:`CsvTable`), the errors reading raises, and the
limits both readers keep (the precise ``csv_reader`` and the fast ``csv_fast``)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from core.data.csv_numbers import Parsed, from_floats, parse_numbers
from core.errors import MamlError


MAX_BYTES = 200_000_000  # refused above this: reading holds the table in memory (about 4-5x the file size)


DELIMITERS = ("\t", ";", ",", "|")  # on a tie the earlier wins: ',' is also a decimal mark


SNIFF_CHARS = 64 * 1024


PROGRESS_LINES = 20_000  # lines between progress calls


CHUNK_ROWS = 20_000      # records moved into columns at a time


SHARE_LIMIT = 5_000      # distinct values per column worth sharing one string object


COMPACT_WIDTH = 32       # ASCII cells up to this length are stored as bytes (8x smaller than str)


HEAD_ROWS = 51           # records kept for header detection


CACHE_BYTES = 300_000_000  # tables kept for re-use, counted by the size of their files


MAX_LINE_BYTES = 8 << 20   # one line: a 50 MB header of 25 million columns took 9 GB before this


MAX_COLUMNS = 100_000      # values in one record


FIELD_LIMIT = csv.field_size_limit()   # characters in one cell (the csv module's own limit, 128 KiB)


Progress = Callable[[float], object]  # called with a fraction in [0, 1]; returning True cancels


class CsvError(MamlError, ValueError):
    """A file cannot be used; the message names it, the line and column when there is one, and what to do."""

    def __init__(self, path: str | Path | None, message: str, *, line: int | None = None, column: str | None = None):
        self.path = Path(path) if path is not None else None
        self.line, self.column, self.message = line, column, message
        where = [self.path.name] if self.path is not None else []
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class CsvCancelled(CsvError):
    """The progress callback asked to stop; not a problem with the file."""


class Column:
    """One column's stripped cells, in chunks: a list of str, or (short ASCII cells) a bytes array."""

    def __init__(self, empty: int = 0):
        self.chunks: list[list[str] | np.ndarray] = [[""] * empty] if empty else []

    def add(self, cells: list[str], compact: bool) -> None:
        if compact:
            try:
                packed = np.array(cells, dtype="S")
                if packed.itemsize <= COMPACT_WIDTH:
                    self.chunks.append(packed)
                    return
            except UnicodeEncodeError:
                pass
        self.chunks.append(cells)

    def __len__(self) -> int:
        return sum(len(c) for c in self.chunks)

    def first_value(self) -> int | None:
        """Index of the first non-empty cell."""
        offset = 0
        for chunk in self.chunks:
            if isinstance(chunk, np.ndarray):
                hits = np.flatnonzero(chunk != b"")
            else:
                hits = [i for i, c in enumerate(chunk) if c]
            if len(hits):
                return offset + int(hits[0])
            offset += len(chunk)
        return None

    def pop_first(self) -> str:
        first = self.chunks[0]
        self.chunks[0] = first[1:]
        return first[0].decode() if isinstance(first, np.ndarray) else first[0]

    def head(self, n: int) -> list[str]:
        out: list[str] = []
        for chunk in self.chunks:
            out.extend(_strings(chunk[:n - len(out)]))
            if len(out) >= n:
                break
        return out

    def text(self) -> list[str]:
        return [s for chunk in self.chunks for s in _strings(chunk)]

    def floats(self) -> np.ndarray | None:
        """Every cell as float64 when numpy can read them all (the common, fast case), else None."""
        try:
            return np.concatenate([np.asarray(c).astype(np.float64) for c in self.chunks] or [np.zeros(0)])
        except (ValueError, TypeError):
            return None


def _strings(chunk) -> list[str]:
    return chunk.astype(str).tolist() if isinstance(chunk, np.ndarray) else list(chunk)


@dataclass(frozen=True, eq=False)
class CsvTable:
    """One file as named columns of text; ``lines[i]`` is the 1-based line where data row ``i`` starts."""

    path: Path
    columns: tuple[str, ...]
    lines: np.ndarray
    delimiter: str
    encoding: str
    has_header: bool
    warnings: tuple[str, ...]
    _cells: dict[str, Column] = field(repr=False)
    _memo: dict = field(default_factory=dict, repr=False)

    @property
    def n_rows(self) -> int:
        return len(self.lines)

    def text(self, column: str) -> list[str]:
        """The stripped cells of ``column``; an empty string is a missing value."""
        key = ("text", self._name(column))
        if key not in self._memo:
            self._memo[key] = self._cells[column].text()
        return self._memo[key]

    def numeric(self, column: str) -> np.ndarray:
        """``column`` as float64, NaN where a value is missing; raises for text, units or infinities."""
        parsed = self._numbers(column)
        if parsed.bad:
            index, reason = parsed.bad[0]
            others = len(parsed.bad) - 1
            more = f" ({others} more such value{'s' if others > 1 else ''} in this column)" if others else ""
            raise CsvError(self.path, reason + more, line=int(self.lines[index]), column=column)
        return parsed.values

    def is_numeric(self, column: str) -> bool:
        """True when most present values read as numbers (so one typo is reported rather than hidden)."""
        parsed = self._numbers(column)
        present = int((~parsed.missing).sum())
        return present > 0 and len(parsed.bad) <= present // 2

    def number_note(self, column: str) -> str | None:
        """How commas inside the numbers of ``column`` were read, if they were (for the import warnings)."""
        mode = self._numbers(column).comma_mode
        if mode not in ("decimal", "thousands"):
            return None
        what = "the decimal mark" if mode == "decimal" else "a thousands separator"
        return f"{self.path.name}: in column {column!r} a comma inside a number was read as {what}"

    def labels(self, column: str) -> tuple[list[str], np.ndarray]:
        """``column``'s distinct stripped values and each row's code into them: grouping rows by task
        or class without a Python string per row (``names[codes[i]] == text(column)[i]``)."""
        key = ("labels", self._name(column))
        if key not in self._memo:
            cells = self._cells[column]
            if hasattr(cells, "labels"):
                self._memo[key] = cells.labels()
            else:
                uniq, codes = np.unique(np.asarray(self.text(column), dtype=object).astype(str), return_inverse=True)
                self._memo[key] = (uniq.tolist(), codes.reshape(-1))
        return self._memo[key]

    def preview(self, rows: int = 20) -> list[list[str]]:
        """The first ``rows`` data rows as text, for a preview table."""
        heads = [self._cells[c].head(rows) for c in self.columns]
        return [list(r) for r in zip(*heads)]

    def _name(self, column: str) -> str:
        if column not in self._cells:
            raise CsvError(self.path, f"there is no column {column!r}; the columns are {quoted_names(self.columns)}")
        return column

    def _numbers(self, column: str) -> Parsed:
        key = ("numbers", self._name(column))
        if key not in self._memo:
            floats = self._cells[column].floats()
            self._memo[key] = (from_floats(floats, lambda i: self.text(column)[i]) if floats is not None
                               else parse_numbers(self.text(column), self.delimiter))
        return self._memo[key]


def human_size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 10**9 else f"{size / 1e9:.2f} GB"


class Reporter:
    """Maps reading (first 20%) and parsing (the rest) onto one fraction; raises when cancelled.

    The fraction never goes back: after a fast attempt gives up, the precise reader starts again at 0.
    """

    def __init__(self, path: Path, progress: Progress | None):
        self.path, self.progress, self.last = path, progress, 0.0

    def __call__(self, fraction: float) -> None:
        self.last = max(self.last, min(1.0, max(0.0, fraction)))
        if self.progress is not None and self.progress(self.last) is True:
            raise CsvCancelled(self.path, "reading was cancelled")


class LineLengths:
    """Watches the bytes of a file chunk by chunk for a line longer than :data:`MAX_LINE_BYTES`
    (CR or LF ends a line), so a one-line 50 MB header is refused before it is parsed."""

    def __init__(self):
        self.run = 0            # bytes of the line still open at the end of the last chunk
        self.newlines = 0       # LFs seen before this chunk
        self.run_line = 1       # the line number of the open line

    def too_long(self, chunk: bytes) -> int | None:
        """The 1-based number of a line over the limit, else None."""
        if self.run + len(chunk) <= MAX_LINE_BYTES:   # the common case: no line can be too long yet
            self._advance(chunk)
            return None
        a = np.frombuffer(chunk, dtype=np.uint8)
        ends = np.flatnonzero((a == 10) | (a == 13))
        if not len(ends):
            self.run += len(chunk)
            return self.run_line if self.run > MAX_LINE_BYTES else None
        lengths = np.diff(ends, prepend=-1) - 1
        lengths[0] += self.run
        over = np.flatnonzero(lengths > MAX_LINE_BYTES)
        if len(over):
            k = int(over[0])
            return self.run_line if k == 0 else self.newlines + int(np.count_nonzero(a[:ends[k - 1] + 1] == 10)) + 1
        self._advance(chunk)
        return self.run_line if self.run > MAX_LINE_BYTES else None

    def _advance(self, chunk: bytes) -> None:
        end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        self.newlines += chunk.count(b"\n")
        if end < 0:
            self.run += len(chunk)
        else:
            self.run, self.run_line = len(chunk) - end - 1, self.newlines + 1


def quoted_names(names) -> str:
    return ", ".join(repr(n) for n in names)
