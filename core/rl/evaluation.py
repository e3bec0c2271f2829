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
from core.tasks.spec import FamilySpec
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


def baseline_config(config: ExperimentConfig, name: str) -> ExperimentConfig | None:
    """The settings a trained baseline is trained with: ``pretrain`` on the run's family ("pretrained"), or on
    the family with its ``oracle_params`` ("oracle"; None for a family without an oracle)."""
    base = dataclasses.replace(config, algorithm=dataclasses.replace(config.algorithm, name="pretrain"))
    if name != "oracle":
        return base
    oracle = getattr(type(policy_family(config)), "oracle_params", {})
    if not oracle:
        return None
    return dataclasses.replace(base, family=FamilySpec(config.family.name, {**dict(config.family.params), **oracle}))


class EvaluationCancelled(Exception):
    """``should_stop`` said so (a window closing, a new run); nothing was kept."""


def train_baseline(config: ExperimentConfig, iterations: int,
                   should_stop: Callable[[], bool] | None = None) -> dict[str, torch.Tensor]:
    """Train ``config`` (a :func:`baseline_config`) for ``iterations`` meta-iterations; its weights.
    Raises :class:`EvaluationCancelled` when ``should_stop()`` turns true between iterations."""
    trainer = RLTrainer(config.replace("train", iterations=max(iterations, 1)))
    for _ in range(iterations):
        if should_stop is not None and should_stop():
            raise EvaluationCancelled()
        trainer.step()
    return trainer.weights()


def evaluate_rl(config: ExperimentConfig, weights: dict[str, torch.Tensor], tasks: int = 40, rollouts: int = 40,
                steps: tuple[int, ...] = (0, 1, 2, 3), seed: int = 0, baselines: tuple[str, ...] = BASELINES,
                baseline_iterations: int = 100, given: dict[str, tuple[dict, int | None]] | None = None,
                cached: Callable[[str, ExperimentConfig, int], dict | None] | None = None,
                keep: Callable[[str, ExperimentConfig, int, dict], None] | None = None,
                progress: Callable[[str], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> RLEvaluation:
    """Score ``weights`` and the ``baselines`` on the same ``tasks`` held-out tasks. A trained baseline's
    weights come from ``given[name]`` (weights, iterations), else ``cached(name, config, iterations)``,
    else it is trained here for ``baseline_iterations`` and handed to ``keep``. A family without an
    oracle gets none. ``should_stop()`` is asked between pieces of work (:class:`EvaluationCancelled`)."""
    stop = should_stop or (lambda: False)

    def say(text):
        if stop():
            raise EvaluationCancelled()
        if progress is not None:
            progress(text)
    family = policy_family(config)
    held_out = held_out_tasks(family, tasks, seed)
    top = max(steps)
    policy = build_policy(config, family)
    given = given or {}

    def score(params, cfg=config, max_step=top):
        fam = family if cfg is config else policy_family(cfg)
        pol = policy if cfg is config else build_policy(cfg, fam)
        generator = torch.Generator().manual_seed(seed + ACTION_SEED_OFFSET)
        return adaptation_returns(cfg, pol, params, fam, held_out, rollouts, max_step, generator)

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
        cfg = baseline_config(config, name)
        if cfg is None:
            continue
        trained, iterations = given.get(name, (None, baseline_iterations))
        if trained is None and cached is not None:
            trained = cached(name, cfg, iterations)
        if trained is None:
            say(f"training the {name} baseline ({iterations} iterations)")
            trained = train_baseline(cfg, iterations, stop)
            if keep is not None:
                keep(name, cfg, iterations, trained)
        say(f"scoring the {name} baseline")
        if name == "oracle":   # told the task: not adapted, one line across the steps
            result[name] = summarise(score(unpacked(trained), cfg, 0).expand(top + 1, -1), steps, iterations)
        else:
            result[name] = summarise(score(unpacked(trained), cfg), steps, iterations)
    model = result.pop("model")
    return RLEvaluation(tasks, rollouts, tuple(steps), tuple(inner_rates(config, top, evaluation=True)), model, result)
