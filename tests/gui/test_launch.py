"""Sweeps and --nproc runs launched from the window: the dialog's checks, the child processes (their
folders followed, their errors reported, stopped or left running on close) and a sweep's seeds
drawn as one mean curve with a min–max band per setting."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from maml_gui.actions.launch_actions import nproc_command, sweep_command
from maml_gui.session.overlays import Band, align_common, group_by_config
from maml_gui.session.runs import History
from maml_gui.dialogs.sweep_dialog import SweepDialog, cores, next_folder, parse_sweep
from maml_gui.widgets.adaptation_plot import AdaptationPlot
from maml_gui.widgets.loss_plot import LossPlot

from .support import tiny


CHILD_TIMEOUT = 120_000   # ms: a child imports torch (a few seconds on a slow CI machine) before it trains


def history(n: int, level: float) -> History:
    h = History()
    its = np.arange(1, n + 1)
    loss = level + 1.0 / its
    h.append(its, loss, np.zeros(n), np.zeros(n), np.column_stack([loss, loss / 2]))
    return h


def wait_ended(qtbot, window, timeout=CHILD_TIMEOUT) -> None:
    qtbot.waitUntil(lambda: not window.launch.children, timeout=timeout)


# -- the dialog ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("seeds, grid, message", [
    ("4-0", "", "Seeds: the range '4-0' runs backwards"),
    ("0-2,x", "", "Seeds: 'x' is not a seed"),
    ("", "", "Seeds: give seeds"),
    ("0-1", "hidden=8,16", "Grid: 'hidden' cannot be varied"),
    ("0-1", "inner_lr=0.1,fast", "Grid: inner_lr=fast is not valid"),
    ("0-1", "algorithm=maml,magic", "Grid: algorithm=magic is not valid"),
    ("0-1", "inner_lr", "Grid: 'inner_lr' is not KEY=VALUE"),
    ("0-1", "meta_lr=0.001,1e-3", "Grid: meta_lr lists the value 1e-3 twice (0.001 and 1e-3)"),
    ("0-9", "shots=" + ",".join(map(str, range(1, 101))) + "\nquery=" + ",".join(map(str, range(1, 101))),
     "Grid: 100 × 100 settings × 10 seed(s) is 100,000 runs"),
])
def test_the_sweep_dialog_says_what_is_wrong_and_keeps_ok_disabled(qtbot, tmp_path, seeds, grid, message):
    dialog = SweepDialog(tmp_path / "sweeps" / "001-x")
    qtbot.addWidget(dialog)
    assert dialog.ok.isEnabled() and dialog.problem.text() == ""
    dialog.seeds.setText(seeds)
    dialog.grid.setPlainText(grid)
    assert not dialog.ok.isEnabled() and dialog.request is None
    assert dialog.problem.text().startswith(message)


def test_the_sweep_dialog_counts_runs_and_defaults_parallel_to_them(qtbot, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    dialog = SweepDialog(tmp_path / "sweeps" / "001-x", seeds="0-2")
    qtbot.addWidget(dialog)
    dialog.grid.setPlainText("inner_lr=0.01,0.05\n\ninner_steps=1,5\n")
    assert dialog.ok.isEnabled()
    assert dialog.request.runs == 12 and dialog.request.grid == ("inner_lr=0.01,0.05", "inner_steps=1,5")
    assert dialog.parallel.value() == min(12, cores())
    assert "4 settings × 3 seeds = 12 runs" in dialog.summary.text()
    dialog.parallel.setValue(1)                         # the user's choice stays
    dialog.seeds.setText("0-9")
    assert dialog.parallel.value() == 1 and dialog.request.parallel == 1
    dialog.folder.edit.setText(str(tmp_path / "full"))
    assert not dialog.ok.isEnabled() and "already holds files" in dialog.problem.text()


def test_launch_command_lines(tmp_path):
    request = parse_sweep("0-4", "inner_lr=0.01,0.05", 3, 50, str(tmp_path / "s"))
    config = tmp_path / "s.experiment.json"
    assert sweep_command(config, request) == [
        sys.executable, "-m", "core.cli", "sweep", "--seeds", "0-4", "--grid", "inner_lr=0.01,0.05", "--parallel", "3",
        "--tasks", "50", "--out", str(tmp_path / "s"), "--config", str(config)]
    assert nproc_command(config, 4, tmp_path / "r") == [
        sys.executable, "-m", "core.cli", "train", "--nproc", "4", "--config", str(config), "--out", str(tmp_path / "r")]
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "002-a").mkdir()
    assert next_folder(tmp_path / "p", "sinusoid maml") == tmp_path / "p" / "003-sinusoid-maml"
    assert next_folder(tmp_path / "new", "x") == tmp_path / "new" / "001-x"


# -- bands ---------------------------------------------------------------------------------------------
def test_runs_of_a_sweep_group_by_setting(tmp_path):
    runs = [SimpleNamespace(run_id=i) for i in range(1, 7)]
    folders = {1: tmp_path / "s" / "runs" / "inner_lr=0.1-seed0", 2: tmp_path / "s" / "runs" / "inner_lr=0.1-seed1",
               3: tmp_path / "s" / "runs" / "inner_lr=0.5-seed0", 4: tmp_path / "s" / "runs" / "inner_lr=0.5-seed1",
               5: tmp_path / "s" / "runs" / "base-seed0", 6: None}
    groups, singles = group_by_config(runs, folders.get)
    assert [(label, [r.run_id for r in group]) for label, group in groups] == [
        ("inner_lr=0.1", [1, 2]), ("inner_lr=0.5", [3, 4])]
    assert [r.run_id for r in singles] == [5, 6]   # one seed alone, and a run outside any sweep


def test_a_band_is_the_mean_and_min_max_over_seeds_on_their_common_iterations(qtbot):
    plot = LossPlot()
    plot.resize(800, 500)
    qtbot.addWidget(plot)
    plot.show()
    plot.set_smoothing(0.0)
    a, b, c = history(40, 0.1), history(30, 0.5), history(35, 0.3)   # still training: different lengths
    plot.set_bands([Band("cfg A", "#1f77b4", (a, b, c)), Band("cfg B", "#2ca02c", (history(20, 1.0), history(20, 2.0)))])
    qtbot.waitUntil(lambda: len(plot.band_data()) == 2 and len(plot.band_data()["cfg A"][0]) == 30, timeout=3000)
    x, mean, low, high = plot.band_data()["cfg A"]
    stack = np.stack([h.meta_losses[:30] for h in (a, b, c)])
    np.testing.assert_array_equal(x, np.arange(1, 31))
    np.testing.assert_allclose(mean, stack.mean(0))
    np.testing.assert_allclose(low, stack.min(0))
    np.testing.assert_allclose(high, stack.max(0))
    assert not plot.overlay_data()                      # no curve per seed
    fills = plot.band_items()
    assert set(fills) == {"cfg A", "cfg B"} and all(not f.path().isEmpty() for f in fills.values())
    assert [text for _, text in plot.legend.entries()] == ["cfg A", "cfg B"]
    b.append([31, 32], [9.0, 9.0], [0, 0], [0, 0], [[9.0, 9.0], [9.0, 9.0]])   # a seed catches up: the prefix grows
    plot.refresh()
    qtbot.waitUntil(lambda: len(plot.band_data()["cfg A"][0]) == 32, timeout=3000)
    assert plot.band_data()["cfg A"][3][-1] == 9.0
    plot.set_bands([])
    qtbot.waitUntil(lambda: not plot.band_data(), timeout=3000)
    assert not any(f.isVisible() for f in fills.values())


def test_misaligned_rows_meet_on_the_iterations_all_runs_have():
    x, stack = align_common([(np.array([2.0, 4, 6, 8]), np.array([1.0, 2, 3, 4])),
                             (np.array([1.0, 2, 3, 4, 5, 6]), np.arange(6.0))])
    np.testing.assert_array_equal(x, [2, 4, 6])
    np.testing.assert_array_equal(stack, [[1, 2, 3], [1, 3, 5]])


def test_the_adaptation_plot_draws_one_band_per_setting(qtbot):
    plot = AdaptationPlot()
    qtbot.addWidget(plot)
    steps = np.arange(4)

    def scores(level):
        return SimpleNamespace(steps=steps, metric="mse", series={"meta-learned": (level / (1 + steps), np.zeros(4))})

    plot.set_bands([Band("cfg", "#1f77b4", adaptations=(scores(1.0), scores(3.0), None)),
                    Band("one seed scored", "#2ca02c", adaptations=(scores(1.0), None))])
    data = plot.band_data()
    assert list(data) == ["cfg"]                         # a band needs two scored seeds
    x, mean, low, high = data["cfg"]
    np.testing.assert_allclose(mean, 2.0 / (1 + steps))
    np.testing.assert_allclose(low, 1.0 / (1 + steps))
    np.testing.assert_allclose(high, 3.0 / (1 + steps))
    assert not plot.band_items()["cfg"].path().isEmpty()


# -- child processes ---------------------------------------------------------------------------------------
def test_a_sweep_launched_from_the_window_is_followed_to_its_end(qtbot, make_window, tmp_path):
    window = make_window(tiny(30))
    out = window.launch.default_out("sweep")
    assert out == window.session.project.folder / "sweeps" / "001-sinusoid-maml"
    child = window.launch.run_sweep(parse_sweep("0-1", "", 2, 8, str(out)))
    assert child is not None and json.loads(out.with_name(out.name + ".experiment.json").read_text())[
        "train"]["iterations"] == 30
    wait_ended(qtbot, window)
    assert child.proc.returncode == 0, out.with_name(out.name + ".log").read_text()
    assert (out / "summary.json").is_file() and json.loads((out / "summary.json").read_text())["configs"][0]["seeds"] \
        == [0, 1]
    s = window.session
    qtbot.waitUntil(lambda: len(s.follower.followed) == 2 and all(
        r.status == "completed" and r.iteration == 30 for r in (f.run for f in s.follower.followed.values())),
        timeout=20_000)
    runs = sorted((f.run for f in s.follower.followed.values()), key=lambda r: r.name)
    assert [r.name for r in runs] == ["001-sinusoid-maml/base-seed0", "001-sinusoid-maml/base-seed1"]
    assert {s.current.run_id, *s.compared} == {r.run_id for r in runs}
    # one configuration, two seeds: one mean curve with its band, no dashed line per seed
    loss = window.plots.loss
    qtbot.waitUntil(lambda: len(loss.band_data()) == 1 and len(next(iter(loss.band_data().values()))[0]) == 30,
                    timeout=5000)
    (name, (x, mean, low, high)), = loss.band_data().items()
    assert name == "base · 2 seeds, min–max" and not loss.overlay_data()
    tips = {label.text: label.toolTip() for _, label in loss.legend.items}
    assert "min–max" in tips[name] and "mean across its 2 seeds" in tips[name]
    assert np.all(low <= mean) and np.all(mean <= high) and np.any(low < high)
    qtbot.waitUntil(lambda: len(window.plots.adaptation.band_data()) == 1, timeout=30_000)   # both seeds scored
    assert window.error_banner.isHidden()


def test_a_sweep_and_an_n_process_run_never_share_a_folder_number(qtbot, make_window):
    window = make_window(tiny(20))
    sweep = window.launch.default_out("sweep")
    sweep.mkdir(parents=True)
    train = window.launch.default_out("train")
    assert (sweep.name, train.name) == ("001-sinusoid-maml", "002-sinusoid-maml")
    assert train.parent.name == "external"
    train.mkdir(parents=True)
    assert window.launch.default_out("sweep").name == "003-sinusoid-maml"


def test_run_in_n_processes_is_followed(qtbot, make_window):
    window = make_window(tiny(20))
    child = window.launch.run_processes(2)
    assert child is not None and child.out.parent == window.session.project.folder / "external"
    wait_ended(qtbot, window)
    log = child.out.with_name(child.out.name + ".log")
    assert child.proc.returncode == 0, log.read_text()
    qtbot.waitUntil(lambda: any(r.iteration == 20 for r in (f.run for f in
                                window.session.follower.followed.values())), timeout=20_000)
    assert window.error_banner.isHidden()


def test_a_launched_child_that_fails_is_named_with_its_log(qtbot, make_window):
    window = make_window(tiny(20))
    child = window.launch.run_processes(3)   # a meta-batch of 2 tasks cannot be split over 3 processes
    assert child is not None
    wait_ended(qtbot, window)
    log = child.out.with_name(child.out.name + ".log")
    assert child.proc.returncode == 2
    text = window.error_banner.text()
    assert "exit code 2" in text and str(log) in text


def test_closing_with_a_running_child_asks_and_stop_saves_it(qtbot, make_window):
    window = make_window(tiny(10**6))
    out = window.launch.default_out("sweep")
    child = window.launch.run_sweep(parse_sweep("0", "", 1, 8, str(out)))
    s = window.session
    qtbot.waitUntil(lambda: any(f.run.iteration > 0 for f in s.follower.followed.values()), timeout=CHILD_TIMEOUT)
    asked = []
    window.confirm = lambda title, text: asked.append(text) or True   # Yes: stop them
    assert window.shutdown()
    assert len(asked) == 1 and "the sweep 001-sinusoid-maml" in asked[0]
    assert child.proc.returncode == 143   # the sweep stopped its run, which saved, and then itself
    run_folder = out / "runs" / "base-seed0"
    assert (run_folder / "weights.safetensors").is_file() and (run_folder / "training_state.safetensors").is_file()
    assert not window.launch.live()


def test_leave_running_keeps_the_child_and_the_project_follows_it_again(qtbot, make_window, tmp_path):
    project = tmp_path / "proj"
    window = make_window(tiny(10**6), project=project)
    child = window.launch.run_sweep(parse_sweep("0-1", "", 2, 8, str(window.launch.default_out("sweep"))))
    s = window.session
    try:
        qtbot.waitUntil(lambda: len(s.follower.followed) == 2, timeout=CHILD_TIMEOUT)
        current, compared = s.current.run_id, list(s.compared)
        assert compared and current not in compared
        window.confirm = lambda title, text: False                     # No: leave them running
        assert window.shutdown() and child.proc.poll() is None
        window.close()
        again = make_window(project=project)
        followed = list(again.session.follower.followed.values())
        assert sorted(f.run.name for f in followed) == ["001-sinusoid-maml/base-seed0", "001-sinusoid-maml/base-seed1"]
        # the run shown and the runs ticked come back, the state in its own column
        assert again.session.current.run_id == current and again.session.compared == compared
        assert again.run_list.checked() == compared
        qtbot.waitUntil(lambda: followed[0].alive is True and followed[0].run.iteration > 0, timeout=20_000)
        assert again.run_list.status(followed[0].run.run_id) == "following"
        assert not again.launch.live()   # not this window's child: closing it asks nothing
    finally:
        child.proc.terminate()
        child.proc.wait(60)
