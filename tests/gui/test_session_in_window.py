"""The window over its session: runs come back after closing, every view and action follows the
current run, a change of family clears what no longer applies, compared runs on every plot."""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from core.training.trainer import MetaTrainer
from core.storage.checkpoint import save_run
from maml_gui.session.overlays import run_color
from maml_gui.session.runs import curves_csv

from ..helpers import copy_as_crashed
from .support import tiny
from .test_window import run_to_end


def scored(qtbot, window, run_id) -> None:
    qtbot.waitUntil(lambda: window.session.runs.get(run_id).adaptation is not None, timeout=20_000)


def test_three_runs_come_back_after_closing(qtbot, make_window, tmp_path):
    window = make_window(project=tmp_path / "proj")
    for iterations in (15, 20, 25):
        run_to_end(qtbot, window, iterations)
    ids = window.run_list.run_ids()
    curves = {i: window.session.runs.get(i).history.meta_losses.copy() for i in ids}
    window.run_list.set_checked(ids[0], True)
    window.close()

    again = make_window(project=tmp_path / "proj")
    assert again.run_list.run_ids() == ids
    assert again.run_list.checked() == [ids[0]]
    for i in ids:
        np.testing.assert_array_equal(again.session.runs.get(i).history.meta_losses, curves[i])
    # the last run is current again, and the plots show its curve
    assert again.session.current.run_id == ids[-1]
    qtbot.waitUntil(lambda: len(again.plots.loss.data()["raw"][0]) == 25, timeout=5000)
    assert "current: run 3" in again.current_label.text()


def test_the_launch_reopens_the_last_project(qtbot, make_window, settings, tmp_path):
    from maml_gui.window.main_window import default_project

    window = make_window(project=tmp_path / "elsewhere")
    assert default_project(settings) == tmp_path / "elsewhere"
    window.close()


def test_export_and_adapt_act_on_the_current_run(qtbot, make_window, tmp_path):
    window = make_window()
    run_to_end(qtbot, window, 10)
    first = window.run_list.run_ids()[0]
    window.run_list.table.selectRow(0)      # the user selects run 1 ...
    assert window.session.current.run_id == first
    run_to_end(qtbot, window, 12)           # ... then trains run 2: it is current, and Export offers it
    second = window.run_list.run_ids()[1]
    assert window.session.current.run_id == second
    assert window.weights.current_weights().label.startswith(window.session.runs.get(second).name)
    view = window.weights.show_adapt_view()
    qtbot.waitUntil(lambda: view.result() is not None, timeout=20_000)
    assert window.session.runs.get(second).name in view.weights_label.text()

    window.run_list.table.selectRow(0)      # selecting run 1 makes it current everywhere
    assert window.session.current.run_id == first
    assert window.session.runs.get(first).name in view.weights_label.text()
    qtbot.waitUntil(lambda: view.result() is not None
                    and view.result().request.weights is window.session.runs.get(first).weights, timeout=20_000)

    trainer = MetaTrainer(tiny(5))
    trainer.step()
    save_run(tmp_path / "cli-run", trainer.config, trainer.weights(), [])
    assert window.weights.open_weights(tmp_path / "cli-run")
    opened = window.session.current
    assert opened.name == "cli-run (opened)" and window.run_list.run_ids()[-1] == opened.run_id
    assert "cli-run" in window.current_label.text() and "cli-run" in view.weights_label.text()
    dialog = window.weights.choose_export_weights()
    assert dialog.path().name == "cli-run.safetensors"
    dialog.reject()


def test_changing_the_family_clears_the_plots_of_a_run_trained_on_another(qtbot, make_window):
    window = make_window()
    run_to_end(qtbot, window, 15)
    qtbot.waitUntil(lambda: len(window.plots.loss.data()["raw"][0]) == 15, timeout=5000)
    window.family_editor.set_spec(tiny(family="linear").family)
    assert window.session.current is None
    qtbot.waitUntil(lambda: len(window.plots.loss.data()["raw"][0]) == 0
                    and all(len(x) == 0 for x, _ in window.plots.steps.data()), timeout=5000)
    assert window.plots.adaptation.data() == {}
    assert "no run selected" in window.current_label.text()


def test_compared_runs_overlay_on_every_plot_in_their_colour(qtbot, make_window):
    window = make_window()
    for iterations in (10, 12, 14):
        run_to_end(qtbot, window, iterations)
    ids = window.run_list.run_ids()
    for i in ids:
        scored(qtbot, window, i)
        window.run_list.set_checked(i, True)
    window.session.set_current(None)   # with no current run, every compared run is an overlay
    names = [window.session.runs.get(i).name for i in ids]
    qtbot.waitUntil(lambda: list(window.plots.loss.overlay_data()) == names and [
        len(x) for x, _ in window.plots.loss.overlay_data().values()] == [10, 12, 14], timeout=5000)
    assert list(window.plots.steps.overlay_data()) == names
    assert list(window.plots.adaptation.overlay_data()) == names
    for plot in (window.plots.loss, window.plots.steps, window.plots.adaptation):
        curves = plot.overlay_curves()
        assert [curves[n].opts["pen"].color().name() for n in names] == [run_color(i) for i in ids]
    rows = window.plots.scores.rows()
    assert rows[0][0] == "run" and [r[0] for r in rows[1:]] == names
    window.run_list.table.selectRow(1)   # the current run is drawn as itself, not twice; it heads the table
    qtbot.waitUntil(lambda: list(window.plots.loss.overlay_data()) == [names[0], names[2]], timeout=5000)
    assert [r[0] for r in window.plots.scores.rows()[1:]] == [names[1], names[0], names[2]]
    csv_text = window.plots.scores.to_csv()
    assert csv_text.splitlines()[0].startswith("run,metric,mean_0")


def test_new_and_open_ask_before_replacing_edited_settings(qtbot, make_window, tmp_path):
    window = make_window()
    saved = window.files.save_experiment(tmp_path / "exp.json")
    window.hyper_panel.inner_steps.setValue(3)           # an edit no file holds
    asked = []
    window.confirm = lambda title, text: asked.append(text) or False
    assert not window.files.open_experiment(saved)
    assert not window.files.new_experiment()
    assert len(asked) == 2 and "not saved" in asked[0]
    assert window.panel_config().algorithm.inner_steps == 3, "No keeps the edit"
    window.confirm = lambda title, text: asked.append(text) or True
    assert window.files.open_experiment(saved) and len(asked) == 3
    assert window.panel_config().algorithm.inner_steps == 1
    assert window.files.new_experiment() and len(asked) == 3, "unedited settings are replaced without asking"


def test_the_edited_settings_come_back_with_the_project(qtbot, make_window, settings, tmp_path):
    from maml_gui.window.main_window import MainWindow

    window = make_window(project=tmp_path / "proj")
    window.hyper_panel.hidden.setText("64,64")
    window.hyper_panel.inner_steps.setValue(3)
    qtbot.waitUntil(lambda: window.session.editing.model.hidden == (64, 64), timeout=5000)
    window.close()
    again = MainWindow(settings=settings, project=tmp_path / "proj")   # as at launch: no settings given
    qtbot.addWidget(again)
    assert again.panel_config().model.hidden == (64, 64) and again.panel_config().algorithm.inner_steps == 3
    assert again.shutdown()


def test_the_legend_says_how_many_updates_the_baseline_had(qtbot, make_window):
    window = make_window()
    run_to_end(qtbot, window, 40)
    legend = lambda: [name for _, name in window.plots.adaptation.legend.entries()]  # noqa: E731
    qtbot.waitUntil(lambda: "pretrain (40 updates)" in legend(), timeout=30_000)
    assert window.session.current.adaptation.baseline_iterations == 40


def test_a_pretrain_run_is_not_called_meta_learned(qtbot, make_window):
    window = make_window(tiny().replace("algorithm", name="pretrain"))
    run_to_end(qtbot, window, 20)
    legend = lambda: [name for _, name in window.plots.adaptation.legend.entries()]  # noqa: E731
    qtbot.waitUntil(lambda: "pretrain (this run)" in legend(), timeout=20_000)
    assert "meta-learned" not in legend() and not any(n.startswith("pretrain (") and "updates" in n for n in legend())


def test_a_run_a_crash_interrupted_is_offered_to_continue(qtbot, make_window, tmp_path):
    window = make_window(tiny(60), project=tmp_path / "proj")
    run = window.session.training.start(tiny(60), paused=True, steps=20)
    qtbot.waitUntil(lambda: run.checkpoint_iteration == 20, timeout=20_000)
    window.session.save_run(run)
    assert window.session.flush()
    copy_as_crashed(tmp_path / "proj", tmp_path / "crashed")   # what a window killed while training leaves
    window.stop()
    qtbot.waitUntil(lambda: not window.session.is_training(), timeout=20_000)

    again = make_window(tiny(5), project=tmp_path / "crashed")
    back = again.session.runs.get(run.run_id)
    assert back.status == "interrupted"
    assert not again.resume_banner.isHidden() and "interrupted" in again.resume_banner.text()
    assert again.actions.continue_run.isEnabled()
    with qtbot.waitSignal(again.session.controller.running_changed, timeout=20_000,
                          check_params_cb=lambda active: not active):
        again.resume_banner.button.click()
    assert back.status == "completed" and back.iteration == 60 and len(again.session.runs) == 1
    assert again.panel_config().train == run.config.train and again.resume_banner.isHidden()
    assert not again.actions.continue_run.isEnabled()   # nothing left to continue


def test_one_window_per_project_and_the_command_line_keeps_off_its_runs(qtbot, make_window, tmp_path):
    from core.cli.main import main as cli

    first = make_window(project=tmp_path / "proj")
    run_to_end(qtbot, first, 10)
    run = first.session.current
    second = make_window(project=tmp_path / "proj")   # the same project: refused, a sibling is used instead
    assert second.session.project.folder == tmp_path / "proj-2"
    assert "proj-2" in second.error_banner.text() and str(os.getpid()) in second.error_banner.text()
    assert len(second.session.runs) == 0
    # a headless resume of a run the window holds is refused at once
    assert cli(["train", "--resume", str(tmp_path / "proj" / run.folder)]) == 2
    first.close()
    third = make_window(project=tmp_path / "proj")     # free again once the first window closed
    assert third.session.project.folder == tmp_path / "proj" and len(third.session.runs) == 1


def test_a_crashed_windows_lock_is_taken_over(qtbot, make_window, tmp_path):
    from core.storage.lock import LOCK_FILE

    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / LOCK_FILE).write_text(json.dumps(
        {"pid": 999_999_999, "host": socket.gethostname(), "started": "2026-01-01T00:00:00", "command": "x"}))
    window = make_window(project=tmp_path / "proj")
    assert window.session.project.folder == tmp_path / "proj"
    assert str(os.getpid()) in (tmp_path / "proj" / LOCK_FILE).read_text()


def test_a_dropped_sweep_folder_shows_every_run(qtbot, make_window, tmp_path):
    from PySide6.QtCore import QMimeData, QUrl

    from core.cli.main import main as cli

    for seed in (0, 1):
        assert cli(["train", "--family", "linear", "--iterations", "30", "--meta-batch", "2", "--seed", str(seed),
                    "--out", str(tmp_path / "sweep" / "runs" / f"base-seed{seed}")]) == 0
    window = make_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "sweep"))])
    assert window.weights.drop_target(mime) == tmp_path / "sweep"
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path))])
    assert window.weights.drop_target(mime) is None   # not a run or sweep folder: the CSV import's
    assert window.weights.follow(tmp_path / "sweep")
    runs = [window.session.runs.get(i) for i in window.run_list.run_ids()]
    assert [r.name for r in runs] == ["sweep/base-seed0", "sweep/base-seed1"]   # its state has a column
    qtbot.waitUntil(lambda: all(r.status == "completed" and r.iteration == 30 for r in runs), timeout=20_000)
    qtbot.waitUntil(lambda: window.run_list.status(runs[1].run_id) == "completed", timeout=5000)
    assert window.session.current is runs[0] and window.session.compared == [runs[1].run_id]
    qtbot.waitUntil(lambda: len(window.plots.loss.data()["raw"][0]) == 30, timeout=5000)


def cli_run(folder, seed: int = 0, iterations: int = 30, **flags) -> None:
    from core.cli.main import main as cli

    extra = [a for key, value in flags.items() for a in (f"--{key.replace('_', '-')}", str(value))]
    assert cli(["train", "--family", "linear", "--iterations", str(iterations), "--meta-batch", "2",
                "--seed", str(seed), *extra, "--out", str(folder)]) == 0


def test_followed_runs_come_back_current_and_compared_under_unique_names(qtbot, make_window, tmp_path):
    """Two sweeps' seeds share folder names, as do two run folders: every run still gets a name of
    its own, without its state in it, and relaunching brings back the current and ticked runs."""
    for sweep in ("sweep-a", "sweep-b"):
        cli_run(tmp_path / sweep / "runs" / "base-seed1", seed=1)
    for parent in ("x", "y"):
        cli_run(tmp_path / parent / "run")
    window = make_window(project=tmp_path / "proj")
    s = window.session
    for folder in ("sweep-a", "sweep-b", "x/run", "y/run"):
        s.follow(tmp_path / folder)
    runs = [s.runs.get(i) for i in window.run_list.run_ids()]
    names = ["sweep-a/base-seed1", "sweep-b/base-seed1", "run", "run (2)"]
    assert [r.name for r in runs] == names
    qtbot.waitUntil(lambda: all(window.run_list.status(r.run_id) == "completed" for r in runs), timeout=20_000)
    s.set_current(runs[1].run_id)
    window.run_list.set_checked(runs[0].run_id, True)
    window.run_list.set_checked(runs[3].run_id, True)
    qtbot.waitUntil(lambda: list(window.plots.loss.overlay_data()) == [names[0], names[3]], timeout=5000)
    assert [label.text for _, label in window.plots.loss.legend.items][0] == names[1]
    assert {line.split(",")[0] for line in curves_csv([runs[1], runs[3]]).splitlines()[1:]} == {names[1], names[3]}
    window.close()

    again = make_window(project=tmp_path / "proj")
    back = again.session
    assert [back.runs.get(i).name for i in again.run_list.run_ids()] == names
    assert back.current.run_id == runs[1].run_id
    assert back.compared == [runs[0].run_id, runs[3].run_id]
    assert again.run_list.checked() == [runs[0].run_id, runs[3].run_id]
    qtbot.waitUntil(lambda: again.run_list.status(runs[3].run_id) == "completed", timeout=20_000)


def test_an_older_projects_following_suffix_is_not_part_of_the_name(qtbot, make_window, tmp_path):
    cli_run(tmp_path / "run")
    index = {"format": 1, "runs": [{"id": 4, "name": "base-seed1 (following)", "external": str(tmp_path / "run"),
                                    "origin": "followed"}], "current": 4, "compared": []}
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "project.json").write_text(json.dumps(index))
    window = make_window(project=tmp_path / "proj")
    assert window.session.current.name == "base-seed1" and window.session.current.run_id == 4


def test_runs_list_sorts_by_settings_and_a_rename_and_note_are_saved_with_the_project(qtbot, make_window, tmp_path):
    cli_run(tmp_path / "slow", meta_lr=0.0005)
    cli_run(tmp_path / "fast", meta_lr=0.02)
    window = make_window(project=tmp_path / "proj")
    s, runs_list = window.session, window.run_list
    slow, = s.follow(tmp_path / "slow")
    fast, = s.follow(tmp_path / "fast")
    qtbot.waitUntil(lambda: slow.adaptation is not None and fast.adaptation is not None, timeout=30_000)
    qtbot.waitUntil(lambda: runs_list.cell(fast.run_id, "Held-out") != "–", timeout=5000)
    assert runs_list.cell(slow.run_id, "meta lr") == "0.0005" and runs_list.cell(fast.run_id, "meta lr") == "0.02"
    assert runs_list.cell(fast.run_id, "K") == str(fast.config.train.shots)
    assert float(runs_list.cell(fast.run_id, "Held-out")) == pytest.approx(fast.held_out[0], rel=1e-3)
    assert runs_list.cell(fast.run_id, "Iterations") == "30"
    column = runs_list.table.horizontalHeaderItem
    meta_lr = next(c for c in range(runs_list.table.columnCount()) if column(c).text() == "meta lr")
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    header = runs_list.table.horizontalHeader()
    runs_list.table.scrollTo(runs_list.table.model().index(0, meta_lr))
    click = QPoint(header.sectionViewportPosition(meta_lr) + 5, header.height() // 2)
    orders = []
    for _ in range(2):   # a click on the header sorts by it, a second click the other way round
        QTest.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=click)
        orders.append(runs_list.run_ids())
    assert {tuple(o) for o in orders} == {(fast.run_id, slow.run_id), (slow.run_id, fast.run_id)}

    # the current run renamed by a double-click edit: its legend, the compare table and curves.csv follow
    assert s.current is fast
    name_item = runs_list.table.item(runs_list.run_ids().index(fast.run_id), 0)
    name_item.setText("high meta lr")
    assert fast.name == "high meta lr"
    qtbot.waitUntil(lambda: [label.text for _, label in window.plots.loss.legend.items][:1] == ["high meta lr"],
                    timeout=5000)
    assert window.plots.scores.rows()[1][0] == "high meta lr"
    assert curves_csv([fast]).splitlines()[1].startswith("high meta lr,")
    note_column = runs_list.table.columnCount() - 1
    runs_list.table.item(runs_list.run_ids().index(fast.run_id), note_column).setText("diverges past 0.05?")
    assert fast.note == "diverges past 0.05?"
    window.session.flush()
    stored = json.loads((tmp_path / "proj" / "project.json").read_text())["runs"]
    assert {r["name"]: r.get("note") for r in stored}["high meta lr"] == "diverges past 0.05?"
    assert not any(p.name == "project.json" for p in (tmp_path / "fast").iterdir()), "never in the writer's folder"
    window.close()

    again = make_window(project=tmp_path / "proj")
    back = again.session.runs.get(fast.run_id)
    assert back.name == "high meta lr" and back.note == "diverges past 0.05?"
    assert again.run_list.note(fast.run_id) == "diverges past 0.05?"
    assert again.run_list.name(fast.run_id) == "high meta lr"


def test_a_renamed_run_keeps_a_name_of_its_own(qtbot, make_window, tmp_path):
    cli_run(tmp_path / "a")
    cli_run(tmp_path / "b")
    window = make_window()
    a, = window.session.follow(tmp_path / "a")
    b, = window.session.follow(tmp_path / "b")
    window.session.rename(b.run_id, "a")
    assert b.name == "a (2)" and window.run_list.name(b.run_id) == "a (2)"


def test_the_run_list_scrolls_to_a_new_current_run(qtbot, make_window, tmp_path):
    window = make_window()
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    for i in range(14):
        cli_run(tmp_path / f"r{i:02d}", iterations=3)
    for i in range(14):
        window.session.follow(tmp_path / f"r{i:02d}")
    table = window.run_list.table
    last = window.run_list.run_ids()[-1]
    assert window.session.current.run_id == last
    row = table.rowCount() - 1
    rect = table.visualItemRect(table.item(row, 0))
    assert table.viewport().rect().contains(rect.center()), "the new current run's row is in view"


def test_a_followed_runs_task_view_names_the_iteration_of_the_weights_it_draws(qtbot, make_window, tmp_path):
    """Its metrics run ahead of its last checkpoint: the task view draws the checkpoint and says so."""
    from core.storage.atomic import atomic_write
    from core.storage.checkpoint import read_weights, weights_bytes

    folder = tmp_path / "cli-run"
    cli_run(folder, iterations=40)
    config, _ = read_weights(folder / "weights.safetensors")
    untrained = MetaTrainer(config).weights()   # the weights a run writes before its first checkpoint
    atomic_write(folder / "weights.safetensors", weights_bytes(config, untrained, 0))
    window = make_window()
    run, = window.session.follow(folder)
    qtbot.waitUntil(lambda: run.weights is not None and run.iteration == 40, timeout=20_000)
    assert run.weights_iteration == 0
    caption = window.plots.task_caption
    qtbot.waitUntil(lambda: "iteration 0" in caption.text(), timeout=20_000)
    assert "iteration 40" not in caption.text() and "trained further" in caption.text()
