"""Pendulum swing-up with a mass and a length drawn per task, written in torch (no gymnasium needed).

The dynamics, reward, starting states and limits are gymnasium's ``Pendulum-v1`` (``m``, ``l``, ``g``):
angle θ (0 = upright), torque u clipped to [-2, 2],
``θ̇ ← clip(θ̇ + (3g/(2l) sin θ + 3/(m l²) u) dt, -8, 8)``, ``θ ← θ + θ̇ dt`` with dt = 0.05, g = 10,
reward ``-(norm(θ)² + 0.1 θ̇² + 0.001 u²)`` before the step, observation (cos θ, sin θ, θ̇), start
θ ~ U[-π, π], θ̇ ~ U[-1, 1], 200 steps. A task is the row (mass, length), each ~ U[0.5, 1.5] by
default: a light short pendulum swings up on its own torque, a heavy long one has to pump. All tasks ×
rollouts step as one tensor. ``pendulum-mass-gym`` is the same family stepped by gymnasium's own
Pendulum through the adapter (it checks this one and shows the adapter without MuJoCo).
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from ..tasks.base import ParamField
from .family import HORIZON, ParamEnvFamily
from .gym_family import GymParamFamily
from .pendulum_frames import pendulum_frames
from .task_view import ObservesTask

MASS_RANGE = (0.5, 1.5)
LENGTH_RANGE = (0.5, 1.5)
GRAVITY = 10.0
DT = 0.05
MAX_SPEED = 8.0
MAX_TORQUE = 2.0
FIELDS = (ParamField("mass_range", "mass range", "range", list(MASS_RANGE), 0.01, 100.0,
                     help="each task's pendulum mass (kg) is drawn uniformly from this interval"),
          ParamField("length_range", "length range", "range", list(LENGTH_RANGE), 0.01, 100.0,
                     help="each task's pendulum length (m) is drawn uniformly from this interval"),
          replace(HORIZON, default=200))


def angle_normalize(theta: torch.Tensor) -> torch.Tensor:
    return torch.remainder(theta + math.pi, 2 * math.pi) - math.pi


def pendulum_step(theta: torch.Tensor, speed: torch.Tensor, torque: torch.Tensor, mass: torch.Tensor,
                  length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of Pendulum-v1 for tensors of states: (new θ, new θ̇, reward)."""
    u = torque.clamp(-MAX_TORQUE, MAX_TORQUE)
    reward = -(angle_normalize(theta) ** 2 + 0.1 * speed**2 + 0.001 * u**2)
    speed = (speed + (3 * GRAVITY / (2 * length) * torch.sin(theta) + 3.0 / (mass * length**2) * u) * DT)
    speed = speed.clamp(-MAX_SPEED, MAX_SPEED)
    return theta + speed * DT, speed, reward


def sample_mass_length(n: int, generator: torch.Generator, mass_range, length_range) -> torch.Tensor:
    low = torch.tensor([mass_range[0], length_range[0]], dtype=torch.float32)
    high = torch.tensor([mass_range[1], length_range[1]], dtype=torch.float32)
    return low + (high - low) * torch.rand(n, 2, generator=generator)


class PendulumMassFamily(ObservesTask, ParamEnvFamily):
    """Pendulum-v1 with (mass, length) per task, vectorised in torch."""

    name = "pendulum-mass"
    title = "pendulum, random mass and length"
    fields = FIELDS
    task_names = ("mass", "length")
    env_observation_dim = 3
    action_dim = 1

    def sample_tasks(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return sample_mass_length(n, generator, self.params["mass_range"], self.params["length_range"])

    def reset(self, tasks: torch.Tensor, rollouts: int, generator: torch.Generator) -> tuple[PendulumBatch, torch.Tensor]:
        params = torch.as_tensor(tasks, dtype=torch.float64).reshape(-1, 2).repeat_interleave(rollouts, dim=0)
        n = len(params)
        theta = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
        speed = torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1
        batch = PendulumBatch(theta, speed, params[:, 0], params[:, 1], self.horizon)
        return self.task_view(batch, batch.observation(), tasks, rollouts)

    def render_frames(self, task, observations, actions, seed, times, size):
        """Frames drawn from the recorded angles (see :mod:`core.envs.frames`); ``seed`` is not needed."""
        return pendulum_frames(task, observations, actions, times, size, self.params["mass_range"],
                               self.params["length_range"], MAX_TORQUE)


class PendulumBatch:
    """Running pendulums (float64 state, as gymnasium keeps it; float32 observations)."""

    def __init__(self, theta: torch.Tensor, speed: torch.Tensor, mass: torch.Tensor, length: torch.Tensor,
                 horizon: int):
        self.theta, self.speed, self.mass, self.length = theta, speed, mass, length
        self.horizon = horizon
        self.t = 0
        self.ended = torch.zeros(len(theta), dtype=torch.bool)

    def observation(self) -> torch.Tensor:
        return torch.stack([torch.cos(self.theta), torch.sin(self.theta), self.speed], dim=1).float()

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        torque = torch.as_tensor(actions).detach().reshape(len(self.theta), 1)[:, 0].to(torch.float64)
        live = ~self.ended
        theta, speed, reward = pendulum_step(self.theta, self.speed, torque, self.mass, self.length)
        # an ended trajectory stays where it stopped
        self.theta = torch.where(live, theta, self.theta)
        self.speed = torch.where(live, speed, self.speed)
        self.t += 1
        if self.t >= self.horizon:
            self.ended = torch.ones_like(self.ended)
        return self.observation(), torch.where(live, reward, 0.0).float(), self.ended.clone()


class PendulumMassGymFamily(GymParamFamily):
    """The same family through the gymnasium adapter (gymnasium's Pendulum-v1 code, one env per trajectory)."""

    name = "pendulum-mass-gym"
    title = "pendulum, random mass and length (gymnasium)"
    fields = FIELDS
    task_names = ("mass", "length")
    env_observation_dim = 3
    action_dim = 1

    def make_adapter(self):
        from .pendulum_gym import pendulum_gym_family
        return pendulum_gym_family(self.horizon, self.params["mass_range"], self.params["length_range"])
