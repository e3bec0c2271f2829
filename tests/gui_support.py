"""What every window test shares: small configs, fast worker options, isolated settings, and
checks that no background thread outlives its test. Test modules import the fixtures by name."""

from __future__ import annotations

import gc

import pytest
from PySide6.QtCore import QSettings

from core.config import ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from maml_gui.job_runner import live_jobs
from maml_gui.main_window import MainWindow
from maml_gui.training import WorkerOptions, live_threads

OPTIONS = WorkerOptions(eval_tasks=8, inspect_interval=0.5)


def tiny(iterations: int = 1_000_000, family: str = "sinusoid", hidden=(8,), **family_params) -> ExperimentConfig:
    return ExperimentConfig(family=FamilySpec(family, family_params), model=ModelSpec(hidden=tuple(hidden)),
                            train=TrainSpec(meta_batch=2, shots=5, query=5, iterations=iterations))


@pytest.fixture(autouse=True)
def no_dangling_threads():
    """Fail any test that leaves a training, job or CSV thread running (and stop training ones,
    so the process survives to report it)."""
    yield
    training = live_threads()
    for thread in training:
        thread.requestInterruption()
    left = training + live_jobs()
    assert not left, f"{len(left)} background thread(s) still running after the test"


@pytest.fixture(autouse=True)
def private_default_settings(tmp_path):
    """Even a default-constructed QSettings must not touch the user's settings during tests."""
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "user-settings"))


@pytest.fixture
def settings(tmp_path):
    """One settings file per test, shared by its windows (as one user's are)."""
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def make_window(qtbot, settings, request):
    """``make(config=None)``: a window that fails the test on any unexpected prompt. A test
    module may define its own ``OPTIONS`` (worker options) for its windows."""
    windows: list[MainWindow] = []
    options = getattr(request.module, "OPTIONS", OPTIONS)

    def make(config: ExperimentConfig | None = None) -> MainWindow:
        window = MainWindow(config or tiny(), settings=settings, options=options)
        qtbot.addWidget(window)
        window.confirm = lambda title, text: pytest.fail(f"unexpected prompt: {text}")
        windows.append(window)
        return window

    yield make
    for window in windows:
        if window.csv_dialog is not None:
            window.csv_dialog.reject()
        window.controller.shutdown()
        assert window.shutdown_jobs()
        window.close()
    windows.clear()
    gc.collect()   # closed windows are collected here, on the GUI thread, not by a later test's worker thread
