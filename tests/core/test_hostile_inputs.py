"""Hostile arguments and leftovers: numbers out of range, runs that cannot fit in memory, special files,
names that are not UTF-8, metrics rows past a checkpoint, Ctrl-C in a save. One readable line, exit 2,
never a traceback, a hang or a silently wrong result."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from core.storage.checkpoint import STATE_FILE, WEIGHTS_FILE, load_checkpoint, save_run
from core.storage.metrics import METRICS_FILE
from core.cli.main import main
from core.config import AlgorithmSpec, ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from core.storage.schemas import RunFileError
from core.storage.lock import LOCK_FILE, RunLock, RunLocked, lock_holder
from core.training.trainer import MetaTrainer

HUGE = "99999999999999999999"
TINY = ["--family", "sinusoid", "--meta-batch", "2", "--shots", "3", "--query", "3"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile") / "run"
    assert main(["train", *TINY, "--iterations", "3", "--out", str(out)]) == 0
    return out


def one_line(capsys, *words) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


# -- numbers out of range (issue 25, item 2) ---------------------------------------------------------
@pytest.mark.parametrize("flag,value", [
    ("--seed", HUGE), ("--seed", "-1"), ("--iterations", "10000000000"), ("--meta-batch", "0"), ("--query", HUGE),
    ("--meta-lr", "inf"), ("--inner-lr", "nan"), ("--inner-steps", "1000"), ("--shots", "1e3"),
])
def test_train_flags_out_of_range_are_refused_at_parse_time(tmp_path, capsys, flag, value):
    assert main(["train", *TINY, flag, value, "--out", str(tmp_path / "r")]) == 2
    one_line(capsys, f"argument {flag}")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv", [["--seed", HUGE], ["--tasks", "0"], ["--tasks", "1000000000"], ["--query", HUGE],
                                  ["--shots", "-2"]])
def test_evaluate_flags_out_of_range(run, capsys, argv):
    assert main(["evaluate", str(run), *argv]) == 2
    one_line(capsys, f"argument {argv[0]}")


@pytest.mark.parametrize("argv", [["--seed", HUGE], ["--lr", "-1"], ["--lr", "inf"], ["--steps", HUGE]])
def test_adapt_flags_out_of_range(run, tmp_path, capsys, argv):
    data = tmp_path / "task.csv"
    data.write_text("x,y\n1,2\n2,3\n3,4\n")
    base = ["adapt", str(run), "--csv", str(data), "--target", "y", "--out", str(tmp_path / "a.safetensors")]
    assert main(base + (["--steps", "1"] if argv[0] != "--steps" else []) + argv) == 2
    one_line(capsys, f"argument {argv[0]}")


@pytest.mark.parametrize("argv", [["--rounds", HUGE], ["--memory", HUGE], ["--meta-batch", "0"], ["--seconds", "nan"]])
def test_bench_flags_out_of_range(capsys, argv):
    assert main(["bench", *argv]) == 2
    one_line(capsys, f"argument {argv[0]}")


def test_a_config_file_with_a_huge_seed_names_the_file_and_field(tmp_path, capsys):
    config = tmp_path / "exp.json"
    config.write_text(json.dumps({"train": {"seed": int(HUGE)}}))
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r")]) == 2
    one_line(capsys, "train.seed", "0..2147483647")
    config.write_text(json.dumps({"family": {"name": "sinusoid", "params": "abc"}}))
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r")]) == 2
    one_line(capsys, "family.params", "expected a JSON object")


# -- out of memory (issue 25 item 3, issue 26 item 8) ---------------------------------------------------
CAP = 6 << 30   # bytes of address space the child may map: torch itself takes a few hundred MB


@pytest.mark.timeout(120)
@pytest.mark.parametrize("argv,tip", [
    (["--family", "sinusoid", "--meta-batch", "4096", "--shots", "10000", "--query", "10000"], "meta-batch (now 4096)"),
    (["--family", "glyphs", "--model", "conv4", "--conv-channels", "256", "--meta-batch", "512", "--shots", "1",
      "--query", "15"], "conv channels (now 256)"),
])
def test_a_run_too_large_for_memory_is_refused_before_allocating(tmp_path, argv, tip):
    """In a child process whose address space is capped: exit 2 with what to change, not a crash."""
    out = tmp_path / "big"
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({CAP}, {CAP}))
        from core.cli.main import main
        sys.exit(main({["train", *argv, "--iterations", "1", "--out", str(out)]!r}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=110)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "needs about" in proc.stderr and tip in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def test_an_allocation_failure_during_training_is_one_line_naming_what_to_reduce(tmp_path, capsys, monkeypatch):
    def no_memory(self, batch=None):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 13107200000 bytes")

    monkeypatch.setattr(MetaTrainer, "step", no_memory)
    assert main(["train", *TINY, "--iterations", "5", "--out", str(tmp_path / "r")]) == 1
    out, err = capsys.readouterr()
    assert "out of memory at iteration 0" in out and "meta-batch" in out and "Traceback" not in err


def test_an_allocation_failure_in_evaluate_is_one_line(run, capsys, monkeypatch):
    import core.trained.evaluation

    def no_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 6270000000 bytes")

    monkeypatch.setattr(core.trained.evaluation, "evaluate", no_memory)
    assert main(["evaluate", str(run), "--tasks", "20000"]) == 1
    one_line(capsys, "out of memory", "--tasks")


# -- special files (issue 25 item 4) ---------------------------------------------------------------
def _child(argv, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "core.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.timeout(60)
def test_a_fifo_given_as_csv_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "tasks.csv"
    os.mkfifo(fifo)
    proc = _child(["train", "--csv", str(fifo), "--target", "y", "--out", str(tmp_path / "r")])
    _, err = proc.communicate(timeout=50)
    assert proc.returncode == 2 and "not a regular file" in err and "tasks.csv" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
    with pytest.raises(OSError):   # nobody opened it for reading: a writer cannot open it without blocking
        os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)


@pytest.mark.timeout(60)
def test_every_reader_refuses_a_special_file_in_one_wording(tmp_path):
    """The CSV reader, a folder of task files, a run file and an export target each worded a FIFO
    their own way ("is not a regular file (a named pipe, device or socket)", "is a named pipe (FIFO),
    not a regular file"); one helper words them all, and none opens it."""
    from core.data.csv_reader import read_csv
    from core.errors import MamlError
    from core.storage.schemas import regular_file
    from core.tasks.csv_data import expand_paths
    from core.trained.export import _check_targets

    fifo = tmp_path / "x.csv"
    os.mkfifo(fifo)
    said = []
    for refuse in (lambda: read_csv(fifo), lambda: expand_paths([str(tmp_path)]), lambda: regular_file(fifo),
                   lambda: _check_targets({fifo: None}, force=True)):
        with pytest.raises(MamlError) as info:
            refuse()
        said.append(str(info.value))
    assert all("x.csv" in text and "is a named pipe (FIFO), not a regular file" in text for text in said), said


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name,argv", [("w.pt", ["evaluate", "{fifo}"]), ("exp.json", ["train", "--config", "{fifo}"]),
                                       ("w.safetensors", ["export", "{fifo}", "--out", "{tmp}/e.safetensors"])])
def test_a_fifo_in_place_of_any_file_is_refused_in_process(tmp_path, capsys, name, argv):
    """In-process: a FIFO that got opened would block this very test (the mark's timeout fails it)."""
    fifo = tmp_path / name
    os.mkfifo(fifo)
    argv = [a.format(fifo=fifo, tmp=tmp_path) for a in argv]
    assert main([*argv, *(["--out", str(tmp_path / "r")] if argv[0] == "train" else [])]) == 2
    one_line(capsys, name, "not a regular")


@pytest.mark.timeout(60)
def test_sigterm_while_reading_data_ends_the_run_and_leaves_no_lock(tmp_path):
    """A read that blocks (here: the family's data read patched to wait on a FIFO nobody writes)
    is interrupted by SIGTERM; the process ends within a second or so, with its lock removed."""
    fifo, out = tmp_path / "never", tmp_path / "r"
    os.mkfifo(fifo)
    code = textwrap.dedent(f"""
        import sys, core.config, core.tasks
        def blocking(spec):
            open({str(fifo)!r}).read()
        core.tasks.build_family = core.config.build_family = blocking   # validation builds the family once
        from core.cli.main import main
        sys.exit(main(["train", "--iterations", "5", "--out", {str(out)!r}]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not (out / LOCK_FILE).exists():   # a child process: its folder is the only thing to watch
            assert proc.poll() is None, proc.stderr.read()
            try:
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 143 and "stopped by SIGTERM before training started" in err and "Traceback" not in err
    assert not out.exists(), "the lock and the folder it created are gone"


# -- names that are not UTF-8 (issue 25 item 5) ---------------------------------------------------------
def test_export_to_a_file_name_that_is_not_utf8(run, tmp_path, capsys):
    name = os.fsdecode(b"caf\xe9.safetensors")
    assert main(["export", str(run), "--out", str(tmp_path / name)]) == 0
    out = capsys.readouterr().out
    assert "exported safetensors to" in out and ("\\udce9" in out or "\\xe9" in out), out
    assert (tmp_path / name).is_file()
    readme = (tmp_path / (name + ".README.txt")).read_bytes()
    assert b"caf\xe9.safetensors" in readme


# -- locks (issue 25 item 1, issue 26 item 15) ------------------------------------------------------
@pytest.mark.parametrize("pid,words", [(int(HUGE), '"pid" must be a process id'), (True, "found true"),
                                       ("12", 'found "12"')])
def test_a_lock_with_an_impossible_pid_is_named_not_a_traceback(tmp_path, pid, words):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    assert lock_holder(tmp_path)["pid"] is None   # unreadable: someone may still write the folder
    with pytest.raises(RunLocked) as refused:
        RunLock(tmp_path).acquire()
    assert words in str(refused.value) and "pid True" not in str(refused.value)


def test_a_lock_replaced_by_a_fifo_does_not_block(tmp_path):
    os.mkfifo(tmp_path / LOCK_FILE)
    with pytest.raises(RunLocked, match="cannot be read"):
        RunLock(tmp_path).acquire()


# -- training state (issue 25 item 1, issue 26 item 15) ----------------------------------------------
def test_a_broadcastable_adam_moment_is_refused_by_exact_shape(run):
    config, _, tensors, metadata = load_checkpoint(run)
    trainer = MetaTrainer(config)
    tensors = dict(tensors)
    tensors["optimizer.1.exp_avg"] = torch.zeros(1)   # the bias has 40; (1,) would broadcast into it
    with pytest.raises(RunFileError, match=r"optimizer.1.exp_avg: has shape \(1,\), the network needs \(40,\)"):
        trainer.load_training_state(tensors, metadata, source=run / STATE_FILE)


def test_adapt_refuses_csv_for_an_image_run_in_one_line(tmp_path, capsys):
    config = ExperimentConfig(family=FamilySpec("glyphs", {"image_size": 12, "n_alphabets": 6, "characters": 4,
                                                            "examples": 6, "n_way": 3}),
                              model=ModelSpec(name="conv4", conv_channels=4, conv_depth=2),
                              algorithm=AlgorithmSpec("maml"), train=TrainSpec(meta_batch=2, shots=1, query=2))
    trainer = MetaTrainer(config)
    save_run(tmp_path / "glyphs", config, trainer.weights(), [])
    data = tmp_path / "task.csv"
    data.write_text("x,y\n1,2\n2,3\n")
    assert main(["adapt", str(tmp_path / "glyphs"), "--csv", str(data), "--target", "y", "--steps", "1",
                 "--out", str(tmp_path / "a.safetensors")]) == 2
    one_line(capsys, "learned images", "--images")


# -- metrics past the checkpoint (issue 26 item 4) ------------------------------------------------------
@pytest.mark.parametrize("tail", [b"a line of text\n", b"\0" * 200 + b"\n"])
def test_resume_cuts_rows_past_the_checkpoint_whatever_follows(tmp_path, capsys, tail):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--iterations", "200", "--save-every", "0", "--out", str(out)]) == 0
    metrics = out / METRICS_FILE
    rows = metrics.read_bytes().splitlines(keepends=True)
    last = rows[-1].split(b",", 1)[1]
    extra = b"".join(f"{i},".encode() + last for i in range(201, 251))   # rows a crash left past the checkpoint
    metrics.write_bytes(b"".join(rows) + extra + tail)
    assert main(["train", "--resume", str(out), "--iterations", "220"]) == 0
    capsys.readouterr()
    iterations = [line.split(b",", 1)[0] for line in metrics.read_bytes().splitlines()[1:]]
    assert iterations == [str(i).encode() for i in range(1, 221)]


# -- Ctrl-C in a save (issue 26 item 14) ------------------------------------------------------------
def test_ctrl_c_during_a_save_leaves_no_temporary_file(tmp_path, capsys, monkeypatch):
    fsync, seen = os.fsync, []

    def interrupted(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if f".{STATE_FILE}." in target:
            seen.append(target)
            if len(seen) == 2:   # the final checkpoint's training state, half written
                raise KeyboardInterrupt
        fsync(fd)

    monkeypatch.setattr(os, "fsync", interrupted)
    out = tmp_path / "run"
    assert main(["train", *TINY, "--iterations", "20", "--save-every", "0", "--out", str(out)]) == 130
    capsys.readouterr()
    assert len(seen) == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(["config.json", METRICS_FILE, STATE_FILE, WEIGHTS_FILE])
    monkeypatch.setattr(os, "fsync", fsync)
    assert int(load_checkpoint(out)[3]["iteration"]) == 0   # the previous checkpoint is intact


def test_labelled_rows_with_values_near_float64s_max_are_standardised_as_csv_tasks_are(tmp_path, capsys):
    """The mean of such a column overflowed: numpy's two-line RuntimeWarnings reached stderr (issue 26,
    item 5). Its statistics are now the CSV family's (no overflow), so the file trains, warned about as
    a CSV regression file with such values is; a column whose centring itself overflows is refused
    in one line naming row and column."""
    data = tmp_path / "rows.csv"
    rows = [f"{1e308 if i == 2 else k + i / 10},{i},c{k}" for k in range(10) for i in range(5)]
    data.write_text("size,other,label\n" + "\n".join(rows) + "\n")
    argv = ["train", "--csv", str(data), "--target", "label", "--classification", "--ways", "2", "--shots", "1",
            "--query", "1", "--iterations", "1", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "input column 'size': the value 1e+308 at rows.csv line 4 sets the column's scale" in err, err
    assert "RuntimeWarning" not in err

    rows = [f"{1.7e308 if (k, i) == (0, 2) else -1.7e308 + k * 1e306 + i * 1e305},{i},c{k}"
            for k in range(10) for i in range(5)]
    data.write_text("size,other,label\n" + "\n".join(rows) + "\n")
    assert main([*argv[:-1], str(tmp_path / "r2")]) == 2
    err = one_line(capsys, "rows.csv, line 4, column 'size'", "1.7e+308 is too large for the model's 32-bit numbers")
    assert "RuntimeWarning" not in err and not (tmp_path / "r2" / WEIGHTS_FILE).exists()


def test_labelled_rows_flattened_by_one_extreme_value_are_warned_about(tmp_path, capsys):
    """One 1e308 among small values: standardising made every other value of the column one float32
    number, and the run trained without a word."""
    data = tmp_path / "rows.csv"
    rows = [f"{1e308 if (k, i) == (3, 2) else k + i / 10},{i},c{k}" for k in range(10) for i in range(5)]
    data.write_text("size,other,label\n" + "\n".join(rows) + "\n")
    argv = ["train", "--csv", str(data), "--target", "label", "--classification", "--ways", "2", "--shots", "1",
            "--query", "1", "--iterations", "1", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "input column 'size': the value 1e+308 at rows.csv line 19 sets the column's scale" in err, err
    assert "column 'other'" not in err   # an ordinary column is not warned about


def test_evaluate_refuses_held_out_tasks_that_cannot_fit_before_drawing_them(run, tmp_path):
    """The held-out tasks are drawn at once: 100,000 tasks of 2000 + 2000 points took the machine's
    memory (the chunked adaptation does not bound the draw). Under a 3 GiB address-space cap in a
    child process the refusal is one line, exit 2, naming a --tasks that fits."""
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
            "from core.cli.main import main; sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", code, "evaluate", str(run), "--tasks", "100000", "--shots", "2000",
                             "--query", "2000"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("maml-gui evaluate: 100,000 held-out tasks of 2000 shots and 2000 query points "
                                    "need about 8.9 GiB but only") and result.stderr.count("\n") == 1
    fits = int(result.stderr.split("use --tasks ")[1].split(" or fewer")[0].replace(",", ""))
    assert 1 <= fits < 100_000


def test_adapt_a_labelled_rows_run_to_a_csv_with_more_labels_than_its_ways(tmp_path, capsys):
    """30 labels for a 3-way head ended in "support.y: class labels must be in 0..2", naming neither
    the file nor the column."""
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b,label\n" + "".join(f"{k + i / 10},{i},c{k}\n" for k in range(30) for i in range(6)))
    run = tmp_path / "run"
    assert main(["train", "--csv", str(rows), "--target", "label", "--classification", "--ways", "3", "--shots", "1",
                 "--query", "2", "--iterations", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["adapt", str(run), "--csv", str(rows), "--target", "label", "--shots", "1", "--steps", "1",
                 "--out", str(tmp_path / "a.safetensors")]) == 2
    one_line(capsys, "rows.csv, column 'label': holds 30 labels of 'label'; the network tells apart 2 to 3")
    assert not (tmp_path / "a.safetensors").exists()


def test_resume_to_fewer_iterations_than_done_is_refused(tmp_path, capsys):
    """--iterations 2 on a run at iteration 3 "completed" 0 iterations and rewrote config.json to a
    total of 2 while the weights had 3."""
    out = tmp_path / "run"
    assert main(["train", *TINY, "--iterations", "3", "--out", str(out)]) == 0
    before = (out / "config.json").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--iterations", "2"]) == 2
    one_line(capsys, "is at iteration 3 already; --iterations is the new total: give 3 or more")
    assert (out / "config.json").read_text() == before and not (out / LOCK_FILE).exists()
    assert main(["train", "--resume", str(out), "--iterations", "3"]) == 0


def test_resume_names_another_runs_weights_file_copied_in(tmp_path, capsys):
    """A whole, valid weights file of another run (linear, not sinusoid) in the run folder: the
    resume used the checkpoint's copy, as it must, but overwrote that file without a word."""
    out, other = tmp_path / "run", tmp_path / "other"
    assert main(["train", *TINY, "--iterations", "3", "--out", str(out)]) == 0
    assert main(["train", *TINY[2:], "--family", "linear", "--iterations", "3", "--out", str(other)]) == 0
    (out / WEIGHTS_FILE).write_bytes((other / WEIGHTS_FILE).read_bytes())
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--iterations", "5"]) == 0
    err = capsys.readouterr().err
    assert f"{out / WEIGHTS_FILE} holds the weights of other settings than the checkpoint's (family" in err
    assert "the checkpoint's own copy is used and its next save replaces the file" in err
    assert load_checkpoint(out)[0].family.name == "sinusoid"


@pytest.mark.parametrize("name", ["config.json", "metrics.csv"])
def test_resume_refuses_a_folder_where_it_rewrites_a_file(tmp_path, capsys, name):
    """A folder in place of config.json trained to the end, then failed its final save ("weights file
    could not be updated: Is a directory", exit 1): refused before training, naming it."""
    out = tmp_path / "run"
    assert main(["train", *TINY, "--iterations", "3", "--out", str(out)]) == 0
    (out / name).unlink()
    (out / name).mkdir()
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--iterations", "5"]) == 2
    one_line(capsys, f"{out / name} is a folder, not a regular file; the resumed run rewrites it")
    assert not (out / LOCK_FILE).exists()


@pytest.mark.parametrize("odd", ["fifo", "broken link", "device link"])
def test_a_csv_folder_holding_a_special_file_names_it(tmp_path, capsys, odd):
    """A FIFO, a broken link or a link to a device named *.csv in a folder of task files was left
    out without a word: the data set silently lost a task."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    for t in range(8):
        (folder / f"t{t}.csv").write_text("x,y\n" + "".join(f"{i},{2 * i + t}\n" for i in range(10)))
    special = folder / "zz.csv"
    if odd == "fifo":
        os.mkfifo(special)
    else:
        special.symlink_to(tmp_path / "gone.csv" if odd == "broken link" else "/dev/zero")
    assert main(["train", "--csv", str(folder), "--target", "y", "--shots", "3", "--query", "3", "--iterations", "1",
                 "--out", str(tmp_path / "r")]) == 2
    kind = {"fifo": "a named pipe (FIFO)", "broken link": "a broken link", "device link": "a device"}[odd]
    one_line(capsys, f"zz.csv: is {kind}, not a regular file; move it out of the folder")
