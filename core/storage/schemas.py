"""Schemas of a run folder's files, checked where they are read, shared by every command and the window.

A hand-edited, half-copied or damaged file must end in one line naming the file, the key and what
was expected (:class:`RunFileError`, which the command line prints with exit 2 and the window shows
as a message), never in a ``KeyError`` or a shape mismatch deep inside torch. The readers
themselves live beside the writers (:mod:`core.storage.checkpoint` for weights, training state and
metrics, :mod:`core.storage.lock` for ``.lock``); the checks they share are here:

* ``config.json``: :func:`read_config_file` (JSON, types, ranges, the family's own fields);
* ``training_state.safetensors``: :func:`check_training_state` (iteration, the task sampler's
  generator state, one Adam slot set per meta-parameter with exact shapes and finite values);
* ``weights.safetensors``: :func:`core.storage.checkpoint.check_shapes` (names and shapes of the network
  the settings build, :meth:`core.built.Built.shapes`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Mapping, Sequence

import torch

from core.built import Built
from core.config import ExperimentConfig
from core.errors import CheckpointError, ConfigError
from core.ranges import MAX_ITERATIONS

CONFIG_LIMIT = 1 << 20   # bytes: a settings file is a few hundred; more is not one of ours
ADAM_SLOTS = ("exp_avg", "exp_avg_sq", "step")


class RunFileError(CheckpointError):
    """A file of a run folder (or one given on the command line) is damaged or not what it claims;
    ``path`` and ``key`` name where (``key`` may be empty: the whole file)."""

    def __init__(self, path, key: str, message: str):
        self.path, self.key = Path(path), key
        super().__init__(f"{path}: {key + ': ' if key else ''}{message}")


def regular_file(path, what: str = "file") -> Path:
    """``path`` when it is a regular file; else one line saying what it is instead. Opening a FIFO
    blocks until a writer comes, a device can be endless: neither is ever opened."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise RunFileError(path, "", f"no such {what}") from None
    except OSError as exc:
        raise RunFileError(path, "", f"cannot read it: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "not a regular file")
        raise RunFileError(path, "", f"is {kind}, not a regular {what}")
    return path


def read_config_file(path, validate: bool = True, known: Built | None = None) -> ExperimentConfig:
    """A ``config.json`` (a run's, or ``--config``): JSON and types, and with ``validate`` the ranges
    and the family's fields too (without: the caller validates once its flags are applied). A
    ``known`` build whose family spec is the file's lends its family: it is not built again."""
    path = regular_file(path, "settings file")
    try:
        if path.stat().st_size > CONFIG_LIMIT:
            raise RunFileError(path, "", f"is over {CONFIG_LIMIT >> 20} MiB; a settings file is a few hundred bytes")
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise RunFileError(path, "", f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RunFileError(path, "", "is not text (UTF-8); it is damaged or not a settings file") from None
    if not text.strip():
        raise RunFileError(path, "", "is empty")
    try:
        config = ExperimentConfig.from_json(text)
        if validate:
            config.validate(known.family if known is not None and known.config.family == config.family else None)
    except ConfigError as exc:
        raise RunFileError(path, exc.field, exc.message) from None
    return config


def config_json_note(run_dir, config: ExperimentConfig, known: Built | None = None) -> str | None:
    """A warning when a run folder's ``config.json`` is missing, damaged or differs from the settings
    stored with the weights (which every command uses: the weights file is the run's record);
    ``known``: what those settings built, whose family is then not built again to check the file."""
    path = Path(run_dir) / "config.json"
    if not Path(run_dir).is_dir():
        return None
    try:
        if not os.path.lexists(path):
            return f"{path} is missing; the settings stored in the weights file are used"
        written = read_config_file(path, known=known)
    except (RunFileError, ConfigError) as exc:
        return f"{exc}; the settings stored in the weights file are used (a resumed run writes config.json again)"
    changed = written.changes(config)
    if changed:
        return (f"{path} differs from the settings stored in the weights file ({', '.join(changed[:3])}"
                f"{', …' if len(changed) > 3 else ''}); those stored with the weights are used")
    return None


def expected_state(built: Built) -> tuple[list[torch.Size], dict[str, torch.Size], set[int]]:
    """What a training state of ``built``'s experiment holds, as :meth:`MetaTrainer.load_training_state`
    checks it: the optimizer's tensor shapes in order, the algorithm's extra tensors (pretrain's class
    head) and the optimizer slots that may rightly be absent (parameters the algorithm never trains).
    The algorithm starts training on copies: ``built``'s own weights are left as they are."""
    if built.config.is_rl:   # a policy: Adam slots only for the clipped-surrogate outer step (TRPO keeps none)
        shapes = list(built.shapes().values())
        return shapes, {}, set(range(len(shapes)))
    params = {n: p.detach().clone() for n, p in built.params.items()}
    extra = built.algorithm.start_training(built.family, params, built.config.train.seed)
    shapes = [*built.shapes().values(), *(t.shape for t in extra.values())]
    return shapes, {n: t.shape for n, t in extra.items()}, untrained_slots(params, built.algorithm.untrained())


def untrained_slots(params, names: set[str]) -> set[int]:
    """Optimizer indices of the network parameters named in ``names`` (the network's come first)."""
    return {i for i, name in enumerate(params) if name in names}


def check_training_state(path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str],
                         shapes: Sequence[torch.Size], extra: Mapping[str, torch.Size] | None = None,
                         skip: str = "weights.", optional: set[int] = frozenset()) -> int:
    """Check a training state against the meta-parameters it must resume (``shapes``, in the
    optimizer's order; ``extra``: tensors trained beside them, None when not known here); returns
    its iteration. Names starting with ``skip`` (the embedded weights) are checked by the weights' reader;
    slots in ``optional`` belong to parameters never trained, which Adam keeps no state for."""
    iteration = metadata.get("iteration")
    if not isinstance(iteration, str) or not iteration.isdigit() or len(iteration) > 10 \
            or int(iteration) > MAX_ITERATIONS:
        raise RunFileError(path, "iteration", f"expected an iteration count in 0..{MAX_ITERATIONS}, found "
                                              f"{_short(iteration)}")
    _check_generator(path, tensors.get("task_generator"))
    slots: dict[int, set[str]] = {}
    for name, tensor in tensors.items():
        if name == "task_generator" or name.startswith(skip):
            continue
        if not name.startswith("optimizer."):
            if extra is not None and name not in extra:
                raise RunFileError(path, name, "unexpected tensor; this is not the training state of this run's "
                                               "algorithm and network")
            _check_values(path, name, tensor, extra.get(name) if extra is not None else None)
            continue
        index, slot = _slot(path, name, len(shapes))
        _check_values(path, name, tensor, torch.Size([]) if slot == "step" else shapes[index])
        if slot != "exp_avg" and bool((tensor < 0).any()):
            raise RunFileError(path, name, "holds negative values; Adam's step count and second moment never are")
        slots.setdefault(index, set()).add(slot)
    for index, found in sorted(slots.items()):
        if len(found) != len(ADAM_SLOTS):
            missing = ", ".join(f"optimizer.{index}.{s}" for s in ADAM_SLOTS if s not in found)
            raise RunFileError(path, f"optimizer.{index}", f"incomplete Adam state: {missing} is missing")
    required = set(range(len(shapes))) - set(optional)
    if (slots or int(iteration) > 0) and not required <= set(slots):
        raise RunFileError(path, "optimizer", f"optimizer state for {len(required)} tensors expected, found "
                                              f"{len(required & set(slots))}")
    return int(iteration)


def _slot(path, name: str, count: int) -> tuple[int, str]:
    parts = name.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or parts[2] not in ADAM_SLOTS:
        raise RunFileError(path, name, f"unexpected tensor; optimizer entries are optimizer.<0..{count - 1}>."
                                       f"{{{','.join(ADAM_SLOTS)}}}")
    index = int(parts[1])
    if index >= count:
        raise RunFileError(path, name, f"out of range: the optimizer holds {count} tensors "
                                       f"(optimizer.0 to optimizer.{count - 1})")
    return index, parts[2]


def _check_values(path, name: str, tensor: torch.Tensor, shape: torch.Size | None) -> None:
    if shape is not None and tuple(tensor.shape) != tuple(shape):
        raise RunFileError(path, name, f"has shape {tuple(tensor.shape)}, the network needs {tuple(shape)}")
    if not tensor.is_floating_point():
        raise RunFileError(path, name, f"holds {tensor.dtype} values, not floating point numbers")
    if not bool(torch.isfinite(tensor).all()):
        raise RunFileError(path, name, "holds NaN or inf")


def _check_generator(path, state: torch.Tensor | None) -> None:
    reference = torch.Generator().get_state()
    if state is None:
        raise RunFileError(path, "task_generator", "missing (the state of the task sampler)")
    if state.dtype != reference.dtype or tuple(state.shape) != tuple(reference.shape):
        raise RunFileError(path, "task_generator", f"expected {reference.numel()} bytes (uint8) of generator state, "
                                                   f"found {state.dtype} of shape {tuple(state.shape)}")
    try:
        torch.Generator().set_state(state)
    except (RuntimeError, ValueError) as exc:
        raise RunFileError(path, "task_generator", f"not a valid generator state ({exc})") from None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 30 else text[:26] + "…"
