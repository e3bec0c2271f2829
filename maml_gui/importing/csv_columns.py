"""What a CSV column looks like to the import dialog's guesses: words in its name, whole numbers
or measurements, and whether its values can be the labels of N-way episodes.

Qt-free, shared by :mod:`maml_gui.importing.csv_choices` (task column, target) and
:mod:`maml_gui.importing.csv_episodes` (episodes over labels), so neither needs the other to guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from core.data.csv_reader import CsvError, CsvTable

TASK_WORDS = {"task", "subject", "subj", "id", "site", "group", "patient", "participant", "person", "machine",
              "unit", "tree", "plant", "animal", "station", "batch", "sample", "cell", "user", "school", "region",
              "writer", "speaker", "device", "well", "farm", "store", "customer", "chick", "individual", "pid"}
CLASS_WORDS = {"label", "labels", "class", "classes", "species", "category", "categories", "outcome", "diagnosis",
               "letter", "digit", "variety", "genre", "breed", "cls"}
DECIMAL_MARK = re.compile(r"\.|\d[eE]")   # '3750.0', '1e3': written as measurements, even when whole
MIN_LABELS, MAX_LABELS = 3, 1000   # the family needs classes for meta-train and meta-test; more is not "few"
MIN_ROWS = 2                       # rows a typical label needs to give a support and a query example


@dataclass(frozen=True)
class LabelColumn:
    """A column whose values can be the classes of episodes."""

    name: str
    labels: int        # distinct non-empty values
    typical: int       # rows of the median label
    smallest: int


def label_counts(table: CsvTable, column: str) -> dict[str, int]:
    """Rows per non-empty value of ``column``."""
    names, codes = table.labels(column)
    counts = np.bincount(np.asarray(codes, dtype=np.int64), minlength=len(names))
    return {n: int(c) for n, c in zip(names, counts) if n != "" and c}


def label_column(table: CsvTable, numeric: dict[str, bool], prefer: str | None = None) -> LabelColumn | None:
    """The column to propose as the label: text, or whole numbers, with 3..1000 values that repeat
    (a typical value on at least 2 rows), leaving a numeric input; ``prefer`` (the suggested
    target) first, then names like 'label' or 'species', then text, then more labels."""
    found = []
    for name in table.columns:
        if numeric.get(name) and not whole_numbers(table, name):
            continue
        if not any(numeric.get(c) for c in table.columns if c != name):
            continue
        counts = sorted(label_counts(table, name).values())
        if not MIN_LABELS <= len(counts) <= MAX_LABELS:
            continue
        typical = counts[len(counts) // 2]
        if typical < MIN_ROWS:
            continue
        found.append(LabelColumn(name, len(counts), typical, counts[0]))
    rank = (lambda c: (c.name == prefer, bool(words(c.name) & CLASS_WORDS), not numeric.get(c.name), c.labels))
    return max(found, key=rank, default=None)


def whole_numbers(table: CsvTable, name: str) -> bool:
    """Whether ``name`` holds whole numbers written as such: '3750.0' (as pandas writes a float
    column) or '1e3' is a measurement, even when every value is whole."""
    try:
        values = table.numeric(name)
    except CsvError:
        return False
    values = values[~np.isnan(values)]
    if not len(values) or not np.array_equal(values, np.round(values)):
        return False
    comma = (table.number_note(name) or "").endswith("the decimal mark")
    return not any(DECIMAL_MARK.search(n) or (comma and "," in n) for n in table.labels(name)[0])


def words(name: str) -> set[str]:
    """'SubjectID', 'subject_id' and 'subject id' all give {'subject', 'id'}."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return set(re.findall(r"[a-z]+", spaced.lower()))
