"""Image runs in the window (issue 11): the episode task view, every other view on a glyphs +
conv4 run, the adapt view on image tasks, and a CSV with a label column imported as N-way
episodes over its labels. Waits are on signals or conditions, never sleeps."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint

from core.config import AlgorithmSpec, ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from core.trained.loaded_model import Preview
from core.trained.task_views import EpisodeView
from core.trained.weights_io import open_weights
from maml_gui.window.panels import PlotsArea
from maml_gui.jobs.training import WorkerOptions
from maml_gui.widgets.episode_view import RIGHT, WRONG, EpisodeWidget


OPTIONS = WorkerOptions(eval_tasks=4, inspect_interval=0.3)
GLYPHS = {"image_size": 12, "n_alphabets": 6, "characters": 4, "examples": 6, "n_way": 3}


def glyph_config(iterations: int = 6) -> ExperimentConfig:
    return ExperimentConfig(family=FamilySpec("glyphs", GLYPHS),
                            model=ModelSpec(name="conv4", conv_channels=4, conv_depth=2),
                            algorithm=AlgorithmSpec("maml", inner_steps=1, inner_lr=0.4),
                            train=TrainSpec(meta_batch=2, shots=1, query=2, iterations=iterations))


def episode(predictions) -> EpisodeView:
    """Two classes, one shot, two queries each; ``predictions`` [S + 1, 4]."""
    predictions = np.asarray(predictions)
    truth = np.array([0, 0, 1, 1])
    images = np.tile(np.arange(0, 256, 4, dtype=np.uint8).reshape(8, 8), (4, 1, 1))
    return EpisodeView(images[:2], np.array([0, 1]), ["circle", "square"], images, truth, predictions,
                       (predictions == truth).mean(1))


def drive(qtbot, dialog, change) -> None:
    """Make a change through a widget and wait for the dialog's verdict on it."""
    with qtbot.waitSignal(dialog.updated, timeout=20_000):
        change()
    qtbot.waitUntil(dialog.is_settled, timeout=20_000)


def wait_idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.session.controller.is_active(), timeout=60_000)


# -- the widget ----------------------------------------------------------------------------------
def test_the_episode_widget_marks_right_green_and_wrong_red_at_the_chosen_step(qtbot):
    widget = EpisodeWidget()
    qtbot.addWidget(widget)
    widget.resize(500, 300)
    widget.show()
    widget.show_episode(episode([[1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]]))
    assert widget.step() == 2 and widget.slider.maximum() == 2   # the last step by default
    assert [c["color"] for c in widget.cells()] == [RIGHT] * 4 and "100% right" in widget.step_label.text()
    widget.set_step(0)
    assert [(c["predicted"], c["color"]) for c in widget.cells()] == [(1, WRONG), (1, WRONG), (1, RIGHT), (0, WRONG)]
    assert widget.step_label.text() == "before adapting: 25% right"
    assert widget.accuracy_label.text() == "query accuracy after 0..2 steps: 25% · 75% · 100%"
    # the drawn frames carry the colours: a wrong image's frame is red, a right one's green
    image = widget.canvas.grab().toImage()
    queries = [t.rect for t in widget.canvas.tiles() if t.kind == "query"]
    frame = lambda r: image.pixelColor(r.left() - 1, r.center().y()).name()   # noqa: E731
    assert frame(queries[0]) == WRONG and frame(queries[2]) == RIGHT
    assert "wrong: predicted 1 (square)" in widget.canvas.hit(queries[0].topLeft() + QPoint(2, 2))
    # a new episode keeps the step the user chose
    widget.show_episode(episode([[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]))
    assert widget.step() == 0 and widget.cells()[3]["color"] == WRONG


def test_the_task_view_switches_between_episode_plot_and_note(qtbot):
    plots = PlotsArea()
    qtbot.addWidget(plots)
    plots.show_preview(Preview(5, 0, episode([[0, 0, 1, 1]])))
    assert plots.task_page() == "episode" and "iteration 5" in plots.task_caption.text()
    plots.show_preview(Preview(5, 0, None, "no task view for 4-dimensional rows"))
    assert plots.task_page() == "note" and plots.no_view.text() == "No task view for 4-dimensional rows"


# -- a glyphs + conv4 run in the window ------------------------------------------------------------
def test_an_image_run_updates_every_view_and_adapts(qtbot, make_window, tmp_path):
    config = glyph_config()
    window = make_window()
    window.set_config(config)
    qtbot.waitUntil(lambda: window.start_problem() is None, timeout=20_000)   # the glyphs are drawn in the background
    assert window.panel_config().model == config.model
    window.start()
    wait_idle(qtbot, window)
    assert not window.error_banner.isVisible(), window.error_banner.text()
    run = window.session.current
    assert run.status == "completed" and run.config.model.name == "conv4"
    qtbot.waitUntil(lambda: window.plots.task_page() == "episode" and window.plots.episode.view is not None,
                    timeout=10_000)
    view = window.plots.episode.view
    assert view.n_way == 3 and view.query_images.shape == (6, 12, 12)
    qtbot.waitUntil(lambda: len(window.plots.loss.data()["raw"][0]) == 6
                    and [len(sx) for sx, _ in window.plots.steps.data()] == [6] * 2, timeout=5_000)
    assert np.isfinite(window.plots.loss.data()["raw"][1]).all()
    assert "cross-entropy" in window.plots.loss.plot.getPlotItem().getAxis("left").labelText
    qtbot.waitUntil(lambda: set(window.plots.adaptation.data()) >= {"meta-learned", "scratch"},
                    timeout=20_000)   # the final scores are computed in the background
    assert "accuracy" in window.plots.adaptation.plot.getPlotItem().getAxis("left").labelText
    first = view.query_images.copy()
    window.plots.new_task_button.click()   # another episode
    qtbot.waitUntil(lambda: window.plots.episode.view is not view, timeout=10_000)
    assert not np.array_equal(window.plots.episode.view.query_images, first)
    window.run_list.set_checked(run.run_id, True)
    qtbot.waitUntil(lambda: len(window.plots.scores.rows()) == 2, timeout=5_000)
    # File → Export plot → task view: an episode is saved as the picture it is
    saved = window.files.export_plot("task", tmp_path / "episode.svg")
    assert saved == tmp_path / "episode.png" and saved.stat().st_size > 1000
    # export weights, then adapt the run to a held-out episode
    out = window.weights.export_weights(tmp_path / "glyphs.safetensors")
    exported_config, weights = open_weights(out)
    assert exported_config.model.name == "conv4" and weights
    adapt = window.weights.show_adapt_view()
    try:
        qtbot.waitUntil(lambda: adapt.result() is not None, timeout=20_000)
    except Exception:
        raise AssertionError(f"no adaptation: {adapt.message.text()!r}, source {adapt.source_kind()}") from None
    outcome = adapt.result()
    assert outcome is not None, adapt.message.text()
    assert isinstance(outcome.view, EpisodeView) and "accuracy" in adapt.message.text()
    assert not adapt.episode.isHidden() and adapt.function_plot.isHidden()
    assert adapt.episode.view is outcome.view
    assert not adapt.source.model().item(adapt.source.findData("csv")).isEnabled()
    adapt.shutdown()


# -- a CSV with a label column -------------------------------------------------------------------------
def test_a_labelled_csv_is_imported_as_episodes_over_its_labels(qtbot, make_window, tmp_path):
    rng = np.random.default_rng(1)
    centres = rng.normal(scale=3, size=(12, 3))
    rows = [f"{i},{x:.4f},{y:.4f},{z:.4f},species {k}" for i, (k, (x, y, z)) in
            enumerate((k, centres[k] + rng.normal(size=3)) for k in range(12) for _ in range(8))]
    path = tmp_path / "species.csv"
    path.write_text("row,a,b,c,species\n" + "\n".join(rows) + "\n")
    window = make_window()
    dialog = window.csv.import_csv([str(path)])
    qtbot.waitUntil(dialog.is_settled, timeout=20_000)
    assert dialog.form.layout_labels.isChecked() and dialog.form.target.currentText() == "species"
    assert "'species' (12 labels)" in dialog.form.layout_labels.toolTip()
    assert not dialog.form.regression.isEnabled() and dialog.form.classification.isChecked()
    assert "12 labels of 'species'" in dialog.split_label.text()
    assert dialog.shots_query() == (4, 4) and dialog.ok_button.isEnabled()   # 8 rows a label: 5 + 5 would not fit
    hint = dialog.form.sizes_hint.text()
    assert "keeps 12 of 12 labels" in hint and "labels have 8 rows" in hint
    drive(qtbot, dialog, lambda: dialog.form.query.setValue(5))
    assert not dialog.ok_button.isEnabled() and "shots 4 + query 5 per label" in dialog.problem()
    dialog.form.shots.setValue(1)
    dialog.form.query.setValue(2)
    qtbot.waitUntil(lambda: dialog.is_settled() and dialog.ok_button.isEnabled(), timeout=20_000)
    assert "keeps 12 of 12 labels" in dialog.form.sizes_hint.text()
    dialog.ok_button.click()
    spec = window.family_editor.spec()
    assert spec.name == "labelled_csv" and spec.params["target"] == "species" and spec.params["path"] == str(path)
    assert spec.params["n_way"] >= 2 and "a" in spec.params["features"]
    qtbot.waitUntil(lambda: window.start_problem() is None, timeout=20_000)   # the file is read in the background
    config = window.panel_config().replace("train", iterations=4, meta_batch=2)
    window.session.training.start(config)
    wait_idle(qtbot, window)
    assert not window.error_banner.isVisible(), window.error_banner.text()
    assert window.session.current.status == "completed"
    qtbot.waitUntil(lambda: len(window.plots.loss.data()["raw"][0]) == 4, timeout=5_000)
    qtbot.waitUntil(lambda: window.plots.task_page() == "note", timeout=10_000)
    assert "4-dimensional rows" in window.plots.no_view.text()


def test_a_narrow_episode_keeps_its_images_readable_its_names_whole_and_labels_off_the_images(qtbot):
    """The Adapt panel's column: 5-way 1-shot with 15 queries a class and long class names."""
    from maml_gui.widgets.episode_view import MIN_CELL

    n, q = 5, 15
    names = [f"alphabet_{i:02d}/character_{14 + i}" for i in range(n)]
    support = np.full((n, 12, 12), 255, dtype=np.uint8)          # white images: a badge on one would show
    truth = np.repeat(np.arange(n), q)
    predictions = np.stack([truth, (truth + 1) % n])              # every query right, then every one wrong
    view = EpisodeView(support, np.arange(n), names, np.full((n * q, 12, 12), 255, dtype=np.uint8), truth,
                       predictions, (predictions == truth).mean(1))
    widget = EpisodeWidget()
    qtbot.addWidget(widget)
    widget.resize(370, 330)
    widget.show()
    qtbot.waitExposed(widget)
    widget.show_episode(view)
    canvas = widget.canvas
    tiles = canvas.tiles()
    assert len(tiles) == n + n * q
    assert all(t.rect.width() >= MIN_CELL and t.rect.height() >= MIN_CELL for t in tiles)
    assert all(t.rect.right() < canvas.width() for t in tiles), "nothing is cut off at the right"
    rects = [t.rect for t in tiles]
    assert not any(a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1:])
    assert [canvas.name_text(c) for c in range(n)] == [f"{c}  {names[c]}" for c in range(n)]
    # the predicted label is written below each query image: the image itself stays as it is, corners included
    image = canvas.grab().toImage()
    for t in tiles:
        r = t.rect
        for x, y in ((r.right() - 2, r.bottom() - 2), (r.center().x(), r.center().y()), (r.left() + 2, r.top() + 2)):
            assert image.pixelColor(x, y).name() == "#ffffff", (t, x, y)
    assert "wrong: predicted 1" in canvas.hit(QPoint(tiles[n].rect.center().x(), tiles[n].rect.bottom() + 6))
    # the episode needs more height than it has here: it scrolls rather than shrinking the images
    assert canvas.height() > widget.scroll.viewport().height()


def test_the_fresh_networks_episode_follows_k_as_it_is_edited(qtbot, make_window):
    """No run selected: the task view shows an untrained network on the settings shown, so its
    episode has the K of the panel ("10-shot" does not stay after K is set to 1)."""
    window = make_window()
    window.set_config(glyph_config().replace("train", shots=3))
    qtbot.waitUntil(lambda: window.start_problem() is None, timeout=20_000)
    episode_widget = window.plots.episode
    qtbot.waitUntil(lambda: episode_widget.view is not None and episode_widget.title.full_text().startswith(
        "3-way 3-shot"), timeout=20_000)
    window.hyper_panel.shots.setValue(1)
    qtbot.waitUntil(lambda: episode_widget.title.full_text().startswith("3-way 1-shot"), timeout=20_000)
    assert len(episode_widget.view.support_labels) == 3
