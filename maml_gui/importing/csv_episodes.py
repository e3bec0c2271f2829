"""The CSV import's third layout: no task column, N-way episodes over the values of a label column.

Qt-free, like :mod:`maml_gui.importing.csv_choices` (which column can be the label is in
:mod:`maml_gui.importing.csv_columns`): by label or by rows, the shots and ways that fit, the
``labelled_csv`` family's settings from the dialog's choices, and the engine's verdict on them
(:class:`core.tasks.labelled_rows.LabelledRowsFamily` built exactly as the window will build it).
"""

from __future__ import annotations

import math
from typing import Any

from core.data.csv_reader import CsvTable
from core.errors import ConfigError, MamlError
from core.tasks.episodes import SPLITS
from core.tasks.labelled_rows import LabelledRowsFamily

from maml_gui.importing.csv_choices import Checked
from maml_gui.importing.csv_columns import LabelColumn

AUTO_WAYS = 5                      # N when "auto": as in the few-shot benchmarks, fewer when the split has fewer
FIELD_LABELS = {"family.n_way": "classes per episode", "family.split": "split", "family.split_rows": "split",
                "family.target": "label column", "family.features": "inputs", "family.path": "file"}


def _label_split(labels: int, split: list[float]) -> tuple[int, int]:
    """Labels meta-train and meta-test get when the labels themselves are split (as ``split_groups``)."""
    _, f_val, f_test = split
    n_test = max(int(f_test > 0), math.floor(f_test * labels + 0.5))
    n_val = max(int(f_val > 0), math.floor(f_val * labels + 0.5))
    return labels - n_test - n_val, n_test


def auto_ways(labels: int, split: list[float], split_rows: bool = False) -> int:
    """N for "auto": 5, or fewer when meta-train or meta-test would get fewer labels than that
    (split by rows, every split holds every label)."""
    if split_rows:
        return max(2, min(AUTO_WAYS, labels))
    return max(2, min(AUTO_WAYS, *_label_split(labels, split)))


def rows_split_needed(label: LabelColumn, split: list[float]) -> bool:
    """Whether splitting the labels leaves meta-train or meta-test without 2 labels (3 penguin
    species): then only episodes over held-out rows of the same labels work."""
    return min(_label_split(label.labels, split)) < 2


def fitting_sizes(label: LabelColumn, split: list[float], split_rows: bool, shots: int, query: int) -> tuple[int, int]:
    """Shots and query per label that the smallest label fills (split by rows: its meta-train and
    meta-test rows), ``shots`` halved first: what the proposal offers when the window's do not fit."""
    room = label.smallest
    if split_rows:
        _, f_val, f_test = split
        n_test = math.floor(f_test * room + 0.5)
        room = min(n_test, room - n_test - math.floor(f_val * room + 0.5))
    if shots + query <= room or room < 2:
        return shots, query
    shots = max(1, min(shots, room // 2))
    return shots, room - shots


def episode_params(path: str, target: str | None, features: list[str], n_way: int, split: list[float],
                   split_seed: int, labels: int = 0, split_rows: bool = False) -> dict[str, Any]:
    """The ``labelled_csv`` family's settings (``n_way`` 0: :func:`auto_ways` of ``labels``)."""
    return {"path": path, "target": target, "features": list(features) or None,
            "n_way": n_way or auto_ways(labels, split, split_rows), "split": list(split), "split_seed": split_seed,
            "split_rows": split_rows}


def episode_problem(params: dict[str, Any], split_percent: list[int]) -> str | None:
    """Choices refused before building anything (the engine checks the rest)."""
    if not params["target"]:
        return "choose the label column"
    if not params["features"]:
        return "tick at least one numeric input column"
    if sum(split_percent) != 100:
        return f"the split adds up to {sum(split_percent)} %; make meta-train + validation + test 100 %"
    if split_percent[0] == 0 or split_percent[2] == 0:
        never = "rows" if params.get("split_rows") else "labels"
        return f"give meta-train and test a share above 0 %: held-out episodes need {never} never trained on"
    return None


def check_episodes(params: dict[str, Any], table: CsvTable, shots: int, query: int) -> Checked:
    """Build the family as the window will, and check that shots + query rows per label fill episodes."""
    try:
        family = LabelledRowsFamily(params)
    except ConfigError as exc:   # named as the dialog labels the field, not by its key
        return Checked(params, None, f"{FIELD_LABELS.get(exc.field, 'settings')}: {exc.message}")
    except MamlError as exc:
        return Checked(params, None, str(exc))
    capacities = {s: family.sampler.sizes(s) for s in SPLITS}
    try:
        family.check_sizes(shots, query)
    except ConfigError as exc:
        return Checked(params, family, f"with shots {shots} + query {query} per label: {exc.message}",
                       warnings=list(family.warnings), capacities=capacities)
    return Checked(params, family, None, warnings=list(family.warnings), capacities=capacities)


def episodes_summary(family: LabelledRowsFamily) -> str:
    """'52 labels of 'species': 33 / 8 / 11 (meta-train / validation / test), 5-way episodes'; split
    by rows: '3 labels of 'species', rows 236 / 50 / 56 (…)'."""
    if family.params["split_rows"]:
        rows = family.split_rows()
        sizes = f"{len(family.classes)} labels of {family.target!r} in every split, rows {rows['train']} / " \
                f"{rows['val']} / {rows['test']}"
    else:
        n = family.split_sizes()
        sizes = f"{len(family.classes)} labels of {family.target!r}: {n['train']} / {n['val']} / {n['test']}"
    return (f"{sizes} (meta-train / validation / test), {family.params['n_way']}-way episodes over "
            f"{family.input_dim} input{'s' * (family.input_dim != 1)}")


def labels_kept(capacities: dict[str, list[int]], need: int, split_rows: bool = False) -> str:
    """'shots + query = 6 keeps 40 of 52 labels (28 of 33 meta-train) · labels have 3–60 rows'
    (split by rows, a label counts once per split: 'label splits', rows per split)."""
    every = sorted(c for caps in capacities.values() for c in caps)
    if not every:
        return ""
    train = capacities.get("train", [])
    spread = f"{every[0]}" if every[0] == every[-1] else f"{every[0]}–{every[-1]}"
    unit, per = ("label splits", " per split") if split_rows else ("labels", "")
    return (f"shots + query = {need} keeps {sum(c >= need for c in every)} of {len(every)} {unit} "
            f"({sum(c >= need for c in train)} of {len(train)} meta-train) · labels have {spread} rows{per}")
