"""The dialogs of Training → Run as a sweep… and Run in N processes…: what to launch, checked as typed.

:func:`parse_sweep` is the whole check (seeds, grid lines, parallel runs, evaluation tasks, output
folder) with ``maml-gui sweep``'s own parsers, so a problem is one readable line in the dialog and
OK stays disabled, instead of a child process that exits at once.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QPlainTextEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from core.cli.parser import build_parser, train_value_reader
from core.storage.sweeps import GRID_KEYS, SweepError, parse_grid, parse_seeds

MAX_PARALLEL = 256


@dataclass(frozen=True)
class SweepRequest:
    seeds: str             # as typed ("0-4"), handed to --seeds
    seed_list: tuple
    grid: tuple            # "key=v1,v2" lines, handed to --grid each
    configs: int           # grid combinations (1 without a grid)
    parallel: int
    tasks: int
    out: Path

    @property
    def runs(self) -> int:
        return len(self.seed_list) * self.configs


def cores() -> int:
    return os.cpu_count() or 1


@functools.cache
def _grid_value():
    """How ``train`` reads each grid value (built once: the dialog checks on every keystroke)."""
    return train_value_reader(build_parser().commands["train"])


def check_out(text: str) -> Path:
    """A new (or empty) folder to write into; raises SweepError otherwise."""
    if not text.strip():
        raise SweepError("Output folder: choose where the runs go")
    out = Path(text.strip()).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SweepError(f"Output folder: {out} already holds files; choose a new folder")
    return out


def parse_sweep(seeds: str, grid_text: str, parallel: int, tasks: int, out: str) -> SweepRequest:
    """The sweep the dialog describes; raises SweepError with one readable line."""
    if not seeds.strip():
        raise SweepError("Seeds: give seeds like 0-4 or 0,3,7")
    try:
        seed_list = parse_seeds(seeds)
    except SweepError as exc:
        raise SweepError(str(exc).replace("--seeds: ", "Seeds: ")) from None
    lines = [line.strip() for line in grid_text.splitlines() if line.strip()]
    try:
        combos = parse_grid(lines, _grid_value(), seeds=len(seed_list))
    except SweepError as exc:
        raise SweepError(str(exc).replace("--grid: ", "Grid: ")) from None
    if parallel < 1:
        raise SweepError("Parallel processes: 1 or more")
    if tasks < 1:
        raise SweepError("Evaluation tasks: 1 or more")
    return SweepRequest(seeds.strip(), tuple(seed_list), tuple(lines), max(1, len(combos)), parallel, tasks,
                        check_out(out))


def next_folder(parent: Path, name: str, also: tuple[Path, ...] = ()) -> Path:
    """``parent/NNN-name``, numbered one past the highest number in ``parent`` and the folders
    ``also`` (001 in new folders): a sweep and an N-process run never share a number."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"
    taken = [int(m[1]) for folder in (parent, *also) for p in (folder.iterdir() if folder.is_dir() else [])
             if (m := re.match(r"(\d{3,})-", p.name))]
    return parent / f"{max(taken, default=0) + 1:03d}-{slug}"


class _FolderRow(QWidget):
    """A folder path with a Browse… button."""

    def __init__(self, folder: Path, caption: str):
        super().__init__()
        self.caption = caption
        self.edit = QLineEdit(str(folder))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(browse)

    def _browse(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, self.caption, str(Path(self.edit.text()).parent))
        if chosen:
            self.edit.setText(chosen)


class SweepDialog(QDialog):
    """Seeds, an optional grid, parallel processes, evaluation tasks and the output folder; OK only
    while they make a sweep (the problem is said under the form)."""

    def __init__(self, out: Path, parent: QWidget | None = None, seeds: str = "0-4", tasks: int = 100):
        super().__init__(parent)
        self.setWindowTitle("Run as a sweep")
        self.request: SweepRequest | None = None
        self._parallel_touched = False   # until the user sets it, P follows the number of runs
        self._syncing = False
        intro = QLabel("Trains the settings shown in the panels once per seed (and per grid setting), as "
                       "separate processes, then evaluates each run on held-out tasks. The window follows the "
                       "runs as they train; summary.json gives the mean and a 95% confidence interval across seeds.")
        intro.setWordWrap(True)
        self.seeds = QLineEdit(seeds)
        self.seeds.setToolTip("Seeds to run: a range like 0-4, a list like 0,3,7, or both (0-2,10)")
        self.grid = QPlainTextEdit()
        self.grid.setPlaceholderText("optional, one setting per line, e.g.\ninner_lr=0.01,0.05\ninner_steps=1,5")
        self.grid.setToolTip("Settings to vary: every combination runs with every seed. Keys: " + ", ".join(GRID_KEYS))
        self.grid.setFixedHeight(self.grid.fontMetrics().lineSpacing() * 4 + 12)
        self.parallel = QSpinBox()
        self.parallel.setRange(1, MAX_PARALLEL)
        self.parallel.setToolTip(f"Runs trained at once, each with cores/P threads (this machine has {cores()} cores)")
        self.tasks = QSpinBox()
        self.tasks.setRange(1, 100_000)
        self.tasks.setValue(tasks)
        self.tasks.setToolTip("Held-out tasks each finished run is evaluated on for the summary")
        self.folder = _FolderRow(out, "Folder for the sweep")
        self.folder.edit.setToolTip("A new folder: its runs/ holds one run folder per setting and seed, logs/ their logs")
        form = QFormLayout()
        form.addRow("Seeds", self.seeds)
        form.addRow("Grid", self.grid)
        form.addRow("Parallel processes", self.parallel)
        form.addRow("Evaluation tasks", self.tasks)
        form.addRow("Output folder", self.folder)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #b22222;")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Start sweep")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.summary)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(560)
        self.seeds.textChanged.connect(self._check)
        self.grid.textChanged.connect(self._check)
        self.parallel.valueChanged.connect(self._on_parallel)
        self.tasks.valueChanged.connect(self._check)
        self.folder.edit.textChanged.connect(self._check)
        self._check()

    def _on_parallel(self, _value: int) -> None:
        if not self._syncing:
            self._parallel_touched = True
        self._check()

    def _check(self) -> None:
        try:
            request = parse_sweep(self.seeds.text(), self.grid.toPlainText(), self.parallel.value(),
                                  self.tasks.value(), self.folder.edit.text())
        except SweepError as exc:
            self.request = None
            self.problem.setText(str(exc))
            self.summary.setText("")
            self.ok.setEnabled(False)
            return
        if not self._parallel_touched:   # by default as many at once as there are runs, at most one per core
            self._syncing = True
            self.parallel.setValue(min(request.runs, cores()))
            self._syncing = False
            request = parse_sweep(self.seeds.text(), self.grid.toPlainText(), self.parallel.value(),
                                  self.tasks.value(), self.folder.edit.text())
        self.request = request
        configs = f"{request.configs} settings × " if request.configs > 1 else ""
        self.summary.setText(f"{configs}{len(request.seed_list)} seeds = {request.runs} runs, "
                             f"{min(request.parallel, request.runs)} at a time.")
        self.problem.setText("")
        self.ok.setEnabled(True)


class ProcessesDialog(QDialog):
    """Training → Run in N processes…: N and the new run folder."""

    def __init__(self, out: Path, parent: QWidget | None = None, n: int = 2):
        super().__init__(parent)
        self.setWindowTitle("Run in N processes")
        intro = QLabel("Trains the settings shown in the panels as one run, data-parallel over N local processes "
                       "(maml-gui train --nproc N). The window follows the run as it trains.")
        intro.setWordWrap(True)
        self.n = QSpinBox()
        self.n.setRange(1, MAX_PARALLEL)
        self.n.setValue(max(1, min(n, cores())))
        self.n.setToolTip(f"Processes, each computing the meta-gradient of its share of the tasks ({cores()} cores here)")
        self.folder = _FolderRow(out, "Folder for the run")
        form = QFormLayout()
        form.addRow("Processes", self.n)
        form.addRow("Run folder", self.folder)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #b22222;")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Start")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(520)
        self.folder.edit.textChanged.connect(self._check)
        self._check()

    def out(self) -> Path | None:
        try:
            return check_out(self.folder.edit.text())
        except SweepError:
            return None

    def _check(self) -> None:
        try:
            check_out(self.folder.edit.text())
            problem = ""
        except SweepError as exc:
            problem = str(exc).replace("Output folder", "Run folder")
        self.problem.setText(problem)
        self.ok.setEnabled(not problem)

