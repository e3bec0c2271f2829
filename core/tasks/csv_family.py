"""Your own data as a task family: each task is a group of rows from CSV files.

Tasks are split (by task, seeded) into meta-train / meta-validation / meta-test, so evaluation
adapts to tasks never trained on. Inputs (and a regression target) are standardized with
statistics of the meta-training tasks only — the held-out tasks must not leak into training —
and the statistics are kept in :attr:`CsvFamily.normalization` (plain lists) and in
:meth:`spec`, so a saved run rebuilds exactly the same transform.
"""

from __future__ import annotations

import copy
import json
import math
import threading
from collections import OrderedDict
from importlib.resources import files
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from core.data.csv_reader import CsvError, Progress, release_memory
from core.errors import ConfigError

from .base import ParamField, TaskBatch, TaskFamily
from .csv_data import SHOW, CsvTasks, expand_paths, load_tasks
from .csv_rows import (FLOAT32_MAX, TaskRows, check_fits, check_params, check_stored, data_source, rows_by_class,
                       split_tasks, train_row_place)
from .spec import FamilySpec
from .standardize import Flattened, column_stats

SPLITS = ("train", "val", "test")
SPLIT_TITLES = {"train": "meta-train", "val": "meta-validation", "test": "meta-test"}
EXAMPLE = Path(str(files("maml_explorer_assets") / "examples" / "growth.csv"))  # a plain file: wheel or editable
EXAMPLE_PARAMS = {"task_column": "subject", "target": "height"}
TENSOR_BLOCK_ROWS = 20_000  # rows normalized and converted at a time (small: their temporaries reuse freed memory)


class CsvFamily(TaskFamily):
    """Tasks read from CSV files. With no ``paths`` it loads the bundled example (growth curves).

    ``fields`` holds only what the generic family form can show; ``data_fields`` describes the
    rest (files and columns) for an import dialog.
    """

    name, title = "csv", "Your CSV data"
    tabular = True
    fields = (
        ParamField("split_seed", "split seed", "int", 0, 0, 2**31 - 1,
                   help="which tasks go to meta-train / meta-validation / meta-test"),
        ParamField("n_way", "classes N (0 = auto)", "int", 0, 0, 100,
                   help="classification only: classes per episode; 0 means min(5, number of classes)"),
    )
    data_fields = (
        ParamField("paths", "CSV files or folders", "paths", [],
                   help="one long file with a task column, or one file per task (a folder: its CSV files)"),
        ParamField("task_column", "task column", "column", None, help="the column that names the task (long format)"),
        ParamField("features", "input columns", "columns", None,
                   help="default: every numeric column except the task and target columns"),
        ParamField("target", "target column", "column", None, help="the value to predict, or the class label"),
        ParamField("classification", "classification", "bool", False,
                   help="N-way K-shot episodes over the classes of the target column"),
        ParamField("split", "meta-train / validation / test", "fractions", [0.7, 0.15, 0.15],
                   help="fractions of the tasks (not of the rows)"),
        ParamField("normalize", "standardize", "bool", True, help="per column, with meta-training statistics only"),
        ParamField("drop_missing", "drop rows with missing values", "bool", False, help="otherwise they are an error"),
        ParamField("normalization", "saved statistics", "normalization", None,
                   help="filled in by spec(); a saved run rebuilds exactly the same inputs"),
    )

    def __init__(self, params: Mapping[str, Any] | None = None, *, progress: Progress | None = None):
        self.params = check_params(params, self.fields)
        p = self.params
        if p["paths"]:
            paths, task_column, target = p["paths"], p["task_column"], p["target"]
        elif (p["target"], p["task_column"], p["features"], p["classification"]) == (None, None, None, False) \
                and EXAMPLE.exists():
            paths, task_column, target = [str(EXAMPLE)], EXAMPLE_PARAMS["task_column"], EXAMPLE_PARAMS["target"]
        else:
            raise ConfigError("family.paths", "choose one or more CSV files or folders (Import CSV…, --csv)")
        data = load_tasks(paths, task_column, p["features"], target, p["classification"], p["drop_missing"], progress)
        release_memory()  # the grouping's temporaries
        self.kind = "classification" if p["classification"] else "regression"
        self.features, self.target, self.classes = data.features, data.target, data.classes
        self.task_column = task_column
        self.input_dim = len(self.features)
        self.output_dim = self._n_way() if self.kind == "classification" else 1
        self._names, self._raw_x, self._raw_y = data.names, data.x, data.y
        try:
            self._split = split_tasks(len(data.names), p["split"], p["split_seed"])
        except ConfigError as exc:   # name the data, as every other CSV message does
            raise ConfigError(exc.field, f"{data_source(data.files)}: {exc.message}") from None
        self._load_warnings = list(data.warnings)
        self._size_warnings: list[str] = []
        self.normalization = self._normalization(data)
        release_memory()  # the statistics' temporaries, before the tensors are made
        self._x, self._y = self._tensors(data)
        release_memory()
        self._class_rows = [rows_by_class(y) for y in self._raw_y] if self.kind == "classification" else []
        self._capacities = [self._capacity(t) for t in range(len(self._names))]
        self._usable_memo: dict[tuple[str, int], list[int]] = {}
        self._input_range: tuple[float, float] | None = None
        self.default_split = "train"

    # -- what a dialog shows ----------------------------------------------------------------
    @property
    def warnings(self) -> list[str]:
        """Things worth telling the user that did not stop the import (dropped rows, renamed columns, ...)."""
        return self._load_warnings + self._size_warnings

    def task_names(self, split: str) -> list[str]:
        return [self._names[t] for t in self._tasks(split)]

    def split_sizes(self) -> dict[str, int]:
        return {s: len(self._split[s]) for s in SPLITS}

    def task_sizes(self, split: str) -> list[int]:
        return [len(self._raw_y[t]) for t in self._tasks(split)]

    def task_points(self, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Task ``index`` of ``split`` in the file's units: ``x [n, D]`` and ``y [n]`` (class names when
        classifying). With one input column, ``x[:, 0]`` against ``y`` is the task's curve for the function view.
        """
        t = self._tasks(split)[index]
        y = self._raw_y[t]
        labels = np.asarray(self.classes, dtype=object)[y] if self.classes is not None else y.copy()
        return self._raw_x[t].copy(), labels

    def normalize_x(self, x: np.ndarray) -> np.ndarray:
        n = self.normalization
        x = np.asarray(x, dtype=np.float64)
        if n is None:
            return x
        with np.errstate(over="ignore", invalid="ignore"):  # a wild value becomes inf and is refused by name
            return (x - np.asarray(n["feature_mean"])) / np.asarray(n["feature_std"])

    def normalize_y(self, y: np.ndarray) -> np.ndarray:
        n = self.normalization
        y = np.asarray(y, dtype=np.float64)
        if n is None or n["target_mean"] is None:
            return y
        with np.errstate(over="ignore", invalid="ignore"):
            return (y - n["target_mean"]) / n["target_std"]

    def denormalize_y(self, y: np.ndarray) -> np.ndarray:
        """Model outputs back in the target's own units (for plots next to :meth:`task_points`)."""
        n = self.normalization
        y = np.asarray(y, dtype=np.float64)
        return y if n is None or n["target_mean"] is None else y * n["target_std"] + n["target_mean"]

    def spec(self) -> FamilySpec:
        """The settings plus the normalization statistics, so a saved run rebuilds the same inputs."""
        params = copy.deepcopy(self.params)
        params["normalization"] = copy.deepcopy(self.normalization)
        return FamilySpec(self.name, params)

    # -- sampling ---------------------------------------------------------------------------
    def sample(self, n_tasks: int, shots: int, query: int, generator: torch.Generator,
               split: str | None = None) -> TaskBatch:
        """Draw ``n_tasks`` tasks of ``split`` (default: ``default_split``, 'train' unless :meth:`held_out`).

        Regression: ``shots + query`` distinct rows per task. Classification: an N-way episode over
        classes of the task, ``shots + query`` rows per class, labels 0..N-1 re-drawn per episode.
        Tasks too small for the request are never drawn (see :meth:`check_sizes`).
        """
        split = split or self.default_split
        usable = self._usable(split, shots, query)
        if not usable:
            raise ConfigError("train.shots", self._too_small(split, shots, query))
        reps = math.ceil(n_tasks / len(usable))
        picks = torch.cat([torch.randperm(len(usable), generator=generator) for _ in range(reps)])[:n_tasks]
        tasks = [usable[i] for i in picks.tolist()]
        if self.kind == "classification":
            return self._episodes(tasks, shots, query, generator)
        xs, ys = [], []
        for t in tasks:
            rows = torch.randperm(len(self._x[t]), generator=generator)[:shots + query]
            xs.append(self._x[t][rows])
            ys.append(self._y[t][rows])
        x, y = torch.stack(xs), torch.stack(ys)
        return TaskBatch(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:], {"task": torch.tensor(tasks)})

    def _episodes(self, tasks: list[int], shots: int, query: int, generator: torch.Generator) -> TaskBatch:
        n, need = self.output_dim, shots + query
        sx, qx = [], []
        for t in tasks:
            eligible = [c for c, rows in self._class_rows[t].items() if len(rows) >= need]
            chosen = [eligible[i] for i in torch.randperm(len(eligible), generator=generator)[:n].tolist()]
            rows = [self._class_rows[t][c] for c in chosen]
            picked = [r[torch.randperm(len(r), generator=generator)[:need]] for r in rows]
            sx.append(torch.cat([self._x[t][r[:shots]] for r in picked]))
            qx.append(torch.cat([self._x[t][r[shots:]] for r in picked]))
        labels = torch.arange(n)
        sy = labels.repeat_interleave(shots).expand(len(tasks), -1).contiguous()
        qy = labels.repeat_interleave(query).expand(len(tasks), -1).contiguous()
        return TaskBatch(torch.stack(sx), sy, torch.stack(qx), qy, {"task": torch.tensor(tasks)})

    def sample_held_out(self, n_tasks: int, shots: int, query: int, generator: torch.Generator) -> TaskBatch:
        """Tasks of the meta-test split, never trained on."""
        return self.held_out().sample(n_tasks, shots, query, generator)

    def held_out_query(self, shots: int, query: int, cap: int = 100) -> int:
        """As many query rows as every meta-test task able to give ``shots`` support rows still has
        (at most ``cap``; ``query`` is not used: tasks differ in size)."""
        held = self.held_out()
        room = held.max_query(shots)
        if room < 1:
            sizes = held.task_sizes("test")
            raise ConfigError("train.shots", f"no meta-test task has more than shots = {shots} rows (the largest "
                                             f"has {max(sizes, default=0)}), so none is left to score adaptation on; "
                                             "lower shots, or give the test split a larger share (Change… in the "
                                             "family panel)")
        return min(cap, room)

    def input_range(self) -> tuple[float, float]:
        """The first input column's range over every task, a little widened (computed once)."""
        if self._input_range is None:
            flat = np.concatenate([x[:, 0] for x in self._raw_x])
            low, high = float(flat.min()), float(flat.max())
            pad = 0.02 * (high - low) if high > low else 1.0
            self._input_range = (low - pad, high + pad)
        return self._input_range

    def held_out(self, split: str = "test") -> "CsvFamily":
        """The same family drawing from ``split`` by default: what evaluation should sample from."""
        if not self._tasks(split):
            raise ConfigError("family.split", f"there are no {SPLIT_TITLES[split]} tasks; "
                                              "give that split a fraction above 0")
        view = copy.copy(self)
        view.default_split = split
        return view

    # -- sizes ------------------------------------------------------------------------------
    def check_sizes(self, shots: int, query: int) -> None:
        """Skip (with a warning naming them) tasks too small for ``shots + query``; refuse when none of
        the tasks this object samples from (``default_split``: meta-train, or meta-test for
        :meth:`held_out`) is left."""
        need = shots + query
        skipped = [(s, t) for s in SPLITS for t in self._split[s] if self._capacities[t] < need]
        self._size_warnings = []
        if skipped:
            unit = "rows per class" if self.kind == "classification" else "rows"
            listed = ", ".join(f"{self._names[t]!r} ({SPLIT_TITLES[s]}, {self._capacities[t]} {unit})"
                               for s, t in skipped[:SHOW])
            more = f" and {len(skipped) - SHOW} more" if len(skipped) > SHOW else ""
            self._size_warnings.append(
                f"skipped {len(skipped)} of {len(self._names)} tasks with fewer than shots + query = {need} "
                f"{self._unit()}: {listed}{more}")
        if not self._usable(self.default_split, shots, query):
            raise ConfigError("train.shots", self._too_small(self.default_split, shots, query))

    def capacities(self, split: str) -> list[int]:
        """Rows each task of ``split`` can give an episode (per class when classifying: its N-th
        largest class's); a task is drawn only when shots + query fits. Shows what each choice keeps."""
        return [self._capacities[t] for t in self._tasks(split)]

    def max_query(self, shots: int, split: str | None = None) -> int:
        """The most query points that every task of ``split`` (default: ``default_split``) able to give
        ``shots`` support points can also give: evaluation's query size, since tasks differ in size."""
        capacities = [self._capacities[t] for t in self._tasks(split or self.default_split)]
        room = [c - shots for c in capacities if c > shots]
        return min(room) if room else 0

    def _usable(self, split: str, shots: int, query: int) -> list[int]:
        key = (split, shots + query)
        if key not in self._usable_memo:  # sample() asks every meta-iteration
            self._usable_memo[key] = [t for t in self._tasks(split) if self._capacities[t] >= shots + query]
        return self._usable_memo[key]

    def _capacity(self, t: int) -> int:
        """Rows a task can give (per class for classification: that of its N-th largest class)."""
        if self.kind != "classification":
            return len(self._raw_y[t])
        counts = sorted((len(r) for r in self._class_rows[t].values()), reverse=True)
        return counts[self.output_dim - 1] if len(counts) >= self.output_dim else 0

    def _too_small(self, split: str, shots: int, query: int) -> str:
        tasks = self._tasks(split)
        largest = max((self._capacities[t] for t in tasks), default=0)
        return (f"at least 1 {SPLIT_TITLES[split]} task with shots + query = {shots + query} {self._unit()} is "
                f"needed, but none of its {len(tasks)} tasks has that many (the largest has {largest}); "
                f"lower shots or query so that shots + query <= {largest}")

    def _unit(self) -> str:
        return f"rows in each of {self.output_dim} classes" if self.kind == "classification" else "rows"

    def _tasks(self, split: str) -> list[int]:
        if split not in SPLITS:
            raise ConfigError("family.split", f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        return self._split[split]

    # -- loading helpers --------------------------------------------------------------------
    def _n_way(self) -> int:
        n_classes = len(self.classes or [])
        n_way = self.params["n_way"] or min(5, n_classes)
        if not 2 <= n_way <= n_classes:
            raise ConfigError("family.n_way", f"choose between 2 and {n_classes} classes per episode "
                                              f"(the label column {self.target!r} has {n_classes})")
        return n_way

    def _normalization(self, data: CsvTasks) -> dict[str, Any] | None:
        if not self.params["normalize"]:
            return None
        stored = self.params["normalization"]
        if stored is not None:
            return check_stored(stored, self.features, None if self.classes is not None else self.target)
        train = self._split["train"]
        x = np.concatenate([data.x[t] for t in train])
        flattened = Flattened(x, lambda row, _column: train_row_place(data, train, row))
        mean, std, constant = column_stats(x, overwrite=True)
        for name in (f for f, c in zip(self.features, constant) if c):
            self._load_warnings.append(f"input column {name!r} is constant on the meta-training tasks; it carries "
                                       "no information (scaled by 1)")
        self._load_warnings += flattened.warnings(mean, std, [f"input column {f!r}" for f in self.features])
        stats = {"features": list(self.features), "feature_mean": mean.tolist(), "feature_std": std.tolist(),
                 "target": None, "target_mean": None, "target_std": None}
        if self.classes is None:
            y = np.concatenate([data.y[t] for t in train])[:, None]
            flattened = Flattened(y, lambda row, _column: train_row_place(data, train, row))
            y_mean, y_std, _ = column_stats(y, overwrite=True)
            self._load_warnings += flattened.warnings(y_mean, y_std, [f"target column {self.target!r}"])
            stats.update(target=self.target, target_mean=float(y_mean[0]), target_std=float(y_std[0]))
        return stats

    def _tensors(self, data: CsvTasks) -> tuple["TaskRows", "TaskRows"]:
        """Normalized float tensors, one per task: views of one tensor filled a block of tasks at a time
        (20,000 tasks cost a few conversions, and no second float64 copy of the data is made); refuses
        (naming task and column) anything that would not be finite."""
        dtype, classify = torch.get_default_dtype(), self.classes is not None
        sizes, np_dtype = [len(y) for y in data.y], torch.empty(0, dtype=dtype).numpy().dtype
        xs = np.empty((sum(sizes), self.input_dim), dtype=np_dtype)   # filled with numpy's casts: torch's
        ys = np.empty(sum(sizes), dtype=np.int64 if classify else np_dtype)  # per-call overhead is 100x
        blocks, start, rows = [], 0, 0
        for t, n in enumerate(sizes):
            rows += n
            if rows >= TENSOR_BLOCK_ROWS or t == len(sizes) - 1:
                blocks.append((start, t + 1))
                start, rows = t + 1, 0
        row = 0
        for start, stop in blocks:
            x = self.normalize_x(np.concatenate(data.x[start:stop]))
            y = np.concatenate(data.y[start:stop])
            y = y if classify else self.normalize_y(y)
            self._refuse_too_large(data, x, None if classify else y, sizes[start:stop], start)
            end = row + len(x)
            xs[row:end], ys[row:end] = x, y
            row = end
        xs, ys = torch.from_numpy(xs), torch.from_numpy(ys)
        ys = ys if classify else ys.reshape(-1, 1)
        return TaskRows(xs, sizes), TaskRows(ys, sizes)  # finite: |values| < float32's max was checked, NaN included

    def _refuse_too_large(self, data: CsvTasks, x: np.ndarray, y: np.ndarray | None, sizes: list[int],
                          first: int) -> None:
        """The first task (in order) with a value beyond float32, its inputs before its target: as a loop would.
        ``x``, ``y`` hold the tasks ``first, first + 1, ...`` of ``sizes``."""
        ends = np.cumsum(sizes)
        bad_x = ~(np.abs(x) < FLOAT32_MAX).all(1)
        bad_y = ~(np.abs(y) < FLOAT32_MAX) if y is not None else np.zeros(len(x), dtype=bool)
        if not (bad_x.any() or bad_y.any()):
            return
        t = min(int(np.searchsorted(ends, np.flatnonzero(b)[0], side="right")) for b in (bad_x, bad_y) if b.any())
        rows = slice(ends[t] - sizes[t], ends[t])
        check_fits(x[rows], self.features, self._names[first + t], data.files[first + t])
        check_fits(y[rows][:, None], [self.target], self._names[first + t], data.files[first + t])


# -- re-use ---------------------------------------------------------------------------------------
BUILT_KEEP = 2   # families kept: a window re-validates the same settings on every edit of another panel
_built: OrderedDict[str, CsvFamily] = OrderedDict()
_built_lock = threading.Lock()


def cached_family(params: Mapping[str, Any] | None, progress: Progress | None = None) -> CsvFamily:
    """``CsvFamily(params)``, built once while the settings and the files (size, modification time)
    stay the same: grouping a million rows takes seconds, and a window validates (and previews)
    the same family after every edit. Each call returns its own view (``default_split``,
    size warnings); the read-only data is shared. The family is also kept under its
    :meth:`CsvFamily.spec` (settings plus statistics), which is what a window passes on.
    """
    key = _built_key(params)
    with _built_lock:
        found = _built.get(key) if key else None
        if found is not None:
            _built.move_to_end(key)
    if found is None:
        found = CsvFamily(params, progress=progress)
        for k in {key, _built_key(found.spec().params)} - {None}:
            with _built_lock:
                _built[k] = found
                while len(_built) > BUILT_KEEP:
                    _built.popitem(last=False)
    view = copy.copy(found)
    view.default_split, view._size_warnings = "train", []
    return view


def _built_key(params: Mapping[str, Any] | None) -> str | None:
    """The settings and the files' stamps, or None (not cached) when there are no files or they
    cannot be listed (building then raises the readable error)."""
    try:
        checked = check_params(params, CsvFamily.fields)
        if not checked["paths"]:
            return None
        stamps = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in expand_paths(checked["paths"])]
    except (CsvError, ConfigError, OSError):
        return None
    return json.dumps([checked, stamps], sort_keys=True, default=str)


