"""Data-parallel meta-training on ``torch.distributed``: N processes share every meta-iteration.

Why this design (issue 12):

* **Tasks.** Every process samples the *whole* meta-batch with the same generator (the one a
  single process uses, so resuming and checkpoints are unchanged) and keeps its contiguous slice
  (:func:`shard`). Sampling the batch N times costs little next to a meta-step (sinusoid: 0.1 ms
  vs ~1 ms; 32 glyph episodes: 40 ms vs about a second for conv-4) and needs no scatter, so the
  tasks of an iteration are exactly those of a single-process run with the same seed.
* **One exchange per iteration.** Each process computes the meta-gradient of its slice (weights
  and learned inner rates alike), its mean meta-loss and per-step losses, all scaled by its share
  of the tasks; one ``all_reduce`` (sum) of one flat buffer then yields the single-process means
  over all T tasks, up to summation order. The gradient norm is taken of the summed gradient.
  Every process takes the same Adam step from the same state, so the weights stay identical
  without ever being broadcast again. The buffer also carries the processes' stop requests
  (SIGTERM, Ctrl-C, time limit), so all of them stop after the same iteration.
* **Start.** Rank 0 builds (or resumes) the trainer and broadcasts settings, weights and training
  state; the others never read the run folder (on several machines only rank 0's has it).
* **Failure.** A process that dies closes its connections: the others' exchange fails at once
  (:class:`PeerFailed`); one that hangs makes it fail after ``timeout`` (the process group's).
  Rank 0 then saves the last completed iteration. :func:`launch` (``train --nproc N``) watches its
  processes, names the one that failed from a small shared :class:`Board`, ends the rest (SIGTERM,
  then SIGKILL) and forwards SIGTERM / Ctrl-C. Under ``torchrun`` the same ranks run; torchrun
  itself ends a run whose process exited.

Backends: gloo for CPU tensors, nccl for CUDA ones (one GPU per process, ``cuda:LOCAL_RANK``; the
nccl path is untested here, no GPU).
"""

from __future__ import annotations

import datetime
import io
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from core.errors import ConfigError, MamlError

BOARD_ENV = "MAML_DIST_BOARD"          # the launcher's shared file (absent under torchrun)
LAUNCHER_ENV = "MAML_DIST_LAUNCHER"    # the launcher's pid: a rank whose parent changes stops
RANK_TIMEOUT = 120.0    # s a process waits at an exchange for the others before the run counts as hung
GRACE = 60.0            # s the launcher lets rank 0 finish its iteration and save after a stop or a failure
AFTER_RANK0 = 3.0       # s the launcher waits for the other processes once rank 0 has ended
VOTES = ("SIGINT", "SIGTERM", "time")   # stop requests, in order of precedence


class PeerFailed(MamlError):
    """An exchange with the other processes failed: one of them died, hung or left."""


def rank_from_env() -> tuple[int, int, int, int] | None:
    """``(rank, world size, local rank, local world size)`` when started by ``torchrun`` or
    :func:`launch` with more than one process, else None."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return None
        rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", rank))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    except (KeyError, ValueError):
        raise ConfigError("train.nproc", "WORLD_SIZE is set but RANK / LOCAL_RANK are missing or not numbers; "
                                         "start several processes with --nproc N or torchrun") from None
    return rank, world, local, local_world


def launched_here() -> bool:
    """True in a rank started by :func:`launch` (which passes ``--nproc`` on, to be ignored)."""
    return LAUNCHER_ENV in os.environ


def shard(n_tasks: int, rank: int, world: int) -> slice:
    """Rank ``rank``'s contiguous share of ``n_tasks`` (the first ``n_tasks % world`` get one more)."""
    if n_tasks < world:
        raise ConfigError("train.meta_batch", f"the meta-batch ({n_tasks} tasks) is smaller than the {world} "
                                              "processes; every process needs at least one task")
    size, extra = divmod(n_tasks, world)
    start = rank * size + min(rank, extra)
    return slice(start, start + size + (rank < extra))


def shard_batch(batch, part: slice):
    from core.tasks import TaskBatch

    return TaskBatch(batch.support_x[part], batch.support_y[part], batch.query_x[part], batch.query_y[part],
                     {k: v[part] for k, v in batch.task_params.items()})


# -- the board: what each rank is doing, for the launcher ---------------------------------------
STARTING, RUNNING, AGREED, PEER_FAILED = 0, 1, 2, 3


class Board:
    """One row per rank in a small file both sides map: ``[state, exchanges entered, iteration]``.

    Why: when an exchange fails, only the launcher sees every process, and the row tells it which
    one never reached the exchange (the hung one) and which ended in agreement (not a failure).
    Writing is a store into shared memory: nothing per iteration that a run would notice."""

    def __init__(self, path: str | Path, world: int, writable: bool):
        self.path = Path(path)
        self.rows = np.memmap(self.path, dtype=np.int64, mode="r+" if writable else "r", shape=(world, 3))

    @classmethod
    def create(cls, world: int) -> "Board":
        fd, path = tempfile.mkstemp(prefix="maml-ranks-", suffix=".board")
        with os.fdopen(fd, "wb") as f:
            f.write(bytes(world * 3 * 8))
        return cls(path, world, writable=False)

    def snapshot(self) -> np.ndarray:
        return np.array(self.rows)

    def remove(self) -> None:
        del self.rows
        try:
            self.path.unlink()
        except OSError:
            pass


class _NoBoard:
    """Under torchrun: nobody reads progress, so nothing is written."""

    def set(self, *_):
        pass


class _RankRow:
    def __init__(self, board: Board, rank: int):
        self.row = board.rows[rank]

    def set(self, column: int, value: int) -> None:
        self.row[column] = value


# -- one process's side -------------------------------------------------------------------------
class Group:
    """This process's membership of the run: its rank, its share of each meta-batch, the exchange.

    ``stop`` is the stop request this process votes for (one of :data:`VOTES` or None);
    ``agreed`` is the request all processes agreed on at the last exchange (None: go on)."""

    def __init__(self, rank: int, world: int, local_rank: int, local_world: int, timeout: float):
        self.rank, self.world, self.local_rank, self.local_world = rank, world, local_rank, local_world
        self.timeout = timeout
        self.stop: str | None = None
        self.agreed: str | None = None
        self.entered = 0
        board = os.environ.get(BOARD_ENV)
        self.board = _RankRow(Board(board, world, writable=True), rank) if board else _NoBoard()

    @classmethod
    def join(cls, ranked: tuple[int, int, int, int], timeout: float = RANK_TIMEOUT) -> "Group":
        """Join the process group the environment describes (``init_process_group`` over env://).
        Threads per process: the cores divided among this machine's processes."""
        import torch.distributed as dist

        rank, world, local_rank, local_world = ranked
        group = cls(rank, world, local_rank, local_world, timeout)
        torch.set_num_threads(max(1, _cores() // local_world))
        backend = "gloo"
        if torch.cuda.is_available():
            backend = "cpu:gloo,cuda:nccl"
            if local_rank < torch.cuda.device_count():
                torch.cuda.set_device(local_rank)
        try:
            dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world,
                                    timeout=datetime.timedelta(seconds=timeout))
        except Exception as exc:  # noqa: BLE001 - the rendezvous' many error types mean one thing here
            raise PeerFailed(f"rank {rank} could not join the other {world - 1} process(es): "
                             f"{_first_line(exc)}") from None
        return group

    def check_device(self, device: torch.device) -> None:
        if device.type == "cuda" and self.local_rank >= torch.cuda.device_count():
            raise ConfigError("train.device", f"{self.local_world} processes on this machine but "
                                              f"{torch.cuda.device_count()} GPU(s): one GPU per process")

    def shard(self, n_tasks: int) -> slice:
        return shard(n_tasks, self.rank, self.world)

    # -- start: rank 0's trainer, everywhere --------------------------------------------------
    def share(self, payload: dict | None) -> dict:
        """Rank 0 passes ``{config, weights, state}``; every rank gets rank 0's copy back."""
        import torch.distributed as dist

        if self.rank == 0:
            buf = io.BytesIO()
            torch.save(payload, buf)
            data = torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)
            size = torch.tensor([data.numel()], dtype=torch.int64)
        else:
            size = torch.zeros(1, dtype=torch.int64)
        self._enter()
        try:
            dist.broadcast(size, 0)
            if self.rank != 0:
                data = torch.empty(int(size), dtype=torch.uint8)
            dist.broadcast(data, 0)
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, "the start") from None
        self.board.set(0, RUNNING)
        return payload if self.rank == 0 else torch.load(io.BytesIO(data.numpy().tobytes()), weights_only=True)

    # -- every iteration ----------------------------------------------------------------------
    def reduce(self, meta_parameters: list[torch.Tensor], numbers: torch.Tensor, share: float,
               iteration: int) -> torch.Tensor:
        """Sum every process's share-weighted gradients (in place) and ``numbers`` (``[meta-loss,
        norm, step losses…, accuracies…]``); returns the global ``numbers`` with the norm of the
        summed gradient, followed by the stop votes (:meth:`settle` takes them off)."""
        import torch.distributed as dist

        grads = [p.grad for p in meta_parameters if p.grad is not None]
        dtype = grads[0].dtype if grads else numbers.dtype
        votes = torch.tensor([float(self.stop == v) for v in VOTES], dtype=dtype)
        flat = torch.cat([*(g.reshape(-1) for g in grads), numbers.to(dtype)])
        flat = torch.cat([flat.mul_(share), votes.to(flat.device)])
        self._enter()
        try:
            dist.all_reduce(flat)
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, f"iteration {iteration + 1:,}") from None
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()
        out = flat[offset:]
        if grads:
            out[1] = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        self.board.set(2, iteration + 1)
        return out

    def settle(self, values: list[float]) -> list[float]:
        """``values`` without the votes, which become :attr:`agreed`."""
        votes = values[-len(VOTES):]
        self.agreed = next((v for v, n in zip(VOTES, votes) if n > 0), None)
        return values[:-len(VOTES)]

    def _enter(self) -> None:
        self.entered += 1
        self.board.set(1, self.entered)

    def _failed(self, exc: BaseException, where: str) -> PeerFailed:
        text = _first_line(exc)
        why = (f"no answer from another process for {self.timeout:g} s" if "timed out" in text.lower() or
               "timeout" in text.lower() else "another process of this run exited")
        return PeerFailed(f"{why} at {where} (rank {self.rank} saw: {text})")

    # -- the end ------------------------------------------------------------------------------
    def mark(self, state: int) -> None:
        """Tell the launcher how this rank ended: :data:`AGREED` (with the others) or :data:`PEER_FAILED`."""
        self.board.set(0, state)

    def close(self) -> None:
        """Leave the group, also after a failed exchange (teardown is local with gloo): a process
        that exits with the group's threads alive aborts with a C++ message instead of its code."""
        import torch.distributed as dist

        if dist.is_initialized():
            try:
                dist.destroy_process_group()
            except Exception:  # noqa: BLE001 - ending anyway
                pass

    def watch_parent(self, on_orphaned) -> None:
        """Started by :func:`launch`: if the launcher disappears (``kill -9``), stop as if by SIGTERM."""
        launcher = os.environ.get(LAUNCHER_ENV)
        if not launcher or os.getppid() != int(launcher):
            return

        def watch():
            while os.getppid() == int(launcher):
                time.sleep(1.0)   # no signal tells a child its parent died (prctl is Linux-only)
            on_orphaned()

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _first_line(exc: BaseException) -> str:
    """The first sentence of a torch.distributed error, without gloo's ``[file.cc:123]`` prefix."""
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    line = re.sub(r"^\[[^\]]*\]\s*", "", lines[0]) if lines else type(exc).__name__
    line = line.split(". ")[0].rstrip(".")
    return line if len(line) <= 160 else line[:157] + "…"


# -- the local launcher (train --nproc N) --------------------------------------------------------
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
    from core.storage.checkpoint import STATE_FILE

    try:
        from safetensors import safe_open

        with safe_open(str(Path(out) / STATE_FILE), "pt") as f:
            iteration = int(f.metadata()["iteration"])
    except Exception:  # noqa: BLE001 - no checkpoint, or not one of ours
        return f"no checkpoint was saved in {out}; start it again with --force"
    return f"the last checkpoint (iteration {iteration:,}) is intact; continue with `maml-gui train --resume {out}`"


def _drop_lock(out: Path, pid: int) -> None:
    """Rank 0 was killed holding the run folder's lock: remove it (it names that dead process)."""
    from core.storage.lock import LOCK_FILE

    path = Path(out) / LOCK_FILE
    try:
        holder = json.loads(path.read_text())
        if holder.get("pid") == pid and holder.get("host") == socket.gethostname():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass
