"""Your own ``nn.Module`` as the meta-learned network, driven by the generic path (``vmap(functional_call)``).

The model spec names it ``FILE.py:Name`` (a file; the run keeps a copy, ``model.py``) or
``package.module:Name`` (an installed module). ``Name`` is a class or factory function called as

* ``Name(in_features, out_features, **model_args)`` for vector families, and
* ``Name(in_channels, ways, image_size, **model_args)`` for image families (square images),

and its ``forward(x)`` gets one task's examples, ``x [N, in_features]`` or ``[N, C, H, W]``, and
returns ``[N, out_features]`` (regression targets, or one logit per class). ANIL adapts the
parameters under an attribute ``head``; batch norm uses each task's batch statistics (running
averages are dropped: see :func:`batch_statistics`).

A file runs as Python code with the user's rights, like any training script; so this module only
runs code the user allowed in this process (:func:`allow`: they named the file on the command
line or picked it in the window, or a run folder's copy was admitted by
:mod:`core.storage.model_source`). Which names a file defines is found with :mod:`ast`, without
running it. Every failure is a :class:`~core.errors.ConfigError` on ``model.module``: one line naming
the file (and the line of it that raised), the class and what to change.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import linecache
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from core.errors import ConfigError

Params = dict[str, torch.Tensor]

FIELD = "model.module"
SIGNATURE = "Name(in_features, out_features, **model_args)"
IMAGE_SIGNATURE = "Name(in_channels, ways, image_size, **model_args)"


@dataclass(frozen=True)
class Source:
    """A file's code as read once: what is hashed is what runs."""

    text: str
    filename: str      # where it was read from; tracebacks and messages name it
    sha256: str


@dataclass(frozen=True)
class Definition:
    """A top-level class or function of a file, found by parsing it."""

    name: str
    kind: str          # "class" | "function"
    line: int
    signature: str     # "(in_features, out_features, hidden=40)"


_ALLOWED: dict[str, Source] = {}          # sha256 -> code the user allowed to run in this process
_NAMESPACES: dict[tuple[str, str], dict] = {}   # (sha256, file) -> the namespace it defined (run once)


def split_ref(ref: str) -> tuple[str, str, bool]:
    """``"net.py:Net"`` -> ``("net.py", "Net", True)``; ``"pkg.mod:Net"`` -> ``("pkg.mod", "Net", False)``."""
    target, sep, name = str(ref).rpartition(":")
    if not sep or not target or not name.isidentifier():
        raise ConfigError(FIELD, f"{ref!r}: write FILE.py:Name (a file) or package.module:Name (an installed module)")
    is_file = target.endswith(".py") or "/" in target or "\\" in target
    return target, name, is_file


def read_source(path: str | Path) -> Source:
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(FIELD, f"{path}: no such file; give the Python file that defines your module") from None
    except IsADirectoryError:
        raise ConfigError(FIELD, f"{path} is a folder; give the Python file that defines your module") from None
    except OSError as exc:
        raise ConfigError(FIELD, f"{path}: cannot read it: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(FIELD, f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    return Source(text, str(path), hashlib.sha256(data).hexdigest())


def sha256_of(path: str | Path) -> str | None:
    """The file's hash now, or None when it cannot be read."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def allow(source: Source) -> None:
    """Let ``source`` run in this process: the user named or picked it (or admitted a run's copy)."""
    _ALLOWED[source.sha256] = source


def allowed(sha256: str) -> Source | None:
    return _ALLOWED.get(sha256)


def definitions(source: Source) -> list[Definition]:
    """The public top-level classes and functions, by parsing (nothing runs). A syntax error is
    reported as ``file:line``."""
    try:
        tree = ast.parse(source.text, filename=source.filename)
    except SyntaxError as exc:
        raise ConfigError(FIELD, f"{source.filename}:{exc.lineno}: syntax error: {exc.msg}; fix the file") from None
    found = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
            found.append(Definition(node.name, "class", node.lineno, _signature(init, skip=1) if init else "()"))
        elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            found.append(Definition(node.name, "function", node.lineno, _signature(node)))
    return found


def _signature(node: ast.FunctionDef, skip: int = 0) -> str:
    args = node.args
    plain = [*args.posonlyargs, *args.args][skip:]
    defaults = [None] * (len(plain) - len(args.defaults)) + list(args.defaults)
    parts = [a.arg if d is None else f"{a.arg}={ast.unparse(d)}" for a, d in zip(plain, defaults)]
    if args.vararg:
        parts.append(f"*{args.vararg.arg}")
    parts += [a.arg if d is None else f"{a.arg}={ast.unparse(d)}" for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        parts.append(f"**{args.kwarg.arg}")
    return f"({', '.join(parts)})"


# -- running the code ------------------------------------------------------------------------------
def user_line(exc: BaseException, filename: str) -> str:
    """``file:line`` of the deepest frame of the user's file in ``exc``'s traceback (else the file)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"{filename}:{line}" if line else filename


def _said(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _namespace(source: Source) -> dict:
    """Run the file once (it was allowed) and keep what it defined."""
    key = (source.sha256, source.filename)   # the file's own name in tracebacks, also for equal copies
    if key in _NAMESPACES:
        return _NAMESPACES[key]
    definitions(source)   # a syntax error as file:line, before anything runs
    name = f"maml_user_module_{source.sha256[:16]}_{len(_NAMESPACES)}"
    module = types.ModuleType(name)
    module.__file__ = source.filename
    lines = source.text.splitlines(keepends=True)
    linecache.cache[source.filename] = (len(source.text), None, lines, source.filename)   # tracebacks show the lines
    sys.modules[name] = module   # pickling, dataclasses and inspect look classes up there
    try:
        # The user asked for this file to run as their network, as a training script would: the one
        # place the app runs code it did not ship (see the module docstring).
        exec(compile(source.text, source.filename, "exec"), module.__dict__)  # noqa: S102
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(FIELD, f"{user_line(exc, source.filename)}: running the file raised {_said(exc)}; "
                                 "fix the file") from None
    _NAMESPACES[key] = module.__dict__
    return module.__dict__


def resolve(ref: str, sha256: str = "") -> tuple[Callable[..., Any], str]:
    """The class or factory ``ref`` names and the file it lives in. A file's code runs only when
    allowed (by its hash); an installed module is imported as Python imports it."""
    target, name, is_file = split_ref(ref)
    if is_file:
        source = _ALLOWED.get(sha256)
        if source is None:
            raise ConfigError(FIELD, f"{target}:{name} is your own code, not yet allowed to run here: open the run "
                                     "folder that keeps its copy (model.py), or pick the file again in the window "
                                     "(Model → Network → Your own module)")
        namespace, filename = _namespace(source), source.filename
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ConfigError(FIELD, f"{target}: cannot import it ({_said(exc)}); install the package or give "
                                     "FILE.py:Name") from None
        except Exception as exc:
            raise ConfigError(FIELD, f"{target}: importing it raised {_said(exc)}") from None
        namespace, filename = vars(module), getattr(module, "__file__", None) or target
    factory = namespace.get(name)
    if factory is None or not callable(factory):
        known = ", ".join(d.name for d in _known(filename, is_file)) or "no public class or function"
        raise ConfigError(FIELD, f"{filename}: no class or function {name!r} (it defines {known}); "
                                 "give one of them after the colon")
    return factory, filename


def _known(filename: str, is_file: bool) -> list[Definition]:
    try:
        return definitions(read_source(filename)) if is_file or filename.endswith(".py") else []
    except ConfigError:
        return []


# -- building the network --------------------------------------------------------------------------
def positional_args(output_dim: int, input_dim: int, input_shape) -> tuple[tuple[int, ...], str]:
    if input_shape is not None:
        return (int(input_shape[0]), int(output_dim), int(input_shape[1])), IMAGE_SIGNATURE
    return (int(input_dim), int(output_dim)), SIGNATURE


def construct(factory, filename: str, name: str, args: tuple, kwargs: dict, seed: int) -> nn.Module:
    """``factory(*args, **kwargs)`` with torch's RNG seeded (a fork, restored after), checked."""
    try:
        inspect.signature(factory).bind(*args, **kwargs)
    except TypeError as exc:
        try:
            shown = f"{name}{inspect.signature(factory)}"
        except (TypeError, ValueError):
            shown = name
        raise ConfigError(FIELD, f"{filename}: {shown} cannot be called with {_call(name, args, kwargs)}: {exc}; "
                                 "change the JSON arguments (--model-args) or the signature") from None
    except ValueError:
        pass   # a builtin without a signature: the call itself says
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)   # the initialisation follows the run's seed, the caller's RNG is untouched
        try:
            module = factory(*args, **kwargs)
        except Exception as exc:
            raise ConfigError(FIELD, f"{user_line(exc, filename)}: {_call(name, args, kwargs)} raised {_said(exc)}; "
                                     f"change {name} or --model-args") from None
    if not isinstance(module, nn.Module):
        raise ConfigError(FIELD, f"{filename}: {name}(…) returned {type(module).__name__}, not a torch.nn.Module; "
                                 "return the network")
    if not any(True for _ in module.parameters()):
        raise ConfigError(FIELD, f"{filename}: {name} has no parameters to meta-learn")
    return module


def _call(name: str, args: tuple, kwargs: dict) -> str:
    return f"{name}({', '.join([*map(str, args), *(f'{k}={v!r}' for k, v in kwargs.items())])})"


def batch_statistics(module: nn.Module) -> list[str]:
    """Make every batch/instance norm layer use the statistics of the batch it is given, as MAML
    does (transductive batch norm): ``track_running_stats=True`` layers are converted to
    ``False`` and their running averages dropped (a running average over tasks would be updated
    in place under ``vmap``, and would mix tasks). Returns the names converted."""
    converted = []
    for name, layer in module.named_modules():
        if isinstance(layer, nn.modules.batchnorm._NormBase) and layer.track_running_stats:
            layer.track_running_stats = False
            layer.running_mean = layer.running_var = layer.num_batches_tracked = None
            converted.append(name or type(layer).__name__)
    return converted


class UserModuleNet:
    """The user's module on the generic path (as :class:`core.nets.models.ModuleNet`, plus seeded
    construction and batch norm per task). ``head_names``: the parameters under ``head`` when the
    module has one (ANIL adapts them), else the last two."""

    def __init__(self, make: Callable[[int], nn.Module], ref: str, input_dim: int, output_dim: int, input_shape):
        self._make, self.ref = make, ref
        module = make(0)
        self.converted = batch_statistics(module)
        # a point's output depends on the other points of its batch: support and query get their own passes
        self.batch_statistics = any(isinstance(m, nn.modules.batchnorm._NormBase) for m in module.modules())
        self.module_ = module
        self.names = [n for n, _ in module.named_parameters()]
        head = [n for n in self.names if n.startswith("head.")]
        self.head_names = head or self.names[-2:]
        self.has_head = bool(head)
        self.input_dim, self.output_dim = input_dim, output_dim
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self._sample_dims = 3 if input_shape is not None else 1
        self._dims = {n: p.dim() for n, p in module.named_parameters()}
        module.train()   # batch norm: batch statistics (they have no running ones any more)

    @property
    def name(self) -> str:
        return split_ref(self.ref)[1]

    def init(self, generator: torch.Generator, device="cpu", dtype=None) -> Params:
        """A fresh construction, seeded from ``generator`` (so each seed gives its own start)."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        fresh = self._make(seed)
        self.module_.to(device)   # the user's own buffers follow the weights
        return {n: p.detach().clone().to(device=device, dtype=dtype or p.dtype) for n, p in fresh.named_parameters()}

    def forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """``x [T, N, …]`` (per-task or shared weights; each task's batch is its own, for batch
        norm) or rows ``[N, …]`` with shared weights."""
        if x.dim() == self._sample_dims + 1:
            return torch.func.functional_call(self.module_, params, (x,))
        dims = {n: 0 if p.dim() > self._dims[n] else None for n, p in params.items()}

        def one(p, xt):
            return torch.func.functional_call(self.module_, p, (xt,))

        return torch.func.vmap(one, in_dims=(dims, 0), randomness="different")(params, x)

    def module(self) -> nn.Module:
        """A fresh instance of the user's module (batch norm converted) for ``load_state_dict``."""
        module = self._make(0)
        batch_statistics(module)
        return module


def build_user_net(spec, input_dim: int, output_dim: int, input_shape=None) -> UserModuleNet:
    """The network ``spec`` (a model spec named "module") describes, for a family of these sizes."""
    factory, filename = resolve(spec.module, spec.module_sha256)
    name = split_ref(spec.module)[1]
    args, _ = positional_args(output_dim, input_dim, input_shape)
    kwargs = dict(spec.module_args)

    def make(seed: int) -> nn.Module:
        return construct(factory, filename, name, args, kwargs, seed)

    net = UserModuleNet(make, spec.module, input_dim, output_dim, input_shape)
    net.filename = filename
    return net


# -- checking it on one task -----------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    """What the window's model panel shows: the module's size and its output on one sampled task."""

    parameters: int
    input_shape: tuple[int, ...]     # one task's support inputs
    output_shape: tuple[int, ...]    # the module's output on them
    notes: tuple[str, ...] = ()      # batch norm converted, …


def probe(net: UserModuleNet, family, algorithm: str, shots: int, seed: int = 0) -> Probe:
    """Run the module forward and backward on one sampled task, as training will, and check its
    output against the family's targets; raises ConfigError naming the file, line and class."""
    name, filename = net.name, getattr(net, "filename", net.ref)
    if algorithm == "anil" and not net.has_head:
        raise ConfigError(FIELD, f"{filename}: ANIL adapts only the network's head: give {name} an attribute "
                                 "`head` (its last layer, e.g. self.head = nn.Linear(hidden, out_features)) or choose "
                                 "another algorithm")
    if algorithm == "pretrain" and family.kind == "classification" and getattr(family, "sampler", None) is not None:
        head = [n for n in net.names if n.startswith("head.")]
        if sorted(head) != ["head.bias", "head.weight"]:
            raise ConfigError(FIELD, f"{filename}: pretraining on episodes swaps {name}'s N-way head for a head over "
                                     "every class: give it `head = nn.Linear(features, ways)` as its last layer")
    batch = family.sample(1, shots, 1, torch.Generator().manual_seed(seed))
    params = {n: p.requires_grad_(True) for n, p in net.init(torch.Generator().manual_seed(seed)).items()}
    x, y = batch.support_x, batch.support_y
    try:
        out = net.forward(params, x)
    except Exception as exc:
        raise ConfigError(FIELD, f"{user_line(exc, filename)}: {name}.forward raised {_said(exc)} on one task's "
                                 f"inputs of shape {list(x.shape[1:])}; change {name}.forward") from None
    n = x.shape[1]
    want = (1, n, family.output_dim)
    if tuple(out.shape) != want:
        what = "one logit per class" if family.kind == "classification" else "the targets"
        raise ConfigError(FIELD, f"{filename}: {name} returns shape {list(out.shape[1:])} for {n} examples; the "
                                 f"{family.kind} tasks need [{n}, {family.output_dim}] ({what}): give its last layer "
                                 f"{family.output_dim} outputs and keep the batch dimension first")
    try:
        if family.kind == "classification":
            loss = torch.nn.functional.cross_entropy(out.reshape(n, -1), y.reshape(n))
        else:
            loss = torch.nn.functional.mse_loss(out, y)
        torch.autograd.grad(loss, list(params.values()), create_graph=True, allow_unused=True)
    except Exception as exc:
        raise ConfigError(FIELD, f"{user_line(exc, filename)}: differentiating {name} raised {_said(exc)}; change "
                                 f"{name}.forward (in-place operations on its inputs often cause this)") from None
    notes = ()
    if net.converted:
        notes = (f"{name}'s norm layers {', '.join(net.converted)} use each task's batch statistics, as MAML does; "
                 "their running averages (track_running_stats=True) are dropped",)
    return Probe(sum(p.numel() for p in params.values()), tuple(x.shape[1:]), tuple(out.shape[1:]), notes)


def probe_config(config, family) -> Probe:
    """Build ``config``'s user module for ``family`` and :func:`probe` it (the window's model panel)."""
    net = build_user_net(config.model, family.input_dim, family.output_dim, getattr(family, "input_shape", None))
    return probe(net, family, config.algorithm.name, config.train.shots, config.train.seed)


def describe(probe_result: Probe, name: str) -> str:
    """One line for the model panel: size and the output on one sampled task."""
    shape = lambda s: "[" + ", ".join(map(str, s)) + "]"  # noqa: E731
    return (f"{name}: {probe_result.parameters:,} parameters; output {shape(probe_result.output_shape)} on one "
            f"sampled task (input {shape(probe_result.input_shape)})")
