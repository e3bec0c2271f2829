"""Will a run fit in memory? Asked before it starts, so a too-large image run is a readable
suggestion (first order, ANIL, a smaller meta-batch) instead of the operating system killing it."""

from __future__ import annotations

from pathlib import Path

import torch

from core.built import Built
from core.config import ExperimentConfig
from core.device import resolve_device
from core.errors import MamlError

SHARE = 0.8   # of the available memory a run may plan to take (the rest: Python, the window, the data)


def available_bytes(device: torch.device) -> int | None:
    """Free memory where the run would allocate: the GPU's free memory, or the machine's
    ``MemAvailable`` (Linux); None where it cannot be told."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    limits = [n for n in (_meminfo("/proc/meminfo", "MemAvailable:"), _address_space_left(), _cgroup_left())
              if n is not None]
    return min(limits) if limits else None


def _meminfo(path: str, key: str) -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_space_left() -> int | None:
    """What ``ulimit -v`` (RLIMIT_AS) still lets this process map: a run past it fails to allocate
    whatever the machine has free."""
    try:
        import resource
        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    used = _meminfo("/proc/self/status", "VmSize:")
    return max(0, soft - (used or 0))


def _cgroup_left() -> int | None:
    """A container's memory limit (cgroup v2) less what it uses."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text().strip()))
    except (OSError, ValueError):
        return None


DRAW_PEAK = 3   # drawing tasks holds about this many copies of them at its peak (inputs, temporaries, targets)


def draw_problem(family, tasks: int, shots: int, query: int, seed: int, device) -> str | None:
    """Why ``tasks`` held-out tasks cannot be drawn at once in ``device``'s memory (only their
    adaptation is chunked), else None; sized from one task drawn alike on the CPU."""
    from core.trained.evaluation import held_out_tasks

    available = available_bytes(device)
    if available is None:
        return None
    one = held_out_tasks(family, 1, shots, query, seed, "cpu")
    per_task = DRAW_PEAK * sum(t.nbytes for t in (one.support_x, one.support_y, one.query_x, one.query_y))
    if per_task * tasks <= SHARE * available:
        return None
    return (f"{tasks:,} held-out tasks of {shots} shots and {query} query points need about "
            f"{per_task * tasks / 2**30:.1f} GiB but only {available / 2**30:.1f} GiB is free; use "
            f"--tasks {max(1, int(SHARE * available // per_task)):,} or fewer, or fewer --shots / --query")


def fit_problem(config: ExperimentConfig, family, available: int | None = None, n_weights: int | None = None) -> str | None:
    """Why one meta-iteration of ``config`` would not fit (with what to change), else None
    (``n_weights``: the network's size, when the caller built it already)."""
    from core.training.bench import estimate_peak_bytes

    if available is None:
        available = available_bytes(resolve_device(config.train.device))
    if available is None:
        return None
    need = estimate_peak_bytes(config, family, n_weights)
    if need <= SHARE * available:
        return None
    return (f"one meta-iteration needs about {need / 2**30:.1f} GiB but only {available / 2**30:.1f} GiB is free; "
            f"{memory_tips(config)}")


def fitting(built: Built) -> Built:
    """``built``, once one meta-iteration of its experiment is known to fit: a run that would not
    is refused (:class:`MamlError`, with what to change) before anything large is allocated, as
    the window refuses it."""
    tight = fit_problem(built.config, built.family, n_weights=built.n_weights())
    if tight:
        raise MamlError(f"{tight}; nothing was started")
    return built


def memory_tips(config: ExperimentConfig) -> str:
    """The settings that shrink one meta-iteration, with their values now."""
    a, t = config.algorithm, config.train
    tips = []
    if a.name in ("maml", "metasgd", "mamlpp"):
        tips.append("first-order MAML (fomaml) or ANIL, which do not keep the inner loop's second derivatives")
    if t.meta_batch > 1:
        tips.append(f"a smaller meta-batch (now {t.meta_batch})")
    if t.shots + t.query > 20:
        tips.append(f"fewer shots or query points (now {t.shots} and {t.query})")
    if config.model.name == "conv4":
        tips.append(f"fewer conv channels (now {config.model.conv_channels}) or smaller images")
    elif max(config.model.hidden) > 64:
        tips.append(f"smaller hidden layers (now {', '.join(map(str, config.model.hidden))})")
    return f"try {', or '.join(tips) if tips else 'a smaller experiment'}"
