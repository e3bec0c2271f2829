"""Registry families that run through the gymnasium adapter, built like every other environment family
(``cls(params)``, settings checked against ``fields``) while gymnasium itself loads only on first use.

Building one checks, without importing anything, that the packages it needs are installed and
otherwise refuses with one line naming ``pip install 'maml-gui[rl]'``; a settings form or a config
check can build it freely, and the adapter (with its environments) appears at the first
``sample_tasks`` or ``reset``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch

from .extra import require
from .family import ParamEnvFamily
from .task_view import ObservesTask


class GymParamFamily(ObservesTask, ParamEnvFamily):
    """A :class:`ParamEnvFamily` whose tasks and trajectories come from a gymnasium meta-environment.

    Subclasses set ``requires`` (the packages beyond the base install) and ``make_adapter()`` (which
    imports the environment's module and returns a :class:`~core.envs.gym_adapter.GymMetaFamily`).
    """

    requires: ClassVar[tuple[str, ...]] = ("gymnasium",)

    def __init__(self, params: Mapping[str, Any] | None = None):
        require(self.name, self.requires)
        super().__init__(params)
        self._adapter = None

    def make_adapter(self):
        raise NotImplementedError

    @property
    def adapter(self):
        if self._adapter is None:
            self._adapter = self.make_adapter()
        return self._adapter

    def sample_tasks(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.adapter.sample_tasks(n, generator)

    def reset(self, tasks: torch.Tensor, rollouts: int, generator: torch.Generator):
        batch, obs = self.adapter.reset(tasks, rollouts, generator)
        return self.task_view(batch, obs, tasks, rollouts)

    def render_frames(self, task, observations, actions, seed, times, size):
        """The trajectory replayed from its reset seed in a rendering environment (see :mod:`core.envs.frames`)."""
        return self.adapter.render_replay(task, seed, actions, times, size)

    def close(self) -> None:
        """Closes the environments (a later use builds them again)."""
        if self._adapter is not None:
            self._adapter.close()
            self._adapter = None
