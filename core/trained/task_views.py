"""What a task view draws, as plain numpy data: decision regions of a 2-D classifier, a CSV
task's rows in the file's units with the model's predictions, and an image episode (support and
query images with the labels predicted after each adaptation step).

Computed by :class:`~core.trained.loaded_model.LoadedModel` (the 1-D regression curve is
:class:`~core.trained.evaluation.FunctionView`); only arrays and floats leave this module, so a view can
be built on one thread and drawn on another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.algorithms.inner import Params

if TYPE_CHECKING:
    from core.trained.loaded_model import LoadedModel

REGION_RESOLUTION = 90   # grid points per side for decision regions
GRID_POINTS = 200        # points along a curve


@dataclass(frozen=True)
class RegionsView:
    """A 2-D classification task: predicted class on a grid after adaptation, and the task's points."""

    grid_x: np.ndarray        # [W] x coordinates of the grid columns
    grid_y: np.ndarray        # [H] y coordinates of the grid rows
    labels: np.ndarray        # [H, W] predicted class
    points_x: np.ndarray      # support points
    points_y: np.ndarray
    point_labels: np.ndarray
    accuracy: float           # query accuracy after adaptation
    steps: int


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


@dataclass(frozen=True)
class EpisodeView:
    """One meta-test episode of an image family, ready to show.

    Images are ``uint8`` ``[n, H, W]`` (grey) or ``[n, H, W, 3]`` (RGB), de-normalised to what
    the files held. ``predictions[s]`` are the query labels predicted after ``s`` steps (step 0:
    before adapting) and ``accuracy[s]`` the share of them that are right.
    """

    support_images: np.ndarray
    support_labels: np.ndarray     # [N*K] label 0..N-1 of each support image
    class_names: list[str]         # the class behind each label
    query_images: np.ndarray
    query_labels: np.ndarray       # [N*Q] true labels
    predictions: np.ndarray        # [S + 1, N*Q] predicted labels after 0..S steps
    accuracy: np.ndarray           # [S + 1]

    @property
    def steps(self) -> int:
        return len(self.predictions) - 1

    @property
    def n_way(self) -> int:
        return len(self.class_names)


def has_curves(family) -> bool:
    """One input, one output, regression: each task is a curve y(x), drawn (and clicked on) as such."""
    return family.kind == "regression" and family.input_dim == 1 and family.output_dim == 1


def curve_range(xs: torch.Tensor, span: tuple[float, float] | None) -> tuple[float, float]:
    """``span`` (a family's x range, or a plot's) widened to hold every point; without one, the points padded."""
    low, high = float(xs.min()), float(xs.max())
    if span is not None:
        return min(low, float(span[0])), max(high, float(span[1]))
    pad = max(0.25 * (high - low), 0.5)
    return low - pad, high + pad


def region_grid(points: torch.Tensor, resolution: int = REGION_RESOLUTION):
    """``(gx, gy, grid [1, H*W, 2])``: a grid reaching one unit past the points on every side."""
    low, high = points.min(0).values - 1.0, points.max(0).values + 1.0
    gx = torch.linspace(float(low[0]), float(high[0]), resolution)
    gy = torch.linspace(float(low[1]), float(high[1]), resolution)
    yy, xx = torch.meshgrid(gy, gx, indexing="ij")                    # rows follow y, columns follow x
    return gx, gy, torch.stack([xx.reshape(-1), yy.reshape(-1)], -1).unsqueeze(0)


def regions_view(net, params: Params, grid_axes, support_x: torch.Tensor, support_y: torch.Tensor,
                 accuracy: float, steps: int) -> RegionsView:
    """The class ``params`` predict at every grid point (``grid_axes`` from :func:`region_grid`,
    its grid already in the network's dtype and device), with the support points."""
    gx, gy, grid = grid_axes
    with torch.no_grad():
        labels = net.forward(params, grid).argmax(-1).reshape(len(gy), len(gx))
    sx = support_x.cpu().numpy()
    return RegionsView(gx.numpy(), gy.numpy(), labels.cpu().numpy(), sx[:, 0].copy(), sx[:, 1].copy(),
                       np.asarray(support_y.cpu()), float(accuracy), steps)


def rows_view(model: "LoadedModel", task_index: int, steps: int, seed: int) -> DataView | None:
    """Adapt to K random rows of one meta-test task of a tabular regression family; the curve over
    the input column (one input) or predicted vs true on the task's other rows (several inputs)."""
    family = model.family
    shots = model.config.train.shots
    test = family.held_out()
    usable = [i for i, n in enumerate(test.task_sizes("test")) if n > shots]
    if not usable:
        return None
    index = usable[task_index % len(usable)]
    x, y = test.task_points("test", index)
    generator = torch.Generator().manual_seed(seed + task_index)
    order = torch.randperm(len(x), generator=generator).numpy()
    support, rest = order[:shots], order[shots:]
    dtype = torch.get_default_dtype()

    def tensor(values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(values, dtype=dtype, device=model.device).unsqueeze(0)

    def predict(params: Params, inputs: torch.Tensor) -> np.ndarray:
        return family.denormalize_y(model.predict(inputs, params)[0, :, 0].cpu().double().numpy())

    trajectory = model.trajectory(tensor(family.normalize_x(x[support])),
                                  tensor(family.normalize_y(y[support])[:, None]), steps)
    one_input = family.input_dim == 1
    rows = tensor(family.normalize_x(x[rest]))
    on_rows = [predict(p, rows) for p in trajectory]
    if one_input:
        grid = np.linspace(*family.input_range(), GRID_POINTS)
        inputs = tensor(family.normalize_x(grid[:, None]))
        curves = [predict(p, inputs) for p in trajectory]
    else:
        grid, curves = np.zeros(0), on_rows
    truth = y[rest]
    mse = tuple(float(np.mean((pred - truth) ** 2)) if len(truth) else float("nan")
                for pred in (on_rows[0], on_rows[-1]))
    x_label = family.features[0] if one_input else f"true {family.target}"
    return DataView("curve" if one_input else "scatter", test.task_names("test")[index], x_label,
                    family.target if one_input else f"predicted {family.target}", grid, curves,
                    x[support, 0] if one_input else np.zeros(0), y[support] if one_input else np.zeros(0),
                    x[rest, 0] if one_input else truth, truth, mse)


def display_images(x: torch.Tensor, normalization: dict | None) -> np.ndarray:
    """Network inputs ``[n, C, H, W]`` back to ``uint8`` pixels (``[n, H, W]`` grey, ``[n, H, W, 3]``
    RGB), undoing the family's per-channel standardization; without one, each image is stretched."""
    x = x.detach().cpu().double()
    if normalization and normalization.get("channel_mean") is not None:
        mean = torch.tensor(normalization["channel_mean"], dtype=torch.float64)[:, None, None]
        std = torch.tensor(normalization["channel_std"], dtype=torch.float64)[:, None, None]
        pixels = (x * std + mean) * 255
    else:
        low = x.amin(dim=(1, 2, 3), keepdim=True)
        high = x.amax(dim=(1, 2, 3), keepdim=True)
        pixels = (x - low) / (high - low).clamp_min(1e-12) * 255
    out = pixels.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return np.ascontiguousarray(out[..., 0] if out.shape[-1] == 1 else out)


def episode_view(model: "LoadedModel", batch, steps: int, lr: float | None = None,
                 names: list[str] | tuple[str, ...] | None = None) -> EpisodeView:
    """Adapt to the first episode of ``batch`` for ``steps`` steps (with the run's inner rates, or
    one fixed ``lr``); the query labels predicted after
    each step (the network sees the whole query set at once, as the held-out scores do: its batch
    norm uses that batch's statistics). ``names``: the class behind each label when the episode
    is not the family's own (a folder of images); else the family names them."""
    sx, sy, qx, qy = batch.support_x[:1], batch.support_y[:1], batch.query_x[:1], batch.query_y[:1]
    trajectory = model.trajectory(sx, sy, steps, lr)
    predictions = np.stack([model.predict(qx, p)[0].argmax(-1).cpu().numpy() for p in trajectory])
    truth = qy[0].cpu().numpy()
    accuracy = (predictions == truth[None]).mean(1) if truth.size else np.full(len(predictions), np.nan)
    family = model.family
    if names is None:
        names = family.episode_classes(batch)[0] if hasattr(family, "episode_classes") else \
            [str(i) for i in range(family.output_dim)]
    norm = family.normalization
    return EpisodeView(display_images(sx[0], norm), sy[0].cpu().numpy(), list(names), display_images(qx[0], norm),
                       truth, predictions, accuracy)
