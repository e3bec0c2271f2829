"""Read the CSV files people actually have into named columns, or say exactly what is wrong.

Real files come from Excel, R, instruments and hand edits: comma, semicolon or tab delimiters, a
header or none, a BOM or a legacy encoding, quoted newlines, blank lines, trailing delimiters.
This module reads what it can without guessing wrong and raises :class:`CsvError` (file, line,
column, what to do) for the rest; no ``csv``, ``Unicode`` or numpy error escapes. Cells stay
text until :meth:`CsvTable.numeric` parses a column (see ``csv_numbers``), so a task id such as
``007`` stays a label. Files above :data:`MAX_BYTES` are refused before reading. Tables are cached
by path, size and modification time, so a dialog can read a file in the background (with
progress and cancel) and the family built from it afterwards finds it already parsed.
"""

from __future__ import annotations

import codecs
import csv
import ctypes
import io
import sys
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from core.data.csv_numbers import Parsed, from_floats, is_number, parse_numbers
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


class _Column:
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
    _cells: dict[str, _Column] = field(repr=False)
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
            raise CsvError(self.path, f"there is no column {column!r}; the columns are {_names(self.columns)}")
        return column

    def _numbers(self, column: str) -> Parsed:
        key = ("numbers", self._name(column))
        if key not in self._memo:
            floats = self._cells[column].floats()
            self._memo[key] = (from_floats(floats, lambda i: self.text(column)[i]) if floats is not None
                               else parse_numbers(self.text(column), self.delimiter))
        return self._memo[key]


# -- reading ------------------------------------------------------------------------------------
_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()


def read_csv(path: str | Path, *, progress: Progress | None = None, header: bool | None = None,
             max_bytes: int = MAX_BYTES) -> CsvTable:
    """Read ``path``; ``header=None`` detects whether the first row names the columns.

    ``progress(fraction)`` is called now and then from this thread; returning True cancels with
    :class:`CsvCancelled`. Anything unreadable raises :class:`CsvError`.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise CsvError(path, f"cannot read the file: {exc.strerror or exc}") from None
    if path.is_dir():
        raise CsvError(path, "is a folder; choose the CSV files inside it")
    if not path.is_file():   # opening a FIFO blocks until a writer comes; a device may never end
        raise CsvError(path, "is not a regular file (a named pipe, device or socket); give a CSV file")
    if stat.st_size > max_bytes:
        raise CsvError(path, f"is {human_size(stat.st_size)}; files larger than {human_size(max_bytes)} are refused "
                             "because the whole table is held in memory: use a subset of the rows or columns")
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, header)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    report = _Reporter(path, progress)
    table = None
    from core.data import csv_fast  # here, not at the top: it imports this module

    if stat.st_size >= csv_fast.FAST_MIN_BYTES:
        table = csv_fast.read_fast(path, report, header)  # None: not provably plain, read precisely
    if table is None:
        table = _read(path, report, header, max_bytes)
    if stat.st_size >= csv_fast.FAST_MIN_BYTES:
        release_memory()
    with _cache_lock:
        _cache[key] = table
        while len(_cache) > 1 and sum(k[1] for k in _cache) > CACHE_BYTES:
            _cache.popitem(last=False)  # least recently used first; the newest table always stays
    return table


def release_memory() -> None:
    """Hand freed heap memory back to the system (glibc keeps what a parse of a million rows freed;
    without this the process stays ~50 MB larger than what it holds). A no-op elsewhere."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim if sys.platform.startswith("linux") else False
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def human_size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 10**9 else f"{size / 1e9:.2f} GB"


def _read(path: Path, report: "_Reporter", header: bool | None, max_bytes: int) -> CsvTable:
    report(0.0)
    data = _read_bytes(path, max_bytes, report)
    if not data.strip():
        what = "is empty (0 bytes)" if not data else "holds only blank lines"
        raise CsvError(path, f"{what}; export the data again, one row per observation and one column per variable")
    encoding, warnings = _encoding(path, data)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise CsvError(path, f"cannot be decoded as {encoding} (bad byte at position {exc.start}); "
                             "save it again as 'CSV UTF-8'") from None
    del data
    text = text.lstrip("\ufeff")
    delimiter = _sniff_delimiter(text[:SNIFF_CHARS], truncated=len(text) > SNIFF_CHARS)
    raw = _parse(path, text, delimiter, report)
    del text
    if not raw.lines.size:
        raise CsvError(path, "holds only blank lines; export the data again")
    has_header = _detect_header(raw.head) if header is None else header
    columns, cells, lines = _shape(path, raw, has_header, delimiter, warnings)
    if not lines.size:
        raise CsvError(path, f"has a header ({_names(columns)}) but no data rows")
    report(1.0)
    return CsvTable(path, columns, lines, delimiter, encoding, has_header, tuple(warnings), cells)


class _Reporter:
    """Maps reading (first 20%) and parsing (the rest) onto one fraction; raises when cancelled.

    The fraction never goes back: after a fast attempt gives up, the precise reader starts again at 0.
    """

    def __init__(self, path: Path, progress: Progress | None):
        self.path, self.progress, self.last = path, progress, 0.0

    def __call__(self, fraction: float) -> None:
        self.last = max(self.last, min(1.0, max(0.0, fraction)))
        if self.progress is not None and self.progress(self.last) is True:
            raise CsvCancelled(self.path, "reading was cancelled")


def _read_bytes(path: Path, max_bytes: int, report: _Reporter) -> bytes:
    chunks, total = [], 0
    lines = LineLengths()
    try:
        size = max(1, path.stat().st_size)
        with open(path, "rb") as f:
            while chunk := f.read(4 * 1024 * 1024):
                chunks.append(chunk)
                total += len(chunk)
                if total > max_bytes:  # the file grew while we read it
                    raise CsvError(path, f"is larger than {human_size(max_bytes)}; use a subset of the rows or columns")
                long_line = lines.too_long(chunk)
                if long_line is not None:
                    raise CsvError(path, f"this line is longer than {MAX_LINE_BYTES >> 20} MB, the most a line may "
                                         "hold (the table is held in memory); is it a CSV file with one record per "
                                         "line? Use fewer columns", line=long_line)
                report(0.2 * min(1.0, total / size))
    except OSError as exc:
        raise CsvError(path, f"cannot read the file: {exc.strerror or exc}") from None
    return b"".join(chunks)


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


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _encoding(path: Path, data: bytes) -> tuple[str, list[str]]:
    """From a BOM, else UTF-16 by its zero bytes, else UTF-8, else Windows-1252 / Latin-1; binary is refused."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name, []
    head = data[:SNIFF_CHARS]
    _refuse_binary(path, head)
    if b"\x00" in head:
        odd, even = head[1::2].count(0), head[0::2].count(0)
        if max(odd, even) > len(head) // 4:  # UTF-16 written without a BOM
            return ("utf-16-le" if odd > even else "utf-16-be"), []
        raise CsvError(path, "contains binary data (NUL bytes), not text; export your data as CSV")
    try:
        data.decode("utf-8")
        return "utf-8", []
    except UnicodeDecodeError:
        pass
    note = f"{path.name} is not UTF-8 and was read as {{}}; if accented letters look wrong, save it as 'CSV UTF-8'"
    try:
        data.decode("cp1252")
        return "cp1252", [note.format("Windows-1252 (Latin-1)")]
    except UnicodeDecodeError:
        return "latin-1", [note.format("Latin-1")]


def _refuse_binary(path: Path, head: bytes) -> None:
    save_as = "open it in Excel and use File > Save As > 'CSV UTF-8 (comma delimited)'"
    if head.startswith(b"PK\x03\x04"):
        if b"xl/" in head or b"[Content_Types].xml" in head:
            raise CsvError(path, f"is an Excel workbook (.xlsx), not a CSV file; {save_as}")
        if b"opendocument.spreadsheet" in head:
            raise CsvError(path, "is an OpenDocument spreadsheet (.ods), not a CSV file; save it as CSV")
        raise CsvError(path, "is a zip archive, not a CSV file; unpack it and choose the CSV files inside")
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        raise CsvError(path, f"is an Excel workbook (.xls), not a CSV file; {save_as}")
    if head.startswith(b"\x1f\x8b"):
        raise CsvError(path, "is gzip-compressed; unpack it first")
    if head.startswith(b"%PDF"):
        raise CsvError(path, "is a PDF document, not a CSV file; export the table as CSV")
    controls = sum(head.count(bytes([b])) for b in range(32) if b not in (0, 9, 10, 12, 13, 26))
    if controls > max(8, len(head) // 100):
        raise CsvError(path, "does not look like a text file (it holds binary control bytes); export your data as CSV")


def _sniff_delimiter(sample: str, truncated: bool) -> str:
    """The delimiter that splits the sample's records into the most consistent number (>= 2) of fields."""
    best, best_share = ",", 0.0
    for delimiter in DELIMITERS:
        try:
            rows = list(csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter))
        except csv.Error:
            continue
        if truncated and len(rows) > 1:
            rows = rows[:-1]  # the last record may be cut off
        widths = [len(r) for r in rows if any(c.strip() for c in r)][:100]
        if not widths:
            continue
        width, count = Counter(widths).most_common(1)[0]
        if width >= 2 and count / len(widths) > best_share:
            best, best_share = delimiter, count / len(widths)
    return best


@dataclass
class _Raw:
    columns: list[_Column]     # padded with "" to a common length
    lines: np.ndarray          # 1-based line where each record starts
    first_width: int           # fields in the first record (the header, if there is one)
    head: list[list[str]]      # the first records, stripped, for header detection


def _parse(path: Path, text: str, delimiter: str, report: _Reporter) -> _Raw:
    """Parse RFC 4180 records strictly (a broken quote is reported) straight into columns.

    Rows move into columns every ``CHUNK_ROWS`` records, so a large file never holds a Python
    list per row (memory, and the garbage collector's time); repeated values (task ids, labels)
    share one string, and short ASCII cells are packed into byte arrays.
    """
    total_lines = max(1, text.count("\n") or text.count("\r"))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    columns: list[_Column] = []
    shared: list[dict | None] = []
    chunk: list[list[str]] = []
    lines: list[int] = []
    head: list[list[str]] = []
    start, next_report = 1, PROGRESS_LINES

    def flush() -> None:
        width = max(len(columns), *map(len, chunk))
        while len(columns) < width:  # a wider row: the rows before it get empty cells there
            columns.append(_Column(empty=len(lines) - len(chunk)))
            shared.append({})
        for row in chunk:
            if len(row) < width:
                row.extend([""] * (width - len(row)))
        for j, cells in enumerate(zip(*chunk)):
            stripped = list(map(str.strip, cells))
            cache = shared[j]
            if cache is not None:
                stripped = list(map(cache.setdefault, stripped, stripped))
                if len(cache) > SHARE_LIMIT:
                    shared[j] = None  # mostly distinct values: pack them instead
            columns[j].add(stripped, compact=shared[j] is None)
        chunk.clear()

    try:
        for row in reader:
            if len(row) > MAX_COLUMNS:
                raise CsvError(path, f"this record has {len(row):,} values, more than the {MAX_COLUMNS:,} columns a "
                                     "table may have; use fewer columns", line=reader.line_num)
            if row and (row[0].strip() or any(c.strip() for c in row)):  # also skips ",,,"
                chunk.append(row)
                lines.append(start)
                if len(head) < HEAD_ROWS:
                    head.append([c.strip() for c in row])
                if len(chunk) == CHUNK_ROWS:
                    flush()
            start = reader.line_num + 1
            if start > next_report:
                report(0.2 + 0.75 * start / total_lines)
                next_report += PROGRESS_LINES
    except csv.Error as exc:
        raise CsvError(path, _record_problem(str(exc), text, start, delimiter), line=start) from None
    if chunk:
        flush()
    return _Raw(columns, np.asarray(lines, dtype=np.int64), len(head[0]) if head else 0, head)


_MISSING_QUOTE = ('a quoted value starts in this record and its closing quote (") is missing; fix the quoting '
                  '(a quote inside a quoted value is written twice: "")')


def _record_problem(message: str, text: str, line: int, delimiter: str) -> str:
    if "field larger" in message:
        return _long_field(text, line, delimiter)
    if "end of data" in message:
        return _MISSING_QUOTE
    if "expected after" in message:
        return ('text follows a closing quote (") in this record; quote the whole value, '
                'and write a quote inside it twice ("")')
    return f"the record cannot be read ({message}); check its quotes and delimiters"


def _long_field(text: str, line: int, delimiter: str) -> str:
    """Why a cell of the record starting at ``line`` outgrew the csv module's limit: a quoted value
    that never closes (it swallows the rest of the file), or a cell that really is that long."""
    lines = io.StringIO(text, newline="")
    pos = sum(len(lines.readline()) for _ in range(line - 1))
    while pos < len(text):
        if text[pos] == '"':
            end = pos + 1
            while (end := text.find('"', end)) >= 0 and text.startswith('""', end):
                end += 2
            if end < 0:
                return _MISSING_QUOTE
            if end - pos - 1 > FIELD_LIMIT:
                value = text[pos + 1:end]
                return _MISSING_QUOTE if "\n" in value or "\r" in value else _too_long()
            pos = end + 1
        else:
            ends = [i for i in (text.find(c, pos) for c in (delimiter, "\n", "\r")) if i >= 0]
            end = min(ends, default=len(text))
            if end - pos > FIELD_LIMIT:
                return _too_long()
            pos = end
        if pos >= len(text) or text[pos] != delimiter:
            break
        pos += 1
    return _too_long()


def _too_long() -> str:
    return (f"a value in this record is longer than {FIELD_LIMIT:,} characters ({FIELD_LIMIT >> 10} KiB), the most a "
            "cell may hold; shorten it, or leave that column out of the file")


def _detect_header(head: list[list[str]]) -> bool:
    """A header holds no number; with text in every column, assume the first row names the columns."""
    first, body = head[0], head[1:]
    if any(is_number(c) for c in first if c):
        return False
    for col in range(len(first)):
        values = [r[col] for r in body if col < len(r) and r[col]]
        if values and sum(is_number(v) for v in values) * 2 >= len(values):
            return True
    return bool(body) or all(first)


def _shape(path: Path, raw: _Raw, has_header: bool, delimiter: str,
           warnings: list[str]) -> tuple[tuple[str, ...], dict[str, _Column], np.ndarray]:
    """Drop the empty columns a trailing delimiter adds, refuse rows longer than the header, name columns."""
    columns, lines = raw.columns, raw.lines
    while len(columns) > 1 and columns[-1].first_value() is None:
        columns.pop()
    if not has_header:
        names = [f"column_{i + 1}" for i in range(len(columns))]
        return tuple(names), dict(zip(names, columns)), lines
    if len(columns) > raw.first_width:
        index = min(i for i in (c.first_value() for c in columns[raw.first_width:]) if i is not None)
        raise CsvError(path, f"this row has more values than the header has columns ({raw.first_width}); "
                             f"a value that contains {_DELIMITER_NAMES[delimiter]} must be quoted",
                       line=int(lines[index]))
    names = _name_columns(path, [c.pop_first() for c in columns], warnings)
    return tuple(names), dict(zip(names, columns)), lines[1:]


_DELIMITER_NAMES = {"\t": "a tab", ";": "a semicolon", ",": "a comma", "|": "a '|'"}


def _name_columns(path: Path, header: list[str], warnings: list[str]) -> list[str]:
    """Header names; an empty one becomes ``column_<i>``, repeats get ``_2``, ``_3`` (each with a warning)."""
    names = []
    for i, name in enumerate(header):
        if not name:
            name = f"column_{i + 1}"
            warnings.append(f"{path.name}: column {i + 1} has no name in the header; it is called {name!r}")
        names.append(name)
    for name, count in Counter(names).items():
        if count > 1:
            positions = [i for i, n in enumerate(names) if n == name]
            renamed = [name]
            for k, pos in enumerate(positions[1:], start=2):
                new = f"{name}_{k}"
                while new in names:
                    new += "_"
                names[pos] = new
                renamed.append(new)
            warnings.append(f"{path.name}: {count} columns are named {name!r} (columns "
                            f"{', '.join(str(p + 1) for p in positions)}); they were renamed {_names(renamed)}. "
                            "Rename them in the file if they mean different things")
    return names


def _names(names) -> str:
    return ", ".join(repr(n) for n in names)


__all__ = ["MAX_BYTES", "CsvCancelled", "CsvError", "CsvTable", "Progress", "clear_cache", "human_size", "read_csv"]
