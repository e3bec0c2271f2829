"""2-D navigation against cases worked by hand (MAML paper §5.3, as its released code steps it)."""

import math

import pytest
import torch

from core.envs import ENV_FAMILIES, build_env_family
from core.errors import ConfigError
from core.tasks.spec import FamilySpec


def nav(**params):
    return build_env_family(FamilySpec("nav2d", params))


def test_one_step_scales_and_clips_the_velocity_and_pays_minus_the_euclidean_distance():
    """Actions are in units of the max speed (the released code's normalize wrapper): ±1 is ±0.1."""
    family = nav()
    env, obs = family.reset(torch.tensor([[0.3, -0.05]]), 1, torch.Generator())
    assert obs.tolist() == [[0.0, 0.0]]
    obs, reward, done = env.step(torch.tensor([[5.0, -0.2]]))   # x clipped to 1, i.e. 0.1
    assert obs[0].tolist() == pytest.approx([0.1, -0.02])
    assert reward.item() == pytest.approx(-math.hypot(0.2, 0.03), abs=1e-6)
    assert not done.item()


def test_reaching_the_goal_ends_the_trajectory_and_later_steps_pay_nothing():
    family = nav()
    env, _ = family.reset(torch.tensor([[0.1, 0.095]]), 1, torch.Generator())
    obs, reward, done = env.step(torch.tensor([[1.0, 1.0]]))     # within 0.01 on each axis
    assert done.item() and reward.item() == pytest.approx(-0.005, abs=1e-6)
    obs2, reward2, done2 = env.step(torch.tensor([[1.0, 1.0]]))
    assert done2.item() and reward2.item() == 0.0 and obs2.tolist() == obs.tolist()


def test_the_horizon_ends_every_trajectory():
    family = nav(horizon=3)
    env, _ = family.reset(torch.tensor([[0.5, 0.5]]), 2, torch.Generator())
    dones = [env.step(torch.zeros(2, 2))[2].tolist() for _ in range(3)]
    assert dones == [[False, False], [False, False], [True, True]]


def test_rows_are_task_major_and_goals_uniform_in_the_square():
    family = nav()
    goals = family.sample_tasks(2000, torch.Generator().manual_seed(0))
    assert goals.shape == (2000, 2) and goals.min() >= -0.5 and goals.max() <= 0.5
    assert goals.mean(0).abs().max() < 0.03
    tasks = torch.tensor([[0.2, 0.0], [-0.2, 0.0]])
    env, _ = family.reset(tasks, 3, torch.Generator())
    _, reward, _ = env.step(torch.tensor([[1.0, 0.0]] * 6))
    assert reward.tolist() == pytest.approx([-0.1] * 3 + [-0.3] * 3)   # row i*3+j is trajectory j of task i


def test_bad_settings_name_the_field():
    with pytest.raises(ConfigError, match="family.horizon"):
        nav(horizon=-5)
    with pytest.raises(ConfigError, match="family.speed"):
        nav(speed=1)
    assert "nav2d" in ENV_FAMILIES


def test_the_oracle_view_appends_the_goal_to_the_observation():
    family = nav(observe_goal=True)
    assert family.observation_dim == 4 and family.oracle_params == {"observe_goal": True}
    env, obs = family.reset(torch.tensor([[0.3, -0.2]]), 2, torch.Generator())
    assert torch.allclose(obs, torch.tensor([[0.0, 0.0, 0.3, -0.2]] * 2))
    obs, _, _ = env.step(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
    assert torch.allclose(obs, torch.tensor([[0.1, 0.0, 0.3, -0.2], [0.0, -0.1, 0.3, -0.2]]))
