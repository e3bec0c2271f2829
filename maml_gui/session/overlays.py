"""What a run brings to the plots when it is compared: its name, its colour and its data; a
sweep's seeds of one configuration bring one :class:`Band` instead of one curve each.

Qt-free, so a session model can hand these out. One colour per run everywhere (loss curves,
per-step curves, adaptation scores, the run list's swatch): :func:`run_color` of its id.
"""

from __future__ import annotations

import colorsys
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from core.tasks import FAMILIES

if TYPE_CHECKING:
    from core.config import ExperimentConfig
    from core.trained.loaded_model import AdaptationSnapshot
    from maml_gui.session.runs import History

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


def classifies(config: ExperimentConfig, adaptation: AdaptationSnapshot | None = None) -> bool:
    """Whether a run learns classes (its plots show cross-entropy and accuracy) rather than a regression
    (MSE): from its held-out scores when it has them, else from its family's kind, without building the
    family (an image folder's would be read again). Runs of the two kinds are never drawn on one axis."""
    if adaptation is not None:
        return adaptation.metric == "accuracy"
    family = config.family
    if family.name == "csv":   # one family, either kind: its settings say which
        return bool(family.params.get("classification"))
    return getattr(FAMILIES.get(family.name), "kind", "regression") == "classification"


def run_kind(config: ExperimentConfig, adaptation: AdaptationSnapshot | None = None) -> str:
    """"rl" (returns), "classification" (cross-entropy, accuracy) or "regression" (MSE): the runs one
    set of axes can show together."""
    if config.is_rl or (adaptation is not None and adaptation.metric == "return"):
        return "rl"
    return "classification" if classifies(config, adaptation) else "regression"


# -- a sweep's seeds as one curve with a band ---------------------------------------------------------
BAND_KIND = "min–max across seeds"   # what the shaded band spans (legends and tooltips say so)
_SEED_FOLDER = re.compile(r"(.+)-seed\d+")


@dataclass(frozen=True, eq=False)
class Band:
    """One configuration of a sweep over its seeds: the history plots draw the mean of the seeds'
    smoothed curves and shade from the lowest to the highest; the adaptation plot does the same
    with each seed's meta-learned held-out score. ``name`` is the legend text."""

    name: str
    color: str
    histories: tuple = ()
    adaptations: tuple = ()
    tip: str = ""


def sweep_config(folder: Path | None) -> tuple[str, str] | None:
    """(sweep folder, configuration label) of a run folder ``SWEEP/runs/<label>-seed<k>``, else None."""
    if folder is None or folder.parent.name != "runs":
        return None
    match = _SEED_FOLDER.fullmatch(folder.name)
    return (str(folder.parent.parent), match[1]) if match else None


def group_by_config(runs: Sequence, folder_of: Callable[[int], Path | None]) -> tuple[list[tuple[str, list]], list]:
    """Split runs into sweep configurations with two seeds or more ([(label, runs)], in run order)
    and the rest. A label names its sweep folder too when the runs come from more than one sweep."""
    groups: dict[tuple[str, str], list] = {}
    for run in runs:
        key = sweep_config(folder_of(run.run_id))
        groups.setdefault(key or ("", f"#{run.run_id}"), []).append(run)
    banded = {k: v for k, v in groups.items() if k[0] and len(v) >= 2}
    several = len({k[0] for k in banded}) > 1
    named = [(f"{Path(k[0]).name}/{k[1]}" if several else k[1], v) for k, v in banded.items()]
    singles = [r for r in runs if not any(r in v for v in banded.values())]
    return named, singles


def run_colors(runs: Sequence, folder_of: Callable[[int], Path | None]) -> dict[int, str]:
    """{run id: its colour on every plot and in the run list}: :func:`run_color` of its id, except
    that the seeds of one sweep configuration share the colour of the first of them, the colour
    of their band (a seed drawn alone, when only one is compared, keeps that colour too)."""
    first: dict[tuple[str, str], int] = {}
    colors = {}
    for run in sorted(runs, key=lambda r: r.run_id):
        key = sweep_config(folder_of(run.run_id))
        colors[run.run_id] = run_color(first.setdefault(key, run.run_id) if key else run.run_id)
    return colors


def band_label(label: str, seeds: int) -> str:
    """The legend text of a band (never cut: what the band spans must stay readable)."""
    label = label if len(label) <= 24 else label[:23] + "…"
    return f"{label} · {seeds} seeds, min–max"


def band_tip(label: str, seeds: int) -> str:
    """The tooltip of a band's legend entry: what the line and the shading are."""
    return (f"{label}: the line is the mean across its {seeds} seeds; the shading spans the lowest to the highest "
            "seed (min–max, not a confidence interval), on the iterations every seed has reached. The sweep's "
            "summary.json has the mean ± 95% CI of each adaptation step.")


def align_common(series: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(x, values ``[runs, n]``) at the iterations every run has: their common prefix (runs still
    training differ in length; one comparison when their rows line up, an intersection otherwise)."""
    series = [(np.asarray(x, dtype=float), np.asarray(y, dtype=float)) for x, y in series if len(x)]
    if not series:
        return np.empty(0), np.empty((0, 0))
    n = min(len(x) for x, _ in series)
    first = series[0][0][:n]
    if all(np.array_equal(x[:n], first) for x, _ in series[1:]):
        return first, np.stack([y[:n] for _, y in series])
    common = series[0][0]
    for x, _ in series[1:]:
        common = np.intersect1d(common, x, assume_unique=True)
    return common, np.stack([y[np.searchsorted(x, common)] for x, y in series])


def across_seeds(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over axis 0 (a seed's NaN leaves a gap at that point)."""
    if not stack.size:
        empty = np.empty(0)
        return empty, empty, empty
    return stack.mean(axis=0), stack.min(axis=0), stack.max(axis=0)
