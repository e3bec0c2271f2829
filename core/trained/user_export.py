"""Export of a run trained with the user's own module: the weights are its ``state_dict``, and the
README says to load them with the user's class (this app cannot write that class out for them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch

from core.config import ExperimentConfig
from core.nets.models import build_net
from core.nets.user_module import split_ref

_LOADERS = {
    "safetensors": '''import torch
from safetensors.torch import load_file
{import_line}
model = {call}
tensors = load_file("{name}")
model.load_state_dict({{k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}}{strict})
{train_line}y = model(torch.zeros(5, {input_dim}))
''',
    "pt": '''import torch
{import_line}
model = {call}
model.load_state_dict(torch.load("{name}", weights_only=True){strict})
{train_line}y = model(torch.zeros(5, {input_dim}))
''',
    "onnx": '''import numpy as np
import onnxruntime
session = onnxruntime.InferenceSession("{name}", providers=["CPUExecutionProvider"])
y = session.run(["y"], {{"x": np.zeros((5, {input_dim}), dtype=np.float32)}})[0]
''',
}


def _net(config: ExperimentConfig, family):
    return build_net(config.model, family.input_dim, family.output_dim, getattr(family, "input_shape", None))


def model_spec(config: ExperimentConfig, weights: Mapping[str, torch.Tensor], family) -> dict[str, Any]:
    target, name, is_file = split_ref(config.model.module)
    shape = getattr(family, "input_shape", None)
    spec = {"model": "module", "module": config.model.module, "class": name, "args": dict(config.model.module_args),
            "output_dim": int(family.output_dim)}
    if is_file:
        spec.update(file="model.py", sha256=config.model.module_sha256)
    if shape is not None:
        spec["input_shape"] = list(shape)
    else:
        spec["input_dim"] = int(family.input_dim)
    return spec


def plain_model(config: ExperimentConfig, weights: Mapping[str, torch.Tensor], family) -> torch.nn.Module:
    """A fresh instance of the user's module with the weights loaded (batch norm: batch statistics)."""
    model = _net(config, family).module()
    model.load_state_dict({k[len("model."):]: v for k, v in weights.items() if k.startswith("model.")})
    return model.train()   # batch norm has no running statistics: it always uses the batch's


def readme_lines(fmt: str, config: ExperimentConfig, weights: Mapping[str, torch.Tensor], name: str,
                 family) -> list[str]:
    spec = model_spec(config, weights, family)
    target, cls, is_file = split_ref(config.model.module)
    net = _net(config, family)
    shape = getattr(family, "input_shape", None)
    positional = [*shape[:1], family.output_dim, *shape[1:2]] if shape is not None else [family.input_dim,
                                                                                         family.output_dim]
    kwargs = "".join(f", {k}={v!r}" for k, v in spec["args"].items())
    call = f"{cls}({', '.join(map(str, positional))}{kwargs})"
    module_name = Path(target).stem if is_file else target
    where = (f"your module {cls} from {target} (the run folder keeps a copy as model.py, sha256 "
             f"{config.model.module_sha256[:12]}…)" if is_file else f"your module {cls} from the package {target}")
    classify = family.kind == "classification"
    lines = [f"Network: {where}, built as {call}; y is {'one logit per class' if classify else 'the prediction'}."]
    if fmt != "onnx":
        lines += ["It holds the module's state_dict: load it with your own class, constructed with the same "
                  "arguments."]
    if net.converted:
        lines += [f"Its norm layers ({', '.join(net.converted)}) were trained with each task's batch statistics and "
                  "have no running averages: load with strict=False and keep the model in train mode."]
    import_line = (f"from {module_name} import {cls}   # your file (a copy is the run folder's model.py)" if is_file
                   else f"from {target} import {cls}")
    strict = ", strict=False" if net.converted else ""
    train_line = "model.train()   # batch statistics, as in meta-training\n" if net.converted else ""
    input_dim = ", ".join(map(str, shape)) if shape is not None else str(family.input_dim)
    code = _LOADERS[fmt].format(import_line=import_line, call=call, name=name, strict=strict,
                                train_line=train_line, input_dim=input_dim)
    lines += ["", "Load it:", "", code]
    if fmt == "safetensors":
        lines.insert(1, "The metadata holds the settings, with the module as "
                        f"{json.dumps({k: spec[k] for k in ('module', 'args')})}.")
    return lines
