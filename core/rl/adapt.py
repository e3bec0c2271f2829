"""Adapt a trained policy to one given task (a goal typed by a person, a task spec): the inner steps on
its own fresh trajectories, as at evaluation; what ``maml-gui adapt RUN --goal X,Y`` writes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.config import ExperimentConfig
from core.rl.evaluation import ACTION_SEED_OFFSET
from core.rl.inner import adapt
from core.rl.meta import inner_rates
from core.rl.rollouts import Trajectories, collect, process
from core.rl.trainer import MODEL, build_policy, policy_family


@dataclass
class AdaptedPolicy:
    """``weights``: the adapted policy (``model.*``, the run's shapes); ``returns``: the average return of
    the trajectories before each step and after the last; ``trajectories``: those trajectories."""

    weights: dict[str, torch.Tensor]
    returns: list[float]
    trajectories: list[Trajectories]


def adapt_to_task(config: ExperimentConfig, weights: dict[str, torch.Tensor], task: torch.Tensor, steps: int,
                  rollouts: int = 20, seed: int = 0, lr: float | None = None) -> AdaptedPolicy:
    """``task``: ``(1, task_dim)``. ``lr``: one fixed inner rate instead of the run's (first, then later)."""
    family = policy_family(config)
    policy = build_policy(config, family)
    rates = [lr] * steps if lr is not None else inner_rates(config, steps, evaluation=True)
    current = {k[len(MODEL):]: v.detach() for k, v in weights.items() if k.startswith(MODEL)}
    generator = torch.Generator().manual_seed(seed + ACTION_SEED_OFFSET)
    returns, seen = [], []
    for s in range(steps + 1):
        trajectories = collect(policy, current, family, task, rollouts, generator, per_task=s > 0)
        returns.append(trajectories.average_return)
        seen.append(trajectories)
        if s < steps:
            current = adapt(policy, current, process(trajectories, config.rl.gamma, config.rl.gae_lambda), rates[s],
                            create_graph=False)
    shared = {n: (p[0] if steps else p).detach().clone() for n, p in current.items()}
    return AdaptedPolicy({MODEL + n: p for n, p in shared.items()}, returns, seen)

