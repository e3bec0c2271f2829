"""Run directories: ``config.json``, ``weights.safetensors``, ``metrics.csv``.

Every file is written to a temporary name in the same folder and renamed into place, so a
crash or a full disk never leaves a half-written file. Weights are safetensors: loading one
never executes code (no pickle), and the format version and shapes are checked first.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import FORMAT_VERSION, ExperimentConfig
from .errors import CheckpointError, ConfigError
from .models import build_net

CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE = "config.json", "weights.safetensors", "metrics.csv"
STATE_FILE = "training_state.safetensors"  # optimizer moments + sampler state, for --resume


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file + rename; on failure nothing is left behind."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise CheckpointError(f"cannot write to {path.parent}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise CheckpointError(f"cannot write {path}: {exc.strerror or exc}") from None


def weights_bytes(config: ExperimentConfig, weights: dict[str, torch.Tensor]) -> bytes:
    metadata = {"format_version": str(FORMAT_VERSION), "config": json.dumps(config.to_dict())}
    return st_save({k: v.detach().cpu().contiguous() for k, v in weights.items()}, metadata=metadata)


METRIC_COLUMNS = ("iteration", "meta_loss", "grad_norm", "seconds")


def _header(n_steps: int) -> list[str]:
    return [*METRIC_COLUMNS, *(f"step_loss_{s}" for s in range(n_steps))]


def _row(r) -> list:
    return [r.iteration, repr(r.meta_loss), repr(r.grad_norm), f"{r.seconds:.6f}", *(repr(x) for x in r.step_losses)]


def metrics_csv(rows: Iterable) -> bytes:
    """One row per iteration; ``step_loss_s`` columns for the query loss after each inner step."""
    rows = list(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_header(max((len(r.step_losses) for r in rows), default=0)))
    writer.writerows(_row(r) for r in rows)
    return buf.getvalue().encode()


def metrics_table_csv(table: np.ndarray) -> bytes:
    """:func:`metrics_csv` of a ``[rows, 4 + steps]`` table in :func:`read_metrics`' columns, byte for
    byte, about 3x faster: a window saving a long run holds the GIL for less time."""
    table = np.asarray(table, dtype=np.float64)
    steps = table.shape[1] - len(METRIC_COLUMNS) if table.ndim == 2 and table.size else 0
    lines = [",".join(_header(steps))]
    lines += [f"{int(r[0])},{r[1]!r},{r[2]!r},{r[3]:.6f}" + "".join(f",{v!r}" for v in r[4:]) for r in table.tolist()]
    return ("\n".join(lines) + "\n").encode()


def read_metrics(run_dir: str | Path) -> np.ndarray | None:
    """A run folder's ``metrics.csv`` as ``[rows, 4 + steps]`` (the columns :func:`metrics_csv`
    writes), or None when there is none or it is not one of ours: the metrics are optional."""
    path = Path(run_dir) / METRICS_FILE
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], [r for r in rows[1:] if r]
        if len(header) <= len(METRIC_COLUMNS) or header != _header(len(header) - len(METRIC_COLUMNS)) or not body:
            return None
        data = np.array(body, dtype=float)
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    return data if data.ndim == 2 and data.shape[1] == len(header) else None


class MetricsLog:
    """Streams metric rows to a hidden temporary file and renames it into place on ``close()``,
    so a long command-line run keeps constant memory and ``metrics.csv`` is never half-written."""

    def __init__(self, run_dir: str | Path, n_steps: int, resume: bool = False):
        self.path = Path(run_dir) / METRICS_FILE
        self.tmp = self.path.with_name(f".{METRICS_FILE}.partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            previous = self.path.read_text() if resume and self.path.exists() else ""
            self._file = open(self.tmp, "w", newline="")
        except OSError as exc:
            raise CheckpointError(f"cannot write to {self.path.parent}: {exc.strerror or exc}") from None
        self._writer = csv.writer(self._file, lineterminator="\n")
        if previous:
            self._file.write(previous)
        else:
            self._writer.writerow(_header(n_steps))

    def write(self, row) -> None:
        self._writer.writerow(_row(row))

    def close(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.tmp, self.path)
        except OSError as exc:
            raise CheckpointError(f"cannot write {self.path}: {exc.strerror or exc}") from None


def save_run(run_dir: str | Path, config: ExperimentConfig, weights: dict[str, torch.Tensor],
             metrics_rows: Sequence | None = (), training_state=None) -> Path:
    """Write a run folder. ``metrics_rows=None`` leaves ``metrics.csv`` to a :class:`MetricsLog`;
    ``training_state`` is :meth:`MetaTrainer.training_state`'s pair, for resuming."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} exists and is not a folder")
    atomic_write(run_dir / WEIGHTS_FILE, weights_bytes(config, weights))
    if training_state is not None:
        tensors, metadata = training_state
        atomic_write(run_dir / STATE_FILE, st_save(tensors, metadata={**metadata, "format_version": str(FORMAT_VERSION)}))
    if metrics_rows is not None:
        atomic_write(run_dir / METRICS_FILE, metrics_csv(metrics_rows))
    atomic_write(run_dir / CONFIG_FILE, (config.to_json() + "\n").encode())
    return run_dir


def read_weights(path: str | Path) -> tuple[ExperimentConfig, dict[str, torch.Tensor]]:
    """Read a weights file written by :func:`save_run`, checking version, config and shapes."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        tensors = st_load(data)
        metadata = _metadata(data)
    except (SafetensorError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path} is not a valid safetensors weights file (truncated or corrupted?): {exc}") from None
    version = metadata.get("format_version")
    if version is None or not version.isdigit():
        raise CheckpointError(f"{path} has no MAML Explorer format version; it was not written by this app")
    if int(version) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {version}; this app reads up to {FORMAT_VERSION}: update the app")
    try:
        config = ExperimentConfig.from_json(metadata.get("config", ""))
    except ConfigError as exc:
        raise CheckpointError(f"{path}: the stored configuration is invalid: {exc}") from None
    check_shapes(path, config, tensors)
    return config, tensors


def check_shapes(path, config: ExperimentConfig, tensors: dict[str, torch.Tensor]) -> None:
    from .tasks import build_family

    family = build_family(config.family)
    net = build_net(config.model, family.input_dim, family.output_dim)
    expected = net.init(torch.Generator().manual_seed(0))
    for name, ref in expected.items():
        got = tensors.get(f"model.{name}")
        if got is None:
            raise CheckpointError(f"{path}: missing tensor model.{name}")
        if tuple(got.shape) != tuple(ref.shape):
            raise CheckpointError(f"{path}: model.{name} has shape {tuple(got.shape)}, the model needs {tuple(ref.shape)}")
    for name, t in tensors.items():
        if not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: tensor {name} holds NaN or inf")


def _metadata(data: bytes) -> dict[str, str]:
    if len(data) < 8:
        raise ValueError("file too short")
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    return header.get("__metadata__", {}) or {}


def load_training_state(run_dir: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = Path(run_dir) / STATE_FILE
    try:
        data = path.read_bytes()
        return st_load(data), _metadata(data)
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir} has no {STATE_FILE}; only runs saved by 'maml-gui train' can be resumed") from None
    except (OSError, SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{path} cannot be read (truncated or corrupted?): {exc}") from None


def read_training_state(run_dir: str | Path, iteration: int) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
    """:func:`load_training_state` when the folder has one saved at ``iteration`` (the weights'
    iteration); otherwise, or when it cannot be read, None: training would then restart Adam."""
    if not (Path(run_dir) / STATE_FILE).is_file():
        return None
    try:
        tensors, metadata = load_training_state(run_dir)
    except CheckpointError:
        return None
    return (tensors, metadata) if metadata.get("iteration") == str(iteration) else None


def load_run(run_dir: str | Path) -> tuple[ExperimentConfig, dict[str, torch.Tensor]]:
    run_dir = Path(run_dir)
    path = run_dir / WEIGHTS_FILE if run_dir.is_dir() else run_dir
    if not path.exists():
        raise CheckpointError(f"{run_dir} holds no {WEIGHTS_FILE}; is it a run folder?")
    return read_weights(path)
