"""Build once, hand it down: a command builds its family and network one time, and one resume
rule (:func:`core.training.resume.continuation`) says what a run under new settings takes over."""

from __future__ import annotations

import shutil

import pytest
import torch

from core.built import build
from core.cli.main import main
from core.config import ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from core.nets.models import MLPNet
from core.storage.checkpoint import load_checkpoint
from core.tasks.regression import SinusoidFamily
from core.trained.loaded_model import LoadedModel
from core.training.resume import continuation
from core.training.trainer import MetaTrainer


def _config(**train) -> ExperimentConfig:
    return ExperimentConfig(FamilySpec("sinusoid"), ModelSpec(hidden=(8,)),
                            train=TrainSpec(**{"meta_batch": 2, "shots": 5, "query": 5, "iterations": 3, **train}))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A two-iteration run folder with its training state, and a CSV file of a new task."""
    folder = tmp_path_factory.mktemp("built")
    assert main(["train", "--family", "sinusoid", "--iterations", "2", "--meta-batch", "2", "--shots", "5", "--query",
                 "5", "--out", str(folder / "run")]) == 0
    xs = torch.linspace(-4, 4, 12)
    (folder / "task.csv").write_text("x,y\n" + "".join(f"{x:.4f},{y:.4f}\n" for x, y in zip(xs.tolist(), xs.sin().tolist())))
    return folder


@pytest.fixture
def builds(monkeypatch):
    """Counts of family and network constructions (the sinusoid family, the MLP) from here on."""
    counts = {"family": 0, "net": 0}
    for cls, key in ((SinusoidFamily, "family"), (MLPNet, "net")):
        def counted(self, *args, _init=cls.__init__, _key=key, **kwargs):
            counts[_key] += 1
            _init(self, *args, **kwargs)
        monkeypatch.setattr(cls, "__init__", counted)
    return counts


@pytest.mark.parametrize("command", [
    ["adapt", "{run}", "--csv", "{dir}/task.csv", "--target", "y", "--shots", "6", "--steps", "2", "--out",
     "{out}/adapted.safetensors"],
    ["export", "{run}", "--out", "{out}/w.safetensors"],
    ["export", "{run}", "--format", "pt", "--out", "{out}/w.pt"],
    ["evaluate", "{run}", "--tasks", "4", "--steps", "0,1", "--json"],
    ["train", "--resume", "{run}", "--iterations", "3"],
    ["train", "--family", "sinusoid", "--iterations", "2", "--meta-batch", "2", "--out", "{out}/new"],
])
def test_each_command_builds_the_family_and_network_once(run_dir, tmp_path, builds, capsys, command):
    run = tmp_path / "run"
    shutil.copytree(run_dir / "run", run)
    argv = [a.format(run=run, dir=run_dir, out=tmp_path) for a in command]
    assert main(argv) == 0, capsys.readouterr().err
    assert builds == {"family": 1, "net": 1}, argv


def test_a_loaded_model_and_a_trainer_share_one_build():
    trainer = MetaTrainer(_config())
    model = LoadedModel.of_trainer(trainer)
    assert model.built is trainer.built and model.net is trainer.net
    assert all(model.params[n] is p for n, p in trainer.params.items())
    trainer.step()
    assert model.iteration == 1   # it follows the trainer


def test_a_built_moves_and_takes_the_settings_a_resume_may_change():
    built = build(_config())
    other = built.with_config(_config(iterations=50, meta_lr=0.01))
    assert other.net is built.net and other.params is built.params and other.config.train.iterations == 50
    with pytest.raises(ValueError, match="train.seed"):
        built.with_config(_config(seed=4))
    assert built.to("cpu") is built


# -- the resume rule ------------------------------------------------------------------------------
def test_the_same_settings_continue_exactly(run_dir):
    config, weights, tensors, metadata = load_checkpoint(run_dir / "run")
    plan = continuation(config, config, weights, (tensors, metadata))
    assert plan.exact and plan.weights is weights and plan.state == (tensors, metadata)
    assert plan.changed == () and plan.problem is None


@pytest.mark.parametrize("train", [{"meta_lr": 0.003}, {"iterations": 40}, {"device": "auto"}, {"compile": "on"}])
def test_rates_lengths_and_devices_may_change(run_dir, train):
    saved, weights, tensors, metadata = load_checkpoint(run_dir / "run")
    plan = continuation(saved.replace("train", **train), saved, weights, (tensors, metadata))
    assert plan.exact and plan.weights is weights and plan.problem is None


def test_another_network_is_refused_naming_the_field(run_dir):
    saved, weights, tensors, metadata = load_checkpoint(run_dir / "run")
    plan = continuation(saved.replace("model", hidden=(16, 16)), saved, weights, (tensors, metadata))
    assert not plan.exact and plan.weights is None and plan.changed == ("model.hidden",)
    assert plan.problem.startswith("model.hidden cannot change a resumed run")


def test_other_settings_keep_what_fits_with_a_fresh_adam_state(run_dir):
    saved, weights, tensors, metadata = load_checkpoint(run_dir / "run")
    seeded = continuation(saved.replace("train", seed=9), saved, weights, (tensors, metadata))
    assert not seeded.exact and seeded.weights is weights and seeded.changed == ("train.seed",)
    learned = {**weights, **{f"inner_lr.{k[len('model.'):]}": torch.full_like(v, 0.01)
                             for k, v in weights.items() if k.startswith("model.")}}
    metasgd = saved.replace("algorithm", name="metasgd")
    back = continuation(saved, metasgd, learned, (tensors, metadata))   # Meta-SGD's rates do not fit MAML
    assert not back.exact and set(back.weights) == {k for k in weights if k.startswith("model.")}
    assert back.changed == ("algorithm.name",)
