"""The local launcher of data-parallel training (``train --nproc N``): start N ranks of
``python -m core.cli`` on this machine, watch them through the shared :class:`Board`, name the
one that failed, end the rest and pass SIGTERM / Ctrl-C on. Under ``torchrun`` the same ranks run
without it (torchrun ends a run whose process exited)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from safetensors import safe_open

from core.storage.checkpoint import STATE_FILE
from core.storage.lock import LOCK_FILE
from core.training.distributed import (AGREED, BOARD_ENV, LAUNCHER_ENV, PEER_FAILED, RANK_TIMEOUT, STARTING,
                                       Board)

GRACE = 60.0            # s the launcher lets rank 0 finish its iteration and save after a stop or a failure
AFTER_RANK0 = 3.0       # s the launcher waits for the other processes once rank 0 has ended


def launch(argv: list[str], nproc: int, out: Path, timeout: float = RANK_TIMEOUT, grace: float = GRACE) -> int:
    """Run ``python -m core.cli <argv>`` as ``nproc`` ranks on this machine and wait for them.

    The launcher hosts the rendezvous store itself (as torchrun's agent does), so no port is
    picked and then raced for. Returns rank 0's exit code, or 1 with one line on stderr naming
    the process that failed. SIGTERM / Ctrl-C are passed on (the ranks stop together and rank 0
    saves); a second one, or a rank that does not end within ``grace`` seconds, is killed."""
    import torch.distributed as dist

    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    board = Board.create(nproc)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port), "WORLD_SIZE": str(nproc),
           "LOCAL_WORLD_SIZE": str(nproc), "TORCHELASTIC_USE_AGENT_STORE": "True", BOARD_ENV: str(board.path),
           LAUNCHER_ENV: str(os.getpid()),
           # the ranks import this very copy of core, wherever the launcher was started from
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                       os.environ.get("PYTHONPATH")]))}
    watcher = _Watcher(nproc, timeout, grace)
    previous = {s: signal.signal(s, watcher.on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for rank in range(nproc):
            watcher.start(rank, [sys.executable, "-m", "core.cli", *argv],
                          {**env, "RANK": str(rank), "LOCAL_RANK": str(rank)})
        watcher.wait(board)
    finally:
        watcher.kill_all()
        for s, handler in previous.items():
            signal.signal(s, handler)
        rows = board.snapshot()
        board.remove()
        del store
    return watcher.verdict(rows, out)


class _Watcher:
    """The launcher's bookkeeping: which ranks run, how each ended, who failed first."""

    def __init__(self, nproc: int, timeout: float, grace: float):
        self.nproc, self.timeout, self.grace = nproc, timeout, grace
        self.procs: dict[int, subprocess.Popen] = {}
        self.codes: dict[int, int] = {}
        self.states: dict[int, int] = {}
        self.events: queue.Queue = queue.Queue()
        self.deadline: float | None = None
        self.killed: set[int] = set()
        self.signalled: set[int] = set()   # told to stop by the launcher: not to blame for stopping
        self.signals = 0
        self.stragglers: list[int] = []   # ranks that never reached the exchange the others failed at

    def start(self, rank: int, command: list[str], env: dict) -> None:
        proc = self.procs[rank] = subprocess.Popen(command, env=env)
        threading.Thread(target=lambda: self.events.put((rank, proc.wait())), daemon=True).start()

    def on_signal(self, signum, _frame) -> None:
        self.signals += 1
        if self.signals > 1:
            self.kill_all()
            return
        for rank, proc in self._running():
            self.signalled.add(rank)
            _send(proc, signum)
        self._end_within(self.grace)

    def wait(self, board: Board) -> None:
        while len(self.codes) < self.nproc:
            timeout = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
            try:
                rank, code = self.events.get(timeout=timeout)
            except queue.Empty:
                self.kill_all()
                self.deadline = None
                continue
            rows = board.snapshot()
            self.codes[rank], self.states[rank] = code, int(rows[rank, 0])
            agreed = self.states[rank] == AGREED
            if self.states[rank] == PEER_FAILED and not self.stragglers:
                self._find_stragglers(rows)
            if rank == 0 or self.states[rank] not in (AGREED, PEER_FAILED):   # rank 0 ended, or a rank failed
                for r, proc in self._running():
                    self.signalled.add(r)
                    _send(proc, signal.SIGTERM)
            if rank == 0 or not agreed:   # the others end by themselves, or are killed
                self._end_within(self.grace if 0 not in self.codes else AFTER_RANK0)

    def _find_stragglers(self, rows: np.ndarray) -> None:
        """An exchange failed while these ranks still run: those that entered the fewest are stuck."""
        running = [r for r in range(self.nproc) if r not in self.codes]
        if running:
            least = min(rows[r, 1] for r in running)
            self.stragglers = [r for r in running if rows[r, 1] == least]

    def _end_within(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        self.deadline = end if self.deadline is None else min(self.deadline, end)

    def _running(self) -> list[tuple[int, subprocess.Popen]]:
        return [(r, p) for r, p in self.procs.items() if r not in self.codes and p.poll() is None]

    def kill_all(self) -> None:
        for rank, proc in self.procs.items():
            if rank not in self.codes and proc.poll() is None:
                self.killed.add(rank)
                proc.kill()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass

    def verdict(self, rows: np.ndarray, out: Path) -> int:
        """Rank 0's code, or 1 and one line naming the process that failed."""
        failed = [r for r in self.codes if self.states.get(r) not in (AGREED, PEER_FAILED)
                  and r not in self.killed | self.signalled]
        rank0 = self.codes.get(0, 1)
        if 0 in self.killed:
            _drop_lock(out, self.procs[0].pid)
        if not failed and not self.stragglers:
            if 0 not in self.killed and self.states.get(0) != PEER_FAILED:
                return rank0   # completed, or stopped together: rank 0 said how
            why = "did not stop in time and was killed" if 0 in self.killed else "lost the other processes"
            print(f"maml-gui: rank 0 {why}; the run stopped; {_checkpoint_words(out)}", file=sys.stderr)
            return 1
        first = failed[0] if failed else None
        if first == 0 and self.states.get(0) == STARTING and rank0 == 2:
            return 2   # rank 0 refused the arguments and said why in one line
        if first is not None:
            rank, what = first, f"exited with code {self.codes[first]}{_signal_name(self.codes[first])}"
        else:
            rank, what = self.stragglers[0], "stopped responding"
        iteration = int(rows[rank, 2]) + 1
        waited = "" if first is not None else \
            f" (the others waited {self.timeout:g} s for it at the gradient exchange, --rank-timeout) and was ended"
        print(f"maml-gui: rank {rank} {what} during iteration ~{iteration:,}{waited}; the run stopped; "
              f"{_checkpoint_words(out)}", file=sys.stderr)
        return 1


def _send(proc: subprocess.Popen, signum: int) -> None:
    try:
        proc.send_signal(signum)
    except OSError:
        pass


def _signal_name(code: int) -> str:
    if code >= 0:
        return ""
    try:
        return f" ({signal.Signals(-code).name})"
    except ValueError:
        return ""


def _checkpoint_words(out: Path) -> str:
    """What the run folder holds now, and how to go on."""
    try:
        with safe_open(str(Path(out) / STATE_FILE), "pt") as f:
            iteration = int(f.metadata()["iteration"])
    except Exception:  # noqa: BLE001 - no checkpoint, or not one of ours
        return f"no checkpoint was saved in {out}; start it again with --force"
    return f"the last checkpoint (iteration {iteration:,}) is intact; continue with `maml-gui train --resume {out}`"


def _drop_lock(out: Path, pid: int) -> None:
    """Rank 0 was killed holding the run folder's lock: remove it (it names that dead process)."""
    path = Path(out) / LOCK_FILE
    try:
        holder = json.loads(path.read_text())
        if holder.get("pid") == pid and holder.get("host") == socket.gethostname():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass
