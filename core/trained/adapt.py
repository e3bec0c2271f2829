"""Adapt a learned initialisation to one new task, with the engine's own inner loop.

This is what meta-training is for: a few labeled points and a few SGD steps. It goes through
:class:`~core.trained.loaded_model.LoadedModel` + ``Algorithm.adapt`` (the code evaluation uses), so the
losses here equal the in-app numbers for the same task, learned inner rates and ANIL's frozen
body included. The task comes from a held-out draw, clicked points, the rows of a CSV file
(K of them drawn at random, with a seed, as the support set; the rest score the adaptation) or,
for an image run, a folder of labelled images (one folder per class; K images of each drawn the
same way). The window's adapt view and ``maml-gui adapt`` build their tasks here, so both draw the
same support set for the same seed and refuse bad input with the same words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from core.config import ExperimentConfig
from core.errors import ConfigError
from core.trained.evaluation import held_out_tasks

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


def check_adapt_settings(steps, lr) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_STEPS:
        raise ConfigError("steps", f"the number of steps must be an integer in 0..{MAX_STEPS}")
    if lr is not None and (not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0):
        raise ConfigError("lr", "the learning rate must be a positive number")


def check_task(name: str, x, y, net, kind: str, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """One task's points checked against the network: ``x [N, in]``; ``y [N, out]`` or labels ``[N]``."""
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

    Raises :class:`~core.data.csv_reader.CsvError` naming the line for missing values and
    :class:`ConfigError` when the columns do not fit a network of ``input_dim`` inputs.
    """
    import numpy as np

    from core.data.csv_reader import CsvError, read_csv

    table = read_csv(path)
    table.text(target)  # raises, listing the columns, when there is no such column
    if features is None:
        features = (family.features if family is not None else None) or [
            c for c in table.columns if c != target and table.is_numeric(c)]
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
    if family is not None:
        x = family.normalize_x(x)
    if classification:
        classes: dict[str, int] = {}
        codes = [classes.setdefault(v, len(classes)) for v in labels]  # task-local labels, as in N-way episodes
        if family is not None and len(classes) > family.output_dim:   # labels past the head: name the file
            raise CsvError(table.path, f"holds {len(classes)} labels of {target!r}; the network tells apart 2 to "
                                       f"{family.output_dim} (its N ways)", column=target)
        return CsvTask(torch.as_tensor(x, dtype=dtype), torch.tensor(codes), tuple(features), tuple(classes))
    if family is not None:
        y = family.normalize_y(y)
    return CsvTask(torch.as_tensor(x, dtype=dtype), torch.as_tensor(y, dtype=dtype)[:, None], tuple(features), None)


# -- the task to adapt to -------------------------------------------------------------------------
ADAPT_SEED_OFFSET = 104_729   # held-out tasks to adapt to: a stream apart from the previews and the scores


@dataclass(frozen=True)
class AdaptTask:
    """One task: ``x [K, D]``; ``y [K, out]`` or labels ``[K]``; a query set when there is one."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor | None
    query_y: torch.Tensor | None
    title: str
    task_params: dict | None = None               # a generated function's parameters (to draw the truth)
    support_rows: tuple[int, ...] | None = None   # rows of a file: which ones (0 = its first data row) are the support
    class_names: tuple[str, ...] | None = None    # the class behind each label 0, 1, … (a folder of images)
    notes: tuple[str, ...] = ()                   # what was skipped on the way (unreadable files, …)


def held_out_task(config: ExperimentConfig, family, index: int, shots: int) -> AdaptTask:
    """Held-out task number ``index`` (0, 1, …) of the family, with ``shots`` support points."""
    seed = config.train.seed + ADAPT_SEED_OFFSET + index
    batch = held_out_tasks(family, 1, shots, config.train.query, seed)
    params = {k: v.cpu() for k, v in batch.task_params.items()} if batch.task_params else None
    return AdaptTask(batch.support_x[0], batch.support_y[0], batch.query_x[0], batch.query_y[0],
                     f"held-out task #{index + 1}", params)


def points_task(points) -> AdaptTask:
    """(x, y) pairs as a 1-D regression task with no query set."""
    if not points:
        raise ConfigError("points", "give at least one (x, y) point")
    xy = torch.tensor(points, dtype=torch.get_default_dtype())
    n = len(points)
    # contiguous copies: a strided column gives other float rounding than the same numbers given directly
    return AdaptTask(xy[:, :1].contiguous(), xy[:, 1:].contiguous(), None, None, f"{n} clicked point{'s' * (n != 1)}")


def support_rows(n: int, shots: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Which of ``n`` rows are the support set: ``shots`` of them (all if fewer) drawn at random
    with ``seed``, and the rest the query set, each in file order. Not the first ``shots``: in a
    file sorted by x that would score the adaptation on extrapolation only."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    k = min(max(int(shots), 0), n)
    return order[:k].sort().values, order[k:].sort().values


def rows_text(rows) -> str:
    """1-based row numbers for people, e.g. "2, 5, 9" (long lists cut: "2, 5, 9, … (40 rows)")."""
    numbers = [str(int(i) + 1) for i in rows]
    return ", ".join(numbers) if len(numbers) <= 12 else ", ".join(numbers[:10]) + f", … ({len(numbers)} rows)"


def csv_rows_task(path, target: str, features, shots: int, family, seed: int = 0) -> AdaptTask:
    """``shots`` rows of a CSV file drawn at random with ``seed`` (:func:`support_rows`) as the
    support set and the other rows as the query set, transformed as ``family`` transformed its
    training data (see :func:`task_from_csv`)."""
    task = task_from_csv(path, target, features, classification=family.kind == "classification",
                         input_dim=family.input_dim, family=family)
    n = len(task.x)
    support, query = support_rows(n, shots, seed)
    k, rows = len(support), tuple(int(i) for i in support)
    name = Path(path).name
    if k == n:
        return AdaptTask(task.x, task.y, None, None, f"{name}: all {n} rows as support (no query rows left)",
                         support_rows=rows)
    return AdaptTask(task.x[support], task.y[support], task.x[query], task.y[query],
                     f"{name}: {k} of {n} rows drawn at random (seed {seed}) as support, the other {n - k} as query",
                     support_rows=rows)


# -- a new task from a folder of labelled images ----------------------------------------------------
def image_folder_task(path, family, shots: int | None = None, seed: int = 0) -> AdaptTask:
    """One N-way task from a folder of class folders (``class/*.png``; Omniglot's
    ``alphabet/character/*.png`` too): class ``i`` (folders in name order) gets label ``i``, the
    network's N ways are the most classes it can take. Of each class, ``shots`` images drawn at
    random (seeded by ``seed + label``, as :func:`support_rows` draws rows) are the support set and
    the others the query set; ``shots=None`` puts every image in the support set. Images are decoded
    at the run's size and channels and standardised as its training images were
    (``family.sampler.to_float``). Unreadable files are skipped and counted in ``notes``.

    Raises :class:`ConfigError` (field ``images``, or ``shots``) naming the folder or class: a run
    not trained on images, fewer than 2 or more than N classes, a class with too few images for K.
    """
    from core.tasks.image_folder import count_classes, load_image_folder

    root = Path(path).expanduser()
    shape = getattr(family, "input_shape", None)
    if shape is None or not hasattr(family, "sampler"):
        raise ConfigError("images", f"a folder of images adapts a run trained on images; this run learned "
                                    f"{getattr(family, 'title', None) or family.name}")
    ways = family.output_dim
    try:
        classes = count_classes(root)   # first: no decoding a whole data set by mistake
        if classes > ways:
            raise ConfigError("images", _too_many(root, classes, ways))
        data = load_image_folder(root, shape[1], shape[0])
    except ConfigError as exc:
        raise ConfigError("images", exc.message) from None
    if not 2 <= len(data.classes) <= ways:
        raise ConfigError("images", _too_many(root, len(data.classes), ways))
    xs, ys, qx, qy = [], [], [], []
    for label, cls in enumerate(data.classes):
        k = cls.count if shots is None else int(shots)
        if not 1 <= k <= cls.count:
            raise ConfigError("shots", f"class {cls.name!r} of {root.name} has {cls.count} image"
                                       f"{'s' * (cls.count != 1)}; K (shots per class) must be 1..{cls.count}")
        images = family.sampler.to_float(data.images[cls.start:cls.start + cls.count])
        support, rest = support_rows(cls.count, k, seed + label)
        xs.append(images[support])
        ys += [label] * k
        qx.append(images[rest])
        qy += [label] * (cls.count - k)
    names = tuple(c.name for c in data.classes)
    n, s, q = len(names), len(ys), len(qy)
    per_class = f"{shots} of each class's images" if shots is not None else "every image"
    title = (f"{root.name}: {n} classes, {per_class} drawn at random (seed {seed}) as support ({s}), "
             f"the other {q} as query" if q else f"{root.name}: {n} classes, all {s} images as support "
                                                 "(no query images left)")
    support_x, support_y = torch.cat(xs), torch.tensor(ys)
    query = (torch.cat(qx), torch.tensor(qy)) if q else (None, None)
    return AdaptTask(support_x, support_y, *query, title, class_names=names, notes=tuple(data.warnings))


def _too_many(root: Path, n: int, ways: int) -> str:
    return f"{root} holds {n} classes; the network tells apart 2 to {ways} (its N ways)"
