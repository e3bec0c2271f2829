"""A few frames of the adapted policy in the meta-RL task view: a short pendulum-mass run shows them
under the per-episode return strip, filmed on a job thread; a family that cannot render says why."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from core.config import ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from core.envs.extra import INSTALL_HINT, missing_modules
from core.rl import frames as film_module
from maml_gui.jobs.training import WorkerOptions

OPTIONS = WorkerOptions(eval_tasks=4, inspect_interval=0.3)


def pendulum(family: str = "pendulum-mass", iterations: int = 2) -> ExperimentConfig:
    config = ExperimentConfig(family=FamilySpec(family, {"horizon": 20}), model=ModelSpec(hidden=(8,)),
                              train=TrainSpec(meta_batch=2, iterations=iterations))
    return config.replace("rl", rollouts=3)


def test_a_short_pendulum_run_shows_frames_of_the_episode_before_and_after_adaptation(qtbot, make_window,
                                                                                       monkeypatch):
    filmed_on = []
    film = film_module.film

    def spy(request, family=None):
        filmed_on.append(threading.current_thread() is threading.main_thread())
        return film(request, family)

    monkeypatch.setattr("maml_gui.window.episode_page.film", spy)
    window = make_window(pendulum())
    window.resize(1280, 800)
    window.show()                                              # frames are filmed for a page one can see
    qtbot.waitExposed(window)
    window.start()
    session, plots = window.session, window.plots
    qtbot.waitUntil(lambda: session.current is not None and session.current.status == "completed", timeout=60_000)
    page = plots.episode_page
    qtbot.waitUntil(lambda: plots.task_page() == "episode returns" and page.frames.frames() is not None
                    and not page.is_filming(), timeout=30_000)
    frames = page.frames.frames()
    assert frames.note == "" and frames.labels == ("before adaptation", "after 3 steps")
    assert [len(row) for row in frames.images] == [4, 4] and frames.times[0] == (0, 6, 13, 19)
    assert all(image.shape == (120, 160, 3) and image.dtype == np.uint8 for row in frames.images for image in row)
    strip = plots.episode_returns
    _, first_returns = strip.points()
    # the rows are the strip's first episode before adaptation and after the last step
    assert frames.returns[0] == pytest.approx(first_returns[0], rel=1e-5)
    assert frames.returns[1] == pytest.approx(first_returns[3 * 3], rel=1e-5)
    assert "held-out task #1" in page.frames.caption()
    assert filmed_on and not any(filmed_on)                    # never on the GUI thread
    assert window.error_banner.isHidden()


@pytest.mark.skipif(bool(missing_modules(("gymnasium",))),
                    reason=f"gymnasium not installed: bash install.sh --test installs it ({INSTALL_HINT})")
def test_a_family_that_cannot_render_says_why_in_one_line_under_the_strip(qtbot, make_window, monkeypatch):
    from core.envs.pendulum_gym import RandomPendulum

    def render(self):
        raise RuntimeError("pygame is not installed\nTraceback (most recent call last): …")

    monkeypatch.setattr(RandomPendulum, "render", render)
    window = make_window(pendulum("pendulum-mass-gym", iterations=1))
    window.show()
    qtbot.waitExposed(window)
    window.start()
    page = window.plots.episode_page
    qtbot.waitUntil(lambda: page.frames.note().startswith("no frames:") and not page.is_filming(), timeout=60_000)
    qtbot.waitUntil(lambda: window.session.current.status == "completed", timeout=60_000)
    assert page.frames.note() == "no frames: pygame is not installed" and page.frames.frames().images == ()
    assert len(window.plots.episode_returns.points()[0]) > 0        # the strip is drawn all the same
    assert page.frames.height() <= 3 * page.fontMetrics().height()  # ... and keeps the room frames would take
    assert window.error_banner.isHidden()


def test_a_hidden_page_films_nothing_until_it_is_shown(qtbot):
    from core.rl.inspector import RLInspector
    from core.rl.trainer import RLTrainer
    from maml_gui.widgets.return_plots import EpisodeStrip
    from maml_gui.window.episode_page import EpisodePage

    view = RLInspector.of_trainer(RLTrainer(pendulum())).preview(0).view
    page = EpisodePage(EpisodeStrip())
    qtbot.addWidget(page)
    page.show_returns(view, "held-out task #1")
    assert not page.is_filming() and page.frames.frames() is None      # not visible: no job thread
    assert len(page.strip.points()[0]) == 4 * 3                         # the strip is drawn at once
    page.resize(640, 400)
    page.show()
    qtbot.waitUntil(lambda: page.frames.frames() is not None and not page.is_filming(), timeout=20_000)
    assert page.frames.frames().labels == ("before adaptation", "after 3 steps")
    assert page.frames.caption() == "held-out task #1"
    inspector = RLInspector.of_trainer(RLTrainer(pendulum()))
    page.show_returns(inspector.preview(0).view, "task #1 again")          # the same task: its frames stay meanwhile
    assert page.frames.frames() is not None
    qtbot.waitUntil(lambda: not page.is_filming() and page.frames.caption() == "task #1 again", timeout=20_000)
    other = inspector.preview(1).view
    page.show_returns(other, "held-out task #2")                        # another task: never the old one's frames
    assert page.frames.frames() is None and page.frames.note().startswith("drawing frames")
    qtbot.waitUntil(lambda: page.frames.frames() is not None and not page.is_filming(), timeout=20_000)
    assert page.frames.caption() == "held-out task #2"
    assert page.frames.frames().returns[-1] == pytest.approx(other.film.clips[-1].episode_return)
