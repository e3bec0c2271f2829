"""From CSV files to tasks: which rows form a task, which columns are inputs, target and labels.

Two layouts: one long file where a column names the task (subject, site, ...), or one task per
file. Files are matched by column *name*, never by position, so a file whose columns are in
another order still works and one that lacks a column is named. Missing values are reported by
line (or dropped when asked); nothing non-finite leaves this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..csv_reader import CsvError, CsvTable, Progress, read_csv
from ..errors import ConfigError

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
SHOW = 8  # how many lines or names a message lists before "and N more"


@dataclass
class CsvTasks:
    """Raw (unnormalized) tasks in order of first appearance.

    ``x[i]`` is ``[n_i, D]`` float64; ``y[i]`` is ``[n_i]`` float64 (regression) or int64 class
    codes into ``classes`` (classification); ``lines[i]`` the file line of each row.
    """

    names: list[str]
    files: list[Path]
    x: list[np.ndarray]
    y: list[np.ndarray]
    lines: list[np.ndarray]
    features: list[str]
    target: str
    classes: list[str] | None
    warnings: list[str] = field(default_factory=list)


def expand_paths(paths: list[str]) -> list[Path]:
    """Files as given; a folder stands for the CSV files directly in it (sorted, hidden ones skipped)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            inside = sorted(p for p in path.iterdir()
                            if p.is_file() and p.suffix.lower() in CSV_SUFFIXES and not p.name.startswith("."))
            if not inside:
                raise CsvError(path, "this folder holds no .csv files; choose a folder with one CSV file per task")
            files.extend(inside)
        elif not path.exists():
            raise CsvError(path, "no such file; check the path")
        else:
            files.append(path)
    if len(set(p.resolve() for p in files)) != len(files):
        raise CsvError(files[0], "the same file is given twice; give each file once")
    return files


def load_tasks(paths: list[str], task_column: str | None, features: list[str] | None, target: str | None,
               classification: bool, drop_missing: bool, progress: Progress | None = None) -> CsvTasks:
    """Read every file (``progress`` spans them all), check the columns, group rows into tasks."""
    files = expand_paths(paths)
    tables = []
    for i, path in enumerate(files):
        sub = None if progress is None else (lambda f, i=i: progress((i + f) / len(files)))
        tables.append(read_csv(path, progress=sub))
    first = tables[0]
    warnings = [w for t in tables for w in t.warnings]
    features, target = _choose_columns(first, task_column, features, target)
    needed = ([task_column] if task_column else []) + features + [target]
    for table in tables[1:]:
        _check_same_columns(first, table, needed, warnings)
    if task_column is None and len(tables) == 1:
        raise ConfigError("family.task_column", f"{first.path.name} holds a single task; choose the column that "
                                                "names the tasks (subject, site, ...), or give several files, "
                                                "one task per file")
    classes: dict[str, int] = {}
    tasks = CsvTasks([], [], [], [], [], features, target, [] if classification else None, warnings)
    labels = _task_labels(files)
    for table, label in zip(tables, labels):
        _add_table(tasks, table, label, task_column, classification, drop_missing, classes, len(tables) > 1)
    if classification:
        tasks.classes = list(classes)
        if len(classes) < 2:
            raise CsvError(first.path, f"the label column {target!r} has only one class ({_names(classes)}); "
                                       "classification needs at least two")
    for note in (t.number_note(c) for t in tables for c in features + ([] if classification else [target])):
        if note:
            tasks.warnings.append(note)
    return tasks


def _choose_columns(first: CsvTable, task_column, features, target) -> tuple[list[str], str]:
    """Check the chosen columns against the first file; default inputs: its numeric columns."""
    columns = first.columns
    if len(columns) < 2:
        raise CsvError(first.path, f"has a single column ({columns[0]!r}); a task needs at least one input column "
                                   "and a target column. If the file does have several columns, separate them "
                                   "with commas, semicolons or tabs")
    listed = f"the columns of {first.path.name} are {_names(columns)}"
    if task_column is not None and task_column not in columns:
        raise ConfigError("family.task_column", f"there is no column {task_column!r} to name the tasks; {listed}")
    if target is None:
        raise ConfigError("family.target", f"choose the target column to predict (--target); {listed}")
    if target not in columns:
        raise ConfigError("family.target", f"there is no target column {target!r}; {listed}")
    if target == task_column:
        raise ConfigError("family.target", "the target cannot also be the task column")
    if features is None:
        features = [c for c in columns if c not in (task_column, target) and first.is_numeric(c)]
        if not features:
            raise CsvError(first.path, f"has no numeric input column besides the target {target!r}"
                                       f"{' and the task column ' + repr(task_column) if task_column else ''}; "
                                       f"{listed}")
    else:
        for name in features:
            if name not in columns:
                raise ConfigError("family.features", f"there is no input column {name!r}; {listed}")
        if target in features or (task_column and task_column in features):
            raise ConfigError("family.features", "the inputs cannot include the target or the task column")
        if len(set(features)) != len(features) or not features:
            raise ConfigError("family.features", "list each input column once, and at least one")
    return list(features), target


def _check_same_columns(first: CsvTable, table: CsvTable, needed: list[str], warnings: list[str]) -> None:
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise CsvError(table.path, f"lacks the column{'s' if len(missing) > 1 else ''} {_names(missing)} that "
                                   f"{first.path.name} has; every file needs the same column names "
                                   "(they are matched by name, not position)")
    extra = [c for c in table.columns if c not in first.columns]
    if extra:
        warnings.append(f"{table.path.name}: columns {_names(extra)} are not in {first.path.name} and are ignored")


def _task_labels(files: list[Path]) -> list[str]:
    """A short unique label per file: its name without suffix, with the folder when names repeat."""
    stems = [p.stem for p in files]
    return [f"{p.parent.name}/{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in files]


def _add_table(tasks: CsvTasks, table: CsvTable, label: str, task_column: str | None, classification: bool,
               drop_missing: bool, classes: dict[str, int], several: bool) -> None:
    x = np.column_stack([table.numeric(c) for c in tasks.features])
    if classification:
        text = table.text(tasks.target)
        y_missing = np.array([not v for v in text], dtype=bool)
    else:
        y = table.numeric(tasks.target)
        y_missing = np.isnan(y)
    ids = table.text(task_column) if task_column else None
    missing = np.isnan(x).any(1) | y_missing
    if ids is not None:
        missing |= np.array([not v for v in ids], dtype=bool)
    keep = ~missing
    if missing.any():
        _missing_rows(tasks, table, x, y_missing, ids, task_column, missing, drop_missing)
    if not keep.any():
        return
    if classification:
        codes = np.array([classes.setdefault(v, len(classes)) for v in np.asarray(text, dtype=object)[keep]],
                         dtype=np.int64)
    else:
        codes = y[keep]
    x, lines = x[keep], table.lines[keep]
    if not (np.isfinite(x).all() and (classification or np.isfinite(codes).all())):
        raise CsvError(table.path, "non-finite values remained after reading; please report this file")  # guard
    if ids is None:
        groups = [(label, np.arange(len(x)))]
    else:
        kept_ids = np.asarray(ids, dtype=object)[keep]
        uniq, first_index, inverse = np.unique(kept_ids.astype(str), return_index=True, return_inverse=True)
        order = np.argsort(first_index, kind="stable")
        by_task = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse, minlength=len(uniq)))[:-1])
        groups = [(f"{label}/{uniq[k]}" if several else str(uniq[k]), by_task[k]) for k in order]  # O(n log n)
    for name, rows in groups:
        tasks.names.append(name)
        tasks.files.append(table.path)
        tasks.x.append(x[rows])
        tasks.y.append(codes[rows])
        tasks.lines.append(lines[rows])


def _missing_rows(tasks: CsvTasks, table: CsvTable, x, y_missing, ids, task_column, missing, drop_missing) -> None:
    """Name the rows (and their empty columns); drop them with a warning, or refuse."""
    rows = np.flatnonzero(missing)
    described = []
    for i in rows[:SHOW]:
        cols = [c for j, c in enumerate(tasks.features) if np.isnan(x[i, j])]
        cols += [tasks.target] if y_missing[i] else []
        cols += [task_column] if ids is not None and not ids[i] else []
        described.append((int(table.lines[i]), cols))
    listed = ", ".join(f"line {line} ({', '.join(cols)})" for line, cols in described)
    listed += f" and {len(rows) - SHOW} more" if len(rows) > SHOW else ""
    plural = len(rows) > 1
    if drop_missing:
        tasks.warnings.append(f"{table.path.name}: dropped {len(rows)} row{'s' if plural else ''} with missing values: "
                              f"{listed}")
        return
    line, cols = described[0]
    raise CsvError(table.path, f"{len(rows)} row{'s have' if plural else ' has'} missing values in the columns used: "
                               f"{listed}; fill them in, or drop those rows ('drop rows with missing values', "
                               "--drop-missing)", line=line, column=cols[0])


def _names(names, limit: int = 12) -> str:
    names = list(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(repr(n) for n in names[:limit]) + more
