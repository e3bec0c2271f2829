"""Large, clean CSV files at pandas' speed; anything the fast path cannot vouch for goes to the precise reader.

The precise reader (``csv_reader``) tokenises with Python's ``csv`` module and keeps every cell as
text, which costs seconds and hundreds of MB on a million-row file. Most large files are plain:
UTF-8, one record per line, numbers in the numeric columns. For those, pandas' C parser reads
the numbers straight into float64 (correctly rounded, as ``float()`` does) and the text columns
into codes plus their distinct values. :func:`read_fast` accepts a file only when it can show the
precise reader would read exactly the same table, and returns ``None`` otherwise (a missing
cell, a word in a number column, a stray quote, a blank line, a legacy encoding, ...), so the
precise reader reads it instead and explains any problem by line and column, exactly as before.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path

import numpy as np

from core.data.csv_sniff import detect_header, name_columns, refuse_binary, sniff_delimiter
from core.data.csv_table import (HEAD_ROWS, MAX_COLUMNS, SNIFF_CHARS, CsvCancelled, CsvError, CsvTable, LineLengths,
                                 Reporter)

FAST_MIN_BYTES = 1_000_000     # below this the precise reader is as quick (and pandas' import is skipped)
SCAN_BYTES = 1024 * 1024       # read at a time while checking encoding, line ends and quotes (small: see _parse)
HEAD_BYTES = 1024 * 1024       # decoded for sniffing the delimiter and detecting the header
CHUNK_ROWS = 250_000           # rows pandas parses at a time: bounded memory, progress and cancel between
_PLAIN = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")  # what a number column's head holds


def read_fast(path: Path, report: Reporter, header: bool | None) -> CsvTable | None:
    """The table ``csv_reader.read_csv`` would build, or None when the precise reader must read it.

    Raises only :class:`CsvCancelled` (the progress callback asked to stop).
    """
    try:
        return _read(path, report, header)
    except CsvCancelled:
        raise
    except Exception:  # noqa: BLE001 - any surprise means "not provably plain": the precise reader decides
        return None


def _read(path: Path, report: Reporter, header: bool | None) -> CsvTable | None:
    report(0.0)
    scan = _scan(path, report)
    if scan is None:
        return None
    size, stamp, bom, head_text, n_quotes, n_lines = scan
    delimiter = sniff_delimiter(head_text[:SNIFF_CHARS], truncated=size - bom > 4 * SNIFF_CHARS
                                 or len(head_text) > SNIFF_CHARS)
    if n_quotes and not _quotes_are_clean(path, bom, delimiter):
        return None
    head = _head_records(head_text, delimiter, whole=size - bom <= HEAD_BYTES)
    if head is None:
        return None
    has_header = detect_header(head) if header is None else header
    width = len(head[0])
    if width > MAX_COLUMNS:
        return None   # the precise reader says so, naming the line
    if has_header and not all(head[0]):
        return None  # an unnamed column (maybe a trailing delimiter): the precise reader names or drops it
    body = head[1:] if has_header else head
    number = [bool(body) and all(j < len(r) and _PLAIN.match(r[j]) for r in body) for j in range(width)]
    n_rows = n_lines - has_header  # each record is one line (quoted values spanning lines were refused)
    columns = _parse(path, delimiter, bom, width, has_header, number, n_rows, report) if n_rows > 0 else None
    if columns is None:
        return None
    text = [c for c in columns if isinstance(c, _Labels)]
    if len(text) == width and np.logical_and.reduce([c.empty_mask() for c in text]).any():
        return None  # a row of empty cells, which the precise reader skips
    if not has_header and isinstance(columns[-1], _Labels) and columns[-1].all_empty():
        return None  # a trailing delimiter on every line: the precise reader drops that column
    warnings: list[str] = []
    names = name_columns(path, list(head[0]), warnings) if has_header else [f"column_{i + 1}" for i in range(width)]
    for j, column in enumerate(columns):
        if isinstance(column, _Numbers):
            column.bind(_Source(path, stamp, delimiter, bom, has_header, j, width), [r[j] for r in body], n_rows)
    first = 2 if has_header else 1
    lines = np.arange(first, first + n_rows, dtype=np.int32)  # under 200 MB, under 2**31 lines; half the memory
    report(1.0)
    return CsvTable(path, tuple(names), lines, delimiter, "utf-8-sig" if bom else "utf-8", has_header,
                    tuple(warnings), dict(zip(names, columns)))


def _scan(path: Path, report: Reporter):
    """One pass over the bytes: UTF-8 throughout, no NUL, no lone CR; counts the quotes.

    Returns (size, stamp, BOM length, decoded head, quotes, physical lines) or None.
    """
    stat = path.stat()
    size, stamp = stat.st_size, (stat.st_size, stat.st_mtime_ns)
    decoder = codecs.getincrementaldecoder("utf-8")()
    n_quotes, n_lf, prev, head, done = 0, 0, b"", b"", 0
    lines = LineLengths()
    with open(path, "rb") as f:
        while chunk := f.read(SCAN_BYTES):
            if not done:
                if chunk.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE,
                                     codecs.BOM_UTF16_BE)):
                    return None
                refuse_binary(path, chunk[:SNIFF_CHARS])  # a CsvError here: the precise reader says it again
                head = chunk + f.read(HEAD_BYTES - len(chunk)) if len(chunk) < HEAD_BYTES else chunk
                chunk = head
            if b"\x00" in chunk or lines.too_long(chunk) is not None:
                return None   # a line too long to parse safely: the precise reader refuses it by number
            if not chunk.isascii() or decoder.getstate()[0]:
                decoder.decode(chunk)  # raises on bytes that are not UTF-8 (the precise reader falls back to cp1252)
            if b"\r" in chunk and chunk.count(b"\r") != chunk.count(b"\r\n") + (chunk[-1:] == b"\r"):
                return None  # a line ending in CR alone (old Mac files)
            if prev == b"\r" and chunk[:1] != b"\n":
                return None
            n_lf += chunk.count(b"\n")
            if b'"' in chunk:
                n_quotes += chunk.count(b'"')
            prev, done = chunk[-1:], done + len(chunk)
            report(0.2 * done / max(1, size))
    decoder.decode(b"", final=True)  # raises on a truncated sequence at the end
    if done != size or not size or prev == b"\r":
        return None  # the file changed while we read it, or ends in a lone CR
    bom = 3 if head.startswith(codecs.BOM_UTF8) else 0
    head_text = codecs.getincrementaldecoder("utf-8")().decode(head[bom:], final=size <= HEAD_BYTES)
    if head_text.startswith("\ufeff"):
        return None
    return size, stamp, bom, head_text, n_quotes, n_lf + (prev != b"\n")


def _quotes_are_clean(path: Path, bom: int, delimiter: str) -> bool:
    """Every quote opens a field, closes it, or is doubled inside it (RFC 4180), and no quoted value
    spans lines, so pandas and the strict ``csv`` module agree and a record is one line; a stray
    quote or text after a closing one is the precise reader's to explain."""
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    q = np.concatenate([np.flatnonzero(data[s:s + SCAN_BYTES] == 34) + s for s in range(0, len(data), SCAN_BYTES)])
    if len(q) % 2:
        return False
    seps = np.frombuffer(delimiter.encode() + b"\n\r", dtype=np.uint8)
    opening, closing = q[0::2], q[1::2]
    before = np.where(opening > bom, data[np.maximum(opening - 1, 0)], 10)
    doubled_in = np.r_[False, opening[1:] == closing[:-1] + 1]  # the second quote of a doubled pair
    after = np.where(closing + 1 < len(data), data[np.minimum(closing + 1, len(data) - 1)], 10)
    doubled_out = np.r_[closing[:-1] + 1 == opening[1:], False]
    if not ((np.isin(before, seps) | doubled_in).all() and (np.isin(after, seps) | doubled_out).all()):
        return False
    ends = np.concatenate([np.flatnonzero((data[s:s + SCAN_BYTES] == 10) | (data[s:s + SCAN_BYTES] == 13)) + s
                           for s in range(0, len(data), SCAN_BYTES)])
    return not (np.searchsorted(ends, opening) != np.searchsorted(ends, closing)).any()


def _head_records(text: str, delimiter: str, whole: bool) -> list[list[str]] | None:
    """The first records, stripped, as the precise reader sees them; None when one is blank or cut off."""
    records = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True):
            if not any(c.strip() for c in row):
                return None
            records.append([c.strip() for c in row])
            if len(records) > HEAD_ROWS:
                break
    except csv.Error:
        return None
    if not whole and len(records) <= HEAD_ROWS:
        return None  # very long records: the head may end inside one
    return records[:HEAD_ROWS] or None


def _pandas_options(delimiter: str, bom: int, width: int, has_header: bool) -> dict:
    """Options that make pandas tokenise as the strict ``csv`` module does and keep every cell."""
    import pandas as pd

    options = dict(sep=delimiter, header=None, names=list(range(width)), index_col=False,
                   skiprows=1 if has_header else 0, quotechar='"', doublequote=True, escapechar=None,
                   skipinitialspace=False, na_filter=False, keep_default_na=False, skip_blank_lines=False,
                   comment=None, thousands=None, decimal=".", encoding="utf-8-sig" if bom else "utf-8",
                   engine="c", chunksize=CHUNK_ROWS)
    if tuple(int(v) for v in pd.__version__.split(".")[:2]) < (3, 1):
        options["float_precision"] = "round_trip"  # correctly rounded, as float() (the only converter from 3.1 on)
    return options


def _parse(path: Path, delimiter: str, bom: int, width: int, has_header: bool, number: list[bool],
           n_rows: int, report: Reporter) -> list | None:
    """Numbers as float64 (finite, or None), text as codes into distinct values, chunk by chunk.

    The columns are allocated whole before pandas starts, so they are mapped apart from the parser's
    short-lived buffers and the process's memory falls back when those are freed (growing lists of
    chunks and concatenating them left ~70 MB of a 55 MB file's parse stranded in the heap).
    """
    options = _pandas_options(delimiter, bom, width, has_header)
    options["dtype"] = {j: (np.float64 if number[j] else object) for j in range(width)}
    floats = {j: np.empty(n_rows) for j in range(width) if number[j]}
    labels = {j: _LabelBuilder(n_rows) for j in range(width) if not number[j]}
    done = 0
    import pandas as pd

    with pd.read_csv(path, **options) as reader:
        for chunk in reader:
            end = done + len(chunk)
            if end > n_rows:
                return None
            for j, out in floats.items():
                out[done:end] = chunk[j].to_numpy(dtype=np.float64)
                if not np.isfinite(out[done:end]).all():
                    return None  # 'nan', 'inf', 1e400 or a missing value: the precise reader's to judge
            for j, builder in labels.items():
                if not builder.add(chunk[j], done):
                    return None
            done = end
            report(0.2 + 0.75 * done / n_rows)
    if done != n_rows:
        return None  # fewer records than lines: the precise reader counts them
    return [_Numbers(floats[j]) if number[j] else labels[j].build() for j in range(width)]


class _LabelBuilder:
    """Codes per row into distinct values in order of first appearance, merged over chunks."""

    def __init__(self, n_rows: int):
        self.ids: dict[str, int] = {}
        self.codes = np.empty(n_rows, dtype=np.int32)

    def add(self, series, start: int) -> bool:
        import pandas as pd

        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        if len(codes) and codes.min() < 0:
            return False  # a field pandas could not give as text
        if not all(isinstance(u, str) for u in uniques):
            return False
        ids = np.fromiter((self.ids.setdefault(u, len(self.ids)) for u in uniques), dtype=np.int64, count=len(uniques))
        self.codes[start:start + len(codes)] = ids[codes] if len(ids) else codes
        return True

    def build(self) -> "_Labels":
        return _Labels.stripped(list(self.ids), self.codes)


class _Labels:
    """A text column as codes into its distinct stripped values (the ``Column`` interface)."""

    def __init__(self, names: list[str], codes: np.ndarray):
        self.names, self.codes = names, codes

    @classmethod
    def stripped(cls, names: list[str], codes: np.ndarray) -> "_Labels":
        """Strip each distinct value, as the precise reader strips each cell, merging values that become equal."""
        clean = [n.strip() for n in names]
        if clean == names:
            return cls(names, codes)
        ids: dict[str, int] = {}
        remap = np.array([ids.setdefault(n, len(ids)) for n in clean], dtype=codes.dtype)
        return cls(list(ids), remap[codes])

    def __len__(self) -> int:
        return len(self.codes)

    def empty_mask(self) -> np.ndarray:
        empty = np.array([not n for n in self.names], dtype=bool)
        return empty[self.codes] if len(empty) else np.zeros(len(self.codes), dtype=bool)

    def all_empty(self) -> bool:
        return bool(self.empty_mask().all())

    def text(self) -> list[str]:
        return np.asarray(self.names, dtype=object)[self.codes].tolist() if self.names else [""] * len(self.codes)

    def head(self, n: int) -> list[str]:
        return [self.names[c] for c in self.codes[:n].tolist()]

    def floats(self) -> np.ndarray | None:
        """As the precise reader: float64 when numpy reads every cell (so every distinct value), else None."""
        try:
            return np.asarray(self.names or ["0"]).astype(np.float64)[self.codes]
        except (ValueError, TypeError):
            return None

    def labels(self) -> tuple[list[str], np.ndarray]:
        return self.names, self.codes


class _Source:
    """Where a number column's text is, for the rare caller who asks for it (a numeric task id)."""

    def __init__(self, path: Path, stamp, delimiter: str, bom: int, has_header: bool, index: int, width: int):
        self.path, self.stamp, self.delimiter, self.bom = path, stamp, delimiter, bom
        self.has_header, self.index, self.width = has_header, index, width
        self.n_rows = 0

    def labels(self) -> _Labels:
        """Read this one column again as text: ``007`` and ``7`` are different task ids."""
        import pandas as pd

        stat = self.path.stat()
        if (stat.st_size, stat.st_mtime_ns) != self.stamp:
            raise CsvError(self.path, "the file changed while it was being used; read it again")
        options = _pandas_options(self.delimiter, self.bom, self.width, self.has_header)
        options.update(usecols=[self.index], dtype={self.index: object})
        builder, done = _LabelBuilder(self.n_rows), 0
        with pd.read_csv(self.path, **options) as reader:
            for chunk in reader:
                if done + len(chunk) > self.n_rows or not builder.add(chunk[self.index], done):
                    raise CsvError(self.path, "the file changed while it was being used; read it again")
                done += len(chunk)
        return builder.build()


class _Numbers:
    """A number column: float64 values now, its text only when asked (the ``Column`` interface)."""

    def __init__(self, values: np.ndarray):
        self.values = values
        self._source: _Source | None = None
        self._head: list[str] = []
        self._labels: _Labels | None = None

    def bind(self, source: _Source, head: list[str], n_rows: int) -> None:
        self._source, self._head = source, head
        source.n_rows = n_rows

    def __len__(self) -> int:
        return len(self.values)

    def floats(self) -> np.ndarray:
        return self.values

    def labels(self) -> tuple[list[str], np.ndarray]:
        if self._labels is None:
            self._labels = self._source.labels()
        return self._labels.labels()

    def text(self) -> list[str]:
        self.labels()
        return self._labels.text()

    def head(self, n: int) -> list[str]:
        return self._head[:n] if n <= len(self._head) else self.text()[:n]


__all__ = ["FAST_MIN_BYTES", "read_fast"]
