"""A meta-RL run's policy looked at the way the window looks at a supervised network
(:class:`~core.trained.loaded_model.LoadedModel`): held-out returns per adaptation step beside the
baselines, and one held-out task adapted to, as the task view draws it (the 2-D navigation figure, or each
episode's return). Only plain data leaves it (``AdaptationSnapshot``, ``Preview``).

Held-out tasks, the actions taken on them and the random initialisation come from the generators
``maml-gui evaluate`` uses (:mod:`core.rl.evaluation`, its default ``--seed 0``), so every snapshot of a
run scores the same tasks, and the window's numbers are the command's for the same tasks and rollouts.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from core.config import ExperimentConfig
from core.envs.nav2d import velocity
from core.tasks.spec import FamilySpec
from core.rl.evaluation import ACTION_SEED_OFFSET, RANDOM_INIT_OFFSET, adaptation_returns, held_out_tasks
from core.rl.frames import FilmRequest, SeedRecorder, clip_of
from core.rl.meta import inner_rates, sample
from core.rl.task_views import EpisodeReturns, TrajectoryFigure
from core.rl.trainer import build_policy, policy_family
from core.trained.loaded_model import AdaptationSnapshot, Preview

EVAL_SEED = 0             # maml-gui evaluate's default --seed: the same held-out tasks
EVAL_STEPS = 3            # returns after 0..3 inner steps, as the MAML paper's figure
FIGURE_ROLLOUTS = 10      # trajectories drawn per step in the navigation figure
FIGURE_SEED_OFFSET = 101  # the figure's actions: their own generator (a preview never shifts the scores)


def evaluation_steps(config: ExperimentConfig) -> int:
    return max(EVAL_STEPS, config.algorithm.inner_steps)


class RLInspector:
    """The live policy of an :class:`~core.rl.trainer.RLTrainer` (no copies), or saved weights."""

    def __init__(self, config: ExperimentConfig, params: dict[str, torch.Tensor], iteration_of: Callable[[], int],
                 policy=None, family=None):
        self.config = config
        self.family = family or policy_family(config)   # an oracle's sees the task too (core.rl.oracle)
        self.policy = policy or build_policy(config, self.family)
        self.params = params
        self._iteration_of = iteration_of
        self._random: dict[str, torch.Tensor] | None = None

    @classmethod
    def of_trainer(cls, trainer) -> "RLInspector":
        return cls(trainer.config, trainer.params, lambda: trainer.iteration, trainer.policy, trainer.family)

    @classmethod
    def of_weights(cls, config: ExperimentConfig, weights: dict | None, iteration: int = 0) -> "RLInspector":
        """Saved weights (``model.<name>`` tensors), or a fresh initialisation without them."""
        family = policy_family(config)
        policy = build_policy(config, family)
        params = policy.init(torch.Generator().manual_seed(config.train.seed))
        if weights:
            params = {n: weights[f"model.{n}"].detach().to(torch.float32).clone() for n in params}
        return cls(config, params, lambda: iteration, policy, family)

    @property
    def iteration(self) -> int:
        return self._iteration_of()

    # -- held-out returns ------------------------------------------------------------------------
    def returns_per_step(self, params, tasks: torch.Tensor, steps: int) -> np.ndarray:
        """Each task's average (undiscounted) return after 0..``steps`` inner steps ``[steps + 1, T]``,
        adapting with the evaluation step sizes (the inner lr, then ``rl.later_inner_lr``), as ``evaluate``."""
        generator = torch.Generator().manual_seed(EVAL_SEED + ACTION_SEED_OFFSET)
        returns = adaptation_returns(self.config, self.policy, params, self.family, tasks, self.config.rl.rollouts,
                                     steps, generator)
        return returns.numpy().astype(float)

    def adaptation(self, tasks: int = 20, baseline: "RLInspector | None" = None,
                   report: Callable[[float], bool] | None = None,
                   oracle: "RLInspector | None" = None) -> AdaptationSnapshot | None:
        """Mean return and 95% CI over ``tasks`` held-out tasks after 0..M inner steps, for this policy
        ("meta-learned"), ``baseline``'s ("pretrained": one policy trained on the mixture of tasks), a random
        initialisation's ("random"), each adapted with the same inner steps, and ``oracle``'s (a policy
        told the task, not adapted: one value across the steps). ``report(fraction)`` between the series;
        True cancels (None is returned)."""
        steps = evaluation_steps(self.config)
        batch = held_out_tasks(self.family, tasks, EVAL_SEED)
        if self._random is None:
            self._random = self.policy.init(torch.Generator().manual_seed(EVAL_SEED + RANDOM_INIT_OFFSET))
        models = {"meta-learned": self}
        if baseline is not None:
            models["pretrained"] = baseline
        models["random"] = None
        if oracle is not None:
            models["oracle"] = oracle
        series = {}
        for i, (name, model) in enumerate(models.items()):
            if report is not None and report(i / len(models)):
                return None
            if name == "oracle":
                returns = np.repeat(model.returns_per_step(model.params, batch, 0), steps + 1, axis=0)
            else:
                returns = self.returns_per_step(self._random if model is None else model.params, batch, steps)
            n = returns.shape[1]
            mean = returns.mean(1)
            ci = 1.96 * returns.std(1, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(mean)
            series[name] = (mean, ci)
        base = baseline.iteration if baseline is not None else 0
        return AdaptationSnapshot(self.iteration, "return", np.arange(steps + 1), series, base, tasks=tasks)

    # -- one task up close -----------------------------------------------------------------------
    def preview(self, task_index: int) -> Preview:
        """Held-out task ``task_index`` adapted to, as the task view draws it."""
        task = held_out_tasks(self.family, task_index + 1, EVAL_SEED)[task_index:task_index + 1]
        return self.adapt_to(task, task_index)

    def adapt_to(self, task, task_index: int = -1, placed: bool = False) -> Preview:
        """``task`` (one row: a tensor or numbers, e.g. a goal's x and y) adapted to with the evaluation
        steps: the 2-D navigation figure (the goal, the trajectories before adaptation and after each
        step), else each episode's return per step and the first episode before and after adaptation
        recorded for a few frames (drawn later by :func:`core.rl.frames.film`, on the caller's job thread)."""
        task = torch.as_tensor(task, dtype=torch.float32).reshape(1, -1)
        steps = evaluation_steps(self.config)
        nav = self.family.name == "nav2d"
        rollouts = FIGURE_ROLLOUTS if nav else self.config.rl.rollouts
        config = self.config.replace("rl", rollouts=rollouts)
        generator = torch.Generator().manual_seed(EVAL_SEED + FIGURE_SEED_OFFSET + max(task_index, 0))
        family = self.family if nav else SeedRecorder(self.family)
        sampled = sample(self.policy, self.params, family, task, config, generator, steps,
                         inner_rates(config, steps, evaluation=True) or None)
        trajectories = (*sampled.inner, sampled.post)
        returns = tuple(t.average_return for t in trajectories)
        if nav:
            speed = float(self.family.params.get("max_speed", math.inf))
            paths = tuple(_paths(t, speed) for t in trajectories)
            view = TrajectoryFigure(task[0].numpy().astype(float), paths, returns, iteration=self.iteration,
                                    placed=placed)
        else:
            episodes = tuple((t.rewards * t.mask).sum(-1)[0].numpy().astype(float) for t in trajectories)
            names = getattr(self.family, "task_names", ()) or ()
            words = ", ".join(f"{n} {v:.2f}" for n, v in zip(names, task[0].tolist()))
            view = EpisodeReturns(episodes, self.iteration, words, _film_request(self.family, trajectories, family.seeds))
        return Preview(self.iteration, task_index, view)


def _film_request(family, trajectories, seeds) -> FilmRequest:
    """The first episode before adaptation and after the last inner step, for a few frames."""
    steps = len(trajectories) - 1
    after = "before adaptation" if steps == 0 else f"after {steps} step{'s' * (steps != 1)}"
    clips = ([clip_of(trajectories[0], "before adaptation", seeds[0])] if steps else []) + \
        [clip_of(trajectories[-1], after, seeds[-1])]
    spec = family.spec() if callable(getattr(family, "spec", None)) else FamilySpec(family.name, dict(family.params))
    return FilmRequest(spec, tuple(clips))


def _paths(trajectories, max_speed: float) -> np.ndarray:
    """The positions of one task's trajectories ``[rollouts, H + 1, 2]``: the observed positions (2-D
    navigation observes its position), the last one after the final action, NaN past each end."""
    obs = trajectories.observations[0].numpy().astype(float)        # [R, H, 2]: positions before each action
    mask = trajectories.mask[0].numpy().astype(bool)                # [R, H]
    actions = trajectories.actions[0].numpy().astype(float)
    paths = np.full((obs.shape[0], obs.shape[1] + 1, obs.shape[2]), np.nan)
    paths[:, :-1][mask] = obs[mask]
    taken = mask.sum(1)
    for r, n in enumerate(taken):   # where the last action took it
        if n:
            paths[r, n] = obs[r, n - 1] + velocity(torch.from_numpy(actions[r, n - 1]), max_speed).numpy()
    return paths
