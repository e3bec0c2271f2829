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
