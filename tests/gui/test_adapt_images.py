"""The Adapt panel on a folder of labelled images (issue 11, part 5): the folder is read on the job
thread, K images per class adapt a glyphs + conv-4 run and the others score it, shown as an episode
with the folders' names; bad folders give a message, never a traceback. The numbers are
``maml-gui adapt --images``'s (one implementation: :func:`core.trained.adapt.image_folder_task`). Waits are
on signals or conditions, never sleeps."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.trained.adapt import image_folder_task
from core.trained.loaded_model import adapt_weights
from core.storage.checkpoint import save_run
from core.config import AlgorithmSpec, ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from core.trained.task_views import EpisodeView
from core.tasks import build_family
from core.training.trainer import MetaTrainer
from maml_gui.adapt.view import AdaptView
from maml_gui.session.session import WeightsSource
from maml_gui.jobs.training import WorkerOptions


OPTIONS = WorkerOptions(eval_tasks=4, inspect_interval=0.3)
# every parameter stated: ExperimentConfig.changes fills in only ``fields`` defaults, not ``data_fields``
# ones, so a run lacking rotations/split would not count as the family the window shows once opened
GLYPHS = {"image_size": 12, "n_alphabets": 6, "characters": 4, "examples": 6, "n_way": 3, "rotations": False,
          "split": [0.64, 0.16, 0.2]}
NAMES = ["cat", "dog", "owl"]


def glyph_config() -> ExperimentConfig:
    return ExperimentConfig(family=FamilySpec("glyphs", GLYPHS),
                            model=ModelSpec(name="conv4", conv_channels=4, conv_depth=2),
                            algorithm=AlgorithmSpec("maml", inner_steps=1, inner_lr=0.4),
                            train=TrainSpec(meta_batch=2, shots=1, query=2, iterations=3, device="cpu"))


@pytest.fixture(scope="module")
def glyph_run(tmp_path_factory):
    """A run folder of a 3-way glyphs run (a few meta-iterations), and its trainer."""
    trainer = MetaTrainer(glyph_config())
    rows = [trainer.step() for _ in range(3)]
    path = tmp_path_factory.mktemp("runs") / "glyphs-run"
    save_run(path, trainer.config, trainer.weights(), rows)
    return path, trainer


def class_folders(root, names=NAMES, per_class: int = 5, side: int = 16, seed: int = 0):
    """``root/<name>/<i>.png``: grey pictures, one noisy pattern per class."""
    rng = np.random.default_rng(seed)
    for name in names:
        (root / name).mkdir(parents=True)
        pattern = rng.integers(0, 255, (4, 4))
        for i in range(per_class):
            noisy = np.clip(pattern + rng.normal(0, 25, (4, 4)), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).resize((side, side)).save(root / name / f"{i}.png")
    return root


def panel(qtbot, trainer) -> AdaptView:
    """The Adapt panel on its own, adapting ``trainer``'s weights."""
    source = WeightsSource(trainer.config, trainer.weights(), trainer.family, "the test run")
    view = AdaptView(lambda: source)
    qtbot.addWidget(view)
    return view


def adapted_to_folder(qtbot, view: AdaptView):
    qtbot.waitUntil(lambda: not view.is_busy() and view.result() is not None
                    and view.result().request.source == "images", timeout=30_000)
    return view.result()


def test_the_panel_adapts_to_a_folder_of_labelled_images_and_shows_the_episode(qtbot, make_window, tmp_path,
                                                                                  glyph_run):
    path, _ = glyph_run
    folder = class_folders(tmp_path / "pets")
    (folder / "dog" / "broken.png").write_bytes(b"not a png")   # skipped and counted, not fatal
    (folder / "notes.txt").write_text("the pets")                # not an image: ignored, and said so
    window = make_window()
    assert window.weights.open_weights(path)
    adapt = window.weights.show_adapt_view()
    item = adapt.source.model().item(adapt.source.findData("images"))
    assert item.isEnabled() and item.toolTip() == ""
    adapt.shots.setValue(2)
    assert adapt.set_image_folder(folder), adapt.weights_label.text()
    assert adapt.source_kind() == "images" and not adapt.pages["images"].isHidden()
    outcome = adapted_to_folder(qtbot, adapt)
    view = outcome.view
    assert isinstance(view, EpisodeView) and adapt.episode.view is view, adapt.message.text()
    assert view.class_names == NAMES and view.n_way == 3
    assert view.support_images.shape == (6, 12, 12) and view.query_images.shape == (9, 12, 12)   # 5 images a class
    assert np.bincount(view.support_labels).tolist() == [2, 2, 2]
    assert np.bincount(view.query_labels).tolist() == [3, 3, 3]
    assert not adapt.episode.isHidden() and adapt.function_plot.isHidden()
    assert adapt.episode.title.full_text() == "3-way 2-shot: pets"
    assert len(adapt.episode.cells()) == 9
    assert f"query accuracy after 0..{outcome.steps} steps" in adapt.episode.accuracy_label.text()
    assert "accuracy" in adapt.message.text() and "pets, K = 2 per class (6 support images)" in adapt.message.text()
    info = adapt.images_page.info.text()
    assert "3 classes: 0 cat · 1 dog · 2 owl" in info and "the other 9 score it" in info
    assert "skipped 1 of 16 image files" in info and "dog/broken.png" in info and "notes.txt" in info
    # the numbers are maml-gui adapt --images's, for the same K and seed
    run = window.session.current
    task = image_folder_task(folder, outcome.request.family, 2, 0)
    ref = adapt_weights(run.config, run.weights, task.support_x, task.support_y, outcome.steps,
                        family=outcome.request.family, query_x=task.query_x, query_y=task.query_y)
    assert outcome.result.query_accuracy == ref.query_accuracy
    assert outcome.result.support_losses == pytest.approx(ref.support_losses, rel=1e-6)
    # New draw: the next seed, other support images
    adapt.new_draw()
    assert adapt.images_page.seed.value() == 1
    qtbot.waitUntil(lambda: not adapt.is_busy() and adapt.result().request.seed == 1, timeout=30_000)
    assert not np.array_equal(adapt.result().view.support_images, view.support_images)
    # another folder that does not fit: its message, and the last folder's episode is gone
    with qtbot.waitSignal(adapt.failed, timeout=30_000):
        adapt.set_image_folder(class_folders(tmp_path / "zoo", ["a", "b", "c", "d"]))
    assert "zoo holds 4 classes" in adapt.message.text()
    assert adapt.result() is None and adapt.episode.view is None and adapt.images_page.info.text() == ""
    adapt.shutdown()


@pytest.mark.parametrize("make, says", [
    (lambda root: class_folders(root, ["a", "b", "c", "d"]), "holds 4 classes; the network tells apart 2 to 3"),
    (lambda root: class_folders(root, ["a"]), "holds 1 classes; the network tells apart 2 to 3"),
    (lambda root: class_folders(root, ["a", "b"], per_class=2), "class 'a' of data has 2 images; K (shots per "
                                                                "class) must be 1..2"),
    (lambda root: root, "does not exist"),
], ids=["more classes than N", "one class", "too few images for K", "no folder"])
def test_a_folder_that_does_not_fit_gives_a_message(qtbot, tmp_path, glyph_run, make, says):
    _, trainer = glyph_run
    view = panel(qtbot, trainer)
    view.shots.setValue(3)
    with qtbot.waitSignal(view.failed, timeout=30_000) as failed:
        view.set_image_folder(make(tmp_path / "data"))
    assert says in failed.args[0] and says in view.message.text()
    assert "color: #b00020" in view.message.styleSheet() and "Traceback" not in view.message.text()
    assert view.result() is None or view.result().request.source != "images"
    view.shutdown()


def test_every_image_in_the_support_set_leaves_nothing_to_score(qtbot, tmp_path, glyph_run):
    _, trainer = glyph_run
    view = panel(qtbot, trainer)
    view.shots.setValue(5)
    view.set_image_folder(class_folders(tmp_path / "pets"))
    outcome = adapted_to_folder(qtbot, view)
    assert outcome.view is None and outcome.task.query_x is None
    assert "none is left to score the adaptation (lower K)" in view.message.text()
    assert view.episode.view is None and view.function_plot.isHidden()
    view.shutdown()


def test_image_folders_are_offered_for_image_runs_only(qtbot, tmp_path):
    config = ExperimentConfig(family=FamilySpec("sinusoid"), model=ModelSpec(hidden=(8,)),
                              train=TrainSpec(meta_batch=2, shots=5, query=5))
    trainer = MetaTrainer(config)
    view = panel(qtbot, trainer)
    item = view.source.model().item(view.source.findData("images"))
    assert not item.isEnabled() and "trained on images" in item.toolTip()
    assert view.set_image_folder(class_folders(tmp_path / "pets")) is False
    assert "adapts a run trained on images" in view.message.text() and view.source_kind() == "held_out"
    view.shutdown()


def test_image_folder_task_refuses_a_run_not_trained_on_images(tmp_path):
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="adapts a run trained on images; this run learned"):
        image_folder_task(class_folders(tmp_path / "pets"), build_family(FamilySpec("sinusoid")), 2)


def test_a_label_without_a_class_is_named_so_in_the_tooltip(qtbot):
    """A 2-class folder on a 3-way run: the network may predict label 2, which no folder has."""
    from PySide6.QtCore import QPoint

    from maml_gui.widgets.episode_view import EpisodeWidget

    images = np.zeros((4, 8, 8), dtype=np.uint8)
    truth = np.array([0, 0, 1, 1])
    predictions = np.array([[2, 0, 1, 2]])
    view = EpisodeView(images[:2], np.array([0, 1]), ["cat", "dog"], images, truth, predictions,
                       (predictions == truth).mean(1))
    widget = EpisodeWidget()
    qtbot.addWidget(widget)
    widget.resize(400, 240)
    widget.show_episode(view, "a title far too long to fit in the bar beside the step and its slider " * 3)
    widget.show()
    qtbot.waitExposed(widget)
    first_query = next(t.rect for t in widget.canvas.tiles() if t.kind == "query")
    assert widget.canvas.hit(first_query.topLeft() + QPoint(1, 1)) == \
        "query image of label 0 (cat), wrong: predicted 2 (no class of this task)"
    title = widget.title
    assert title.text().endswith("…") and len(title.text()) < len(title.full_text())
    assert widget.minimumSizeHint().width() < 400
