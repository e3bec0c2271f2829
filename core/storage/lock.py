"""One writer per run folder: a lock file ``OUT/.lock`` holding ``{pid, host, started, command}``.

Why a lock file and not a library (``filelock``, ``fcntl.flock`` alone): the lock has to say *who*
holds it — a second ``train`` on the same folder names the pid, host and start time of the first —
and it must be visible to anyone listing the folder, the window included. An OS lock (``flock``)
says none of that, is not reliable across network file systems and vanishes silently; a lock file
survives ``kill -9``, so a lock whose process is dead has to be recognised instead:

* the file is created atomically and complete (written to a temporary name, then hard-linked to
  ``.lock``, which fails when one exists; ``O_CREAT | O_EXCL`` where hard links are not supported);
* a lock from this host whose pid is gone (or a zombie, or a reused pid with another start time) is
  stale: it is taken over, and :meth:`RunLock.acquire` returns a one-line warning saying so;
* a lock from another host cannot be checked from here: it is never taken over; the message says
  how to remove it when one is sure no run uses the folder;
* on one host, checking and taking over happen under ``flock`` on the folder itself, so two
  processes can never both take over the same stale lock.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import socket
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from core.errors import MamlError

LOCK_FILE = ".lock"
LOCK_LIMIT = 1 << 16   # bytes read of a lock file: ours are a few hundred


class RunLocked(MamlError):
    """The folder is held by another writer; ``holder`` is its lock's content (None: unreadable)."""

    def __init__(self, message: str, holder: dict | None = None):
        super().__init__(message)
        self.holder = holder


class RunLock:
    """``with RunLock(folder) as lock:`` (or :meth:`acquire` / :meth:`release`). Creates the folder
    when needed; :meth:`release` removes the lock and, when acquiring created the folder and nothing
    else was written to it, the folder too, so a refused or failed command leaves no trace."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._content: bytes | None = None
        self._created_folder = False

    @property
    def held(self) -> bool:
        return self._content is not None

    def acquire(self, command: str = "") -> str | None:
        """Take the lock; returns a warning when a stale lock (dead process, this host) was taken
        over, else None. Raises :class:`RunLocked` when another live writer holds it."""
        if self.held:
            return None
        if self.folder.exists() and not self.folder.is_dir():
            raise RunLocked(f"{self.folder} exists and is not a folder")
        try:
            if not self.folder.is_dir():
                self.folder.mkdir(parents=True)
                self._created_folder = True
        except FileExistsError:
            pass
        except OSError as exc:
            raise RunLocked(f"cannot create {self.folder}: {exc.strerror or exc}") from None
        content = (json.dumps(_me(command)) + "\n").encode()
        try:
            with _host_guard(self.folder):
                warning = self._take(content)
        except OSError as exc:
            self._undo_folder()
            raise RunLocked(f"cannot lock {self.folder}: {exc.strerror or exc}") from None
        except RunLocked:
            self._undo_folder()
            raise
        self._content = content
        return warning

    def _take(self, content: bytes) -> str | None:
        if _create(self.path, content):
            return None
        raw = _read(self.path)
        if raw is None:   # released between our attempt and the read
            if _create(self.path, content):
                return None
            raw = _read(self.path) or b""
        holder = _parse(raw)
        if holder is None:
            raise RunLocked(f"{self.path}: this lock file cannot be read ({_problem(raw)}); if no run is "
                            "using the folder, delete that file", None)
        alive = _alive(holder)
        if alive is not False:
            raise RunLocked(_held_message(self.folder, holder, alive), holder)
        _replace(self.path, content)   # under the host guard: no one else checks or takes it meanwhile
        return (f"took over the lock of {self.folder} left by pid {holder.get('pid')} ({_since(holder)}"
                f"{_by(holder)}), which is no longer running")

    def release(self) -> None:
        """Remove the lock if it is still ours; safe to call twice and on every exit path."""
        if self._content is None:
            return
        content, self._content = self._content, None
        try:
            with _host_guard(self.folder):
                if _read(self.path) == content:
                    self.path.unlink()
        except OSError:
            pass
        self._undo_folder()

    def _undo_folder(self) -> None:
        if self._created_folder:
            self._created_folder = False
            try:
                self.folder.rmdir()   # only when empty
            except OSError:
                pass

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_holder(folder: str | Path) -> dict | None:
    """Who writes ``folder`` now: the lock's ``{pid, host, started, command}`` plus ``alive`` (True,
    or None when the holder is on another host and cannot be checked); None when the folder is not
    locked or its lock is stale (its process is gone)."""
    raw = _read(Path(folder) / LOCK_FILE)
    if raw is None:
        return None
    holder = _parse(raw)
    if holder is None:
        return {"pid": None, "host": None, "started": None, "command": "", "alive": None}
    alive = _alive(holder)
    return None if alive is False else {**holder, "alive": alive}


# -- the lock file -------------------------------------------------------------------------------
def _me(command: str) -> dict:
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "command": command}
    start = _start_time(os.getpid())
    if start is not None:
        me["pid_start"] = start
    return me


def _complete_temp(folder: Path, content: bytes) -> str:
    """A temporary file in ``folder`` holding ``content``, flushed to disk and readable by all."""
    fd, tmp = tempfile.mkstemp(prefix=f"{LOCK_FILE}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o644)   # anyone may read who holds the folder
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:   # Ctrl-C included: never leave the temporary
        _unlink(tmp)
        raise
    return tmp


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _create(path: Path, content: bytes) -> bool:
    """Create ``path`` holding ``content`` unless it exists; never visible half-written."""
    tmp = _complete_temp(path.parent, content)
    try:
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:   # no hard links here (some network or FAT file systems)
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        return True
    finally:
        _unlink(tmp)


def _replace(path: Path, content: bytes) -> None:
    tmp = _complete_temp(path.parent, content)
    try:
        os.replace(tmp, path)
    except OSError:
        _unlink(tmp)
        raise


def _read(path: Path) -> bytes | None:
    """The lock's bytes (None: no lock). Opened without blocking and read only when it is a regular
    file: a FIFO or a device put in its place reads as an unreadable lock instead of hanging."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return b""
        return f.read(LOCK_LIMIT)


MAX_PID = 2**31 - 1   # what kill() takes; Linux's pid_max is at most 2**22


def _parse(raw: bytes) -> dict | None:
    return None if _problem(raw) else json.loads(raw.decode("utf-8"))


def _problem(raw: bytes) -> str | None:
    """Why ``raw`` is not a lock this module wrote (named by key), or None."""
    try:
        holder = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "it is empty or not JSON" if not raw.strip() else "it is not JSON"
    if not isinstance(holder, dict):
        return "it is not a JSON object"
    pid = holder.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid <= MAX_PID:
        return f'"pid" must be a process id (a whole number in 1..{MAX_PID}), found {json.dumps(pid)[:30]}'
    if not isinstance(holder.get("host"), str):
        return f'"host" must be a host name, found {json.dumps(holder.get("host"))[:30]}'
    return None


@contextmanager
def _host_guard(folder: Path):
    """``flock`` on the folder: serialises check-and-take-over among processes of this host."""
    try:
        import fcntl
    except ImportError:   # not POSIX: the atomic create alone
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass   # a file system without flock: the atomic create alone
        yield
    finally:
        os.close(fd)   # closing releases the flock


# -- is the holder alive? --------------------------------------------------------------------------
def _alive(holder: dict) -> bool | None:
    """True / False for a holder on this host; None for another host (cannot be checked)."""
    if holder.get("host") != socket.gethostname():
        return None
    pid = holder["pid"]
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):   # no such process; a pid past the system's range
        return False
    except PermissionError:
        pass   # alive, owned by another user
    except OSError:
        return True
    state = _proc_stat(pid)
    if state is None:
        return True
    if state[0] in ("Z", "X"):   # exited, not yet reaped by its parent
        return False
    recorded = holder.get("pid_start")
    return not (isinstance(recorded, int) and recorded != state[1])   # else the pid was reused


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) from Linux's /proc; None elsewhere."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text[text.rindex(")") + 2:].split()
        return fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _start_time(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return stat[1] if stat else None


# -- messages ------------------------------------------------------------------------------------
def _since(holder: dict) -> str:
    return f"since {holder.get('started') or 'an unknown time'}"


def _by(holder: dict) -> str:
    command = holder.get("command")
    return f", {command}" if command else ""


def _held_message(folder: Path, holder: dict, alive: bool | None) -> str:
    who = f"pid {holder['pid']} on host {holder['host']} {_since(holder)}{_by(holder)}"
    if alive is None:
        return (f"{folder} is locked by {who}, another host, so whether that run still lives cannot be checked "
                f"from here; if you are sure no run is using the folder, delete {folder / LOCK_FILE}")
    return f"{folder} is in use by another run ({who}); wait for it to end or stop it first"
