"""One meta-iteration of MAML for policies (MAML paper §5.3): sample tasks; per inner step, sample
trajectories with the current (adapted) policy and take a policy-gradient step per task; sample the
adapted policies' trajectories; then the outer step on those, through the inner steps: TRPO (the
paper's) or a clipped surrogate with Adam (first-order or not, as the algorithm says).

``pretrain`` (the paper's "pretrained" baseline) has no inner step: one policy for the mixture of tasks.

With :class:`Shared` (``train --nproc``) each process holds its share of the tasks and the outer
step's sums over tasks are added across processes, so all take the one-process step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from core.config import ExperimentConfig
from core.nets.policy import PolicyNet
from core.rl.hvp import maml_kl_hvp
from core.rl.inner import adapt_steps, mean_kl, old_policy, surrogate
from core.rl.rollouts import Batch, Trajectories, collect, process
from core.rl.trpo import flat, trpo_step, unflat


@dataclass
class Sampled:
    """One meta-batch's trajectories: those of each inner step and the adapted policies' (``post``)."""

    tasks: torch.Tensor
    inner: list[Trajectories]
    inner_batches: list[Batch]
    post: Trajectories
    post_batch: Batch
    old_log_prob: torch.Tensor
    old_distribution: tuple


def inner_rates(config: ExperimentConfig, steps: int | None = None, evaluation: bool = False) -> list[float]:
    """Step sizes of the inner steps: the inner lr; at evaluation, ``rl.later_inner_lr`` after the first (the paper: 0.1, then 0.05)."""
    steps = config.algorithm.inner_steps if steps is None else steps
    later = config.rl.later_inner_lr if evaluation and config.rl.later_inner_lr > 0 else config.algorithm.inner_lr
    return [config.algorithm.inner_lr if s == 0 else later for s in range(steps)]


def inner_steps(config: ExperimentConfig) -> int:
    return 0 if config.algorithm.name == "pretrain" else config.algorithm.inner_steps


def sample(policy: PolicyNet, params: dict[str, torch.Tensor], family, tasks: torch.Tensor, config: ExperimentConfig,
           generator: torch.Generator, steps: int | None = None, lrs: list[float] | None = None) -> Sampled:
    """Trajectories before each inner step and after the last (no graph is kept here)."""
    steps = inner_steps(config) if steps is None else steps
    lrs = lrs or inner_rates(config, steps)
    rl = config.rl
    current = {n: p.detach() for n, p in params.items()}
    inner, batches = [], []
    for s in range(steps):
        trajectories = collect(policy, current, family, tasks, rl.rollouts, generator, per_task=s > 0)
        batch = process(trajectories, rl.gamma, rl.gae_lambda)
        inner.append(trajectories)
        batches.append(batch)
        current = adapt_steps(policy, current, [batch], [lrs[s]], create_graph=False)
    post = collect(policy, current, family, tasks, rl.rollouts, generator, per_task=steps > 0)
    post_batch = process(post, rl.gamma, rl.gae_lambda)
    log_prob, distribution = old_policy(policy, current, post_batch)
    return Sampled(tasks, inner, batches, post, post_batch, log_prob, distribution)


def objective(policy: PolicyNet, params: dict[str, torch.Tensor], sampled: Sampled, config: ExperimentConfig):
    """``objective(differentiable) -> (loss, kl)`` for :func:`~core.rl.trpo.trpo_step`: minus the surrogate
    and the mean KL of the adapted policies, recomputed from ``params`` through the inner steps."""
    first_order = config.algorithm.name == "fomaml"
    lrs = inner_rates(config, len(sampled.inner_batches))

    def evaluate(differentiable: bool):
        adapted = adapt_steps(policy, params, sampled.inner_batches, lrs, first_order, create_graph=differentiable)
        loss = -surrogate(policy, adapted, sampled.post_batch, sampled.old_log_prob)
        return loss, mean_kl(policy, adapted, sampled.post_batch, sampled.old_distribution)
    return evaluate


@dataclass(frozen=True)
class Shared:
    """This process's part of a meta-batch split over several: ``fraction`` of the tasks are its own;
    ``sum`` adds a tensor over the processes (in place)."""

    fraction: float
    sum: Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class OuterResult:
    grad_norm: float
    kl: float
    surrogate_gain: float      # after minus before (≥ 0 when a TRPO step is taken)
    backtracks: int


def trpo_outer(policy: PolicyNet, params: dict[str, torch.Tensor], sampled: Sampled, config: ExperimentConfig,
               shared: Shared | None = None) -> OuterResult:
    evaluate, hvp, reduce = trpo_parts(policy, params, sampled, config, shared)
    rl = config.rl
    result = trpo_step(list(params.values()), evaluate, rl.max_kl, rl.cg_iterations, rl.cg_damping,
                       rl.backtrack_ratio, rl.max_backtracks, hvp=hvp, reduce=reduce)
    return OuterResult(result.grad_norm, result.kl, result.loss_before - result.loss_after, result.backtracks)


def trpo_parts(policy: PolicyNet, params: dict[str, torch.Tensor], sampled: Sampled, config: ExperimentConfig,
               shared: Shared | None = None):
    """``(objective, hvp, reduce)`` for :func:`~core.rl.trpo.trpo_step`. Shared: each process's means
    over its tasks weighted by its fraction (its part of the one-process means), ``hvp`` undamped."""
    rl = config.rl
    evaluate = objective(policy, params, sampled, config)
    hvp = maml_kl_hvp(policy, params, sampled.inner_batches, inner_rates(config, len(sampled.inner_batches)),
                      sampled.post_batch, sampled.old_distribution, rl.cg_damping if shared is None else 0.0,
                      config.algorithm.name == "fomaml")
    if shared is None:
        return evaluate, hvp, None
    fraction, local, local_hvp = shared.fraction, evaluate, hvp

    def evaluate(differentiable: bool):
        loss, kl = local(differentiable)
        return loss * fraction, kl * fraction

    def hvp(v: torch.Tensor) -> torch.Tensor:
        return local_hvp(v).mul_(fraction)
    return evaluate, hvp, shared.sum


def ppo_outer(policy: PolicyNet, params: dict[str, torch.Tensor], sampled: Sampled, config: ExperimentConfig,
              optimizer, shared: Shared | None = None) -> OuterResult:
    """``rl.ppo_epochs`` Adam steps on the clipped surrogate (ProMP-style), through the inner steps.
    Shared: each epoch's gradient (and the surrogates reported) summed over the processes."""
    rl, first_order = config.rl, config.algorithm.name == "fomaml"
    lrs = inner_rates(config, len(sampled.inner_batches))
    values = list(params.values())
    norm, first_gain = 0.0, None
    for epoch in range(rl.ppo_epochs):
        adapted = adapt_steps(policy, params, sampled.inner_batches, lrs, first_order)
        gain = surrogate(policy, adapted, sampled.post_batch, sampled.old_log_prob, clip=rl.ppo_clip)
        if shared is not None:
            gain = gain * shared.fraction
        grads = torch.autograd.grad(-gain, values)
        if shared is not None:
            summed = shared.sum(torch.cat([flat(grads), gain.detach().reshape(1)]))
            grads, gain = unflat(summed[:-1], values), summed[-1]
        if epoch == 0:
            norm, first_gain = float(flat(grads).norm()), float(gain.detach())
        for p, g in zip(values, grads):
            p.grad = g
        optimizer.step()
    adapted = adapt_steps(policy, params, sampled.inner_batches, lrs, first_order, create_graph=False)
    with torch.no_grad():
        after = float(surrogate(policy, adapted, sampled.post_batch, sampled.old_log_prob, clip=rl.ppo_clip))
        kl = float(mean_kl(policy, adapted, sampled.post_batch, sampled.old_distribution))
    if shared is not None:
        after, kl = shared.sum(torch.tensor([after, kl], dtype=torch.float64) * shared.fraction).tolist()
    return OuterResult(norm, kl, after - (first_gain or 0.0), 0)

