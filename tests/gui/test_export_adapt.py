"""Weights out of and back into the window, and adapting them to a new task (issue 5, the GUI part).

The export dialog is driven through its own widgets; opening hostile or broken files must leave
the window exactly as it was; the adapt view's numbers must equal ``core.trained.loaded_model.adapt_weights``
called on weights that went through export and ``open_weights``. Waits are on signals, never sleeps.
"""

from __future__ import annotations

import io
import json
import os
import pickle

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPointF, Qt

from core.trained import export as core_export
from core.trained.adapt import support_rows, task_from_csv
from core.trained.loaded_model import adapt_weights
from core.storage.checkpoint import save_run
from core.config import ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from core.trained.export import config_sidecar, export_weights, readme_sidecar
from core.training.trainer import MetaTrainer
from core.trained.weights_io import open_weights
from maml_gui.window.main_window import MainWindow

from ..helpers import pretend_installed

HAS_ONNX = not core_export.missing_onnx_packages()


def tiny(algorithm: str = "maml", family: str = "sinusoid", hidden=(8,)) -> ExperimentConfig:
    return ExperimentConfig(family=FamilySpec(family), model=ModelSpec(hidden=hidden),
                            train=TrainSpec(meta_batch=2, shots=5, query=5, iterations=1_000_000)
                            ).replace("algorithm", name=algorithm, inner_lr=0.05)


def make_run(path, config: ExperimentConfig, iterations: int = 20, with_state: bool = False):
    """A run folder as the CLI writes it (config.json, weights.safetensors, metrics.csv and, with
    ``with_state``, training_state.safetensors)."""
    trainer = MetaTrainer(config.replace("train", device="cpu"))
    rows = [trainer.step() for _ in range(iterations)]
    save_run(path, trainer.config, trainer.weights(), rows, training_state=trainer.training_state() if with_state else None)
    return trainer


def assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def wait_idle(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.session.controller.is_active(), timeout=10_000)


def export_with_dialog(qtbot, window: MainWindow, fmt: str, path, source=None):
    dialog = window.weights.choose_export_weights(source)
    dialog.set_format(fmt)
    dialog.set_path(path)
    return dialog


def click_export(qtbot, dialog, timeout=30_000) -> None:
    with qtbot.waitSignal(dialog.finished, timeout=timeout):
        dialog.export_button.click()


# -- export ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["safetensors", "pt", pytest.param("onnx", marks=pytest.mark.skipif(
    not HAS_ONNX, reason="onnx/onnxscript not installed: bash install.sh --test installs them"))])
def test_export_dialog_writes_each_format(qtbot, make_window, tmp_path, fmt):
    window = make_window()
    with qtbot.waitSignal(window.session.controller.weights, timeout=10_000):
        window.step()                       # a real run: one meta-iteration, then paused
    window.stop()
    wait_idle(qtbot, window)
    run = window.session.runs.get(window.run_list.run_ids()[0])
    dialog = export_with_dialog(qtbot, window, fmt, tmp_path / "weights")
    click_export(qtbot, dialog)
    assert dialog.path().name == f"weights.{fmt}", "the format gives the suffix"
    out = tmp_path / f"weights.{fmt}"
    assert out.stat().st_size > 0 and readme_sidecar(out).exists()
    assert f"weights.{fmt}" in window.statusBar().currentMessage()
    if fmt == "onnx":
        return
    config, weights = open_weights(out)
    assert config == run.config
    expected = run.weights if fmt == "safetensors" else {k: v for k, v in run.weights.items() if k.startswith("model.")}
    assert_same({k: v for k, v in weights.items() if k in expected}, expected)
    assert config_sidecar(out).exists() == (fmt == "pt")


def test_an_existing_file_is_replaced_only_after_yes(qtbot, make_window, tmp_path):
    window = make_window()
    trainer = make_run(tmp_path / "run", tiny())
    assert window.weights.open_weights(tmp_path / "run")
    out = tmp_path / "w.safetensors"
    out.write_bytes(b"precious")
    asked = []
    window.confirm = lambda title, text: asked.append(text) or False
    dialog = export_with_dialog(qtbot, window, "safetensors", out)
    dialog.export_button.click()
    assert asked and "w.safetensors" in asked[0]
    assert dialog.isVisible() and "Nothing was written" in dialog.message.text()
    assert out.read_bytes() == b"precious" and not readme_sidecar(out).exists()
    window.confirm = lambda title, text: asked.append(text) or True
    click_export(qtbot, dialog)
    assert_same(open_weights(out)[1], trainer.weights())
    # the plain method asks too, and "No" leaves the file and its README alone
    before = out.read_bytes()
    window.confirm = lambda title, text: asked.append(text) or False
    assert window.weights.export_weights(out) is None and out.read_bytes() == before
    assert "README.txt" in asked[-1]


@pytest.mark.parametrize("hidden", [("onnxscript",), ("onnx", "onnxscript")])
def test_onnx_without_its_packages_says_what_to_install(qtbot, make_window, tmp_path, monkeypatch, hidden):
    pretend_installed(monkeypatch, {p: p not in hidden for p in ("onnx", "onnxscript")})
    expected = f"ONNX export needs the optional packages {', '.join(hidden)}: pip install 'maml-gui[onnx]'"
    window = make_window()
    make_run(tmp_path / "run", tiny())
    assert window.weights.open_weights(tmp_path / "run")
    dialog = export_with_dialog(qtbot, window, "onnx", tmp_path / "w.onnx")
    assert dialog.note.text() == expected
    assert not dialog.export_button.isEnabled()
    dialog.reject()
    assert window.weights.export_weights(tmp_path / "w.onnx", "onnx") is None
    assert expected in window.error_banner.text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("w.")) == []


def test_a_failed_write_shows_the_reason_and_leaves_no_file(qtbot, make_window, tmp_path, monkeypatch):
    window = make_window()
    make_run(tmp_path / "run", tiny())
    assert window.weights.open_weights(tmp_path / "run")
    dest = tmp_path / "out"
    dest.mkdir()

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    dialog = export_with_dialog(qtbot, window, "pt", dest / "w.pt")
    dialog.export_button.click()
    qtbot.waitUntil(lambda: "No space left on device" in dialog.message.text(), timeout=10_000)
    assert dialog.isVisible()
    assert dialog.export_button.isEnabled(), "the dialog is usable again"
    dialog.reject()
    assert window.weights.export_weights(dest / "w.safetensors") is None
    assert "No space left on device" in window.error_banner.text()
    assert os.listdir(dest) == []
    monkeypatch.undo()   # the disk has room again: closing writes the project without asking


def test_the_run_folder_export_asks_before_replacing(qtbot, make_window, tmp_path):
    window = make_window()
    make_run(tmp_path / "run", tiny())
    assert window.weights.open_weights(tmp_path / "run")
    folder = window.files.export_run_folder(tmp_path / "copy")
    assert open_weights(folder)[0] == window.session.runs.get(window.run_list.run_ids()[0]).config
    window.confirm = lambda title, text: False
    (folder / "config.json").write_text("mine")
    assert window.files.export_run_folder(folder) is None and (folder / "config.json").read_text() == "mine"


# -- open -----------------------------------------------------------------------------------------
def test_opening_a_run_folder_shows_its_experiment_and_training_continues_from_it(qtbot, make_window, tmp_path):
    config = tiny("metasgd", "polynomial", hidden=(8, 8)).replace("algorithm", inner_steps=2)
    trainer = make_run(tmp_path / "run", config, iterations=12)
    window = make_window()
    assert window.weights.open_weights(tmp_path / "run" / "config.json")   # a run folder, chosen by its settings file
    shown = window.panel_config()
    assert (shown.family.name, shown.model, shown.algorithm) == ("polynomial", config.model, config.algorithm)
    assert (shown.train.shots, shown.train.meta_batch) == (config.train.shots, config.train.meta_batch)
    current = window.weights.current_weights()
    assert_same(current.weights, trainer.weights())
    assert "run (opened)" in current.label and "iteration 12" in current.label
    qtbot.waitUntil(lambda: len(window.plots.loss.data()["raw"][0]) == 12, timeout=5000)   # drawn at ~30 Hz
    x, y = window.plots.loss.data()["raw"]
    assert np.array_equal(x, np.arange(1, 13)) and np.isfinite(y).all()
    qtbot.waitUntil(lambda: set(window.plots.adaptation.data()) == {"meta-learned", "scratch"}, timeout=10_000)
    assert window.plots.task.data()["truth"] is not None
    # Start (here Step) continues from the opened weights: one Adam step away from them
    with qtbot.waitSignal(window.session.controller.weights, timeout=10_000):
        window.step()
    qtbot.waitUntil(lambda: window.session.runs.get(window.run_list.run_ids()[-1]).weights_iteration == 1, timeout=10_000)
    window.stop()
    wait_idle(qtbot, window)
    new = window.session.runs.get(window.run_list.run_ids()[-1]).weights
    opened = trainer.weights()
    distance = max(float((new[k] - opened[k]).abs().max()) for k in opened)
    assert 0 < distance < 0.01, distance


def window_state(window: MainWindow):
    current = window.weights.current_weights()
    return (window.panel_config(), window.run_list.run_ids(), window.windowTitle(), window.session.current,
            {k: v.clone() for k, v in current.weights.items()} if current else None)


class Payload:
    """Unpickling this would create ``marker`` (it never may)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_cli_run_folder_continues_exactly_and_saves_a_resumable_folder(qtbot, make_window, tmp_path):
    """Open a run saved by ``maml-gui train``, step it three times: the same weights, bit for bit, as
    the engine resumed for three steps (Adam moments, task stream and iteration restored). Its run
    folder saved from the window then resumes on the command line just as exactly."""
    from core.storage.checkpoint import STATE_FILE, load_run
    from core.cli.main import main

    trainer = make_run(tmp_path / "run", tiny(hidden=(16,)), iterations=12, with_state=True)
    window = make_window()
    assert window.weights.open_weights(tmp_path / "run")
    window.hyper_panel.set_config(window.panel_config().replace("train", iterations=12))
    window.start()   # the run already has its 12 iterations: nothing starts, the status bar says why
    assert not window.session.controller.is_active() and "raise Iterations" in window.statusBar().currentMessage()
    window.hyper_panel.set_config(window.panel_config().replace("train", iterations=1000))
    for target in (13, 14, 15):
        window.step()
        qtbot.waitUntil(lambda: window.session.active is not None and window.session.active.training_state is not None
                        and window.session.active.weights_iteration == target, timeout=10_000)
    run = window.session.active
    window.stop()
    wait_idle(qtbot, window)
    for _ in range(3):
        trainer.step()
    assert_same(run.weights, trainer.weights())
    assert np.array_equal(run.history.iterations, np.arange(1, 16))   # the opened history carries on
    assert window.files.export_run_folder(tmp_path / "saved") is not None
    assert (tmp_path / "saved" / STATE_FILE).is_file()
    assert main(["train", "--resume", str(tmp_path / "saved"), "--iterations", "17"]) == 0
    for _ in range(2):
        trainer.step()
    assert_same(load_run(tmp_path / "saved")[1], trainer.weights())


def test_changed_settings_continue_from_the_weights_with_a_fresh_adam(qtbot, make_window, tmp_path):
    make_run(tmp_path / "run", tiny(hidden=(16,)), iterations=5, with_state=True)
    window = make_window()
    assert window.weights.open_weights(tmp_path / "run")
    window.hyper_panel.set_config(window.panel_config().replace("algorithm", inner_lr=0.02))
    assert window.session.training.continuation(window.panel_config())[1] is None
    assert window.session.training.continuation(window.panel_config().replace("algorithm", inner_lr=0.05)
                                       .replace("train", iterations=99, meta_lr=0.003))[1] is not None


def test_hostile_and_broken_files_are_refused_and_change_nothing(qtbot, make_window, tmp_path):
    trainer = make_run(tmp_path / "run", tiny())
    window = make_window(tiny("fomaml", hidden=(16,)))
    assert window.weights.open_weights(tmp_path / "run")
    qtbot.waitUntil(lambda: window.session.current.adaptation is not None, timeout=10_000)
    before = window_state(window)
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"layers.0.weight": Payload(marker)}, buf)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(buf.getvalue())
    config_sidecar(evil).write_text((tmp_path / "run" / "config.json").read_text())   # gets as far as torch.load
    (tmp_path / "raw.pt").write_bytes(pickle.dumps({"layers.0.weight": Payload(marker)}))
    config_sidecar(tmp_path / "raw.pt").write_text((tmp_path / "run" / "config.json").read_text())
    good = export_weights(tmp_path / "run", "safetensors", tmp_path / "good.safetensors")
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    pt = export_weights(tmp_path / "run", "pt", tmp_path / "good.pt")
    (tmp_path / "cut.pt").write_bytes(pt.read_bytes()[:300])
    config_sidecar(tmp_path / "cut.pt").write_text(config_sidecar(pt).read_text())
    make_run(tmp_path / "wide", tiny(hidden=(16,)))
    wide = export_weights(tmp_path / "wide", "pt", tmp_path / "wide.pt")
    config_sidecar(wide).write_text((tmp_path / "run" / "config.json").read_text())   # claims the 8-wide network
    newer = json.loads((tmp_path / "run" / "config.json").read_text())
    newer["format_version"] = 99
    (tmp_path / "new.pt").write_bytes(pt.read_bytes())
    config_sidecar(tmp_path / "new.pt").write_text(json.dumps(newer))
    cases = {"evil.pt": "holds objects other than tensors (possibly code); refused without running anything",
             "raw.pt": "refused without running anything",
             "cut.safetensors": "not a valid safetensors weights file (truncated or corrupted?)",
             "cut.pt": "not a valid PyTorch weights file (truncated or corrupted?)",
             "wide.pt": "model.layers.0.weight has shape (16, 1), the model needs (8, 1)",
             "new.pt": "format version 99; this app reads up to 1: update the app",
             "missing.safetensors": "missing.safetensors"}
    for name, message in cases.items():
        window.error_banner.hide()
        assert not window.weights.open_weights(tmp_path / name), name
        assert not window.error_banner.isHidden() and message in window.error_banner.text(), name
        after = window_state(window)
        assert after[:4] == before[:4], name
        assert_same(after[4], before[4])
    assert not marker.exists(), "the pickle's payload ran"
    assert trainer.iteration == 20


# -- adapt ----------------------------------------------------------------------------------------
def wait_adapted(qtbot, view, action, timeout=10_000):
    with qtbot.waitSignal(view.adapted, timeout=timeout) as blocker:
        action()
    return blocker.args[0]


def test_adapting_to_a_held_out_task_reproduces_the_engine_from_exported_weights(qtbot, make_window, tmp_path):
    make_run(tmp_path / "run", tiny("metasgd", hidden=(16, 16)), iterations=30)   # learned inner rates
    window = make_window()
    assert window.weights.open_weights(tmp_path / "run")
    view = window.weights.show_adapt_view()   # adapts to a held-out task at once
    qtbot.waitUntil(lambda: view.result() is not None, timeout=10_000)
    view.steps.setValue(6)
    outcome = wait_adapted(qtbot, view, view.new_task)
    assert outcome.task.title == "held-out task #2" and outcome.steps == 6 and len(outcome.task.support_x) == 5
    r = outcome.result
    assert r.query_losses[-1] < r.query_losses[0] and r.support_losses[-1] < r.support_losses[0]
    # the view draws what it computed
    steps, support = view.losses.data()["support"]
    assert np.array_equal(steps, np.arange(7)) and np.array_equal(support, np.asarray(r.support_losses))
    assert np.array_equal(view.losses.data()["query"][1], np.asarray(r.query_losses))
    assert view.losses.table.rowCount() == 7 and view.losses.table.item(6, 2).text() == f"{r.query_losses[6]:.6g}"
    assert sorted(view.function_plot.data()["predictions"]) == [0, 1, 2, 3, 4, 6]
    # export -> open_weights -> adapt_weights gives the same numbers, bit for bit
    out = window.weights.export_weights(tmp_path / "exported.safetensors")
    config, weights = open_weights(out)
    t = outcome.task
    direct = adapt_weights(config, weights, t.support_x, t.support_y, 6, query_x=t.query_x, query_y=t.query_y)
    assert direct.support_losses == r.support_losses and direct.query_losses == r.query_losses
    # export the adapted weights from the view; they open again and equal the view's
    view.export_button.click()
    dialog = window.weights.export_dialog
    assert "adapted to held-out task #2 (6 steps)" in dialog.what.text()
    dialog.set_path(tmp_path / "adapted")
    click_export(qtbot, dialog)
    _, adapted = open_weights(tmp_path / "adapted.safetensors")
    assert_same(adapted, r.weights)
    assert_same(adapted, direct.weights)


def test_clicked_points_adapt_a_curve_through_them(qtbot, make_window, tmp_path):
    make_run(tmp_path / "run", tiny(hidden=(16, 16)), iterations=10)
    window = make_window()
    assert window.weights.open_weights(tmp_path / "run")
    view = window.weights.show_adapt_view()
    view.set_source_kind("points")
    assert view.source_kind() == "points" and not view.shots.isEnabled()
    view.steps.setValue(5)
    view.add_point(-3.0, 1.0)
    view.add_point(0.0, -2.0)
    outcome = wait_adapted(qtbot, view, lambda: view.add_point(3.0, 1.5))
    assert outcome.task.title == "3 clicked points" and outcome.steps == 5 and view.shots.value() == 3
    assert outcome.task.query_x is None and outcome.result.query_losses is None
    xs, ys = view.function_plot.data()["points"]
    assert sorted(zip(xs.tolist(), ys.tolist())) == [(-3.0, 1.0), (0.0, -2.0), (3.0, 1.5)]
    assert view.function_plot.data()["predictions"][5][0].min() <= -3.0
    source = window.weights.current_weights()
    direct = adapt_weights(source.config, source.weights, torch.tensor([[-3.0], [0.0], [3.0]]),
                           torch.tensor([[1.0], [-2.0], [1.5]]), 5)
    assert direct.support_losses == outcome.result.support_losses
    # a real click on the plot adds a point where it lands
    vb = view.function_plot.plot.getPlotItem().vb
    scene_pos = vb.mapViewToScene(QPointF(1.0, 0.5))
    widget_pos = view.function_plot.plot.mapFromScene(scene_pos)
    with qtbot.waitSignal(view.adapted, timeout=10_000):
        qtbot.mouseClick(view.function_plot.plot.viewport(), Qt.MouseButton.LeftButton, pos=widget_pos)
    assert len(view.points()) == 4 and view.points()[-1] == pytest.approx((1.0, 0.5), abs=0.1)
    outcome = wait_adapted(qtbot, view, lambda: view.remove_point_near(0.1, -1.9))
    assert (0.0, -2.0) not in view.points() and len(outcome.task.support_x) == 3
    view.clear_points()
    assert view.result() is None and view.losses.data()["support"][0].size == 0
    assert view.function_plot.data()["points"][0].size == 0 and not view.export_button.isEnabled()
    assert "Click on the plot" in view.message.text()
    view.set_source_kind("held_out")
    assert view.shots.isEnabled() and view.shots.value() == 5, "K for held-out tasks comes back"
    qtbot.waitUntil(lambda: view.result() is not None, timeout=10_000)


def test_a_few_labeled_csv_rows_are_a_task(qtbot, make_window, tmp_path):
    make_run(tmp_path / "run", tiny(hidden=(16, 16)), iterations=10)
    window = make_window()
    assert window.weights.open_weights(tmp_path / "run")
    view = window.weights.show_adapt_view()
    qtbot.waitUntil(lambda: view.result() is not None, timeout=10_000)
    rows = "\n".join(f"{v},{2 * np.sin(v - 0.5):.5f},{i}" for i, v in enumerate(np.linspace(-4, 4, 12)))
    (tmp_path / "task.csv").write_text("dose,response,row\n" + rows + "\n")   # sorted by dose
    view.shots.setValue(4)
    view.steps.setValue(3)
    assert view.csv_page.seed.value() == 0
    outcome = wait_adapted(qtbot, view, lambda: view.set_csv(tmp_path / "task.csv", target="response",
                                                             features=["dose"]))
    # K rows drawn at random with the seed shown (as maml-gui adapt --seed 0), not the first K
    support, query = support_rows(12, 4, 0)
    assert outcome.task.support_rows == tuple(support.tolist()) != (0, 1, 2, 3)
    assert outcome.task.title == "task.csv: 4 of 12 rows drawn at random (seed 0) as support, the other 8 as query"
    task = task_from_csv(tmp_path / "task.csv", "response", ["dose"])
    source = window.weights.current_weights()
    direct = adapt_weights(source.config, source.weights, task.x[support], task.y[support], 3,
                           query_x=task.x[query], query_y=task.y[query])
    assert direct.query_losses == outcome.result.query_losses
    # the held-back rows are drawn (crosses, in the legend), the support rows as the support points
    qx, qy = view.function_plot.query_data()
    assert sorted(qx.tolist()) == pytest.approx(task.x[query, 0].tolist()) and len(qy) == 8
    assert sorted(view.function_plot.data()["points"][0].tolist()) == pytest.approx(task.x[support, 0].tolist())
    assert "held-back rows (query)" in [name for _, name in view.function_plot.legend.entries()]
    assert view.csv_page.info.text().startswith(f"support rows {', '.join(str(i + 1) for i in support.tolist())};")
    # another draw: other rows, the same again for the same seed
    again = wait_adapted(qtbot, view, view.new_draw)
    assert view.csv_page.seed.value() == 1 and again.task.support_rows != outcome.task.support_rows
    back = wait_adapted(qtbot, view, lambda: view.csv_page.seed.setValue(0))
    assert back.task.support_rows == outcome.task.support_rows
    assert back.result.query_losses == outcome.result.query_losses
    # a held-out task has no held-back rows to draw
    wait_adapted(qtbot, view, lambda: view.set_source_kind("held_out"))
    assert view.function_plot.query_data()[0].size == 0
    wait_adapted(qtbot, view, lambda: view.set_source_kind("csv"))
    with qtbot.waitSignal(view.failed, timeout=10_000) as blocker:
        view.csv_page.features.item(1).setCheckState(Qt.CheckState.Checked)    # two inputs for a 1-input network
    message = blocker.args[0]
    assert "the network takes 1 input(s)" in message and message in view.message.text()


def test_classification_tasks_show_decision_regions_and_no_clicking(qtbot, make_window, tmp_path):
    make_run(tmp_path / "run", tiny(family="blobs").replace("train", shots=2, query=3), iterations=5)
    window = make_window()
    assert window.weights.open_weights(tmp_path / "run")
    view = window.weights.show_adapt_view()
    qtbot.waitUntil(lambda: view.result() is not None, timeout=10_000)
    outcome = view.result()
    assert outcome.result.query_accuracy is not None and view.function_plot.data()["regions"] is not None
    assert "accuracy" in view.message.text() and view.losses.table.columnCount() == 4
    assert not view.source.model().item(view.source.findData("points")).isEnabled()
    # labeled rows of a file: the held-back ones drawn over the regions, in their class colours
    rng = np.random.default_rng(0)
    lines = [f"{a:.3f},{b:.3f},{kind}" for kind, (cx, cy) in (("cat", (-2, 0)), ("dog", (2, 1)), ("eel", (0, -2)))
             for a, b in rng.normal((cx, cy), 0.5, size=(5, 2))]
    (tmp_path / "labels.csv").write_text("x1,x2,kind\n" + "\n".join(lines) + "\n")
    view.shots.setValue(6)
    outcome = wait_adapted(qtbot, view, lambda: view.set_csv(tmp_path / "labels.csv", target="kind",
                                                             features=["x1", "x2"]))
    assert len(outcome.task.query_x) == 9 and view.function_plot.data()["regions"] is not None
    qx, qy = view.function_plot.query_data()
    assert np.allclose(qx, outcome.task.query_x[:, 0].numpy()) and np.allclose(qy, outcome.task.query_x[:, 1].numpy())
    assert [name for _, name in view.function_plot.legend.entries()] == ["held-back rows (query)"]


def test_a_bare_state_dict_takes_the_settings_shown_when_they_fit(qtbot, make_window, tmp_path):
    trainer = make_run(tmp_path / "run", tiny())
    pt = export_weights(tmp_path / "run", "pt", tmp_path / "bare.pt")
    config_sidecar(pt).unlink()
    window = make_window(tiny(hidden=(16,)))
    assert not window.weights.open_weights(pt)
    assert "no settings file next to it" in window.error_banner.text() and "needs (16, 1)" in window.error_banner.text()
    window.hyper_panel.hidden.setText("8")
    assert window.weights.open_weights(pt)
    model = {k: v for k, v in trainer.weights().items() if k.startswith("model.")}
    assert_same(window.weights.current_weights().weights, model)
    assert "carries no settings" in window.statusBar().currentMessage()
