"""The training worker and its controller: progress, pause/step/stop, live changes, errors, shutdown.

Everything waits on signals (``qtbot.waitSignal`` / ``waitUntil``), never on sleeps; the configs
are tiny so each run takes milliseconds per iteration.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.device import available_devices
from core.config import ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from core.training.trainer import MetaTrainer
from maml_gui.session.runs import History
from maml_gui.jobs.training import WorkerOptions, live_threads
from maml_gui.jobs.training_controller import TrainingController

from ..helpers import diverge_after

OPTIONS = WorkerOptions(eval_tasks=8, inspect_interval=0.5)


def tiny(iterations: int = 1_000_000, **family) -> ExperimentConfig:
    return ExperimentConfig(family=FamilySpec(**family) if family else FamilySpec(), model=ModelSpec(hidden=(8,)),
                            train=TrainSpec(meta_batch=2, shots=5, query=5, iterations=iterations))


@pytest.fixture(autouse=True)
def no_dangling_threads():
    """Fail any test that leaves a training thread running (and stop it, so the process survives)."""
    yield
    left = live_threads()
    for thread in left:
        thread.requestInterruption()
    assert not left, f"{len(left)} training thread(s) still running after the test"


class Recorder:
    """Collects what a controller emits, as plain data."""

    def __init__(self, controller: TrainingController):
        self.chunks, self.adaptations, self.previews, self.weights, self.failures, self.ends = [], [], [], [], [], []
        controller.progress.connect(self.chunks.append)
        controller.adaptation.connect(self.adaptations.append)
        controller.preview.connect(self.previews.append)
        controller.weights.connect(self.weights.append)
        controller.failed.connect(self.failures.append)
        controller.finished.connect(self.ends.append)

    @property
    def iteration(self) -> int:
        return self.chunks[-1].last_iteration if self.chunks else 0

    def iterations(self) -> np.ndarray:
        return np.concatenate([c.iterations for c in self.chunks]) if self.chunks else np.empty(0, np.int64)


@pytest.fixture
def controller(qtbot):
    ctl = TrainingController(options=OPTIONS)
    yield ctl
    ctl.shutdown()


def finish(qtbot, ctl):
    with qtbot.waitSignal(ctl.running_changed, timeout=10_000, check_params_cb=lambda active: not active):
        ctl.stop()
    assert not ctl.is_active() and live_threads() == []


def test_start_progress_stop(qtbot, controller):
    rec = Recorder(controller)
    controller.start(tiny())
    assert controller.is_active()
    qtbot.waitUntil(lambda: rec.iteration >= 20 and bool(rec.adaptations), timeout=10_000)   # scored after inspect_interval
    finish(qtbot, controller)
    assert rec.ends and rec.ends[-1].reason == "stopped"
    its = rec.iterations()
    assert np.array_equal(its, np.arange(1, len(its) + 1)), "every iteration arrives once, in order"
    assert rec.ends[-1].iteration == its[-1]
    assert len(rec.chunks) < len(its), "metrics are buffered, not one signal per iteration"
    chunk = rec.chunks[-1]
    assert chunk.step_losses.shape == (len(chunk.iterations), 2) and np.isfinite(chunk.meta_losses).all()
    assert rec.adaptations and set(rec.adaptations[0].series) == {"meta-learned", "pretrain", "scratch"}
    assert rec.weights and all(k.startswith(("model.", "inner_lr.")) for k in rec.weights[-1])


def test_completes_at_the_planned_iteration(qtbot, controller):
    rec, states = Recorder(controller), []
    controller.state.connect(states.append)
    with qtbot.waitSignal(controller.finished, timeout=10_000):
        controller.start(tiny(iterations=25))
    qtbot.waitUntil(lambda: not controller.is_active(), timeout=5000)
    assert rec.ends[-1].reason == "completed" and rec.ends[-1].iteration == 25 == rec.iteration
    assert int(states[-1][1]["iteration"]) == 25, "the final weights and state are sent (the window scores them)"


def test_pause_step_resume(qtbot, controller):
    rec = Recorder(controller)
    controller.start(tiny())
    qtbot.waitUntil(lambda: rec.iteration >= 5, timeout=10_000)
    with qtbot.waitSignal(controller.paused_changed, timeout=5000, check_params_cb=bool):
        controller.pause()
    paused_at = rec.iteration   # everything up to the pause was flushed before paused_changed
    assert controller.is_paused()
    for expected in (paused_at + 1, paused_at + 2):
        controller.step()
        qtbot.waitUntil(lambda: rec.iteration == expected, timeout=5000)
    with qtbot.waitSignal(controller.paused_changed, timeout=5000, check_params_cb=lambda p: not p):
        controller.resume()
    qtbot.waitUntil(lambda: rec.iteration > paused_at + 5, timeout=10_000)
    finish(qtbot, controller)
    its = rec.iterations()
    assert np.array_equal(its, np.arange(1, len(its) + 1))


def test_step_while_paused_does_exactly_one_iteration(qtbot, controller):
    rec = Recorder(controller)
    controller.start(tiny(), paused=True, steps=1)
    qtbot.waitUntil(lambda: rec.iteration == 1, timeout=10_000)
    controller.step()
    qtbot.waitUntil(lambda: rec.iteration == 2, timeout=5000)
    qtbot.waitUntil(lambda: rec.adaptations[-1].iteration == 2, timeout=5000)   # views are refreshed after a single step
    finish(qtbot, controller)
    assert rec.ends[-1].iteration == 2, "no iteration beyond the two requested steps"


def test_meta_lr_applies_live(qtbot, controller, monkeypatch):
    applied = []
    original = MetaTrainer.set_meta_lr
    monkeypatch.setattr(MetaTrainer, "set_meta_lr", lambda self, lr: (applied.append(lr), original(self, lr)))
    rec = Recorder(controller)
    controller.start(tiny())
    qtbot.waitUntil(lambda: rec.iteration >= 3, timeout=10_000)
    controller.set_meta_lr(0.05)
    qtbot.waitUntil(lambda: applied == [0.05], timeout=5000)
    controller.set_iterations(rec.iteration + 10)
    qtbot.waitUntil(lambda: not controller.is_active(), timeout=10_000)
    assert rec.ends[-1].reason == "completed"


def test_divergence_is_reported_and_good_weights_kept(qtbot, controller, monkeypatch):
    diverge_after(monkeypatch, 4)
    rec = Recorder(controller)
    with qtbot.waitSignal(controller.failed, timeout=10_000):
        controller.start(tiny())
    qtbot.waitUntil(lambda: not controller.is_active(), timeout=5000)
    assert "nan at iteration 5" in rec.failures[-1] and not rec.ends
    assert rec.iteration == 4, "the metrics before the failure arrive"
    assert rec.weights and all(bool(np.isfinite(t.numpy()).all()) for t in rec.weights[-1].values())


def test_unexpected_error_becomes_a_message(qtbot, controller, monkeypatch):
    monkeypatch.setattr(MetaTrainer, "step", lambda self, batch=None: (_ for _ in ()).throw(RuntimeError("boom")))
    rec = Recorder(controller)
    with qtbot.waitSignal(controller.failed, timeout=10_000):
        controller.start(tiny())
    qtbot.waitUntil(lambda: not controller.is_active(), timeout=5000)
    assert "RuntimeError: boom" in rec.failures[-1]


def test_unavailable_device_fails_readably(qtbot, controller):
    missing = next((d for d in ("cuda", "mps") if d not in available_devices()), None)
    if missing is None:
        pytest.skip("every device is available here")
    rec = Recorder(controller)
    with qtbot.waitSignal(controller.failed, timeout=10_000):
        controller.start(tiny().replace("train", device=missing))
    qtbot.waitUntil(lambda: not controller.is_active(), timeout=5000)
    assert "not available" in rec.failures[-1]


def test_preview_requests_and_blobs_regions(qtbot, controller):
    rec = Recorder(controller)
    controller.start(tiny(name="blobs"), paused=True, steps=1)
    qtbot.waitUntil(lambda: rec.iteration == 1 and bool(rec.previews), timeout=10_000)
    assert controller.request_preview(3)
    qtbot.waitUntil(lambda: rec.previews[-1].task_index == 3, timeout=5000)
    view = rec.previews[-1].view
    assert view.labels.shape == (len(view.grid_y), len(view.grid_x)) and 0 <= view.accuracy <= 1
    assert rec.adaptations[-1].metric == "accuracy"
    finish(qtbot, controller)
    assert not controller.request_preview(4), "no worker, no request"


def test_shutdown_stops_a_running_thread(qtbot, controller):
    rec = Recorder(controller)
    controller.start(tiny())
    qtbot.waitUntil(lambda: rec.iteration >= 3, timeout=10_000)
    assert controller.shutdown()
    assert not controller.is_active() and live_threads() == []
    controller.start(tiny())
    with pytest.raises(RuntimeError, match="already active"):   # one run at a time
        controller.start(tiny())
    assert controller.shutdown() and live_threads() == []


def test_history_stays_bounded_and_evenly_spaced():
    history = History(limit=1000)
    for start in range(1, 200_001, 997):
        its = np.arange(start, min(start + 997, 200_001))
        history.append(its, its * 0.5, np.ones(len(its)), np.ones(len(its)), np.column_stack([its, its]) * 1.0)
    assert 500 <= len(history) <= 1000
    gaps = np.diff(history.iterations)
    assert (gaps == history.stride).all() and history.stride & (history.stride - 1) == 0
    rows = history.rows()
    assert rows[-1].iteration == 200_000 and rows[-1].meta_loss == 100_000.0
    assert rows[0].step_losses == (rows[0].iteration, rows[0].iteration)


def test_pacer_stretches_refresh_while_the_gui_is_busy(monkeypatch):
    from maml_gui.window import pacing

    clock = {"cpu": 0.0, "wall": 0.0}
    monkeypatch.setattr(pacing.time, "thread_time", lambda: clock["cpu"])
    monkeypatch.setattr(pacing.time, "perf_counter", lambda: clock["wall"])
    pacer = pacing.Pacer(budget=0.05, longest=4.0)
    pacer.restart()
    for _ in range(10):   # the GUI thread uses 20% of a core: back off, up to the limit
        clock["cpu"] += 0.2
        clock["wall"] += 1.0
        pacer.sample()
    assert pacer.scale == 4.0
    for _ in range(20):   # nearly idle: come back to full rate
        clock["cpu"] += 0.001
        clock["wall"] += 1.0
        pacer.sample()
    assert pacer.scale == 1.0
    clock["cpu"] += 0.2
    clock["wall"] += 0.1
    assert pacer.sample() == 1.0, "too short a window to judge"
    pacer.relax()
    assert pacer.scale == 1.0


def test_a_huge_inner_learning_rate_diverges_readably(qtbot, controller):
    rec = Recorder(controller)
    config = tiny().replace("algorithm", inner_lr=100.0).replace("train", meta_lr=10.0)
    with qtbot.waitSignal(controller.failed, timeout=20_000):
        controller.start(config)
    qtbot.waitUntil(lambda: not controller.is_active(), timeout=5000)
    assert "became" in rec.failures[-1] and "learning rate" in rec.failures[-1]
    assert rec.weights, "the last finite weights are handed over"
    assert rec.adaptations, "the views still get (gappy) scores, no warning escapes"


def test_slow_held_out_scoring_takes_a_small_share_of_the_time():
    """An image run's snapshot (seconds of held-out scoring) waits until it costs at most a few
    percent of the time, up to two minutes between snapshots; a cheap one comes at the base interval."""
    from maml_gui.jobs.training import MAX_INSPECT_INTERVAL, inspect_interval

    assert inspect_interval(2.0, 0.01, 0.03) == 2.0
    assert inspect_interval(2.0, 0.3, 0.03) == pytest.approx(10.0)
    slow = inspect_interval(2.0, 10.0, 0.03)
    assert slow == MAX_INSPECT_INTERVAL and 10.0 / (slow + 10.0) < 0.1   # training keeps > 90 % of the time


GLYPHS = {"image_size": 12, "n_alphabets": 6, "characters": 4, "examples": 6, "n_way": 3, "rotations": False}


def glyph_run(iterations: int = 1_000_000) -> ExperimentConfig:
    from core.config import AlgorithmSpec

    return ExperimentConfig(family=FamilySpec("glyphs", GLYPHS), model=ModelSpec(name="conv4", conv_channels=4, conv_depth=2),
                            algorithm=AlgorithmSpec("fomaml", inner_steps=1, inner_lr=0.4),
                            train=TrainSpec(meta_batch=2, shots=1, query=2, iterations=iterations, device="cpu"))


def record_scoring_threads(monkeypatch) -> list[str]:
    """The name of the thread every held-out scoring (``LoadedModel.adaptation``) runs on."""
    from PySide6.QtCore import QThread

    from core.trained.loaded_model import LoadedModel

    names, original = [], LoadedModel.adaptation
    monkeypatch.setattr(LoadedModel, "adaptation", lambda self, *a, **k: (
        names.append(QThread.currentThread().objectName()), original(self, *a, **k))[1])
    return names


def test_an_image_runs_snapshots_are_scored_on_a_job_thread_not_the_training_thread(qtbot, monkeypatch):
    """Scoring an image run's held-out tasks takes seconds: a job thread does it from copies of the
    weights (with the pretrain baseline's), and the scores and task view arrive as from the worker."""
    names = record_scoring_threads(monkeypatch)
    controller = TrainingController(options=WorkerOptions(eval_tasks=4, inspect_interval=0.05, background_share=0.9))
    rec = Recorder(controller)
    try:
        controller.start(glyph_run())
        qtbot.waitUntil(lambda: len(rec.adaptations) >= 2, timeout=30_000)
        finish(qtbot, controller)
    finally:
        controller.shutdown()
    assert names and set(names) == {"maml-snapshot"}, names
    first, last = rec.adaptations[0], rec.adaptations[-1]
    assert set(last.series) == {"meta-learned", "pretrain", "scratch"} and last.metric == "accuracy"
    assert 0 < first.iteration < last.iteration <= rec.iteration and last.baseline_iterations > 0
    assert any(p.view is not None and p.iteration == last.iteration for p in rec.previews)   # the task view at those weights
    qtbot.waitUntil(lambda: not controller.is_scoring(), timeout=10_000)


def test_a_sinusoid_run_is_still_scored_in_its_training_thread(qtbot, controller, monkeypatch):
    """A small network's snapshot takes milliseconds: it stays at the iteration it shows."""
    names = record_scoring_threads(monkeypatch)
    rec = Recorder(controller)
    controller.start(tiny())
    qtbot.waitUntil(lambda: bool(rec.adaptations), timeout=10_000)
    finish(qtbot, controller)
    assert set(names) == {"maml-training"}


def test_an_image_run_trains_on_while_its_snapshot_is_scored_and_stop_cancels_it(qtbot, monkeypatch):
    """Scoring 200,000 held-out tasks would take many minutes: training goes on meanwhile, and Stop
    answers within a meta-iteration, cancelling the scoring (its progress line goes away)."""
    controller = TrainingController(options=WorkerOptions(eval_tasks=200_000, inspect_interval=0.05, baseline=False))
    rec, lines = Recorder(controller), []
    controller.scoring.connect(lines.append)
    try:
        controller.start(glyph_run())
        qtbot.waitUntil(lambda: any(line is not None for line in lines), timeout=30_000)
        scoring_from = rec.iteration
        qtbot.waitUntil(lambda: rec.iteration >= scoring_from + 3, timeout=30_000)
        assert controller.is_scoring() and not rec.adaptations   # still scoring the first snapshot
        finish(qtbot, controller)
        qtbot.waitUntil(lambda: not controller.is_scoring(), timeout=10_000)
    finally:
        controller.shutdown()
    assert lines[-1] is None and not rec.adaptations
