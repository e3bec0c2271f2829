"""Data-parallel meta-training (``train --nproc N``, torchrun): N processes follow the one-process
run up to rounding, and a process that dies, hangs or is told to stop ends the run loudly, with
rank 0's checkpoint intact and no process left behind. CPU, gloo on localhost, two processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core.storage.checkpoint import load_checkpoint, load_run
from core.storage.metrics import read_metrics
from core.cli.main import main
from tests.helpers import spawn_two_ranks, tiny_config

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
FAULTS = Path(__file__).resolve().parents[1] / "faults"
CONFIGS = {   # (config, meta-batch 5 over 2 processes: shares of 3 and 2 tasks)
    "maml, closed form": tiny_config("sinusoid", "maml", meta_batch=5),
    "meta-sgd, learned rates, two steps": tiny_config("sinusoid", "metasgd", steps=2, meta_batch=5),
    "first-order, blobs": tiny_config("blobs", "fomaml", steps=2, meta_batch=5, shots=2, query=3,
                                      params={"n_way": 3}),
    "reptile": tiny_config("linear", "reptile", steps=2, meta_batch=5),
}


def _gradients_worker(rank: int, folder: str) -> None:
    """One of two ranks: one step of each config on its seed's first batch; rank 0 saves the result."""
    from core.config import ExperimentConfig
    from core.training.distributed import Group
    from core.training.trainer import MetaTrainer

    group = Group.join((rank, 2, rank, 2), timeout=60)
    results = {}
    for name in CONFIGS:
        config = ExperimentConfig.from_json((Path(folder) / f"{len(results)}.json").read_text())
        trainer = MetaTrainer(config, group=group)
        m = trainer.step(trainer.sample_batch())
        results[name] = ([p.grad.clone() if p.grad is not None else None for p in trainer.meta_parameters()],
                         [m.meta_loss, m.grad_norm, *m.step_losses, *(m.step_accuracy or ())])
    if rank == 0:
        torch.save(results, Path(folder) / "results.pt")
    group.close()


def test_two_processes_compute_the_one_process_meta_gradient(tmp_path, monkeypatch):
    """The exchange's weighted sum is the mean over all T tasks, for weights and learned rates alike,
    also when the processes hold unequal shares (3 and 2 tasks)."""
    from core.training.trainer import MetaTrainer

    for i, config in enumerate(CONFIGS.values()):
        (tmp_path / f"{i}.json").write_text(config.to_json())
    spawn_two_ranks(_gradients_worker, tmp_path, monkeypatch)
    results = torch.load(tmp_path / "results.pt", weights_only=True)
    for name, config in CONFIGS.items():
        trainer = MetaTrainer(config)
        m = trainer.step(trainer.sample_batch())
        grads, numbers = results[name]
        assert [g is None for g in grads] == [p.grad is None for p in trainer.meta_parameters()], name
        for g, p in zip(grads, trainer.meta_parameters()):
            if g is not None:
                assert torch.allclose(g, p.grad, rtol=1e-5, atol=1e-6), name
        expected = [m.meta_loss, m.grad_norm, *m.step_losses, *(m.step_accuracy or ())]
        assert np.allclose(numbers, expected, rtol=1e-5, atol=1e-6), name
        assert any(g is not None and g.abs().max() > 1e-3 for g in grads), f"{name}: a vacuous comparison"


def _same_run(a: Path, b: Path, tolerance: float) -> None:
    wa, wb = load_run(a)[1], load_run(b)[1]
    assert set(wa) == set(wb)
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < tolerance
    ma, mb = read_metrics(a), read_metrics(b)
    columns = [0, 1, 2, *range(4, ma.shape[1] - 1)]   # all but the seconds and the wall time
    assert ma.shape == mb.shape and np.allclose(ma[:, columns], mb[:, columns], rtol=1e-4, atol=1e-5)


def test_nproc_2_follows_the_one_process_run(tmp_path, capfd):
    common = ["train", "--iterations", "50", "--meta-batch", "6", "--seed", "3", "--save-every", "0"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--nproc", "2", "--out", str(tmp_path / "two")]) == 0
    out = capfd.readouterr().out.strip().splitlines()
    assert len(out) == 2 and "2 processes" in out[1] and "50 iterations" in out[1], "rank 0 alone reports"
    _same_run(tmp_path / "one", tmp_path / "two", 1e-4)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def test_a_distributed_classification_run_resumes_exactly(tmp_path, capfd):
    """Learned rates, unequal shares, and --resume of a two-process run (rank 0 reads the checkpoint
    and hands it to the other) against one uninterrupted single-process run."""
    common = ["--family", "blobs", "--algorithm", "metasgd", "--meta-batch", "5", "--shots", "2", "--query", "3",
              "--seed", "5", "--save-every", "0"]
    assert main(["train", *common, "--iterations", "40", "--out", str(tmp_path / "one")]) == 0
    assert main(["train", *common, "--iterations", "20", "--nproc", "2", "--out", str(tmp_path / "two")]) == 0
    assert main(["train", "--resume", str(tmp_path / "two"), "--iterations", "40", "--nproc", "2"]) == 0
    _same_run(tmp_path / "one", tmp_path / "two", 1e-4)
    assert "20 iterations (20 to 40)" in capfd.readouterr().out.strip().splitlines()[-1]


def _launch(out: Path, *extra: str, fault: str | None = None) -> subprocess.Popen:
    env = {**os.environ, **({"MAML_TEST_FAULT": fault, "MAML_TEST_ROOT": str(ROOT),   # see faults/sitecustomize.py
                             "PYTHONPATH": os.pathsep.join([str(FAULTS), os.environ.get("PYTHONPATH", "")])}
                            if fault else {})}
    return subprocess.Popen([sys.executable, "-m", "core.cli", "train", "--nproc", "2", "--meta-batch", "4",
                             "--iterations", "100000000", "--out", str(out), *extra], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=60)
    finally:
        proc.kill()


def _processes_naming(out: Path) -> list[int]:
    """Live processes whose command line names the run folder (the launcher's children)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(out).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def _saved_and_consistent(out: Path) -> int:
    iteration = int(load_checkpoint(out)[3]["iteration"])
    assert read_metrics(out)[:, 0].tolist() == list(range(1, iteration + 1))
    assert not (out / ".lock").exists() and not _processes_naming(out)
    return iteration


def test_a_rank_that_dies_ends_the_run_in_seconds_naming_it(tmp_path):
    out = tmp_path / "run"
    start = time.monotonic()
    proc = _launch(out, "--save-every", "0.1", fault="die:1:30")
    _, err = _finish(proc)
    assert proc.returncode == 1 and time.monotonic() - start < 30
    lines = err.strip().splitlines()
    assert lines[-1].startswith("maml-gui: rank 1 exited with code -9 (SIGKILL) during iteration ~30;"), err
    assert f"continue with `maml-gui train --resume {out}`" in lines[-1]
    assert sum("rank 1" in line for line in lines) == 1 and "Traceback" not in err
    assert _saved_and_consistent(out) == 29, "rank 0 saved the last iteration both completed"


def test_a_rank_that_hangs_is_named_and_ended_after_the_rank_timeout(tmp_path):
    out = tmp_path / "run"
    proc = _launch(out, "--rank-timeout", "2", fault="hang:1:20")
    _, err = _finish(proc)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1].startswith("maml-gui: rank 1 stopped responding during iteration ~20 "
                                                   "(the others waited 2 s for it"), err
    assert _saved_and_consistent(out) == 19


def test_sigterm_to_the_launcher_stops_every_rank_and_rank_0_saves(tmp_path):
    out = tmp_path / "run"
    proc = _launch(out, "--save-every", "0.2")
    try:
        deadline = time.monotonic() + 60
        while read_metrics(out) is None:   # a first checkpoint with rows: the ranks are exchanging
            assert time.monotonic() < deadline and proc.poll() is None, "the run did not start"
            time.sleep(0.05)   # child processes: the run folder is the only thing to watch
        proc.send_signal(signal.SIGTERM)
    finally:
        stdout, err = _finish(proc)
    assert proc.returncode == 143, err
    iteration = _saved_and_consistent(out)
    assert f"stopped by SIGTERM at iteration {iteration:,}" in stdout and "2 processes" in stdout


def test_rank_0_refusing_the_arguments_is_one_line_and_exit_2(tmp_path):
    """The launcher adds nothing to rank 0's own refusal, and the waiting rank is ended."""
    out = tmp_path / "run"
    proc = _launch(out, "--meta-batch", "1")
    _, err = _finish(proc)
    assert proc.returncode == 2
    assert err.strip().splitlines() == [err.strip()] and "smaller than the 2 processes" in err
    assert not out.exists() and not _processes_naming(out)


def test_the_ranks_import_the_launchers_own_copy_of_core(tmp_path):
    """`train --nproc` started from another folder: each rank runs the very code of the launcher,
    not another copy of core found on the path (an installed one, say)."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os\nif os.environ.get('RANK'):\n    import core\n"
        "    open(os.path.join(os.environ['MAML_TEST_CORES'], os.environ['RANK']), 'w').write(core.__file__)\n")
    cores = tmp_path / "cores"
    cores.mkdir()
    env = {**os.environ, "PYTHONPATH": str(hook), "MAML_TEST_CORES": str(cores)}
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from core.cli.main import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, "train", "--nproc", "2", "--meta-batch", "4", "--iterations", "3",
                           "--out", str(tmp_path / "run")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=100)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in cores.iterdir()) == ["0", "1"]
    assert {(cores / r).read_text() for r in ("0", "1")} == {str(ROOT / "core" / "__init__.py")}
