"""The environment-family registry: names, horizons, and the one-line refusal when the ``rl`` extra is missing."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch

from core.envs import ENV_FAMILIES, ENV_REQUIRES, build_env_family, extra
from core.errors import ConfigError


def test_unknown_family_and_bad_horizon_name_the_field():
    with pytest.raises(ConfigError, match="unknown environment family 'cartpole'; choose one of halfcheetah-vel") as err:
        build_env_family("cartpole")
    assert err.value.field == "family.name"
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ConfigError, match="horizon must be a positive whole number") as err:
            build_env_family("pendulum-mass", horizon=bad)
        assert err.value.field == "horizon"


def test_every_family_builds_with_its_horizon_when_its_packages_are_there():
    for name, factory in ENV_FAMILIES.items():
        if extra.missing_modules(ENV_REQUIRES.get(name, ())):
            continue
        family = build_env_family(name, horizon=7)
        assert family.name == name and family.horizon == 7
        tasks = family.sample_tasks(2, torch.Generator().manual_seed(0))
        batch, obs = family.reset(tasks, 2, torch.Generator().manual_seed(0))
        assert obs.shape == (4, family.observation_dim)
        action = torch.zeros(4, dtype=torch.long) if family.discrete else torch.zeros(4, family.action_dim)
        assert batch.step(action)[1].shape == (4,)
        assert build_env_family(name).horizon == 200


@pytest.mark.parametrize("name, missing", [("halfcheetah-vel", {"mujoco"}), ("halfcheetah-dir", {"gymnasium", "mujoco"}),
                                           ("pendulum-mass-gym", {"gymnasium"})])
def test_a_missing_extra_is_one_line_with_the_install_command(monkeypatch, name, missing):
    real = importlib.util.find_spec
    monkeypatch.setattr(extra.importlib.util, "find_spec", lambda mod, *a: None if mod in missing else real(mod, *a))
    with pytest.raises(ConfigError) as err:
        build_env_family(name)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"family.name: {name} needs the optional package")
    assert " and ".join(m for m in ("gymnasium", "mujoco") if m in missing) in message
    assert message.endswith("install them with pip install 'maml-gui[rl]'")


def test_the_torch_pendulum_needs_no_extra_and_nothing_imports_gymnasium_early():
    code = ("import sys; import core.envs as e; e.build_env_family('pendulum-mass');"
            "print(sorted(m for m in ('gymnasium', 'mujoco') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
