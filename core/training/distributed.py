"""Data-parallel meta-training, the rank's side: what each of N processes runs to share every
meta-iteration (join the group, take its slice of the meta-batch, one ``all_reduce`` per
iteration that also carries the stop votes). The local launcher is :mod:`core.training.local_launch`;
why the design is as it is: the README's "Scaling out" section.
"""

from __future__ import annotations

import datetime
import io
import os
import re
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from core.errors import ConfigError, MamlError
from core.tasks import TaskBatch

BOARD_ENV = "MAML_DIST_BOARD"          # the launcher's shared file (absent under torchrun)
LAUNCHER_ENV = "MAML_DIST_LAUNCHER"    # the launcher's pid: a rank whose parent changes stops
RANK_TIMEOUT = 120.0    # s a process waits at an exchange for the others before the run counts as hung
VOTES = ("SIGINT", "SIGTERM", "time")   # stop requests, in order of precedence


class PeerFailed(MamlError):
    """An exchange with the other processes failed: one of them died, hung or left."""


def rank_from_env() -> tuple[int, int, int, int] | None:
    """``(rank, world size, local rank, local world size)`` when started by ``torchrun`` or
    the local launcher with more than one process, else None."""
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
    """True in a rank started by the local launcher (which passes ``--nproc`` on, to be ignored)."""
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

    def all_sum(self, values: torch.Tensor, iteration: int) -> torch.Tensor:
        """Sum ``values`` over the processes, in place: the exchanges inside one meta-RL outer step
        (gradient, Hessian-vector products, line search), each entered by every process in the same order."""
        import torch.distributed as dist

        self._enter()
        try:
            dist.all_reduce(values)
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, f"iteration {iteration + 1:,}") from None
        return values

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
        """Started by the local launcher: if it disappears (``kill -9``), stop as if by SIGTERM."""
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
