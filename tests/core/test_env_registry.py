"""The environment-family registry: names, settings, and the one-line refusal when the ``rl`` extra is missing."""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys

import pytest
import torch

from core.envs import ENV_FAMILIES, build_env_family, env_requires, extra
from core.errors import ConfigError
from core.tasks.spec import FamilySpec

OURS = ("halfcheetah-vel", "halfcheetah-dir", "pendulum-mass", "pendulum-mass-gym")


def test_unknown_family_and_bad_settings_name_the_field():
    with pytest.raises(ConfigError, match="unknown environment family 'cartpole'; choose one of") as err:
        build_env_family(FamilySpec("cartpole", {}))
    assert err.value.field == "family.name"
    with pytest.raises(ConfigError) as err:
        build_env_family(FamilySpec("pendulum-mass", {"horizon": 0}))
    assert err.value.field == "family.horizon"
    with pytest.raises(ConfigError) as err:
        build_env_family(FamilySpec("pendulum-mass", {"mass_range": [2.0, 1.0]}))
    assert err.value.field == "family.mass_range"


def needs_extra(name: str) -> None:
    """Skip, naming the install line, where the family's optional packages are absent (CI installs them)."""
    if extra.missing_modules(env_requires(name)):
        pytest.skip(f"{name} needs {', '.join(env_requires(name))}: bash install.sh --test installs them "
                    f"({extra.INSTALL_HINT})")


@pytest.mark.parametrize("name", OURS)
def test_each_family_builds_steps_and_pickles_when_its_packages_are_there(name):
    needs_extra(name)
    family = build_env_family(FamilySpec(name, {"horizon": 7}))
    assert family.name == name and family.horizon == 7 and ENV_FAMILIES[name]().horizon == 200
    tasks = family.sample_tasks(2, torch.Generator().manual_seed(0))
    assert tasks.shape == (2, len(family.task_names))
    batch, obs = family.reset(tasks, 2, torch.Generator().manual_seed(0))
    assert obs.shape == (4, family.observation_dim)
    assert batch.step(torch.zeros(4, family.action_dim))[1].shape == (4,)
    copy = pickle.loads(pickle.dumps(family))          # worker processes get the family by pickle
    assert torch.equal(copy.sample_tasks(3, torch.Generator().manual_seed(1)),
                       family.sample_tasks(3, torch.Generator().manual_seed(1)))
    getattr(family, "close", lambda: None)()


@pytest.mark.parametrize("name, missing", [("halfcheetah-vel", {"mujoco"}), ("halfcheetah-dir", {"gymnasium", "mujoco"}),
                                           ("pendulum-mass-gym", {"gymnasium"})])
def test_a_missing_extra_is_one_line_with_the_install_command(monkeypatch, name, missing):
    real = importlib.util.find_spec
    monkeypatch.setattr(extra.importlib.util, "find_spec", lambda mod, *a: None if mod in missing else real(mod, *a))
    with pytest.raises(ConfigError) as err:
        build_env_family(FamilySpec(name, {}))
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"family.name: {name} needs the optional package")
    assert " and ".join(m for m in ("gymnasium", "mujoco") if m in missing) in message
    assert message.endswith("install the rl extra: pip install 'maml-gui[rl]'")


def test_train_without_the_extra_exits_2_with_one_line(monkeypatch, capsys, tmp_path):
    from core.cli.main import main
    real = importlib.util.find_spec
    monkeypatch.setattr(extra.importlib.util, "find_spec", lambda mod, *a: None if mod == "mujoco" else real(mod, *a))
    assert main(["train", "--family", "halfcheetah-dir", "--iterations", "1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("maml-gui: error: family.name: halfcheetah-dir needs the optional package mujoco; "
                   "install the rl extra: pip install 'maml-gui[rl]'")
    assert not (tmp_path / "run").exists()


def test_the_registry_and_torch_pendulum_import_no_optional_package():
    code = ("import sys; from core.envs import build_env_family; from core.tasks.spec import FamilySpec\n"
            "from core.errors import ConfigError\n"
            "build_env_family(FamilySpec('pendulum-mass', {}))\n"
            "try: build_env_family(FamilySpec('halfcheetah-vel', {}))   # refuses where the extra is missing\n"
            "except ConfigError: pass\n"
            "print(sorted(m for m in ('gymnasium', 'mujoco') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", OURS)
def test_the_oracle_view_appends_the_task_to_every_observation(name):
    needs_extra(name)
    plain = build_env_family(FamilySpec(name, {"horizon": 3}))
    oracle = build_env_family(FamilySpec(name, {"horizon": 3, **ENV_FAMILIES[name].oracle_params}))
    width = len(plain.task_names)
    assert oracle.observation_dim == plain.observation_dim + width
    tasks = plain.sample_tasks(2, torch.Generator().manual_seed(0))
    rows = tasks.repeat_interleave(3, dim=0)
    _, seen = plain.reset(tasks, 3, torch.Generator().manual_seed(1))
    batch, obs = oracle.reset(tasks, 3, torch.Generator().manual_seed(1))
    assert torch.equal(obs[:, :-width], seen) and torch.equal(obs[:, -width:], rows)
    obs, _, _ = batch.step(torch.zeros(6, plain.action_dim))
    assert obs.shape == (6, oracle.observation_dim) and torch.equal(obs[:, -width:], rows)
    for family in (plain, oracle):
        getattr(family, "close", lambda: None)()
