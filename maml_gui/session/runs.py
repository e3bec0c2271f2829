"""The runs of a session, kept so they can be compared, exported and overlaid after they end.

Qt-free: a run is its configuration, a bounded metric history and the last good weights.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from core.config import ExperimentConfig
from core.training.trainer import StepMetrics

HISTORY_LIMIT = 50_000   # rows kept per run; past it every other row is dropped (stride doubles)


class History:
    """Per-iteration metrics in growing numpy buffers, decimated so memory stays bounded.

    Rows are kept when ``iteration % stride == 0``; each time the buffer passes ``limit`` rows
    the stride doubles and the rows it no longer keeps are dropped, so a run of any length keeps
    between ``limit / 2`` and ``limit`` evenly spaced rows (the last row is kept aside as well).
    """

    def __init__(self, limit: int = HISTORY_LIMIT):
        self.limit = limit
        self.stride = 1
        self._data: np.ndarray | None = None    # columns: iteration, meta_loss, grad_norm, seconds, step losses..., wall_time
        self._n = 0
        self.last: np.ndarray | None = None
        self.started: float | None = None      # clock time its first timed row's step began (relative time's zero)

    def __len__(self) -> int:
        return self._n

    def append(self, iterations, meta_losses, grad_norms, seconds, step_losses, wall_times=None) -> None:
        self.extend(rows_of(iterations, meta_losses, grad_norms, seconds, step_losses, wall_times))

    def extend(self, table: np.ndarray) -> None:
        """Append rows in ``metrics.csv``'s columns (as :func:`rows_of` makes them, or as read back)."""
        if len(table) == 0:
            return
        self.last = table[-1].copy()
        if self.started is None:   # before thinning: the very first timed row, whatever the stride
            timed = np.flatnonzero(np.isfinite(table[:, -1]))
            if len(timed):
                self.started = float(table[timed[0], -1] - max(table[timed[0], 3], 0.0))
        rows = table[table[:, 0].astype(np.int64) % self.stride == 0]
        if self._data is None:
            self._data = np.empty((max(1024, len(rows)), rows.shape[1]))
        if rows.shape[1] != self._data.shape[1]:
            raise ValueError("the number of inner steps changed within a run")
        need = self._n + len(rows)
        if need > len(self._data):
            grown = np.empty((max(need, 2 * len(self._data)), self._data.shape[1]))
            grown[:self._n] = self._data[:self._n]
            self._data = grown
        self._data[self._n:need] = rows
        self._n = need
        while self._n > self.limit:
            self.stride *= 2
            kept = self._data[:self._n][self._data[:self._n, 0].astype(np.int64) % self.stride == 0]
            self._n = len(kept)
            self._data[:self._n] = kept

    def _column(self, index: int) -> np.ndarray:
        return np.empty(0) if self._data is None else self._data[:self._n, index]

    @property
    def iterations(self) -> np.ndarray:
        return self._column(0)

    @property
    def meta_losses(self) -> np.ndarray:
        return self._column(1)

    @property
    def grad_norms(self) -> np.ndarray:
        return self._column(2)

    @property
    def seconds(self) -> np.ndarray:
        """How long each kept meta-iteration took (``metrics.csv``'s ``seconds``: the step alone)."""
        return self._column(3)

    @property
    def step_losses(self) -> np.ndarray:
        return np.empty((0, 0)) if self._data is None else self._data[:self._n, 4:-1]

    @property
    def wall_times(self) -> np.ndarray:
        """When each kept meta-iteration ended, seconds since the epoch (``metrics.csv``'s ``wall_time``;
        NaN in rows of a version before it)."""
        return self._column(-1)

    def has_wall_time(self) -> bool:
        """Whether any kept row knows its clock time (runs of a version before ``wall_time`` do not)."""
        return self.started is not None

    def table(self) -> np.ndarray:
        """A copy of the kept rows plus the last one, in ``metrics.csv``'s column order
        (iteration, meta_loss, grad_norm, seconds, step losses, wall_time): cheap to hand to a writer thread."""
        table = np.empty((0, 0)) if self._data is None else self._data[:self._n].copy()
        if self.last is not None and (not len(table) or table[-1, 0] != self.last[0]):
            table = self.last[None].copy() if not len(table) else np.vstack([table, self.last[None]])
        return table

    def rows(self) -> list[StepMetrics]:
        """:meth:`table` as the engine's rows, for ``save_run``'s ``metrics.csv``."""
        return [StepMetrics(int(r[0]), float(r[1]), tuple(float(v) for v in r[4:-1]), float(r[2]), float(r[3]),
                            wall_time=float(r[-1])) for r in self.table()]

    def truncated(self, iteration: int) -> "History":
        """A copy without the rows past ``iteration`` (a run continued from a checkpoint repeats them);
        a new object, so plots that cache a history's smoothing start over."""
        table = self.table()
        copy = History(self.limit)
        copy.stride = self.stride
        copy.started = self.started
        if len(table):
            copy.extend(table[table[:, 0] <= iteration])
        return copy



def rows_of(iterations, meta_losses, grad_norms, seconds, step_losses, wall_times=None) -> np.ndarray:
    """One float64 table in ``metrics.csv``'s columns from a chunk's columns (no ``wall_times``: NaN)."""
    iterations = np.asarray(iterations, np.float64)
    wall = np.full(len(iterations), np.nan) if wall_times is None else wall_times
    return np.column_stack([iterations, meta_losses, grad_norms, seconds,
                            np.asarray(step_losses, np.float64), wall]).astype(np.float64, copy=False)


@dataclass
class RunRecord:
    run_id: int
    name: str
    config: ExperimentConfig
    history: History = field(default_factory=History)
    weights: dict | None = None       # last good snapshot (detached CPU tensors)
    weights_iteration: int = 0
    training_state: tuple[dict, dict] | None = None   # Adam moments etc. of weights_iteration, to resume exactly
    status: str = "starting"          # starting | running | paused | stopped | completed | failed | opened | interrupted
    error: str | None = None
    device: str = ""
    origin: str = "trained"           # trained here, or "opened" from a file (Start then continues it)
    folder: str = ""                  # its run folder inside the project ("" until first written)
    adaptation: object = None         # the latest held-out scores (AdaptationSnapshot), for plots and the table
    rate: float = 0.0                 # recent meta-iterations per second while training
    total: int = 0                    # the iteration count it trains to
    note: str = ""                    # the user's free text about it (saved in project.json)

    @property
    def iteration(self) -> int:
        return 0 if self.history.last is None else int(self.history.last[0])

    @property
    def checkpoint_iteration(self) -> int | None:
        """The iteration its saved training state resumes from exactly, or None without one."""
        if not self.weights or self.training_state is None:
            return None
        return int(self.training_state[1]["iteration"])

    @property
    def final_loss(self) -> float | None:
        return None if self.history.last is None else float(self.history.last[1])

    @property
    def held_out(self) -> tuple[float, str] | None:
        """The meta-learned network's held-out score after its last adaptation step and the metric
        ("mse" or "accuracy"), or None before it was scored."""
        a = self.adaptation
        series = None if a is None else a.series.get("meta-learned")
        if series is None or not len(series[0]) or not np.isfinite(series[0][-1]):
            return None
        return float(series[0][-1]), a.metric


def hyperparameters(config: ExperimentConfig) -> dict[str, float | int | str]:
    """The settings a run list compares runs by, as TensorBoard's hyper-parameter table does: only
    those the run uses (a meta-RL run has no shots; its TRPO step no meta learning rate)."""
    a, t = config.algorithm, config.train
    values = {"inner lr": a.inner_lr, "steps": a.inner_steps, "batch": t.meta_batch, "seed": t.seed}
    if not config.is_rl:
        return {**values, "meta lr": t.meta_lr, "K": t.shots}
    rl = config.rl
    values.update({"traj.": rl.rollouts, "outer": rl.outer})
    values.update({"max KL": rl.max_kl} if rl.outer == "trpo" else {"meta lr": t.meta_lr})
    return values


def unused_settings(config: ExperimentConfig) -> dict[str, str]:
    """Why a setting left out of :func:`hyperparameters` means nothing for this run (a blank cell's tooltip)."""
    if not config.is_rl:
        why = "a supervised run samples no trajectories"
        return {"traj.": why, "outer": f"{why}: its outer step is the meta-optimiser's", "max KL": why}
    return {"K": "a meta-RL run has no support set: it adapts on the trajectories it samples (traj.)",
            "meta lr": "TRPO's outer step takes no learning rate: max KL bounds it",
            "max KL": "the clipped-surrogate outer step has no KL bound: the clip and the meta lr bound it"}


def data_name(config: ExperimentConfig) -> str:
    """What a run learned from, for its name: the family, or a CSV data set's file (or folder) name."""
    if config.family.name == "labelled_csv" and config.family.params.get("path"):
        return Path(config.family.params["path"]).stem
    paths = config.family.params.get("paths") or []
    if config.family.name == "csv" and paths:
        first = Path(paths[0])
        return first.stem if len(paths) == 1 else first.parent.name or first.stem
    return config.family.name


class RunRegistry:
    """Every run of the session, in creation order."""

    def __init__(self):
        self._runs: dict[int, RunRecord] = {}
        self._top = 0   # the highest run number taken (new runs are numbered after it)

    def create(self, config: ExperimentConfig, name: str | None = None) -> RunRecord:
        """A new run, named ``name`` (made unique) or after its number, algorithm and data."""
        self._top += 1
        run_id = self._top
        name = self.unique_name(name or f"run {run_id} · {config.algorithm.name} · {data_name(config)}")
        record = RunRecord(run_id, name, config)
        self._runs[run_id] = record
        return record

    def unique_name(self, name: str, run_id: int | None = None) -> str:
        """``name``, or ``name (2)``, ``name (3)``… when another run (not ``run_id``) has it: legends,
        the compare table and ``curves.csv`` tell runs apart by name."""
        taken = {r.name for r in self._runs.values() if r.run_id != run_id}
        candidate, n = name, 2
        while candidate in taken:
            candidate, n = f"{name} ({n})", n + 1
        return candidate

    def restore(self, run_id: int, name: str, config: ExperimentConfig) -> RunRecord:
        """A run read back from the project, under its own id; new runs are numbered after it."""
        record = RunRecord(run_id, self.unique_name(name, run_id), config)
        self._runs[run_id] = record
        self._top = max(self._top, run_id)
        return record

    def reserve(self, run_id: int) -> None:
        """New runs are numbered after ``run_id`` too (a run the project lists but could not read)."""
        self._top = max(self._top, run_id)

    def get(self, run_id) -> RunRecord | None:
        return self._runs.get(run_id)

    def remove(self, run_id) -> None:
        self._runs.pop(run_id, None)

    def __iter__(self):
        return iter(list(self._runs.values()))

    def __len__(self) -> int:
        return len(self._runs)


def curves_csv(runs: Iterable[RunRecord]) -> str:
    """Long format, one row per kept iteration of each run: run, iteration, meta_loss, step_loss_0..N,
    wall_time (when the iteration ended, seconds since the epoch; empty for runs that did not record it)."""
    runs = list(runs)
    width = max((r.history.step_losses.shape[1] for r in runs if len(r.history)), default=0)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["run", "algorithm", "iteration", "meta_loss", *(f"step_loss_{s}" for s in range(width)),
                     "wall_time"])
    for run in runs:
        for row in run.history.rows():
            steps = [repr(v) for v in row.step_losses] + [""] * (width - len(row.step_losses))
            wall = f"{row.wall_time:.3f}" if np.isfinite(row.wall_time) else ""
            writer.writerow([run.name, run.config.algorithm.name, row.iteration, repr(row.meta_loss), *steps, wall])
    return buf.getvalue()
