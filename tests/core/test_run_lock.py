"""One writer per run folder: the lock names its holder, refuses a second writer, and recognises
a lock whose process is gone (taken over) from one it cannot check (another host: kept)."""

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from core.errors import MamlError
from core.storage.lock import LOCK_FILE, RunLock, RunLocked, lock_holder


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(folder, **fields):
    folder.mkdir(parents=True, exist_ok=True)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2024-01-02T03:04:05+00:00",
              "command": "maml-gui train --out x", **fields}
    (folder / LOCK_FILE).write_text(json.dumps(holder))
    return holder


def test_the_lock_names_its_holder_and_refuses_a_second_writer(tmp_path):
    first = RunLock(tmp_path / "run")
    assert first.acquire("maml-gui train --out run") is None
    holder = json.loads((tmp_path / "run" / LOCK_FILE).read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert holder["command"] == "maml-gui train --out run" and holder["started"]
    assert lock_holder(tmp_path / "run") == {**holder, "alive": True}
    with pytest.raises(RunLocked) as refused:
        RunLock(tmp_path / "run").acquire()
    message = str(refused.value)
    assert isinstance(refused.value, MamlError) and refused.value.holder["pid"] == os.getpid()
    assert f"pid {os.getpid()}" in message and socket.gethostname() in message and holder["started"] in message
    first.release()
    first.release()   # twice is harmless
    assert lock_holder(tmp_path / "run") is None and not (tmp_path / "run" / LOCK_FILE).exists()
    with RunLock(tmp_path / "run") as again:
        assert again.held and lock_holder(tmp_path / "run")["pid"] == os.getpid()
    assert not again.held and lock_holder(tmp_path / "run") is None


def test_a_folder_created_for_the_lock_goes_with_it_and_a_used_one_stays(tmp_path):
    lock = RunLock(tmp_path / "a" / "new")
    lock.acquire()
    assert (tmp_path / "a" / "new" / LOCK_FILE).is_file()
    lock.release()
    assert not (tmp_path / "a" / "new").exists()
    lock.acquire()
    (tmp_path / "a" / "new" / "config.json").write_text("{}")
    lock.release()
    assert sorted(os.listdir(tmp_path / "a" / "new")) == ["config.json"]


@pytest.mark.parametrize("case", ["dead", "pid reused"])
def test_a_stale_lock_on_this_host_is_taken_over_with_a_warning(tmp_path, case):
    fields = {"pid": dead_pid()} if case == "dead" else {"pid": os.getpid(), "pid_start": -1}
    old = write_lock(tmp_path, **fields)
    assert lock_holder(tmp_path) is None, "a stale lock holds nothing"
    lock = RunLock(tmp_path)
    warning = lock.acquire("new")
    assert f"pid {old['pid']}" in warning and "no longer running" in warning and old["command"] in warning
    assert "\n" not in warning
    now = json.loads((tmp_path / LOCK_FILE).read_text())
    assert now["pid"] == os.getpid() and now["command"] == "new"
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()


@pytest.mark.skipif(not hasattr(os, "waitid") or not os.path.isdir("/proc"), reason="needs Linux's waitid and /proc")
def test_an_exited_but_unreaped_holder_counts_as_gone(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)   # exited, still a zombie
        write_lock(tmp_path, pid=proc.pid)
        assert "no longer running" in RunLock(tmp_path).acquire()
    finally:
        proc.wait()


def test_a_lock_from_another_host_is_never_taken_over(tmp_path):
    write_lock(tmp_path, host="elsewhere.example", pid=dead_pid())
    before = (tmp_path / LOCK_FILE).read_bytes()
    assert lock_holder(tmp_path)["alive"] is None
    with pytest.raises(RunLocked) as refused:
        RunLock(tmp_path).acquire()
    message = str(refused.value)
    assert "elsewhere.example" in message and "another host" in message
    assert f"delete {tmp_path / LOCK_FILE}" in message and "\n" not in message
    assert (tmp_path / LOCK_FILE).read_bytes() == before


def test_an_unreadable_lock_is_refused_and_kept(tmp_path):
    (tmp_path / LOCK_FILE).write_bytes(b"\x00garbage")
    with pytest.raises(RunLocked, match="cannot be read"):
        RunLock(tmp_path).acquire()
    assert (tmp_path / LOCK_FILE).read_bytes() == b"\x00garbage"


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path):
    lock = RunLock(tmp_path)
    lock.acquire()
    other = write_lock(tmp_path, command="someone else")
    lock.release()
    assert json.loads((tmp_path / LOCK_FILE).read_text()) == other


@pytest.mark.parametrize("stale", [False, True])
def test_racing_writers_get_exactly_one_lock(tmp_path, stale):
    """Threads open the folder separately, so they race like processes (the refusal names this pid)."""
    if stale:
        write_lock(tmp_path, pid=dead_pid())
    locks = [RunLock(tmp_path) for _ in range(8)]
    results = [None] * len(locks)
    barrier = threading.Barrier(len(locks))

    def take(i):
        barrier.wait()
        try:
            locks[i].acquire(f"writer {i}")
            results[i] = "won"
        except RunLocked:
            results[i] = "refused"

    threads = [threading.Thread(target=take, args=(i,)) for i in range(len(locks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("won") == 1 and results.count("refused") == len(locks) - 1
    winner = results.index("won")
    assert json.loads((tmp_path / LOCK_FILE).read_text())["command"] == f"writer {winner}"
    locks[winner].release()
    assert not (tmp_path / LOCK_FILE).exists()
