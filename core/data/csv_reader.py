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

import csv
import ctypes
import io
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import not_regular
from core.data import csv_fast
from core.data.csv_sniff import DELIMITER_NAMES, detect_encoding, detect_header, name_columns, sniff_delimiter
from core.data.csv_table import (CACHE_BYTES, CHUNK_ROWS, FIELD_LIMIT, HEAD_ROWS, MAX_BYTES, MAX_COLUMNS,
                                 MAX_LINE_BYTES, PROGRESS_LINES, SHARE_LIMIT, SNIFF_CHARS, Column, CsvCancelled,
                                 CsvError, CsvTable, LineLengths, Progress, Reporter, human_size, quoted_names)


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
        raise CsvError(path, f"{not_regular(path)}; give a CSV file")
    if stat.st_size > max_bytes:
        raise CsvError(path, f"is {human_size(stat.st_size)}; files larger than {human_size(max_bytes)} are refused "
                             "because the whole table is held in memory: use a subset of the rows or columns")
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, header)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    report = Reporter(path, progress)
    table = None

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


def _read(path: Path, report: "Reporter", header: bool | None, max_bytes: int) -> CsvTable:
    report(0.0)
    data = _read_bytes(path, max_bytes, report)
    if not data.strip():
        what = "is empty (0 bytes)" if not data else "holds only blank lines"
        raise CsvError(path, f"{what}; export the data again, one row per observation and one column per variable")
    encoding, warnings = detect_encoding(path, data)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise CsvError(path, f"cannot be decoded as {encoding} (bad byte at position {exc.start}); "
                             "save it again as 'CSV UTF-8'") from None
    del data
    text = text.lstrip("\ufeff")
    delimiter = sniff_delimiter(text[:SNIFF_CHARS], truncated=len(text) > SNIFF_CHARS)
    raw = _parse(path, text, delimiter, report)
    del text
    if not raw.lines.size:
        raise CsvError(path, "holds only blank lines; export the data again")
    has_header = detect_header(raw.head) if header is None else header
    columns, cells, lines = _shape(path, raw, has_header, delimiter, warnings)
    if not lines.size:
        raise CsvError(path, f"has a header ({quoted_names(columns)}) but no data rows")
    report(1.0)
    return CsvTable(path, columns, lines, delimiter, encoding, has_header, tuple(warnings), cells)


def _read_bytes(path: Path, max_bytes: int, report: Reporter) -> bytes:
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


@dataclass
class _Raw:
    columns: list[Column]     # padded with "" to a common length
    lines: np.ndarray          # 1-based line where each record starts
    first_width: int           # fields in the first record (the header, if there is one)
    head: list[list[str]]      # the first records, stripped, for header detection


def _parse(path: Path, text: str, delimiter: str, report: Reporter) -> _Raw:
    """Parse RFC 4180 records strictly (a broken quote is reported) straight into columns.

    Rows move into columns every ``CHUNK_ROWS`` records, so a large file never holds a Python
    list per row (memory, and the garbage collector's time); repeated values (task ids, labels)
    share one string, and short ASCII cells are packed into byte arrays.
    """
    total_lines = max(1, text.count("\n") or text.count("\r"))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    columns: list[Column] = []
    shared: list[dict | None] = []
    chunk: list[list[str]] = []
    lines: list[int] = []
    head: list[list[str]] = []
    start, next_report = 1, PROGRESS_LINES

    def flush() -> None:
        width = max(len(columns), *map(len, chunk))
        while len(columns) < width:  # a wider row: the rows before it get empty cells there
            columns.append(Column(empty=len(lines) - len(chunk)))
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


def _shape(path: Path, raw: _Raw, has_header: bool, delimiter: str,
           warnings: list[str]) -> tuple[tuple[str, ...], dict[str, Column], np.ndarray]:
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
                             f"a value that contains {DELIMITER_NAMES[delimiter]} must be quoted",
                       line=int(lines[index]))
    names = name_columns(path, [c.pop_first() for c in columns], warnings)
    return tuple(names), dict(zip(names, columns)), lines[1:]


__all__ = ["MAX_BYTES", "CsvCancelled", "CsvError", "CsvTable", "Progress", "clear_cache", "human_size", "read_csv"]
