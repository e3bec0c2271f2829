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


def tune_cpu_threads(n_params: int, device: torch.device) -> None:
    """Run small networks on one intra-op thread.

    Meta-learning steps are hundreds of tiny ops; handing each to a thread pool costs about
    what it saves when the machine is idle (measured equal on 2 cores), and when anything else
    runs, a descheduled pool thread stalls every op: we measured 5–10x slower steps on a busy
    2-core machine. Larger networks keep torch's default.
    """
    if device.type == "cpu" and n_params < SMALL_MODEL_PARAMS and torch.get_num_threads() > 1:
        torch.set_num_threads(1)
