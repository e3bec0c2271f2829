"""Short real trainings: each must fail if an algorithm's math or bookkeeping is wrong."""

import pytest
import torch

from core.errors import TrainingDiverged
from core.trained.evaluation import evaluate
from core.training.trainer import MetaTrainer

from ..helpers import tiny_config


def trained(algorithm, iterations, family="sinusoid", **kw):
    defaults = dict(steps=1, hidden=(40, 40), meta_batch=10, shots=5, query=10, inner_lr=0.01)
    defaults.update(kw)
    config = tiny_config(family, algorithm, **defaults).replace("train", meta_lr=0.003)
    trainer = MetaTrainer(config)
    for _ in range(iterations):
        trainer.step()
    return trainer


def five_shot(trainer, steps=(0, 1)):
    return evaluate(trainer.algorithm, trainer.params, trainer.rates, trainer.family, tasks=200, shots=5,
                    steps=steps, seed=3)


def test_maml_beats_pretrain_on_five_shot_sinusoid_after_one_step():
    maml = five_shot(trained("maml", 400)).model.mean[1]
    pretrain = five_shot(trained("pretrain", 400)).model.mean[1]
    assert maml < 0.85 * pretrain, (maml, pretrain)


@pytest.mark.parametrize("algorithm,kw", [
    ("maml", {}), ("fomaml", {}), ("metasgd", {}), ("mamlpp", {"steps": 2}), ("anil", {}),
    ("reptile", {"steps": 5, "inner_lr": 0.02}),
])
def test_every_algorithm_adapts_better_than_scratch(algorithm, kw):
    result = five_shot(trained(algorithm, 200, **kw))
    assert result.model.mean[1] < 0.85 * result.scratch.mean[1], result.to_dict()
    assert result.model.mean[1] < result.model.mean[0]  # one adaptation step helps


@pytest.mark.parametrize("algorithm", ["metasgd", "mamlpp"])
def test_learned_inner_rates_change(algorithm):
    trainer = MetaTrainer(tiny_config("sinusoid", algorithm, steps=2))
    before = {n: t.detach().clone() for n, t in trainer.rates.tensors.items()}
    assert before, "this algorithm must learn its inner rates"
    for _ in range(20):
        trainer.step()
    assert any(not torch.equal(before[n], t.detach()) for n, t in trainer.rates.tensors.items())
    assert "inner_lr.layers.0.weight" in trainer.weights()


def test_plain_maml_learns_no_rates():
    assert MetaTrainer(tiny_config("sinusoid", "maml")).rates.tensors == {}


def test_mamlpp_anneals_loss_weights_and_order():
    trainer = MetaTrainer(tiny_config("sinusoid", "mamlpp", steps=3))
    algo = trainer.algorithm
    assert torch.allclose(algo.step_weights(0), torch.full((3,), 1 / 3))
    assert algo.step_weights(10**6).tolist() == [0.0, 0.0, 1.0]
    assert not algo.second_order_at(0) and algo.second_order_at(10**6)


def test_classification_meta_learning_beats_scratch():
    trainer = trained("maml", 300, family="blobs", hidden=(32, 32), meta_batch=8, shots=1, query=5, inner_lr=0.5)
    result = evaluate(trainer.algorithm, trainer.params, trainer.rates, trainer.family, tasks=200, shots=1,
                      steps=(0, 1), seed=1)
    assert result.metric == "accuracy"
    assert result.model.mean[1] > result.scratch.mean[1] + 0.03, result.to_dict()
    metrics = trainer.step()
    assert metrics.step_accuracy is not None and len(metrics.step_accuracy) == 2


def test_step_reports_per_step_losses_and_timing():
    trainer = MetaTrainer(tiny_config("sinusoid", "maml", steps=3))
    m = trainer.step()
    assert m.iteration == 1 and len(m.step_losses) == 4 and m.meta_loss == m.step_losses[-1]
    assert m.grad_norm > 0 and m.seconds > 0


def test_divergence_stops_with_a_reason_and_keeps_the_last_finite_weights():
    config = tiny_config("sinusoid", "maml", hidden=(16,), inner_lr=10.0, params={"amplitude": [1e18, 1e19]})
    trainer = MetaTrainer(config)
    before = trainer.weights()
    with pytest.raises(TrainingDiverged, match="weights from iteration 0 were kept"):
        for _ in range(5):
            trainer.step()
    after = trainer.weights()
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_same_seed_same_run_and_stopping_between_steps_changes_nothing():
    config = tiny_config("sinusoid", "maml", steps=2, seed=5)
    a, b = MetaTrainer(config), MetaTrainer(config)
    for _ in range(6):
        a.step()
    for _ in range(3):
        b.step()
    b.set_meta_lr(config.train.meta_lr)  # a pause in which the user touched nothing
    for _ in range(3):
        b.step()
    wa, wb = a.weights(), b.weights()
    assert all(torch.equal(wa[n], wb[n]) for n in wa)


def test_diverged_tasks_are_counted_and_json_stays_valid():
    import json
    import math

    from core.trained.evaluation import EvalResult, summarise

    scores = torch.tensor([[1.0, 2.0, 3.0], [0.5, float("nan"), 1.0]])
    summary = summarise(scores, (0, 1))
    assert summary.diverged == {0: 0, 1: 1} and math.isnan(summary.mean[1])
    result = EvalResult("mse", 5, 3, (0, 1), summary, summarise(scores[:, :1], (0, 1)))
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["mean"] == {"0": 2.0, "1": None} and data["diverged"] == {"0": 0, "1": 1}


@pytest.mark.parametrize("family, kw, algorithm", [("sinusoid", {}, "maml"), ("polynomial", {}, "metasgd"),
                                                   ("blobs", {"shots": 2, "query": 3}, "maml")])
def test_evaluation_in_chunks_equals_one_batch(family, kw, algorithm):
    """Held-out tasks adapt a chunk at a time (memory bounded whatever --tasks is) with the very
    scores of one batch: each task adapts on its own."""
    from core.trained.evaluation import held_out_tasks, per_step_scores

    trainer = MetaTrainer(tiny_config(family, algorithm, steps=2, **kw))
    batch = held_out_tasks(trainer.family, 10, 4 if family != "blobs" else 2, 5, seed=3)
    whole = per_step_scores(trainer.algorithm, trainer.params, trainer.rates, batch, 3, chunk=1000)
    chunked = per_step_scores(trainer.algorithm, trainer.params, trainer.rates, batch, 3, chunk=3)
    assert whole.shape == chunked.shape == (4, 10)
    assert torch.equal(chunked, whole)


def test_evaluate_memory_does_not_grow_with_tasks(tmp_path):
    """`evaluate --tasks 20000` in a child process capped at 1 GiB of address space: one batch of
    20000 adapted tasks asked for 1.7 GB (and 6 GB with more steps); in chunks it fits."""
    import os
    import subprocess
    import sys

    from core.cli.main import main

    assert main(["train", "--iterations", "1", "--meta-batch", "2", "--out", str(tmp_path / "run")]) == 0
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
            "from core.cli.main import main; sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", code, "evaluate", str(tmp_path / "run"), "--tasks", "20000",
                             "--steps", "0,1", "--json"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-500:]
    import json

    assert json.loads(result.stdout)["tasks"] == 20000
