"""Runs the window did not start: a ``maml-gui train``, a sweep's runs or a ``torchrun`` job
writing a run folder, followed live.

One poll a second, on a job thread: the new rows of ``metrics.csv`` (:class:`core.storage.follow.MetricsTail`,
a partial last line waits for its newline), the weights when their file changed (the run saves them
at every checkpoint, atomically), and whether the lock's process still lives. The GUI thread only
appends rows and swaps weights, so following costs what the new rows cost and never blocks.

A followed *sweep* folder is watched as well while its ``maml-gui sweep`` lives: each poll lists
``runs/`` (on the job thread) and a run folder that appeared since is followed too (``sweep_grew``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from core.storage.checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_weights_at
from core.config import ExperimentConfig
from core.errors import MamlError
from core.storage.follow import MetricsTail, TailUpdate, file_stamp
from core.storage.lock import lock_holder
from core.cli.sweep import SWEEP_FILE

from maml_gui.jobs.job_runner import JobRunner
from maml_gui.session.runs import History, RunRecord

POLL_MS = 1000


def is_run_folder(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG_FILE).is_file()


def is_sweep_folder(path: Path) -> bool:
    """A folder ``maml-gui sweep`` writes (it holds ``sweep.json`` before its first run starts)."""
    return path.is_dir() and (path / SWEEP_FILE).is_file()


def sweep_runs(path: Path) -> list[Path]:
    """The run folders of a sweep folder (``DIR/runs/*``), in name order; [] when it is none."""
    runs = path / "runs"
    return sorted(p for p in runs.iterdir() if is_run_folder(p)) if runs.is_dir() else []


def followed_name(folder: Path) -> str:
    """A followed run's name: its folder's, after its sweep's (``001-sinusoid-maml/base-seed1``)
    when it is one of a sweep's runs, as two sweeps' seeds share folder names. Its state
    ("following") is shown beside it in the run list, never in its name."""
    return f"{folder.parent.parent.name}/{folder.name}" if folder.parent.name == "runs" else folder.name


def _without_state(name: str) -> str:
    """A name saved by an older version, which wrote the state into it."""
    return name[:-len(" (following)")] if name.endswith(" (following)") else name


@dataclass
class Followed:
    run: RunRecord
    folder: Path
    tail: MetricsTail
    stamp: tuple | None = None           # the weights file's (mtime, size) when last read
    alive: bool | None = True            # the writer: True, False (gone) or None (another host)
    writer: str = ""
    rate_marks: list = field(default_factory=list)   # (wall time, iteration) for iterations/s
    ended_polls: int = 0


@dataclass
class WatchedSweep:
    folder: Path
    known: set = field(default_factory=set)   # run folder names already handed over
    ended_polls: int = 0                      # polls since its sweep process was last seen alive


@dataclass
class Polled:
    run_id: int
    update: TailUpdate
    weights: tuple | None                # (config, weights, stamp, iteration or None) when the file changed
    holder: dict | None
    problem: str | None = None


class Follower(QObject):
    """Owned by the session: ``follow(folder)`` adds a run whose curves grow as another process trains it."""

    polled = Signal()   # a poll was applied (tests wait on it)
    sweep_grew = Signal(list)   # RunRecords newly followed because their folder appeared in a watched sweep

    def __init__(self, session):
        super().__init__(session)
        self.session = session
        self.followed: dict[int, Followed] = {}
        self.sweeps: dict[Path, WatchedSweep] = {}
        self._jobs = JobRunner(self, "maml-follow")
        self._jobs.done.connect(lambda _tag, results: self._apply(results))
        self._jobs.failed.connect(lambda _tag, text: self.session.message.emit(f"Following stopped: {text}", 10_000))
        self._timer = QTimer(self, interval=POLL_MS)
        self._timer.timeout.connect(self.poll)

    def follow(self, folder: str | Path, run_id: int | None = None, name: str | None = None,
               emit_poll: bool = True) -> RunRecord:
        """Add the run in ``folder`` (being written or finished); raises MamlError when it is no run folder."""
        folder = Path(folder)
        if not is_run_folder(folder):
            raise MamlError(f"{folder} is not a run folder (it has no {CONFIG_FILE} yet)")
        for f in self.followed.values():
            if f.folder.resolve() == folder.resolve():
                return f.run
        try:
            config = ExperimentConfig.from_json((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, MamlError) as exc:
            raise MamlError(f"cannot read {folder / CONFIG_FILE}: {exc}") from None
        registry = self.session.runs
        name = _without_state(name) if name else followed_name(folder)
        run = registry.restore(run_id, name, config) if run_id is not None else registry.create(config, name)
        run.origin, run.status, run.total = "followed", "following", config.train.iterations
        self.followed[run.run_id] = Followed(run, folder, MetricsTail(folder))
        self.session.run_added.emit(run)
        if emit_poll:
            self.poll()
        self._timer.start()
        return run

    def watch_sweep(self, folder: str | Path) -> None:
        """Follow the run folders that appear in ``folder/runs`` from now on, while its sweep runs."""
        folder = Path(folder)
        if folder not in self.sweeps:
            self.sweeps[folder] = WatchedSweep(folder, {f.folder.name for f in self.followed.values()
                                                         if f.folder.parent == folder / "runs"})
        self._timer.start()
        self.poll()

    def watched_sweeps(self) -> list[Path]:
        return list(self.sweeps)

    def forget(self, run_id: int) -> None:
        self.followed.pop(run_id, None)
        if not self.followed and not self.sweeps:
            self._timer.stop()

    def forget_all(self) -> None:
        self.followed.clear()
        self.sweeps.clear()
        self._timer.stop()

    def folder_of(self, run_id: int) -> Path | None:
        f = self.followed.get(run_id)
        return f.folder if f is not None else None

    def describe(self, run_id: int) -> str | None:
        """``following (pid 812 on gpu-node)``, ``following (writer on another host)`` or the status it ended with."""
        f = self.followed.get(run_id)
        if f is None:
            return None
        if f.alive is False:
            return f"{f.run.status} (its writer has ended)"
        return f"following ({f.writer})" if f.writer else "following"

    def poll(self) -> None:
        """Read what every followed run added, on the job thread; skipped while a poll runs (a
        dropped result would lose the rows its tail already consumed)."""
        if self._jobs.is_busy():
            return
        jobs = [(f.run.run_id, f.folder, f.tail, f.stamp) for f in self.followed.values() if f.ended_polls < 2]
        sweeps = [(w.folder, set(w.known)) for w in self.sweeps.values()]
        if not jobs and not sweeps:
            self._timer.stop()
            return
        self._jobs.submit("poll", lambda: ([_poll_one(*job) for job in jobs], [_scan_sweep(*s) for s in sweeps]))

    def _apply(self, results) -> None:
        polled, scanned = results
        self._apply_runs(polled)
        self._apply_sweeps(scanned)
        self.polled.emit()

    def _apply_sweeps(self, scanned: list[tuple[Path, list[Path], bool]]) -> None:
        grown = []
        for folder, new, alive in scanned:
            watch = self.sweeps.get(folder)
            if watch is None:
                continue
            for run_folder in new:
                watch.known.add(run_folder.name)
                try:
                    grown.append(self.follow(run_folder, emit_poll=False))
                except MamlError as exc:
                    self.session.message.emit(f"Cannot follow {run_folder.name}: {exc}", 10_000)
            watch.ended_polls = 0 if alive else watch.ended_polls + 1
            if watch.ended_polls >= 2:   # its sweep has ended and every run folder it made is followed
                del self.sweeps[folder]
        if grown:
            self.sweep_grew.emit(grown)

    def _apply_runs(self, results: list[Polled]) -> None:
        now = time.monotonic()
        for p in results:
            f = self.followed.get(p.run_id)
            if f is None:
                continue
            run = f.run
            if p.update.reset:
                run.history = History()
                if run is self.session.current:
                    self.session.current_changed.emit(run)   # plots take the new history object
            if len(p.update.rows):
                run.history.extend(p.update.rows)
                self.session.history_grew.emit(run)
            if p.weights is not None:
                config, weights, f.stamp, at = p.weights
                # the file's own iteration: the metrics run ahead of the last checkpoint
                run.config, run.weights = config, weights
                run.weights_iteration = at if at is not None else run.iteration
                run.total = config.train.iterations
                self.session.score(run)
            f.rate_marks = [m for m in f.rate_marks if now - m[0] <= 10.0] + [(now, run.iteration)]
            first = f.rate_marks[0]
            run.rate = (run.iteration - first[1]) / (now - first[0]) if now > first[0] else 0.0
            f.alive = p.holder.get("alive") if p.holder else False   # no live lock: the writer has ended
            f.writer = f"pid {p.holder['pid']} on {p.holder['host']}" if p.holder and p.holder.get("pid") else ""
            status = "following" if f.alive is not False else (
                "completed" if run.iteration >= run.total else "stopped")
            if f.alive is False:
                f.ended_polls += 1   # one more poll after the writer went, for its last rows and weights
                run.rate = 0.0
            if status != run.status:
                run.status = status
            self.session.run_changed.emit(run)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        self._timer.stop()
        return self._jobs.shutdown(timeout_ms)


def _scan_sweep(folder: Path, known: set) -> tuple[Path, list[Path], bool]:
    """On the job thread: the sweep's run folders not handed over yet, and whether it still runs."""
    holder = lock_holder(folder)
    return folder, [p for p in sweep_runs(folder) if p.name not in known], holder is not None


def _poll_one(run_id: int, folder: Path, tail: MetricsTail, stamp) -> Polled:
    """On the job thread: new rows, changed weights, the writer."""
    update = tail.read()
    weights = None
    now = file_stamp(folder / WEIGHTS_FILE)
    if now is not None and now != stamp:
        try:
            config, tensors, iteration = read_weights_at(folder / WEIGHTS_FILE)
            weights = (config, tensors, now, iteration)
        except (MamlError, OSError):
            weights = None   # caught mid-replace on a file system without atomic rename: next poll
    return Polled(run_id, update, weights, lock_holder(folder))
