"""The one registry of background threads, without a window: jobs (progress, cancel, latest
request wins, readable failures), training, and the shutdown the window calls on close."""

from __future__ import annotations

import gc
import threading
import time

import pytest
from PySide6.QtCore import QObject
from shiboken6 import Shiboken

from core.errors import MamlError
from maml_gui.jobs.job_runner import JobRunner
from maml_gui.jobs.threads import live_threads, shutdown_all
from maml_gui.jobs.training_controller import TrainingController

from .support import OPTIONS, tiny


class Jobs:
    """What a runner emits, as plain data."""

    def __init__(self, runner: JobRunner):
        self.done, self.failed, self.progress, self.busy = [], [], [], []
        runner.done.connect(lambda tag, result: self.done.append((tag, result)))
        runner.failed.connect(lambda tag, message: self.failed.append((tag, message)))
        runner.progress.connect(self.progress.append)
        runner.busy_changed.connect(self.busy.append)


def until_cancelled(ran: list, name: str, stopped: threading.Event | None = None):
    """A job that reports progress until told to stop (or 10 s pass), noting that it ran."""
    def job(report):
        ran.append(name)
        deadline = time.monotonic() + 10
        fraction = 0.0
        while time.monotonic() < deadline:
            fraction = min(fraction + 0.01, 0.99)
            if report(fraction):
                if stopped is not None:
                    stopped.set()
                return "cancelled"
            time.sleep(0.005)
        return "ran out"
    return job


def idle(qtbot, runner: JobRunner) -> None:
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=10_000)


def test_a_job_reports_progress_and_stops_when_cancelled(qtbot):
    runner = JobRunner(name="maml-test", reports_progress=True)
    jobs, ran, stopped = Jobs(runner), [], threading.Event()
    runner.submit("read", until_cancelled(ran, "read", stopped))
    assert runner.is_busy() and jobs.busy == [True]
    qtbot.waitUntil(lambda: len(jobs.progress) >= 2, timeout=10_000)
    assert all(0.0 < f < 1.0 for f in jobs.progress)
    assert [t.objectName() for t in live_threads("job")] == ["maml-test"]
    runner.cancel()
    idle(qtbot, runner)
    assert stopped.is_set(), "the job saw the cancel through its report callback"
    assert jobs.done == [] and jobs.failed == [], "a cancelled job's result is dropped"
    assert jobs.busy == [True, False] and live_threads() == []


def test_the_latest_request_wins(qtbot):
    runner = JobRunner(name="maml-test", reports_progress=True)
    jobs, ran = Jobs(runner), []
    runner.submit("first", until_cancelled(ran, "first"))
    qtbot.waitUntil(lambda: ran == ["first"], timeout=10_000)
    runner.submit("second", lambda report: ran.append("second") or "second")
    runner.submit("third", lambda report: ran.append("third") or "third")
    idle(qtbot, runner)
    assert ran == ["first", "third"], "a request replaced while waiting never runs"
    assert jobs.done == [("third", "third")], "only the latest request's result arrives"
    assert jobs.busy == [True, False], "busy from the first request to the last result"


@pytest.mark.parametrize("error, message", [
    (MamlError("column 'x' is not numeric"), "column 'x' is not numeric"),
    (RuntimeError("shape mismatch\nlong torch details"), "RuntimeError: shape mismatch"),
    (ZeroDivisionError("division by zero"), "unexpected error: ZeroDivisionError: division by zero"),
])
def test_a_failing_job_gives_a_readable_message(qtbot, error, message):
    runner = JobRunner(name="maml-test")
    jobs = Jobs(runner)

    def job():
        raise error

    with qtbot.waitSignal(runner.failed, timeout=10_000):
        runner.submit("score", job)
    idle(qtbot, runner)
    assert jobs.failed == [("score", message)] and jobs.done == []
    runner.submit("again", lambda: 42)   # the runner still works
    idle(qtbot, runner)
    assert jobs.done == [("again", 42)]


def test_garbage_collection_waits_while_a_job_runs(qtbot):
    assert gc.isenabled()
    runner = JobRunner(name="maml-test", reports_progress=True)
    seen = []
    runner.submit("gc", lambda report: seen.append(gc.isenabled()))
    idle(qtbot, runner)
    assert seen == [False] and gc.isenabled()


def test_shutdown_all_stops_training_and_jobs(qtbot):
    controller = TrainingController(options=OPTIONS)
    runner = JobRunner(name="maml-test", reports_progress=True)
    progress, ran, ends = [], [], []
    controller.progress.connect(progress.append)
    controller.running_changed.connect(ends.append)
    controller.start(tiny())
    runner.submit("read", until_cancelled(ran, "read"))
    qtbot.waitUntil(lambda: bool(progress and ran), timeout=20_000)
    assert sorted(t.objectName() for t in live_threads()) == ["maml-test", "maml-training"]
    assert shutdown_all(30_000)
    assert live_threads() == []
    assert not controller.is_active() and not runner.is_busy()
    assert ends == [True, False], "the controller heard that its thread ended"
    assert shutdown_all(0), "nothing left to stop"


def test_shutdown_all_is_bounded_and_can_wait_again(qtbot):
    runner = JobRunner(name="maml-stubborn")
    gate, started = threading.Event(), threading.Event()

    def stubborn():   # ignores the cancel (it has no report callback)
        started.set()
        gate.wait(10)
        return "late"

    runner.submit("slow", stubborn)
    assert started.wait(10)
    assert not shutdown_all(50), "a job still running after the timeout is reported"
    assert [t.objectName() for t in live_threads()] == ["maml-stubborn"]
    gate.set()
    assert shutdown_all(10_000) and live_threads() == [] and not runner.is_busy()


def test_a_job_outlives_its_deleted_owner_until_shutdown(qtbot):
    """A dialog destroyed while its job runs: the registry still holds and stops the thread."""
    dialog = QObject()
    runner = JobRunner(dialog, name="maml-orphan", reports_progress=True)
    ran = []
    runner.submit("read", until_cancelled(ran, "read"))
    qtbot.waitUntil(lambda: ran == ["read"], timeout=10_000)
    Shiboken.delete(dialog)
    assert not Shiboken.isValid(runner)
    assert shutdown_all(10_000) and live_threads() == []


def test_shutdown_within_one_window_leaves_the_others(qtbot):
    window, other = QObject(), QObject()
    panel = QObject(window)   # a runner a level down (a dock, a dialog) belongs to the window too
    mine = JobRunner(panel, name="maml-mine", reports_progress=True)
    theirs = JobRunner(other, name="maml-theirs", reports_progress=True)
    ran = []
    mine.submit("a", until_cancelled(ran, "mine"))
    theirs.submit("b", until_cancelled(ran, "theirs"))
    qtbot.waitUntil(lambda: len(ran) == 2, timeout=10_000)
    assert shutdown_all(10_000, within=window)
    assert [t.objectName() for t in live_threads()] == ["maml-theirs"] and theirs.is_busy()
    assert shutdown_all(10_000) and live_threads() == []


def test_a_background_job_runs_on_one_thread_and_leaves_the_window_its_own(qtbot):
    """Scoring or a baseline beside training asks torch for one intra-op thread; the count is per
    thread (OpenMP), so the calling thread's count is unchanged."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runner = JobRunner(name="maml-test")
        jobs = Jobs(runner)
        runner.submit("score", torch.get_num_threads)
        idle(qtbot, runner)
        assert jobs.done == [("score", 1)]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
