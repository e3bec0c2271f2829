"""N-way K-shot episodes over labelled classes, shared by the image, glyph and labelled-row families.

Examples live in one array (``uint8`` images or ``float32`` rows), each class a contiguous range of
it. Classes are split into meta-train / validation / test *before* anything else (rotated copies of
a class stay in its split), so held-out episodes only ever show classes never trained on. An
episode picks N classes of a split, gives them the labels 0..N-1 in a random order, and draws K + Q
distinct examples of each — all with a few vectorised torch calls on the caller's generator, so
the same seed gives the same episodes on any thread.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from .base import TaskBatch, TaskFamily

SPLITS = ("train", "val", "test")
SPLIT_TITLES = {"train": "meta-train", "val": "meta-validation", "test": "meta-test"}
ROTATIONS = ("", " ↻90°", " ↻180°", " ↻270°")
SHOW = 8                    # names a message lists before "and N more"
KEY_BUDGET = 4_000_000      # random keys drawn at once when choosing examples (bounds memory for huge classes)


def split_groups(n: int, fractions: Sequence[float], seed: int, unit: str = "classes",
                 zero_hint: str = "the validation fraction") -> dict[str, list[int]]:
    """Group indices per split: a seeded permutation cut by the fractions (each used split gets >= 1).
    ``unit`` names the groups in the message ("tasks", "alphabets", …); ``zero_hint`` which fractions
    may be set to 0 instead."""
    _, f_val, f_test = fractions
    n_val = max(int(f_val > 0), math.floor(f_val * n + 0.5))
    n_test = max(int(f_test > 0), math.floor(f_test * n + 0.5))
    if n - n_val - n_test < 1:
        needed = 1 + int(f_val > 0) + int(f_test > 0)
        what = unit[:-1] if n == 1 and unit.endswith("s") else unit
        raise ConfigError("family.split", f"{n} {what} cannot be split into meta-train / validation / test "
                                          f"{list(fractions)}: at least {needed} {unit} are needed (or set "
                                          f"{zero_hint} to 0)")
    perm = np.random.default_rng(seed).permutation(n).tolist()
    return {"test": sorted(perm[:n_test]), "val": sorted(perm[n_test:n_test + n_val]),
            "train": sorted(perm[n_test + n_val:])}


def listed(items: Sequence[str], limit: int = SHOW) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def pixels_to_float(mean: Sequence[float], std: Sequence[float]) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 pixels ``[..., C, H, W]`` -> ``(x / 255 - mean) / std`` per channel, float32, in one pass."""
    if len(mean) == 1:   # scalars: much faster than a broadcast
        scale, shift = 1 / (255 * std[0]), -mean[0] / std[0]
        return lambda x: x.float().mul_(scale).add_(shift)
    scale_c = torch.tensor([1 / (255 * s) for s in std], dtype=torch.float32)[:, None, None]
    shift_c = torch.tensor([-m / s for m, s in zip(mean, std)], dtype=torch.float32)[:, None, None]
    return lambda x: x.float().mul_(scale_c).add_(shift_c)


def pixel_stats(images: torch.Tensor, starts: Sequence[int], counts: Sequence[int]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (pixels scaled to [0, 1]) of the given class ranges of uint8
    ``images [n, C, H, W]``, from exact histograms: no float copy of the data."""
    channels = images.shape[1]
    hist = torch.zeros(channels, 256, dtype=torch.float64)
    for start, count in zip(starts, counts):
        block = images[start:start + count]
        for c in range(channels):
            hist[c] += torch.bincount(block[:, c].reshape(-1), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255
    n = hist.sum(1).clamp_min(1)
    mean = (hist * values).sum(1) / n
    std = ((hist * values ** 2).sum(1) / n - mean ** 2).clamp_min(0).sqrt()
    std[std < 1e-6] = 1.0
    return mean.tolist(), std.tolist()


class EpisodeSampler:
    """Draws episodes from ``data`` grouped by class.

    ``starts``/``counts`` give each class's rows; ``splits`` maps split name to class indices;
    ``rotations`` makes each class four (0/90/180/270 degrees, for square images), inside its split.
    ``to_float`` turns gathered rows into what the network sees (e.g. uint8 pixels -> standardized).
    """

    def __init__(self, data: torch.Tensor, starts: Sequence[int], counts: Sequence[int], names: Sequence[str],
                 splits: dict[str, list[int]], n_way: int, *, rotations: bool = False,
                 to_float: Callable[[torch.Tensor], torch.Tensor] | None = None, advice: str = "",
                 unit: str = "examples"):
        self.data = data
        self._starts = torch.as_tensor(np.asarray(starts, dtype=np.int64))
        self._counts = torch.as_tensor(np.asarray(counts, dtype=np.int64))
        self.names = list(names)
        self.splits = {s: list(splits.get(s, [])) for s in SPLITS}
        self.n_way = n_way
        self.rotations = 4 if rotations else 1
        self.to_float = to_float or (lambda x: x.float())
        self.advice = advice or "or give that split a larger fraction (split)"
        self.unit = unit
        self._usable_memo: dict[tuple[str, int], torch.Tensor] = {}

    # -- what the splits hold --------------------------------------------------------------------
    def classes(self, split: str) -> list[int]:
        """Episode class ids of ``split`` (with rotations: ``4 * class + quarter turns``)."""
        base = self.splits[_split(split)]
        return [c * self.rotations + r for c in base for r in range(self.rotations)]

    def class_name(self, cid: int) -> str:
        return self.names[cid // self.rotations] + ROTATIONS[cid % self.rotations]

    def class_names(self, split: str) -> list[str]:
        return [self.class_name(c) for c in self.classes(split)]

    def sizes(self, split: str) -> list[int]:
        """Examples each class of ``split`` holds (rotated copies not repeated)."""
        return [int(self._counts[c]) for c in self.splits[_split(split)]]

    def check_classes(self) -> list[str]:
        """Refuse when meta-train or meta-test cannot fill one episode whatever the shots; a validation
        split that cannot is only a warning (returned), as nothing but :meth:`sample` of it needs one."""
        notes = []
        for split in SPLITS:
            n = len(self.classes(split))
            if n == 0 and split != "val":
                raise ConfigError("family.split", f"the {SPLIT_TITLES[split]} split has no classes; give it a "
                                                  "fraction above 0 (or more classes)")
            if 0 < n < self.n_way:
                message = (f"the {SPLIT_TITLES[split]} split has {n} class{'es' * (n != 1)}, fewer than the {self.n_way} ways "
                           f"(classes per episode); use fewer ways, {self.advice}")
                if split != "val":
                    raise ConfigError("family.n_way", message)
                notes.append(message + " (no validation episodes can be drawn)")
        return notes

    def check_sizes(self, shots: int, query: int) -> list[str]:
        """Warnings naming classes too small for ``shots + query`` (never drawn); raises when a split
        that must fill episodes keeps fewer than N classes."""
        need = shots + query
        small = [(s, c) for s in SPLITS for c in self.splits[s] if int(self._counts[c]) < need]
        notes = []
        if small:
            total = sum(len(v) for v in self.splits.values())
            names = [f"{self.names[c]!r} ({SPLIT_TITLES[s]}, {int(self._counts[c])})" for s, c in small]
            rotated = " and their rotated copies" if self.rotations > 1 else ""
            notes.append(f"skipped {len(small)} of {total} classes{rotated} with fewer than shots + query = {need} "
                         f"{self.unit}: {listed(names)}")
        for split in ("train", "test"):
            self.usable(split, shots, query)
        if self.splits["val"] and len(self.usable("val", shots, query, required=False)) < self.n_way:
            notes.append(f"too few meta-validation classes have shots + query = {need} {self.unit} for an episode; "
                         "no validation episodes can be drawn")
        return notes

    def usable(self, split: str, shots: int, query: int, required: bool = True) -> torch.Tensor:
        """Class ids of ``split`` with at least ``shots + query`` examples (memoised: asked every step)."""
        need = shots + query
        key = (_split(split), need)
        if key not in self._usable_memo:
            ids = torch.tensor(self.classes(split), dtype=torch.long)
            self._usable_memo[key] = ids[self._counts[ids // self.rotations] >= need]
        found = self._usable_memo[key]
        if required and len(found) < self.n_way:
            total = len(self.classes(split))
            raise ConfigError("train.shots", f"the {SPLIT_TITLES[split]} split has {len(found)} of its {total} classes "
                                             f"with at least shots + query = {need} {self.unit}, fewer than the "
                                             f"{self.n_way} ways of an episode; use fewer ways, fewer shots or query "
                                             f"per class, {self.advice}")
        return found

    # -- sampling --------------------------------------------------------------------------------
    def sample(self, split: str, n_tasks: int, shots: int, query: int, generator: torch.Generator) -> TaskBatch:
        """``n_tasks`` episodes: x ``[T, N*K, ...]``, labels ``[T, N*K]`` (K = shots, then query, per class).

        ``task_params["classes"]`` ``[T, N]`` holds the class id behind each label (see :meth:`class_name`).
        """
        if shots < 1 or query < 0:
            raise ConfigError("train.shots", "shots must be at least 1 and query at least 0 per class")
        usable = self.usable(split, shots, query)
        n, need = self.n_way, shots + query
        pick = torch.rand((n_tasks, len(usable)), generator=generator).topk(n, dim=1).indices   # random order
        chosen = usable[pick]                                   # [T, N]: label i of episode t is chosen[t, i]
        base, turns = chosen // self.rotations, chosen % self.rotations
        rows = self._rows(base, need, generator)                # [T, N, need]
        flat = self.data.reshape(len(self.data), -1).index_select(0, rows.reshape(-1))   # 2x faster than data[rows]
        if self.rotations > 1:                                  # turn pixels by a fixed permutation per turn
            *lead, height, width = self.data.shape[1:]
            grid = torch.arange(height * width).reshape(height, width)
            perms = torch.stack([torch.rot90(grid, k, dims=(0, 1)).reshape(-1) for k in range(4)])
            pixels = height * width
            shape = (n_tasks, n, need, flat.shape[1] // pixels, pixels)
            offsets = torch.arange(flat.numel() // pixels).reshape(*shape[:-1], 1) * pixels
            source = (offsets + perms[turns][:, :, None, None, :]).reshape(-1)
            flat = flat.reshape(-1).index_select(0, source)     # index_select: ~5x faster than gather here
        x = flat.reshape(n_tasks, n, need, *self.data.shape[1:])
        x = self.to_float(x)
        shape = x.shape[3:]
        labels = torch.arange(n)
        sy = labels.repeat_interleave(shots).expand(n_tasks, -1).contiguous()
        qy = labels.repeat_interleave(query).expand(n_tasks, -1).contiguous()
        return TaskBatch(x[:, :, :shots].reshape(n_tasks, n * shots, *shape), sy,
                         x[:, :, shots:].reshape(n_tasks, n * query, *shape), qy, {"classes": chosen})

    def _rows(self, base: torch.Tensor, need: int, generator: torch.Generator) -> torch.Tensor:
        """``need`` distinct rows of each class in ``base`` ``[T, N]``: the smallest of random keys
        (keys past a class's size never win), in task chunks so huge classes stay within memory."""
        counts, starts = self._counts[base], self._starts[base]
        width = int(counts.max())
        chunk = max(1, KEY_BUDGET // max(1, base.shape[1] * width))
        picks = []
        for lo in range(0, base.shape[0], chunk):
            keys = torch.rand((min(chunk, base.shape[0] - lo), base.shape[1], width), generator=generator)
            keys.masked_fill_(torch.arange(width) >= counts[lo:lo + chunk, :, None], 2.0)
            picks.append(keys.topk(need, dim=-1, largest=False, sorted=True).indices)
        return starts[..., None] + torch.cat(picks)


class EpisodeFamily(TaskFamily):
    """A classification family whose tasks are N-way episodes drawn by an :class:`EpisodeSampler`.

    Subclasses build ``self.sampler`` (and ``input_shape``, ``input_dim``, ``normalization``) in
    ``_load``. ``sample`` draws meta-train classes, ``sample_held_out`` meta-test classes and
    ``sample_validation`` meta-validation classes.
    """

    kind = "classification"
    sampler: EpisodeSampler

    def __init__(self, params: Any = None, *, every_class: bool = False):
        self._every_class = every_class   # scoring a run trained elsewhere: every class is meta-test data
        self._load_warnings: list[str] = []
        self._size_warnings: list[str] = []
        self.default_split = "train"
        super().__init__(params)

    @property
    def output_dim(self) -> int:  # type: ignore[override]
        return self.params["n_way"]

    @property
    def warnings(self) -> list[str]:
        return self._load_warnings + self._size_warnings

    def check_sizes(self, shots: int, query: int) -> None:
        """Warn about (and skip) classes smaller than shots + query; raise before training when a split
        cannot fill an episode with N such classes."""
        self._size_warnings = self.sampler.check_sizes(shots, query)

    def sample(self, n_tasks: int, shots: int, query: int, generator: torch.Generator,
               split: str | None = None) -> TaskBatch:
        return self.sampler.sample(split or self.default_split, n_tasks, shots, query, generator)

    def sample_held_out(self, n_tasks: int, shots: int, query: int, generator: torch.Generator) -> TaskBatch:
        """Episodes over meta-test classes, never trained on."""
        return self.sample(n_tasks, shots, query, generator, split="test")

    def held_out_query(self, shots: int, query: int, cap: int = 100) -> int:
        """Query examples per class for scoring: as many as every meta-test class can give (at most
        ``query`` and ``cap``), so no class is left out of evaluation for being small; when even that
        is none, as many as the N largest classes give."""
        ids = torch.tensor(self.sampler.classes("test"), dtype=torch.long)
        counts = self.sampler._counts[ids // self.sampler.rotations].sort(descending=True).values
        if len(counts) < self.output_dim:
            return query
        room = int(counts[-1]) - shots
        if room < 1:
            room = int(counts[self.output_dim - 1]) - shots
        return max(1, min(query, cap, room))

    def sample_validation(self, n_tasks: int, shots: int, query: int, generator: torch.Generator) -> TaskBatch:
        return self.sample(n_tasks, shots, query, generator, split="val")

    def held_out(self, split: str = "test") -> "EpisodeFamily":
        """The same family drawing from ``split`` by default (as :meth:`CsvFamily.held_out`)."""
        view = copy.copy(self)
        view.default_split = _split(split)
        return view

    def _final_splits(self, splits: dict[str, list[int]]) -> dict[str, list[int]]:
        """``splits``, or with ``every_class`` all classes in meta-train and meta-test alike (the
        check that a split can fill an episode then holds for any split fractions)."""
        if not self._every_class:
            return splits
        everything = sorted({c for cs in splits.values() for c in cs})
        return {"train": everything, "val": [], "test": everything}

    def normalised_like(self, like: "EpisodeFamily") -> "EpisodeFamily":
        """This family (built with ``every_class=True`` to score a run trained on other data, a
        cross-domain check) with inputs standardised as ``like``'s, the data the network was trained on."""
        view = copy.copy(self)
        view.sampler = copy.copy(self.sampler)
        view.sampler.to_float, view.normalization = like.sampler.to_float, like.normalization
        view.default_split = "test"
        return view

    # -- for views -----------------------------------------------------------------------------
    def class_names(self, split: str = "train") -> list[str]:
        """Names of the classes episodes of ``split`` draw from (rotated copies named ``… ↻90°``)."""
        return self.sampler.class_names(split)

    def split_sizes(self) -> dict[str, int]:
        return {s: len(self.sampler.classes(s)) for s in SPLITS}

    def episode_classes(self, batch: TaskBatch) -> list[list[str]]:
        """Per episode, the class name behind each label 0..N-1."""
        return [[self.sampler.class_name(c) for c in row] for row in batch.task_params["classes"].tolist()]


def _split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError("family.split", f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return split
