"""Domain errors: each carries a message a person can act on, never a raw traceback."""

from __future__ import annotations

import os
import stat


class MamlError(Exception):
    """Base class: every error the engine raises on purpose derives from it."""


class ConfigError(MamlError, ValueError):
    """An experiment setting is invalid; ``field`` names it (dotted path) so a form can mark it."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class TrainingDiverged(MamlError, RuntimeError):
    """The loss or gradient became NaN/inf; the last finite weights were kept."""


class CheckpointError(MamlError, ValueError):
    """A run directory or weights file cannot be read or written."""


def not_regular(path, what: str = "file") -> str | None:
    """Why ``path`` is refused as a ``what``, in one wording everywhere ("is a named pipe (FIFO), not a
    regular file"), found without opening it (a FIFO blocks until a writer comes, a device may never
    end); None when it is a regular file, or when nothing is there (the caller says so in its words)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"is a broken link, not a regular {what}" if os.path.islink(path) else None
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a special file")
    return f"is {kind}, not a regular {what}"
