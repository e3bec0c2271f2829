"""Run directories: ``config.json``, ``weights.safetensors``, ``training_state.safetensors``, ``metrics.csv``.

Every file is replaced atomically (:mod:`core.storage.atomic`), so a crash, a power cut or a full
disk never leaves a half-written file; ``metrics.csv`` is :mod:`core.storage.metrics`'s. Weights are safetensors: loading one never executes code (no pickle), and the
format version and shapes are checked first.

A *checkpoint* is one file, the training state: Adam moments, the task sampler, the iteration, the
settings and a copy of the weights. Renaming it into place is the one moment a checkpoint becomes
the resume point, so weights, state and metrics can never come from different iterations:
``metrics.csv`` is append-only, written and fsynced just before (rows past the state's iteration,
left by a crash in between, are cut off on resume); ``weights.safetensors`` and ``config.json``
follow it for the other tools, and a reader that finds the state newer than the weights file (a
crash between the two) takes the state's weights.

Every reader here checks its file against the schema in :mod:`core.storage.schemas` and names the file and
the key it refuses; special files (a FIFO, a device) are refused unopened.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from core.built import Built, build
from core.config import FORMAT_VERSION, ExperimentConfig
from core.errors import CheckpointError, ConfigError
from core.storage.atomic import StorageError, atomic_write, fsync_dir
from core.storage.metrics import METRICS_FILE, MetricsLog, metrics_csv
from core.storage.schemas import RunFileError, check_training_state, config_json_note, expected_state, regular_file

CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.safetensors"
STATE_FILE = "training_state.safetensors"  # optimizer moments + sampler state, for --resume




def weights_bytes(config: ExperimentConfig, weights: dict[str, torch.Tensor], iteration: int | None = None) -> bytes:
    """The weights file; ``iteration`` (when known) lets a reader tell it from an older or newer checkpoint."""
    metadata = {"format_version": str(FORMAT_VERSION), "config": json.dumps(config.to_dict())}
    if iteration is not None:
        metadata["iteration"] = str(iteration)
    return st_save({k: v.detach().cpu().contiguous() for k, v in weights.items()}, metadata=metadata)


EMBEDDED = "weights."   # the training state's copy of the weights: "weights.model.layers.0.weight", ...


def state_bytes(config: ExperimentConfig, weights: dict[str, torch.Tensor], training_state) -> bytes:
    """The training state as one self-contained checkpoint: tensors, the weights and the settings."""
    tensors, metadata = training_state
    tensors = {**{k: v for k, v in tensors.items() if not k.startswith(EMBEDDED)},
               **{EMBEDDED + k: v.detach().cpu().contiguous() for k, v in weights.items()}}
    return st_save(tensors, metadata={**metadata, "format_version": str(FORMAT_VERSION),
                                      "config": json.dumps(config.to_dict())})


class SaveFailed(StorageError):
    """A checkpoint could not be written. ``committed``: the training state (the resume point) was
    saved and only a later file failed; else the previous checkpoint is untouched."""

    def __init__(self, error: StorageError, committed: bool):
        super().__init__(str(error), error.reason)
        self.committed = committed


class Checkpointer:
    """Periodic checkpoints of a command-line run: :meth:`due` every ``every`` seconds (0: only
    when asked), stretched so that saving never takes more than 1% of the time (a save that takes
    ``d`` seconds waits at least ``100 d`` for the next)."""

    BUDGET = 0.01

    def __init__(self, run_dir: str | Path, n_steps: int, every: float, resume_from: int | None = None,
                 clock=time.monotonic, rl: bool = False):
        self.run_dir = Path(run_dir)
        self.log = MetricsLog(run_dir, n_steps, resume=resume_from is not None, upto=resume_from, rl=rl)
        self.every = self.interval = every
        self.saved_iteration = resume_from   # the checkpoint on disk (None: none yet)
        self.last_seconds = 0.0
        self._clock = clock
        self._next = clock() + every

    def add(self, row) -> None:
        self.log.write(row)

    def due(self) -> bool:
        return self.every > 0 and self._clock() >= self._next

    def save(self, config: ExperimentConfig, weights: dict[str, torch.Tensor], training_state) -> None:
        """Metrics, then the training state (the commit), then weights and settings. Raises
        :class:`SaveFailed`; before the commit, the metrics file is cut back and nothing changed."""
        start = self._clock()
        try:
            self._write(config, weights, training_state)
        finally:
            self.last_seconds = self._clock() - start
            self.interval = max(self.every, self.last_seconds / self.BUDGET)
            self._next = self._clock() + self.interval

    def _write(self, config, weights, training_state) -> None:
        iteration = int(training_state[1]["iteration"])
        try:
            self.log.flush()
            atomic_write(self.run_dir / STATE_FILE, state_bytes(config, weights, training_state), sync_dir=False)
        except StorageError as exc:
            self.log.rollback()
            raise SaveFailed(exc, committed=False) from None
        self.log.commit()
        self.saved_iteration = iteration
        try:
            atomic_write(self.run_dir / WEIGHTS_FILE, weights_bytes(config, weights, iteration), sync_dir=False)
            atomic_write(self.run_dir / CONFIG_FILE, (config.to_json() + "\n").encode(), sync_dir=False)
        except StorageError as exc:
            raise SaveFailed(exc, committed=True) from None
        finally:
            fsync_dir(self.run_dir)   # one folder fsync makes the renames survive a power cut


def save_run(run_dir: str | Path, config: ExperimentConfig, weights: dict[str, torch.Tensor],
             metrics_rows: Sequence | None = (), training_state=None) -> Path:
    """Write a run folder. ``metrics_rows=None`` leaves ``metrics.csv`` as it is;
    ``training_state`` is :meth:`MetaTrainer.training_state`'s pair, for resuming."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} exists and is not a folder")
    if metrics_rows is not None:
        atomic_write(run_dir / METRICS_FILE, metrics_csv(metrics_rows))
    iteration = None
    if training_state is not None:
        atomic_write(run_dir / STATE_FILE, state_bytes(config, weights, training_state))
        iteration = training_state[1].get("iteration")
    atomic_write(run_dir / WEIGHTS_FILE, weights_bytes(config, weights, iteration))
    atomic_write(run_dir / CONFIG_FILE, (config.to_json() + "\n").encode())
    return run_dir


def read_weights(path: str | Path) -> tuple[ExperimentConfig, dict[str, torch.Tensor]]:
    """Read a weights file written by :func:`save_run`, checking version, config and shapes."""
    config, tensors, _, _ = _read_weights(path)
    return config, tensors


def read_weights_at(path: str | Path) -> tuple[ExperimentConfig, dict[str, torch.Tensor], int | None]:
    """:func:`read_weights` and the iteration the weights are from (None when the file does not say):
    a run's metrics can be far ahead of its last checkpoint."""
    config, tensors, metadata, _ = _read_weights(path)
    iteration = str(metadata.get("iteration", ""))
    return config, tensors, int(iteration) if iteration.isdigit() else None


def _read_weights(path: str | Path, known: Built | None = None) -> tuple[ExperimentConfig, dict[str, torch.Tensor],
                                                                         dict[str, str], Built]:
    """Settings, tensors, metadata and what the settings build (``known`` when it is of the same
    experiment), the tensors checked against it."""
    path = regular_file(path, "weights file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        tensors = st_load(data)
        metadata = _metadata(data)
    except (SafetensorError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path} is not a valid safetensors weights file (truncated or corrupted?): {exc}") from None
    config = _stored_config(path, metadata)
    built = built_for(path, config, known)
    check_shapes(path, built, tensors)
    return config, tensors, metadata, built


def _stored_config(path: Path, metadata: dict[str, str]) -> ExperimentConfig:
    version = metadata.get("format_version")
    if version is None or not version.isdigit():
        raise CheckpointError(f"{path} has no MAML Explorer format version; it was not written by this app")
    if int(version) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {version}; this app reads up to {FORMAT_VERSION}: update the app")
    try:
        config = ExperimentConfig.from_json(metadata.get("config", ""))
        for section in (config.model, config.algorithm, config.train):   # the family: when it is built
            section.validate()
    except ConfigError as exc:
        raise RunFileError(path, exc.field, f"the stored configuration is invalid: {exc.message}") from None
    return config


def built_for(path, config: ExperimentConfig, known: Built | None = None) -> Built:
    """What ``config`` (the settings stored in ``path``) builds, for checking the file's tensors:
    ``known`` under ``config`` when it is a build of the same experiment (only a rate, length or
    device differs), else a new build; settings that cannot be built are the file's fault."""
    if known is not None and not config.continue_changes(known.config):
        return known.with_config(config)
    try:
        return build(config)
    except ConfigError as exc:
        raise RunFileError(path, exc.field, f"the stored configuration is invalid: {exc.message}") from None


def check_shapes(path, built: Built, tensors: dict[str, torch.Tensor]) -> None:
    """``tensors`` are weights of ``built``'s network: every ``model.*`` tensor there (learned inner
    rates may be missing: a .pt file has none), of its shape, finite, nothing else."""
    config, expected = built.config, built.shapes()
    for name, shape in expected.items():   # learned inner rates may be missing (a .pt file has none)
        got = tensors.get(name)
        if got is None and name.startswith("model."):
            raise CheckpointError(f"{path}: missing tensor {name}")
        if got is not None and tuple(got.shape) != tuple(shape):
            raise CheckpointError(f"{path}: {name} has shape {tuple(got.shape)}, the model needs {tuple(shape)}")
    for name, t in tensors.items():
        if name not in expected:
            raise CheckpointError(f"{path}: unexpected tensor {name}; it is not a {config.algorithm.name} "
                                  f"{config.model.name} network of this run's shape")
        if not t.is_floating_point():
            raise CheckpointError(f"{path}: {name} holds {t.dtype} values, not floating point weights")
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
    if not os.path.lexists(path):
        raise CheckpointError(f"{run_dir} has no {STATE_FILE}; only runs saved by 'maml-gui train' can be resumed")
    regular_file(path, "training state")
    try:
        data = path.read_bytes()
        return st_load(data), _metadata(data)
    except (OSError, SafetensorError, ValueError) as exc:
        raise RunFileError(path, "", f"cannot be read (truncated or corrupted?): {exc}") from None


def read_training_state(run_dir: str | Path, iteration: int,
                        known: Built | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
    """:func:`load_training_state` when the folder has one saved at ``iteration`` (the weights'
    iteration); otherwise, or when it cannot be read, None: training would then restart Adam.
    ``known``: what the run's weights built, checked against rather than building again."""
    if not (Path(run_dir) / STATE_FILE).is_file():
        return None
    try:
        tensors, metadata = _checked_state(run_dir, known)
    except (CheckpointError, ConfigError):
        return None
    return (tensors, metadata) if metadata.get("iteration") == str(iteration) else None


def _checked_state(run_dir, known: Built | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The training state, checked against the network its own settings build (as a trainer checks
    it; ``known`` when it is a build of the same experiment)."""
    path = Path(run_dir) / STATE_FILE
    tensors, metadata = load_training_state(run_dir)
    config = _stored_config(path, metadata)
    shapes, extra, optional = expected_state(built_for(path, config, known))
    check_training_state(path, tensors, metadata, shapes, extra, skip=EMBEDDED, optional=optional)
    return tensors, metadata


def state_problem(run_dir) -> str | None:
    """Why a run folder's training state cannot continue the run exactly (None: it can, or there is
    none), for a window that opens the run from its weights instead and says why."""
    if not os.path.lexists(Path(run_dir) / STATE_FILE):
        return None
    try:
        _checked_state(run_dir)
    except (CheckpointError, ConfigError) as exc:
        return str(exc)
    return None


def load_run(run_dir: str | Path) -> tuple[ExperimentConfig, dict[str, torch.Tensor]]:
    """A run folder's (or weights file's) settings and weights: those of the training state when a
    crash came between saving it and the weights file, so weights and state always agree."""
    built, weights = load_run_built(run_dir)
    return built.config, weights


def load_run_built(run_dir: str | Path) -> tuple[Built, dict[str, torch.Tensor]]:
    """:func:`load_run` with what the settings built to check the weights, to hand on."""
    run_dir = Path(run_dir)
    path = run_dir / WEIGHTS_FILE if run_dir.is_dir() else run_dir
    if not path.exists():
        raise CheckpointError(f"{run_dir} holds no {WEIGHTS_FILE}; is it a run folder?")
    config, weights, metadata, built = _read_weights(path)
    if run_dir.is_dir() and str(metadata.get("iteration", "")).isdigit():
        weights = _newer_state_weights(run_dir, built, int(metadata["iteration"])) or weights
    return built, weights


def _newer_state_weights(run_dir: Path, built: Built, iteration: int) -> dict[str, torch.Tensor] | None:
    try:
        tensors, metadata = load_training_state(run_dir)
        if not (str(metadata.get("iteration", "")).isdigit() and int(metadata["iteration"]) > iteration):
            return None
        embedded = _embedded(tensors)
        if not embedded or _stored_config(run_dir / STATE_FILE, metadata).continue_changes(built.config):
            return None
        check_shapes(run_dir / STATE_FILE, built, embedded)
        return embedded
    except (CheckpointError, ConfigError):
        return None


def _embedded(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(EMBEDDED):]: v for k, v in tensors.items() if k.startswith(EMBEDDED)}


def load_checkpoint(run_dir: str | Path):
    """The resume point of a run folder: ``(config, weights, state tensors, state metadata)``, all
    of one iteration (``metadata["iteration"]``), taken from the training state when it holds the
    weights (every checkpoint since crash-safe saving), else from a weights file of the same iteration."""
    built, weights, tensors, metadata = load_checkpoint_built(run_dir)
    return built.config, weights, tensors, metadata


def load_checkpoint_built(run_dir: str | Path):
    """:func:`load_checkpoint` with what the settings built to check the weights (in place of the
    settings, which it holds), to hand on: ``(built, weights, state tensors, state metadata)``."""
    run_dir = Path(run_dir)
    state_path = run_dir / STATE_FILE
    if not os.path.lexists(state_path):
        if run_dir.is_dir() and not (run_dir / WEIGHTS_FILE).exists():
            raise CheckpointError(f"{run_dir} holds no checkpoint to resume (no {STATE_FILE}): the run stopped before "
                                  "its first save, or this is not a run folder; start it again with --force")
        load_run(run_dir)   # the clearer message when it is not a run folder at all
        raise CheckpointError(f"{run_dir} has no {STATE_FILE}; only runs saved by 'maml-gui train' can be resumed")
    try:
        tensors, metadata = load_training_state(run_dir)
        if not str(metadata.get("iteration", "")).isdigit():
            raise RunFileError(state_path, "iteration", "no iteration count; it was not written by this app")
        embedded = _embedded(tensors)
        if embedded and "config" in metadata:
            config, weights = _stored_config(state_path, metadata), embedded
            built = built_for(state_path, config)
            check_shapes(state_path, built, weights)
    except CheckpointError as exc:
        raise with_resume_hint(exc, run_dir) from None
    if not (embedded and "config" in metadata):
        config, weights, weights_meta, built = _read_weights(run_dir / WEIGHTS_FILE)
        if weights_meta.get("iteration", metadata["iteration"]) != metadata["iteration"]:
            raise CheckpointError(f"{run_dir}: {WEIGHTS_FILE} is from iteration {weights_meta['iteration']} but "
                                  f"{STATE_FILE} from iteration {metadata['iteration']}; they cannot be resumed together")
    return built, weights, {k: v for k, v in tensors.items() if not k.startswith(EMBEDDED)}, metadata


def with_resume_hint(exc: CheckpointError, run_dir) -> CheckpointError:
    """``exc`` (about a run's training state) completed with what the run still offers when its
    weights file is intact: refusing to resume is not the end of the run."""
    try:
        _read_weights(Path(run_dir) / WEIGHTS_FILE)
    except (CheckpointError, ConfigError):
        return exc
    exc.args = (f"{exc}; the run cannot be resumed exactly, but its weights are intact: `maml-gui evaluate "
                f"{run_dir}`, export and adapt still work, and the window's Open continues training from them "
                "(with a fresh Adam state)",)
    return exc


def folder_notes(run_dir, source: ExperimentConfig | Built, weights_file: bool = False) -> list[str]:
    """Warnings about a run folder's other files when the one a command reads is intact: a damaged
    or edited ``config.json`` (the weights' own settings are used) and, with ``weights_file`` (a
    resume, which takes the checkpoint's copy of the weights), a damaged weights file. ``source``:
    the settings read, or what they built (then nothing is built again to check the others)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    config, known = (source.config, source) if isinstance(source, Built) else (source, None)
    notes = [n for n in (config_json_note(run_dir, config, known),) if n]
    if weights_file:
        try:
            stored = _read_weights(run_dir / WEIGHTS_FILE, known)[0]
        except (CheckpointError, ConfigError) as exc:
            notes.append(f"{exc}; the checkpoint's own copy of the weights is used (its next save writes the file "
                         "again)")
        else:
            changed = config.continue_changes(stored)   # not a rate or length a resume may change
            if changed:   # a whole weights file of another run, copied in
                notes.append(f"{run_dir / WEIGHTS_FILE} holds the weights of other settings than the checkpoint's "
                             f"({', '.join(changed[:3])}{', …' if len(changed) > 3 else ''}); the checkpoint's own "
                             "copy is used and its next save replaces the file")
    return notes


def remove_leftovers(run_dir: str | Path) -> None:
    """Delete the temporary files a killed writer left (call only while holding the folder's lock)."""
    run_dir = Path(run_dir)
    names = [f".{name}.*.tmp" for name in (CONFIG_FILE, WEIGHTS_FILE, STATE_FILE, METRICS_FILE)]
    for path in [p for pattern in names for p in run_dir.glob(pattern)] + [run_dir / f".{METRICS_FILE}.partial"]:
        try:
            path.unlink()
        except OSError:
            pass
