"""The rows behind a CSV family: per-task slices of one tensor, the train split's rows flattened for
normalisation statistics, and the checks on the settings and statistics a family is given."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from core.data.csv_reader import CsvError
from core.errors import ConfigError
from core.tasks.base import ParamField, _check_field
from core.tasks.csv_data import CsvTasks
from core.tasks.episodes import split_groups

FLOAT32_MAX = float(np.finfo(np.float32).max)
DEFAULTS: dict[str, Any] = {
    "paths": [], "task_column": None, "features": None, "target": None, "classification": False,
    "split": [0.7, 0.15, 0.15], "split_seed": 0, "normalize": True, "drop_missing": False, "n_way": 0,
    "normalization": None,
}


class TaskRows:
    """Per-task rows of one tensor, sliced when asked: 20,000 tasks need no 20,000 tensor objects (~1 KB each)."""

    def __init__(self, values: torch.Tensor, sizes: list[int]):
        self.values = values
        self.ends = np.cumsum(sizes).tolist()
        self.starts = [0] + self.ends[:-1]

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, t: int) -> torch.Tensor:
        return self.values[self.starts[t]:self.ends[t]]


def split_tasks(n: int, fractions: list[float], seed: int) -> dict[str, list[int]]:
    """Task indices per split (see :func:`~core.tasks.episodes.split_groups`)."""
    return split_groups(n, fractions, seed, "tasks", zero_hint="the validation and test fractions")


def data_source(files: list[Path]) -> str:
    """The data a message is about: the file, the folder of files, or how many files."""
    unique = set(files)
    if len(unique) == 1:
        return unique.pop().name
    folders = {p.parent for p in unique}
    return f"{folders.pop().name}/ ({len(unique)} files)" if len(folders) == 1 else f"{len(unique)} files"


def train_row_place(data: CsvTasks, train: list[int], index: int) -> str:
    """``file.csv line N`` of row ``index`` of the concatenated meta-training tasks ``train``."""
    sizes = np.cumsum([len(data.y[t]) for t in train])
    k = int(np.searchsorted(sizes, index, side="right"))
    row = index - (int(sizes[k - 1]) if k else 0)
    task = train[k]
    return f"{data.files[task].name} line {int(data.lines[task][row])}"


def rows_by_class(codes: np.ndarray) -> dict[int, torch.Tensor]:
    return {int(c): torch.as_tensor(np.flatnonzero(codes == c)) for c in np.unique(codes)}


def check_fits(values: np.ndarray, columns: list[str], task: str, path: Path) -> None:
    big = ~(np.abs(values) < FLOAT32_MAX)
    if big.any():
        row, col = np.argwhere(big)[0]
        raise CsvError(path, f"task {task!r} has values too large for the model's 32-bit numbers (up to "
                             f"{np.abs(values[:, col]).max():.3g}); rescale the column, or turn standardization on",
                       column=columns[col])


def check_stored(stored: Any, features: list[str], target: str | None) -> dict[str, Any]:
    """Statistics saved with a run must describe exactly these columns."""
    field = "family.normalization"
    if not isinstance(stored, Mapping):
        raise ConfigError(field, "expected the saved statistics as a JSON object")
    if list(stored.get("features") or []) != features or stored.get("target") != target:
        raise ConfigError(field, f"the saved statistics are for inputs {stored.get('features')} and target "
                                 f"{stored.get('target')!r}, but this family uses {features} and {target!r}; "
                                 "remove them to recompute")
    out = {"features": list(features), "target": target}
    for key, size in (("feature_mean", len(features)), ("feature_std", len(features))):
        values = stored.get(key)
        if not isinstance(values, list) or len(values) != size or not all(_finite(v) for v in values):
            raise ConfigError(f"{field}.{key}", f"expected {size} finite numbers")
        out[key] = [float(v) for v in values]
    for key in ("target_mean", "target_std"):
        value = stored.get(key)
        if (value is None) != (target is None) or (value is not None and not _finite(value)):
            raise ConfigError(f"{field}.{key}", "expected a finite number" if target else "expected null")
        out[key] = None if value is None else float(value)
    if min(out["feature_std"], default=1.0) <= 0 or (out["target_std"] is not None and out["target_std"] <= 0):
        raise ConfigError(field, "standard deviations must be positive")
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_params(params: Mapping[str, Any] | None, fields: tuple[ParamField, ...]) -> dict[str, Any]:
    """Defaults merged with ``params``, each checked for type, so a typo in a saved run is named."""
    params = dict(params or {})
    for key in params:
        if key not in DEFAULTS:
            raise ConfigError(f"family.{key}", "unknown setting for the csv family")
    out = copy.deepcopy(DEFAULTS)
    out.update(copy.deepcopy(params))
    for f in fields:
        out[f.name] = _check_field(f, out[f.name])
    if isinstance(out["paths"], str):
        out["paths"] = [out["paths"]]
    if not isinstance(out["paths"], list) or not all(isinstance(p, str) and p for p in out["paths"]):
        raise ConfigError("family.paths", "expected a list of file or folder paths")
    for key in ("task_column", "target"):
        if out[key] == "":
            out[key] = None
        if out[key] is not None and not isinstance(out[key], str):
            raise ConfigError(f"family.{key}", "expected a column name")
    if out["features"] == []:
        out["features"] = None
    if out["features"] is not None and (not isinstance(out["features"], list)
                                        or not all(isinstance(c, str) and c for c in out["features"])):
        raise ConfigError("family.features", "expected a list of column names")
    for key in ("classification", "normalize", "drop_missing"):
        if not isinstance(out[key], bool):
            raise ConfigError(f"family.{key}", "expected true or false")
    split = out["split"]
    if (not isinstance(split, (list, tuple)) or len(split) != 3 or not all(_finite(v) and v >= 0 for v in split)
            or split[0] <= 0):
        raise ConfigError("family.split", "expected three fractions [train, validation, test], train > 0")
    if abs(sum(split) - 1.0) > 1e-6:
        raise ConfigError("family.split", f"the fractions must add up to 1 (they add up to {sum(split):g})")
    out["split"] = [float(v) for v in split]
    return out
