"""``maml-gui bench --gui``: does the window slow training down, and does it stay responsive?

One process, one config, interleaved so machine noise hits both alike: a headless loop of
``MetaTrainer.step()`` for half the time, the full window (live plots, adaptation scores,
pretrain baseline, task view) training for the whole time, then the headless loop again.
Meanwhile a 10 ms QTimer records how late the GUI event loop serves it.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from core.config import AlgorithmSpec, ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from core.training.trainer import MetaTrainer

WARMUP_ITERATIONS = 5
PROBE_MS = 10


def image_run() -> ExperimentConfig:
    """``bench --gui --images``: an image run as the README's few-shot table trains it (procedural
    glyphs 28×28, 5-way 1-shot, 15 query per class, conv-4 with 64 channels and stride-2
    convolutions, first-order MAML, meta-batch 8), whose held-out snapshots take seconds to score."""
    return ExperimentConfig(family=FamilySpec("glyphs", {"n_way": 5}),
                            model=ModelSpec(name="conv4", downsample="stride"),
                            algorithm=AlgorithmSpec("fomaml", inner_steps=1, inner_lr=0.4),
                            train=TrainSpec(meta_batch=8, shots=1, query=15, device="cpu"))


def headless_rate(config: ExperimentConfig, seconds: float) -> float:
    """Meta-iterations per second of a plain ``step()`` loop (after a short warm-up)."""
    trainer = MetaTrainer(config)
    for _ in range(WARMUP_ITERATIONS):
        trainer.step()
    start, done = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        trainer.step()
        done += 1
    return done / (time.perf_counter() - start)


def gui_rate(config: ExperimentConfig, seconds: float, options=None) -> tuple[float, list[float], dict]:
    """Iterations/s of a run in the shown window, measured from the worker's chunk timestamps,
    and the lateness (ms) of every firing of a 10 ms timer during that time."""
    from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer

    from maml_gui.window.main_window import MainWindow

    with tempfile.TemporaryDirectory() as folder:
        settings = QSettings(f"{folder}/bench.ini", QSettings.Format.IniFormat)   # never the user's settings
        # the session writes its runs into a project in the temporary folder, as a user's window does
        window = MainWindow(config, settings=settings, options=options, project=f"{folder}/project")
        window.resize(1280, 800)
        window.show()
        marks: dict = {}
        lateness: list[float] = []
        loop = QEventLoop()
        probe = QTimer(interval=PROBE_MS)
        probe.setTimerType(Qt.TimerType.PreciseTimer)

        def on_probe():
            now = time.perf_counter()
            lateness.append(max(0.0, (now - marks["probe"]) * 1000 - PROBE_MS))
            marks["probe"] = now

        def on_progress(chunk):
            if "start" not in marks:
                if chunk.last_iteration >= WARMUP_ITERATIONS:
                    marks["start"] = (chunk.stamp, chunk.last_iteration)
                    marks["cpu"] = (time.thread_time(), time.perf_counter())
                    marks["probe"] = time.perf_counter()
                    probe.start()
                    QTimer.singleShot(int(seconds * 1000), lambda: (marks.setdefault("stop", time.perf_counter()),
                                                                    loop.quit()))
                return
            marks["end"] = (chunk.stamp, chunk.last_iteration)

        probe.timeout.connect(on_probe)
        window.session.controller.progress.connect(on_progress)
        window.session.controller.failed.connect(lambda message: (marks.setdefault("error", message), loop.quit()))
        def start_when_ready():   # an image family is built on a job thread: Start waits for it, as a user does
            if window.start_problem() is not None:
                marks["problem"] = window.start_problem()
                QTimer.singleShot(100, start_when_ready)
            else:
                window.start()

        QTimer.singleShot(0, start_when_ready)
        QTimer.singleShot(int((seconds + 120) * 1000), loop.quit)   # never hang if training cannot start
        loop.exec()
        probe.stop()
        if "cpu" in marks:
            cpu, wall = time.thread_time() - marks["cpu"][0], time.perf_counter() - marks["cpu"][1]
            marks["gui_cpu_share"] = round(cpu / wall, 3)
        marks["plot_refresh_ms"] = window.views.plot_interval()
        window.close()
        settings.sync()
    if "error" in marks:
        raise RuntimeError(f"training in the window failed: {marks['error']}")
    if "end" not in marks:
        raise RuntimeError("the window reported no training progress"
                           + (f" (Start said: {marks['problem']})" if "problem" in marks else ""))
    # to the end of the measured time, not to the last progress: a training thread held up (by scoring
    # held-out tasks, say) sends none, and its last chunk before that would stand for the whole time
    (t0, i0), (_, i1) = marks["start"], marks["end"]
    t1 = marks.get("stop", marks["end"][0])
    extra = {"gui_iterations": i1 - i0, "gui_thread_cpu_share": marks.get("gui_cpu_share"),
             "plot_refresh_ms": marks["plot_refresh_ms"]}
    return (i1 - i0) / (t1 - t0), lateness, extra


def run_gui_bench(seconds: float = 10, config: ExperimentConfig | None = None, options=None,
                  images: bool = False) -> dict:
    """Headless vs in-window meta-iterations/s (their ratio, target >= 0.9; an image run's, with its
    snapshots scored and its baseline trained meanwhile, >= 0.8) and event-loop latency percentiles
    while training (target p95 < 50 ms). ``seconds`` is the window's share; the headless loop runs
    half of it before and half after. ``images``: :func:`image_run` instead of the sinusoid."""
    from .app import application
    from maml_gui.jobs.training import reserve_gui_core

    application([])
    threads = reserve_gui_core()
    config = config or (image_run() if images else ExperimentConfig())
    config = config.replace("train", iterations=10**9)
    before = headless_rate(config, seconds / 2)
    gui, lateness, extra = gui_rate(config, seconds, options)
    after = headless_rate(config, seconds / 2)
    headless = (before + after) / 2
    late = np.asarray(lateness) if lateness else np.zeros(1)
    return {
        "headless_it_s": round(headless, 2),
        "gui_it_s": round(gui, 2),
        "ratio": round(gui / headless, 3),
        "latency_p50_ms": round(float(np.percentile(late, 50)), 2),
        "latency_p95_ms": round(float(np.percentile(late, 95)), 2),
        "latency_max_ms": round(float(late.max()), 2),
        "headless_before_it_s": round(before, 2),
        "headless_after_it_s": round(after, 2),
        "torch_threads": threads,
        **extra,
    }
