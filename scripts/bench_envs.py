"""Environment steps per second of the meta-RL families, all tasks × rollouts of a meta-batch, side by side.

    OMP_NUM_THREADS=1 python scripts/bench_envs.py [--tasks 20] [--rollouts 20] [--steps 200] [--repeat 3] [--quick]

For each family: the family as the engine runs it (``reset`` then ``step`` on the whole batch: the
gymnasium adapter over ``SyncVectorEnv``, or the torch pendulum as one tensor) next to a plain loop
that steps each gymnasium environment by itself (``env.step`` per trajectory, numpy actions, no
torch). Actions are fixed random numbers drawn beforehand, so only the environments are timed.
``--async N`` also times gymnasium's AsyncVectorEnv (one process per sub-environment) against
SyncVectorEnv on N environments. Each measurement alternates with its plain loop ``--repeat`` times and
keeps the best of each (the machine is shared); ratios are against the plain loop of the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.envs import build_env_family  # noqa: E402
from core.tasks.spec import FamilySpec  # noqa: E402


def time_family(name: str, tasks: int, rollouts: int, steps: int) -> float:
    family = build_env_family(FamilySpec(name, {"horizon": steps}))
    generator = torch.Generator().manual_seed(0)
    task_rows = family.sample_tasks(tasks, generator)
    n = tasks * rollouts
    family.reset(task_rows, rollouts, generator)        # builds the environments (not timed: once per run)
    actions = torch.randn(steps, n, family.action_dim, generator=generator)
    start = time.perf_counter()
    batch, _ = family.reset(task_rows, rollouts, generator)
    for t in range(steps):
        batch.step(actions[t])
    elapsed = time.perf_counter() - start
    getattr(family, "close", lambda: None)()
    return n * steps / elapsed


def time_plain_loop(env_class: type, family_name: str, tasks: int, rollouts: int, steps: int) -> float:
    family = build_env_family(FamilySpec(family_name, {"horizon": steps}))
    task_rows = family.sample_tasks(tasks, torch.Generator().manual_seed(0))
    envs = [env_class() for _ in range(tasks * rollouts)]
    rng = np.random.default_rng(0)
    actions = rng.standard_normal((steps, len(envs), family.action_dim)).astype(np.float32)
    low, high = envs[0].action_space.low, envs[0].action_space.high
    start = time.perf_counter()
    for i, env in enumerate(envs):
        env.set_task(family.adapter.decode(task_rows[i // rollouts]))
        env.reset(seed=i)
    for t in range(steps):
        for i, env in enumerate(envs):
            env.step(np.clip(actions[t, i], low, high))
    elapsed = time.perf_counter() - start
    for env in envs:
        env.close()
    return len(envs) * steps / elapsed


def time_async(n: int, steps: int) -> tuple[float, float]:
    from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

    from core.envs.halfcheetah import HalfCheetahGoalVelocity
    rates = []
    for cls in (SyncVectorEnv, AsyncVectorEnv):
        vector = cls([HalfCheetahGoalVelocity] * n)
        vector.reset(seed=0)
        actions = np.random.default_rng(0).uniform(-1, 1, (steps, n, 6)).astype(np.float32)
        start = time.perf_counter()
        for t in range(steps):
            vector.step(actions[t])
        rates.append(n * steps / (time.perf_counter() - start))
        vector.close()
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--rollouts", type=int, default=20)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--async", dest="async_n", type=int, default=0, metavar="N")
    parser.add_argument("--quick", action="store_true", help="4 tasks × 5 rollouts × 50 steps (a sanity check)")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.rollouts, args.steps, args.repeat = 4, 5, 50, 1
    torch.set_num_threads(1)
    from core.envs.halfcheetah import HalfCheetahGoalDirection, HalfCheetahGoalVelocity
    from core.envs.pendulum_gym import RandomPendulum

    size = f"{args.tasks} tasks × {args.rollouts} rollouts × {args.steps} steps"
    print(f"env steps/s, {size}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{'family':<20} {'engine path':<26} {'steps/s':>10} {'plain loop':>11} {'ratio':>6}")
    rows = [("halfcheetah-vel", "halfcheetah-vel", "adapter (SyncVectorEnv)", HalfCheetahGoalVelocity),
            ("halfcheetah-dir", "halfcheetah-dir", "adapter (SyncVectorEnv)", HalfCheetahGoalDirection),
            ("pendulum-mass-gym", "pendulum-mass-gym", "adapter (SyncVectorEnv)", RandomPendulum),
            ("pendulum-mass", "pendulum-mass-gym", "torch, one tensor", RandomPendulum)]
    loops: dict[type, float] = {}
    for family, loop_family, path, env_class in rows:
        rate = 0.0
        for _ in range(args.repeat):
            rate = max(rate, time_family(family, args.tasks, args.rollouts, args.steps))
            loops[env_class] = max(loops.get(env_class, 0.0),
                                   time_plain_loop(env_class, loop_family, args.tasks, args.rollouts, args.steps))
        loop = loops[env_class]
        print(f"{family:<20} {path:<26} {rate:>10,.0f} {loop:>11,.0f} {rate / loop:>5.2f}x", flush=True)
    if args.async_n:
        sync, asynchronous = 0.0, 0.0
        for _ in range(args.repeat):
            s, a = time_async(args.async_n, args.steps)
            sync, asynchronous = max(sync, s), max(asynchronous, a)
        print(f"HalfCheetah, {args.async_n} envs: SyncVectorEnv {sync:,.0f} steps/s, AsyncVectorEnv "
              f"{asynchronous:,.0f} steps/s ({asynchronous / sync:.2f}x)")


if __name__ == "__main__":
    main()
