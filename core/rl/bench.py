"""The meta-RL speed bench: 2-D navigation rollouts (all tasks × trajectories as one tensor) and whole
MAML-TRPO meta-iterations, each side by side with a plain loop over tasks and trajectories (one
trajectory, one policy call per step; the inner and outer steps task by task), in one run."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch

from core.config import ExperimentConfig, default_rl_config
from core.rl.inner import Params
from core.rl.rollouts import Trajectories, collect, process
from core.rl.trainer import RLTrainer
from core.rl.trpo import trpo_step


@dataclass(frozen=True)
class RLBenchResult:
    tasks: int
    rollouts: int
    horizon: int
    engine_steps_s: float       # environment steps per second, vectorised rollouts
    loop_steps_s: float         # the same with a loop over tasks and trajectories
    engine_it_s: float          # MAML-TRPO meta-iterations per second
    loop_it_s: float

    @property
    def rollout_speedup(self) -> float:
        return self.engine_steps_s / self.loop_steps_s

    @property
    def iteration_speedup(self) -> float:
        return self.engine_it_s / self.loop_it_s

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "rollout_speedup": self.rollout_speedup,
                "iteration_speedup": self.iteration_speedup}


@torch.no_grad()
def loop_collect(policy, params: Params, family, tasks: torch.Tensor, rollouts: int, generator: torch.Generator,
                 per_task: bool = False) -> Trajectories:
    """:func:`~core.rl.rollouts.collect` as a plain loop: one trajectory at a time, one row per policy call."""
    horizon = family.horizon
    shape = (len(tasks), rollouts, horizon)
    obs_all = torch.zeros(*shape, family.observation_dim)
    act_all = torch.zeros(*shape, family.action_dim)
    rew_all, mask_all = torch.zeros(shape), torch.zeros(shape)
    for i, task in enumerate(tasks):
        theta = {n: p[i] for n, p in params.items()} if per_task else params
        for j in range(rollouts):
            env, obs = family.reset(task.unsqueeze(0), 1, generator)
            for t in range(horizon):
                action = policy.sample(theta, obs, generator)
                obs_all[i, j, t], act_all[i, j, t], mask_all[i, j, t] = obs[0], action[0], 1.0
                obs, reward, done = env.step(action)
                rew_all[i, j, t] = reward[0]
                if bool(done[0]):
                    break
    return Trajectories(tasks, obs_all, act_all, rew_all, mask_all)


def loop_meta_iteration(config: ExperimentConfig, policy, params: Params, family, generator: torch.Generator) -> None:
    """One MAML-TRPO meta-iteration written plainly: loop rollouts, and the inner step, surrogate and
    KL task by task with ordinary autograd (the KL's Hessian through it all, by double backprop)."""
    tasks = family.sample_tasks(config.train.meta_batch, generator)
    rl, lr = config.rl, config.algorithm.inner_lr
    names = list(params)
    pre = process(loop_collect(policy, {n: p.detach() for n, p in params.items()}, family, tasks, rl.rollouts,
                               generator), rl.gamma, rl.gae_lambda)

    def adapted(theta, i, create_graph):
        with torch.enable_grad():   # the line search evaluates under no_grad
            loss = -(policy.log_prob(theta, pre.observations[i], pre.actions[i]) * pre.advantages[i]
                     * pre.weights[i]).sum()
            grads = torch.autograd.grad(loss, [theta[n] for n in names], create_graph=create_graph)
        return {n: theta[n] - lr * g for n, g in zip(names, grads)}

    fast = [{n: p.detach() for n, p in adapted(params, i, False).items()} for i in range(len(tasks))]
    stacked = {n: torch.stack([f[n] for f in fast]) for n in names}
    post = process(loop_collect(policy, stacked, family, tasks, rl.rollouts, generator, per_task=True),
                   rl.gamma, rl.gae_lambda)
    old = [(policy.log_prob(fast[i], post.observations[i], post.actions[i]).detach(),
            tuple(x.detach() for x in policy.distribution(fast[i], post.observations[i]))) for i in range(len(tasks))]

    def objective(differentiable):
        loss = kl = 0.0
        for i in range(len(tasks)):
            theta = adapted(params, i, differentiable)
            log_prob = policy.log_prob(theta, post.observations[i], post.actions[i])
            loss = loss - (torch.exp(log_prob - old[i][0]) * post.advantages[i] * post.weights[i]).sum()
            kl = kl + (policy.kl(old[i][1], theta, post.observations[i]) * post.weights[i]).sum()
        return loss / len(tasks), kl / len(tasks)

    trpo_step(list(params.values()), objective, rl.max_kl, rl.cg_iterations, rl.cg_damping, rl.backtrack_ratio,
              rl.max_backtracks)


def bench_rl(quick: bool = False, rounds: int = 2) -> RLBenchResult:
    """The paper's setting (20 tasks × 20 trajectories × 100 steps), or a small one with ``quick``."""
    config = default_rl_config("nav2d")
    if quick:
        config = ExperimentConfig(dataclasses.replace(config.family, params={"horizon": 20}), config.model,
                                  config.algorithm, dataclasses.replace(config.train, meta_batch=4),
                                  dataclasses.replace(config.rl, rollouts=4))
        rounds = 1
    trainer = RLTrainer(config)
    family, policy = trainer.family, trainer.policy
    shared = {n: p.detach() for n, p in trainer.params.items()}
    tasks = family.sample_tasks(config.train.meta_batch, torch.Generator().manual_seed(0))

    def rate(fn):
        fn()   # warm-up
        start, steps = time.perf_counter(), 0
        for _ in range(rounds):
            steps += fn()
        return steps / (time.perf_counter() - start)

    g = torch.Generator().manual_seed(1)
    engine_steps = rate(lambda: collect(policy, shared, family, tasks, config.rl.rollouts, g).steps)
    loop_steps = rate(lambda: loop_collect(policy, shared, family, tasks, config.rl.rollouts, g).steps)
    engine_it = rate(lambda: (trainer.step(), 1)[1])
    loop_it = rate(lambda: (loop_meta_iteration(config, policy, trainer.params, family, g), 1)[1])
    return RLBenchResult(config.train.meta_batch, config.rl.rollouts, family.horizon, engine_steps, loop_steps,
                         engine_it, loop_it)
