"""Numbers as people type them into spreadsheets, and a useful message when a cell is not one.

Accepted: plain numbers; decimal commas (``1,5``, ``1.234,5``) where the column shows it uses
them, or the file is semicolon-separated (the European spreadsheet convention); thousands
separators (``1,234.5``, ``1,000,000``). The comma convention is decided once per column, so
``1,234`` never means 1.234 in one row and 1234 in the next. Refused with an explanation: units
(``12 kg``), ``%``, currency symbols, infinities and overflow (``1e400``), other text.
Missing-value markers (empty, NA, NaN, null, ...) are reported as missing, not as errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "#n/a", "?"})

_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$")        # 1,234 / 1,234,567.5
_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+(?:[eE][+-]?\d+)?$")       # 1,5 / -0,25 / 1,5e3
_EURO = re.compile(r"[+-]?\d{1,3}(?:\.\d{3})+(?:,\d+)?$")            # 1.234,5 / 1.234.567
_UNIT = re.compile(r"[+-]?(?:\d[\d.,]*|\.\d+)(?:[eE][+-]?\d+)?\s*((?:[^\W\d_]|[%°µ])\S*(?:\s\S+)?)$")  # 12 kg, 5%
_CURRENCY = re.compile(r"[+-]?[$€£¥]\s*[\d.]")


@dataclass(frozen=True)
class Parsed:
    values: np.ndarray          # float64, NaN where missing or bad
    missing: np.ndarray         # bool
    bad: list[tuple[int, str]]  # (row index, what is wrong and what to do)
    comma_mode: str = "none"    # how commas inside numbers were read: none / decimal / thousands / mixed


def is_number(text: str) -> bool:
    """Loose check used to tell a header row from data."""
    try:
        float(text)
        return "_" not in text
    except ValueError:
        return bool(_THOUSANDS.match(text) or _DECIMAL_COMMA.match(text) or _EURO.match(text))


def from_floats(values: np.ndarray, cell) -> Parsed:
    """The fast path's result (every cell parsed by numpy): NaN came from 'nan' (missing), inf is refused."""
    bad = [(int(i), not_finite(cell(int(i)))) for i in np.flatnonzero(np.isinf(values))]
    return Parsed(values, np.isnan(values), bad)


def parse_numbers(cells: list[str], delimiter: str) -> Parsed:
    """Cell by cell, after choosing the column's comma convention."""
    mode = comma_mode([c for c in cells if "," in c], delimiter)
    values = np.full(len(cells), np.nan)
    missing = np.zeros(len(cells), dtype=bool)
    bad = []
    for i, cell in enumerate(cells):
        if cell.lower() in MISSING:
            missing[i] = True
            continue
        number = _number(cell, mode)
        if isinstance(number, str):
            bad.append((i, number))
        else:
            values[i] = number
    return Parsed(values, missing, bad, mode)


def comma_mode(with_comma: list[str], delimiter: str) -> str:
    """How commas inside the numbers of one column are read: 'thousands', 'decimal', 'mixed' or 'none'."""
    if not with_comma:
        return "none"
    us = any(_THOUSANDS.match(v) and ("." in v or v.count(",") > 1) for v in with_comma)
    eu = any(_EURO.match(v) and "," in v for v in with_comma) or any(
        _DECIMAL_COMMA.match(v) and not _THOUSANDS.match(v) for v in with_comma)
    if us and eu:
        return "mixed"
    if us or eu:
        return "thousands" if us else "decimal"
    return "decimal" if delimiter == ";" else "thousands"  # only '1,234'-like values: the file's convention decides


def _number(cell: str, mode: str) -> float | str:
    """The number in ``cell``, or a message saying why it is not one and what to do."""
    text = cell
    if "," in text:
        if mode == "thousands" and _THOUSANDS.match(text):
            text = text.replace(",", "")
        elif mode == "decimal" and (_DECIMAL_COMMA.match(text) or _EURO.match(text)):
            text = text.replace(".", "").replace(",", ".")
        elif _THOUSANDS.match(text) or _DECIMAL_COMMA.match(text) or _EURO.match(text):
            return (f"value {cell!r} has a comma inside the number, and this column uses commas in more than one way; "
                    "save the file with '.' as the decimal mark and no thousands separators")
    elif mode == "decimal" and _EURO.match(text):
        text = text.replace(".", "")
    elif mode == "decimal" and "." in text and is_number(text):
        return (f"value {cell!r} uses '.' as the decimal mark while other values in this column use ','; "
                "use one decimal mark throughout the column")
    try:
        value = float(text)
    except ValueError:
        return not_a_number(cell)
    if "_" in text:
        return not_a_number(cell)
    return value if np.isfinite(value) else not_finite(cell)


def not_finite(cell: str) -> str:
    return (f"value {cell!r} is not a finite number (infinite or too large); replace it with a finite value, "
            "or leave the cell empty to mark it missing")


def not_a_number(cell: str) -> str:
    shown = cell if len(cell) <= 40 else cell[:37] + "..."
    if _CURRENCY.match(cell):
        return f"value {shown!r} has a currency symbol; remove it so the cells hold plain numbers"
    unit = _UNIT.match(cell)
    if unit and unit.group(1).strip() == "%":
        return f"value {shown!r} has a '%' sign; remove it (write 12 or 0.12) so the cells hold plain numbers"
    if unit:
        return (f"value {shown!r} has a unit ({unit.group(1).strip()!r}) after the number; remove units from the "
                "values (put the unit in the column name instead, e.g. 'weight_kg')")
    return (f"value {shown!r} is not a number; correct it, leave the cell empty to mark it missing, "
            "or leave this column out of the inputs")
