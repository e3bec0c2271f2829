"""What the live views show for a CSV family, as plain numpy data (Qt-free, like ``inspection``).

A CSV task has no "true function" to draw: the view shows the task's own rows in the file's
units, the K support rows the model adapts on, and the model's prediction before and after each
adaptation step — as a curve over the input column's range when there is exactly one input, or
as predicted-vs-true on the task's other rows when there are several.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch

from core.errors import ConfigError
from core.tasks.csv_family import CsvFamily

GRID_POINTS = 200
EVAL_QUERY_CAP = 100   # as ``maml-gui evaluate``: at most this many query rows per held-out task
_ranges: "weakref.WeakKeyDictionary[CsvFamily, tuple[float, float]]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class DataView:
    """One meta-test task of a CSV family, in the file's units.

    ``kind`` "curve": ``grid`` spans the input column, ``predictions[s]`` is the curve after ``s``
    steps. ``kind`` "scatter": ``predictions[s]`` are the predictions for the task's other rows,
    whose true values are ``rows_y`` (drawn against each other, with the diagonal).
    """

    kind: str
    task: str
    x_label: str
    y_label: str
    grid: np.ndarray
    predictions: list[np.ndarray]
    support_x: np.ndarray
    support_y: np.ndarray
    rows_x: np.ndarray
    rows_y: np.ndarray
    mse: tuple[float, float]   # on the other rows, before and after adaptation (in the file's units)


def eval_query(family, shots: int, query: int) -> int:
    """Query rows per held-out task: CSV tasks differ in size, so as many as every meta-test task
    that can give ``shots`` support rows can also give (capped), like ``maml-gui evaluate``."""
    if not isinstance(family, CsvFamily):
        return query
    room = family.held_out().max_query(shots)
    if room < 1:
        sizes = family.held_out().task_sizes("test")
        raise ConfigError("train.shots", f"no meta-test task has more than shots = {shots} rows (the largest has "
                                         f"{max(sizes, default=0)}), so none is left to score adaptation on; lower "
                                         "shots, or give the test split a larger share (Change… in the family panel)")
    return min(EVAL_QUERY_CAP, room)


def column_range(family: CsvFamily) -> tuple[float, float]:
    """The first input column's range over every task (computed once per family)."""
    if family not in _ranges:
        values = [family.task_points(s, i)[0][:, 0] for s in ("train", "val", "test")
                  for i in range(len(family.task_names(s)))]
        flat = np.concatenate(values)
        low, high = float(flat.min()), float(flat.max())
        pad = 0.02 * (high - low) if high > low else 1.0
        _ranges[family] = (low - pad, high + pad)
    return _ranges[family]


def csv_view(trainer, task_index: int, steps: int, seed: int) -> DataView | None:
    """Adapt to one meta-test task's K random rows; None for classification (regions or nothing)."""
    family: CsvFamily = trainer.family
    if family.kind != "regression":
        return None
    shots = trainer.config.train.shots
    test = family.held_out()
    usable = [i for i, n in enumerate(test.task_sizes("test")) if n > shots]
    if not usable:
        return None
    index = usable[task_index % len(usable)]
    x, y = test.task_points("test", index)
    generator = torch.Generator().manual_seed(seed + task_index)
    order = torch.randperm(len(x), generator=generator).numpy()
    support, rest = order[:shots], order[shots:]
    dtype, device = torch.get_default_dtype(), trainer.device

    def tensor(values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(values, dtype=dtype, device=device).unsqueeze(0)

    sx = tensor(family.normalize_x(x[support]))
    sy = tensor(family.normalize_y(y[support])[:, None])
    algorithm = trainer.algorithm
    trajectory = algorithm.adapt(trainer.params, trainer.rates, sx, sy, steps)
    one_input = family.input_dim == 1
    if one_input:
        low, high = column_range(family)
        grid = np.linspace(low, high, GRID_POINTS)
        inputs = tensor(family.normalize_x(grid[:, None]))
    else:
        grid = np.zeros(0)
    rows = tensor(family.normalize_x(x[rest]))
    with torch.no_grad():
        on_rows = [family.denormalize_y(algorithm.net.forward(p, rows)[0, :, 0].cpu().double().numpy())
                   for p in trajectory]
        curves = ([family.denormalize_y(algorithm.net.forward(p, inputs)[0, :, 0].cpu().double().numpy())
                   for p in trajectory] if one_input else on_rows)
    truth = y[rest]
    mse = tuple(float(np.mean((pred - truth) ** 2)) if len(truth) else float("nan") for pred in (on_rows[0], on_rows[-1]))
    x_label = family.features[0] if one_input else f"true {family.target}"
    return DataView("curve" if one_input else "scatter", test.task_names("test")[index], x_label,
                    family.target if one_input else f"predicted {family.target}", grid, curves,
                    x[support, 0] if one_input else np.zeros(0), y[support] if one_input else np.zeros(0),
                    x[rest, 0] if one_input else truth, truth, mse)
