"""Domain errors: each carries a message a person can act on, never a raw traceback."""

from __future__ import annotations


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
