"""Files replaced atomically: written to a temporary name in the same folder, fsynced, renamed into
place (and the folder fsynced), so a crash, a power cut or a full disk never leaves a half-written
file. Run folders, exports, sweeps and the window all write this way."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from core.errors import CheckpointError


class StorageError(CheckpointError):
    """A file could not be written; ``reason`` is the system's words ("No space left on device")."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def reason_of(exc: OSError) -> str:
    return exc.strerror or str(exc)


_UMASK = os.umask(0o022)   # read once, at import (setting it is process-wide, so never from a worker thread)
os.umask(_UMASK)


def atomic_write(path: Path, data: bytes, sync_dir: bool = True) -> None:
    """Write ``data`` to ``path`` via a temporary file + fsync + rename; on failure nothing is left
    behind and the previous file is untouched. ``sync_dir=False``: the caller fsyncs the folder
    once after several files."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StorageError(f"cannot write to {path.parent}: {reason_of(exc)}", reason_of(exc)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o666 & ~_UMASK)   # as a plain open() would create it, not mkstemp's 0600
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:   # Ctrl-C or SIGTERM's exception mid-write too: never leave the temporary
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write {path}: {reason_of(exc)}", reason_of(exc)) from None
        raise
    if sync_dir:
        fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` survive a power cut (where the platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
