"""What the CSV import dialog works out, as plain data: Qt-free, run on its background thread.

Reading the files (with suggestions for the task, target and input columns) and checking one
set of choices by building the family exactly as the window will — so the dialog's verdict is
the engine's, message for message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.data.csv_reader import CsvError, CsvTable, read_csv
from core.errors import ConfigError, MamlError
from core.tasks.csv_data import SHOW, expand_paths
from core.tasks.csv_family import SPLITS, CsvFamily, cached_family

from maml_gui.importing.csv_columns import CLASS_WORDS, TASK_WORDS, LabelColumn, label_column, whole_numbers, words

MAX_CLASSES = 50   # a text column with at most this many values (and repeats) can be a class label
MIN_GROUP = 2      # rows a typical task needs: a column whose values rarely repeat names no tasks
MIN_TASKS = 5      # values a column needs to name tasks unless its name says so ('site', 'subject_id')



@dataclass(frozen=True)
class Suggestion:
    """The dialog's first guess for a long-format file (or the first of several)."""

    task_column: str | None
    target: str | None
    classification: bool
    features: list[str]
    no_task_column: str | None = None   # why no column can name the tasks, column by column, when none does


@dataclass(frozen=True)
class Tables:
    """What reading found: the files, their tables, and suggestions from the first file."""

    files: list[Path]
    tables: list[CsvTable]
    numeric: dict[str, bool]
    suggestion: Suggestion
    label: LabelColumn | None = None   # one file's column whose values can be episode classes


@dataclass(frozen=True)
class Checked:
    """The engine's verdict on one set of choices (``family`` is kept when only shots + query fail)."""

    params: dict[str, Any]
    family: CsvFamily | None
    error: str | None
    missing: int = 0
    missing_where: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error_at: tuple[Path, int, str] | None = None   # file, line, column of a refusal, to mark in the preview
    capacities: dict[str, list[int]] = field(default_factory=dict)   # rows each task can give, per split


def read_tables(paths: list[str], report) -> Tables:
    """Read every file (progress spans them all); raises CsvError / CsvCancelled."""
    files = expand_paths(paths)
    tables = [read_csv(p, progress=lambda f, i=i: report((i + f) / len(files))) for i, p in enumerate(files)]
    first = tables[0]
    numeric = {c: first.is_numeric(c) for c in first.columns}
    suggestion = suggest(first, numeric, one_file=len(files) == 1)
    label = label_column(first, numeric, suggestion.target if suggestion.classification else None) \
        if len(files) == 1 else None
    return Tables(files, tables, numeric, suggestion, label)


@dataclass(frozen=True)
class _Column:
    """What a guess needs to know of one column."""

    name: str
    kind: str       # "text", "integer" or "decimal"
    distinct: int   # values present
    typical: float  # rows in a typical group of equal values (the median row's group)

    @property
    def words(self) -> set[str]:
        return words(self.name)

    def may_name_tasks(self, n_rows: int) -> bool:
        """Text or whole numbers whose values repeat, forming groups of several rows — never decimals;
        a handful of values (a class, a sex, a treatment arm) only under a name like 'site'."""
        least = 2 if self.words & TASK_WORDS else MIN_TASKS
        return (self.kind != "decimal" and not self.words & CLASS_WORDS and self.typical >= MIN_GROUP
                and least <= self.distinct <= n_rows // MIN_GROUP)

    def may_be_label(self, n_rows: int) -> bool:
        """A column of few repeated values: text, or whole numbers under a name like 'class'."""
        few = 2 <= self.distinct <= min(MAX_CLASSES, n_rows // MIN_GROUP)
        return few and (self.kind == "text" or (self.kind == "integer" and bool(self.words & CLASS_WORDS)))


def suggest(table: CsvTable, numeric: dict[str, bool], one_file: bool = True) -> Suggestion:
    """Task column, target, task kind and inputs for ``table`` (the first of the files).

    The task column is a text or whole-number column whose values repeat in groups of several
    rows, preferring names like 'subject' and more groups. A column named like a class ('label',
    'species') — or, in one file where no column names the tasks, any text column of few values —
    is proposed as a classification target; otherwise the last numeric column is a regression
    target. Inputs: the other numeric columns, less whole-number ids.
    """
    columns = [_describe(table, c, numeric[c]) for c in table.columns]
    n = table.n_rows
    class_named = any(c.words & CLASS_WORDS and c.may_be_label(n) for c in columns)
    # beside a column named like a class label, whole numbers are counts (num_convex_points), not task ids,
    # unless their name says so ('subject')
    candidates = [c for c in columns if c.may_name_tasks(n)
                  and not (class_named and c.kind == "integer" and not c.words & TASK_WORDS)]
    task = max(candidates, key=lambda c: (bool(c.words & TASK_WORDS), c.kind == "text", c.distinct), default=None)
    labels = [c for c in columns if c is not task and c.may_be_label(n)]
    named = [c for c in labels if c.words & CLASS_WORDS]
    label = named[0] if named else (labels[0] if labels and task is None and one_file else None)
    numbers = [c.name for c in columns if numeric[c.name] and c is not task and c is not label
               and not (c.kind == "integer" and c.words & TASK_WORDS)]
    if label is not None:
        target, classification = label.name, True
    else:
        target, classification = (numbers[-1] if numbers else table.columns[-1]), False
    features = [c for c in numbers if c != target]
    reason = None if task is not None else _no_task_column(columns, label, n)
    return Suggestion(task.name if task else None, target, classification, features, reason)


def _describe(table: CsvTable, name: str, numeric: bool) -> _Column:
    kind = "text"
    if numeric:   # numbers with a few typos count as decimals: a measurement, reported when used
        kind = "integer" if whole_numbers(table, name) else "decimal"
    if kind == "decimal":
        return _Column(name, kind, 0, 0.0)   # never a task or a label: no need to count
    names, codes = table.labels(name)   # codes, not a string per row: fast on big files
    counts = np.bincount(np.asarray(codes, dtype=np.int64), minlength=len(names))
    sizes = np.sort(counts[[i for i, n in enumerate(names) if n]])
    sizes = sizes[sizes > 0]
    if not len(sizes):
        return _Column(name, kind, 0, 0.0)
    median_row = np.searchsorted(np.cumsum(sizes), sizes.sum() / 2)   # the group holding the middle row
    return _Column(name, kind, len(sizes), float(sizes[median_row]))


def _no_task_column(columns: list[_Column], label: _Column | None, n_rows: int) -> str:
    """Why no column can name the tasks, column by column."""
    groups: dict[str, list[str]] = {}
    for c in columns:
        if c is label:
            continue
        if c.kind == "decimal":
            why = "decimal numbers (measurements, not names of tasks)"
        elif c.distinct < 2:
            why = "a single value"
        elif c.words & CLASS_WORDS:
            why = "class labels"
        elif c.may_name_tasks(n_rows):   # left out by suggest(): counts beside a class label
            why = "whole numbers beside a class label (counts or measurements, not names of tasks)"
        elif c.distinct < MIN_TASKS and c.typical >= MIN_GROUP:
            why = "too few different values to name tasks"
        else:
            why = "a different value in (almost) every row"
        groups.setdefault(why, []).append(repr(c.name))
    parts = [f"{_listed(names)} {'hold' if len(names) > 1 else 'holds'} {why}" for why, names in groups.items()]
    if label is not None:
        parts.append(f"{label.name!r} looks like the class label ({label.distinct} classes), so it is the target; "
                     "classification, too, draws its episodes within each task")
    return "; ".join(parts)


def _listed(names: list[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def local_problem(p: dict[str, Any], tables: Tables, long: bool, split_percent: list[int]) -> str | None:
    """Why the choices ``p`` cannot work, when that needs no family built (the engine checks the rest).
    ``long``: one file where a column names the task; ``split_percent``: meta-train, validation, test."""
    several = len(tables.files) > 1
    if not long and not several:
        return ("one task per file needs several files, and this import has one; choose 'one file, a column "
                "names the task', or import a folder of CSV files")
    if long and not p["task_column"]:
        reason = tables.suggestion.no_task_column
        other = "choose 'one task per file'" if several else "import a folder of CSV files, one task per file"
        return (f"no column names the tasks: {reason} — choose the column that names the tasks if there is one, "
                f"or {other}" if reason else "choose the column that names the tasks")
    if not p["target"]:
        return "choose the target column"
    if not p["classification"] and not tables.numeric.get(p["target"], True):
        return (f"the target {p['target']!r} holds text; choose 'classification' to predict it as a class label, "
                "or a numeric target")
    if not p["features"]:
        return "tick at least one input column"
    if sum(split_percent) != 100:
        return f"the split adds up to {sum(split_percent)} %; make meta-train + validation + test 100 %"
    if split_percent[0] == 0:
        return "give meta-train a share above 0 %"
    if split_percent[2] == 0:
        return "give test a share above 0 %: the window scores adaptation on meta-test tasks"
    return None


def check_choices(params: dict[str, Any], tables: list[CsvTable], shots: int, query: int, report) -> Checked:
    """Build the family as the window would, and say what was skipped, dropped or converted."""
    missing, where = missing_rows(tables, params)
    try:
        family = cached_family(params, progress=report)   # the window then finds it built
    except MamlError as exc:
        at = getattr(exc, "path", None), getattr(exc, "line", None), getattr(exc, "column", None)
        return Checked(params, None, str(exc), missing, where, error_at=at if at[1] and at[2] else None)
    capacities = {split: family.capacities(split) for split in SPLITS}
    try:
        family.check_sizes(shots, query)
    except ConfigError as exc:   # nothing to train on: refused, but the family stays to show what fits
        return Checked(params, family, f"with shots {shots} + query {query}: {exc.message}", missing, where,
                       list(family.warnings), capacities=capacities)
    warnings = list(family.warnings)
    if family.split_sizes()["test"] and family.held_out().max_query(shots) < 1:
        warnings.append(f"no meta-test task has more than shots = {shots} rows, so held-out evaluation has nothing "
                        "to score; lower shots or give the test split a larger share")
    return Checked(params, family, None, missing, where, warnings, capacities=capacities)


def split_summary(family: CsvFamily) -> str:
    """'40 tasks: 28 / 6 / 6 tasks (meta-train / validation / test), 12–25 rows per task'."""
    sizes = family.split_sizes()
    rows = [n for s in SPLITS for n in family.task_sizes(s)]
    per_task = f"{min(rows)}" if min(rows) == max(rows) else f"{min(rows)}–{max(rows)}"
    return (f"{sum(sizes.values())} tasks: {sizes['train']} / {sizes['val']} / {sizes['test']} tasks "
            f"(meta-train / validation / test), {per_task} rows per task")


def tasks_kept(capacities: dict[str, list[int]], need: int, kind: str) -> str:
    """'keeps 8 of 12 tasks (5 of 8 meta-train) · tasks have 9–14 rows: ≤ 9 keeps all, ≤ 12 keeps 6'."""
    every = sorted(c for caps in capacities.values() for c in caps)
    if not every:
        return ""
    train = capacities.get("train", [])
    unit = "rows per class" if kind == "classification" else "rows"
    kept = f"shots + query = {need} keeps {sum(c >= need for c in every)} of {len(every)} tasks " \
           f"({sum(c >= need for c in train)} of {len(train)} meta-train)"
    if every[0] == every[-1]:
        return f"{kept} · every task has {every[0]} {unit}"
    steps = sorted({every[0], every[len(every) // 2], every[-1]})
    fits = ", ".join(f"≤ {v} keeps {'all' if v == every[0] else sum(c >= v for c in every)}" for v in steps)
    return f"{kept} · tasks have {every[0]}–{every[-1]} {unit}: {fits}"


def missing_rows(tables: list[CsvTable], params: dict[str, Any]) -> tuple[int, list[str]]:
    """How many rows lack a value in a column used, and where the first ones are."""
    columns = [c for c in (params["task_column"], *(params["features"] or []), params["target"]) if c]
    count, where = 0, []
    for table in tables:
        mask = np.zeros(table.n_rows, dtype=bool)
        for column in (c for c in columns if c in table.columns):
            if table.is_numeric(column) and not (params["classification"] and column == params["target"]):
                try:
                    mask |= np.isnan(table.numeric(column))
                    continue
                except CsvError:
                    pass   # text among the numbers: the check reports it; count only the empty cells
            mask |= _empty(table, column)
        rows = np.flatnonzero(mask)
        count += len(rows)
        prefix = f"{table.path.name} " if len(tables) > 1 else ""
        where += [f"{prefix}line {int(table.lines[i])}" for i in rows[:SHOW]]
    return count, where[:SHOW]


def _empty(table: CsvTable, column: str) -> np.ndarray:
    """Rows whose cell in ``column`` is empty, from the column's label codes."""
    names, codes = table.labels(column)
    blank = [i for i, n in enumerate(names) if not n]
    return np.isin(np.asarray(codes), blank) if blank else np.zeros(table.n_rows, dtype=bool)
