"""Networks as a parameter dict plus a functional forward.

Meta-learning needs many copies of the weights at once (one per task), so the engine keeps
parameters as ``{name: tensor}`` and the network as a pure function of them. Two kinds:

* :class:`MLPNet` — the fast path: a hand-written forward that accepts shared weights
  ``[out, in]`` or per-task weights ``[T, out, in]`` (batched with ``baddbmm``).
* :class:`ModuleNet` — the generic path for any ``nn.Module``: per-task weights are mapped
  over with ``torch.func.vmap(functional_call)``.

Both expose ``init(generator)``, ``forward(params, x)`` and ``head_names``, so algorithms
never care which one they drive. :class:`MLP` is the same network as an ordinary
``nn.Module`` with identical parameter names, for export and for plain-PyTorch users.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from core.config import ModelSpec
from core.errors import ConfigError
from core.nets.user_module import build_user_net

Params = dict[str, torch.Tensor]

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "silu": F.silu,
    "leaky_relu": F.leaky_relu,
}
# grad w.r.t. the pre-activation, given the grad w.r.t. the activation; differentiable in ``g``.
_DERIVATIVES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "relu": lambda g, pre: torch.ops.aten.threshold_backward(g, pre, 0.0),
    "leaky_relu": lambda g, pre: torch.ops.aten.leaky_relu_backward(g, pre, 0.01, False),
    "tanh": lambda g, pre: g * (1 - torch.tanh(pre).pow(2)),
    "sigmoid": lambda g, pre: g * torch.sigmoid(pre) * (1 - torch.sigmoid(pre)),
}


def output_error(out: torch.Tensor, y: torch.Tensor, kind: str, scale: float):
    """d(scale · per-task mean loss)/d output, and the softmax for classification (else None)."""
    n, c = out.shape[1], out.shape[2]
    if kind == "classification":
        probs = torch.softmax(out, -1)
        return (probs - F.one_hot(y, c).to(out.dtype)) * (scale / n), probs
    return (out - y) * (2.0 * scale / (n * c)), None


def _linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A layer with shared ``[out, in]`` or per-task ``[T, out, in]`` weights."""
    if w.dim() == 3:
        return torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
    return F.linear(h, w, b)


_MODULES = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "silu": nn.SiLU, "leaky_relu": nn.LeakyReLU}


class MLP(nn.Module):
    """The documented plain-PyTorch model: ``layers.{i}.weight/bias`` match the engine's names."""

    def __init__(self, input_dim: int, output_dim: int, hidden=(40, 40), activation: str = "relu"):
        super().__init__()
        sizes = [input_dim, *hidden, output_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = _MODULES[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.activation(x)
        return x


class MLPNet:
    """Functional MLP whose forward takes shared or per-task weights, layer by layer.

    Mixing is allowed (ANIL adapts only the head, so the body stays shared).
    """

    def __init__(self, input_dim: int, output_dim: int, spec: ModelSpec):
        self.spec = spec
        self.input_dim, self.output_dim = input_dim, output_dim
        self.sizes = [input_dim, *spec.hidden, output_dim]
        self.n_layers = len(self.sizes) - 1
        self.names = [f"layers.{i}.{kind}" for i in range(self.n_layers) for kind in ("weight", "bias")]
        self.head_names = self.names[-2:]
        self.act = _ACTIVATIONS[spec.activation]
        self.derivative = _DERIVATIVES.get(spec.activation)   # None: no hand-written backward

    def init(self, generator: torch.Generator, device="cpu", dtype=None) -> Params:
        """PyTorch's default ``nn.Linear`` initialisation, drawn from an explicit generator."""
        params = {}
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            bound = 1.0 / math.sqrt(fan_in)
            for kind, shape in (("weight", (fan_out, fan_in)), ("bias", (fan_out,))):
                t = (torch.rand(shape, generator=generator, dtype=dtype or torch.get_default_dtype()) * 2 - 1) * bound
                params[f"layers.{i}.{kind}"] = t.to(device)
        return params

    def forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """``x [T, N, in]`` (or rows ``[N, in]`` with shared weights) -> ``[T, N, out]``; each
        layer's weights are ``[out, in]`` or ``[T, out, in]``."""
        return self.forward_pass(params, x)[2]

    def forward_pass(self, params: Params, x: torch.Tensor):
        """``(inputs, pres, out)``: each layer's input, each hidden layer's pre-activation and the
        output — what a hand-written backward pass needs."""
        inputs, pres, h = [], [], x
        for i in range(self.n_layers):
            inputs.append(h)
            h = _linear(h, params[f"layers.{i}.weight"], params[f"layers.{i}.bias"])
            if i < self.n_layers - 1:
                pres.append(h)
                h = self.act(h)
        return inputs, pres, h

    def backward_pass(self, params: Params, inputs, pres, error: torch.Tensor):
        """From ``error`` = dloss/d output ``[T, N, out]``: ``(deltas, act_grads, grads)`` — dloss/d
        pre-activation of every layer, dloss/d activation of every hidden layer and the per-task
        gradients ``[T, …]``. Ordinary differentiable ops: the batched-autograd path takes second
        derivatives through them, the closed form runs them under ``no_grad``."""
        deltas: list[torch.Tensor] = [error] * self.n_layers
        act_grads: list[torch.Tensor] = [error] * (self.n_layers - 1)
        grads: Params = {}
        d = error
        for i in reversed(range(self.n_layers)):
            deltas[i] = d
            grads[f"layers.{i}.weight"] = torch.bmm(d.transpose(1, 2), inputs[i])
            grads[f"layers.{i}.bias"] = d.sum(1)
            if i > 0:
                act_grads[i - 1] = torch.matmul(d, params[f"layers.{i}.weight"])
                d = self.derivative(act_grads[i - 1], pres[i - 1])
        return deltas, act_grads, grads

    @property
    def has_manual_backward(self) -> bool:
        return self.derivative is not None

    def task_grads(self, params: Params, x: torch.Tensor, y: torch.Tensor, kind: str,
                   peek_x: torch.Tensor | None = None):
        """Per-task gradients ``[T, …]`` of each task's mean loss, by the hand-written backward pass.

        Weights may be shared (``[out, in]``, as at inner step 0) or per task. Differentiable,
        so the outer autograd takes second derivatives through it; this skips the autograd
        engine's double-backward bookkeeping in the inner loop, which dominates at these small
        sizes. ``peek_x`` rides along in the same forward (its output is returned detached): the
        query loss before each step at no extra pass.
        """
        k = x.shape[1]
        inputs, pres, out = self.forward_pass(params, x if peek_x is None else torch.cat([x, peek_x], 1))
        peek = None
        if peek_x is not None:
            peek = out[:, k:].detach()
            inputs, pres, out = [h[:, :k] for h in inputs], [h[:, :k] for h in pres], out[:, :k]
        error, _ = output_error(out, y, kind, 1.0)
        return self.backward_pass(params, inputs, pres, error)[2], peek

    def module(self) -> MLP:
        return MLP(self.input_dim, self.output_dim, self.spec.hidden, self.spec.activation)


class ModuleNet:
    """Any ``nn.Module`` driven functionally; the generic (slower) path.

    ``head_names`` defaults to the last two parameters (the output layer's weight and bias).
    """

    def __init__(self, module: nn.Module, head_names: list[str] | None = None):
        self.module_ = module
        self.names = [n for n, _ in module.named_parameters()]
        self.head_names = head_names or self.names[-2:]

    def init(self, generator: torch.Generator, device="cpu", dtype=None) -> Params:
        return {n: p.detach().clone().to(device) for n, p in self.module_.named_parameters()}

    def forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        batched = {n: p for n, p in params.items() if p.dim() > dict(self.module_.named_parameters())[n].dim()}
        if not batched:
            return torch.func.functional_call(self.module_, params, (x,))
        shared = {n: p for n, p in params.items() if n not in batched}

        def one(task_params, xt):
            return torch.func.functional_call(self.module_, {**shared, **task_params}, (xt,))

        return torch.func.vmap(one)(batched, x)


class ImageMLPNet(MLPNet):
    """An MLP on image tasks: ``[…, C, H, W]`` inputs are flattened to ``[…, C·H·W]`` (a view), then
    the MLP's own fast paths run unchanged."""

    def __init__(self, input_dim: int, output_dim: int, spec: ModelSpec, input_shape: tuple[int, int, int]):
        super().__init__(input_dim, output_dim, spec)
        self.input_shape = tuple(input_shape)

    def _flat(self, x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None or x.dim() < 3 or tuple(x.shape[-3:]) != self.input_shape:
            return x
        return x.flatten(-3)

    def forward_pass(self, params: Params, x: torch.Tensor):
        return super().forward_pass(params, self._flat(x))

    def task_grads(self, params: Params, x: torch.Tensor, y: torch.Tensor, kind: str,
                   peek_x: torch.Tensor | None = None):
        return super().task_grads(params, self._flat(x), y, kind, self._flat(peek_x))


def build_net(spec: ModelSpec, input_dim: int, output_dim: int, input_shape: tuple[int, int, int] | None = None,
              inner_steps: int = 1):
    """The network the spec names. ``input_shape`` ``(C, H, W)`` is the family's image shape (None
    for vectors); ``inner_steps`` sizes MAML++'s per-step batch norm."""
    if spec.name == "module":   # the user's code runs only when a model spec asks for it
        return build_user_net(spec, input_dim, output_dim, input_shape)
    if spec.name == "conv4":
        if input_shape is None:
            raise ConfigError("model.name", "the conv4 model needs image inputs; choose an image family or the mlp model")
        from core.nets.conv import ConvNet

        return ConvNet(spec, input_shape, output_dim, inner_steps)
    if input_shape is not None:
        return ImageMLPNet(input_dim, output_dim, spec, input_shape)
    return MLPNet(input_dim, output_dim, spec)
