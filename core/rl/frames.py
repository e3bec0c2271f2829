"""A few frames of one held-out episode before adaptation and after it, for the task view of a family
that can draw itself (:mod:`core.envs.frames`).

The inspector records each shown episode as an :class:`EpisodeClip` (a few kilobytes of numbers: the
task, the observations and actions, the reset seed) while it adapts; :func:`film` draws them later, on
any thread, into :class:`Frames` (uint8 RGB arrays). Drawing is kept out of the adaptation itself so a
window can film on a job thread of its own, at its own pace, and never on its GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.envs import build_env_family
from core.envs.frames import FRAME_SIZE, FramesUnavailable, one_line
from core.errors import ConfigError
from core.tasks.spec import FamilySpec

FRAME_COUNT = 4   # frames per episode, spread from its first step to its last (four read in a corner of the window)


@dataclass(frozen=True)
class EpisodeClip:
    """One recorded episode: ``observations [L, D]`` and ``actions [L, …]`` of its ``L`` steps, its task
    row, its (undiscounted) return and the seed its environment was reset with (None: not recorded)."""

    label: str                      # "before adaptation", "after 3 steps"
    task: np.ndarray
    observations: np.ndarray
    actions: np.ndarray
    episode_return: float
    seed: int | None = None

    @property
    def length(self) -> int:
        return len(self.observations)


@dataclass(frozen=True)
class FilmRequest:
    """What :func:`film` needs: the family (rebuilt from its spec where it is filmed) and the clips."""

    family: FamilySpec
    clips: tuple[EpisodeClip, ...]
    count: int = FRAME_COUNT
    size: tuple[int, int] = FRAME_SIZE


@dataclass(frozen=True)
class Frames:
    """``images[c]``: the frames of clip ``c`` (each ``[height, width, 3]`` uint8) at the time steps
    ``times[c]``; with no frames, ``note`` says why in one line."""

    labels: tuple[str, ...] = ()
    images: tuple[tuple[np.ndarray, ...], ...] = ()
    times: tuple[tuple[int, ...], ...] = ()
    returns: tuple[float, ...] = ()
    note: str = ""
    size: tuple[int, int] = field(default=FRAME_SIZE)


def frame_times(length: int, count: int = FRAME_COUNT) -> tuple[int, ...]:
    """``count`` time steps spread evenly over an episode of ``length`` steps, first and last included."""
    if length <= 0:
        return ()
    return tuple(sorted({int(round(t)) for t in np.linspace(0, length - 1, min(count, length))}))


def clip_of(trajectories, label: str, seeds=None, rollout: int = 0) -> EpisodeClip:
    """Trajectory ``rollout`` of the first task of ``trajectories`` (:class:`~core.rl.rollouts.Trajectories`);
    ``seeds``: the reset seed of each trajectory of that batch, where the family records them."""
    steps = int(trajectories.mask[0, rollout].sum())
    episode_return = float((trajectories.rewards[0, rollout] * trajectories.mask[0, rollout]).sum())
    seed = int(seeds[rollout]) if seeds is not None and len(seeds) > rollout else None
    return EpisodeClip(label, trajectories.tasks[0].numpy().astype(float).copy(),
                       trajectories.observations[0, rollout, :steps].numpy().copy(),
                       trajectories.actions[0, rollout, :steps].numpy().copy(), episode_return, seed)


def can_film(family) -> bool:
    return callable(getattr(family, "render_frames", None))


def film(request: FilmRequest, family=None) -> Frames:
    """Draw each clip's frames (``family``: the built family, else it is built from the request's spec).
    A family that cannot draw here gives :class:`Frames` with only a note, never an exception."""
    size = tuple(request.size)
    built = family is None
    try:
        family = build_env_family(request.family) if built else family
        if not can_film(family):
            return Frames(note=f"the {request.family.name} family draws no frames", size=size)
        times = tuple(frame_times(clip.length, request.count) for clip in request.clips)
        images = tuple(tuple(family.render_frames(clip.task, clip.observations, clip.actions, clip.seed, ts, size))
                       for clip, ts in zip(request.clips, times))
    except FramesUnavailable as exc:
        return Frames(note=f"no frames: {one_line(exc)}", size=size)
    except ConfigError as exc:   # the family cannot be built here (e.g. the rl extra is missing)
        return Frames(note=f"no frames: {exc.message}", size=size)
    finally:
        if built and family is not None and callable(getattr(family, "close", None)):
            family.close()   # the environments it made for the replay
    return Frames(tuple(c.label for c in request.clips), images, times,
                  tuple(c.episode_return for c in request.clips), size=size)


class SeedRecorder:
    """The family as :func:`~core.rl.meta.sample` sees it, noting the reset seeds of each batch it starts
    (a gymnasium family's frames replay a trajectory from its seed); everything else is the family's."""

    def __init__(self, family):
        self.family = family
        self.seeds: list[list[int] | None] = []

    def __getattr__(self, name):
        return getattr(self.family, name)

    def reset(self, tasks, rollouts, generator):
        batch, obs = self.family.reset(tasks, rollouts, generator)
        inner = getattr(batch, "batch", batch)      # a task-observing view wraps the environment's batch
        self.seeds.append(getattr(inner, "seeds", None))
        return batch, obs
