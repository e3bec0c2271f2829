"""Standardising the columns of a table, one rule for every family of rows (CSV tasks, labelled
rows): statistics that do not overflow on values near float64's largest, and a warning, naming the
value and its line, when one extreme value sets a column's scale so that the others all become
one float32 number (the meta-loss then looks fine and means nothing)."""

from __future__ import annotations

from typing import Callable

import numpy as np


def column_stats(values: np.ndarray, overwrite: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column mean and std, computed on rescaled values so huge values do not overflow; std 0 -> 1
    (the third array says which columns were constant).

    ``overwrite`` works in ``values`` itself (a concatenated copy of a million rows need not be copied
    twice more); the arithmetic is numpy's ``mean(0)`` and ``std(0)``, step for step.
    """
    scale = np.maximum(values.max(0), -values.min(0))  # |values|.max(0) without an |values| copy
    scale[scale == 0] = 1.0
    scaled = np.divide(values, scale, out=values if overwrite else None)
    n = len(scaled)
    mean_scaled = scaled.sum(0) / n
    np.subtract(scaled, mean_scaled, out=scaled)
    np.multiply(scaled, scaled, out=scaled)
    mean, std = mean_scaled * scale, np.sqrt(scaled.sum(0) / n) * scale
    constant = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
    std[constant] = 1.0
    return mean, std, constant


class Flattened:
    """Columns whose bulk standardising flattens. Built from the raw meta-training values before
    :func:`column_stats` overwrites them: a sample of at most :data:`SAMPLE` rows for the bulk's
    spread, and the most extreme row of each column; ``where(row, column)`` names the place of that
    value (``file.csv line N``)."""

    SAMPLE = 100_000

    def __init__(self, values: np.ndarray, where: Callable[[int, int], str]):
        self.sample = values[::max(1, len(values) // self.SAMPLE)].copy()
        high, low = values.argmax(0), values.argmin(0)
        rows = np.arange(values.shape[1])
        self.extreme = np.where(np.abs(values[high, rows]) >= np.abs(values[low, rows]), high, low)
        self.values = values[self.extreme, rows]
        self._where = where

    def warnings(self, mean: np.ndarray, std: np.ndarray, names: list[str]) -> list[str]:
        raw = np.percentile(self.sample, [5, 95], axis=0, method="nearest")
        scaled = ((self.sample - mean) / std).astype(np.float32)
        z = np.percentile(scaled, [5, 95], axis=0, method="nearest")
        # also when over 5% of the values are extreme (the percentiles then span them): few distinct values left
        few = 2 * _distinct(scaled) <= _distinct(self.sample)
        out = []
        for j in np.flatnonzero(((raw[1] > raw[0]) & (z[1] == z[0])) | (few & (raw[1] > raw[0]))):
            spread = f" (spread {raw[1, j] - raw[0, j]:.3g})" if z[1, j] == z[0, j] else ""
            out.append(f"{names[j]}: the value {self.values[j]:.6g} at {self._where(int(self.extreme[j]), j)} sets the "
                       f"column's scale, so its other values{spread} all become the same "
                       "number after standardising and training cannot tell them apart; correct or remove the "
                       "extreme values, or rescale the column")
        return out


def _distinct(values: np.ndarray) -> np.ndarray:
    """How many different values each column holds (one sort of the whole sample)."""
    ordered = np.sort(values, axis=0)
    return 1 + (np.diff(ordered, axis=0) != 0).sum(0)
