"""The documented range of every numeric command-line flag, checked while the arguments are parsed.

argparse's ``type=int`` takes any integer, so ``--seed 99999999999999999999`` used to reach torch
and end in an overflow traceback. These types refuse a value outside its range at parse time:
argparse turns the :class:`argparse.ArgumentTypeError` into one line naming the flag (exit 2).
The same bounds are the config fields' (:mod:`core.config`), so a flag and a ``config.json`` agree.
"""

from __future__ import annotations

import argparse
import math

MAX_SEED = 2**31 - 1          # seeds: 0..MAX_SEED (offsets added for held-out streams stay within torch's int64)
MAX_ITERATIONS = 10**9
MAX_EVAL_TASKS = 100_000
MAX_POINTS = 10_000           # shots or query points per task (per class for N-way episodes)


def integer(low: int, high: int):
    """An argparse type: a whole number in ``low..high``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{_short(text)} is outside {low}..{high}")
        return value
    parse.__name__ = "integer"   # argparse names the type in its own messages
    return parse


def number(low: float, high: float, low_open: bool = True):
    """An argparse type: a finite number in ``(low, high]`` (``[low, high]`` with ``low_open=False``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        inside = (low < value if low_open else low <= value) and value <= high
        if not (math.isfinite(value) and inside):
            raise argparse.ArgumentTypeError(f"{_short(text)} is outside {'(' if low_open else '['}{low:g}, {high:g}]")
        return value
    parse.__name__ = "number"
    return parse


def _short(text: str) -> str:
    return text if len(text) <= 24 else text[:20] + "…"


seed = integer(0, MAX_SEED)
