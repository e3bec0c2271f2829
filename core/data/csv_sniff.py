"""What kind of text a CSV file is: its encoding, its delimiter, whether it has a header, and the
names of its columns; shared by the precise reader and the fast one."""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from pathlib import Path

from core.data.csv_numbers import is_number
from core.data.csv_table import DELIMITERS, SNIFF_CHARS, CsvError, quoted_names


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def detect_encoding(path: Path, data: bytes) -> tuple[str, list[str]]:
    """From a BOM, else UTF-16 by its zero bytes, else UTF-8, else Windows-1252 / Latin-1; binary is refused."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name, []
    head = data[:SNIFF_CHARS]
    refuse_binary(path, head)
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


def refuse_binary(path: Path, head: bytes) -> None:
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


def sniff_delimiter(sample: str, truncated: bool) -> str:
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


def detect_header(head: list[list[str]]) -> bool:
    """A header holds no number; with text in every column, assume the first row names the columns."""
    first, body = head[0], head[1:]
    if any(is_number(c) for c in first if c):
        return False
    for col in range(len(first)):
        values = [r[col] for r in body if col < len(r) and r[col]]
        if values and sum(is_number(v) for v in values) * 2 >= len(values):
            return True
    return bool(body) or all(first)


DELIMITER_NAMES = {"\t": "a tab", ";": "a semicolon", ",": "a comma", "|": "a '|'"}


def name_columns(path: Path, header: list[str], warnings: list[str]) -> list[str]:
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
                            f"{', '.join(str(p + 1) for p in positions)}); they were renamed {quoted_names(renamed)}. "
                            "Rename them in the file if they mean different things")
    return names


