"""The gymnasium meta-env adapter on tiny fake environments with task parameters (no MuJoCo needed)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from core.envs.extra import INSTALL_HINT, missing_modules
from core.errors import ConfigError

pytestmark = pytest.mark.skipif(bool(missing_modules(("gymnasium",))),
                                reason=f"gymnasium not installed: bash install.sh --test installs it ({INSTALL_HINT})")

if not missing_modules(("gymnasium",)):
    import gymnasium
    from gymnasium import spaces

    from core.envs.gym_adapter import GymMetaFamily

    class Drift(gymnasium.Env):
        """x ← x + speed · a; reward -|x - target|; terminates within 0.05 of the target. Task: {speed, target}."""

        def __init__(self):
            self.observation_space = spaces.Box(-10.0, 10.0, (1,), np.float32)
            self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
            self.speed, self.target, self.x = 1.0, 1.0, 0.0

        def sample_tasks(self, n):
            return [{"speed": float(s), "target": float(t)}
                    for s, t in zip(self.np_random.uniform(0.5, 1.0, n), self.np_random.uniform(1.0, 2.0, n))]

        def set_task(self, task):
            self.speed, self.target = task["speed"], task["target"]

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.x = float(self.np_random.uniform(-0.01, 0.01))
            return np.array([self.x], np.float32), {}

        def step(self, action):
            self.x += self.speed * float(action[0])
            distance = abs(self.x - self.target)
            return np.array([self.x], np.float32), -distance, distance < 0.05, False, {}

    class Choice(gymnasium.Env):
        """ProMP-style: a task is a plain number (the rewarded action); three discrete actions."""

        observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        action_space = spaces.Discrete(3)

        def sample_tasks(self, n):
            return self.np_random.integers(0, 3, n).astype(float)

        def set_task(self, task):
            assert isinstance(task, float)
            self.goal = task

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return np.zeros(2, np.float32), {}

        def step(self, action):
            return np.zeros(2, np.float32), float(int(action) == self.goal), False, False, {}

    class GlobalRandom(Drift):
        def sample_tasks(self, n):
            return [{"speed": float(s), "target": 1.0} for s in np.random.uniform(0.5, 1.0, n)]

    class NoSetTask(gymnasium.Env):
        observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        action_space = spaces.Discrete(2)

        def sample_tasks(self, n):
            return [0.0] * n


def drift(horizon=5):
    return GymMetaFamily("drift", Drift, horizon, task_fields=("speed", "target"))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_spaces_and_task_rows():
    family = drift()
    assert (family.observation_dim, family.action_dim, family.discrete, family.task_dim) == (1, 1, False, 2)
    tasks = family.sample_tasks(6, gen())
    assert tasks.shape == (6, 2) and tasks.dtype == torch.float32
    assert bool(((tasks[:, 0] >= 0.5) & (tasks[:, 0] <= 1.0) & (tasks[:, 1] >= 1.0) & (tasks[:, 1] <= 2.0)).all())
    assert family.decode(torch.tensor([0.75, 1.5])) == {"speed": 0.75, "target": 1.5}


def test_tasks_and_starts_repeat_from_the_generator():
    a, b = drift(), drift()
    assert torch.equal(a.sample_tasks(5, gen(3)), b.sample_tasks(5, gen(3)))
    assert not torch.equal(a.sample_tasks(5, gen(3)), a.sample_tasks(5, gen(4)))
    tasks = a.sample_tasks(2, gen(0))
    _, first_a = a.reset(tasks, 3, gen(7))
    _, first_b = b.reset(tasks, 3, gen(7))
    _, other = a.reset(tasks, 3, gen(8))
    assert torch.equal(first_a, first_b) and not torch.equal(first_a, other)
    assert len(set(first_a[:, 0].tolist())) == 6      # every trajectory has its own seed


def test_rows_get_their_task_and_rewards_are_the_environments():
    family = drift(horizon=5)
    tasks = torch.tensor([[0.5, 1.5], [1.0, 2.0]])
    batch, x0 = family.reset(tasks, 2, gen())
    obs, reward, done = batch.step(torch.full((4, 1), 5.0))       # clipped to 1 before the environment sees it
    speed = torch.tensor([0.5, 0.5, 1.0, 1.0])
    target = torch.tensor([1.5, 1.5, 2.0, 2.0])
    assert torch.allclose(obs[:, 0], x0[:, 0] + speed, atol=1e-6)
    assert torch.allclose(reward, -(x0[:, 0] + speed - target).abs(), atol=1e-6)
    assert not bool(done.any())


def test_done_at_horizon_then_zero_reward_and_frozen_observation():
    family = drift(horizon=3)
    batch, _ = family.reset(torch.tensor([[0.5, 2.0]]), 2, gen())
    for t in range(3):
        obs, reward, done = batch.step(torch.zeros(2, 1))
        assert bool(done.all()) == (t == 2) and bool((reward != 0).all())
    after, reward, done = batch.step(torch.ones(2, 1))
    assert bool(done.all()) and torch.equal(reward, torch.zeros(2)) and torch.equal(after, obs)


def test_early_termination_ends_only_that_trajectory():
    family = drift(horizon=10)
    batch, x0 = family.reset(torch.tensor([[1.0, 1.0], [0.5, 2.0]]), 1, gen())
    obs, reward, done = batch.step(torch.ones(2, 1))       # task 0 lands within 0.01 of its target
    assert done.tolist() == [True, False]
    obs2, reward2, done2 = batch.step(torch.ones(2, 1))
    assert done2.tolist() == [True, False] and reward2[0] == 0 and reward2[1] != 0
    assert obs2[0] == obs[0] and torch.allclose(obs2[1, 0], x0[1, 0] + 1.0, atol=1e-6)


def test_scalar_tasks_and_discrete_actions():
    family = GymMetaFamily("choice", Choice, 4)
    assert (family.discrete, family.action_dim, family.task_dim) == (True, 3, 1)
    batch, _ = family.reset(torch.tensor([[0.0], [2.0]]), 2, gen())
    _, reward, _ = batch.step(torch.tensor([0, 1, 2, 2]))
    assert reward.tolist() == [1.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"expected \(4,\) discrete actions"):
        batch.step(torch.zeros(4, 1, dtype=torch.long))


def test_a_smaller_batch_after_a_larger_one_reuses_environments_with_the_right_tasks():
    family = drift()
    family.reset(torch.tensor([[0.5, 1.5], [1.0, 2.0], [0.7, 1.2]]), 3, gen())
    batch, x0 = family.reset(torch.tensor([[0.6, 1.8]]), 2, gen())
    obs, _, _ = batch.step(torch.ones(2, 1))
    assert torch.allclose(obs[:, 0] - x0[:, 0], torch.full((2,), 0.6), atol=1e-6)
    assert len(family._pool) == 9


def test_a_retired_batch_refuses_to_step():
    family = drift()
    old, _ = family.reset(torch.tensor([[0.5, 1.5]]), 1, gen())
    family.reset(torch.tensor([[0.5, 1.5]]), 1, gen())
    with pytest.raises(RuntimeError, match="retired"):
        old.step(torch.zeros(1, 1))


def test_family_pickles_without_its_environments():
    family = drift()
    family.reset(torch.tensor([[0.5, 1.5]]), 2, gen())
    copy = pickle.loads(pickle.dumps(family))
    assert copy._pool == [] and torch.equal(copy.sample_tasks(3, gen(1)), family.sample_tasks(3, gen(1)))
    batch, _ = copy.reset(torch.tensor([[0.5, 1.5]]), 2, gen())
    assert batch.step(torch.zeros(2, 1))[0].shape == (2, 1)
    family.close()


def test_refuses_environments_it_cannot_reproduce_or_drive():
    with pytest.raises(ConfigError, match="does not draw from self.np_random"):
        GymMetaFamily("global", GlobalRandom, 5, task_fields=("speed", "target")).sample_tasks(3, gen())
    own = GymMetaFamily("global", GlobalRandom, 5, task_fields=("speed", "target"),
                        task_sampler=lambda n, g: 0.5 + torch.rand(n, 2, generator=g))
    assert torch.equal(own.sample_tasks(3, gen(1)), own.sample_tasks(3, gen(1)))
    with pytest.raises(ConfigError, match=r"has no set_task\(\)"):
        GymMetaFamily("noset", NoSetTask, 5)
    with pytest.raises(ConfigError, match="horizon"):
        GymMetaFamily("drift", Drift, 0)
