"""Adapt a learned initialisation to one new task, with the engine's own inner loop.

This is what meta-training is for: a few labeled points and a few SGD steps. It goes through
``MetaTrainer`` + ``Algorithm.adapt`` (the code evaluation uses), so the losses here equal the
in-app numbers for the same task, learned inner rates and ANIL's frozen body included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .algorithms import InnerRates
from .algorithms.inner import task_accuracy, task_losses
from .config import ExperimentConfig
from .errors import ConfigError

MAX_STEPS = 1000
Weights = dict[str, torch.Tensor]


@dataclass(frozen=True)
class AdaptResult:
    """Index ``s`` of each tuple is after ``s`` steps (0 = the learned initialisation).

    ``weights`` holds ``model.*`` (adapted) and ``inner_lr.*`` (unchanged), as plain CPU
    tensors, so ``save_run`` and ``export_weights((config, weights), …)`` take it as is.
    """

    support_losses: tuple[float, ...]
    query_losses: tuple[float, ...] | None
    query_accuracy: tuple[float, ...] | None
    weights: Weights


def adapt_weights(config: ExperimentConfig, weights: Weights, support_x: torch.Tensor, support_y: torch.Tensor,
                  steps: int, lr: float | None = None, *, query_x: torch.Tensor | None = None,
                  query_y: torch.Tensor | None = None, family=None) -> AdaptResult:
    """Fine-tune on ``support`` for ``steps`` steps. ``lr=None`` uses the run's inner rates
    (learned ones where the algorithm has them); a number replaces them with one fixed rate."""
    from .trainer import MetaTrainer

    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_STEPS:
        raise ConfigError("steps", f"the number of steps must be an integer in 0..{MAX_STEPS}")
    if lr is not None and (not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0):
        raise ConfigError("lr", "the learning rate must be a positive number")
    trainer = MetaTrainer(config.replace("train", device="cpu"), family)
    trainer.load_weights(weights)
    alg, net, kind = trainer.algorithm, trainer.net, trainer.family.kind
    dtype = next(iter(trainer.params.values())).dtype
    sx, sy = _task("support", support_x, support_y, net, kind, dtype)
    rates = trainer.rates if lr is None else InnerRates("fixed", float(lr), trainer.params, alg.adapt_names, 1)
    trajectory = alg.adapt(trainer.params, rates, sx[None], sy[None], steps)
    with torch.no_grad():
        support = torch.stack([task_losses(net.forward(p, sx[None]), sy[None], kind)[0] for p in trajectory])
        query = accuracy = None
        if query_x is not None or query_y is not None:
            qx, qy = _task("query", query_x, query_y, net, kind, dtype)
            outs = [net.forward(p, qx[None]) for p in trajectory]
            query = tuple(torch.stack([task_losses(o, qy[None], kind)[0] for o in outs]).tolist())
            if kind == "classification":
                accuracy = tuple(torch.stack([task_accuracy(o, qy[None])[0] for o in outs]).tolist())
    final = trajectory[-1]
    adapted = {f"model.{n}": (v[0] if v.dim() > trainer.params[n].dim() else v).detach().cpu().clone()
               for n, v in final.items()}
    adapted.update({f"inner_lr.{n}": t.detach().cpu().clone() for n, t in trainer.rates.tensors.items()})
    return AdaptResult(tuple(support.tolist()), query, accuracy, adapted)


def _task(name: str, x, y, net, kind: str, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Check one task's points against the network: ``x [N, in]``; ``y [N, out]`` or labels ``[N]``."""
    if x is None or y is None:
        raise ConfigError(name, f"give both the {name} inputs and targets")
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.dim() == 1 and net.input_dim == 1:
        x = x[:, None]
    if x.dim() != 2 or x.shape[1] != net.input_dim or x.shape[0] < 1:
        raise ConfigError(f"{name}.x", f"expected [points, {net.input_dim}] inputs, got shape {tuple(x.shape)}")
    if kind == "classification":
        if y.shape != (x.shape[0],) or y.is_floating_point():
            raise ConfigError(f"{name}.y", f"expected {x.shape[0]} integer class labels, got shape {tuple(y.shape)}")
        if y.min() < 0 or y.max() >= net.output_dim:
            raise ConfigError(f"{name}.y", f"class labels must be in 0..{net.output_dim - 1}")
        y = y.long()
    else:
        if y.dim() == 1 and net.output_dim == 1:
            y = y[:, None]
        if tuple(y.shape) != (x.shape[0], net.output_dim):
            raise ConfigError(f"{name}.y", f"expected [{x.shape[0]}, {net.output_dim}] targets, got shape {tuple(y.shape)}")
        y = y.to(dtype)
    x = x.to(dtype)
    if not torch.isfinite(x).all() or (y.is_floating_point() and not torch.isfinite(y).all()):
        raise ConfigError(name, f"the {name} data holds NaN or inf")
    return x, y


# -- a new task from a CSV file -------------------------------------------------------------
@dataclass(frozen=True)
class CsvTask:
    """One task's labeled rows, in file order: ``x [N, D]``; ``y [N, 1]`` or class indices ``[N]``."""

    x: torch.Tensor
    y: torch.Tensor
    features: tuple[str, ...]
    classes: tuple[str, ...] | None  # label text of each class index (first appearance), classification only


def task_from_csv(path, target: str, features=None, *, classification: bool = False,
                  input_dim: int | None = None, family=None) -> CsvTask:
    """Columns by name (order in the file does not matter); ``features=None`` takes the family's
    input columns, else every numeric column except the target. A family that standardized its
    data (``normalize_x``/``normalize_y``, the CSV family) transforms these rows the same way.

    Raises :class:`~core.csv_reader.CsvError` naming the line for missing values and
    :class:`ConfigError` when the columns do not fit a network of ``input_dim`` inputs.
    """
    import numpy as np

    from .csv_reader import CsvError, read_csv

    table = read_csv(path)
    table.text(target)  # raises, listing the columns, when there is no such column
    if features is None:
        features = getattr(family, "features", None) or [c for c in table.columns if c != target and table.is_numeric(c)]
    features = list(features)
    for name in features:
        table.text(name)
    if not features or target in features or len(set(features)) != len(features):
        raise ConfigError("features", "list each input column once, at least one, and not the target")
    if input_dim is not None and len(features) != input_dim:
        raise ConfigError("features", f"the network takes {input_dim} input(s); {table.path.name} gives {len(features)} "
                                      f"({', '.join(features)}): choose them with --features")
    x = np.column_stack([table.numeric(c) for c in features])
    if classification:
        labels = table.text(target)
        missing = np.array([not v for v in labels]) | np.isnan(x).any(1)
    else:
        y = table.numeric(target)
        missing = np.isnan(y) | np.isnan(x).any(1)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise CsvError(table.path, f"{int(missing.sum())} row(s) have missing values; fill them in or delete those rows",
                       line=int(table.lines[i]))
    dtype = torch.get_default_dtype()
    if hasattr(family, "normalize_x"):
        x = family.normalize_x(x)
    if classification:
        classes: dict[str, int] = {}
        codes = [classes.setdefault(v, len(classes)) for v in labels]  # task-local labels, as in N-way episodes
        return CsvTask(torch.as_tensor(x, dtype=dtype), torch.tensor(codes), tuple(features), tuple(classes))
    if hasattr(family, "normalize_y"):
        y = family.normalize_y(y)
    return CsvTask(torch.as_tensor(x, dtype=dtype), torch.as_tensor(y, dtype=dtype)[:, None], tuple(features), None)
