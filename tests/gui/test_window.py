"""The main window as a user drives it: controls, validity, files, runs, errors, closing.

Windows get a temporary QSettings file, tiny configs and fast worker options; tests wait on
signals or conditions and assert on the plots' data, never on pixels or sleeps.
"""

from __future__ import annotations

import csv
import json

import numpy as np
from PySide6.QtWidgets import QDockWidget

from core.storage.checkpoint import load_run
from core.config import AlgorithmSpec, FamilySpec, ModelSpec, TrainSpec
from core.training.trainer import MetaTrainer
from maml_gui.window.main_window import MainWindow
from maml_gui.jobs.training import live_threads

from .support import OPTIONS, tiny
from ..helpers import diverge_after


def received(window: MainWindow) -> list[int]:
    """Iterations the window received, by listening like the plots do."""
    its: list[int] = []
    window.session.controller.progress.connect(lambda chunk: its.extend(chunk.iterations.tolist()))
    return its


def wait_idle(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.session.controller.is_active(), timeout=10_000)


def test_start_stop_and_the_plots_hold_every_iteration(qtbot, make_window):
    window = make_window()
    its = received(window)
    assert window.actions.start.isEnabled() and not window.actions.stop.isEnabled()
    window.actions.start.trigger()
    qtbot.waitUntil(lambda: len(its) >= 20, timeout=10_000)
    assert window.actions.stop.isEnabled() and window.actions.pause.isEnabled()
    window.actions.stop.trigger()
    wait_idle(qtbot, window)
    assert its == list(range(1, len(its) + 1))
    qtbot.waitUntil(lambda: len(window.plots.loss.data()["raw"][0]) == len(its)
                    and [len(sx) for sx, _ in window.plots.steps.data()] == [len(its)] * 2, timeout=5000)
    x, y = window.plots.loss.data()["raw"]
    assert np.array_equal(x, its) and np.isfinite(y).all()
    run = window.session.runs.get(window.run_list.run_ids()[0])
    assert run.status == "stopped" and run.iteration == len(its) and run.weights
    # the final scores come from the background once Stop has answered
    qtbot.waitUntil(lambda: set(window.plots.adaptation.data()) == {"meta-learned", "pretrain", "scratch"},
                    timeout=20_000)
    assert window.plots.task.data()["truth"] is not None
    assert window.status.iteration.text().startswith(f"iteration {len(its):,}")
    assert window.actions.start.isEnabled() and not window.actions.stop.isEnabled()


def test_pause_step_resume_from_the_toolbar(qtbot, make_window):
    window = make_window()
    its = received(window)
    window.actions.start.trigger()
    qtbot.waitUntil(lambda: len(its) >= 3, timeout=10_000)
    with qtbot.waitSignal(window.session.controller.paused_changed, timeout=5000):
        window.actions.pause.trigger()
    assert window.actions.pause.isChecked() and window.actions.pause.text() == "Resume"
    paused_at = len(its)
    window.actions.step.trigger()
    qtbot.waitUntil(lambda: len(its) == paused_at + 1, timeout=5000)
    with qtbot.waitSignal(window.session.controller.paused_changed, timeout=5000):
        window.actions.start.trigger()   # Start resumes a paused run
    qtbot.waitUntil(lambda: len(its) > paused_at + 3, timeout=10_000)
    window.stop()
    wait_idle(qtbot, window)
    assert its == list(range(1, len(its) + 1))


def test_step_from_idle_runs_exactly_one_iteration(qtbot, make_window):
    window = make_window()
    its = received(window)
    window.actions.step.trigger()
    qtbot.waitUntil(lambda: its == [1] and window.session.controller.is_paused(), timeout=10_000)
    window.actions.stop.trigger()
    wait_idle(qtbot, window)
    assert its == [1] and window.session.runs.get(1).iteration == 1


def test_closing_while_training_stops_the_thread(qtbot, make_window, qtlog):
    window = make_window()
    its = received(window)
    window.show()
    window.start()
    qtbot.waitUntil(lambda: len(its) >= 5, timeout=10_000)
    assert window.close()
    assert not window.session.controller.is_active() and live_threads() == []
    assert not [r for r in qtlog.records if "QThread" in r.message or "Destroyed" in r.message]


def test_invalid_fields_disable_start_with_the_reason(qtbot, make_window):
    window = make_window()
    window.hyper_panel.hidden.setText("40,x")
    assert not window.actions.start.isEnabled() and not window.actions.step.isEnabled()
    assert "Hidden layers" in window.start_problem()   # named as the panel labels it
    assert window.problem_banner.label.text().startswith("Cannot start")
    window.hyper_panel.hidden.setText("8")
    assert window.actions.start.isEnabled() and window.start_problem() is None and window.problem_banner.isHidden()
    window.family_editor.set_spec(FamilySpec("sinusoid", {"amplitude": [5.0, 1.0]}))
    assert not window.actions.start.isEnabled()
    assert "amplitude" in window.start_problem()
    assert not window.problem_banner.isHidden()
    window.start()   # refused: no run
    assert not window.session.controller.is_active() and len(window.session.runs) == 0


def test_experiment_save_open_round_trip(qtbot, make_window, tmp_path):
    window = make_window()
    config = tiny(iterations=1234, family="polynomial").replace("algorithm", name="fomaml", inner_steps=3)
    window.set_config(config)
    saved = window.panel_config()
    path = window.files.save_experiment(tmp_path / "exp")
    assert path.name == "exp.json" and json.loads(path.read_text())["algorithm"]["name"] == "fomaml"
    window.files.new_experiment()
    fresh = window.panel_config()
    assert (fresh.family.name, fresh.model, fresh.algorithm, fresh.train) == ("sinusoid", ModelSpec(), AlgorithmSpec(), TrainSpec())
    assert window.files.open_experiment(path)
    assert window.panel_config() == saved and window.windowTitle().endswith("exp.json")
    assert str(path.resolve()) == window.recent.paths()[0]
    assert window.actions.recent.actions()[0].toolTip() == str(path.resolve())


def test_a_bad_experiment_file_changes_nothing(qtbot, make_window, tmp_path):
    window = make_window()
    before = window.panel_config()
    for name, text in (("broken.json", "{nope"), ("wrong.json", '{"train": {"shots": "ten"}}')):
        (tmp_path / name).write_text(text)
        assert not window.files.open_experiment(tmp_path / name)
        assert name in window.error_banner.text() and not window.error_banner.isHidden()
        assert window.panel_config() == before
    assert not window.files.open_experiment(tmp_path / "missing.json")
    assert "cannot read" in window.error_banner.text()
    window.hyper_panel.hidden.setText("40,x")
    assert window.files.save_experiment(tmp_path / "invalid.json") is None and not (tmp_path / "invalid.json").exists()
    assert "Hidden layers" in window.error_banner.text()


def run_to_end(qtbot, window: MainWindow, iterations: int) -> None:
    window.hyper_panel.iterations.setValue(iterations)
    with qtbot.waitSignal(window.session.controller.finished, timeout=15_000):
        window.start()
    wait_idle(qtbot, window)


def test_runs_are_kept_and_overlaid(qtbot, make_window):
    window = make_window()
    run_to_end(qtbot, window, 30)
    window.hyper_panel.algorithm.setCurrentIndex(window.hyper_panel.algorithm.findData("fomaml"))
    run_to_end(qtbot, window, 40)
    first, second = window.run_list.run_ids()
    assert window.session.runs.get(first).status == "completed" and window.session.runs.get(second).iteration == 40
    window.run_list.set_checked(first, True)
    window.run_list.set_checked(second, True)
    overlays = lambda: window.plots.loss.data()["overlays"]  # noqa: E731
    # the current run (the second) is the plot's own curve; the other ticked one is overlaid
    qtbot.waitUntil(lambda: [len(x) for x, _ in overlays().values()] == [30], timeout=5000)
    assert np.array_equal(window.plots.loss.data()["raw"][0], np.arange(1, 41))
    window.session.set_current(None)
    qtbot.waitUntil(lambda: [len(x) for x, _ in overlays().values()] == [30, 40], timeout=5000)
    assert np.array_equal(overlays()[window.run_list.name(second)][0], np.arange(1, 41))
    window.run_list.rename_run(first, "baseline try")
    qtbot.waitUntil(lambda: "baseline try" in window.plots.loss.data()["overlays"], timeout=5000)
    window.run_list.remove_run(second)
    qtbot.waitUntil(lambda: list(window.plots.loss.data()["overlays"]) == ["baseline try"], timeout=5000)
    assert window.session.runs.get(second) is None


def test_training_error_shows_a_message_and_the_app_stays_usable(qtbot, make_window, monkeypatch, tmp_path):
    diverge_after(monkeypatch, 6)
    window = make_window()
    with qtbot.waitSignal(window.session.controller.failed, timeout=10_000):
        window.start()
    wait_idle(qtbot, window)
    assert not window.error_banner.isHidden() and "nan at iteration 7" in window.error_banner.text()
    assert "weights from iteration 6 are kept" in window.error_banner.text()
    run = window.session.runs.get(1)
    assert run.status == "failed" and run.iteration == 6
    written = window.files.export_run_folder(tmp_path / "saved")
    config, weights = load_run(written)
    assert config == run.config and set(weights) == set(run.weights)
    assert (written / "metrics.csv").read_text().count("\n") == 7   # header + 6 iterations
    monkeypatch.undo()   # training works again
    its = received(window)
    window.start()
    qtbot.waitUntil(lambda: len(its) >= 10, timeout=10_000)
    assert window.error_banner.isHidden()
    window.stop()
    wait_idle(qtbot, window)


def test_meta_lr_applies_live_and_other_changes_ask_to_reset(qtbot, make_window, monkeypatch):
    applied = []
    original = MetaTrainer.set_meta_lr
    monkeypatch.setattr(MetaTrainer, "set_meta_lr", lambda self, lr: (applied.append(lr), original(self, lr)))
    window = make_window()
    its = received(window)
    window.start()
    qtbot.waitUntil(lambda: len(its) >= 3, timeout=10_000)
    window.hyper_panel.meta_lr.setValue(0.02)   # no prompt (confirm fails the test if asked)
    qtbot.waitUntil(lambda: applied == [0.02], timeout=5000)
    asked = []
    window.confirm = lambda title, text: asked.append(text) or False
    window.hyper_panel.inner_steps.setValue(3)
    assert asked and window.session.controller.is_active()
    assert window.hyper_panel.inner_steps.value() == 1 and window.hyper_panel.meta_lr.value() == 0.02
    window.confirm = lambda title, text: True
    window.hyper_panel.inner_steps.setValue(2)
    wait_idle(qtbot, window)
    assert window.panel_config().algorithm.inner_steps == 2
    # reset clears the live plots (their redraw follows within a frame)
    qtbot.waitUntil(lambda: window.plots.loss.data()["raw"][0].size == 0, timeout=5000)
    assert window.session.current is None


def test_exports_plots_and_curves(qtbot, make_window, tmp_path):
    window = make_window()
    run_to_end(qtbot, window, 15)
    for name in ("loss.png", "loss.svg"):
        path = window.files.export_plot("loss", tmp_path / name)
        assert path.stat().st_size > 500
    assert "<svg" in (tmp_path / "loss.svg").read_text()
    assert window.files.export_plot("task", tmp_path / "task.png").exists()
    path = window.files.export_curves(tmp_path / "curves.csv")
    rows = list(csv.reader(path.read_text().splitlines()))
    assert rows[0][:4] == ["run", "algorithm", "iteration", "meta_loss"] and len(rows) == 16


def test_blobs_show_decision_regions(qtbot, make_window):
    window = make_window(tiny(family="blobs"))
    its = received(window)
    window.step()
    qtbot.waitUntil(lambda: its == [1] and window.plots.task.data()["regions"] is not None, timeout=10_000)
    window.views.next_task()
    qtbot.waitUntil(lambda: "task #2" in window.plots.task_caption.text(), timeout=5000)
    window.stop()
    wait_idle(qtbot, window)
    assert window.plots.adaptation.plot.getPlotItem().getAxis("left").labelText.startswith("query accuracy")


def test_actions_have_icons_shortcuts_and_geometry_is_remembered(qtbot, make_window, settings):
    window = make_window()
    for action in (window.actions.start, window.actions.pause, window.actions.step, window.actions.stop,
                   window.actions.reset):
        assert not action.icon().isNull() and not action.shortcut().isEmpty()
    runs_dock = window.findChild(QDockWidget, "runs_dock")
    runs_dock.hide()
    window.close()
    assert settings.value("window/geometry") is not None and settings.value("window/state") is not None
    again = make_window()
    assert again.findChild(QDockWidget, "runs_dock").isHidden(), "dock layout restored from QSettings"


def test_gui_bench_reports_every_number(qtbot):
    import torch

    from maml_gui.gui_bench import run_gui_bench

    threads = torch.get_num_threads()
    try:
        result = run_gui_bench(0.6, config=tiny(), options=OPTIONS)
    finally:
        torch.set_num_threads(threads)
    for key in ("headless_it_s", "gui_it_s", "ratio", "latency_p50_ms", "latency_p95_ms", "latency_max_ms"):
        assert result[key] >= 0, key
    assert result["headless_it_s"] > 0 and result["gui_it_s"] > 0
    assert live_threads() == []
