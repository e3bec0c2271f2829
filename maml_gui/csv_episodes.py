"""The CSV import's third layout: no task column, N-way episodes over the values of a label column.

Qt-free, like :mod:`maml_gui.csv_choices`: which column can be the label (counted with
``CsvTable.labels``, one pass over codes rather than a string per row), the ``labelled_csv``
family's settings from the dialog's choices, and the engine's verdict on them
(:class:`core.tasks.labelled_rows.LabelledRowsFamily` built exactly as the window will build it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.csv_reader import CsvError, CsvTable
from core.errors import ConfigError, MamlError
from core.tasks.episodes import SPLITS
from core.tasks.labelled_rows import LabelledRowsFamily

from .csv_choices import CLASS_WORDS, Checked, _words

MIN_LABELS, MAX_LABELS = 3, 1000   # the family needs classes for meta-train and meta-test; more is not "few"
MIN_ROWS = 2                       # rows a typical label needs to give a support and a query example
AUTO_WAYS = 5                      # N when "auto": as in the few-shot benchmarks, fewer when the split has fewer


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
        if numeric.get(name) and not _whole(table, name):
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
    rank = (lambda c: (c.name == prefer, bool(_words(c.name) & CLASS_WORDS), not numeric.get(c.name), c.labels))
    return max(found, key=rank, default=None)


def _whole(table: CsvTable, name: str) -> bool:
    try:
        values = table.numeric(name)
    except CsvError:
        return False
    values = values[~np.isnan(values)]
    return bool(len(values)) and np.array_equal(values, np.round(values))


def auto_ways(labels: int, split: list[float]) -> int:
    """N for "auto": 5, or fewer when meta-train or meta-test would get fewer labels than that."""
    _, f_val, f_test = split
    n_test = max(int(f_test > 0), math.floor(f_test * labels + 0.5))
    n_val = max(int(f_val > 0), math.floor(f_val * labels + 0.5))
    n_train = labels - n_test - n_val
    return max(2, min(AUTO_WAYS, n_test, n_train))


def worth_proposing(label: LabelColumn | None, split: list[float]) -> bool:
    """Propose episodes over ``label`` (rather than only offer them) when its labels fill 2-way
    episodes in meta-train and meta-test with the default split, so OK can work as proposed."""
    if label is None:
        return False
    _, f_val, f_test = split
    n_test = max(int(f_test > 0), math.floor(f_test * label.labels + 0.5))
    n_val = max(int(f_val > 0), math.floor(f_val * label.labels + 0.5))
    return n_test >= 2 and label.labels - n_test - n_val >= 2


def episode_params(path: str, target: str | None, features: list[str], n_way: int, split: list[float],
                   split_seed: int, labels: int = 0) -> dict[str, Any]:
    """The ``labelled_csv`` family's settings (``n_way`` 0: :func:`auto_ways` of ``labels``)."""
    return {"path": path, "target": target, "features": list(features) or None,
            "n_way": n_way or auto_ways(labels, split), "split": list(split), "split_seed": split_seed}


def episode_problem(params: dict[str, Any], split_percent: list[int]) -> str | None:
    """Choices refused before building anything (the engine checks the rest)."""
    if not params["target"]:
        return "choose the label column"
    if not params["features"]:
        return "tick at least one numeric input column"
    if sum(split_percent) != 100:
        return f"the split adds up to {sum(split_percent)} %; make meta-train + validation + test 100 %"
    if split_percent[0] == 0 or split_percent[2] == 0:
        return "give meta-train and test a share above 0 %: held-out episodes need labels never trained on"
    return None


def check_episodes(params: dict[str, Any], table: CsvTable, shots: int, query: int) -> Checked:
    """Build the family as the window will, and check that shots + query rows per label fill episodes."""
    try:
        family = LabelledRowsFamily(params)
    except MamlError as exc:
        return Checked(params, None, str(exc))
    counts = label_counts(table, params["target"])
    capacities = {s: [counts.get(family.sampler.names[c], 0) for c in family.sampler.splits[s]] for s in SPLITS}
    try:
        family.check_sizes(shots, query)
    except ConfigError as exc:
        return Checked(params, family, f"with shots {shots} + query {query} per label: {exc.message}",
                       warnings=list(family.warnings), capacities=capacities)
    return Checked(params, family, None, warnings=list(family.warnings), capacities=capacities)


def episodes_summary(family: LabelledRowsFamily) -> str:
    """'52 labels of 'species': 33 / 8 / 11 (meta-train / validation / test), 5-way episodes'."""
    sizes = family.split_sizes()
    return (f"{len(family.classes)} labels of {family.target!r}: {sizes['train']} / {sizes['val']} / {sizes['test']} "
            f"(meta-train / validation / test), {family.params['n_way']}-way episodes over {family.input_dim} "
            f"input{'s' * (family.input_dim != 1)}")


def labels_kept(capacities: dict[str, list[int]], need: int) -> str:
    """'shots + query = 6 keeps 40 of 52 labels (28 of 33 meta-train) · labels have 3–60 rows'."""
    every = sorted(c for caps in capacities.values() for c in caps)
    if not every:
        return ""
    train = capacities.get("train", [])
    spread = f"{every[0]}" if every[0] == every[-1] else f"{every[0]}–{every[-1]}"
    return (f"shots + query = {need} keeps {sum(c >= need for c in every)} of {len(every)} labels "
            f"({sum(c >= need for c in train)} of {len(train)} meta-train) · labels have {spread} rows")
