"""Training → Run as a sweep… and Run in N processes…: the settings shown, trained by child processes.

Each launch writes the edited experiment as JSON next to its output folder, starts
``python -m core.cli sweep|train … --config that.json --out FOLDER`` with its output in
``FOLDER.log``, and follows ``FOLDER`` in the session once the child has created it (a sweep
once its ``sweep.json`` exists: the follower then picks up each run folder as it appears). A
child that exits with an error is reported in the window with the last line of its log and the
log's path, never silently. Children run in their own session (a Ctrl-C in the terminal that
started the window does not reach them); closing the window asks whether to stop them (SIGTERM:
they save and exit) or leave them running, followed again when the project opens.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QDialog, QMessageBox

import core
from core.errors import MamlError

from maml_gui.session.following import is_run_folder, is_sweep_folder
from maml_gui.dialogs.sweep_dialog import ProcessesDialog, SweepDialog, SweepRequest, next_folder

CHECK_MS = 500          # how often children are checked (exit, output folder created)
STOP_TIMEOUT = 60.0     # s a stopped child has to save and exit before it is killed


@dataclass
class Child:
    kind: str                 # "sweep" or "train"
    proc: subprocess.Popen
    out: Path
    log: Path
    started: float
    followed: bool = False
    stopping: bool = False

    @property
    def what(self) -> str:
        return f"the sweep {self.out.name}" if self.kind == "sweep" else f"the run {self.out.name}"

    def alive(self) -> bool:
        return self.proc.poll() is None


def cli_command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "core.cli", *args]


def sweep_command(config: Path, request: SweepRequest) -> list[str]:
    grid = [a for line in request.grid for a in ("--grid", line)]
    return cli_command(["sweep", "--seeds", request.seeds, *grid, "--parallel", str(request.parallel),
                        "--tasks", str(request.tasks), "--out", str(request.out), "--config", str(config)])


def nproc_command(config: Path, n: int, out: Path) -> list[str]:
    return cli_command(["train", "--nproc", str(n), "--config", str(config), "--out", str(out)])


def side_file(out: Path, suffix: str) -> Path:
    """``out`` with a suffix, next to it: its log and the experiment it was started with."""
    return out.with_name(out.name + suffix)


def last_line(log: Path) -> str:
    """The last line of a log that says something (a child's error message, as a rule)."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - 4096))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""


class LaunchActions(QObject):
    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.children: list[Child] = []
        self._timer = QTimer(self, interval=CHECK_MS)
        self._timer.timeout.connect(self.check)

    @property
    def session(self):
        return self.window.session

    # -- the menu actions -----------------------------------------------------------------------------
    def default_out(self, kind: str) -> Path:
        config = self.window.panel_config()
        folders = [self.session.project.folder / name for name in ("sweeps", "external")]
        parent = folders[0] if kind == "sweep" else folders[1]
        return next_folder(parent, f"{config.family.name}-{config.algorithm.name}",
                           tuple(f for f in folders if f != parent))

    def choose_sweep(self) -> None:
        dialog = SweepDialog(self.default_out("sweep"), self.window)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.request is not None:
            self.run_sweep(dialog.request)

    def choose_processes(self) -> None:
        if self._single_process_only():
            return
        dialog = ProcessesDialog(self.default_out("train"), self.window)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.out() is not None:
            self.run_processes(dialog.n.value(), dialog.out())

    # -- launching ------------------------------------------------------------------------------------
    def run_sweep(self, request: SweepRequest) -> Child | None:
        """Start ``maml-gui sweep`` on the settings shown; None (and a message) when it cannot start."""
        config = self._config_file(request.out)
        return None if config is None else self._spawn("sweep", sweep_command(config, request), request.out)

    def run_processes(self, n: int, out: Path | None = None) -> Child | None:
        """Start ``maml-gui train --nproc N`` on the settings shown, into ``out`` (default: a new
        folder in the project's external/)."""
        out = Path(out) if out is not None else self.default_out("train")
        config = self._config_file(out)
        return None if config is None else self._spawn("train", nproc_command(config, n, out), out)

    def _config_file(self, out: Path) -> Path | None:
        w = self.window
        problem = w.start_problem()
        if problem is not None:
            w.show_error(f"Cannot launch: {problem}")
            return None
        path = side_file(out, ".experiment.json")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(w.panel_config().to_json(), encoding="utf-8")
        except OSError as exc:
            w.show_error(f"Cannot write {path}: {exc.strerror or exc}")
            return None
        return path

    def _spawn(self, kind: str, command: list[str], out: Path) -> Child | None:
        log = side_file(out, ".log")
        env = dict(os.environ)   # the child runs this very code, installed or not
        root = str(Path(core.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        try:
            with log.open("ab") as f:
                f.write(("$ " + " ".join(command[2:]) + "\n").encode())
                f.flush()
                proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env, start_new_session=True)
        except OSError as exc:
            self.window.show_error(f"Cannot start {' '.join(command[2:4])}: {exc.strerror or exc}")
            return None
        child = Child(kind, proc, out, log, time.monotonic())
        self.children.append(child)
        self._timer.start()
        self.window.statusBar().showMessage(f"Started {child.what} (pid {proc.pid}); the window follows it once it "
                                            f"writes its folder. Log: {log}", 15_000)
        return child

    # -- watching -------------------------------------------------------------------------------------
    def check(self) -> None:
        """Follow each child's folder once it exists; report each child that ended."""
        for child in list(self.children):
            code = child.proc.poll()
            if not child.followed:
                ready = is_sweep_folder(child.out) if child.kind == "sweep" else is_run_folder(child.out)
                if ready:
                    child.followed = True
                    try:
                        self.session.follow(child.out)
                    except MamlError as exc:
                        self.window.show_error(f"Cannot follow {child.out}: {exc}")
            if code is not None:
                self.children.remove(child)
                self._report(child, code)
        if not self.children:
            self._timer.stop()

    def _report(self, child: Child, code: int) -> None:
        w = self.window
        if code == 0:
            w.statusBar().showMessage(f"{child.what[0].upper()}{child.what[1:]} has finished (log: {child.log.name} next to it)", 15_000)
        elif child.stopping and code in (143, -signal.SIGTERM, 130):
            w.statusBar().showMessage(f"{child.what[0].upper()}{child.what[1:]} stopped and saved", 10_000)
        else:
            why = last_line(child.log) or "no output"
            w.show_error(f"{child.what[0].upper()}{child.what[1:]} stopped with exit code {code}: {why} "
                         f"(its log: {child.log})")

    def live(self) -> list[Child]:
        return [c for c in self.children if c.alive()]

    def stop(self, timeout: float = STOP_TIMEOUT) -> list[Child]:
        """SIGTERM every live child (they save and exit), wait for them, kill those that do not
        exit in ``timeout`` s; returns the children that were stopped."""
        children = self.live()
        for child in children:
            child.stopping = True
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in children:
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        self.check()
        return children

    def leave(self) -> None:
        """Let the children run on without this window (the project follows their folders when it opens)."""
        self.children.clear()
        self._timer.stop()

    def settle_on_close(self) -> bool:
        """Closing: ask what becomes of the children still running; False when the user cancels."""
        live = self.live()
        if not live:
            return True
        names = ", ".join(c.what for c in live)
        text = (f"Still running, launched from this window: {names}.\n\nStop them (each saves a checkpoint and "
                "exits; the same launch resumes it), or leave them running? The project follows them again when "
                "it opens.")
        answer = self._ask(text)
        if answer == "cancel":
            return False
        if answer == "stop":
            self.stop()
        else:
            self.leave()
        return True

    def _ask(self, text: str) -> str:
        """"stop", "leave" or "cancel": through ``window.confirm`` (Yes stops) when a test or caller
        replaced it, else a box with the three answers spelled out."""
        w = self.window
        if w.confirm != w._ask:   # noqa: SLF001 - an injected prompt answers
            return "stop" if w.confirm("Stop the launched processes?", text) else "leave"
        box = QMessageBox(QMessageBox.Icon.Question, "Launched processes are running", text, parent=w)
        stop = box.addButton("Stop them", QMessageBox.ButtonRole.DestructiveRole)
        leave = box.addButton("Leave running", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(leave)
        box.exec()
        return "stop" if box.clickedButton() is stop else "leave" if box.clickedButton() is leave else "cancel"
