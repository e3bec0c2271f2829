"""Run folders: exact round trip, atomic writes, and refusal of files that are not ours."""

import json
import os
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.storage.checkpoint import CONFIG_FILE, STATE_FILE, WEIGHTS_FILE, load_run, read_training_state, save_run
from core.storage.metrics import METRICS_FILE, MetricsLog, read_metrics
from core.errors import CheckpointError
from core.training.trainer import MetaTrainer

from ..helpers import tiny_config


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


def test_metrics_read_back_as_written(run):
    path, trainer = run
    rows = [trainer.step() for _ in range(2)]
    save_run(path, trainer.config, trainer.weights(), rows)
    data = read_metrics(path)
    assert data.shape == (2, 4 + 3 + 1)   # iteration, meta_loss, grad_norm, seconds, a loss per inner step 0..2, wall_time
    assert data[:, 0].tolist() == [4, 5] and data[:, 1].tolist() == [r.meta_loss for r in rows]
    assert data[:, 4:-1].tolist() == [list(r.step_losses) for r in rows]
    assert data[:, -1].tolist() == [round(r.wall_time, 3) for r in rows]
    log = MetricsLog(path, 3, resume=True)   # a resumed command-line run appends to the same file
    log.write(trainer.step())
    log.close()
    assert read_metrics(path)[:, 0].tolist() == [4, 5, 6]


@pytest.mark.parametrize("text", [
    None,                                                            # no metrics.csv: it is optional
    "",
    "iteration,meta_loss,grad_norm,seconds,step_loss_0\n",          # a header and no rows
    "iteration,meta_loss,grad_norm,seconds\n1,0.5,0.1,0.01\n",      # no step losses
    "iteration,loss,grad_norm,seconds,step_loss_0\n1,0.5,0.1,0.01,0.4\n",
    "iteration,meta_loss,grad_norm,seconds,step_loss_0\n1,0.5,0.1,0.01\n",
    "iteration,meta_loss,grad_norm,seconds,step_loss_0\n1,0.5,x,0.01,0.4\n",
])
def test_missing_or_foreign_metrics_read_as_none(tmp_path, text):
    if text is not None:
        (tmp_path / METRICS_FILE).write_text(text)
    assert read_metrics(tmp_path) is None
    (tmp_path / METRICS_FILE).unlink(missing_ok=True)
    (tmp_path / METRICS_FILE).write_bytes(b"\xff\xfe\x00garbage")
    assert read_metrics(tmp_path) is None and read_metrics(tmp_path / "nothing here") is None


def test_training_state_is_read_only_for_its_iteration(run):
    path, trainer = run
    assert read_training_state(path, 3) is None   # saved without one
    save_run(path, trainer.config, trainer.weights(), [], training_state=trainer.training_state())
    tensors, metadata = read_training_state(path, 3)
    assert metadata["iteration"] == "3" and "task_generator" in tensors
    assert read_training_state(path, 2) is None
    (path / STATE_FILE).write_bytes(b"broken")
    assert read_training_state(path, 3) is None


def test_the_table_writer_writes_what_the_row_writer_does():
    from core.storage.metrics import metrics_csv, metrics_table_csv
    from core.training.trainer import StepMetrics

    rows = [StepMetrics(i, 1.0 / (i + 3), (2.0 / (i + 1), float("nan"), 1e-300), 0.1 * i, i * 1.25e-7,
                        wall_time=1.8e9 + i / 7 if i % 5 else float("nan")) for i in range(1, 40)]
    table = [[r.iteration, r.meta_loss, r.grad_norm, r.seconds, *r.step_losses, r.wall_time] for r in rows]
    assert metrics_table_csv(table) == metrics_csv(rows)
    assert metrics_table_csv(np.empty((0, 0))) == metrics_csv([])


def test_metrics_reach_the_file_every_second_and_a_failed_checkpoint_takes_them_back(tmp_path):
    """A window following the run sees rows about once a second, not once per checkpoint; a
    checkpoint that fails cuts them back so the retry writes each row exactly once."""
    from core.storage.metrics import read_metrics
    from core.training.trainer import StepMetrics

    now = [0.0]
    log = MetricsLog(tmp_path, 2, clock=lambda: now[0])
    row = lambda i: StepMetrics(i, 1.0 / i, (2.0, 1.0 / i), 0.5, 0.01)   # noqa: E731
    log.write(row(1))
    assert read_metrics(tmp_path) is None or len(read_metrics(tmp_path)) == 0   # not a second yet
    now[0] = 1.5
    log.write(row(2))
    assert read_metrics(tmp_path)[:, 0].tolist() == [1, 2]
    log.rollback()                          # the checkpoint failed before its commit
    assert read_metrics(tmp_path) is None or len(read_metrics(tmp_path)) == 0
    log.write(row(3))
    log.flush()
    log.commit()
    now[0] = 3.0
    log.write(row(4))
    assert read_metrics(tmp_path)[:, 0].tolist() == [1, 2, 3, 4]
