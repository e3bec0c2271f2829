"""Which task family, and its settings: the ``family`` section of an experiment's config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class FamilySpec:
    """Which task family and its settings; ``params`` only overrides the family's defaults."""

    name: str = "sinusoid"
    params: Mapping[str, Any] = field(default_factory=dict)
