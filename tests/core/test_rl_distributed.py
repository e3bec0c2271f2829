"""Meta-RL in several processes (``train --family nav2d --nproc N``): each process holds its share of
the tasks, and the summed outer step is the one-process step (gradient, KL Hessian-vector product,
TRPO and clipped-surrogate updates); the command line trains, resumes exactly and stops like a
supervised run of several processes. CPU, gloo on localhost, two processes."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core.cli.main import main
from core.config import AlgorithmSpec, ExperimentConfig, ModelSpec, RLSpec, TrainSpec
from core.storage.checkpoint import load_checkpoint, load_run
from core.storage.metrics import read_metrics
from core.tasks.spec import FamilySpec
from tests.helpers import spawn_two_ranks

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {   # meta-batch 5 over 2 processes: shares of 3 and 2 tasks
    "maml, one step": ("maml", 1, "trpo"),
    "maml, two steps": ("maml", 2, "trpo"),
    "first-order": ("fomaml", 1, "trpo"),
    "clipped surrogate": ("maml", 1, "ppo"),
}


def small_config(algorithm: str, steps: int, outer: str) -> ExperimentConfig:
    """Damping 0.1 and 4 conjugate-gradient iterations: the solve stops by count, never at its residual
    threshold, a yes/no that rounding (another summation order) can flip, moving the step by ~1e-4."""
    return ExperimentConfig(FamilySpec("nav2d", {"horizon": 6}), ModelSpec(hidden=(7, 5)),
                            AlgorithmSpec(algorithm, steps, 0.3), TrainSpec(meta_batch=5, iterations=5, seed=2),
                            RLSpec(rollouts=4, outer=outer, max_kl=0.05, cg_damping=0.1, cg_iterations=4))


def problem(config: ExperimentConfig):
    """The same policy, tasks and trajectories in every process (one seeded generator)."""
    from core.rl import meta
    from core.rl.trainer import build_policy, policy_family

    family = policy_family(config)
    policy = build_policy(config, family)
    g = torch.Generator().manual_seed(7)
    params = {n: (p + 0.1 * torch.randn(p.shape, generator=g)).requires_grad_(True) for n, p in policy.init(g).items()}
    tasks = family.sample_tasks(config.train.meta_batch, g)
    return policy, params, meta.sample(policy, params, family, tasks, config, g)


def share_of(sampled, part: slice):
    """The tasks ``part`` of a meta-batch's trajectories (every tensor in them is laid out tasks first)."""
    def cut(item):
        if dataclasses.is_dataclass(item):
            return dataclasses.replace(item, **{f.name: cut(getattr(item, f.name)) for f in dataclasses.fields(item)})
        if isinstance(item, (list, tuple)):
            return type(item)(cut(x) for x in item)
        return item[part] if isinstance(item, torch.Tensor) else item
    return cut(sampled)


def outer_pieces(config, shared=None, part=None):
    """The meta-gradient, one KL Hessian-vector product (damped, as TRPO uses it), and the outer step's
    parameters and result, for the whole meta-batch (``shared`` None) or this process's ``part``."""
    from core.rl import meta
    from core.rl.trpo import flat
    from core.training.optim import MetaAdam

    policy, params, sampled = problem(config)
    if part is not None:
        sampled = share_of(sampled, part)
    values = list(params.values())
    evaluate, hvp, reduce = meta.trpo_parts(policy, params, sampled, config, shared)
    v = torch.randn(sum(p.numel() for p in values), generator=torch.Generator().manual_seed(5))
    grad = flat(torch.autograd.grad(evaluate(True)[0], values))
    hv = hvp(v)
    if reduce is not None:
        grad, hv = reduce(grad), reduce(hv) + config.rl.cg_damping * v
    if config.rl.outer == "trpo":
        result = meta.trpo_outer(policy, params, sampled, config, shared)
    else:
        result = meta.ppo_outer(policy, params, sampled, config, MetaAdam(values, lr=0.01), shared)
    return grad.detach(), hv.detach(), [p.detach().clone() for p in values], dataclasses.astuple(result)


def _outer_worker(rank: int, folder: str) -> None:
    from core.rl.meta import Shared
    from core.rl.trainer import RLTrainer
    from core.training.distributed import Group

    torch.set_default_dtype(torch.float64)
    group = Group.join((rank, 2, rank, 2), timeout=60)
    results = {}
    for name, settings in CONFIGS.items():
        config = small_config(*settings)
        part = group.shard(config.train.meta_batch)
        shared = Shared((part.stop - part.start) / config.train.meta_batch, lambda t: group.all_sum(t, 0))
        results[name] = outer_pieces(config, shared, part)
    trainer = RLTrainer(small_config("maml", 1, "trpo"), group=group)   # a whole iteration: the metrics exchanged
    m = trainer.step()
    sampled = trainer.last_sampled
    results["trainer"] = (m, [t.task_returns for t in (*sampled.inner, sampled.post)],
                          sum(t.steps for t in (*sampled.inner, sampled.post)),
                          [p.detach().clone() for p in trainer.params.values()])
    torch.save(results, Path(folder) / f"rank{rank}.pt")
    group.close()


def test_two_processes_take_the_one_process_outer_step(tmp_path, monkeypatch):
    """Unequal shares (3 and 2 tasks), float64: the summed meta-gradient, KL Hessian-vector product,
    TRPO step and clipped-surrogate steps equal those of one process holding all 5 tasks, and both
    processes end with bit-identical parameters."""
    spawn_two_ranks(_outer_worker, tmp_path, monkeypatch)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for name, settings in CONFIGS.items():
            grad, hv, params, result = outer_pieces(small_config(*settings))
            for rank in ranks:
                r_grad, r_hv, r_params, r_result = rank[name]
                assert grad.norm() > 1e-3 and hv.norm() > 1e-3, f"{name}: a vacuous comparison"
                assert torch.allclose(r_grad, grad, atol=1e-10, rtol=1e-8), name
                assert torch.allclose(r_hv, hv, atol=1e-10, rtol=1e-8), name
                assert all(torch.allclose(a, b, atol=1e-9, rtol=1e-8) for a, b in zip(r_params, params)), name
                assert np.allclose(r_result, result, atol=1e-9, rtol=1e-7), f"{name}: {r_result} vs {result}"
            start = problem(small_config(*settings))[1]
            assert max(float((a - b.detach()).abs().max()) for a, b in zip(params, start.values())) > 1e-4, \
                f"{name}: no step was taken"
            assert all(torch.equal(a, b) for a, b in zip(ranks[0][name][2], ranks[1][name][2])), name
    finally:
        torch.set_default_dtype(previous)
    (m0, returns0, steps0, params0), (m1, returns1, steps1, params1) = ranks[0]["trainer"], ranks[1]["trainer"]
    assert m0 == dataclasses.replace(m1, seconds=m0.seconds, wall_time=m0.wall_time), "every process reports the same"
    assert [len(r) for r in (returns0[0], returns1[0])] == [3, 2]
    expected = [float(torch.cat([a, b]).mean()) for a, b in zip(returns0, returns1)]   # the mean over all 5 tasks
    assert np.allclose(m0.step_returns, expected, rtol=1e-12) and m0.meta_return == m0.step_returns[-1]
    assert m0.env_steps == steps0 + steps1
    assert all(torch.equal(a, b) for a, b in zip(params0, params1))


TINY = ["--family", "nav2d", "--meta-batch", "5", "--rollouts", "4", "--horizon", "10", "--seed", "3",
        "--save-every", "0"]


def test_nproc_2_trains_a_run_that_resumes_exactly_and_evaluates(tmp_path, capfd):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(["train", *TINY, "--iterations", "4", "--nproc", "2", "--out", str(whole)]) == 0
    assert main(["train", *TINY, "--iterations", "2", "--nproc", "2", "--out", str(split)]) == 0
    assert main(["train", "--resume", str(split), "--iterations", "4", "--nproc", "2"]) == 0
    out = capfd.readouterr().out.strip().splitlines()
    assert len(out) == 3 and all("2 processes" in line for line in out), "rank 0 alone reports"
    assert "2 iterations (2 to 4)" in out[-1]
    a, b = read_metrics(whole), read_metrics(split)
    assert a.shape == b.shape == (4, 7) and a[:, 0].tolist() == [1, 2, 3, 4]
    assert (a[:, [1, 2, 4, 5]] == b[:, [1, 2, 4, 5]]).all(), "the resumed run draws what the whole one did"
    wa, wb = load_run(whole)[1], load_run(split)[1]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert main(["evaluate", str(split), "--steps", "0,1", "--tasks", "3", "--rollouts", "3", "--baselines", "none",
                 "--json"]) == 0
    data = json.loads(capfd.readouterr().out)
    assert data["metric"] == "return" and set(data["mean"]) == {"0", "1"}


def test_a_meta_batch_smaller_than_the_processes_is_one_line_and_exit_2(tmp_path, capfd):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--meta-batch", "1", "--nproc", "2", "--out", str(out)]) == 2
    err = capfd.readouterr().err.strip()
    assert err.splitlines() == [err] and "the meta-batch (1 tasks) is smaller than the 2 processes" in err
    assert not out.exists()


def test_sigterm_to_the_launcher_stops_both_processes_after_a_save(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "train", *TINY, "--iterations", "100000000",
                             "--nproc", "2", "--save-every", "0.2", "--out", str(out)], cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while read_metrics(out) is None:   # a checkpoint with rows: the processes are exchanging
            assert time.monotonic() < deadline and proc.poll() is None, "the run did not start"
            time.sleep(0.05)   # child processes: the run folder is the only thing to watch
        proc.send_signal(signal.SIGTERM)
        stdout, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 143, err
    iteration = int(load_checkpoint(out)[3]["iteration"])
    assert read_metrics(out)[:, 0].tolist() == list(range(1, iteration + 1))
    assert f"stopped by SIGTERM at iteration {iteration:,}" in stdout and "2 processes" in stdout
    assert not (out / ".lock").exists()


def test_a_process_that_dies_leaves_the_last_completed_iteration_which_resumes_exactly(tmp_path):
    """Rank 1 killed at iteration 3's last exchange, after the clipped-surrogate epochs moved rank 0's
    weights and Adam moments: rank 0 saves iteration 2 as it was, and resuming it gives the uninterrupted run."""
    whole, crashed = tmp_path / "whole", tmp_path / "crashed"
    ppo = [*TINY, "--outer", "ppo", "--iterations", "4", "--nproc", "2"]
    faults = Path(__file__).resolve().parents[1] / "faults"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MAML_TEST_FAULT": "die:1:3", "MAML_TEST_ROOT": str(ROOT),
           "PYTHONPATH": os.pathsep.join([str(faults), os.environ.get("PYTHONPATH", "")])}   # see faults/sitecustomize.py
    done = subprocess.run([sys.executable, "-m", "core.cli", "train", *ppo, "--out", str(crashed)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("maml-gui: rank 1 exited with code -9 (SIGKILL) during "
                                                           "iteration ~3;"), done.stderr
    assert int(load_checkpoint(crashed)[3]["iteration"]) == 2 and not (crashed / ".lock").exists()
    assert main(["train", "--resume", str(crashed), "--nproc", "2"]) == 0
    assert main(["train", *ppo, "--out", str(whole)]) == 0
    a, b = read_metrics(whole), read_metrics(crashed)
    assert a[:, 0].tolist() == b[:, 0].tolist() == [1, 2, 3, 4] and (a[:, [1, 2, 4, 5]] == b[:, [1, 2, 4, 5]]).all()
    wa, wb = load_run(whole)[1], load_run(crashed)[1]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
