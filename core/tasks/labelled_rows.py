"""A CSV table with a label column as N-way K-shot episodes over its labels (no task column).

Each distinct label is a class. By default classes (not rows) are split into meta-train /
validation / test, so held-out episodes ask the network to tell apart classes it never saw. A file
with few labels (3 penguin species) cannot fill episodes that way; with ``split_rows`` each label's
rows are split instead (a seeded permutation per label), every split holds every label, and
meta-test episodes draw only held-out rows. Inputs are standardized with the statistics of
meta-train rows only, kept in :attr:`normalization` (the CSV family's keys, so exports explain them
the same way). Rows with a missing label or input are left out and counted in :attr:`warnings`
with their line numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from core.data.csv_reader import CsvError, read_csv
from ..errors import ConfigError
from .base import ParamField
from .episodes import SPLITS, EpisodeFamily, EpisodeSampler, listed, split_groups
from .standardize import Flattened, column_stats

ROWS_ADVICE = "or give that split a larger fraction of each label's rows (split)"


class LabelledRowsFamily(EpisodeFamily):
    """N-way episodes over the label values of one CSV file (see the module docstring)."""

    name, title = "labelled_csv", "Labelled CSV rows (N-way classes)"
    fields = (
        ParamField("n_way", "classes N (ways)", "int", 5, 2, 100, help="labels per episode"),
        ParamField("split_seed", "split seed", "int", 0, 0, 2**31 - 1,
                   help="which labels go to meta-train / validation / test"),
    )
    data_fields = (
        ParamField("path", "CSV file", "path", "", help="one row per example, a label column and numeric inputs"),
        ParamField("target", "label column", "column", None, help="text or integer class labels"),
        ParamField("features", "input columns", "columns", None, help="default: every other numeric column"),
        ParamField("split", "meta-train / validation / test", "fractions", [0.64, 0.16, 0.2],
                   help="fractions of the labels (classes), or of each label's rows with split_rows"),
        ParamField("split_rows", "split by rows", "bool", False,
                   help="split each label's rows rather than the labels: every episode can use every label, and "
                        "meta-test episodes draw rows never trained on (the choice for a file with few labels)"),
    )

    def _validate(self) -> None:
        p = self.params
        if not p["path"]:
            raise ConfigError("family.path", "choose a CSV file with a label column")
        table = read_csv(p["path"])
        path = Path(p["path"])
        listed_columns = f"the columns of {path.name} are {listed(list(table.columns), 20)}"
        target = p["target"]
        if target is None:
            raise ConfigError("family.target", f"choose the label column; {listed_columns}")
        if target not in table.columns:
            raise ConfigError("family.target", f"there is no label column {target!r}; {listed_columns}")
        features = p["features"]
        if features is None:
            features = [c for c in table.columns if c != target and table.is_numeric(c)]
            if not features:
                raise CsvError(path, f"has no numeric input column besides the label {target!r}; {listed_columns}")
        for name in features:
            if name not in table.columns or name == target:
                raise ConfigError("family.features", f"{name!r} is not an input column of {path.name}; "
                                                     f"{listed_columns} (the label {target!r} cannot be an input)")
        x = np.column_stack([table.numeric(c) for c in features])       # names line and column of a bad value
        labels = np.asarray(table.text(target), dtype=object)
        missing = np.isnan(x).any(1) | (labels == "")
        if missing.any():
            lines = [f"line {int(n)}" for n in table.lines[missing]]
            self._load_warnings.append(f"{path.name}: left out {len(lines)} row(s) with a missing label or input: "
                                       f"{listed(lines)}")
        x, labels = x[~missing], labels[~missing]
        names = sorted(set(labels.tolist()), key=_label_order)
        if len(names) < (2 if p["split_rows"] else 3):
            need = ("two labels" if p["split_rows"] else "classes for meta-train and meta-test (or split by rows: "
                    "two labels)")
            raise CsvError(path, f"the label column {target!r} has {len(names)} distinct value(s); episodes need "
                                 f"{need}, so choose a label column with more classes", column=target)
        if p["split_rows"] and p["n_way"] > len(names):
            raise ConfigError("family.n_way", f"{path.name} has {len(names)} labels of {target!r}, so an episode "
                                              f"can tell at most {len(names)} apart; choose {len(names)} classes "
                                              f"per episode or fewer (now {p['n_way']})")
        code = {n: i for i, n in enumerate(names)}
        codes = np.fromiter((code[v] for v in labels), dtype=np.int64, count=len(labels))
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=len(names))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        x = x[order]
        if p["split_rows"]:
            x, starts, counts, splits, group_names = _split_rows(x, starts, counts, names, p["split"],
                                                                 p["split_seed"], self._every_class)
        else:
            splits = self._final_splits(split_groups(len(names), p["split"], p["split_seed"], f"labels of {target!r}"))
            group_names = names
            _check_label_split(path.name, target, len(names), splits, p["n_way"])
        train = np.concatenate([x[starts[c]:starts[c] + counts[c]] for c in splits["train"]])
        flattened = Flattened(train, lambda _row, j: _place(path, table, features[j], flattened.values[j]))
        mean, std, flat = column_stats(train, overwrite=True)   # the CSV family's statistics and warning
        for name in (f for f, c in zip(features, flat) if c):
            self._load_warnings.append(f"input column {name!r} is constant on the meta-train classes; it carries no "
                                       "information (scaled by 1)")
        with np.errstate(over="ignore", invalid="ignore"):   # ±1.7e308 in one column: refused below, by name
            scaled = (x - mean) / std
            finite = np.isfinite(scaled.astype(np.float32)).all(0)
        if not finite.all():
            j = int(np.flatnonzero(~finite)[0])
            column = table.numeric(features[j])
            with np.errstate(over="ignore", invalid="ignore"):
                at = int(np.flatnonzero(np.isinf(((column - mean[j]) / std[j]).astype(np.float32)))[0])
            raise CsvError(path, f"the value {column[at]:.3g} is too large for the model's 32-bit numbers; rescale "
                                 "the column", line=int(table.lines[at]), column=features[j])
        self._load_warnings += flattened.warnings(mean, std, [f"input column {f!r}" for f in features])
        self.features, self.target, self.classes = list(features), target, [str(n) for n in names]
        self.input_dim, self.input_shape = len(features), None
        self.normalization = {"features": list(features), "feature_mean": mean.tolist(),
                              "feature_std": std.tolist(), "target": None, "target_mean": None, "target_std": None}
        self.sampler = EpisodeSampler(torch.as_tensor(scaled, dtype=torch.float32), starts, counts,
                                      [str(n) for n in group_names], splits, p["n_way"], unit="rows",
                                      advice=ROWS_ADVICE if p["split_rows"] else "")
        self._load_warnings += self.sampler.check_classes()

    def normalize_x(self, x: np.ndarray) -> np.ndarray:
        """Rows in the file's units -> what the network saw in training (adapting to a new file)."""
        n = self.normalization
        with np.errstate(over="ignore", invalid="ignore"):   # a wild value becomes inf and is refused by name
            return (np.asarray(x, dtype=np.float64) - np.asarray(n["feature_mean"])) / np.asarray(n["feature_std"])

    def normalised_like(self, like):
        """As :meth:`EpisodeFamily.normalised_like`; the rows, stored standardised with this file's
        statistics, are re-standardised with ``like``'s."""
        view = super().normalised_like(like)
        mine, theirs = self.normalization, like.normalization
        raw = view.sampler.data.double() * torch.tensor(mine["feature_std"]) + torch.tensor(mine["feature_mean"])
        view.sampler.data = ((raw - torch.tensor(theirs["feature_mean"])) / torch.tensor(theirs["feature_std"])).float()
        return view

    def split_rows(self) -> dict[str, int]:
        """Rows each split's episodes draw from."""
        return {s: sum(self.sampler.sizes(s)) for s in SPLITS}

    def summary(self) -> str:
        if self.params["split_rows"]:
            rows = self.split_rows()
            return (f"{Path(self.params['path']).name}: {len(self.classes)} labels of {self.target!r}, "
                    f"{len(self.sampler.data)} rows, {self.input_dim} inputs; split by rows: {rows['train']} "
                    f"meta-train, {rows['val']} validation, {rows['test']} meta-test")
        sizes = self.split_sizes()
        return (f"{Path(self.params['path']).name}: {len(self.classes)} labels of {self.target!r}, "
                f"{len(self.sampler.data)} rows, {self.input_dim} inputs; classes: {sizes['train']} meta-train, "
                f"{sizes['val']} validation, {sizes['test']} meta-test")


def _split_rows(x: np.ndarray, starts: np.ndarray, counts: np.ndarray, names: list, fractions, seed: int,
                every_class: bool):
    """Each label's rows (``x`` sorted by label) shuffled with ``seed`` and cut by ``fractions`` into
    meta-train / validation / test ranges: groups ``3 * label + split``, every split holding every label.
    ``every_class`` (scoring another file): every row is meta-test data, in one group per label."""
    if every_class:
        everything = list(range(len(names)))
        return x, starts, counts, {"train": everything, "val": [], "test": everything}, names
    _, f_val, f_test = fractions
    rng = np.random.default_rng(seed)
    blocks, group_counts, splits = [], [], {s: [] for s in SPLITS}
    for c, (start, count) in enumerate(zip(starts, counts)):
        rows = x[start + rng.permutation(count)]
        n_test = math.floor(f_test * count + 0.5) if f_test > 0 else 0
        n_val = math.floor(f_val * count + 0.5) if f_val > 0 else 0
        cuts = [0, count - n_test - n_val, count - n_test, count]   # meta-train, validation, test
        for i, split in enumerate(SPLITS):
            blocks.append(rows[cuts[i]:cuts[i + 1]])
            group_counts.append(cuts[i + 1] - cuts[i])
            if split != "val" or f_val > 0:
                splits[split].append(3 * c + i)
    group_counts = np.asarray(group_counts, dtype=np.int64)
    group_starts = np.concatenate([[0], np.cumsum(group_counts)[:-1]])
    return np.concatenate(blocks), group_starts, group_counts, splits, [n for n in names for _ in range(3)]


def _check_label_split(file: str, target: str, labels: int, splits: dict[str, list[int]], n_way: int) -> None:
    """Split by label, meta-train and meta-test must each hold N labels: say what the file has and what works."""
    train, test = len(splits["train"]), len(splits["test"])
    if min(train, test) >= n_way:
        return
    fits = min(train, test)
    other = f"choose {fits} classes per episode, " if fits >= 2 else ""
    raise ConfigError("family.n_way",
                      f"{file} has {labels} labels of {target!r}; split by label, meta-train gets {train} and "
                      f"meta-test {test}, and {n_way}-way episodes need at least {n_way} in each: {other}split by rows "
                      f"instead of by label (every episode draws rows of the same labels, meta-test episodes only "
                      f"held-out rows), or use a file with more labels")


def _label_order(value: str) -> tuple:
    """Numbers in numeric order (2 before 10), then text."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _place(path: Path, table, feature: str, value: float) -> str:
    """``file.csv line N`` of ``value`` in column ``feature`` (the rows were reordered by label and
    split since: found by the value itself)."""
    at = int(np.flatnonzero(table.numeric(feature) == value)[0])
    return f"{path.name} line {int(table.lines[at])}"

