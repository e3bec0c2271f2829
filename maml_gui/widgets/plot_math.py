"""The numbers behind the live plots: smoothing, reduction to pixels and axis ranges.

Qt-free (numpy only) so it is tested without a display. Everything here is stable as data
grow: the decimation stride and the pixel buckets are powers of two anchored at the first
point, so earlier points never jump between redraws, and the smoothing is carried across calls
so only new rows are smoothed.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

MAX_DISPLAY_POINTS = 20_000   # points per curve handed to the plot, before the per-pixel reduction


def ema_debiased(values: np.ndarray, weight: float, state: tuple[float, int] = (0.0, 0)):
    """TensorBoard's smoothing: an EMA started at 0 and divided by ``1 - weight**count``.

    Vectorised in blocks (within a block the recursion is a scaled cumsum; ``weight**-block``
    stays below e^10 so the scaling loses no precision); ``state`` carries the EMA and the count
    of finite values across calls, so new points are smoothed without redoing the history.
    Non-finite values are skipped (drawn as gaps). Returns ``(smoothed, state)``.
    """
    values = np.asarray(values, dtype=float)
    out = np.full(values.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(values))
    last, count = state
    if weight <= 0:
        out[finite] = values[finite]
        return out, (float(values[finite[-1]]) if len(finite) else last, count + len(finite))
    v = values[finite]
    smoothed = np.empty_like(v)
    block = max(1, int(10 / -math.log(weight)))
    for start in range(0, len(v), block):
        chunk = v[start:start + block]
        k = np.arange(1, len(chunk) + 1)
        ema = weight ** k * (last + (1 - weight) * np.cumsum(chunk * weight ** -k))
        smoothed[start:start + len(chunk)] = ema / (1 - weight ** (count + k))
        last, count = float(ema[-1]), count + len(chunk)
    out[finite] = smoothed
    return out, (last, count)


def display_index(n: int, limit: int = MAX_DISPLAY_POINTS) -> np.ndarray:
    """Indices drawn out of ``n``: a power-of-two stride (stable as data grows) plus the last point."""
    stride = 1 << max(0, math.ceil(math.log2(max(n, 1) / limit)))
    index = np.arange(0, n, stride)
    return index if n == 0 or index[-1] == n - 1 else np.append(index, n - 1)


def finite_or_nan(y: np.ndarray) -> np.ndarray:
    """``y`` with ±inf turned into NaN (both are drawn as gaps)."""
    y = np.asarray(y, dtype=float)
    return y if np.isfinite(y).all() else np.where(np.isfinite(y), y, np.nan)


def to_pixels(x: np.ndarray, y: np.ndarray, pixels: int, mode: str = "peak",
              x_range: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a curve (``x`` increasing) to about one bucket per pixel of ``x_range`` (all of it if None).

    Buckets hold a power of two of points and start at a multiple of their size, so they do
    not move as points are appended. ``mode="peak"``: each bucket becomes its min and max (spikes
    stay visible); ``"mean"``: its mean (for smoothed curves). All-NaN buckets stay NaN (gaps).
    """
    x, y = np.asarray(x, dtype=float), finite_or_nan(y)
    start, stop = 0, len(x)
    if x_range is not None and stop:
        start = max(0, int(np.searchsorted(x, x_range[0])) - 1)
        stop = min(len(x), int(np.searchsorted(x, x_range[1], side="right")) + 1)
    count = stop - start
    bucket = 1 << max(0, math.ceil(math.log2(max(count, 1) / max(pixels, 1))))
    start -= start % bucket
    x, y = x[start:stop], y[start:stop]
    if bucket == 1 or len(x) <= 2:
        return x, y
    full = len(x) // bucket * bucket
    parts_y = [y[:full].reshape(-1, bucket)] + ([y[full:][None, :]] if full < len(x) else [])
    if mode == "peak":
        lo = np.concatenate([np.fmin.reduce(p, axis=1) for p in parts_y])
        hi = np.concatenate([np.fmax.reduce(p, axis=1) for p in parts_y])
        return np.repeat(x[::bucket], 2), np.column_stack([lo, hi]).ravel()
    parts_x = [x[:full].reshape(-1, bucket)] + ([x[full:][None, :]] if full < len(x) else [])
    xs = np.concatenate([p.mean(axis=1) for p in parts_x])
    ok = [np.isfinite(p) for p in parts_y]
    sums = np.concatenate([np.where(f, p, 0.0).sum(axis=1) for f, p in zip(ok, parts_y)])
    counts = np.concatenate([f.sum(axis=1) for f in ok])
    with np.errstate(invalid="ignore", divide="ignore"):
        return xs, np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def value_bounds(arrays: Sequence[np.ndarray], log: bool = False) -> tuple[float, float] | None:
    """(min, max) over the finite values (positive ones, as log10, when ``log``); None if there are none."""
    lo, hi = math.inf, -math.inf
    for a in arrays:
        a = np.asarray(a, dtype=float)
        a = a[(a > 0) & np.isfinite(a)] if log else a[np.isfinite(a)]
        if a.size:
            lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
    if lo > hi:
        return None
    return (math.log10(lo), math.log10(hi)) if log else (lo, hi)


def snap_range(lo: float, hi: float, padding: float, anchored: bool = False) -> tuple[float, float]:
    """A padded view range in coarse power-of-two steps, so it changes only when the data outgrow it.

    ``anchored`` (x of a growing history): the start stays put and the width grows in steps of
    1/8..1/4 of it, so a live run re-labels its x axis about every fifth of its length rather than
    on every redraw; otherwise each end moves outwards to a multiple of 1/32..1/16 of the span
    after half the padding (the snapping supplies the rest: about pyqtgraph's margins).
    """
    span = hi - lo
    if not span > 1e-9 * max(abs(lo), abs(hi)):   # one value, or two a rounding apart (a run's first
        half = max(abs(lo) * 0.05, 1e-9) if math.isfinite(lo) and lo else 0.5   # loss and its smoothed copy)
        return lo - half, hi + half
    if anchored:
        q = 2.0 ** math.floor(math.log2(span / 4))
        width = math.ceil(span * (1 + 2 * padding) / q) * q
        return lo - padding * width, lo + (1 - padding) * width
    q = 2.0 ** math.floor(math.log2(span / 16))
    pad = padding / 2 * span
    return math.floor((lo - pad) / q) * q, math.ceil((hi + pad) / q) * q


def keep_or_snap(current, bounds: tuple[float, float], padding: float, anchored: bool = False) -> tuple[float, float]:
    """The current range while the data stay inside it (clear of its edges) and fill at least 60%
    of it; else :func:`snap_range`. A drifting loss or a new evaluation then re-labels an axis
    only now and then, not on every update."""
    lo, hi = bounds
    start, end = current
    span = hi - lo
    margin = padding / 4 * span
    if not anchored and span > 0 and start <= lo - margin and hi + margin <= end and span >= 0.6 * (end - start):
        return start, end
    return snap_range(lo, hi, padding, anchored)


class GrowingBuffer:
    """Rows appended in place; capacity doubles, so appending costs amortised O(rows)."""

    def __init__(self, columns: int, capacity: int = 1024):
        self._data = np.empty((capacity, columns))
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def columns(self) -> int:
        return self._data.shape[1]

    def extend(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=float).reshape(-1, self.columns)
        need = self._n + len(rows)
        if need > len(self._data):
            grown = np.empty((max(need, 2 * len(self._data)), self.columns))
            grown[:self._n] = self._data[:self._n]
            self._data = grown
        self._data[self._n:need] = rows
        self._n = need

    def view(self) -> np.ndarray:
        return self._data[:self._n]

    def clear(self) -> None:
        self._n = 0


class SmoothedColumns:
    """The smoothed copy of a growing table's columns (e.g. a run's ``History``), kept up to date cheaply.

    :meth:`update` is handed the whole table each time and smooths only the rows added since the
    last call; it starts over when ``generation`` changes (a ``History`` passes its ``stride``,
    which doubles whenever rows are dropped), the weight or the column count changes, or the
    table got shorter. So a live run costs O(new rows) per redraw and a thinned one a full pass.
    """

    def __init__(self):
        self._buffer: GrowingBuffer | None = None
        self._states: list[tuple[float, int]] = []
        self._key = None

    def clear(self) -> None:
        """Forget everything: the next :meth:`update` smooths the whole table."""
        self._buffer, self._key = None, None

    def update(self, values: np.ndarray, weight: float, generation=0) -> np.ndarray:
        """``values`` ``[n, C]`` (all rows so far) → the smoothed ``[n, C]`` (a view: copy to keep it)."""
        values = np.asarray(values, dtype=float)
        key = (generation, values.shape[1], weight)
        if key != self._key or self._buffer is None or len(values) < len(self._buffer):
            self._key = key
            self._buffer = GrowingBuffer(values.shape[1], max(1024, len(values)))
            self._states = [(0.0, 0)] * values.shape[1]
        done = len(self._buffer)
        if done < len(values) and values.shape[1]:
            new = np.empty((len(values) - done, values.shape[1]))
            for c in range(values.shape[1]):
                new[:, c], self._states[c] = ema_debiased(values[done:, c], weight, self._states[c])
            self._buffer.extend(new)
        return self._buffer.view() if values.shape[1] else np.empty((len(values), 0))


# -- a time x axis -------------------------------------------------------------------------------
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def training_time(iterations: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Seconds of training up to each kept row: the sum of the meta-iterations' own durations
    (``metrics.csv`` records no clock time, so pauses, scoring and saving are not counted). A
    thinned history keeps every ``stride``-th row: each kept row stands for the iterations since
    the previous one, at its own duration."""
    iterations = np.asarray(iterations, dtype=float)
    if not len(iterations):
        return np.empty(0)
    gaps = np.diff(iterations, prepend=iterations[0] - 1)
    gaps[gaps < 0] = 1   # a continued run's rows start again: one iteration each
    durations = np.nan_to_num(np.asarray(seconds, dtype=float), nan=0.0, posinf=0.0, neginf=0.0).clip(min=0)
    return np.cumsum(durations * gaps)


def time_tick_spacing(lo: float, hi: float, pixels: float, per_label: float = 70.0) -> float:
    """A clock-friendly tick spacing in seconds (1, 2, 5, 10, 15, 30 s, 1, 2, 5 … min, 1, 2, 3 … h)
    leaving about ``per_label`` pixels between labels."""
    wanted = (hi - lo) / max(pixels / per_label, 1.0)
    for step in TIME_STEPS:
        if step >= wanted:
            return float(step)
    return float(86400 * math.ceil(wanted / 86400))


def format_duration(seconds: float) -> str:
    """"45 s", "2:30" (min:s), "1:05:00" (h:min:s)."""
    if not math.isfinite(seconds):
        return ""
    sign, total = ("-" if seconds < 0 else ""), int(round(abs(seconds)))
    if total < 60:
        return f"{sign}{total} s"
    hours, rest = divmod(total, 3600)
    return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{sign}{rest // 60}:{rest % 60:02d}"
