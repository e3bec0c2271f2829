"""The task view of image runs as plain data (``core.trained.task_views.EpisodeView``), without Qt: one
held-out episode, its images back in pixels, and the labels predicted after each adaptation step
equal to what the network itself outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.trained.adapt import held_out_task
from core.config import AlgorithmSpec, ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from core.trained.loaded_model import PREVIEW_SEED_OFFSET, LoadedModel, adaptation_steps
from core.trained.task_views import EpisodeView, display_images

GLYPHS = {"image_size": 12, "n_alphabets": 6, "characters": 4, "examples": 6, "n_way": 3}


def config(**model) -> ExperimentConfig:
    return ExperimentConfig(family=FamilySpec("glyphs", GLYPHS),
                            model=ModelSpec(name="conv4", conv_channels=4, conv_depth=2, **model),
                            algorithm=AlgorithmSpec("maml", inner_steps=1, inner_lr=0.4),
                            train=TrainSpec(meta_batch=2, shots=2, query=3, iterations=5))


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return LoadedModel(config())


def test_the_preview_of_an_image_family_is_one_episode(model):
    preview = model.preview(2)
    view = preview.view
    assert isinstance(view, EpisodeView) and preview.task_index == 2
    steps = adaptation_steps(model.config)
    assert view.steps == steps and view.n_way == 3
    assert view.support_images.shape == (3 * 2, 12, 12) and view.support_images.dtype == np.uint8
    assert view.query_images.shape == (3 * 3, 12, 12) and view.query_images.dtype == np.uint8
    assert view.support_labels.tolist() == [0, 0, 1, 1, 2, 2] and view.query_labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert view.predictions.shape == (steps + 1, 9) and view.accuracy.shape == (steps + 1,)
    assert len(set(view.class_names)) == 3 and all(n.startswith("alphabet") for n in view.class_names)
    # glyphs are dark strokes on a light ground: the pixels were de-normalised, not left standardized
    assert view.support_images.max() > 200 and view.support_images.min() < 80
    # the same task index gives the same episode; another gives another
    again = model.preview(2).view
    assert np.array_equal(again.query_images, view.query_images) and np.array_equal(again.predictions, view.predictions)
    assert not np.array_equal(model.preview(3).view.query_images, view.query_images)


def test_predicted_labels_are_the_networks_argmax_and_accuracy_follows(model):
    view = model.preview(0).view
    batch = model.held_out(1, model.config.train.seed + PREVIEW_SEED_OFFSET + 0)
    with torch.no_grad():   # step 0: the initialisation itself, on the whole query set
        logits = model.net.forward(model.params, batch.query_x[0])
    assert np.array_equal(view.predictions[0], logits.argmax(-1).numpy())
    trajectory = model.trajectory(batch.support_x, batch.support_y, view.steps)
    last = model.predict(batch.query_x, trajectory[-1])[0].argmax(-1).numpy()
    assert np.array_equal(view.predictions[-1], last)
    assert np.allclose(view.accuracy, (view.predictions == view.query_labels[None]).mean(1))
    # the shown images are the network's inputs, de-normalised
    assert np.array_equal(view.query_images, display_images(batch.query_x[0], model.family.normalization))


def test_display_images_undo_the_standardization():
    pixels = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean, std = [0.2, 0.5, 0.7], [0.3, 0.2, 0.1]
    x = (pixels.double() / 255 - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    shown = display_images(x, {"channel_mean": mean, "channel_std": std})
    assert shown.shape == (4, 5, 5, 3) and np.array_equal(shown, pixels.permute(0, 2, 3, 1).numpy())
    grey = display_images(torch.linspace(-1, 1, 25).reshape(1, 1, 5, 5), None)   # no statistics: stretched
    assert grey.shape == (1, 5, 5) and grey.min() == 0 and grey.max() == 255


def test_adapting_to_a_held_out_image_task_gives_its_episode(model):
    task = held_out_task(model.config, model.family, 0, 2)
    result, view = model.adapt_and_view(task, 3)
    assert isinstance(view, EpisodeView) and view.steps == 3
    assert np.allclose(view.accuracy, result.query_accuracy)
    assert len(result.support_losses) == 4


def test_rows_without_images_say_why_there_is_no_view(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["a,b,c,species"] + [f"{x:.3f},{y:.3f},{z:.3f},s{k}" for k in range(8) for x, y, z in rng.normal(size=(6, 3))]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    spec = FamilySpec("labelled_csv", {"path": str(tmp_path / "rows.csv"), "target": "species", "n_way": 2})
    preview = LoadedModel(ExperimentConfig(family=spec, train=TrainSpec(shots=1, query=2))).preview(0)
    assert preview.view is None and preview.note == "no task view for 3-dimensional rows"
