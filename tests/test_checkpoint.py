"""Run folders: exact round trip, atomic writes, and refusal of files that are not ours."""

import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from core.checkpoint import CONFIG_FILE, METRICS_FILE, WEIGHTS_FILE, load_run, save_run
from core.errors import CheckpointError
from core.trainer import MetaTrainer

from .helpers import tiny_config


@pytest.fixture
def run(tmp_path):
    trainer = MetaTrainer(tiny_config("sinusoid", "metasgd", steps=2))
    rows = [trainer.step() for _ in range(3)]
    save_run(tmp_path / "run", trainer.config, trainer.weights(), rows)
    return tmp_path / "run", trainer


def test_round_trip_is_bit_exact(run):
    path, trainer = run
    assert sorted(os.listdir(path)) == sorted([CONFIG_FILE, METRICS_FILE, WEIGHTS_FILE])
    config, weights = load_run(path)
    assert config == trainer.config
    original = trainer.weights()
    assert set(weights) == set(original)
    assert all(torch.equal(weights[n], original[n]) for n in original)
    lines = (path / METRICS_FILE).read_text().splitlines()
    assert lines[0].startswith("iteration,meta_loss,grad_norm,seconds,step_loss_0") and len(lines) == 4
    assert json.loads((path / CONFIG_FILE).read_text())["algorithm"]["name"] == "metasgd"


def test_loaded_weights_continue_training_identically(run):
    path, trainer = run
    config, weights = load_run(path)
    other = MetaTrainer(config)
    other.load_weights(weights)
    assert all(torch.equal(other.weights()[n], weights[n]) for n in weights)


def test_truncated_file_is_refused(run):
    path, _ = run
    data = (path / WEIGHTS_FILE).read_bytes()
    (path / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_run(path)


def test_pickle_is_never_loaded(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / WEIGHTS_FILE).write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError):
        load_run(tmp_path)
    assert not marker.exists()


def test_shape_mismatch_and_newer_version_are_refused(run, tmp_path):
    path, trainer = run
    config = trainer.config.to_json()
    weights = trainer.weights()
    weights["model.layers.0.weight"] = torch.zeros(3, 1)
    save_file(weights, str(tmp_path / "bad.safetensors"), metadata={"format_version": "1", "config": config})
    with pytest.raises(CheckpointError, match=r"model.layers.0.weight has shape \(3, 1\)"):
        load_run(tmp_path / "bad.safetensors")
    save_file(trainer.weights(), str(tmp_path / "new.safetensors"), metadata={"format_version": "99", "config": config})
    with pytest.raises(CheckpointError, match="update the app"):
        load_run(tmp_path / "new.safetensors")
    save_file(trainer.weights(), str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="not written by this app"):
        load_run(tmp_path / "foreign.safetensors")




def test_failed_write_leaves_no_partial_file(run, tmp_path, monkeypatch):
    path, trainer = run
    before = (path / WEIGHTS_FILE).read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device"):
        save_run(path, trainer.config, trainer.weights(), [])
    assert (path / WEIGHTS_FILE).read_bytes() == before
    assert sorted(os.listdir(path)) == sorted([CONFIG_FILE, METRICS_FILE, WEIGHTS_FILE])
