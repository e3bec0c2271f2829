"""The session without a window: runs persist in the project folder, one current run that every
action uses, views told to clear when the family changes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from core.storage.checkpoint import load_run, save_run
from core.config import FamilySpec
from core.training.trainer import MetaTrainer
from maml_gui.session.project import PROJECT_FILE
from maml_gui.session.session import Session
from maml_gui.jobs.training import WorkerOptions

from ..helpers import copy_as_crashed
from .support import tiny


OPTIONS = WorkerOptions(eval_tasks=8, inspect_interval=0.2)


@pytest.fixture
def make_session(qtbot, tmp_path):
    sessions = []

    def make(folder=None) -> Session:
        session = Session(folder or tmp_path / "project", OPTIONS)
        session.load_project()
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        assert session.close() and session.save_problem is None


def train(qtbot, session: Session, iterations: int = 25, **family):
    """One finished run of ``iterations`` meta-iterations."""
    with qtbot.waitSignal(session.controller.running_changed, timeout=20_000,
                          check_params_cb=lambda active: not active):
        run = session.start(tiny(iterations, **family))
    qtbot.waitUntil(lambda: run.adaptation is not None, timeout=20_000)
    return run


def test_runs_come_back_with_their_curves_weights_and_scores(qtbot, make_session, tmp_path):
    session = make_session()
    runs = [train(qtbot, session, n) for n in (20, 30, 25)]
    session.rename(runs[1].run_id, "the long one")
    session.set_compared([runs[0].run_id, runs[2].run_id])
    session.set_current(runs[1].run_id)
    assert session.close()

    again = make_session(tmp_path / "project")
    back = list(again.runs)
    assert [r.run_id for r in back] == [r.run_id for r in runs]
    assert [r.name for r in back] == [runs[0].name, "the long one", runs[2].name]
    assert again.current.run_id == runs[1].run_id and again.compared == [runs[0].run_id, runs[2].run_id]
    for old, new in zip(runs, back):
        assert new.iteration == old.iteration and new.status == "completed"
        np.testing.assert_array_equal(new.history.iterations, old.history.iterations)
        np.testing.assert_allclose(new.history.meta_losses, old.history.meta_losses, rtol=1e-15)
        np.testing.assert_allclose(new.history.step_losses, old.history.step_losses, rtol=1e-15)
        assert new.weights.keys() == old.weights.keys()
        assert all(torch.equal(new.weights[k], old.weights[k]) for k in old.weights)
        assert new.adaptation is not None
        np.testing.assert_allclose(new.adaptation.series["meta-learned"][0], old.adaptation.series["meta-learned"][0])
    # new runs are numbered after the ones that came back
    assert train(qtbot, again, 5).run_id == runs[-1].run_id + 1


def test_a_training_run_is_on_disk_before_it_ends(qtbot, make_session, tmp_path):
    session = make_session()
    run = session.start(tiny())
    qtbot.waitUntil(lambda: run.weights is not None and run.training_state is not None, timeout=20_000)
    session.pause()
    qtbot.waitUntil(lambda: (tmp_path / "project" / run.folder / "weights.safetensors").is_file() if run.folder
                    else False, timeout=20_000)
    config, _ = load_run(tmp_path / "project" / run.folder)
    assert config == run.config
    session.stop()
    qtbot.waitUntil(lambda: not session.is_training(), timeout=20_000)


def test_a_run_that_did_not_close_normally_comes_back_interrupted(qtbot, make_session, tmp_path):
    session = make_session()
    run = train(qtbot, session, 10)
    assert session.close()
    index = (tmp_path / "project" / PROJECT_FILE)
    index.write_text(index.read_text().replace('"completed"', '"running"'))
    again = make_session(tmp_path / "project")
    assert again.runs.get(run.run_id).status == "interrupted"


def test_an_interrupted_run_continues_exactly_from_its_last_checkpoint(qtbot, make_session, tmp_path):
    straight = train(qtbot, make_session(tmp_path / "straight"), 40)
    session = make_session()
    run = session.start(tiny(40), paused=True, steps=15)
    qtbot.waitUntil(lambda: run.checkpoint_iteration == 15, timeout=20_000)
    session.save_run(run)
    assert session.flush()
    copy_as_crashed(tmp_path / "project", tmp_path / "crashed")   # what a kill -9 now leaves behind
    session.stop()
    qtbot.waitUntil(lambda: not session.is_training(), timeout=20_000)
    metrics = tmp_path / "crashed" / run.folder / "metrics.csv"
    last = metrics.read_text().splitlines()[-1]
    assert last.startswith("15,")
    with metrics.open("a") as f:   # rows written after the checkpoint, before the crash
        f.write(last.replace("15,", "16,", 1) + "\n")

    again = make_session(tmp_path / "crashed")
    back = again.runs.get(run.run_id)
    assert back.status == "interrupted" and again.continue_problem(back) is None
    with qtbot.waitSignal(again.controller.running_changed, timeout=20_000, check_params_cb=lambda active: not active):
        assert again.continue_run(back)
    assert back.status == "completed" and again.runs.get(run.run_id) is back
    np.testing.assert_array_equal(back.history.iterations, np.arange(1, 41))
    assert all(torch.equal(back.weights[k], straight.weights[k]) for k in straight.weights)
    assert again.continue_problem(back) is not None   # nothing left to continue


def test_every_run_action_uses_the_current_run(qtbot, make_session, tmp_path):
    session = make_session()
    first = train(qtbot, session, 10)
    second = train(qtbot, session, 12)
    assert session.current is second
    assert session.weights_source().label.startswith(second.name)
    session.set_current(first.run_id)
    assert session.weights_source().label.startswith(first.name)
    assert session.export_run_folder(tmp_path / "out") and load_run(tmp_path / "out")[0] == first.config

    trainer = MetaTrainer(tiny(5, hidden=(8,)))
    trainer.step()
    save_run(tmp_path / "cli-run", trainer.config, trainer.weights(), [])
    opened = session.open_weights(tmp_path / "cli-run", tiny())
    assert session.current is opened and opened.origin == "opened"
    assert session.weights_source().label.startswith("cli-run")
    assert (tmp_path / "project" / opened.folder / "weights.safetensors").is_file() or session.unsaved_runs()


def test_changing_the_family_clears_a_run_trained_on_another(qtbot, make_session):
    session = make_session()
    run = train(qtbot, session, 10)
    changes = []
    session.current_changed.connect(changes.append)
    session.set_editing(run.config.replace("train", meta_batch=3))   # same family: the run stays current
    assert session.current is run and changes == []
    session.set_editing(run.config.replace("family", name="linear", params={}))
    assert session.current is None and changes == [None]
    session.set_current(run.run_id)
    assert session.current is run


def test_deleting_a_run_removes_its_folder(qtbot, make_session, tmp_path):
    session = make_session()
    run = train(qtbot, session, 10)
    assert session.flush()
    folder = tmp_path / "project" / run.folder
    assert folder.is_dir()
    session.delete(run.run_id)
    assert session.runs.get(run.run_id) is None and session.current is None and not folder.exists()


def test_a_failed_write_keeps_the_run_and_says_so(qtbot, make_session, monkeypatch):
    from core.errors import CheckpointError
    from maml_gui.session.project import Project

    session = make_session()
    errors = []
    session.error.connect(errors.append)

    def full_disk(self, snap):
        raise CheckpointError("cannot write weights.safetensors: No space left on device")

    monkeypatch.setattr(Project, "write_run", full_disk)
    run = train(qtbot, session, 10)
    assert not session.flush()
    assert session.runs.get(run.run_id) is run and run.weights
    assert errors and "No space left on device" in errors[-1]
    assert session.unsaved_runs() == [run]
    monkeypatch.undo()
    assert session.flush() and session.unsaved_runs() == []


def test_the_family_being_edited_persists(qtbot, make_session, tmp_path):
    session = make_session()
    edited = tiny(77).replace("family", name="linear", params={})
    session.set_editing(edited)
    session.write_index()
    assert session.close()   # one window per project: the next one opens it once this one closed
    assert make_session(tmp_path / "project").editing == edited
    assert isinstance(edited.family, FamilySpec)


def test_the_pretrain_baseline_gets_as_many_updates_as_the_run(qtbot, make_session):
    from core.trained.loaded_model import LoadedModel

    session = make_session()
    run = train(qtbot, session, 60)
    qtbot.waitUntil(lambda: run.adaptation.baseline_iterations == 60, timeout=30_000)
    # the same as a pretrain network trained on its own for 60 updates, scored on the same tasks
    baseline = MetaTrainer(run.config.replace("algorithm", name="pretrain"))
    for _ in range(60):
        baseline.step()
    expected = LoadedModel(run.config, run.weights).adaptation(OPTIONS.eval_tasks, LoadedModel.of_trainer(baseline))
    np.testing.assert_allclose(run.adaptation.series["pretrain"][0], expected.series["pretrain"][0], rtol=1e-6)
    np.testing.assert_allclose(run.adaptation.series["meta-learned"][0], expected.series["meta-learned"][0], rtol=1e-6)


def test_a_run_another_process_trains_is_followed_live(qtbot, make_session, tmp_path):
    """``maml-gui train`` in a child process; the session shows its rows and weights as they come."""
    import subprocess
    import sys

    from core.storage.checkpoint import read_weights

    out = tmp_path / "headless"
    child = subprocess.Popen([sys.executable, "-m", "core.cli", "train", "--family", "linear", "--iterations", "4000",
                              "--meta-batch", "2", "--shots", "5", "--query", "5", "--save-every", "0.3",
                              "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        session = make_session()
        qtbot.waitUntil(lambda: (out / "config.json").is_file(), timeout=30_000)
        [run] = session.follow(out)
        assert session.current is run and run.origin == "followed"
        qtbot.waitUntil(lambda: len(run.history) > 0 and run.weights is not None, timeout=30_000)
        assert run.status in ("following", "completed")
        assert child.wait(timeout=60) == 0, child.stderr.read().decode()
        qtbot.waitUntil(lambda: run.status == "completed", timeout=10_000)
    finally:
        child.kill()
        child.wait()
        child.stderr.close()
    np.testing.assert_array_equal(run.history.iterations, np.arange(1, 4001))
    _, saved = read_weights(out / "weights.safetensors")
    assert all(torch.equal(run.weights[k], saved[k]) for k in saved)
    qtbot.waitUntil(lambda: run.adaptation is not None, timeout=20_000)
    assert session.close()
    # it comes back with the project, followed from its own folder (never copied into the project)
    again = make_session(tmp_path / "project")
    back = again.runs.get(run.run_id)
    assert back.origin == "followed" and again.follower.folder_of(back.run_id) == out
    assert not any((tmp_path / "project" / "runs").glob("*")) if (tmp_path / "project" / "runs").exists() else True


def test_a_one_iteration_runs_baseline_messages_say_1_update(qtbot, make_session):
    session = make_session()
    said: list[str] = []
    session.message.connect(lambda text, *_: said.append(text))
    session.job_status.connect(said.append)
    run = train(qtbot, session, 1)
    qtbot.waitUntil(lambda: run.adaptation.baseline_iterations == 1, timeout=30_000)
    baseline = [t for t in said if "pretrain baseline" in t]
    assert any("to 1 update," in t for t in baseline) and any("now has 1 update," in t for t in baseline), baseline
    assert not any("1 updates" in t for t in said), said


def test_a_project_written_before_the_move_to_layer_packages_still_loads(make_session, tmp_path):
    """tests/data/project-0567a30 was written by the version before this layout (commit 0567a30):
    its runs, names, current and compared runs, curves, weights, scores and training states load."""
    import shutil
    from pathlib import Path

    old = tmp_path / "old"
    shutil.copytree(Path(__file__).parents[1] / "data" / "project-0567a30", old)
    session = make_session(old)
    runs = list(session.runs)
    assert [(r.run_id, r.name, r.iteration, r.status) for r in runs] == [
        (1, "run 1 · maml · sinusoid", 20, "completed"), (2, "the long one", 30, "completed")]
    assert session.current is runs[1] and session.compared == [1]
    for run in runs:
        assert run.history.iterations.tolist() == list(range(1, run.iteration + 1))
        assert run.weights and run.adaptation is not None and run.training_state is not None
        assert run.checkpoint_iteration == run.iteration


@pytest.mark.parametrize("section,change", [
    ("train", {}), ("train", {"meta_lr": 0.003, "iterations": 6}), ("train", {"device": "auto"}),
    ("train", {"seed": 4}), ("algorithm", {"inner_steps": 2}), ("model", {"hidden": (16, 16)}),
])
def test_the_window_continues_an_opened_run_as_train_resume_does(qtbot, make_session, tmp_path, capsys, section,
                                                                  change):
    """One resume rule: Start over an opened run continues it exactly where ``train --resume`` with the
    same settings does, and where the command refuses, the window names the same settings."""
    from core.cli.main import main

    run = tmp_path / "cli-run"
    assert main(["train", "--family", "sinusoid", "--iterations", "3", "--meta-batch", "2", "--shots", "5",
                 "--query", "5", "--out", str(run)]) == 0
    config = load_run(run)[0].replace(section, **change)
    (tmp_path / "new.json").write_text(config.to_json())
    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    capsys.readouterr()
    code = main(["train", "--resume", str(resumed), "--config", str(tmp_path / "new.json")])
    refusal = capsys.readouterr().err
    assert code in (0, 2), refusal

    session = make_session()
    messages = []
    session.message.connect(lambda text, _ms: messages.append(text))
    session.open_weights(run, tiny())
    weights, state = session.continuation(config)
    assert (state is not None) == (code == 0), (refusal, messages)
    if code == 2:
        fields = config.continue_changes(load_run(run)[0])
        assert fields and all(f in refusal for f in fields)
        assert weights is None or all(f in messages[-1] for f in fields), messages


def test_opening_a_run_builds_it_once_and_its_scoring_job_once(qtbot, make_session, tmp_path, monkeypatch):
    """The weights' check and the training state's check share one build; the scoring job, on its own
    thread, builds its own (a build's tensors are never shared between threads)."""
    from core.cli.main import main
    from core.nets.models import MLPNet
    from core.tasks.regression import SinusoidFamily

    run = tmp_path / "cli-run"
    assert main(["train", "--family", "sinusoid", "--iterations", "3", "--meta-batch", "2", "--out", str(run)]) == 0
    session = make_session()
    counts = {SinusoidFamily: 0, MLPNet: 0}
    for cls in counts:
        def counted(self, *args, _cls=cls, _init=cls.__init__, **kwargs):
            counts[_cls] += 1
            _init(self, *args, **kwargs)
        monkeypatch.setattr(cls, "__init__", counted)
    opened = session.open_weights(run, tiny())
    assert opened.training_state is not None
    qtbot.waitUntil(lambda: opened.adaptation is not None, timeout=20_000)
    assert counts == {SinusoidFamily: 2, MLPNet: 2}
