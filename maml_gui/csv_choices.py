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

from core.csv_reader import CsvError, CsvTable, read_csv
from core.errors import ConfigError, MamlError
from core.tasks.csv_data import SHOW, expand_paths
from core.tasks.csv_family import CsvFamily, cached_family

TASK_WORDS = ("task", "subject", "id", "site", "group", "patient", "participant", "person", "machine", "unit",
              "tree", "plant", "animal", "station", "batch", "sample", "cell", "user", "school", "region")


@dataclass(frozen=True)
class Tables:
    """What reading found: the files, their tables, and suggestions from the first file."""

    files: list[Path]
    tables: list[CsvTable]
    numeric: dict[str, bool]
    task_column: str | None


@dataclass(frozen=True)
class Checked:
    """The engine's verdict on one set of choices."""

    params: dict[str, Any]
    family: CsvFamily | None
    error: str | None
    missing: int = 0
    missing_where: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error_at: tuple[Path, int, str] | None = None   # file, line, column of a refusal, to mark in the preview


def read_tables(paths: list[str], report) -> Tables:
    """Read every file (progress spans them all); raises CsvError / CsvCancelled."""
    files = expand_paths(paths)
    tables = [read_csv(p, progress=lambda f, i=i: report((i + f) / len(files))) for i, p in enumerate(files)]
    first = tables[0]
    numeric = {c: first.is_numeric(c) for c in first.columns}
    return Tables(files, tables, numeric, suggest_task_column(first, numeric))


def suggest_task_column(table: CsvTable, numeric: dict[str, bool]) -> str | None:
    """A column whose values repeat (2..n/2 distinct), preferring names like 'subject' and text ids."""
    best, best_score = None, 0
    for column in table.columns:
        distinct = len(set(table.text(column)))
        if not 2 <= distinct <= table.n_rows // 2:
            continue
        name = column.lower()
        score = 1 + 4 * any(w in name for w in TASK_WORDS) + 2 * (distinct > 2) + (not numeric.get(column, False))
        if score > best_score:
            best, best_score = column, score
    return best


def check_choices(params: dict[str, Any], tables: list[CsvTable], shots: int, query: int, report) -> Checked:
    """Build the family as the window would, and say what was skipped, dropped or converted."""
    missing, where = missing_rows(tables, params)
    try:
        family = cached_family(params, progress=report)   # the window then finds it built
    except MamlError as exc:
        at = getattr(exc, "path", None), getattr(exc, "line", None), getattr(exc, "column", None)
        return Checked(params, None, str(exc), missing, where, error_at=at if at[1] and at[2] else None)
    try:
        family.check_sizes(shots, query)
        warnings = list(family.warnings)
    except ConfigError as exc:
        warnings = list(family.warnings) + [f"with shots {shots} and query {query} (training settings): {exc.message}"]
    if family.split_sizes()["test"] and family.held_out().max_query(shots) < 1:
        warnings.append(f"no meta-test task has more than shots = {shots} rows, so held-out evaluation has nothing "
                        "to score; lower shots or give the test split a larger share")
    return Checked(params, family, None, missing, where, warnings)


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
            mask |= np.array([not v for v in table.text(column)], dtype=bool)
        rows = np.flatnonzero(mask)
        count += len(rows)
        prefix = f"{table.path.name} " if len(tables) > 1 else ""
        where += [f"{prefix}line {int(table.lines[i])}" for i in rows[:SHOW]]
    return count, where[:SHOW]
