"""Open weights from anywhere the app wrote them, never running code found in a file.

Accepted: a run folder, a ``.safetensors`` file written by this app (a run's weights or an
export), or a ``.pt`` state_dict read only through ``torch.load(..., weights_only=True)``.
A ``.pt`` holds no settings, so it needs a config: the ``config`` argument (an
:class:`ExperimentConfig` or a path to its JSON) or the ``<file>.config.json`` sidecar that
``export --format pt`` writes. Everything is checked (version, shapes, names, finiteness)
before the caller sees it, so a bad file leaves the caller's state untouched.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch

from core.built import Built
from core.storage.checkpoint import built_for, check_shapes, load_run_built
from core.config import ExperimentConfig
from core.errors import CheckpointError
from core.storage.schemas import read_config_file, regular_file

PT_SUFFIXES = (".pt", ".pth")
Weights = dict[str, torch.Tensor]


def open_weights(path: str | Path, config: ExperimentConfig | str | Path | None = None) -> tuple[ExperimentConfig, Weights]:
    """``(config, {"model.*": …, "inner_lr.*": …})`` ready for ``MetaTrainer.load_weights``.

    A ``.pt`` file brings no learned inner rates; the config's ``inner_lr`` applies instead.
    """
    built, weights = open_weights_built(path, config)
    return built.config, weights


def open_weights_built(path: str | Path, config: ExperimentConfig | str | Path | None = None) -> tuple[Built, Weights]:
    """:func:`open_weights` with what the settings built (on the CPU) to check the weights, in place
    of the settings it holds: hand it on (``LoadedModel(built, weights)``, export) rather than build again."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        raise CheckpointError(f"{path} is an ONNX file, made for inference only; open the .safetensors or .pt export "
                              "(or the run folder) to adapt or continue training")
    if path.suffix.lower() in PT_SUFFIXES and not path.is_dir():
        regular_file(path, "weights file")   # torch.load on a FIFO would block
        config = _pt_config(path, config)
        weights = {f"model.{k}" if not k.startswith(("model.", "inner_lr.")) else k: v for k, v in _read_pt(path).items()}
        built = built_for(path, config)
        check_shapes(path, built, weights)
        return built, weights
    if config is not None:
        raise CheckpointError(f"{path} carries its own settings; a separate config is only for .pt files")
    return load_run_built(path)


def _read_pt(path: Path) -> Weights:
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on foreign files
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path} holds objects other than tensors (possibly code); refused without running "
                              "anything. Only plain state_dict files are opened.") from None
    except Exception:  # torch.load raises RuntimeError, KeyError, EOFError … on damaged files
        raise CheckpointError(f"{path} is not a valid PyTorch weights file (truncated or corrupted?)") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()):
        raise CheckpointError(f"{path} is not a state_dict (a dictionary of named tensors)")
    return dict(data)


def _pt_config(path: Path, config) -> ExperimentConfig:
    if isinstance(config, ExperimentConfig):
        return config
    source = Path(config) if config is not None else config_sidecar(path)
    if not source.exists():
        raise CheckpointError(f"{path} holds weights only; its settings file {source.name} is missing. "
                              "Give the run's config.json (--config)")
    return read_config_file(source, validate=False)   # the shapes are checked against it next


def config_sidecar(out: Path) -> Path:
    """The experiment settings next to a ``.pt`` file, which has no room for them itself."""
    return out.with_name(out.name + ".config.json")


def readme_sidecar(out: Path) -> Path:
    return out.with_name(out.name + ".README.txt")
