"""A project: the session's folder on disk, so that no run is lost when the window closes.

Layout::

    project.json               the run order, names, statuses, the current and compared runs,
                               and the settings being edited
    runs/007-maml-sinusoid/    one run folder each, in the format ``maml-gui train`` writes
                               (config.json, weights.safetensors, training_state.safetensors,
                               metrics.csv) plus adaptation.json (the held-out scores last shown)

Qt-free: the session hands plain snapshots to :meth:`Project.write_run` on a job thread and
reads everything back with :meth:`Project.load`. Every file is written atomically (temporary
name + rename, :func:`core.storage.atomic.atomic_write`), so a crash leaves the previous version.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.storage.atomic import atomic_write
from core.storage.checkpoint import load_run_built, load_training_state, read_training_state, save_run
from core.storage.metrics import METRICS_FILE, append_metrics_table, metrics_table_csv, read_metrics
from core.config import ExperimentConfig
from core.errors import MamlError
from core.storage.lock import RunLock
from core.storage.schemas import read_config_file
from core.trained.loaded_model import AdaptationSnapshot

PROJECT_FILE = "project.json"
ADAPTATION_FILE = "adaptation.json"
RUNS_DIR = "runs"
FORMAT = 1


class ProjectError(MamlError):
    """The project folder cannot be read or written; the message names the file and why."""


@dataclass(frozen=True)
class RunSnapshot:
    """What is written of one run: plain data copied on the GUI thread, written on a job thread."""

    folder: str                      # relative to the project folder
    config: ExperimentConfig
    weights: dict | None
    training_state: tuple | None
    metrics: np.ndarray              # [rows, 4 + steps]: iteration, meta_loss, grad_norm, seconds, step losses
    adaptation: AdaptationSnapshot | None
    append: bool = False             # ``metrics`` holds only the rows since the last write: appended, not rewritten


@dataclass
class StoredRun:
    """One run as read back: its project entry plus the run folder's contents."""

    entry: dict
    config: ExperimentConfig
    weights: dict | None
    metrics: np.ndarray | None
    training_state: tuple | None
    adaptation: AdaptationSnapshot | None


@dataclass
class LoadedProject:
    index: dict
    runs: list[StoredRun] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # runs that could not be read, one line each
    warnings: list[str] = field(default_factory=list)   # e.g. a crashed window's lock was taken over
    external: list[dict] = field(default_factory=list)  # followed runs: entries naming a folder elsewhere


def project_index(runs, followed: dict, *, current, compared: list, editing: ExperimentConfig, sweeps) -> dict:
    """``project.json`` (less its ``format``): the runs with a folder here, then the runs followed
    elsewhere (``followed``: run id -> their folder), the current and compared run ids, the settings
    being edited and the sweep folders still watched. :meth:`Project.load` reads it back."""
    def note(run) -> dict:
        return {"note": run.note} if run.note else {}

    return {"runs": [{"id": r.run_id, "name": r.name, "folder": r.folder, "status": r.status, "origin": r.origin,
                      "weights_iteration": r.weights_iteration, **note(r)} for r in runs if r.folder]
            + [{"id": r.run_id, "name": r.name, "external": str(followed[r.run_id]), "origin": "followed", **note(r)}
               for r in runs if r.run_id in followed],
            "current": current,
            "compared": compared,
            "editing": editing.to_dict(),
            "sweeps": [str(f) for f in sweeps]}


def run_folder_name(run_id: int, name: str) -> str:
    """``runs/007-maml-sinusoid``: sortable, readable, safe on every file system."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name.split(" · ", 1)[-1]).strip("-").lower()[:40] or "run"
    return f"{RUNS_DIR}/{run_id:03d}-{slug}"


class Project:
    """A project folder. While a window has it open, the folder and each of its run folders hold a
    lock (``core.storage.lock``), so a second window or a ``maml-gui train`` on one of them is refused
    instead of corrupting it."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._locks: dict[str, RunLock] = {}
        self._guard = threading.Lock()   # runs are written on a job thread

    def lock(self, folder: str = "") -> str | None:
        """Hold the lock of the project (``""``) or of one of its run folders, if not held yet;
        returns a warning when a crashed process's lock was taken over. Raises ``RunLocked``."""
        with self._guard:
            if folder in self._locks:
                return None
            lock = RunLock(self.folder / folder if folder else self.folder)
            warning = lock.acquire("MAML Explorer window")
            self._locks[folder] = lock
            return warning

    def release(self, folder: str | None = None) -> None:
        """Give up one run folder's lock, or (None) every lock this project holds."""
        with self._guard:
            names = list(self._locks) if folder is None else [folder] if folder in self._locks else []
            for name in names:
                self._locks.pop(name).release()

    @property
    def name(self) -> str:
        return self.folder.name

    def exists(self) -> bool:
        return (self.folder / PROJECT_FILE).is_file()

    # -- writing ----------------------------------------------------------------------------
    def write_index(self, index: dict) -> None:
        self.lock()
        data = json.dumps({"format": FORMAT, **index}, indent=1, allow_nan=False) + "\n"
        atomic_write(self.folder / PROJECT_FILE, data.encode())

    def write_run(self, snap: RunSnapshot) -> None:
        """The run folder as ``maml-gui train`` writes a checkpoint: metrics first (appended, or the
        whole table), then the training state (the commit), weights and settings, each atomically."""
        self.lock(snap.folder)
        folder = self.folder / snap.folder
        if snap.append:
            append_metrics_table(folder, snap.metrics)
        elif len(snap.metrics):
            atomic_write(folder / METRICS_FILE, metrics_table_csv(snap.metrics))
        if snap.weights:
            save_run(folder, snap.config, snap.weights, None, training_state=snap.training_state)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write(folder / "config.json", (snap.config.to_json() + "\n").encode())
        if snap.adaptation is not None:
            atomic_write(folder / ADAPTATION_FILE, (json.dumps(snapshot_to_dict(snap.adaptation)) + "\n").encode())

    def remove_run(self, folder: str) -> None:
        self.release(folder)
        path = (self.folder / folder).resolve()
        if self.folder.resolve() in path.parents:   # never outside the project
            shutil.rmtree(path, ignore_errors=True)

    # -- reading ----------------------------------------------------------------------------
    def load(self) -> LoadedProject:
        """Every run the index names; a run that cannot be read is reported and skipped, never fatal.
        Takes the project's lock first: raises ``RunLocked`` when another window has it open."""
        taken_over = self.lock()
        file = self.folder / PROJECT_FILE
        try:
            index = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return LoadedProject({"runs": []}, warnings=[taken_over] if taken_over else [])
        except (OSError, ValueError) as exc:
            raise ProjectError(f"cannot read {file}: {exc}") from None
        if not isinstance(index, dict) or not isinstance(index.get("runs", []), list):
            raise ProjectError(f"{file} is not a MAML Explorer project file")
        loaded = LoadedProject(index, warnings=[taken_over] if taken_over else [])
        for entry in index.get("runs", []):
            name = entry.get("name", entry.get("folder", "?")) if isinstance(entry, dict) else "?"
            if isinstance(entry, dict) and entry.get("external"):
                loaded.external.append(entry)
                continue
            try:
                loaded.runs.append(self._load_run(entry))
            except (MamlError, OSError, ValueError, KeyError, TypeError) as exc:
                loaded.problems.append(f"{name}: {exc}")
                continue
            try:
                self.lock(entry["folder"])
            except MamlError as exc:   # opened, but changes to it cannot be saved while the other writer runs
                loaded.problems.append(f"{name}: {exc}")
        return loaded

    def _load_run(self, entry: dict) -> StoredRun:
        folder = self.folder / entry["folder"]
        built = None
        if (folder / "weights.safetensors").is_file():
            built, weights = load_run_built(folder)
            config = built.config
        else:
            # the shared reader: a FIFO there is refused unopened (reading it would hang the window)
            config, weights = read_config_file(folder / "config.json", validate=False), None
        metrics = read_metrics(folder)
        iteration = int(metrics[-1, 0]) if metrics is not None and len(metrics) else 0
        state = None
        if weights:   # a crash may leave metrics rows past the checkpoint: continuing drops them
            state = read_training_state(folder, iteration, built) or _earlier_state(folder, iteration)
        adaptation = None
        if (folder / ADAPTATION_FILE).is_file():
            try:
                adaptation = snapshot_from_dict(json.loads((folder / ADAPTATION_FILE).read_text(encoding="utf-8")))
            except (ValueError, KeyError, TypeError):
                adaptation = None   # only a view of the run: it is recomputed from the weights
        return StoredRun(entry, config, weights, metrics, state, adaptation)


def _earlier_state(folder: Path, iteration: int):
    """The folder's training state when it is from at or before ``iteration`` (else None)."""
    try:
        tensors, metadata = load_training_state(folder)
        return (tensors, metadata) if int(metadata.get("iteration", -1)) <= iteration else None
    except (MamlError, ValueError):
        return None


def _finite(values) -> list:
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def snapshot_to_dict(s: AdaptationSnapshot) -> dict:
    return {"iteration": int(s.iteration), "metric": s.metric, "steps": [int(v) for v in s.steps],
            "series": {name: {"mean": _finite(m), "ci": _finite(c)} for name, (m, c) in s.series.items()},
            "baseline_iterations": int(s.baseline_iterations),
            "diverged": {name: [int(v) for v in counts] for name, counts in s.diverged.items()},
            "tasks": int(s.tasks)}


def snapshot_from_dict(d: dict) -> AdaptationSnapshot:
    """The inverse of :func:`snapshot_to_dict`; files written before the diverged counts existed
    load with none (their means are NaN wherever a task's loss was not finite)."""
    def arr(values):
        return np.array([np.nan if v is None else v for v in values], dtype=float)

    series = {name: (arr(v["mean"]), arr(v["ci"])) for name, v in d["series"].items()}
    diverged = {name: np.array(v, dtype=int) for name, v in (d.get("diverged") or {}).items()}
    return AdaptationSnapshot(int(d["iteration"]), str(d["metric"]), np.array(d["steps"], dtype=int), series,
                              int(d.get("baseline_iterations", 0)), diverged, int(d.get("tasks", 0)))
