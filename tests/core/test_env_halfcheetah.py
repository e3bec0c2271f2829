"""MAML's half-cheetah goal-velocity and goal-direction families on gymnasium's HalfCheetah-v5."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.envs.extra import INSTALL_HINT, missing_modules

pytestmark = pytest.mark.skipif(bool(missing_modules(("gymnasium", "mujoco"))),
                                reason=f"gymnasium/mujoco not installed: bash install.sh --test installs them ({INSTALL_HINT})")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def positions(family, n):
    return np.array([env.unwrapped.data.qpos[0] for env in family._pool[:n]])


@pytest.mark.parametrize("name", ["vel", "dir"])
def test_reward_of_a_step_is_the_papers(name):
    from core.envs.halfcheetah import goal_direction_family, goal_velocity_family
    family = goal_velocity_family() if name == "vel" else goal_direction_family()
    tasks = torch.tensor([[0.4], [1.7]]) if name == "vel" else torch.tensor([[1.0], [-1.0]])
    batch, _ = family.reset(tasks, 2, gen())
    actions = torch.tensor([[3.0, -3.0, 0.5, 0.0, 0.0, 0.0]]).repeat(4, 1)   # the first two clip to ±1
    for _ in range(3):                     # a few steps so the cheetah is moving
        before = positions(family, 4)
        _, reward, done = batch.step(actions)
        velocity = torch.tensor((positions(family, 4) - before) / 0.05, dtype=torch.float32)
        goal = tasks[:, 0].repeat_interleave(2)
        forward = -(velocity - goal).abs() if name == "vel" else goal * velocity
        assert torch.allclose(reward, forward - 0.05 * (1 + 1 + 0.25), atol=1e-5)
        assert not bool(done.any())
    family.close()


def test_environment_step_reports_its_parts():
    from core.envs.halfcheetah import HalfCheetahGoalVelocity
    env = HalfCheetahGoalVelocity()
    env.reset(seed=0)
    env.set_task({"velocity": 1.5})
    assert env.get_task() == {"velocity": 1.5} and env.dt == pytest.approx(0.05)
    env.set_state(env.init_qpos, env.init_qvel + np.eye(env.model.nv)[0])      # sliding forward at 1 m/s
    x0 = env.data.qpos[0]
    action = np.array([0.2, 0.0, -0.4, 0.0, 0.0, 0.1])
    _, reward, terminated, truncated, info = env.step(action)
    velocity = (env.data.qpos[0] - x0) / 0.05
    assert info["x_velocity"] == pytest.approx(velocity) and 0.5 < velocity < 1.5
    assert info["control_cost"] == pytest.approx(0.05 * 0.21)
    assert reward == pytest.approx(-abs(velocity - 1.5) - 0.05 * 0.21)
    assert not terminated and not truncated
    env.close()


def test_trajectories_end_at_200_steps_and_then_return_zero():
    from core.envs.halfcheetah import goal_velocity_family
    family = goal_velocity_family()
    assert (family.horizon, family.observation_dim, family.action_dim, family.discrete) == (200, 17, 6, False)
    batch, _ = family.reset(family.sample_tasks(1, gen()), 2, gen())
    noise = torch.randn(201, 2, 6, generator=gen(1))
    for t in range(200):
        obs, reward, done = batch.step(noise[t])
        assert bool(done.all()) == (t == 199)
    after, reward, done = batch.step(noise[200])
    assert bool(done.all()) and torch.equal(reward, torch.zeros(2)) and torch.equal(after, obs)
    family.close()


def test_tasks_follow_the_paper_and_repeat_from_the_generator():
    from core.envs.halfcheetah import goal_direction_family, goal_velocity_family
    velocity, direction = goal_velocity_family(), goal_direction_family()
    speeds = velocity.sample_tasks(200, gen(1))
    assert speeds.shape == (200, 1) and 0.0 <= float(speeds.min()) and float(speeds.max()) <= 2.0
    assert torch.equal(speeds, velocity.sample_tasks(200, gen(1)))
    signs = direction.sample_tasks(200, gen(1))
    assert set(signs[:, 0].tolist()) == {-1.0, 1.0} and 60 < int((signs > 0).sum()) < 140
    _, first = velocity.reset(speeds[:2], 3, gen(4))
    _, again = velocity.reset(speeds[:2], 3, gen(4))
    assert torch.equal(first, again) and len({tuple(row) for row in first.tolist()}) == 6


def test_cheetahs_share_one_compiled_model_quietly(capfd):
    from core.envs.halfcheetah import _compiled_model, goal_velocity_family
    _compiled_model.cache_clear()
    family = goal_velocity_family()
    batch, _ = family.reset(torch.tensor([[1.0]]), 3, gen())
    batch.step(torch.ones(3, 6))
    models = {id(env.unwrapped.model) for env in family._pool}
    data = {id(env.unwrapped.data) for env in family._pool}
    assert len(models) == 1 and len(data) == 3
    assert "settotalmass" not in capfd.readouterr().err       # mujoco 4's deprecation warning, once per compile
    family.close()


def test_a_compile_on_another_thread_meanwhile_stays_quiet(monkeypatch):
    """The task view's frames build cheetahs on a job thread while training builds its own: a second
    compile that set the silencer while the first was running ran after the first had restored the
    printing hook (mujoco's warning hook is global)."""
    import threading
    from types import SimpleNamespace

    from core.envs import halfcheetah

    printing, hooks, seen = object(), [], {}
    second_set = threading.Event()

    def set_hook(hook):
        hooks.append(hook)
        if len(hooks) == 3:          # the first compile's silencer, then (without the lock) the second's
            second_set.set()

    def compile_model(path):
        if path == "first":
            second_set.wait(0.5)     # without the lock the second compile sets its silencer meanwhile
        else:
            first.join()             # ... and compiles after the first has restored the printing hook
        seen[path] = hooks[-1]
        return path

    fake = SimpleNamespace(get_mju_user_warning=lambda: hooks[-1], set_mju_user_warning=set_hook,
                           MjModel=SimpleNamespace(from_xml_path=compile_model))
    hooks.append(printing)
    monkeypatch.setattr(halfcheetah, "mujoco", fake)
    halfcheetah._compiled_model.cache_clear()
    first = threading.Thread(target=halfcheetah._compiled_model, args=("first",))
    first.start()
    second = threading.Thread(target=halfcheetah._compiled_model, args=("second",))
    second.start()
    first.join()
    second.join()
    halfcheetah._compiled_model.cache_clear()
    assert seen["first"] is not printing and seen["second"] is not printing and hooks[-1] is printing
