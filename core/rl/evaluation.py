"""Held-out evaluation of a meta-RL run, as the MAML paper's figure: the average return on held-out tasks
after 0, 1, 2, 3 … policy-gradient steps, mean and 95% confidence interval over tasks, beside the
baselines trained on the same family: **pretrained** (one policy trained on the mixture of tasks, then
fine-tuned with the same inner steps), **random** initialisation (adapted likewise) and the **oracle** (a
policy that sees the task, not adapted). Every method meets the same held-out tasks.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from core.config import ExperimentConfig
from core.rl.inner import adapt
from core.rl.meta import inner_rates
from core.rl.rollouts import collect, process
from core.rl.trainer import MODEL, RLTrainer, build_policy, policy_family

EVAL_SEED_OFFSET = 1_000_003      # held-out tasks: Generator(seed + this), as for supervised runs
ACTION_SEED_OFFSET = 2_000_029    # the actions of every method: Generator(seed + this)
RANDOM_INIT_OFFSET = 4_000_037    # the random-initialisation baseline's weights
BASELINES = ("pretrained", "random", "oracle")


@dataclass(frozen=True)
class ReturnSummary:
    mean: dict[int, float]
    ci95: dict[int, float]
    iterations: int | None = None   # a trained baseline's training iterations

    def to_dict(self) -> dict:
        out = {"mean": _keyed(self.mean), "ci95": _keyed(self.ci95)}
        return out if self.iterations is None else {**out, "iterations": self.iterations}


@dataclass(frozen=True)
class RLEvaluation:
    """What ``maml-gui evaluate --json`` prints for a meta-RL run: ``metric`` "return" (undiscounted,
    averaged over each task's trajectories), per step the mean over tasks and its 95% CI half-width."""

    tasks: int
    rollouts: int
    steps: tuple[int, ...]
    inner_lrs: tuple[float, ...]
    model: ReturnSummary
    baselines: dict[str, ReturnSummary] = field(default_factory=dict)
    metric: str = "return"

    def to_dict(self) -> dict:
        return {"metric": self.metric, "tasks": self.tasks, "rollouts": self.rollouts, "steps": list(self.steps),
                "inner_lr": list(self.inner_lrs), "mean": _keyed(self.model.mean), "ci95": _keyed(self.model.ci95),
                "baselines": {name: s.to_dict() for name, s in self.baselines.items()}}


def _keyed(d: dict[int, float]) -> dict[str, float | None]:
    return {str(k): (v if math.isfinite(v) else None) for k, v in d.items()}


def held_out_tasks(family, n: int, seed: int) -> torch.Tensor:
    return family.sample_tasks(n, torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET))


def adaptation_returns(config: ExperimentConfig, policy, params: dict[str, torch.Tensor], family, tasks: torch.Tensor,
                       rollouts: int, steps: int, generator: torch.Generator, record=None) -> torch.Tensor:
    """``[steps + 1, T]``: each task's average return after 0..steps inner steps, each step taken on the
    trajectories just scored (the paper's protocol); ``record(step, trajectories)`` sees every batch."""
    lrs = inner_rates(config, steps, evaluation=True)
    current = {n: p.detach() for n, p in params.items()}
    rows = []
    for s in range(steps + 1):
        trajectories = collect(policy, current, family, tasks, rollouts, generator, per_task=s > 0)
        rows.append(trajectories.task_returns)
        if record is not None:
            record(s, trajectories)
        if s < steps:
            batch = process(trajectories, config.rl.gamma, config.rl.gae_lambda)
            current = adapt(policy, current, batch, lrs[s], create_graph=False)
    return torch.stack(rows)


def summarise(returns: torch.Tensor, steps: tuple[int, ...], iterations: int | None = None) -> ReturnSummary:
    """Mean and 95% CI half-width (1.96 standard errors over tasks) of ``returns [S + 1, T]`` at ``steps``."""
    n = returns.shape[1]
    mean = returns.mean(1)
    ci = 1.96 * returns.std(1, unbiased=True) / math.sqrt(n) if n > 1 else torch.zeros_like(mean)
    return ReturnSummary({s: float(mean[s]) for s in steps}, {s: float(ci[s]) for s in steps}, iterations)


def train_baseline(config: ExperimentConfig, iterations: int, oracle: bool = False,
                   should_stop: Callable[[], bool] | None = None) -> dict[str, torch.Tensor]:
    """A pretrained policy (or the oracle's): ``pretrain`` (no inner step) with the run's settings."""
    base = dataclasses.replace(config, algorithm=dataclasses.replace(config.algorithm, name="pretrain"))
    trainer = RLTrainer(base.replace("train", iterations=max(iterations, 1)), oracle=oracle)
    for _ in range(iterations):
        if should_stop is not None and should_stop():
            break
        trainer.step()
    return trainer.weights()


def evaluate_rl(config: ExperimentConfig, weights: dict[str, torch.Tensor], tasks: int = 40, rollouts: int = 40,
                steps: tuple[int, ...] = (0, 1, 2, 3), seed: int = 0, baselines: tuple[str, ...] = BASELINES,
                baseline_iterations: int = 100, cached: Callable[[str, int], dict | None] | None = None,
                keep: Callable[[str, int, dict], None] | None = None,
                progress: Callable[[str], None] | None = None) -> RLEvaluation:
    """Score ``weights`` and the ``baselines`` on the same ``tasks`` held-out tasks. Trained baselines
    come from ``cached(name, iterations)`` when it has them, else are trained here and handed to ``keep``."""
    say = progress or (lambda text: None)
    family = policy_family(config)
    held_out = held_out_tasks(family, tasks, seed)
    top = max(steps)
    policy = build_policy(config, family)

    def score(params, fam=family, pol=policy, max_step=top):
        generator = torch.Generator().manual_seed(seed + ACTION_SEED_OFFSET)
        return adaptation_returns(config, pol, params, fam, held_out, rollouts, max_step, generator)

    def unpacked(tensors):
        return {k[len(MODEL):]: v for k, v in tensors.items() if k.startswith(MODEL)}

    say("scoring the meta-learned policy")
    result = {"model": summarise(score(unpacked(weights)), steps)}
    for name in baselines:
        if name == "random":
            say("scoring a randomly initialised policy")
            params = policy.init(torch.Generator().manual_seed(seed + RANDOM_INIT_OFFSET))
            result[name] = summarise(score(params), steps)
            continue
        oracle = name == "oracle"
        trained = cached(name, baseline_iterations) if cached is not None else None
        if trained is None:
            say(f"training the {name} baseline ({baseline_iterations} iterations)")
            trained = train_baseline(config, baseline_iterations, oracle=oracle)
            if keep is not None:
                keep(name, baseline_iterations, trained)
        say(f"scoring the {name} baseline")
        if oracle:   # told the task: not adapted, one line across the steps
            oracle_family = policy_family(config, oracle=True)
            returns = score(unpacked(trained), oracle_family, build_policy(config, oracle_family), 0)
            result[name] = summarise(returns.expand(top + 1, -1), steps, baseline_iterations)
        else:
            result[name] = summarise(score(unpacked(trained)), steps, baseline_iterations)
    model = result.pop("model")
    return RLEvaluation(tasks, rollouts, tuple(steps), tuple(inner_rates(config, top, evaluation=True)), model, result)
