"""The MAML-family meta-gradient written out by hand for MLPs with piecewise-linear activations.

Why: at the sizes meta-learning papers use (a 1-40-40-1 net, 25 tasks of 10 points) each op
costs microseconds and the autograd engine's bookkeeping for the double backward costs more
than the arithmetic. Reverse mode through the inner loop needs only Hessian-vector products of
the support loss, and for ReLU / leaky ReLU (zero second derivative) a Hessian-vector product
is one more batched forward and backward pass (Pearlmutter's R-operator). So the whole
meta-gradient is ~80 plain tensor ops under ``no_grad``, for any number of inner steps.

With the inner update ``θ_{s+1} = θ_s − α_s ⊙ g_s(θ_s)`` and ``u = dL/dθ_{s+1}`` (per task):

* ``dL/dα_s = −Σ_tasks g_s ⊙ u``   (learned rates: Meta-SGD, MAML++)
* ``dL/dθ_s = u − H_s (α_s ⊙ u)``  (first order drops the Hessian term)
* plus ``w_s ∇L_query(θ_s)`` for each step whose query loss enters the meta-loss (MAML++).

The autograd implementation in :mod:`.maml` stays the reference and the path for every other
network; ``tests/test_gradients.py`` checks this one against it and against finite differences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from core.nets.models import MLPNet, _linear, output_error
from ..tasks import TaskBatch
from .base import MetaStepResult
from .inner import ConstantRates, InnerRates, Params, mean_loss, sgd_update, task_accuracy

PIECEWISE_LINEAR = ("relu", "leaky_relu")
# second derivative of the activation at the pre-activation; zero for the piecewise-linear ones
_SECOND: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": lambda pre: torch.tanh(pre).mul(torch.tanh(pre).pow(2).sub(1.0)).mul(2.0),   # −2 t (1 − t²)
    "sigmoid": lambda pre: torch.sigmoid(pre).mul(1.0 - torch.sigmoid(pre)).mul(1.0 - 2.0 * torch.sigmoid(pre)),
}


def applies(net, names, params: Params) -> bool:
    """True when the network is an MLP whose activation has a hand-written first (and, unless
    piecewise linear, second) derivative, and every weight adapts."""
    activation = getattr(getattr(net, "spec", None), "activation", None)
    return (isinstance(net, MLPNet) and (activation in PIECEWISE_LINEAR or activation in _SECOND)
            and len(names) == len(params))


@dataclass
class _Pass:
    """One loss on one set of points: the forward's layer inputs and pre-activations, the
    output, the backward's deltas (dloss/d pre-activation per layer), dloss/d activation of each
    hidden layer (what the second-derivative term of a smooth activation multiplies) and the
    gradients."""

    inputs: list[torch.Tensor]
    pres: list[torch.Tensor]
    out: torch.Tensor
    deltas: list[torch.Tensor]
    act_grads: list[torch.Tensor]
    probs: torch.Tensor | None
    grads: Params


def _forward_both(net: MLPNet, params: Params, support_x: torch.Tensor, query_x: torch.Tensor, shared: bool):
    """One forward over support and query points; ``(inputs, pres, out)`` for each part.

    With shared weights (inner step 0) all points go through one GEMM as rows, so both parts
    stay contiguous views; per-task weights need ``[T, n, in]``, so the parts are slices.
    """
    t, k = support_x.shape[:2]
    if shared:
        rows = torch.cat([support_x.flatten(0, 1), query_x.flatten(0, 1)])
        inputs, pres, out = net.forward_pass(params, rows)
        cut, q = t * k, query_x.shape[1]
        return ([h[:cut].view(t, k, -1) for h in inputs], [h[:cut].view(t, k, -1) for h in pres], out[:cut].view(t, k, -1)), \
               ([h[cut:].view(t, q, -1) for h in inputs], [h[cut:].view(t, q, -1) for h in pres], out[cut:].view(t, q, -1))
    inputs, pres, out = net.forward_pass(params, torch.cat([support_x, query_x], 1))
    return ([h[:, :k] for h in inputs], [h[:, :k] for h in pres], out[:, :k]), \
           ([h[:, k:] for h in inputs], [h[:, k:] for h in pres], out[:, k:])


def _run(net: MLPNet, params: Params, inputs, pres, out, y, kind: str, scale: float) -> _Pass:
    error, probs = output_error(out, y, kind, scale)
    deltas, act_grads, grads = net.backward_pass(params, inputs, pres, error)
    return _Pass(inputs, pres, out, deltas, act_grads, probs, grads)


def _hvp(net: MLPNet, params: Params, cache: _Pass, v: Params, kind: str, scale: float) -> Params:
    """Per-task Hessian of the cached loss times the per-task direction ``v`` (the R-operator:
    differentiate the forward and backward passes along ``v``). A smooth activation adds
    ``φ''(z) ⊙ R{z} ⊙ dloss/da`` to each hidden delta; a piecewise-linear one adds nothing."""
    derivative = net.derivative
    second = _SECOND.get(net.spec.activation)
    L = net.n_layers
    w = [params[f"layers.{i}.weight"] for i in range(L)]
    vw = [v[f"layers.{i}.weight"] for i in range(L)]
    r_inputs: list[torch.Tensor | None] = [None] * L
    r_pres: list[torch.Tensor | None] = [None] * L
    rz = _linear(cache.inputs[0], vw[0], v["layers.0.bias"])
    for i in range(1, L):
        r_pres[i - 1] = rz
        ra = derivative(rz, cache.pres[i - 1])
        r_inputs[i] = ra
        rz = _linear(cache.inputs[i], vw[i], v[f"layers.{i}.bias"]).add_(torch.matmul(ra, w[i].transpose(-1, -2)))
    n, c = rz.shape[1], rz.shape[2]
    if kind == "classification":
        p = cache.probs
        rd = p * (rz - (p * rz).sum(-1, keepdim=True)) * (scale / n)
    else:
        rd = rz * (2.0 * scale / (n * c))
    out: Params = {}
    for i in reversed(range(L)):
        d = cache.deltas[i]
        rw = torch.bmm(rd.transpose(1, 2), cache.inputs[i])
        if i > 0:
            rw = torch.baddbmm(rw, d.transpose(1, 2), r_inputs[i])
        out[f"layers.{i}.weight"] = rw
        out[f"layers.{i}.bias"] = rd.sum(1)
        if i > 0:
            pre = cache.pres[i - 1]
            rd = derivative(torch.matmul(rd, w[i]).add_(torch.bmm(d, vw[i])), pre)
            if second is not None:
                rd = rd.addcmul_(second(pre).mul_(r_pres[i - 1]), cache.act_grads[i - 1])
    return out


def meta_step(algorithm, params: Params, rates: InnerRates, batch: TaskBatch, iteration: int) -> MetaStepResult:
    """The same meta-gradient (into ``.grad``) and the same recorded losses as the autograd path;
    the reported meta-loss is the query loss after the last step, as there."""
    net, kind = algorithm.net, algorithm.kind
    n_steps = algorithm.spec.inner_steps
    second_order = algorithm.second_order_at(iteration)
    weights = algorithm.step_weights(iteration)
    # weight of the query loss after step s (1..N) in the meta-loss
    loss_weights = [0.0] * n_steps + [1.0] if weights is None else [0.0, *weights.tolist()]
    classify = kind == "classification"
    scale = 1.0 / batch.n_tasks
    names = list(params)
    fixed = ConstantRates(rates)   # the rates' values; their gradient is computed here by hand

    with torch.no_grad():
        theta = {n: p.detach() for n, p in params.items()}
        losses, accs = [], []
        support: list[_Pass] = []
        trajectory: list[Params] = [theta]
        query_grads: dict[int, Params] = {}

        def record(out):
            losses.append(mean_loss(out, batch.query_y, kind))
            if classify:
                accs.append(task_accuracy(out, batch.query_y).mean())

        for s in range(n_steps + 1):
            p = trajectory[-1]
            if s == n_steps:  # last: query only
                inputs, pres, out = net.forward_pass(p, batch.query_x)
                record(out)
                query_grads[s] = _run(net, p, inputs, pres, out, batch.query_y, kind, scale).grads
                break
            sup, qry = _forward_both(net, p, batch.support_x, batch.query_x, shared=s == 0)
            record(qry[2])
            if s > 0 and loss_weights[s]:
                query_grads[s] = _run(net, p, *qry, batch.query_y, kind, scale).grads
            cache = _run(net, p, *sup, batch.support_y, kind, 1.0)
            support.append(cache)
            trajectory.append({n: sgd_update(p[n], cache.grads[n], fixed.lr(n, s)) for n in names})

        rate_grads: Params = {n: torch.zeros_like(t) for n, t in rates.tensors.items()}
        u: Params = {}
        for s in range(n_steps, 0, -1):
            if s in query_grads:
                g = query_grads[s]
                w = loss_weights[s]
                u = {n: (g[n] if w == 1.0 else g[n] * w) if n not in u else u[n].add(g[n], alpha=w) for n in names}
            cache, before = support[s - 1], trajectory[s - 1]
            for n, t in rate_grads.items():
                contribution = (cache.grads[n] * u[n]).sum(0)
                if rates.mode == "per_step":
                    t[min(s - 1, t.shape[0] - 1)] -= contribution.sum()
                else:
                    t -= contribution
            if second_order:
                lrs = {n: fixed.lr(n, s - 1) for n in names}
                if rates.mode == "fixed":
                    hu = _hvp(net, before, cache, u, kind, 1.0)
                    u = {n: torch.sub(u[n], hu[n], alpha=lrs[n]) for n in names}
                else:
                    hu = _hvp(net, before, cache, {n: u[n] * lrs[n] for n in names}, kind, 1.0)
                    u = {n: u[n] - hu[n] for n in names}

        for n, p in params.items():
            accumulate(p, u[n].sum(0))
        for n, t in rates.tensors.items():
            accumulate(t, rate_grads[n])
    return MetaStepResult(losses[-1], torch.stack(losses), torch.stack(accs) if classify else None)


def accumulate(leaf: torch.Tensor, grad: torch.Tensor) -> None:
    if leaf.grad is None:
        leaf.grad = grad
    else:
        leaf.grad.add_(grad)
