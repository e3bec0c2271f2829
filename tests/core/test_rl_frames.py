"""A few frames of a held-out episode for the task view: the torch pendulum drawn from its own recorded
angles, gymnasium families replayed from the reset seed, and a family that cannot render says why."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.config import ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from core.envs.extra import INSTALL_HINT, missing_modules
from core.envs.pendulum_frames import pendulum_frame
from core.rl.frames import FilmRequest, film, frame_times
from core.rl.inspector import RLInspector
from core.rl.task_views import EpisodeReturns
from core.rl.trainer import RLTrainer

NO_GYM = bool(missing_modules(("gymnasium",)))
ROOT = Path(__file__).resolve().parents[2]


def config(family: str, horizon: int = 30) -> ExperimentConfig:
    return ExperimentConfig(family=FamilySpec(family, {"horizon": horizon}), model=ModelSpec(hidden=(8,)),
                            train=TrainSpec(meta_batch=2, iterations=1)).replace("rl", rollouts=3)


def frame(theta: float, torque: float = 0.0, mass: float = 1.0, length: float = 1.0) -> np.ndarray:
    return pendulum_frame(theta, torque, mass, length, (160, 120), 1.5, 1.5, 2.0)


def test_a_pendulum_frame_is_a_small_rgb_image_that_shows_the_angle_the_mass_and_the_torque():
    upright, tilted = frame(0.0), frame(1.0)
    assert upright.shape == (120, 160, 3) and upright.dtype == np.uint8
    assert not np.array_equal(upright, tilted)
    np.testing.assert_array_equal(frame(0.5), frame(0.5 + 2 * math.pi))                # an angle, not a number
    assert not np.array_equal(frame(0.5, mass=0.5), frame(0.5, mass=1.5))              # a heavier bob is bigger
    assert not np.array_equal(frame(0.5, torque=1.5), frame(0.5, torque=-1.5))         # the torque's direction
    # the bob (blue) is above the pivot when upright, below it when hanging
    blue = lambda image: np.argwhere((image[..., 2] > 150) & (image[..., 0] < 80))   # noqa: E731
    assert blue(frame(0.0))[:, 0].mean() < 60 < blue(frame(math.pi))[:, 0].mean()


def test_frame_times_spread_over_the_episode():
    assert frame_times(200, 5) == (0, 50, 100, 149, 199)
    assert frame_times(3, 5) == (0, 1, 2) and frame_times(0, 5) == ()


def test_the_pendulum_frames_are_the_adapted_policys_held_out_episode():
    trainer = RLTrainer(config("pendulum-mass"))
    trainer.step()
    view = RLInspector.of_trainer(trainer).preview(1).view
    assert isinstance(view, EpisodeReturns) and view.film is not None
    before, after = view.film.clips
    assert (before.label, after.label) == ("before adaptation", "after 3 steps")
    # the clips are the strip's first episode before adaptation and after the last step
    assert before.episode_return == pytest.approx(view.returns[0][0], rel=1e-5)
    assert after.episode_return == pytest.approx(view.returns[-1][0], rel=1e-5)
    theta = np.arctan2(after.observations[:, 1], after.observations[:, 0])
    torque = np.clip(after.actions[:, 0], -2, 2)
    rewards = -(theta**2 + 0.1 * after.observations[:, 2] ** 2 + 0.001 * torque**2)   # its own angles score its return
    assert rewards.sum() == pytest.approx(after.episode_return, rel=1e-4)
    frames = film(view.film)
    assert frames.note == "" and frames.labels == ("before adaptation", "after 3 steps")
    assert frames.times == ((0, 10, 19, 29),) * 2                           # four, spread over the episode
    mass, length = after.task
    for t, image in zip(frames.times[1], frames.images[1]):
        assert image.shape == (120, 160, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(image, pendulum_frame(theta[t], torque[t], mass, length, (160, 120),
                                                            1.5, 1.5, 2.0))
    assert not all(np.array_equal(a, b) for a, b in zip(*frames.images))   # two episodes, two films


@pytest.mark.skipif(NO_GYM, reason=f"gymnasium not installed: bash install.sh --test installs it ({INSTALL_HINT})")
def test_a_gymnasium_episode_is_replayed_from_its_reset_seed_with_its_actions(monkeypatch):
    from core.envs.pendulum_gym import RandomPendulum

    states = []

    def render(self):   # the renderer needs pygame; what matters is the state it would draw
        states.append((self.state[0], self.m, self.l))
        return np.zeros((4, 4, 3), np.uint8)

    monkeypatch.setattr(RandomPendulum, "render", render)
    trainer = RLTrainer(config("pendulum-mass-gym", horizon=20))
    view = RLInspector.of_trainer(trainer).preview(0).view
    after = view.film.clips[-1]
    assert after.seed is not None
    frames = film(FilmRequest(view.film.family, (after,), count=4))
    assert frames.note == "" and frames.times == ((0, 6, 13, 19),)
    assert all(image.shape == (120, 160, 3) for image in frames.images[0])           # resized to the frame size
    seen = np.array([math.atan2(math.sin(s[0]), math.cos(s[0])) for s in states])
    np.testing.assert_allclose(seen, np.arctan2(after.observations[[0, 6, 13, 19], 1],
                                                after.observations[[0, 6, 13, 19], 0]), atol=1e-5)
    assert {(round(m, 5), round(l, 5)) for _, m, l in states} == {tuple(np.round(after.task, 5))}


@pytest.mark.skipif(NO_GYM, reason=f"gymnasium not installed: bash install.sh --test installs it ({INSTALL_HINT})")
def test_a_gymnasium_family_that_cannot_render_gives_the_reason_not_an_exception(monkeypatch):
    from core.envs.pendulum_gym import RandomPendulum

    def render(self):
        raise RuntimeError("Cannot initialize a EGL device display.\nmore detail nobody reads")

    monkeypatch.setattr(RandomPendulum, "render", render)
    trainer = RLTrainer(config("pendulum-mass-gym", horizon=10))
    frames = film(RLInspector.of_trainer(trainer).preview(0).view.film)
    assert frames.images == () and frames.note == "no frames: Cannot initialize a EGL device display."


def test_a_family_without_its_extra_gives_the_reason_not_an_exception(monkeypatch):
    from core.envs import extra

    trainer = RLTrainer(config("pendulum-mass"))
    request = RLInspector.of_trainer(trainer).preview(0).view.film
    monkeypatch.setattr(extra, "missing_modules", lambda modules: list(modules))
    frames = film(FilmRequest(FamilySpec("halfcheetah-vel", {}), request.clips))
    assert frames.images == () and frames.note.startswith("no frames: halfcheetah-vel needs the optional packages")


@pytest.mark.skipif(bool(missing_modules(("gymnasium", "mujoco"))),
                    reason=f"gymnasium and mujoco not installed: bash install.sh --test installs them ({INSTALL_HINT})")
def test_the_half_cheetah_films_its_episode_or_says_why_and_never_raises():
    trainer = RLTrainer(config("halfcheetah-vel", horizon=8))
    frames = film(RLInspector.of_trainer(trainer).preview(0).view.film)
    if frames.note:   # no offscreen OpenGL on this machine: one line, no frames
        assert frames.images == () and frames.note.startswith("no frames: ") and "\n" not in frames.note
    else:
        assert [len(row) for row in frames.images] == [4, 4] and frames.times[0] == (0, 2, 5, 7)
        first, last = frames.images[1][0], frames.images[1][-1]
        assert first.shape == (120, 160, 3) and first.dtype == np.uint8 and not np.array_equal(first, last)


@pytest.mark.skipif(bool(missing_modules(("gymnasium", "mujoco"))),
                    reason=f"gymnasium and mujoco not installed: bash install.sh --test installs them ({INSTALL_HINT})")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="EGL is chosen on Linux only")
def test_the_half_cheetah_chooses_egl_for_offscreen_frames_unless_the_user_chose(tmp_path):
    code = "import os, core.envs.halfcheetah; print(os.environ['MUJOCO_GL'])"
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    chosen = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                             env={**env, **extra}).stdout.strip() for extra in ({}, {"MUJOCO_GL": "osmesa"})]
    assert chosen == ["egl", "osmesa"]
