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

from core.data.csv_reader import CsvError, CsvTable, Progress, read_csv
from ..errors import ConfigError, not_regular

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
            named = [p for p in path.iterdir() if p.suffix.lower() in CSV_SUFFIXES and not p.name.startswith(".")]
            odd = sorted(p for p in named if not p.is_file() and not p.is_dir())
            if odd:   # skipped without a word, a task file would be missing from the data set
                raise CsvError(odd[0], f"{not_regular(odd[0])}; move it out of the folder")
            inside = sorted(p for p in named if p.is_file())
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
    """Group the rows into tasks with array operations only (a million rows in a fraction of a second):
    tasks in order of first appearance, rows in file order within each task."""
    columns = [table.numeric(c) for c in tasks.features]
    if classification:
        y_names, y_codes = table.labels(tasks.target)
        y_missing = _empty(y_names)[y_codes]
    else:
        y = table.numeric(tasks.target)
        y_missing = np.isnan(y)
    missing = y_missing.copy()
    for values in columns:
        missing |= np.isnan(values)
    if task_column:
        id_names, id_codes = table.labels(task_column)
        missing |= _empty(id_names)[id_codes]
    if missing.any():
        x = np.column_stack(columns)
        ids = table.text(task_column) if task_column else None
        _missing_rows(tasks, table, x, y_missing, ids, task_column, missing, drop_missing)
    kept = np.flatnonzero(~missing) if missing.any() else None
    if kept is not None and not len(kept):
        return
    if task_column:
        codes = id_codes if kept is None else id_codes[kept]
        first = _first_appearance(codes, len(id_names))
        order = np.argsort(first[1][codes], kind="stable")      # by task (first appearance), then file order
        sizes = np.bincount(first[1][codes], minlength=len(first[0]))
        names = [id_names[k] for k in first[0]]
        names = [f"{label}/{n}" if several else n for n in names]
    else:
        order = np.arange(len(y_missing) if kept is None else len(kept))
        sizes, names = np.array([len(order)]), [label]
    rows = order if kept is None else kept[order]
    x = np.empty((len(rows), len(columns)))
    for j, values in enumerate(columns):
        x[:, j] = values[rows]
    if classification:
        kept_codes = y_codes[rows]
        seen = _first_appearance(y_codes if kept is None else y_codes[kept], len(y_names))[0]
        to_class = np.zeros(len(y_names), dtype=np.int64)
        for k in seen:                                        # classes numbered in order of first appearance
            to_class[k] = classes.setdefault(y_names[k], len(classes))
        y_rows = to_class[kept_codes]
    else:
        y_rows = y[rows]
    if not (np.isfinite(x).all() and (classification or np.isfinite(y_rows).all())):
        raise CsvError(table.path, "non-finite values remained after reading; please report this file")  # guard
    lines = table.lines[rows]
    ends = np.cumsum(sizes).tolist()
    for name, start, end in zip(names, [0] + ends[:-1], ends):  # views of the grouped arrays
        tasks.names.append(name)
        tasks.files.append(table.path)
        tasks.x.append(x[start:end])
        tasks.y.append(y_rows[start:end])
        tasks.lines.append(lines[start:end])


def _empty(names: list[str]) -> np.ndarray:
    return np.array([not n for n in names], dtype=bool)


def _first_appearance(codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The codes that occur, in order of first appearance, and each code's rank in that order."""
    first = np.full(n, len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    present = np.flatnonzero(first < len(codes))
    seen = present[np.argsort(first[present], kind="stable")]
    rank = np.zeros(n, dtype=np.int64)
    rank[seen] = np.arange(len(seen))
    return seen, rank


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
