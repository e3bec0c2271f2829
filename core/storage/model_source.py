"""A run's own copy of the user's module file, ``model.py`` beside ``config.json``.

A run trained with ``--model-file net.py:Net`` records the file's sha256 in its settings and keeps
the file's bytes as ``model.py``, so ``evaluate``, ``export``, ``adapt``, ``--resume`` and the window
rebuild the very network the weights belong to, even after ``net.py`` changed or is gone. The
run's copy is always the one used; before it runs, :func:`admit_run` checks it against the
recorded hash and against the original file:

* the copy differs from the recorded hash (edited): refused;
* the original file still has the recorded content: the user's own file, already run when they
  trained: the copy runs;
* the original changed or is gone (or the run came from elsewhere): refused unless the user says
  ``trust`` (``--trust-model``; the window asks); then the copy runs and a note says so.
"""

from __future__ import annotations

from pathlib import Path

from safetensors import safe_open

from core.config import ExperimentConfig
from core.errors import CheckpointError, ConfigError
from core.nets import user_module
from core.storage.atomic import atomic_write
from core.storage.schemas import read_config_file

SOURCE_FILE = "model.py"
FIELD = user_module.FIELD


def uses_file(config: ExperimentConfig) -> bool:
    """Whether ``config``'s network is a user's module file (which the run folder must keep)."""
    return config.model.name == "module" and user_module.split_ref(config.model.module)[2]


def write_source(run_dir: str | Path, config: ExperimentConfig) -> None:
    """Keep the module file's bytes in the run folder (once; it never changes during a run)."""
    if not uses_file(config):
        return
    path = Path(run_dir) / SOURCE_FILE
    if user_module.sha256_of(path) == config.model.module_sha256:
        return
    source = user_module.allowed(config.model.module_sha256)
    if source is None:   # cannot happen while training: the network was built from it
        raise CheckpointError(f"the source of {config.model.module} is not loaded; cannot keep its copy in {run_dir}")
    atomic_write(path, source.text.encode("utf-8"))


def recorded_config(path: str | Path) -> ExperimentConfig | None:
    """The settings of the run at ``path`` (a run folder or a file in one: its ``config.json``; an
    exported file: its ``.config.json`` sidecar or its safetensors metadata), read without building
    anything; None when there are none to read."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    candidates = [folder / "config.json"] if path.is_dir() or path.name == "weights.safetensors" else \
        [path.with_name(path.name + ".config.json"), folder / "config.json"]
    for candidate in candidates:
        if candidate.is_file():
            try:
                return read_config_file(candidate, validate=False)
            except (CheckpointError, ConfigError):
                return None
    if path.suffix.lower() == ".safetensors" and path.is_file():
        try:
            with safe_open(str(path), "pt") as f:
                return ExperimentConfig.from_json((f.metadata() or {}).get("config", ""))
        except Exception:  # noqa: BLE001 - not ours or damaged: the reader says why, later
            return None
    return None


def admit_run(path: str | Path, trust: bool = False) -> list[str]:
    """Allow the run's ``model.py`` to run in this process, or raise ConfigError saying why not
    (see the module docstring). Returns notes for the user (the original file changed …)."""
    config = recorded_config(path)
    if config is None or not uses_file(config):
        return []
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    spec = config.model
    original, name, _ = user_module.split_ref(spec.module)
    copy = folder / SOURCE_FILE
    if not copy.is_file() and not Path(path).is_dir() and Path(path).name != "weights.safetensors":
        return _admit_original(path, original, name, spec.module_sha256)   # an exported file
    if not copy.is_file():
        raise ConfigError(FIELD, f"{folder} was trained with your module {name} from {original} but holds no "
                                 f"{SOURCE_FILE} (the run's copy of it); put that file back as {copy}")
    source = user_module.read_source(copy)
    if source.sha256 != spec.module_sha256:
        raise ConfigError(FIELD, f"{copy} differs from the file this run was trained with (sha256 "
                                 f"{spec.module_sha256[:12]}…, the copy now {source.sha256[:12]}…); it was edited: "
                                 "restore it, or train a new run with the edited module")
    now = user_module.sha256_of(original)
    if now == spec.module_sha256:
        user_module.allow(source)
        return []
    what = "is gone" if now is None else "has changed"
    if not trust:
        raise ConfigError(FIELD, f"{copy} is Python code (class {name}) that would run with your rights, and "
                                 f"{original}, the file it was copied from, {what} since the run was trained: "
                                 "read the copy, then add --trust-model to run it")
    user_module.allow(source)
    return [f"{original} {what} since this run was trained; the run's own copy {copy} is used"]


def _admit_original(path, original: str, name: str, sha256: str) -> list[str]:
    """An exported file has no copy beside it: the user's own file runs when it still has the
    content the weights were trained with."""
    if user_module.sha256_of(original) != sha256:
        raise ConfigError(FIELD, f"{path} was trained with your module {name} from {original}, which is gone or has "
                                 "changed since: use the run folder, which keeps its copy (model.py)")
    source = user_module.read_source(original)
    if source.sha256 == sha256:
        user_module.allow(source)
    return []


def permission_needed(path: str | Path) -> str | None:
    """Why the run at ``path`` needs the user's permission before it can be opened (its copy of
    their module has not been allowed to run in this process), in words for a prompt; else None."""
    config = recorded_config(path)
    if config is None or not uses_file(config) or user_module.allowed(config.model.module_sha256) is not None:
        return None
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    original, name, _ = user_module.split_ref(config.model.module)
    now = user_module.sha256_of(original)
    state = ("" if now == config.model.module_sha256 else
             " (that file is gone now)" if now is None else " (that file has changed since; the run's copy is used)")
    return (f"The run in {folder} was trained with your own module {name} from {original}{state}. Opening it runs "
            f"its copy, {folder / SOURCE_FILE}, as Python code with your rights.")
