"""What a run brings to the plots when it is compared: its name, its colour and its data.

Qt-free, so a session model can hand these out. One colour per run everywhere (loss curves,
per-step curves, adaptation scores, the run list's swatch): :func:`run_color` of its id.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.loaded_model import AdaptationSnapshot
    from .runs import History

# Tableau's qualitative colours without orange and grey, which the adaptation plot gives its
# "pretrain" and "scratch" baselines, plus a dark indigo: nine runs in clearly different colours
RUN_COLORS = ("#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79")
GOLDEN = 0.618033988749895


def run_color(key: int) -> str:
    """The colour of run ``key`` (its id: 1, 2, …) as "#rrggbb": :data:`RUN_COLORS` in order,
    then hues spread by the golden angle, so any number of runs get distinct, stable colours."""
    index = int(key) - 1
    if 0 <= index < len(RUN_COLORS):
        return RUN_COLORS[index]
    r, g, b = colorsys.hsv_to_rgb((0.05 + index * GOLDEN) % 1.0, 0.75, 0.7)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


@dataclass(frozen=True, eq=False)
class Overlay:
    """One compared run: the history plots read ``history``, the adaptation plot and the scores
    table read ``adaptation`` (either may be None: that view then shows nothing for the run)."""

    name: str
    color: str
    history: History | None = None
    adaptation: AdaptationSnapshot | None = None
