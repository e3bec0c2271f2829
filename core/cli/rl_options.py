"""The meta-RL flags of ``maml-gui train`` (``--outer``, ``--rollouts``, ``--horizon``, ``--gamma``,
``--gae-lambda``, ``--max-kl``): they apply to environment families only, and say so otherwise."""

from __future__ import annotations

import argparse
from pathlib import Path

from core import ranges
from core.config import OUTER_STEPS, ExperimentConfig, FamilySpec
from core.errors import ConfigError

RL_FLAGS = ("outer", "rollouts", "horizon", "gamma", "gae_lambda", "max_kl")


def add_rl_arguments(train: argparse.ArgumentParser) -> None:
    group = train.add_argument_group("meta-reinforcement learning (--family nav2d, …)")
    group.add_argument("--outer", choices=OUTER_STEPS, help="the outer step: trpo (the MAML paper's; default) or ppo "
                       "(a clipped surrogate with Adam at --meta-lr)")
    group.add_argument("--rollouts", type=ranges.integer(1, 100_000), help="trajectories per task for each inner step "
                       "and for the meta-objective (default 20)")
    group.add_argument("--horizon", type=ranges.integer(1, 10_000), help="steps per trajectory at most (default 100)")
    group.add_argument("--gamma", type=ranges.number(0, 1, low_open=False), help="discount (default 0.99)")
    group.add_argument("--gae-lambda", type=ranges.number(0, 1, low_open=False), help="GAE's lambda (default 1)")
    group.add_argument("--max-kl", type=ranges.number(0, 10), help="TRPO's bound on the mean KL per outer step "
                       "(default 0.01)")


def apply_rl_arguments(args: argparse.Namespace, config: ExperimentConfig) -> ExperimentConfig:
    given = {k: getattr(args, k) for k in RL_FLAGS if getattr(args, k, None) is not None}
    if not given:
        return config
    if not config.is_rl:
        flag = "--" + next(iter(given)).replace("_", "-")
        raise ConfigError(f"rl.{next(iter(given))}", f"{flag} applies to environment families (--family nav2d, …), "
                                                     f"not {config.family.name}")
    if "horizon" in given:
        config = ExperimentConfig(FamilySpec(config.family.name, {**dict(config.family.params),
                                                                  "horizon": given.pop("horizon")}),
                                  config.model, config.algorithm, config.train, config.rl)
    return config.replace("rl", **given)


def add_rl_evaluate_arguments(ev: argparse.ArgumentParser) -> None:
    group = ev.add_argument_group("meta-RL runs (--family nav2d, …)")
    group.add_argument("--rollouts", type=ranges.integer(1, 100_000), help="trajectories per held-out task and step "
                       "(default 40)")
    group.add_argument("--baselines", default="pretrained,random,oracle", help="baselines scored beside the run, "
                       "comma-separated from pretrained, random, oracle, or 'none' (default: all three)")
    group.add_argument("--baseline-iterations", type=ranges.integer(1, ranges.MAX_ITERATIONS), metavar="N",
                       help="training iterations of the pretrained and oracle baselines (default: the run's, at most "
                            "500); kept in RUN/baselines/ and reused")
    group.add_argument("--pretrained", type=Path, metavar="RUN", help="the pretrained baseline: a run trained with "
                       "--algorithm pretrain on the same family (instead of training one)")
    group.add_argument("--oracle", type=Path, metavar="RUN", help="the oracle baseline: a run trained with --algorithm "
                       "pretrain on the family that shows the task (nav2d: observe_goal)")


def baseline_names(text: str) -> tuple[str, ...]:
    from core.rl.evaluation import BASELINES

    if text.strip().lower() == "none":
        return ()
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        if name not in BASELINES:
            raise argparse.ArgumentTypeError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)} or none")
    return names
