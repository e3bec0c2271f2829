"""Crash safety of ``maml-gui train``: periodic checkpoints that survive ``kill -9``, one writer per
folder, and storage faults that leave the previous checkpoint intact."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import core.storage.checkpoint as checkpoint
from core.storage import atomic, metrics
from core.storage.checkpoint import (CONFIG_FILE, STATE_FILE, WEIGHTS_FILE, Checkpointer, SaveFailed, load_checkpoint,
                                     load_run)
from core.storage.metrics import METRICS_FILE, cut_metrics, read_metrics
from core.cli.main import main
from core.storage.lock import LOCK_FILE
from core.training.trainer import MetaTrainer

from ..helpers import diverge_after, tiny_config

FAST = ["--meta-batch", "2", "--seed", "5"]


def start_training(out, *extra):
    return subprocess.Popen([sys.executable, "-m", "core.cli", "train", "--iterations", "100000000", *FAST,
                             "--out", str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(proc, ready, seconds=60):
    """Poll a child's run folder: it is the only thing to watch (the child prints nothing until it ends)."""
    deadline = time.monotonic() + seconds
    while not ready():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the child process is too slow"
        time.sleep(0.05)


def checkpoint_iteration(out) -> int:
    try:
        return int(load_checkpoint(out)[3]["iteration"])
    except Exception:   # noqa: BLE001 - not written yet
        return -1


def folder_bytes(out) -> dict:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def test_kill_9_then_resume_continues_from_the_last_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    proc = start_training(out, "--save-every", "0.3")
    try:
        wait_for(proc, lambda: checkpoint_iteration(out) > 0)   # a periodic checkpoint, past iteration 0
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert (out / LOCK_FILE).exists(), "kill -9 leaves the lock behind"
    saved = checkpoint_iteration(out)
    rows = read_metrics(out)[:, 0].tolist()
    assert rows[:saved] == list(range(1, saved + 1))   # anything past the checkpoint is dropped on resume
    total = saved + 25
    assert main(["train", "--resume", str(out), "--iterations", str(total)]) == 0
    captured = capsys.readouterr()
    assert f"took over the lock of {out} left by pid {proc.pid}" in captured.err
    assert f"25 iterations ({saved} to {total})" in captured.out and not (out / LOCK_FILE).exists()
    assert read_metrics(out)[:, 0].tolist() == list(range(1, total + 1))
    assert main(["train", "--iterations", str(total), *FAST, "--save-every", "0", "--out", str(tmp_path / "straight")]) == 0
    straight, resumed = load_run(tmp_path / "straight")[1], load_run(out)[1]
    assert all(torch.equal(straight[n], resumed[n]) for n in straight), "resumed exactly at the checkpoint"


def test_rows_past_the_checkpoint_and_an_older_weights_file_are_resolved_by_the_state(tmp_path, capsys):
    """A crash between appending metrics and committing the state, or between the state and the
    weights file: the training state decides the iteration, the other files follow it."""
    out, common = tmp_path / "run", [*FAST, "--inner-steps", "2", "--save-every", "0"]
    assert main(["train", "--iterations", "4", *common, "--out", str(out)]) == 0
    older_weights = (out / WEIGHTS_FILE).read_bytes()
    assert main(["train", "--resume", str(out), "--iterations", "8"]) == 0
    (out / WEIGHTS_FILE).write_bytes(older_weights)                          # weights from iteration 4
    with open(out / METRICS_FILE, "a") as f:                                 # rows 9, 10 and half of 11
        f.write("9,1.0,1.0,0.1,1.0,1.0,1.0\n10,1.0,1.0,0.1,1.0,1.0,1.0\n11,1.0,")
    assert load_checkpoint(out)[3]["iteration"] == "8"
    state_weights = load_checkpoint(out)[1]
    assert all(torch.equal(load_run(out)[1][n], state_weights[n]) for n in state_weights), "readers take the newer state"
    assert main(["train", "--resume", str(out), "--iterations", "12"]) == 0
    assert main(["train", "--iterations", "12", *common, "--out", str(tmp_path / "straight")]) == 0
    capsys.readouterr()
    resumed, straight = read_metrics(out), read_metrics(tmp_path / "straight")
    assert resumed[:, 0].tolist() == list(range(1, 13))
    assert resumed[:, [0, 1, 2, 4, 5, 6]].tolist() == straight[:, [0, 1, 2, 4, 5, 6]].tolist()   # all but the timings


def test_cut_metrics_keeps_whole_rows_up_to_the_iteration(tmp_path):
    path = tmp_path / METRICS_FILE
    rows = "".join(f"{i},0.5,0.1,0.01,0.4\n" for i in range(1, 30001))   # longer than one block read from the end
    header = "iteration,meta_loss,grad_norm,seconds,step_loss_0\n"
    for text, upto, kept in [(header + rows, 29990, 29990), (header + rows + "30001,0.", None, 30000),
                             (header + rows, 0, 0), (header + rows[:-1], 30000, 29999)]:
        path.write_text(text)
        cut_metrics(path, upto)
        lines = path.read_text().splitlines()
        assert path.read_text().endswith("\n") and lines[0] == header.strip() and len(lines) == kept + 1
        assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(1, kept + 1))


def test_a_second_writer_refuses_at_once_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    proc = start_training(out, "--save-every", "0.2")
    try:
        wait_for(proc, lambda: checkpoint_iteration(out) >= 0)
        proc.send_signal(signal.SIGSTOP)   # the first writer holds still while the second tries
        before = folder_bytes(out)
        second = subprocess.run([sys.executable, "-m", "core.cli", "train", "--iterations", "5", "--force",
                                 "--out", str(out)], capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1
        assert f"in use by another run (pid {proc.pid} on host" in second.stderr and "--out" in second.stderr
        for argv in (["--resume", str(out)], ["--out", str(out)], ["--out", str(out), "--force", "--family", "linear"]):
            assert main(["train", *argv, "--iterations", "5"]) == 2
            err = capsys.readouterr().err
            assert f"pid {proc.pid}" in err and "since" in err and len(err.strip().splitlines()) == 1
        assert folder_bytes(out) == before, "the refused writers changed nothing, the lock included"
        proc.send_signal(signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == 143 and not (out / LOCK_FILE).exists()


def test_a_refused_or_failed_new_run_leaves_no_folder_and_no_lock(tmp_path, capsys):
    data = tmp_path / "onerow.csv"
    data.write_text("t,x,y\na,1,2\n")
    assert main(["train", "--csv", str(data), "--task-column", "t", "--target", "y", "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()
    out = tmp_path / "run"
    assert main(["train", "--iterations", "2", *FAST, "--out", str(out)]) == 0
    before = folder_bytes(out)
    assert main(["train", "--iterations", "2", *FAST, "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err and folder_bytes(out) == before


@pytest.mark.parametrize("ending", ["diverged", "error"])
def test_every_way_out_saves_and_releases_the_lock(tmp_path, monkeypatch, capsys, ending):
    out = tmp_path / "run"
    if ending == "diverged":
        diverge_after(monkeypatch, 7)
    else:
        real_step = MetaTrainer.step

        def step(self, batch=None):
            if self.iteration >= 7:
                raise RuntimeError("a bug")
            return real_step(self, batch)

        monkeypatch.setattr(MetaTrainer, "step", step)
    argv = ["train", "--iterations", "50", *FAST, "--out", str(out)]
    if ending == "diverged":
        assert main(argv) == 1 and "the last finite weights are saved" in capsys.readouterr().out
    else:
        with pytest.raises(RuntimeError, match="a bug"):
            main(argv)
    assert not (out / LOCK_FILE).exists()
    assert load_checkpoint(out)[3]["iteration"] == "7" and read_metrics(out)[:, 0].tolist() == list(range(1, 8))


# -- storage faults --------------------------------------------------------------------------------
class HalfWrittenFile:
    """A file object that writes half of what it is given, then finds the disk full."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def fill_disk_at(monkeypatch, which: str):
    """Make the next write of ``which`` (``metrics.csv``, or a file saved via its temporary) fail halfway."""
    real_open, real_fdopen, real_mkstemp = open, os.fdopen, atomic.tempfile.mkstemp
    temp_of = {}

    def mkstemp(*args, prefix="", **kwargs):
        fd, name = real_mkstemp(*args, prefix=prefix, **kwargs)
        temp_of[fd] = prefix
        return fd, name

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        return HalfWrittenFile(f) if temp_of.get(fd, "").startswith(f".{which}.") else f

    def opener(path, *args, **kwargs):
        f = real_open(path, *args, **kwargs)
        return HalfWrittenFile(f) if os.path.basename(path) == which and "r+b" in args else f

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(atomic.os, "fdopen", fdopen)
    monkeypatch.setattr(metrics, "open", opener, raising=False)


@pytest.mark.parametrize("which", [METRICS_FILE, STATE_FILE, WEIGHTS_FILE])
def test_a_full_disk_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, which):
    trainer = MetaTrainer(tiny_config("sinusoid", "maml", steps=1))
    saver = Checkpointer(tmp_path, 2, every=0)

    def train_and_save(n):
        for _ in range(n):
            saver.add(trainer.step())
        saver.save(trainer.config, trainer.weights(), trainer.training_state())

    train_and_save(3)
    before, weights_3 = folder_bytes(tmp_path), trainer.weights()
    for _ in range(3):
        saver.add(trainer.step())
    with monkeypatch.context() as patch:
        fill_disk_at(patch, which)
        with pytest.raises(SaveFailed) as failed:
            saver.save(trainer.config, trainer.weights(), trainer.training_state())
    assert failed.value.reason == os.strerror(errno.ENOSPC)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()), "no temporary file is left"
    config, weights, _, metadata = load_checkpoint(tmp_path)
    if which == WEIGHTS_FILE:   # after the commit: the new checkpoint is whole, the old weights file is superseded
        assert failed.value.committed and metadata["iteration"] == "6" and saver.saved_iteration == 6
        assert (tmp_path / WEIGHTS_FILE).read_bytes() == before[WEIGHTS_FILE]
        assert all(torch.equal(load_run(tmp_path)[1][n], weights[n]) for n in weights)
    else:
        assert not failed.value.committed and metadata["iteration"] == "3" and saver.saved_iteration == 3
        assert folder_bytes(tmp_path) == before, "every file of the previous checkpoint is unchanged"
        assert all(torch.equal(weights[n], weights_3[n]) for n in weights_3) and config == trainer.config
    train_and_save(2)   # the disk has room again: nothing lost, nothing twice
    assert read_metrics(tmp_path)[:, 0].tolist() == list(range(1, 9)) and saver.saved_iteration == 8


def test_train_on_a_full_disk_warns_once_goes_on_and_fails_the_final_save(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real_step, real_fsync = MetaTrainer.step, os.fsync
    full = {"on": False}

    def step(self, batch=None):
        full["on"] = True   # the first checkpoint (iteration 0) is saved; every later save finds the disk full
        return real_step(self, batch)

    def fsync(fd):
        if full["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(MetaTrainer, "step", step)
    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(Checkpointer, "BUDGET", 1.0)   # a save every few iterations, however slow the disk
    assert main(["train", "--iterations", "300", *FAST, "--save-every", "0.001", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    lines = [line for line in captured.err.strip().splitlines() if " note: " not in line]
    warning = (f"maml-gui: warning: cannot save checkpoint to {out}: No space left on device; "
               "the previous checkpoint (iteration 0) is intact; training goes on")
    assert lines[0] == warning and lines.count(warning) == 1, "one line for the whole streak, not one per attempt"
    assert lines[-1].startswith(f"maml-gui: error: cannot save the final checkpoint to {out}: No space left on device; "
                                "the previous checkpoint (iteration 0) is intact")
    assert "300 iterations" in captured.out and "NOT saved" in captured.out
    assert load_checkpoint(out)[3]["iteration"] == "0" and read_metrics(out) is None and not (out / LOCK_FILE).exists()
    monkeypatch.undo()
    assert main(["train", "--resume", str(out), "--iterations", "20"]) == 0
    assert read_metrics(out)[:, 0].tolist() == list(range(1, 21))


def test_a_long_outage_stops_training_before_memory_runs_out(tmp_path, monkeypatch, capsys):
    import core.cli.train

    out = tmp_path / "run"
    assert main(["train", "--iterations", "3", *FAST, "--out", str(out)]) == 0
    monkeypatch.setattr(core.cli.train, "PENDING_LIMIT", 100)
    monkeypatch.setattr(Checkpointer, "BUDGET", 1.0)
    fill_disk_at(monkeypatch, STATE_FILE)
    monkeypatch.setattr(metrics, "open", open)   # metrics appends still work; the state never does
    assert main(["train", "--resume", str(out), "--iterations", "100000", "--save-every", "0.001"]) == 1
    captured = capsys.readouterr()
    assert "stopped: no checkpoint could be saved" in captured.out and "outgrew" in captured.out
    assert load_checkpoint(out)[3]["iteration"] == "3" and read_metrics(out)[:, 0].tolist() == [1, 2, 3]


# -- the interval ------------------------------------------------------------------------------------
def test_slow_saves_stretch_the_interval_to_keep_saving_under_one_percent(tmp_path, monkeypatch):
    clock = {"now": 100.0}
    real_write = checkpoint.atomic_write

    def slow_write(path, data, **kwargs):
        clock["now"] += 0.02
        real_write(path, data, **kwargs)

    monkeypatch.setattr(checkpoint, "atomic_write", slow_write)
    trainer = MetaTrainer(tiny_config())
    saver = Checkpointer(tmp_path, 2, every=1.0, clock=lambda: clock["now"])
    assert not saver.due()
    clock["now"] += 1.0
    assert saver.due()
    saver.save(trainer.config, trainer.weights(), trainer.training_state())   # 3 files: 0.06 s
    assert saver.last_seconds == pytest.approx(0.06) and saver.interval == pytest.approx(6.0)
    clock["now"] += 5.9
    assert not saver.due()
    clock["now"] += 0.2
    assert saver.due()
    assert not Checkpointer(tmp_path / "off", 2, every=0, clock=lambda: 1e9).due(), "0: only when asked"


def test_help_documents_force_save_every_and_resuming_after_a_crash(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--force" in text and "--save-every SECONDS" in text and "default 60" in text
    assert "kill -9" in text and "maml-gui train --resume OUT" in text and "last checkpoint" in text
    assert ".lock" in text


def test_checkpoint_files_are_consistent_and_self_contained(tmp_path):
    """The training state alone is a checkpoint: settings, weights, optimiser and iteration."""
    trainer = MetaTrainer(tiny_config("sinusoid", "metasgd", steps=2))
    saver = Checkpointer(tmp_path, 3, every=0)
    for _ in range(4):
        saver.add(trainer.step())
    saver.save(trainer.config, trainer.weights(), trainer.training_state())
    (tmp_path / WEIGHTS_FILE).unlink()
    config, weights, tensors, metadata = load_checkpoint(tmp_path)
    assert config == trainer.config and metadata["iteration"] == "4" and "task_generator" in tensors
    assert not any(k.startswith("weights.") for k in tensors)
    assert all(torch.equal(weights[n], trainer.weights()[n]) for n in weights) and set(weights) == set(trainer.weights())
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["algorithm"]["name"] == "metasgd"
