"""The MAML paper's conv-4 as a parameter dict plus a functional forward.

Blocks of 3×3 convolution, batch norm, ReLU and a 2×2 max-pool (``downsample="max"``, the
paper's MiniImagenet net) or a stride-2 convolution instead of the pool (``"stride"``, its
Omniglot net), then flatten and a linear head with one logit per class.

Batch norm as MAML uses it: the statistics of the batch at hand — each task's own support or
query set, never a mix and never running statistics — and a learnable scale and shift that
adapt like the other weights. ``batch_norm="per_step"`` is MAML++'s per-step batch norm: one
scale/shift set per inner step, stored as ``[S, C]``. Row 0 is always the set in use: after
every inner step :meth:`ConvNet.advance` shifts the rows by one (the last row repeats), so
weights after ``s`` steps use set ``min(s, S-1)`` and every caller that evaluates an adapted
trajectory gets the right set without knowing about steps. The shift is a differentiable
slice, so the meta-gradient reaches every set. Per-step sets are meta-learned only, never
adapted in the inner loop (``meta_only_names``; MAML++'s default). Weights after ``s`` steps use set
``min(s, S-1)``, so the query loss after the last of ``S`` steps uses the last step's set, as in
MAML++; an intermediate query loss (multi-step loss) after ``s`` steps uses set ``s``, where MAML++'s
code uses ``s-1``.

Per-task weights (a leading ``[T]``) run in one of two exact formulations:

* grouped (:meth:`ConvNet.forward`, everything differentiated once: evaluation, fine-tuning,
  first-order MAML, Reptile, ANIL, pretrain): activations in a grouped layout ``[M, T·C, H, W]``
  (tasks folded into channels), channels-last, a per-task convolution one grouped convolution
  (``groups=T``), per-task batch norm one ``F.batch_norm``; shared weights are repeated per task.
  On a CPU the tasks go :data:`TASK_GROUP` at a time (their activations stay in the cache);
  elsewhere all at once.
* loop (:meth:`ConvNet.second_order_forward`, an inner step differentiated twice): one ordinary
  convolution per task. PyTorch's double backward of a grouped convolution loops over the groups,
  so folding tasks into groups saved nothing in second-order MAML and cost memory (measured at the
  Omniglot setting, meta-batch 32, 2-core CPU: 1.03 it/s and 378 MiB per-task vs 0.78 it/s and 689
  MiB grouped); :data:`SECOND_ORDER` picks it. Per-task weights are unbound once per pass: indexing
  them ``T`` times made the backward add ``T`` zero-padded gradient copies per weight.

Weights shared by every task (ANIL's body, pretrain's joint loss) run all tasks' images as one
ordinary convolution ``[T·M, C, H, W]`` with batch norm per task's slice.

Where the time goes on a CPU (one thread, ``maml-gui bench --conv``): the convolutions of a 64-channel
conv-4 are cheap next to the memory traffic of the first block's 28×28×64 activations (batch norm,
ReLU, pooling), so the grouped layout is channels-last (batch norm and pooling run 4–9× faster over
contiguous channels), the ReLU follows the pool (the same numbers, exactly: both are monotone, and a
pooled window whose maximum is negative passes no gradient either way) and tasks go a few at a
time. The gains come from there, not from fewer kernel calls: on one thread of a 2-core CPU, 40
held-out episodes (steps 0,1,5,10, meta-learned and scratch) took 18.5 s vs 37.1 s for a plain
per-task loop (2.0×), and a first-order meta-batch of 16 at the Omniglot setting 0.57 s of CPU vs
0.55 s for the per-task autograd loop and 0.71 s with per-task convolutions in the engine (a busy
machine; ``maml-gui bench --conv``). Batching over tasks is where a GPU gains most (untested here).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.config import ModelSpec
from core.errors import ConfigError

Params = dict[str, torch.Tensor]
EPS = 1e-5
MEMORY_FORMAT = torch.channels_last   # of the grouped layout (see the module docstring)
SECOND_ORDER = "loop"   # "loop" or "grouped": how an inner step differentiated twice runs per-task weights
TASK_GROUP = 4          # tasks per grouped convolution on a CPU: 4 measured 1.5–2× faster than 32 at once,
# a little faster than 8 (first-order MAML at the Omniglot setting, 1 thread: 0.57 s vs 0.64 s per meta-batch of 16)
ACTIVATION_COPIES = 3.5   # tensors of a block's output size kept per image for a backward (conv in/out, norm,
# ReLU, …), fitted to the measured peak at the Omniglot setting, meta-batch 8 (see core.training.bench)
_BASE_DIMS = {"conv.weight": 4, "conv.bias": 1, "norm.weight": 1, "norm.bias": 1}


def feature_shape(input_shape: tuple[int, int, int], channels: int, depth: int, downsample: str) -> tuple[int, int, int]:
    """``(C, h, w)`` after the conv blocks; ConfigError when the image shrinks to nothing."""
    _, h, w = input_shape
    for _ in range(depth):
        # 3×3 conv, padding 1: stride 2 halves (rounding up), a 2×2 max-pool halves (rounding down)
        h, w = ((h + 1) // 2, (w + 1) // 2) if downsample == "stride" else (h // 2, w // 2)
        if h < 1 or w < 1:
            raise ConfigError("model.conv_depth", f"{input_shape[1]}×{input_shape[2]} images shrink to nothing "
                                                  f"after {depth} blocks; use fewer blocks")
    return channels, h, w


class ConvNet:
    """Functional conv-4: ``forward(params, x [T, M, C, H, W]) -> [T, M, ways]``; each weight shared
    (its normal shape) or per task (a leading ``[T]``), mixing allowed."""

    has_manual_backward = False
    batch_statistics = True    # the output of a point depends on the other points of its batch

    def __init__(self, spec: ModelSpec, input_shape: tuple[int, int, int], output_dim: int, inner_steps: int = 1):
        self.spec, self.input_shape, self.output_dim = spec, tuple(input_shape), output_dim
        self.input_dim = math.prod(self.input_shape)
        self.depth, self.channels = spec.conv_depth, spec.conv_channels
        self.stride = 2 if spec.downsample == "stride" else 1
        self.norm = spec.batch_norm
        self.n_sets = max(1, inner_steps) if self.norm == "per_step" else 0
        self.features = math.prod(feature_shape(self.input_shape, self.channels, self.depth, spec.downsample))
        names = []
        for i in range(self.depth):
            names.append(f"blocks.{i}.conv.weight")
            names += [f"blocks.{i}.conv.bias"] if self.norm == "off" else [f"blocks.{i}.norm.weight", f"blocks.{i}.norm.bias"]
        self.names = [*names, "head.weight", "head.bias"]
        self.head_names = self.names[-2:]
        # per-step sets are meta-learned only (MAML++'s default): an adapted set would be used once at most
        self.meta_only_names = [n for n in self.names if ".norm." in n] if self.n_sets else []

    def activation_floats(self) -> float:
        """Floats one image keeps for a backward pass (every block's output, :data:`ACTIVATION_COPIES`
        times): the unit of the memory estimates of training and evaluation."""
        per_image, (c, h, w) = 0, self.input_shape
        for _ in range(self.depth):
            conv = (h, w) if self.stride == 1 else ((h + 1) // 2, (w + 1) // 2)
            per_image += self.channels * conv[0] * conv[1]
            c, h, w = feature_shape((c, h, w), self.channels, 1, self.spec.downsample)
        return ACTIVATION_COPIES * per_image

    # -- parameters ---------------------------------------------------------------------------
    def init(self, generator: torch.Generator, device="cpu", dtype=None) -> Params:
        """PyTorch's default ``Conv2d`` / ``Linear`` initialisation (uniform ±1/√fan_in) and batch norm's
        scale 1, shift 0, drawn from an explicit generator. Without batch norm a convolution has a
        bias; with it the bias would be cancelled exactly by the mean subtraction, so there is none."""
        dtype = dtype or torch.get_default_dtype()

        def uniform(shape, fan_in):
            return ((torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) / math.sqrt(fan_in)).to(device)

        params, c_in = {}, self.input_shape[0]
        sets = (self.n_sets,) if self.n_sets else ()
        for i in range(self.depth):
            fan_in = c_in * 9
            params[f"blocks.{i}.conv.weight"] = uniform((self.channels, c_in, 3, 3), fan_in)
            if self.norm == "off":
                params[f"blocks.{i}.conv.bias"] = uniform((self.channels,), fan_in)
            else:
                params[f"blocks.{i}.norm.weight"] = torch.ones(*sets, self.channels, dtype=dtype, device=device)
                params[f"blocks.{i}.norm.bias"] = torch.zeros(*sets, self.channels, dtype=dtype, device=device)
            c_in = self.channels
        params["head.weight"] = uniform((self.output_dim, self.features), self.features)
        params["head.bias"] = uniform((self.output_dim,), self.features)
        return params

    def _base_dim(self, name: str) -> int:
        if name.startswith("head."):
            return 2 if name.endswith("weight") else 1
        return _BASE_DIMS[name.split(".", 2)[2]] + (1 if self.n_sets and ".norm." in name else 0)

    def advance(self, params: Params) -> Params:
        """The weights for the next inner step: per-step batch-norm sets shift by one (the last repeats)."""
        if not self.n_sets:
            return params
        out = dict(params)
        for name, p in params.items():
            if ".norm." in name:
                d = p.dim() - 2
                out[name] = torch.cat([p.narrow(d, 1, p.shape[d] - 1), p.narrow(d, p.shape[d] - 1, 1)], d)
        return out

    # -- forward ------------------------------------------------------------------------------
    def forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """``x [T, M, C, H, W]`` -> logits ``[T, M, ways]`` (or ``[M, C, H, W]`` -> ``[M, ways]``, shared
        weights). Batch-norm statistics are those of each task's ``M`` images. Per-task weights run
        as grouped convolutions (fast forwards and in a first-order backward)."""
        if x.dim() == 4:
            return self.forward(params, x.unsqueeze(0)).squeeze(0)
        if not self._body_per_task(params):
            return self._forward_shared(params, x)
        t = x.shape[0]
        if x.device.type != "cpu" or t <= TASK_GROUP:
            return self._forward_grouped(params, x)
        group = -(-t // -(-t // TASK_GROUP))   # groups of even size, none above TASK_GROUP
        # split once: its backward concatenates the groups' gradients (no zero-padded copies)
        parts = {n: p.split(group) if self._per_task(n, p) else None for n, p in params.items()}
        return torch.cat([self._forward_grouped({n: params[n] if parts[n] is None else parts[n][k] for n in params}, xk)
                          for k, xk in enumerate(x.split(group))])

    def second_order_forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` for an inner step whose gradient is differentiated again (second-order
        MAML): per-task weights run one ordinary convolution per task (see the module docstring)."""
        if x.dim() == 4 or not self._body_per_task(params):
            return self.forward(params, x)
        return self._forward_loop(params, x) if SECOND_ORDER == "loop" else self._forward_grouped(params, x)

    def _per_task(self, name: str, p: torch.Tensor) -> bool:
        return p.dim() > self._base_dim(name)

    def _body_per_task(self, params: Params) -> bool:
        return any(self._per_task(n, p) for n, p in params.items() if not n.startswith("head."))

    def _forward_shared(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """Shared conv weights: every task's images in one convolution ``[T·M, C, H, W]``, batch norm per task."""
        t, m = x.shape[:2]
        return self._head(params, self._body(params, x.reshape(t * m, *x.shape[2:]), t).reshape(t, m, -1))

    def _forward_loop(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """Per-task conv weights, one ordinary convolution per task: the kernels whose double
        backward a CPU runs fastest."""
        t = x.shape[0]
        body = [n for n in params if not n.startswith("head.")]
        # unbind once: its backward stacks the T gradients (indexing would add T zero-padded copies)
        per_task = {n: params[n].unbind(0) for n in body if self._per_task(n, params[n])}
        feats = torch.stack([self._body({n: per_task[n][k] if n in per_task else params[n] for n in body}, x[k], 1)
                             for k in range(t)])
        return self._head(params, feats)

    def _head(self, params: Params, feats: torch.Tensor) -> torch.Tensor:
        """The linear head on ``feats [T, M, F]``, its weights shared or per task."""
        w, b = params["head.weight"], params["head.bias"]
        if w.dim() == 3:
            t = feats.shape[0]
            return torch.baddbmm((b if b.dim() == 2 else b.expand(t, -1)).unsqueeze(1), feats, w.transpose(1, 2))
        out = F.linear(feats, w)
        return out + (b.unsqueeze(1) if b.dim() == 2 else b)

    def _body(self, params: Params, h: torch.Tensor, t: int) -> torch.Tensor:
        """The conv blocks on ``h [t·M, C, H, W]`` (``t`` tasks of ``M`` images each, shared weights),
        flattened per image."""
        for i in range(self.depth):
            h = F.conv2d(h, params[f"blocks.{i}.conv.weight"], params.get(f"blocks.{i}.conv.bias"),
                         stride=self.stride, padding=1)
            if self.norm != "off":
                gamma, beta = params[f"blocks.{i}.norm.weight"], params[f"blocks.{i}.norm.bias"]
                if self.n_sets:
                    gamma, beta = gamma[0], beta[0]
                h = _task_batch_norm(h, t, gamma, beta)
            h = self._pool_relu(h)
        return h.flatten(1)

    def _pool_relu(self, h: torch.Tensor) -> torch.Tensor:
        """ReLU and the 2×2 max-pool, pooled first: the same numbers and gradients as the other
        order (both are monotone; a window whose maximum is negative passes no gradient either
        way), on a quarter of the elements."""
        return torch.relu(F.max_pool2d(h, 2) if self.stride == 1 else h)

    def _forward_grouped(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        t, m = x.shape[:2]
        h = x.transpose(0, 1).reshape(m, t * x.shape[2], *x.shape[3:]).contiguous(memory_format=MEMORY_FORMAT)
        for i in range(self.depth):
            h = F.conv2d(h, self._grouped(params, f"blocks.{i}.conv.weight", t), self._grouped(params, f"blocks.{i}.conv.bias", t),
                         stride=self.stride, padding=1, groups=t)
            if self.norm != "off":
                gamma, beta = (self._grouped(params, f"blocks.{i}.norm.{k}", t) for k in ("weight", "bias"))
                h = F.batch_norm(h, None, None, gamma, beta, training=True, eps=EPS)
            h = self._pool_relu(h)
        return self._head(params, h.reshape(m, t, -1).transpose(0, 1))   # [T, M, C·h·w], flattened as nn.Flatten does

    def _grouped(self, params: Params, name: str, t: int) -> torch.Tensor | None:
        """A weight for ``t`` task groups: per-task ``[T, out, …]`` flattened to ``[T·out, …]``, shared
        repeated ``T`` times; a per-step batch-norm set contributes its row 0 (the current step)."""
        p = params.get(name)
        if p is None:
            return None
        per_task = p.dim() > self._base_dim(name)
        if self.n_sets and ".norm." in name:
            p = p.select(p.dim() - 2, 0)
        if per_task:
            return p.reshape(t * p.shape[1], *p.shape[2:])
        return p.repeat(t, *([1] * (p.dim() - 1))) if t > 1 else p

    def module(self) -> "ConvNet4":
        return ConvNet4(self.input_shape, self.output_dim, self.channels, self.depth, self.spec.downsample,
                        self.norm, self.n_sets or 1)


def _task_batch_norm(h: torch.Tensor, t: int, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Batch norm of ``h [t·M, C, H, W]`` with each of the ``t`` tasks' own statistics."""
    if t == 1:
        return F.batch_norm(h, None, None, gamma, beta, training=True, eps=EPS)
    # one fused batch norm per task keeps only its input and statistics for the backward pass (the
    # same normalisation written out in tensor ops kept twice the memory)
    return torch.cat([F.batch_norm(c, None, None, gamma, beta, training=True, eps=EPS) for c in h.chunk(t)])


class PerStepBatchNorm2d(nn.Module):
    """Batch norm with batch statistics and one scale/shift set per inner step (MAML++)."""

    def __init__(self, channels: int, steps: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(steps, channels))
        self.bias = nn.Parameter(torch.zeros(steps, channels))

    def forward(self, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        s = min(step, self.weight.shape[0] - 1)
        return F.batch_norm(x, None, None, self.weight[s], self.bias[s], training=True, eps=EPS)


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, channels: int, stride: int, norm: str, steps: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, channels, 3, stride=stride, padding=1, bias=norm == "off")
        if norm == "batch":
            self.norm = nn.BatchNorm2d(channels, eps=EPS, track_running_stats=False)
        elif norm == "per_step":
            self.norm = PerStepBatchNorm2d(channels, steps)
        self.pool = nn.MaxPool2d(2) if stride == 1 else nn.Identity()

    def forward(self, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        x = self.conv(x)
        if isinstance(getattr(self, "norm", None), PerStepBatchNorm2d):
            x = self.norm(x, step)
        elif hasattr(self, "norm"):
            x = self.norm(x)
        return self.pool(torch.relu(x))


class ConvNet4(nn.Module):
    """The plain-PyTorch conv net, parameter names identical to :class:`ConvNet`'s (for export and
    the per-task reference). ``x [N, C, H, W]``: one task's images (batch norm uses their statistics);
    ``step`` picks the per-step batch-norm set."""

    def __init__(self, input_shape=(1, 28, 28), output_dim: int = 5, channels: int = 64, depth: int = 4,
                 downsample: str = "max", norm: str = "batch", steps: int = 1):
        super().__init__()
        stride = 2 if downsample == "stride" else 1
        c_in = input_shape[0]
        self.blocks = nn.ModuleList()
        for _ in range(depth):
            self.blocks.append(ConvBlock(c_in, channels, stride, norm, steps))
            c_in = channels
        self.head = nn.Linear(math.prod(feature_shape(tuple(input_shape), channels, depth, downsample)), output_dim)

    def forward(self, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, step)
        return self.head(x.flatten(1))
