"""Any gymnasium environment with task parameters, as an :class:`EnvFamily`.

The field's meta-env protocol (learn2learn's ``MetaEnv``, garage's and ProMP's task-settable
environments): the environment offers ``sample_tasks(n)`` (a list of tasks, each a dict such as
``{"velocity": 1.3}``, a number or an array) and ``set_task(task)``; a task applies from the next
``reset``. This adapter turns those tasks into rows of a float tensor and back, and runs all
tasks × rollouts through ``gymnasium.vector.SyncVectorEnv``, one sub-environment per trajectory.

Reproducibility: tasks and starting states come from the torch generator alone. ``sample_tasks`` runs
on a sampler environment whose ``np_random`` is reseeded from the generator first, so an environment
must draw its tasks from ``self.np_random``; one that draws from the global ``np.random`` (as
learn2learn's do) is refused, since its tasks could not be repeated, unless the family is given its own
``task_sampler``. Every sub-environment is reset with its own seed drawn from the generator.

AsyncVectorEnv is not used: it runs one process per sub-environment, and a meta-batch is 400 or more
trajectories on a machine with a few cores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import SyncVectorEnv

from ..errors import ConfigError
from .frames import FramesUnavailable, fitted, one_line

_SEED_RANGE = 2**31 - 1


class TaskSlot(gymnasium.Wrapper):
    """Holds the task a sub-environment takes at its next reset, so the vector API's ``set_attr``
    (one value per sub-environment) can hand every trajectory its own task."""

    next_task: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if self.next_task is not None:
            self.env.get_wrapper_attr("set_task")(self.next_task)
        return self.env.reset(seed=seed, options=options)


def _seeds(n: int, generator: torch.Generator) -> list[int]:
    return torch.randint(0, _SEED_RANGE, (n,), generator=generator).tolist()


class GymMetaFamily:
    """An :class:`EnvFamily` over a gymnasium meta-environment.

    ``make_env`` builds one environment (a class or a module-level function, so the family pickles
    for worker processes). ``task_fields`` names the keys of dict tasks in row order; leave it empty
    for tasks that are numbers or arrays. ``task_sampler(n, generator)``, if given, draws the task rows
    in torch instead of the environment's ``sample_tasks``. ``horizon`` ends every trajectory after that many steps
    (earlier when the environment terminates or truncates). Box actions are clipped to the action
    space before the environment sees them, as rllab's ``normalize`` wrapper did for MAML.
    """

    def __init__(self, name: str, make_env: Callable[[], gymnasium.Env], horizon: int,
                 task_fields: tuple[str, ...] = (),
                 task_sampler: Callable[[int, torch.Generator], torch.Tensor] | None = None):
        if not isinstance(horizon, int) or horizon < 1:
            raise ConfigError("horizon", f"the horizon must be a positive whole number of steps, not {horizon!r}")
        self.name = name
        self.horizon = horizon
        self.task_fields = tuple(task_fields)
        self._make_env = make_env
        self._task_sampler = task_sampler
        self._sampler: gymnasium.Env | None = None
        self._pool: list[TaskSlot] = []
        self._vectors: dict[int, SyncVectorEnv] = {}
        self._reproducible_checked = False
        self._generation = 0
        probe = self._sampler_env()
        for attr in ("sample_tasks", "set_task"):
            if not callable(getattr(probe.unwrapped, attr, None)):
                raise ConfigError("family.name", f"{name}: the environment {type(probe.unwrapped).__name__} has no "
                                                 f"{attr}() (the meta-env protocol needs sample_tasks(n) and set_task(task))")
        obs_space, act_space = probe.observation_space, probe.action_space
        if not isinstance(obs_space, spaces.Box):
            raise ConfigError("family.name", f"{name}: observations must be a Box space, not {obs_space}")
        if isinstance(act_space, spaces.Box):
            self.discrete, self.action_dim = False, int(np.prod(act_space.shape))
        elif isinstance(act_space, spaces.Discrete):
            self.discrete, self.action_dim = True, int(act_space.n)
        else:
            raise ConfigError("family.name", f"{name}: actions must be a Box or Discrete space, not {act_space}")
        self.observation_dim = int(np.prod(obs_space.shape))
        self.action_space = act_space
        example = probe.unwrapped.sample_tasks(1)[0]
        self._scalar_tasks = not self.task_fields and np.ndim(example) == 0     # ProMP's tasks are plain numbers
        self.task_dim = len(self.task_fields) or len(self._encode(example))

    # -- tasks as rows -------------------------------------------------------------------------

    def _encode(self, task: Any) -> list[float]:
        if self.task_fields:
            if not isinstance(task, Mapping):
                raise ConfigError("family.name", f"{self.name}: expected dict tasks with {', '.join(self.task_fields)}, "
                                                 f"got {type(task).__name__}")
            return [float(task[key]) for key in self.task_fields]
        return [float(v) for v in np.asarray(task, dtype=np.float64).reshape(-1)]

    def decode(self, row: torch.Tensor) -> Any:
        """The environment's own form of one task row: a dict for named fields, a number where the
        environment's tasks are numbers, else an array."""
        values = [float(v) for v in row.reshape(-1).tolist()]
        if self.task_fields:
            return dict(zip(self.task_fields, values))
        if self._scalar_tasks:
            return values[0]
        return np.asarray(values, dtype=np.float64)

    def sample_tasks(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self._task_sampler is not None:
            return self._task_sampler(n, generator).float().reshape(n, self.task_dim)
        sampler = self._sampler_env()
        seed = _seeds(1, generator)[0]
        rows = self._sample_rows(sampler, n, seed)
        if not self._reproducible_checked:
            if not torch.equal(rows, self._sample_rows(sampler, n, seed)):
                raise ConfigError("family.name", f"{self.name}: sample_tasks of {type(sampler.unwrapped).__name__} "
                                                 "does not draw from self.np_random, so its tasks cannot be repeated "
                                                 "from a seed; give the family a task_sampler")
            self._reproducible_checked = True
        return rows

    def _sample_rows(self, sampler: gymnasium.Env, n: int, seed: int) -> torch.Tensor:
        sampler.unwrapped.np_random = np.random.default_rng(seed)
        tasks = sampler.unwrapped.sample_tasks(n)
        if len(tasks) != n:
            raise ConfigError("family.name", f"{self.name}: sample_tasks({n}) returned {len(tasks)} tasks")
        return torch.tensor([self._encode(task) for task in tasks], dtype=torch.float32).reshape(n, self.task_dim)

    # -- running -------------------------------------------------------------------------------

    def reset(self, tasks: torch.Tensor, rollouts: int, generator: torch.Generator) -> tuple[GymEnvBatch, torch.Tensor]:
        """Starts ``rollouts`` trajectories per task; a new reset retires the previous batch (its
        sub-environments are reused)."""
        tasks = torch.as_tensor(tasks).reshape(len(tasks), -1)
        n = len(tasks) * rollouts
        vector = self._vector(n)
        per_task = [self.decode(row) for row in tasks]
        vector.set_attr("next_task", [per_task[i // rollouts] for i in range(n)])
        seeds = _seeds(n, generator)
        obs, _ = vector.reset(seed=seeds)
        self._generation += 1
        batch = GymEnvBatch(self, vector, self._generation, _as_tensor(obs, n), seeds)
        return batch, batch.last_obs.clone()

    def render_replay(self, task: torch.Tensor, seed: int | None, actions, times, size: tuple[int, int]) -> list:
        """Frames at ``times`` of one trajectory replayed in an environment of its own that renders
        offscreen (``render_mode="rgb_array"``): reset with the trajectory's ``seed``, then its recorded
        ``actions`` (clipped as :meth:`GymEnvBatch.step` clips them). Raises
        :class:`~core.envs.frames.FramesUnavailable` with one line when the environment cannot render here."""
        if seed is None:
            raise FramesUnavailable("the trajectory's reset seed was not recorded")
        times = sorted(int(t) for t in times)
        env = None
        try:
            env = self._render_env(size)
            env.unwrapped.set_task(self.decode(torch.as_tensor(task)))
            env.reset(seed=int(seed))
            frames = []
            for t in range(times[-1] + 1 if times else 0):
                if t in times:
                    frames.append(fitted(env.render(), size))
                env.step(self._clipped(np.asarray(actions[t])))
            return frames
        except FramesUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - a renderer fails in many ways (GL, a missing package); none may break the view
            raise FramesUnavailable(one_line(exc)) from None
        finally:
            if env is not None:
                try:
                    env.close()
                except Exception:  # noqa: BLE001 - closing a renderer that never started
                    pass

    def _render_env(self, size: tuple[int, int]) -> gymnasium.Env:
        width, height = size
        try:   # MuJoCo environments take the image size; classic-control ones do not
            return self._make_env(render_mode="rgb_array", width=width, height=height)
        except TypeError:
            return self._make_env(render_mode="rgb_array")

    def _clipped(self, action: np.ndarray) -> np.ndarray:
        space = self.action_space
        if self.discrete:
            return np.asarray(action).astype(np.int64).reshape(())
        return np.clip(action.astype(space.dtype).reshape(space.shape), space.low, space.high)

    def close(self) -> None:
        """Closes every environment the family made."""
        for env in self._pool:
            env.close()
        if self._sampler is not None:
            self._sampler.close()
        for vector in self._vectors.values():
            vector.closed = True         # its sub-environments were closed just above
        self._pool, self._vectors, self._sampler = [], {}, None

    def __getstate__(self) -> dict[str, Any]:
        # environments stay in their process; a copy in a worker builds its own on first use
        state = self.__dict__.copy()
        state.update(_sampler=None, _pool=[], _vectors={})
        return state

    def _sampler_env(self) -> gymnasium.Env:
        if self._sampler is None:
            self._sampler = self._make_env()
        return self._sampler

    def _vector(self, n: int) -> SyncVectorEnv:
        """One SyncVectorEnv per batch size, over the first ``n`` environments of a shared pool (an
        evaluation batch and a training batch reuse the same sub-environments)."""
        if n not in self._vectors:
            while len(self._pool) < n:
                self._pool.append(TaskSlot(self._make_env()))
            self._vectors[n] = SyncVectorEnv([(lambda env=env: env) for env in self._pool[:n]], copy=False)
        return self._vectors[n]


def _as_tensor(obs: np.ndarray, n: int) -> torch.Tensor:
    return torch.tensor(np.asarray(obs).reshape(n, -1), dtype=torch.float32)


class GymEnvBatch:
    """The running trajectories of one :meth:`GymMetaFamily.reset` (an :class:`EnvBatch`)."""

    def __init__(self, family: GymMetaFamily, vector: SyncVectorEnv, generation: int, obs: torch.Tensor,
                 seeds: list[int] | None = None):
        self._family = family
        self.seeds = seeds or []    # each trajectory's reset seed: a replay starts from the same state
        self._vector = vector
        self._generation = generation
        self.last_obs = obs
        self.n = len(obs)
        self.t = 0
        self.ended = torch.zeros(self.n, dtype=torch.bool)

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._generation != self._family._generation:
            raise RuntimeError(f"{self._family.name}: this batch was retired by a later reset of its family")
        if bool(self.ended.all()):
            return self.last_obs.clone(), torch.zeros(self.n), self.ended.clone()
        vec_obs, reward, terminated, truncated, _ = self._vector.step(self._to_numpy(actions))
        self.t += 1
        obs = _as_tensor(vec_obs, self.n)
        reward = torch.as_tensor(reward, dtype=torch.float32).masked_fill(self.ended, 0.0)
        ended_now = torch.as_tensor(np.logical_or(terminated, truncated)) | (self.t >= self._family.horizon)
        # an ended trajectory keeps its last observation (the vector env would autoreset it)
        obs[self.ended] = self.last_obs[self.ended]
        self.ended = self.ended | ended_now
        self.last_obs = obs
        return obs.clone(), reward, self.ended.clone()

    def _to_numpy(self, actions: torch.Tensor) -> np.ndarray:
        space = self._family.action_space
        a = torch.as_tensor(actions).detach().cpu().numpy()
        if self._family.discrete:
            if a.shape != (self.n,):
                raise ValueError(f"{self._family.name}: expected ({self.n},) discrete actions, got {a.shape}")
            return a.astype(np.int64)
        if a.shape != (self.n, self._family.action_dim):
            raise ValueError(f"{self._family.name}: expected actions of shape ({self.n}, {self._family.action_dim}), "
                             f"got {tuple(a.shape)}")
        return np.clip(a.astype(space.dtype).reshape((self.n, *space.shape)), space.low, space.high)
