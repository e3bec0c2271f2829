"""One-step MAML (and first-order MAML) for piecewise-linear MLPs without per-task weight matrices.

Why: the MAML paper's setting — one inner step at a fixed rate — is the one most runs use, and
there every task's inner gradient ``G = Dᵀ Ã`` (support deltas times support inputs, a bias
column of ones appended) has rank at most K. So a task's adapted layer never needs to exist as a
``[T, out, in]`` tensor: on query inputs ``Ã'`` it gives

    Ã' (W̃ − α G)ᵀ = Ã' W̃ᵀ − α κ D,        κ = Ã' Ãᵀ   (a [T, Q, K] kernel)

i.e. one GEMM with the shared weights over all tasks' rows, corrected by a tiny per-task kernel
product. The same holds backwards and for the Hessian-vector product of the second-order term,
whose direction (the query gradient ``Δᵀ Ã'``) is low rank too. The meta-gradient sums over
tasks, so it comes out of GEMMs over stacked rows directly. About 3× fewer FLOPs and no large
temporaries than :mod:`.closed_form`, which handles every other step count and learned rates;
``tests/test_gradients.py`` checks both against the autograd path.
"""

from __future__ import annotations

import torch

from core.nets.models import output_error
from ..tasks import TaskBatch
from . import closed_form
from .base import MetaStepResult
from .inner import InnerRates, Params, mean_loss, task_accuracy


def applies(algorithm, params: Params, rates: InnerRates) -> bool:
    return (closed_form.applies(algorithm.net, algorithm.adapt_names, params)
            and algorithm.net.spec.activation in closed_form.PIECEWISE_LINEAR and algorithm.spec.inner_steps == 1
            and rates.mode == "fixed" and algorithm.step_weights(0) is None)


def _kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[a, 1] · [b, 1]`` for every pair of points of each task: ``[T, n_a, n_b]``."""
    return torch.bmm(a, b.transpose(1, 2)).add_(1.0)


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, t.shape[-1])


def meta_step(algorithm, params: Params, rates: InnerRates, batch: TaskBatch, iteration: int) -> MetaStepResult:
    net, kind = algorithm.net, algorithm.kind
    classify = kind == "classification"
    second_order = algorithm.second_order_at(iteration)
    alpha = float(rates.base_lr)
    act, derivative = net.act, net.derivative
    n_layers = net.n_layers
    t, k = batch.support_x.shape[:2]
    q = batch.query_x.shape[1]

    with torch.no_grad():
        w = [params[f"layers.{i}.weight"].detach() for i in range(n_layers)]
        b = [params[f"layers.{i}.bias"].detach() for i in range(n_layers)]

        # inner step 0: support and query rows through the shared weights in one pass
        h = torch.cat([_rows(batch.support_x), _rows(batch.query_x)])
        support_in, support_pre = [], []   # A[l] (input of layer l) and Z[l] on the support points
        first_query_pre = None
        for i in range(n_layers):
            support_in.append(h[:t * k].view(t, k, -1))
            h = torch.addmm(b[i], h, w[i].t())
            if i == 0:
                first_query_pre = h[t * k:].view(t, q, -1)
            support_pre.append(h[:t * k].view(t, k, -1))
            if i < n_layers - 1:
                h = act(h)
        out0_q = h[t * k:].view(t, q, -1)
        losses = [mean_loss(out0_q, batch.query_y, kind)]
        accs = [task_accuracy(out0_q, batch.query_y).mean()] if classify else []

        # support deltas D[l] = d(task loss)/d Z[l]
        error, probs = output_error(support_pre[-1], batch.support_y, kind, 1.0)
        deltas = [error] * n_layers
        for i in range(n_layers - 1, 0, -1):
            deltas[i - 1] = derivative(torch.matmul(deltas[i], w[i]), support_pre[i - 1])

        # the query pass at the adapted weights, through kernels (no per-task weights)
        query_in, query_pre, kernels = [batch.query_x], [], []
        for i in range(n_layers):
            kernel = _kernel(query_in[i], support_in[i])
            shared = first_query_pre if i == 0 else torch.addmm(b[i], _rows(query_in[i]), w[i].t()).view(t, q, -1)
            z = torch.baddbmm(shared, kernel, deltas[i], alpha=-alpha)
            kernels.append(kernel)
            query_pre.append(z)
            if i < n_layers - 1:
                query_in.append(act(z))
        out1_q = query_pre[-1]
        losses.append(mean_loss(out1_q, batch.query_y, kind))
        if classify:
            accs.append(task_accuracy(out1_q, batch.query_y).mean())

        # query deltas at the adapted weights, and ρ[l] = Δ[l] D[l]ᵀ for the layers above the first
        q_error, _ = output_error(out1_q, batch.query_y, kind, 1.0 / t)
        q_deltas = [q_error] * n_layers
        rhos: list[torch.Tensor | None] = [None] * n_layers
        for i in range(n_layers - 1, 0, -1):
            rho = rhos[i] = torch.bmm(q_deltas[i], deltas[i].transpose(1, 2))
            back = torch.baddbmm(torch.matmul(q_deltas[i], w[i]), rho, support_in[i], alpha=-alpha)
            q_deltas[i - 1] = derivative(back, query_pre[i - 1])

        grads_w = [torch.mm(_rows(q_deltas[i]).t(), _rows(query_in[i])) for i in range(n_layers)]
        grads_b = [_rows(q_deltas[i]).sum(0) for i in range(n_layers)]

        if second_order:   # − α Σ_tasks H_support(θ) v, v the query gradient (per task, low rank)
            r_in: list[torch.Tensor | None] = [None] * n_layers
            rz = torch.bmm(kernels[0].transpose(1, 2), q_deltas[0])
            for i in range(1, n_layers):
                ra = r_in[i] = derivative(rz, support_pre[i - 1])
                rz = torch.baddbmm(torch.matmul(ra, w[i].t()), kernels[i].transpose(1, 2), q_deltas[i])
            if classify:
                rd = probs * (rz - (probs * rz).sum(-1, keepdim=True)) * (1.0 / k)
            else:
                rd = rz * (2.0 / (k * rz.shape[-1]))
            for i in range(n_layers - 1, -1, -1):
                grads_w[i].addmm_(_rows(rd).t(), _rows(support_in[i]), alpha=-alpha)
                if i > 0:
                    grads_w[i].addmm_(_rows(deltas[i]).t(), _rows(r_in[i]), alpha=-alpha)
                grads_b[i].sub_(_rows(rd).sum(0), alpha=alpha)
                if i > 0:
                    back = torch.baddbmm(torch.matmul(rd, w[i]), rhos[i].transpose(1, 2), query_in[i])
                    rd = derivative(back, support_pre[i - 1])

        for i in range(n_layers):
            closed_form.accumulate(params[f"layers.{i}.weight"], grads_w[i])
            closed_form.accumulate(params[f"layers.{i}.bias"], grads_b[i])
    return MetaStepResult(losses[-1], torch.stack(losses), torch.stack(accs) if classify else None)

