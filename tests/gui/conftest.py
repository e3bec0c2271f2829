"""What every window test gets: isolated settings and a check that no background thread outlives
it (autouse), the ``settings`` and ``make_window`` fixtures."""

from __future__ import annotations

import gc

import pytest
from PySide6.QtCore import QSettings

from core.config import ExperimentConfig
from maml_gui.jobs.threads import live_threads, shutdown_all

from .support import OPTIONS, tiny


@pytest.fixture(autouse=True)
def no_dangling_threads():
    """Fail any test that leaves a background thread (training or job) running, after stopping
    them all, so the process survives to report it and the next test starts clean."""
    yield
    left = [t.objectName() for t in live_threads()]
    if left:
        shutdown_all(10_000)
    assert not left, f"background thread(s) still running after the test: {', '.join(left)}"


@pytest.fixture(autouse=True)
def private_default_settings(tmp_path, monkeypatch):
    """Even a default-constructed QSettings or a window's default project folder must not touch
    the user's settings or home folder during tests."""
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "user-settings"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user-data"))   # QStandardPaths' AppDataLocation


@pytest.fixture
def settings(tmp_path):
    """One settings file per test, shared by its windows (as one user's are)."""
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def make_window(qtbot, settings, request, tmp_path):
    """``make(config=None, project=None)``: a window that fails the test on any unexpected prompt,
    on a new project folder of its own unless ``project`` is given. A test module may define its
    own ``OPTIONS`` (worker options) for its windows."""
    from maml_gui.window.main_window import MainWindow   # here, so window-free tests need no window code

    windows: list[MainWindow] = []
    options = getattr(request.module, "OPTIONS", OPTIONS)

    def make(config: ExperimentConfig | None = None, project=None) -> MainWindow:
        project = project or tmp_path / f"project-{len(windows) + 1}"
        window = MainWindow(config or tiny(), settings=settings, options=options, project=project)
        qtbot.addWidget(window)
        window.confirm = lambda title, text: pytest.fail(f"unexpected prompt: {text}")
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.confirm = lambda title, text: True   # closing after a failed test must not hang on a prompt
        assert window.shutdown()
        window.close()
    windows.clear()
    gc.collect()   # closed windows are collected here, on the GUI thread, not by a later test's worker thread
