"""Will a run fit in memory? Asked before it starts, so a too-large image run is a readable
suggestion (first order, ANIL, a smaller meta-batch) instead of the operating system killing it."""

from __future__ import annotations

from pathlib import Path

import torch

from .config import ExperimentConfig
from .device import resolve_device

SHARE = 0.8   # of the available memory a run may plan to take (the rest: Python, the window, the data)


def available_bytes(device: torch.device) -> int | None:
    """Free memory where the run would allocate: the GPU's free memory, or the machine's
    ``MemAvailable`` (Linux); None where it cannot be told."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def fit_problem(config: ExperimentConfig, family, available: int | None = None) -> str | None:
    """Why one meta-iteration of ``config`` would not fit (with what to change), else None."""
    from .bench import estimate_peak_bytes

    if available is None:
        available = available_bytes(resolve_device(config.train.device))
    if available is None:
        return None
    need = estimate_peak_bytes(config, family)
    if need <= SHARE * available:
        return None
    a = config.algorithm
    tips = []
    if a.name in ("maml", "metasgd", "mamlpp"):
        tips.append("first-order MAML (fomaml) or ANIL, which do not keep the inner loop's second derivatives")
    if config.train.meta_batch > 1:
        tips.append(f"a smaller meta-batch (now {config.train.meta_batch})")
    if config.model.name == "conv4":
        tips.append(f"fewer conv channels (now {config.model.conv_channels}) or smaller images")
    return (f"one meta-iteration needs about {need / 2**30:.1f} GiB but only {available / 2**30:.1f} GiB is free; "
            f"try {', or '.join(tips) if tips else 'a smaller experiment'}")
