"""A loaded model computes the engine's own numbers (scores, adaptation) and leaves torch's
process-wide settings alone; every family answers the questions callers ask of it."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from core.trained.adapt import points_task
from core.trained.loaded_model import adapt_weights
from core.config import FamilySpec
from core.trained.evaluation import (FunctionView, diverged_tasks, held_out_tasks, mean_and_ci, per_step_scores,
                                     summarise)
from core.trained.loaded_model import LoadedModel, adaptation_steps, preview_from_weights
from core.trained.task_views import DataView, RegionsView
from core.tasks import FAMILIES, build_family
from core.training.trainer import MetaTrainer

from ..helpers import tiny_config

GROWTH = {"paths": [str(Path(__file__).resolve().parents[2] / "assets" / "examples" / "growth.csv")],
          "task_column": "subject", "target": "height"}


def trained(family="sinusoid", algorithm="metasgd", params=None, steps=3) -> MetaTrainer:
    trainer = MetaTrainer(tiny_config(family, algorithm, steps=2, params=params))
    for _ in range(steps):
        trainer.step()
    return trainer


def same_tensors(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def threads():
    """Two intra-op threads for the test (the trainer may have set one), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(before)


def test_saved_weights_load_exactly_and_score_like_the_engine():
    trainer = trained()
    model = LoadedModel(trainer.config, trainer.weights())
    assert same_tensors(model.weights(), trainer.weights())   # learned Meta-SGD rates included
    batch = held_out_tasks(trainer.family, 6, 5, 9, seed=3)
    engine = per_step_scores(trainer.algorithm, trainer.params, trainer.rates, batch, 4)
    assert torch.equal(model.scores(batch, 4), engine)
    fixed = per_step_scores(trainer.algorithm, trainer.params, model.rates_for(0.02), batch, 4)
    assert torch.equal(model.scores(batch, 4, lr=0.02), fixed) and not torch.equal(fixed, engine)


def test_adapt_equals_adapt_weights_and_the_trainers_inner_loop():
    trainer = trained()
    weights = trainer.weights()
    task = held_out_tasks(trainer.family, 1, 5, 8, seed=1)
    sx, sy, qx, qy = task.support_x[0], task.support_y[0], task.query_x[0], task.query_y[0]
    model = LoadedModel(trainer.config, weights)
    result = model.adapt(sx, sy, 6, query_x=qx, query_y=qy)
    direct = adapt_weights(trainer.config, weights, sx, sy, 6, query_x=qx, query_y=qy)
    assert result.support_losses == direct.support_losses and result.query_losses == direct.query_losses
    assert same_tensors(result.weights, direct.weights)
    reference = trainer.algorithm.adapt(trainer.params, trainer.rates, sx[None], sy[None], 6)[-1]
    assert all(torch.equal(result.weights[f"model.{n}"], v[0] if v.dim() > trainer.params[n].dim() else v)
               for n, v in reference.items())
    assert result.support_losses[-1] < result.support_losses[0]


def test_building_and_using_a_loaded_model_leaves_the_thread_count_alone(threads):
    trainer = trained()
    torch.set_num_threads(threads)   # building the trainer above may tune it: that is training's business
    model = LoadedModel(trainer.config, trainer.weights())
    model.adaptation(5)
    model.preview(0)
    task = held_out_tasks(model.family, 1, 5, 5, seed=0)
    model.adapt(task.support_x[0], task.support_y[0], 3)
    adapt_weights(trainer.config, trainer.weights(), task.support_x[0], task.support_y[0], 2)
    preview_from_weights(trainer.config, None, 1)
    assert torch.get_num_threads() == threads


def test_adaptation_snapshot_is_mean_and_ci_of_the_engine_scores():
    trainer = trained()
    model = LoadedModel(trainer.config, trainer.weights(), iteration=3)
    baseline = LoadedModel(trainer.config.replace("algorithm", name="pretrain"))
    snapshot = model.adaptation(8, baseline)
    steps = adaptation_steps(trainer.config)
    batch = model.held_out(8)
    assert snapshot.iteration == 3 and snapshot.metric == "mse" and list(snapshot.steps) == list(range(steps + 1))
    assert list(snapshot.series) == ["meta-learned", "pretrain", "scratch"]
    for name, scores in (("meta-learned", model.scores(batch, steps)), ("pretrain", baseline.scores(batch, steps)),
                         ("scratch", model.scratch_scores(batch, steps))):
        mean, ci, diverged = mean_and_ci(scores)
        assert np.array_equal(snapshot.series[name][0], mean, equal_nan=True), name
        assert np.array_equal(snapshot.series[name][1], ci, equal_nan=True), name
        assert np.array_equal(snapshot.diverged[name], diverged), name
    assert snapshot.tasks == 8


def test_a_diverging_model_reports_its_diverged_tasks_and_no_mean_there():
    """A huge inner rate blows the loss up: the snapshot counts the tasks as ``evaluate`` does and
    leaves the mean out (NaN) where they diverged, rather than one task's 1e+20 as the mean."""
    config = tiny_config("sinusoid", "maml", steps=2).replace("algorithm", inner_lr=3.0)
    model = LoadedModel(config)
    snapshot = model.adaptation(6)
    scores = model.scores(model.held_out(6), adaptation_steps(config))
    diverged = snapshot.diverged["meta-learned"]
    assert diverged[0] == 0 and diverged[-1] > 0 and (np.diff(diverged) >= 0).all()
    mean, ci = snapshot.series["meta-learned"]
    assert np.isfinite(mean[0]) and np.isnan(mean[diverged > 0]).all() and np.isnan(ci[diverged > 0]).all()
    summary = summarise(scores, tuple(range(len(diverged))), "mse")
    assert [summary.diverged[s] for s in range(len(diverged))] == diverged.tolist()


def test_diverged_means_non_finite_or_far_above_the_starting_loss_and_stays_so():
    scores = torch.tensor([[1.0, 2.0, 0.001, 4.0],
                           [0.5, 150.0, 0.5, 5.0],      # task 1: 75x its start: not yet
                           [0.4, 250.0, 0.9, 1e30],     # task 1: 125x; task 3: 2.5e29x
                           [0.3, 1.0, 1.0, float("inf")]])  # task 1 back down: still counted
    mask = diverged_tasks(scores)
    assert mask.sum(1).tolist() == [0, 0, 2, 2]
    assert not mask[:, 2].any()   # starts at 0.001: scaled by the batch's median start (1.5), not its own
    assert diverged_tasks(torch.tensor([[0.0, 0.1], [1.0, float("nan")]]), "accuracy").sum(1).tolist() == [0, 1]
    mean, ci, count = mean_and_ci(scores)
    assert np.isfinite(mean[:2]).all() and np.isnan(mean[2:]).all() and count.tolist() == [0, 0, 2, 2]


def test_a_model_of_a_trainer_follows_its_training():
    trainer = trained(steps=1)
    model = LoadedModel.of_trainer(trainer)
    first = model.adaptation(5)
    trainer.step()
    second = model.adaptation(5)
    assert (first.iteration, second.iteration) == (1, 2)
    assert not np.array_equal(first.series["meta-learned"][0], second.series["meta-learned"][0])
    assert np.array_equal(first.series["scratch"][0], second.series["scratch"][0])   # same tasks, same fresh net


@pytest.mark.parametrize("family,params,kind", [("sinusoid", None, FunctionView), ("blobs", None, RegionsView),
                                                ("csv", GROWTH, DataView)])
def test_the_preview_draws_what_the_family_is(family, params, kind):
    trainer = trained(family, "maml", params, steps=1)
    preview = LoadedModel(trainer.config, trainer.weights(), trainer.family, iteration=1).preview(2)
    assert isinstance(preview.view, kind) and (preview.iteration, preview.task_index) == (1, 2)


def test_a_preview_from_weights_is_the_live_preview():
    trainer = trained()
    live = LoadedModel.of_trainer(trainer).preview(1).view
    saved = preview_from_weights(trainer.config, trainer.weights(), 1, trainer.iteration).view
    assert live.predictions == saved.predictions and len(live.predictions) == adaptation_steps(trainer.config) + 1
    fresh = preview_from_weights(trainer.config, None, 1).view
    assert fresh.truth == saved.truth and fresh.predictions != saved.predictions


def test_clicked_points_adapt_and_draw_a_curve_through_the_plot_span():
    trainer = trained()
    model = LoadedModel(trainer.config, trainer.weights())
    task = points_task(((-1.0, 0.5), (0.0, -1.0), (6.0, 2.0)))
    result, view = model.adapt_and_view(task, 5, x_range=(-2.0, 2.0))
    direct = adapt_weights(trainer.config, trainer.weights(), task.support_x, task.support_y, 5)
    assert result.support_losses == direct.support_losses and result.query_losses is None
    assert view.grid[0] == -2.0 and view.grid[-1] == 6.0 and len(view.predictions) == 6   # widened to the points
    assert all(np.isnan(view.truth))                                                  # clicked: no true function
    grid = torch.tensor(view.grid).reshape(1, -1, 1)
    adapted = {n: result.weights[f"model.{n}"] for n in model.params}
    assert np.allclose(model.predict(grid, adapted)[0, :, 0].numpy(), view.predictions[-1], atol=1e-5)


def test_every_family_answers_the_same_questions(tmp_path):
    from .test_families import _spec

    for name in FAMILIES:
        (tmp_path / name).mkdir()
        family = build_family(FamilySpec(name, GROWTH) if name == "csv" else _spec(name, tmp_path / name))
        batch = family.sample_held_out(2, 3, family.held_out_query(3, 4), torch.Generator().manual_seed(0))
        shape = tuple(family.input_shape or (family.input_dim,))
        assert batch.n_tasks == 2 and tuple(batch.support_x.shape[2:]) == shape and math.prod(shape) == family.input_dim
        assert isinstance(family.warnings, list) and family.kind in ("regression", "classification")
        assert (family.x_range is not None) == (name in ("sinusoid", "linear", "polynomial", "step", "formula"))
        assert family.tabular == (name == "csv")
        # statistics the inputs were standardised with: data read from files has them, generated data not
        assert (family.normalization is not None) == (name in ("csv", "labelled_csv", "images", "glyphs"))
        x = np.array([[1.0], [2.0]])
        assert np.allclose(family.denormalize_y(family.normalize_y(x[:, 0])), x[:, 0])
    csv = build_family(FamilySpec("csv", GROWTH))
    assert csv.held_out_query(3, 4) == min(100, csv.held_out().max_query(3))   # as many as every test task can give
    held = csv.sample_held_out(5, 3, 2, torch.Generator().manual_seed(0)).task_params["task"]
    assert torch.equal(held, csv.held_out().sample(5, 3, 2, torch.Generator().manual_seed(0)).task_params["task"])
    trained_on = csv.sample(50, 3, 2, torch.Generator().manual_seed(0)).task_params["task"]
    assert not set(held.tolist()) & set(trained_on.tolist())


def test_snapshots_keep_their_diverged_counts_on_disk_and_old_files_still_load():
    import json

    from maml_gui.session.project import snapshot_from_dict, snapshot_to_dict

    config = tiny_config("sinusoid", "maml", steps=2).replace("algorithm", inner_lr=3.0)
    snapshot = LoadedModel(config).adaptation(6)
    data = json.loads(json.dumps(snapshot_to_dict(snapshot), allow_nan=False))
    back = snapshot_from_dict(data)
    assert back.tasks == 6 and set(back.diverged) == set(snapshot.diverged)
    for name in snapshot.series:
        assert np.array_equal(back.diverged[name], snapshot.diverged[name])
        assert np.array_equal(back.series[name][0], snapshot.series[name][0], equal_nan=True)
    del data["diverged"], data["tasks"]   # a project saved before the counts existed
    old = snapshot_from_dict(data)
    assert old.diverged == {} and old.tasks == 0 and np.array_equal(old.steps, snapshot.steps)
