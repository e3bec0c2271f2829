"""The compiled meta-step: the same meta-gradient as eager, and never a failed run.

Compiling costs seconds per graph even for tiny networks, so inductor (what users get) compiles
one case per gradient path (one-step kernels, closed form with classification and learned
rates, batched autograd); the other algorithms go through the same tracing with the
``aot_eager`` backend, which checks what this project controls (the traced program is the
eager one, its iteration-dependent settings frozen right) without generating C++. Kernels are
cached in a temporary folder, never the user's. Speed is ``maml-gui bench --compile``'s job.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

import pytest
import torch

from core.cli.main import main
from core.training.compiled import MetaStep, cache_folder, meta_step_numbers, unsupported
from core.config import ExperimentConfig
from core.training.trainer import MetaTrainer

from ..helpers import tiny_config

# (algorithm, inner steps, activation, family); the worker, cache and CLI tests compile the first one's graph again
INDUCTOR_CASES = [
    ("maml", 1, "relu", "sinusoid"),     # one-step kernels, second order
    ("metasgd", 2, "relu", "blobs"),     # closed form, learned per-weight rates, classification
    ("maml", 1, "gelu", "sinusoid"),     # batched autograd (no hand-written derivative), second order
]
TRACED_CASES = [
    ("fomaml", 1, "relu", "blobs"),      # one-step kernels, first order, classification
    ("maml", 2, "tanh", "sinusoid"),     # closed form with the activation's second derivative
    ("mamlpp", 2, "relu", "sinusoid"),   # per-step rates; multi-step loss weights and second order frozen
    ("anil", 1, "relu", "blobs"),        # batched autograd, head only
    ("reptile", 2, "relu", "sinusoid"),
    ("pretrain", 1, "relu", "blobs"),
]
TOLERANCE = 1e-6
# importing inductor trips torch's own deprecation warnings (torch.jit); pytest turns warnings into errors
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")


@pytest.fixture(scope="module", autouse=True)
def private_kernel_cache(tmp_path_factory):
    """Inductor writes to a temporary folder for this module, never the user's cache folder; the
    dynamo settings compiling makes (in this thread) do not outlive the module."""
    import torch._dynamo

    patch = pytest.MonkeyPatch()
    patch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path_factory.mktemp("inductor-cache")))
    settings = {name: getattr(torch._dynamo.config, name) for name in ("trace_autograd_ops", "fail_on_recompile_limit_hit")}
    yield
    patch.undo()
    for name, value in settings.items():
        setattr(torch._dynamo.config, name, value)


def config(algorithm="maml", steps=1, activation="relu", family="sinusoid", compile="on") -> ExperimentConfig:
    shots, query = (2, 2) if family == "blobs" else (5, 5)
    return (tiny_config(family, algorithm, steps, (8,), activation, meta_batch=3, shots=shots, query=query)
            .replace("algorithm", msl_iterations=2, first_order_iterations=1)   # MAML++ settles at iteration 2
            .replace("train", compile=compile))


def gradients(trainer: MetaTrainer) -> dict[str, torch.Tensor]:
    names = [*trainer.params, *(f"inner_lr.{n}" for n in trainer.rates.tensors)]
    return {n: p.grad.clone() for n, p in zip(names, trainer.meta_parameters()) if p.grad is not None}


def assert_same_step(trainer: MetaTrainer, iteration: int) -> None:
    """The compiled step and the eager one, on the same weights and batch: same numbers, same gradients."""
    if trainer.algorithm.rate_mode != "fixed":   # rates away from their initial value, so a wrong broadcast shows
        with torch.no_grad():
            for t in trainer.rates.tensors.values():
                t.copy_(torch.rand(t.shape, generator=torch.Generator().manual_seed(1)) * 0.09 + 0.01)
    batch = trainer.sample_batch()
    calls = []
    step = trainer._meta_step
    compiled_fn = step._fn
    step._fn = lambda *args: calls.append(1) or compiled_fn(*args)
    trainer.optimizer.zero_grad()
    before = step._state()
    compiled = step(trainer.params, trainer.rates, batch, iteration)
    assert calls, "the compiled step ran"
    assert step.updated, "the compiled step took the Adam step"
    got = gradients(trainer)
    after = step._state()
    step._restore(before)   # Adam from the same state with the compiled gradients: the traced update is Adam's
    trainer.optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, after)), "the weights moved"
    for name, (want_t, got_t) in enumerate(zip(step._state(), after)):
        torch.testing.assert_close(got_t, want_t, atol=TOLERANCE, rtol=TOLERANCE, msg=f"updated tensor {name}")
    step._restore(before)
    trainer.optimizer.zero_grad()
    eager = meta_step_numbers(trainer.algorithm, trainer.meta_parameters(), trainer.params, trainer.rates, batch,
                              iteration)
    want = gradients(trainer)
    trainer.optimizer.zero_grad()
    assert set(got) == set(want) and want
    torch.testing.assert_close(compiled, eager, atol=TOLERANCE, rtol=TOLERANCE)
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=TOLERANCE, rtol=TOLERANCE, msg=name)


@pytest.mark.parametrize("algorithm,steps,activation,family", INDUCTOR_CASES)
def test_compiled_meta_gradient_equals_eager(algorithm, steps, activation, family, caplog):
    trainer = MetaTrainer(config(algorithm, steps, activation, family))
    with caplog.at_level(logging.INFO, logger="core.training.compiled"):
        note = trainer.compile_step()
    assert trainer.compiled and note.startswith("the meta-step is compiled"), note
    assert "failed" not in caplog.text, "compiled with the first options (C++ wrapper, small products pass)"
    assert str(cache_folder()) in note and trainer.gradient_path.endswith(", compiled")
    assert_same_step(trainer, iteration=0)


@pytest.mark.parametrize("algorithm,steps,activation,family", TRACED_CASES)
def test_traced_meta_step_equals_eager_for_every_algorithm(algorithm, steps, activation, family):
    trainer = MetaTrainer(config(algorithm, steps, activation, family))
    assert trainer.compile_step(backend="aot_eager").startswith("the meta-step is compiled")
    assert_same_step(trainer, iteration=5)


def test_mamlpp_runs_eager_until_its_settings_settle():
    """The graph is traced with MAML++'s final settings; iterations that anneal run eager."""
    trainer = MetaTrainer(config("mamlpp", 2))
    trainer.compile_step(backend="aot_eager")
    calls = []
    compiled_fn = trainer._meta_step._fn
    trainer._meta_step._fn = lambda *args: calls.append(trainer.iteration) or compiled_fn(*args)
    for _ in range(4):
        trainer.step()
    assert calls == [2, 3]


def test_a_compile_error_leaves_the_run_eager_with_one_line():
    def failing(graph, example_inputs):
        raise RuntimeError("no kernels today\nsecond line")

    trainer, reference = MetaTrainer(config()), MetaTrainer(config(compile="off"))
    note = trainer.compile_step(backend=failing)
    assert not trainer.compiled and "\n" not in note
    assert note.startswith("the meta-step runs eager: compiling failed") and "no kernels today" in note
    assert all(p.grad is None for p in trainer.meta_parameters())
    for _ in range(3):
        got, want = trainer.step(), reference.step()
        assert (got.meta_loss, got.step_losses, got.grad_norm) == (want.meta_loss, want.step_losses, want.grad_norm)


def test_a_compiled_step_that_fails_later_falls_back_to_eager(caplog):
    def flaky(graph, example_inputs):
        runs = []

        def run(*args):
            runs.append(1)
            if len(runs) > 1:
                raise RuntimeError("kernel crashed")
            return graph(*args)

        return run

    trainer, reference = MetaTrainer(config()), MetaTrainer(config(compile="off"))
    assert trainer.compile_step(backend=flaky).startswith("the meta-step is compiled")
    got, want = trainer.step(), reference.step()
    assert not trainer.compiled and "kernel crashed" in trainer.compile_failure
    assert "continues eager" in caplog.text
    assert got.meta_loss == want.meta_loss and got.step_losses == want.step_losses
    assert all(torch.equal(trainer.params[n], reference.params[n]) for n in trainer.params)


def no_cpp_compiler(monkeypatch):
    """Inductor finds no C++ compiler (patched where it looks, so every thread sees it)."""
    import torch._inductor.cpp_builder
    from torch._inductor.exc import InvalidCxxCompiler

    def search():
        raise InvalidCxxCompiler()

    monkeypatch.setattr(torch._inductor.cpp_builder, "get_cpp_compiler", search)


def test_no_cpp_compiler_or_no_dynamo_means_eager(monkeypatch):
    import torch._dynamo.eval_frame

    no_cpp_compiler(monkeypatch)
    assert unsupported(torch.device("cpu")) == "no C++ compiler found (torch.compile needs one for CPU kernels)"
    trainer = MetaTrainer(config())
    assert trainer.compile_step() == ("the meta-step runs eager: no C++ compiler found "
                                      "(torch.compile needs one for CPU kernels)")
    assert not trainer.compiled and trainer.step().iteration == 1

    def unsupported_python():
        raise RuntimeError("Python 3.99 is not supported")

    monkeypatch.setattr(torch._dynamo.eval_frame, "check_if_dynamo_supported", unsupported_python)
    assert unsupported(torch.device("cpu")).startswith("torch.compile is not supported here")


def test_auto_stays_eager_for_a_short_run_and_off_does_nothing():
    short = MetaTrainer(config(compile="auto").replace("train", iterations=50))
    assert "too short to pay for compiling" in short.compile_step() and not short.compiled
    assert all(p.grad is None for p in short.meta_parameters()) and short.iteration == 0
    assert MetaTrainer(config(compile="off")).compile_step() is None


def test_compiling_leaves_the_task_stream_and_weights_untouched():
    """A run that compiles trains exactly like one that does not, up to float rounding: compiling
    draws no training task and changes no weight."""
    compiled, eager = MetaTrainer(config(compile="on")), MetaTrainer(config(compile="off"))
    compiled.compile_step(backend="aot_eager")
    assert torch.equal(compiled.tasks.get_state(), eager.tasks.get_state())
    assert all(torch.equal(compiled.params[n], eager.params[n]) for n in eager.params)


def test_a_non_finite_compiled_step_leaves_weights_and_adam_untouched():
    """The compiled step takes Adam's step in the same graph, guarded: a NaN meta-loss changes nothing."""
    from core.errors import TrainingDiverged

    trainer = MetaTrainer(config(compile="on"))
    trainer.compile_step(backend="aot_eager")
    trainer.step()
    before = trainer._meta_step._state()
    batch = trainer.sample_batch()
    batch.query_y[0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match="weights from iteration 1 were kept"):
        trainer.step(batch)
    assert all(torch.equal(a, b) for a, b in zip(before, trainer._meta_step._state()))
    assert trainer.iteration == 1 and trainer.step().iteration == 2


def test_a_new_meta_lr_reaches_the_compiled_adam_step():
    trainer = MetaTrainer(config(compile="on"))
    trainer.compile_step(backend="aot_eager")
    trainer.step()
    trainer.set_meta_lr(0.0)
    before = {n: p.detach().clone() for n, p in trainer.params.items()}
    trainer.step()
    assert trainer._meta_step.updated and all(torch.equal(before[n], p) for n, p in trainer.params.items())
    trainer.set_meta_lr(0.01)
    trainer.step()
    assert trainer.compiled and any(not torch.equal(before[n], p) for n, p in trainer.params.items())


def test_conv_nets_run_eager_and_say_why():
    glyphs = {"n_alphabets": 5, "characters": 4, "examples": 4, "image_size": 12, "n_way": 2}
    config = (tiny_config("glyphs", params=glyphs, meta_batch=2, shots=1, query=1)
              .replace("model", name="conv4", conv_channels=4, conv_depth=2).replace("train", compile="on"))
    trainer = MetaTrainer(config)
    note = trainer.compile_step()
    assert note.startswith("the meta-step runs eager: conv nets are not compiled") and not trainer.compiled
    assert trainer.step().iteration == 1


def test_cache_folder_is_the_users_cache_unless_chosen(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("sys.platform", "linux")
    users = tmp_path / "cache" / "maml-explorer" / "torch-compile"
    assert cache_folder() == users
    no_cpp_compiler(monkeypatch)   # no compile, but inductor is pointed there before it looks for a compiler
    assert "no C++ compiler" in MetaTrainer(config()).compile_step()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(users) and cache_folder() == users
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_folder() == tmp_path / "mine"


def test_deleting_the_cache_is_harmless():
    """With the kernel cache gone, the next compile rebuilds it and gives the same step."""
    shutil.rmtree(cache_folder(), ignore_errors=True)
    trainer = MetaTrainer(config())
    assert trainer.compile_step().startswith("the meta-step is compiled")
    assert cache_folder().is_dir() and any(cache_folder().iterdir())
    assert_same_step(trainer, iteration=0)


def test_a_resumed_run_may_switch_between_compiled_and_eager(tmp_path, capsys):
    run = tmp_path / "run"
    (tmp_path / "tiny.json").write_text(config(compile="off").to_json())
    assert main(["train", "--config", str(tmp_path / "tiny.json"), "--iterations", "3", "--out", str(run)]) == 0
    assert main(["train", "--resume", str(run), "--iterations", "5", "--compile"]) == 0
    out = capsys.readouterr()
    assert "compiling the meta-step…" in out.err and "the meta-step is compiled" in out.err
    assert "2 iterations (3 to 5)" in out.out and ", compiled)" in out.out   # this process did 3 to 5
    assert json.loads((run / "config.json").read_text())["train"]["compile"] == "on"
    assert main(["train", "--resume", str(run), "--iterations", "6", "--compile", "off"]) == 0
    assert "compiled" not in capsys.readouterr().out
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + 6


def test_meta_step_without_compile_is_plain_eager():
    trainer = MetaTrainer(config(compile="off"))
    step = MetaStep(trainer.algorithm, trainer.meta_parameters(), trainer.device)
    assert not step.compiled
    numbers = step(trainer.params, trainer.rates, trainer.sample_batch(), 0)
    assert numbers.shape == (2 + 2,) and all(p.grad is not None for p in trainer.params.values())


# -- the window ---------------------------------------------------------------------------------
def run_worker(qtbot, cfg: ExperimentConfig):
    """Train ``cfg`` in the window's worker; (notices, RunStarted, RunEnd, GUI timer ticks while compiling)."""
    from PySide6.QtCore import QTimer

    from maml_gui.jobs.training import WorkerOptions, live_threads
    from maml_gui.jobs.training_controller import TrainingController

    controller = TrainingController(options=WorkerOptions(eval_tasks=4, baseline=False))
    notices, started, ends, ticks = [], [], [], []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(1) if notices and not started else None)
    controller.notice.connect(notices.append)
    controller.started.connect(started.append)
    controller.finished.connect(ends.append)
    timer.start()
    try:
        with qtbot.waitSignal(controller.running_changed, timeout=180_000, check_params_cb=lambda active: not active):
            controller.start(cfg)
    finally:
        timer.stop()
        controller.shutdown()
    assert live_threads() == []
    return notices, started[0], ends[0], len(ticks)


def test_the_window_compiles_in_the_worker_and_says_so(qtbot):
    notices, started, end, ticks = run_worker(qtbot, config().replace("train", iterations=20))
    assert notices[0] == "compiling the meta-step…" and notices[1].startswith("the meta-step is compiled")
    assert ticks > 0, "the GUI thread kept running while the worker compiled"
    assert started.gradient_path.endswith(", compiled") and end.reason == "completed" and end.iteration == 20


def test_the_window_runs_eager_when_compiling_cannot_work(qtbot, monkeypatch):
    no_cpp_compiler(monkeypatch)
    notices, started, end, _ = run_worker(qtbot, config().replace("train", iterations=5))
    assert notices == ["the meta-step runs eager: no C++ compiler found (torch.compile needs one for CPU kernels)"]
    assert "compiled" not in started.gradient_path and end.iteration == 5


def test_the_settings_panel_has_the_compile_switch(qtbot):
    from maml_gui.widgets.hyper_panel import HyperPanel

    panel = HyperPanel()
    qtbot.addWidget(panel)
    assert panel.train_spec().compile == "off"
    panel.set_config(ExperimentConfig().replace("train", compile="auto"))
    assert panel.train_spec().compile == "auto" and panel.error() is None
    panel.compile.setCurrentIndex(panel.compile.findData("on"))
    assert panel.train_spec().compile == "on"
    assert "first start compiles for 20-40 s" in panel.compile.toolTip()
    panel.set_training(True)
    assert not panel.compile.isEnabled()


def test_bench_measures_the_conv_step_eager_and_compiled_side_by_side():
    """``bench --compile --conv``'s plumbing (traced with aot_eager here: inductor takes minutes on conv nets)."""
    from core.training.bench import bench_conv_compile, conv_compile_lines

    tiny = {"channels": 4, "depth": 2, "image": (1, 12, 12), "ways": 2, "query": 2}
    result = bench_conv_compile(rounds=1, steps=1, backend="aot_eager", **tiny)
    assert result["setting"]["meta_batch"] == 2 and result["backend"] == "aot_eager"
    assert result["eager_it_s"] > 0 and result["compiled_it_s"] > 0 and result["compile_s"] > 0
    assert result["speedup"] == pytest.approx(result["compiled_it_s"] / result["eager_it_s"])
    lines = conv_compile_lines(result)
    assert "meta-batch 2" in lines[0] and "training keeps conv nets eager" in lines[1]
