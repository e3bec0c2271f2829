"""What the meta-RL task views draw, as plain numpy data: the MAML paper's 2-D navigation figure (one
goal, the trajectories before adaptation and after each inner step) and, for other families, each
held-out episode's return per step (with one episode recorded for a few frames). Only arrays and floats leave this module, so a view can be built on
the training thread and drawn on the GUI's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.rl.frames import FilmRequest


@dataclass(frozen=True)
class TrajectoryFigure:
    """The MAML paper's 2-D navigation figure for one goal.

    ``paths[s]`` are the trajectories of the policy after ``s`` inner steps (``s = 0``: before adaptation),
    an array ``[rollouts, T + 1, 2]`` of positions from the start on; rows past a trajectory's end are NaN.
    ``returns[s]`` is their average (undiscounted) return, NaN when not known.
    """

    goal: np.ndarray                              # (2,)
    paths: tuple[np.ndarray, ...]                 # per step: [rollouts, T + 1, 2]
    returns: tuple[float, ...] = ()
    start: tuple[float, float] = (0.0, 0.0)
    iteration: int = 0                            # the meta-iteration whose policy adapted
    placed: bool = False                          # the goal was placed by the user, not held out

    @property
    def steps(self) -> int:
        """Inner steps shown (the figure has ``steps + 1`` sets of trajectories)."""
        return len(self.paths) - 1


@dataclass(frozen=True)
class EpisodeReturns:
    """Held-out episodes' returns of a family with no picture of its own: ``returns[s]`` holds one
    (undiscounted) return per episode after ``s`` inner steps. ``film``: the first episode before
    adaptation and after the last step, recorded for :func:`core.rl.frames.film` (None: not recorded)."""

    returns: tuple[np.ndarray, ...]
    iteration: int = 0
    task: str = ""                                # the task in words ("goal velocity 1.3")
    film: FilmRequest | None = None
