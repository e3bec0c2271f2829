"""Which compute devices exist, and what ``auto`` means (cuda → mps → cpu)."""

from __future__ import annotations

import torch


def available_devices() -> list[str]:
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def resolve_device(name: str) -> torch.device:
    from .errors import ConfigError

    present = available_devices()
    if name == "auto":
        return torch.device("cuda" if "cuda" in present else "mps" if "mps" in present else "cpu")
    if name not in present:
        raise ConfigError("train.device", f"device {name!r} is not available here; available: {', '.join(present)}")
    return torch.device(name)


SMALL_MODEL_PARAMS = 250_000
BACKGROUND_THREADS = 1   # intra-op threads of a background job (scoring, a baseline) beside training


def tune_cpu_threads(n_params: int, device: torch.device) -> None:
    """Run small networks on one intra-op thread.

    Meta-learning steps are hundreds of tiny ops; handing each to a thread pool costs about
    what it saves when the machine is idle (measured equal on 2 cores), and when anything else
    runs, a descheduled pool thread stalls every op: we measured 5–10x slower steps on a busy
    2-core machine. Larger networks keep torch's default.
    """
    if device.type == "cpu" and n_params < SMALL_MODEL_PARAMS and torch.get_num_threads() > 1:
        torch.set_num_threads(1)


def use_threads(n: int) -> int:
    """Set the calling thread's intra-op threads (at least 1); returns the count.

    OpenMP keeps one count per thread: ``torch.set_num_threads`` in one thread leaves the count of
    a thread that already ran torch ops unchanged (checked with torch 2.13), and a thread that never
    sets one starts with the count set last anywhere. So each job sets its own at its start, and the
    window's background jobs (held-out scoring, the pretrain baseline) run on one thread each while
    training keeps its share: concurrent jobs never form thread teams that spin-wait for each other."""
    n = max(1, int(n))
    torch.set_num_threads(n)
    return n
