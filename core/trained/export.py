"""Export a trained initialisation so it can be used without this app.

The point of meta-training is the learned starting weights (and learned inner rates), so
they leave in three forms: ``safetensors`` (everything, plus the settings needed to rebuild
and adapt the network; this app opens it again), ``pt`` (exactly the ``state_dict`` of
:class:`core.nets.models.MLP`, for ``torch.load(..., weights_only=True)``) and ``onnx`` (the
network for inference only). Each export also writes ``<out>.README.txt`` with the few
lines of plain PyTorch / onnxruntime that load it. Every file goes through
:func:`core.storage.checkpoint.atomic_write`, an existing file is replaced only with ``force``,
and a failure removes whatever this call had already created.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import io
import json
import logging
import os
import stat
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch
from safetensors.torch import save as st_save

from core.built import Built, build
from core.config import FORMAT_VERSION, ExperimentConfig
from core.errors import CheckpointError, ConfigError
from core.nets.models import MLP
from core.nets.policy import LOG_STD
from core.storage.atomic import atomic_write
from core.storage.checkpoint import check_shapes
from core.storage.schemas import RunFileError
from core.trained.weights_io import config_sidecar, open_weights_built, readme_sidecar

if TYPE_CHECKING:
    from core.tasks import TaskFamily

FORMATS = ("safetensors", "pt", "onnx")
SUFFIXES = {"safetensors": ".safetensors", "pt": ".pt", "onnx": ".onnx"}
ONNX_PACKAGES = ("onnx", "onnxscript")
Weights = dict[str, torch.Tensor]


def export_weights(source, fmt: str = "safetensors", out: str | Path | None = None, force: bool = False, *,
                   family=None, readme: bool = True) -> Path:
    """Write ``source`` (a run folder, a weights file that :func:`core.trained.weights_io.open_weights`
    reads, or a ``(config, weights)`` pair such as adapted weights; the config may be what the caller
    built already, a :class:`~core.built.Built`) to ``out`` in ``fmt``; returns ``out``.

    ``family`` is the live task family when the caller has one (its ``normalization``, if any,
    goes into the safetensors metadata); otherwise the one built with the settings.
    """
    if fmt not in FORMATS:
        raise CheckpointError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if out is None:
        raise CheckpointError("give the file to export to")
    out = Path(out)
    built, weights = _source(source, family)
    config, family = built.config, family if family is not None else built.family
    files = {out: None}
    if fmt == "pt":
        files[config_sidecar(out)] = (config.to_json() + "\n").encode()
    if readme:
        files[readme_sidecar(out)] = readme_text(fmt, config, weights, out.name, family).encode("utf-8", "surrogateescape")
    _check_targets(files, force)
    files[out] = _payload(fmt, config, weights, family)
    _write_all(files)
    return out


def model_spec(config: ExperimentConfig, weights: Mapping[str, torch.Tensor], family=None) -> dict[str, Any]:
    """Sizes read from the weights themselves, so they hold even for data-defined families."""
    if config.model.name == "conv4":
        norm = weights.get("model.blocks.0.norm.weight")
        return {"model": "conv4", "input_shape": list(_input_shape(config, family)),
                "output_dim": int(weights["model.head.weight"].shape[0]),
                "channels": config.model.conv_channels, "depth": config.model.conv_depth,
                "downsample": config.model.downsample, "batch_norm": config.model.batch_norm,
                "steps": int(norm.shape[0]) if norm is not None and norm.dim() == 2 else 1}
    n = len(config.model.hidden) + 1
    return {"input_dim": int(weights["model.layers.0.weight"].shape[1]),
            "output_dim": int(weights[f"model.layers.{n - 1}.weight"].shape[0]),
            "hidden": list(config.model.hidden), "activation": config.model.activation}


def _input_shape(config: ExperimentConfig, family=None) -> tuple[int, int, int]:
    if family is None:
        from core.tasks import build_family

        family = build_family(config.family)
    return tuple(family.input_shape)


def state_dict(weights: Mapping[str, torch.Tensor]) -> Weights:
    """The ``model.*`` tensors renamed to the plain module's names (``layers.0.weight`` …)."""
    return {k[len("model."):]: v.detach().cpu().clone().contiguous() for k, v in weights.items() if k.startswith("model.")}


def plain_model(config: ExperimentConfig, weights: Mapping[str, torch.Tensor], family=None) -> torch.nn.Module:
    spec = model_spec(config, weights, family)
    if spec.get("model") == "conv4":
        from core.nets.conv import ConvNet4

        model = ConvNet4(tuple(spec["input_shape"]), spec["output_dim"], spec["channels"], spec["depth"],
                         spec["downsample"], spec["batch_norm"], spec["steps"])
    else:
        model = MLP(spec["input_dim"], spec["output_dim"], tuple(spec["hidden"]), spec["activation"])
    plain = state_dict(weights)
    plain.pop(LOG_STD, None)   # a Gaussian policy's spread: the module gives the action mean
    model.load_state_dict(plain)
    return model.eval()


# -- payloads -----------------------------------------------------------------------------------
def _payload(fmt: str, config: ExperimentConfig, weights: Weights, family: TaskFamily) -> bytes:
    if fmt == "safetensors":
        return safetensors_bytes(config, weights, family)
    if fmt == "pt":
        buf = io.BytesIO()
        torch.save(state_dict(weights), buf)
        return buf.getvalue()
    return onnx_bytes(config, weights, family)


def safetensors_bytes(config: ExperimentConfig, weights: Weights, family: TaskFamily) -> bytes:
    """Same layout as a run's ``weights.safetensors`` (so this app reads it back), plus
    the model spec, algorithm and normalization statistics as their own metadata keys."""
    metadata = {"format_version": str(FORMAT_VERSION), "config": json.dumps(config.to_dict()),
                "model": json.dumps(model_spec(config, weights, family)), "algorithm": config.algorithm.name,
                "task_kind": family.kind}
    if getattr(family, "normalization", None) is not None:
        metadata["normalization"] = _json(family.normalization)
    tensors = {k: v.detach().cpu().contiguous() for k, v in weights.items() if k.startswith(("model.", "inner_lr."))}
    return st_save(tensors, metadata=metadata)


def missing_onnx_packages() -> list[str]:
    """The optional packages the ONNX export needs and this Python lacks."""
    return [p for p in ONNX_PACKAGES if importlib.util.find_spec(p) is None]


def onnx_install_hint() -> str:
    """One line naming what is missing and how to install it (the CLI and the window show the same)."""
    return f"ONNX export needs the optional packages {', '.join(missing_onnx_packages())}: pip install 'maml-gui[onnx]'"


def onnx_bytes(config: ExperimentConfig, weights: Weights, family: TaskFamily) -> bytes:
    """The network as ONNX: input ``x [batch, input_dim]`` (``[batch, C, H, W]`` for a conv net; dynamic
    batch), output ``y``. A conv net's batch norm uses the statistics of the batch it is given."""
    if missing_onnx_packages():
        raise CheckpointError(onnx_install_hint())
    import onnx

    model = plain_model(config, weights, family)
    spec = model_spec(config, weights, family)
    example = torch.zeros(2, *(spec["input_shape"] if spec.get("model") == "conv4" else (spec["input_dim"],)))
    names = {"input_names": ["x"], "output_names": ["y"]}
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the exporter logs progress and missing-torchvision notes
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if _dynamo_exporter():
                proto = torch.onnx.export(model, (example,), None, dynamo=True, verbose=False,
                                          dynamic_shapes=({0: torch.export.Dim("batch")},), **names).model_proto
            else:
                buf = io.BytesIO()
                torch.onnx.export(model, (example,), buf, dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, **names)
                proto = onnx.load_from_string(buf.getvalue())
    except Exception as exc:  # the exporter raises many kinds; the user needs one readable line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"ONNX export failed: {first}") from None
    finally:
        quiet.setLevel(level)
    props = {"maml_explorer.format_version": str(FORMAT_VERSION), "maml_explorer.config": json.dumps(config.to_dict())}
    if getattr(family, "normalization", None) is not None:
        props["maml_explorer.normalization"] = _json(family.normalization)
    onnx.helper.set_model_props(proto, props)
    return proto.SerializeToString()


def _dynamo_exporter() -> bool:
    """torch >= 2.5 has the supported torch.export-based exporter; older torch only the TorchScript one."""
    return "dynamo" in inspect.signature(torch.onnx.export).parameters


# -- files ------------------------------------------------------------------------------------
def _source(source, family=None) -> tuple[Built, Weights]:
    if not isinstance(source, tuple):
        return open_weights_built(source)
    built, weights = source[0], dict(source[1])
    if not isinstance(built, Built):
        try:
            built = build(built, family)
        except ConfigError as exc:
            raise RunFileError("the weights to export", exc.field,
                               f"the stored configuration is invalid: {exc.message}") from None
    check_shapes("the weights to export", built, weights)
    return built, weights


_SPECIAL = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _check_targets(files: Mapping[Path, Any], force: bool) -> None:
    """``force`` replaces regular files only: a FIFO or device node in the way is refused, not
    swapped for a file (its reader would never see the export)."""
    for path in files:
        try:
            mode = path.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise CheckpointError(f"cannot check {path}: {exc.strerror or exc}") from None
        if stat.S_ISDIR(mode):
            raise CheckpointError(f"{path} is a folder; give a file name to export to")
        kind = next((name for test, name in _SPECIAL if test(mode)), None)
        if kind is not None:
            raise CheckpointError(f"{path} is {kind}, not a regular file; --force replaces regular files only: "
                                  "give a file name to export to")
        if not force:
            raise CheckpointError(f"{path} exists; use --force to overwrite")


def _write_all(files: Mapping[Path, bytes]) -> None:
    """Write each file atomically; if one fails, remove the ones this call created."""
    created: list[Path] = []
    try:
        for path, data in files.items():
            existed = path.exists()
            atomic_write(path, data)
            if not existed:
                created.append(path)
    except CheckpointError:
        for path in created:
            try:
                os.unlink(path)
            except OSError:
                pass
        raise


def _json(value: Any) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"the family's normalization statistics cannot be stored: {exc}") from None


# -- README -----------------------------------------------------------------------------------
_ACT = {"relu": "torch.relu", "tanh": "torch.tanh", "sigmoid": "torch.sigmoid", "gelu": "torch.nn.functional.gelu",
        "silu": "torch.nn.functional.silu", "leaky_relu": "torch.nn.functional.leaky_relu"}

_MLP_CODE = '''import torch

class MLP(torch.nn.Module):
    """Linear layers {sizes} with {activation} between them."""
    def __init__(self, sizes={sizes}):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
    def forward(self, x):
        for layer in self.layers[:-1]:
            x = {act}(layer(x))
        return self.layers[-1](x)
'''

_CONV_CODE = '''import torch
import torch.nn.functional as F

class Block(torch.nn.Module):
    def __init__(self, c_in, channels, stride, norm, steps):
        super().__init__()
        self.conv = torch.nn.Conv2d(c_in, channels, 3, stride=stride, padding=1, bias=norm == "off")
        if norm != "off":   # batch norm with the statistics of the batch given, never running ones
            self.norm = torch.nn.Module()
            shape = (steps, channels) if norm == "per_step" else (channels,)
            self.norm.weight = torch.nn.Parameter(torch.ones(shape))
            self.norm.bias = torch.nn.Parameter(torch.zeros(shape))
        self.stride = stride
    def forward(self, x, step=0):
        x = self.conv(x)
        if hasattr(self, "norm"):
            w, b = self.norm.weight, self.norm.bias
            if w.dim() == 2:   # per-step sets: the set of inner step `step` (the last beyond them)
                w, b = w[min(step, w.shape[0] - 1)], b[min(step, b.shape[0] - 1)]
            x = F.batch_norm(x, None, None, w, b, training=True, eps=1e-5)
        x = torch.relu(x)
        return F.max_pool2d(x, 2) if self.stride == 1 else x

class ConvNet4(torch.nn.Module):
    """{depth} blocks of 3x3 conv ({channels} channels), batch norm ({norm}), ReLU, {down}; a linear head.
    x: [batch, {c}, {h}, {w}], one task's images (batch norm uses their statistics)."""
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList(Block({c} if i == 0 else {channels}, {channels}, {stride}, "{norm}", {steps})
                                          for i in range({depth}))
        self.head = torch.nn.Linear({features}, {ways})
    def forward(self, x, step=0):
        for block in self.blocks:
            x = block(x, step)
        return self.head(x.flatten(1))
'''

_LOADERS = {
    "safetensors": '''from safetensors import safe_open
from safetensors.torch import load_file
tensors = load_file("{name}")
model = {cls}()
model.load_state_dict({{k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}})
with safe_open("{name}", "pt") as f:
    metadata = f.metadata()  # keys: format_version, config, model, algorithm, task_kind[, normalization]
y = model(torch.zeros(5, {input_dim}))
''',
    "pt": '''model = {cls}()
model.load_state_dict(torch.load("{name}", weights_only=True))
y = model(torch.zeros(5, {input_dim}))
''',
    "onnx": '''import numpy as np
import onnxruntime
session = onnxruntime.InferenceSession("{name}", providers=["CPUExecutionProvider"])
y = session.run(["y"], {{"x": np.zeros((5, {input_dim}), dtype=np.float32)}})[0]
''',
}

_NOTES = {
    "safetensors": "Holds the meta-learned weights (model.*) and any learned inner learning rates (inner_lr.*);\n"
                   "the metadata holds the full experiment settings. MAML Explorer opens this file again.",
    "pt": "Holds exactly the state_dict of the network below (no learned inner learning rates: export\n"
          "safetensors for those). The experiment settings are in {name}.config.json, which MAML Explorer\n"
          "reads when it opens this file.",
    "onnx": "The meta-learned network for inference: input \"x\" [batch, {input_dim}] float32, output \"y\" "
            "[batch, {output_dim}].\nTo fine-tune it on a new task, export safetensors or pt instead.",
}


def _normalization_lines(stats) -> list[str]:
    """How to use the training statistics; the CSV family's keys are spelled out, others shown as is."""
    if stats is None:
        return []
    if isinstance(stats, Mapping) and {"feature_mean", "feature_std"} <= set(stats):
        lines = ["", f"The network was trained on standardized data. Inputs, in the column order {stats.get('features')}:",
                 f"  x = (x - torch.tensor({stats['feature_mean']})) / torch.tensor({stats['feature_std']})"]
        if stats.get("target_mean") is not None:
            lines.append(f"and the prediction in {stats.get('target')!r} units: "
                         f"y * {stats['target_std']!r} + {stats['target_mean']!r}")
        return lines
    return ["", f"The network was trained on normalized data; apply these statistics first: {_json(stats)}"]


def loading_code(fmt: str, config: ExperimentConfig, weights: Mapping[str, torch.Tensor], name: str,
                 family=None) -> str:
    """Runnable code (torch, safetensors or onnxruntime only) that loads an exported file."""
    spec = model_spec(config, weights, family)
    if spec.get("model") == "conv4":
        from core.nets.conv import feature_shape

        c, h, w = spec["input_shape"]
        features = feature_shape((c, h, w), spec["channels"], spec["depth"], spec["downsample"])
        code = _CONV_CODE.format(depth=spec["depth"], channels=spec["channels"], norm=spec["batch_norm"],
                                 down="2x2 max-pool" if spec["downsample"] == "max" else "stride-2 convolutions",
                                 c=c, h=h, w=w, stride=1 if spec["downsample"] == "max" else 2, steps=spec["steps"],
                                 features=features[0] * features[1] * features[2], ways=spec["output_dim"])
        head = "" if fmt == "onnx" else code + "\n"
        return head + _LOADERS[fmt].format(name=name, input_dim=f"{c}, {h}, {w}", cls="ConvNet4")
    sizes = [spec["input_dim"], *spec["hidden"], spec["output_dim"]]
    act = spec["activation"]
    head = "" if fmt == "onnx" else _MLP_CODE.format(sizes=sizes, activation=act, act=_ACT[act]) + "\n"
    code = head + _LOADERS[fmt].format(name=name, input_dim=spec["input_dim"], cls="MLP")
    if LOG_STD in state_dict(weights):   # a policy: its log-std is no module parameter
        code = code.replace('model.load_state_dict(torch.load("{}", weights_only=True))'.format(name),
                            'state = torch.load("{}", weights_only=True)\nlog_std = state.pop("log_std")  '
                            '# the Gaussian policy\'s spread: action = y + exp(log_std) * noise\n'
                            'model.load_state_dict(state)'.format(name))
        code = code.replace('if k.startswith("model.")}})'.replace("}}", "}"),
                            'if k.startswith("model.") and k != "model.log_std"})\n'
                            'log_std = tensors["model.log_std"]  # the Gaussian policy\'s spread')
    return code


def readme_text(fmt: str, config: ExperimentConfig, weights: Mapping[str, torch.Tensor], name: str,
                family: TaskFamily) -> str:
    """The sidecar: what the file holds, the network, and the code that loads it."""
    spec = model_spec(config, weights, family)
    classify = family.kind == "classification"
    if spec.get("model") == "conv4":
        shape = "x".join(map(str, spec["input_shape"]))
        notes = {**spec, "input_dim": ", ".join(map(str, spec["input_shape"]))}
        network = (f"Network: conv-4 on {shape} images, {spec['depth']} blocks of {spec['channels']} channels "
                   f"({spec['downsample']} downsampling, batch norm {spec['batch_norm']}), "
                   f"{spec['output_dim']} outputs; y is one logit per class.")
    else:
        notes = spec
        network = (f"Network: {' -> '.join(map(str, [spec['input_dim'], *spec['hidden'], spec['output_dim']]))}, "
                   f"{spec['activation']} between layers; y is {'one logit per class' if classify else 'the prediction'}.")
    lines = [f"{name}: weights meta-learned by MAML Explorer ({config.algorithm.name} on the {config.family.name} family).",
             _NOTES[fmt].format(name=name, **notes), "", network]
    if family.kind == "rl":
        lines[-1] = (f"Policy: {' -> '.join(map(str, [spec['input_dim'], *spec['hidden'], spec['output_dim']]))}, "
                     f"{spec['activation']} between layers; x is the observation of the {config.family.name} "
                     "environment, y the mean of the Gaussian action (its state-independent log-std is the tensor "
                     "log_std; the ONNX file gives the mean only).")
    lines += _normalization_lines(getattr(family, "normalization", None))
    lines += ["", "Load it (plain Python, no MAML Explorer needed):", "", loading_code(fmt, config, weights, name, family)]
    return "\n".join(lines)
