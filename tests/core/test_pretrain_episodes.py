"""The pretrain baseline on N-way episodes (Chen et al. 2019's "Baseline"): the body is trained on
the meta-train classes' fixed identities through a class head kept in the training state; the
N-way head starts fine-tuning at zero. Regression and task-column classification are untouched."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from core.storage.checkpoint import (STATE_FILE, WEIGHTS_FILE, load_checkpoint, read_training_state, save_run,
                                     state_problem)
from core.cli.main import main
from core.nets.conv import ConvNet4
from core.trained.evaluation import held_out_tasks, per_step_scores
from core.trained.export import export_weights
from core.nets.models import MLP
from core.tasks import TaskBatch
from core.training.trainer import MetaTrainer
from core.trained.weights_io import open_weights

from ..helpers import max_rel_error, spawn_two_ranks, tiny_config

WAYS = 5


def rows_file(path, classes=40, per_class=20, seed=0):
    """Classes whose 4-D rows lie on their own random segment plus noise (``scripts/fewshot_table.py``'s
    kind): one example names its class only to a network that learned what makes these classes differ."""
    rng = np.random.default_rng(seed)
    lines = ["x1,x2,x3,x4,label"]
    for c in range(classes):
        start, direction = rng.normal(0, 2, 4), rng.normal(0, 1, 4)
        for _ in range(per_class):
            x = start + rng.uniform(-1, 1) * direction + rng.normal(0, 0.3, 4)
            lines.append(",".join(f"{v:.4f}" for v in x) + f",c{c:03d}")
    path.write_text("\n".join(lines) + "\n")
    return path


def rows_config(path, **kw):
    kw = {"hidden": (40, 40), "meta_batch": 16, "shots": 1, "query": 5, "inner_lr": 0.4, **kw}
    return tiny_config("labelled_csv", "pretrain", params={"path": str(path), "target": "label", "n_way": WAYS}, **kw)


def glyphs_config():
    params = {"n_alphabets": 4, "characters": 5, "examples": 6, "image_size": 12, "n_way": 3}
    return (tiny_config("glyphs", "pretrain", shots=1, query=2, meta_batch=3, inner_lr=0.1, params=params)
            .replace("model", name="conv4", conv_channels=4, conv_depth=2))


@pytest.fixture
def rows(tmp_path):
    return rows_file(tmp_path / "rows.csv")


def _global_rows(trainer, batch):
    """Each example's class, found by looking its values up in the family's data (not from the
    batch's ``classes``), as its index among the meta-train classes."""
    sampler = trainer.family.sampler
    data = sampler.data.reshape(len(sampler.data), -1)
    x = torch.cat([batch.support_x, batch.query_x], 1)
    flat = x.reshape(-1, data.shape[1])
    same = (flat[:, None, :] == data[None]).all(-1)
    assert (same.sum(1) == 1).all()
    index = same.float().argmax(1)
    owner = torch.searchsorted(sampler._starts, index, right=True) - 1
    train = sampler.classes("train")
    return torch.tensor([train.index(int(c)) for c in owner]).view(x.shape[0], x.shape[1])


def test_mlp_meta_gradient_is_cross_entropy_over_the_meta_train_classes(rows):
    trainer = MetaTrainer(rows_config(rows, hidden=(16, 16), meta_batch=4))
    for _ in range(2):
        trainer.step()   # a trained class head, not its initialisation
    batch = trainer.sample_batch()
    trainer.optimizer.zero_grad()
    trainer.algorithm.meta_step(trainer.params, trainer.rates, batch, trainer.iteration)

    p = {n: t.detach().clone().requires_grad_(True) for n, t in trainer.params.items()}
    head = {n: t.detach().clone().requires_grad_(True) for n, t in trainer.extra_params.items()}
    h = torch.cat([batch.support_x, batch.query_x], 1)
    for i in range(2):
        h = torch.relu(h @ p[f"layers.{i}.weight"].T + p[f"layers.{i}.bias"])
    logits = h @ head["pretrain_head.weight"].T + head["pretrain_head.bias"]
    target = _global_rows(trainer, batch)
    assert len(target.unique()) > WAYS and head["pretrain_head.weight"].shape[0] == len(trainer.family.class_names())
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
    body = [f"layers.{i}.{k}" for i in range(2) for k in ("weight", "bias")]
    grads = torch.autograd.grad(loss, [p[n] for n in body] + list(head.values()))
    for name, g in zip(body + list(head), grads):
        live = trainer.params[name] if name in trainer.params else trainer.extra_params[name]
        assert max_rel_error(live.grad, g) < 1e-6, name
    assert trainer.params["layers.2.weight"].grad is None and trainer.params["layers.2.bias"].grad is None


def test_conv_meta_gradient_matches_the_plain_module_with_a_class_head():
    """In float64, so batch norm's summation order (per task here, all tasks at once in the engine) drops out."""
    trainer = MetaTrainer(glyphs_config())
    trainer.step()
    algorithm, batch = trainer.algorithm, trainer.sample_batch()
    params = {n: t.detach().double().requires_grad_(True) for n, t in trainer.params.items()}
    algorithm.class_head = {k: t.detach().double().requires_grad_(True) for k, t in algorithm.class_head.items()}
    batch = TaskBatch(*(t.double() for t in (batch.support_x, batch.support_y, batch.query_x, batch.query_y)),
                      batch.task_params)
    batch.support_y, batch.query_y = batch.support_y.long(), batch.query_y.long()
    algorithm.meta_step(params, trainer.rates, batch, trainer.iteration)

    head = algorithm.class_head
    module = ConvNet4((1, 12, 12), len(head["bias"]), 4, 2, trainer.config.model.downsample).double()
    with torch.no_grad():   # the export model, with C outputs
        for name, t in module.named_parameters():
            t.copy_(head[name[5:]] if name.startswith("head.") else params[name])
    x = torch.cat([batch.support_x, batch.query_x], 1)
    y = torch.cat([batch.support_y, batch.query_y], 1)
    classes, train = batch.task_params["classes"], trainer.family.sampler.classes("train")
    target = torch.tensor([[train.index(int(classes[t, label])) for label in y[t]] for t in range(len(y))])
    logits = torch.stack([module(x[t]) for t in range(len(x))])   # batch norm over each task's images
    F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1)).backward()
    for name, t in module.named_parameters():
        live = head[name[5:]] if name.startswith("head.") else params[name]
        assert max_rel_error(live.grad, t.grad) < 1e-10, name
    assert params["head.weight"].grad is None and not params["head.weight"].detach().any()


def test_fine_tuning_starts_from_chance_with_a_zero_head(rows):
    trainer = MetaTrainer(rows_config(rows))
    metrics = [trainer.step() for _ in range(5)]
    assert all(m.step_losses[0] == pytest.approx(math.log(WAYS)) and m.step_accuracy[0] == pytest.approx(1 / WAYS)
               for m in metrics)
    for name in trainer.net.head_names:
        assert not trainer.params[name].detach().any()   # never trained
    batch = held_out_tasks(trainer.family, 20, 1, 5, 0)
    with torch.no_grad():
        probs = torch.softmax(trainer.net.forward(trainer.params, batch.query_x), -1)
    assert torch.allclose(probs, torch.full_like(probs, 1 / WAYS))
    scores = per_step_scores(trainer.algorithm, trainer.params, trainer.rates, batch, 1)
    assert torch.equal(scores[0], torch.full((20,), 1 / WAYS))


def _step1_accuracy(config, iterations):
    trainer = MetaTrainer(config)
    for _ in range(iterations):
        trainer.step()
    batch = held_out_tasks(trainer.family, 300, 1, 5, 0)
    return float(per_step_scores(trainer.algorithm, trainer.params, trainer.rates, batch, 1)[1].mean())


def test_the_class_head_baseline_learns_where_episode_labels_could_not(rows, monkeypatch):
    """Trained on the episodes' shuffled labels (the old baseline) the network soon predicts uniform
    whatever one step of fine-tuning does; on the classes' identities its first step already classifies."""
    config = rows_config(rows).replace("train", meta_lr=0.01)   # collapses within 300 iterations
    fair = _step1_accuracy(config, 300)
    from core.algorithms.pretrain import Pretrain

    monkeypatch.setattr(Pretrain, "start_training", lambda self, family, params, seed: {})
    old = _step1_accuracy(config, 300)
    assert old < 0.25 and fair > 0.6, (old, fair)


def test_resume_is_exact_with_the_class_head(rows, tmp_path):
    config = rows_config(rows, hidden=(16, 16), meta_batch=4)
    whole = MetaTrainer(config)
    for _ in range(6):
        whole.step()
    first = MetaTrainer(config)
    for _ in range(3):
        first.step()
    save_run(tmp_path / "run", first.config, first.weights(), [], training_state=first.training_state())
    assert not any(k.startswith("pretrain_head") for k in load_file(tmp_path / "run" / WEIGHTS_FILE))
    saved, weights, tensors, metadata = load_checkpoint(tmp_path / "run")
    assert {"pretrain_head.weight", "pretrain_head.bias"} <= set(tensors)
    resumed = MetaTrainer(saved)
    resumed.load_weights(weights)
    resumed.load_training_state(tensors, metadata)
    for _ in range(3):
        resumed.step()
    for a, b in ((whole.weights(), resumed.weights()), (whole.extra_params, resumed.extra_params)):
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(whole.extra_params["pretrain_head.weight"], first.extra_params["pretrain_head.weight"])


def test_the_run_folder_reader_accepts_the_class_head_and_the_untrained_n_way_head(rows, tmp_path):
    """Adam keeps no state for the zero N-way head (it never gets a gradient) and does for the class
    head: the window's Open and Continue take such a state as exact, while a slot of a trained
    parameter that is missing is still refused."""
    trainer = MetaTrainer(rows_config(rows, hidden=(16, 16), meta_batch=4))
    for _ in range(2):
        trainer.step()
    tensors, metadata = trainer.training_state()
    assert not any(k.startswith("optimizer.4.") for k in tensors)   # the N-way head's weight: no Adam state
    save_run(tmp_path / "run", trainer.config, trainer.weights(), [], training_state=(tensors, metadata))
    assert state_problem(tmp_path / "run") is None
    assert read_training_state(tmp_path / "run", 2) is not None
    damaged = {k: v for k, v in tensors.items() if not k.startswith("optimizer.0.")}
    save_run(tmp_path / "bad", trainer.config, trainer.weights(), [], training_state=(damaged, metadata))
    assert "optimizer state for 6 tensors expected, found 5" in state_problem(tmp_path / "bad")


def test_export_of_an_episode_run_is_the_plain_n_way_network(rows, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--csv", str(rows), "--target", "label", "--classification", "--ways", str(WAYS),
                 "--shots", "1", "--query", "5", "--algorithm", "pretrain", "--iterations", "20",
                 "--meta-batch", "4", "--save-every", "0", "--out", str(run)]) == 0
    assert "pretrain_head.weight" in load_file(run / STATE_FILE)
    config, weights = open_weights(run)
    assert set(weights) == {f"model.layers.{i}.{k}" for i in range(3) for k in ("weight", "bias")}
    state = torch.load(export_weights(run, "pt", tmp_path / "w.pt"), weights_only=True)
    model = MLP(4, WAYS, config.model.hidden, config.model.activation)
    model.load_state_dict(state)   # strict: exactly the N-way network's tensors
    assert not model.layers[-1].weight.detach().any()
    assert set(open_weights(export_weights(run, "safetensors", tmp_path / "w.safetensors"))[1]) == set(weights)


def test_regression_and_task_column_classification_keep_the_joint_baseline():
    for config in (tiny_config("sinusoid", "pretrain"), tiny_config("blobs", "pretrain", params={"n_way": 3})):
        trainer = MetaTrainer(config)
        assert trainer.extra_params == {} and "pretrain_head.weight" not in trainer.training_state()[0]
        assert trainer.params["layers.2.weight"].detach().all()


def _two_ranks(rank: int, folder: str) -> None:
    from core.config import ExperimentConfig
    from core.training.distributed import Group

    group = Group.join((rank, 2, rank, 2), timeout=60)
    trainer = MetaTrainer(ExperimentConfig.from_json((Path(folder) / "config.json").read_text()), group=group)
    trainer.step(trainer.sample_batch())
    if rank == 0:
        torch.save([p.grad for p in trainer.meta_parameters()], Path(folder) / "grads.pt")
    group.close()


@pytest.mark.timeout(60)
def test_two_processes_sum_the_class_head_gradient_too(rows, tmp_path, monkeypatch):
    config = rows_config(rows, hidden=(16, 16), meta_batch=5)   # shares of 3 and 2 episodes
    (tmp_path / "config.json").write_text(config.to_json())
    spawn_two_ranks(_two_ranks, tmp_path, monkeypatch)
    grads = torch.load(tmp_path / "grads.pt", weights_only=True)
    trainer = MetaTrainer(config)
    trainer.step(trainer.sample_batch())
    assert [g is None for g in grads] == [p.grad is None for p in trainer.meta_parameters()]
    head = trainer.extra_params["pretrain_head.weight"]
    assert any(p is head for p in trainer.meta_parameters()) and head.grad.abs().max() > 1e-3
    for g, p in zip(grads, trainer.meta_parameters()):
        if g is not None:
            assert torch.allclose(g, p.grad, rtol=1e-5, atol=1e-6)
