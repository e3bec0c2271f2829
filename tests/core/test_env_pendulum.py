"""Pendulum with mass and length per task: the torch family against hand-worked steps and against gymnasium."""

from __future__ import annotations

import math

import pytest
import torch

from core.envs.extra import INSTALL_HINT, missing_modules
from core.envs.pendulum import PendulumBatch, PendulumMassFamily, PendulumMassGymFamily

NO_GYM = bool(missing_modules(("gymnasium",)))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def one(theta, speed, mass, length, horizon=200):
    d = lambda v: torch.tensor([v], dtype=torch.float64)      # noqa: E731
    return PendulumBatch(d(theta), d(speed), d(mass), d(length), horizon)


def test_step_by_hand():
    batch = one(0.5, 0.2, mass=1.5, length=0.8)
    obs, reward, done = batch.step(torch.tensor([[1.0]]))
    assert reward.item() == pytest.approx(-(0.5**2 + 0.1 * 0.2**2 + 0.001 * 1.0**2), rel=1e-6)
    speed = 0.2 + (3 * 10 / (2 * 0.8) * math.sin(0.5) + 3 / (1.5 * 0.8**2) * 1.0) * 0.05
    theta = 0.5 + speed * 0.05
    assert obs[0].tolist() == pytest.approx([math.cos(theta), math.sin(theta), speed], rel=1e-6)
    assert not done.item()


def test_torque_and_speed_are_clipped_and_the_angle_wraps_in_the_cost():
    batch = one(2 * math.pi + 0.1, 7.9, mass=0.5, length=0.5)
    obs, reward, _ = batch.step(torch.tensor([[10.0]]))
    assert reward.item() == pytest.approx(-(0.1**2 + 0.1 * 7.9**2 + 0.001 * 2.0**2), rel=1e-5)
    assert obs[0, 2].item() == 8.0


def test_horizon_ends_every_trajectory_and_ended_ones_return_zero():
    family = PendulumMassFamily({"horizon": 4})
    batch, _ = family.reset(family.sample_tasks(2, gen()), 3, gen())
    for t in range(4):
        obs, reward, done = batch.step(torch.zeros(6, 1))
        assert bool(done.all()) == (t == 3) and bool((reward < 0).all())
    after, reward, done = batch.step(torch.ones(6, 1))
    assert bool(done.all()) and torch.equal(reward, torch.zeros(6)) and torch.equal(after, obs)


def test_tasks_and_starts_repeat_from_the_generator_and_rows_carry_their_task():
    family = PendulumMassFamily()
    tasks = family.sample_tasks(50, gen(1))
    assert torch.equal(tasks, family.sample_tasks(50, gen(1))) and not torch.equal(tasks, family.sample_tasks(50, gen(2)))
    assert bool(((tasks >= 0.5) & (tasks <= 1.5)).all()) and family.horizon == 200
    heavy = PendulumMassFamily({"mass_range": [2.0, 3.0], "length_range": [1.0, 1.0]}).sample_tasks(50, gen(1))
    assert bool(((heavy[:, 0] >= 2.0) & (heavy[:, 0] <= 3.0)).all()) and bool((heavy[:, 1] == 1.0).all())
    a, obs_a = family.reset(tasks[:2], 3, gen(5))
    _, obs_b = family.reset(tasks[:2], 3, gen(5))
    assert torch.equal(obs_a, obs_b) and obs_a.shape == (6, 3)
    assert torch.equal(a.mass, tasks[:2, 0].double().repeat_interleave(3))
    assert torch.equal(a.length, tasks[:2, 1].double().repeat_interleave(3))


@pytest.mark.skipif(NO_GYM, reason=f"gymnasium not installed: bash install.sh --test installs it ({INSTALL_HINT})")
def test_torch_pendulum_follows_gymnasiums():
    gym_family = PendulumMassGymFamily()
    tasks = PendulumMassFamily().sample_tasks(3, gen(1))
    gym_batch, gym_obs = gym_family.reset(tasks, 2, gen(2))
    # the torch batch starts from gymnasium's drawn states, then both get the same actions
    states = torch.tensor([env.unwrapped.state.tolist() for env in gym_family.adapter._pool[:6]], dtype=torch.float64)
    params = tasks.double().repeat_interleave(2, dim=0)
    ours = PendulumBatch(states[:, 0], states[:, 1], params[:, 0], params[:, 1], gym_family.horizon)
    assert torch.equal(ours.observation(), gym_obs)
    actions = torch.randn(200, 6, 1, generator=gen(3)) * 3
    for t in range(200):
        o1, r1, d1 = gym_batch.step(actions[t])
        o2, r2, d2 = ours.step(actions[t])
        # gymnasium rounds its torque term to float32, so the two drift apart by ~1e-6
        assert torch.allclose(o1, o2, atol=1e-4) and torch.allclose(r1, r2, atol=1e-4) and torch.equal(d1, d2)
    assert bool(d1.all())
    gym_family.close()
