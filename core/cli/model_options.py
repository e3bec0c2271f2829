"""``train --model-file PATH.py:Name [--model-args JSON]`` and ``--model package.module:Name``: meta-train
your own ``nn.Module`` (see :mod:`core.nets.user_module` for the signature), checked on one task
before anything is written; ``--trust-model`` for commands that read such a run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.config import MODELS, ExperimentConfig
from core.errors import ConfigError
from core.nets import user_module

MODEL_FILE_HELP = (f"meta-train your own torch.nn.Module: a class or factory in a Python file, called as "
                   f"{user_module.SIGNATURE} (image families: {user_module.IMAGE_SIGNATURE}); forward(x) takes one "
                   "task's examples [N, ...] and returns [N, out_features]. ANIL adapts its `head`. The file runs as "
                   "Python code with your rights; the run keeps a copy (model.py)")
TRUST_HELP = ("run the run folder's copy of your module (model.py) even though the file it was copied from changed "
              "or is gone (without it, such a run is refused: the copy is code that runs with your rights)")


def model_choice(text: str) -> str:
    """``--model``: a built-in network or ``package.module:Name``."""
    if text in MODELS and text != "module":
        return text
    if ":" in text:
        user_module.split_ref(text)   # raises ConfigError on a malformed name
        return text
    raise argparse.ArgumentTypeError(f"invalid choice {text!r}: mlp, conv4 or package.module:Name (your own "
                                     "module; a file: --model-file PATH.py:Name)")


def add_model_arguments(model: argparse._ArgumentGroup) -> None:
    model.add_argument("--model-file", metavar="PATH.py:Name", help=MODEL_FILE_HELP)
    model.add_argument("--model-args", metavar="JSON", help="keyword arguments for your module, a JSON object, e.g. "
                       "'{\"hidden\": 128}'")


def add_trust_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-model", action="store_true", help=TRUST_HELP)


def apply_model_arguments(args: argparse.Namespace, config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with the user's module the flags name; a file is read, hashed and allowed to run
    (naming it on the command line is asking for it to run)."""
    file_ref, model, raw_args = getattr(args, "model_file", None), getattr(args, "model", None), \
        getattr(args, "model_args", None)
    if file_ref is not None and model is not None:
        raise ConfigError("model.name", "give one of --model and --model-file")
    if raw_args is not None and file_ref is None and not (model and ":" in model) and config.model.name != "module":
        raise ConfigError("model.module_args", "--model-args applies to your own module (--model-file or "
                                               "--model package.module:Name)")
    changes = {}
    if raw_args is not None:
        try:
            values = json.loads(raw_args)
        except json.JSONDecodeError as exc:
            raise ConfigError("model.module_args", f"--model-args is not valid JSON (column {exc.colno}): {exc.msg}; "
                                                   "write an object such as '{\"hidden\": 128}'") from None
        if not isinstance(values, dict):
            raise ConfigError("model.module_args", "--model-args must be a JSON object such as '{\"hidden\": 128}'")
        changes["module_args"] = values
    if file_ref is not None:
        target, name, _ = user_module.split_ref(file_ref)
        if not target.endswith(".py"):
            raise ConfigError(user_module.FIELD, f"--model-file {file_ref}: give a Python file, PATH.py:Name")
        path = Path(target).expanduser().resolve()
        source = user_module.read_source(path)
        user_module.definitions(source)   # a syntax error as file:line before anything runs
        user_module.allow(source)
        changes.update(name="module", module=f"{path}:{name}", module_sha256=source.sha256)
    elif model is not None and ":" in model:
        target, name, is_file = user_module.split_ref(model)
        if is_file:
            raise ConfigError(user_module.FIELD, f"--model {model}: a file is given with --model-file PATH.py:Name")
        changes.update(name="module", module=model, module_sha256="")
    if "module_args" in changes and "module" not in changes:
        changes.setdefault("name", "module")
    config = config.replace("model", **changes) if changes else config
    return _config_file_module(config)


def _config_file_module(config: ExperimentConfig) -> ExperimentConfig:
    """A ``--config`` that names a module file asks for that file to run, as ``--model-file`` does;
    when the file changed since the config was saved, its current content is used and said so."""
    spec = config.model
    if spec.name != "module" or not spec.module or user_module.allowed(spec.module_sha256) is not None:
        return config
    target, name, is_file = user_module.split_ref(spec.module)
    if not is_file:
        return config
    source = user_module.read_source(target)
    user_module.definitions(source)
    user_module.allow(source)
    if spec.module_sha256 and source.sha256 != spec.module_sha256:
        print(f"maml-gui: note: {target} changed since the settings were saved; its current content is used",
              file=sys.stderr)
    return config.replace("model", module_sha256=source.sha256)


def names_module(args: argparse.Namespace) -> bool:
    """Whether the flags (or the --config file) ask for the user's own module."""
    model = getattr(args, "model", None)
    if getattr(args, "model_file", None) or (model and ":" in model):
        return True
    if getattr(args, "config", None) is not None:
        from core.storage.schemas import read_config_file

        return read_config_file(args.config, validate=False).model.name == "module"
    return False


def check_module(config: ExperimentConfig, family=None) -> None:
    """Build the user's network and run it on one task (ConfigError, exit 2, when it does not fit);
    notes (batch norm converted) go to stderr."""
    if config.model.name != "module":
        return
    from core.tasks import build_family

    probe = user_module.probe_config(config, family or build_family(config.family))
    for note in probe.notes:
        print(f"maml-gui: note: {note}", file=sys.stderr)


def admit(path, args) -> None:
    """Before a command reads the run at ``path``: let its copy of the user's module run, or refuse."""
    from core.storage.model_source import admit_run

    for note in admit_run(path, getattr(args, "trust_model", False)):
        print(f"maml-gui: warning: {note}", file=sys.stderr)
