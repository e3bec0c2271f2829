"""Your own images as N-way K-shot episodes: a folder of class folders (or Omniglot's alphabets).

Three layouts are recognised, and :attr:`ImageFolderData.layout` says which was found:

- **Omniglot**: ``alphabet/character/*.png`` — a class is a character; the split goes by alphabet.
- **ImageFolder** (miniImageNet, …): ``class/*.jpg|png|…`` — the split goes by class.
- **pre-split**: ``train/``, ``val/`` (or ``valid/``, ``validation/``) and ``test/``, each holding one
  of the layouts above (Omniglot's ``images_background/`` / ``images_evaluation/`` count as train /
  test); the split fractions are then not used.

Every image is decoded once with Pillow into a compact ``uint8 [n, C, S, S]`` array (non-square
images centre-cropped, resized with a Lanczos filter), kept in a module cache keyed by the files'
names, sizes and modification times, so building the family again costs no decoding.
Normalisation statistics (per channel) come from meta-train classes only.

Nothing bad is half-used in silence: unreadable, empty, corrupt or far too large image files
(:func:`pixel_limit`, checked from the header: decompression bombs) are skipped and counted in
:attr:`warnings` with the file and reason; images in unusual modes (palette, CMYK, 16-bit,
transparency) are converted and named in one warning; hidden files (``.DS_Store``) are ignored;
images outside any class folder, and files that are not images by their extension
(``README.txt``, ``labels.csv``), are not read and are counted in one warning each; classes left
with too few images are reported when the shots are known (:meth:`check_sizes`).
"""

from __future__ import annotations

import os
import re
import threading
from warnings import filterwarnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ConfigError, MamlError
from .base import ParamField
from .episodes import SPLITS, EpisodeFamily, EpisodeSampler, pixel_stats, pixels_to_float, listed, split_groups

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
SPLIT_NAMES = {"train": "train", "training": "train", "images_background": "train", "background": "train",
               "val": "val", "valid": "val", "validation": "val", "test": "test", "testing": "test",
               "images_evaluation": "test", "evaluation": "test"}
CHUNK = 256              # images decoded between progress / cancel checks
KEEP = 2                 # decoded folders kept for re-use
WORKERS = min(4, os.cpu_count() or 1)   # Pillow releases the GIL while decoding and resizing

Progress = Callable[[int, int], object]   # progress(done, total)


class LoadCancelled(MamlError):
    """``cancelled()`` returned True while the images were being read; not a problem with the data."""


@dataclass
class ImageClass:
    name: str                # "alphabet/character", "class" or, pre-split, "train/class"
    group: str               # what the split goes by: the alphabet, or the class itself
    split: str | None        # the folder's split in a pre-split layout
    start: int = 0
    count: int = 0


@dataclass
class ImageFolderData:
    """Decoded images ``uint8 [n, C, S, S]``, class by class, and what was skipped on the way."""

    images: torch.Tensor
    classes: list[ImageClass]
    layout: str
    warnings: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)    # (file, reason)

    @property
    def nbytes(self) -> int:
        return self.images.numel() * self.images.element_size()


# -- finding the files -------------------------------------------------------------------------------
def _visible(entries) -> list[Path]:
    return sorted(p for p in entries if not p.name.startswith(".") and p.name != "__MACOSX")


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES


def count_classes(root: Path) -> int:
    """Classes (with at least one image file) a folder holds, found without decoding anything."""
    return sum(1 for _, files in _scan(Path(root))[1] if files)


def _scan(root: Path) -> tuple[str, list[tuple[ImageClass, list[Path]]], list[str], list[Path]]:
    """Layout, classes with their image files, notes, and the non-image files seen (never read)."""
    if not root.exists():
        raise ConfigError("family.path", f"{root} does not exist; choose a folder of class folders")
    if not root.is_dir():
        raise ConfigError("family.path", f"{root.name} is a file; choose the folder that holds one folder per class "
                                         "(or train/ val/ test/ folders)")
    try:
        top = _visible(root.iterdir())
    except OSError as exc:
        raise ConfigError("family.path", f"cannot list {root}: {exc.strerror or exc}") from None
    dirs = [p for p in top if p.is_dir()]
    others = [p for p in top if p.is_file()]
    if not dirs:
        what = "holds images but no class folders; put each class's images in a folder of its own" \
            if any(_is_image(p) for p in others) else "is empty" if not others else "holds no folders of images"
        raise ConfigError("family.path", f"{root.name} {what} (layouts: class/*.png, alphabet/character/*.png, "
                                         "or train/ val/ test/ holding those)")
    notes: list[str] = []
    non_images: list[Path] = []
    named = {SPLIT_NAMES.get(d.name.lower()) for d in dirs}
    if "train" in named and None not in named:
        non_images += others   # the class scans below start one level down
        classes: list[tuple[ImageClass, list[Path]]] = []
        inner = set()
        for d in dirs:
            split = SPLIT_NAMES[d.name.lower()]
            kind, found = _scan_classes(d, notes, non_images, prefix=f"{d.name}/")
            inner.add(kind)
            for c, files in found:
                c.split = split
                classes.append((c, files))
        _note_shared_names(classes, notes)
        return f"pre-split ({', '.join(d.name for d in dirs)}; {' and '.join(sorted(inner))} inside)", \
            classes, notes, non_images
    kind, classes = _scan_classes(root, notes, non_images)
    return kind, classes, notes, non_images


def _scan_classes(folder: Path, notes: list[str], non_images: list[Path], prefix: str = ""):
    """``("ImageFolder", …)`` when sub-folders hold images, ``("Omniglot", …)`` when they hold folders of images."""
    dirs = [p for p in _visible(folder.iterdir()) if p.is_dir()]
    non_images += [p for p in _visible(folder.iterdir()) if p.is_file()]
    flat, nested = [], []
    for d in dirs:
        entries = _visible(d.iterdir())
        subdirs = [p for p in entries if p.is_dir()]
        (nested if subdirs and not any(p.is_file() and _is_image(p) for p in entries) else flat).append(d)
    if len(nested) > len(flat):
        if flat:
            notes.append(f"ignored {len(flat)} folder(s) of {prefix or folder.name + '/'} that hold images directly "
                         f"rather than character folders: {listed([d.name for d in flat])}")
        found = []
        for alphabet in nested:
            for char in _visible(p for p in alphabet.iterdir()):
                if char.is_dir():
                    found.append((ImageClass(f"{prefix}{alphabet.name}/{char.name}", prefix + alphabet.name, None),
                                  _images(char, non_images)))
                else:
                    non_images.append(char)
        return "Omniglot (alphabet/character/image)", found
    if nested:
        notes.append(f"ignored {len(nested)} folder(s) of {prefix or folder.name + '/'} that hold folders rather "
                     f"than images: {listed([d.name for d in nested])}")
    return "ImageFolder (class/image)", [(ImageClass(prefix + d.name, prefix + d.name, None), _images(d, non_images))
                                         for d in flat]


def _images(folder: Path, non_images: list[Path]) -> list[Path]:
    listed_ = _visible(folder.iterdir())
    entries = [p for p in listed_ if p.is_file()]
    non_images += [p for p in entries if not _is_image(p)]
    non_images += [p for p in listed_ if not p.is_file() and not p.is_dir()]   # a pipe, device or broken link
    return [p for p in entries if _is_image(p)]


def _note_shared_names(classes, notes: list[str]) -> None:
    by_split: dict[str, set[str]] = {}
    for c, _ in classes:
        by_split.setdefault(c.name.split("/", 1)[1], set()).add(c.split or "")
    shared = [n for n, s in by_split.items() if len(s) > 1]
    if shared:
        notes.append(f"{len(shared)} class name(s) appear in more than one split ({listed(shared)}); they are kept "
                     "as separate classes, but if they are the same class the held-out scores are optimistic")


# -- decoding ----------------------------------------------------------------------------------------
MIN_PIXEL_LIMIT = 24_000_000    # a camera photo; smaller inputs never need a larger file
PIXELS_PER_INPUT_PIXEL = 1024   # a 32× reduction each way is the most any input size needs

# Pillow's own bomb check only warns (two raw lines on stderr) up to twice its limit and then errors;
# every image here is first held to :func:`pixel_limit`, far below it, so the warning can only mean
# an image to refuse: raising it lets :func:`decode_image` refuse by name instead of printing it.
filterwarnings("error", category=Image.DecompressionBombWarning)


def pixel_limit(size: int) -> int:
    """The most pixels a file may have to make one ``size``×``size`` input; a larger one is refused
    from its header, before decoding (a 657 KB PNG can decode to gigabytes)."""
    return max(MIN_PIXEL_LIMIT, PIXELS_PER_INPUT_PIXEL * size * size)


class _TooLarge(ValueError):
    pass


def _too_large(pixels: int, size: int, dims: str = "") -> ValueError:
    return _TooLarge(f"{dims}{' = ' if dims else ''}{pixels / 1e6:.1f} megapixels, more than the "
                      f"{pixel_limit(size) / 1e6:.0f} megapixels a {size}×{size} input needs (refused unread: a guard against "
                      "decompression bombs); shrink the file")


def decode_image(path: Path, size: int, channels: int) -> tuple[np.ndarray, str | None]:
    """One file as ``uint8 [C, size, size]``, and what an unusual mode (palette, CMYK, 16-bit,
    transparency) was converted from, else None; raises ValueError with a reason a person can act on."""
    if path.stat().st_size == 0:
        raise ValueError("the file is empty")
    try:
        with Image.open(path) as img:
            w, h = img.size   # from the header: nothing decoded yet
            if w * h > pixel_limit(size):
                raise _too_large(w * h, size, f"{w}×{h}")
            if img.format == "JPEG":
                img.draft("L" if channels == 1 else "RGB", (size, size))   # decode at a reduced scale: faster
            img.load()
            img = ImageOps.exif_transpose(img) or img
            unusual = _unusual_mode(img)
            img = _to_mode(img, channels)
            w, h = img.size
            side = min(w, h)
            box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
            img = img.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
            arr = np.asarray(img, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        if found:
            raise _too_large(int(found[1]), size) from None
        raise ValueError(f"too large to decode safely ({exc})") from None
    except UnidentifiedImageError as exc:
        raise ValueError("not an image Pillow can read (corrupt, or another format under an image extension)") \
            from exc
    except _TooLarge:
        raise
    except (OSError, SyntaxError, ValueError, TypeError, EOFError) as exc:
        raise ValueError(f"cannot decode it ({exc}); the file may be truncated or corrupt") from exc
    return (arr[None] if channels == 1 else arr.transpose(2, 0, 1)), unusual


_MODE_NAMES = {"P": "palette", "PA": "palette", "CMYK": "CMYK", "I": "32-bit", "F": "floating-point",
               "LAB": "Lab", "HSV": "HSV", "YCbCr": "YCbCr"}


def _unusual_mode(img: Image.Image) -> str | None:
    """What a plain grey or RGB conversion would not say: None for 1-bit, grey and RGB images."""
    words = ["16-bit" if img.mode.startswith("I;16") else _MODE_NAMES.get(img.mode, "")]
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        words.append("transparency, laid over white")
    words = [w for w in words if w]
    return ", ".join(words) or None


def _to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Grey or RGB from any mode: 16-bit and float scaled (not clipped), transparency over white."""
    target = "L" if channels == 1 else "RGB"
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16") or (img.mode == "I" and a.max(initial=0) > 255):
            a = a / 257.0
        elif img.mode == "F" and a.max(initial=0) <= 1.0:
            a = a * 255.0
        img = Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode in ("P", "L", "RGB") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert(target) if img.mode != target else img


def load_image_folder(path: str | Path, size: int = 28, channels: int = 1, progress: Progress | None = None,
                      cancelled: Callable[[], bool] | None = None) -> ImageFolderData:
    """Read a folder of images (layout detected), decoded once and cached by the files' stamps.

    ``progress(done, total)`` is called every few hundred images and ``cancelled()`` checked as
    often (from the calling thread, e.g. a background worker): True raises :class:`LoadCancelled`.
    """
    if channels not in (1, 3):
        raise ConfigError("family.channels", "use 1 (grey) or 3 (RGB)")
    root = Path(path).expanduser()
    layout, found, notes, non_images = _scan(root)
    files = [f for _, fs in found for f in fs]
    try:
        stamps = tuple((str(f), st.st_size, st.st_mtime_ns) for f in files for st in (f.stat(),))
    except OSError as exc:
        raise ConfigError("family.path", f"a file changed while it was listed ({exc}); try again") from None
    key = (str(root.resolve()), size, channels, hash(stamps), len(stamps))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    if not files:
        raise ConfigError("family.path", f"{root.name} holds class folders but no image files "
                                         f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    data = _decode_all(root, layout, found, notes, non_images, size, channels, progress, cancelled)
    with _cache_lock:
        _cache[key] = data
        while len(_cache) > KEEP:
            _cache.popitem(last=False)
    return data


def _decode_all(root, layout, found, notes, non_images, size, channels, progress, cancelled) -> ImageFolderData:
    files = [f for _, fs in found for f in fs]
    out = np.empty((len(files), channels, size, size), dtype=np.uint8)
    ok = np.zeros(len(files), dtype=bool)
    skipped: list[tuple[str, str]] = []
    converted: list[tuple[str, str]] = []

    def one(i: int) -> None:
        try:
            out[i], unusual = decode_image(files[i], size, channels)
            ok[i] = True
        except (ValueError, OSError) as exc:
            skipped.append((str(files[i].relative_to(root)), str(exc)))
            return
        if unusual:
            converted.append((str(files[i].relative_to(root)), unusual))

    with ThreadPoolExecutor(WORKERS) as pool:
        for lo in range(0, len(files), CHUNK):
            if cancelled is not None and cancelled():
                raise LoadCancelled(f"reading {root.name} was cancelled")
            list(pool.map(one, range(lo, min(lo + CHUNK, len(files)))))
            if progress is not None:
                progress(min(lo + CHUNK, len(files)), len(files))
    classes, keep, start, empty = [], [], 0, []
    offset = 0
    for c, fs in found:
        good = np.flatnonzero(ok[offset:offset + len(fs)]) + offset
        offset += len(fs)
        if len(good) == 0:
            empty.append(c.name)
            continue
        c.start, c.count = start, len(good)
        start += len(good)
        classes.append(c)
        keep.append(good)
    warnings = list(notes)
    unread = ""
    if skipped:
        skipped.sort()
        unread = (f"skipped {len(skipped)} of {len(files)} image files that could not be read: "
                  + listed([f"{f} ({why})" for f, why in skipped], 5))
        warnings.append(unread)
    if empty:
        warnings.append(f"left out {len(empty)} class folder(s) with no readable image: {listed(empty)}")
    if converted:
        converted.sort()
        target = "grey" if channels == 1 else "RGB"
        warnings.append(f"converted {len(converted)} image(s) in an unusual mode to {target}; check that they look "
                        f"right: {listed([f'{f} ({mode})' for f, mode in converted], 5)}")
    special = [str(p.relative_to(root)) for p in non_images if not p.is_file()]
    loose = [str(p.relative_to(root)) for p in non_images if p.is_file() and _is_image(p)]
    others = [str(p.relative_to(root)) for p in non_images if p.is_file() and not _is_image(p)]
    if special:   # never opened: reading a named pipe would block
        warnings.append(f"ignored {len(special)} entr{'y' if len(special) == 1 else 'ies'} that are not regular files "
                        f"(a named pipe, a device, a socket or a broken link): {listed(special, 5)}")
    if loose:
        warnings.append(f"ignored {len(loose)} image file(s) outside any class folder (a class is a folder of "
                        f"images): {listed(loose, 5)}")
    if others:
        warnings.append(f"ignored {len(others)} file(s) that are not images by their extension: {listed(others, 5)}")
    if not classes:
        raise ConfigError("family.path", f"no image in {root.name} could be read; {unread}")
    images = torch.from_numpy(out[np.concatenate(keep)] if not ok.all() else out)
    return ImageFolderData(images, classes, layout, warnings, skipped)


_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


# -- the family --------------------------------------------------------------------------------------
class ImageFolderFamily(EpisodeFamily):
    """N-way K-shot episodes over the classes of an image folder (see the module docstring)."""

    name, title = "images", "Image folder (N-way, e.g. Omniglot)"
    fields = (
        ParamField("n_way", "classes N (ways)", "int", 5, 2, 100, help="classes per episode"),
        ParamField("image_size", "image size (pixels)", "int", 28, 4, 256,
                   help="images are centre-cropped to a square and resized to this (Omniglot: 28, miniImageNet: 84)"),
        ParamField("channels", "channels (1 grey, 3 RGB)", "int", 1, 1, 3),
        ParamField("split_seed", "split seed", "int", 0, 0, 2**31 - 1,
                   help="which classes (alphabets for Omniglot) go to meta-train / validation / test"),
    )
    data_fields = (
        ParamField("path", "image folder", "path", "",
                   help="class/*.png, alphabet/character/*.png, or train/ val/ test/ holding those"),
        ParamField("rotations", "rotated classes", "bool", False,
                   help="each class turned by 90, 180 and 270 degrees becomes three more classes (in its split)"),
        ParamField("split", "meta-train / validation / test", "fractions", [0.64, 0.16, 0.2],
                   help="fractions of the classes (of the alphabets for Omniglot); unused when the folder is pre-split"),
    )

    def __init__(self, params=None, *, progress: Progress | None = None, cancelled: Callable[[], bool] | None = None,
                 every_class: bool = False):
        self._progress, self._cancelled = progress, cancelled
        super().__init__(params, every_class=every_class)

    def _validate(self) -> None:
        p = self.params
        if not p["path"]:
            raise ConfigError("family.path", "choose a folder of images (one folder per class)")
        if p["channels"] not in (1, 3):
            raise ConfigError("family.channels", "use 1 (grey) or 3 (RGB)")
        size, channels = p["image_size"], p["channels"]
        self.data = data = load_image_folder(p["path"], size, channels, self._progress, self._cancelled)
        self.layout = data.layout
        self.input_shape = (channels, size, size)
        self.input_dim = channels * size * size
        self.nbytes = data.nbytes
        self._load_warnings = list(data.warnings)
        splits = self._final_splits(self._splits(data))
        train = [data.classes[c] for c in splits["train"]]
        mean, std = pixel_stats(data.images, [c.start for c in train], [c.count for c in train])
        self.normalization = {"pixel_scale": 1 / 255, "channel_mean": mean, "channel_std": std}
        pre = data.layout.startswith("pre-split")
        self.sampler = EpisodeSampler(
            data.images, [c.start for c in data.classes], [c.count for c in data.classes],
            [c.name for c in data.classes], splits, p["n_way"], rotations=p["rotations"],
            to_float=pixels_to_float(mean, std), unit="images",
            advice="or add classes to that folder" if pre else "or give that split a larger fraction (split)")
        self._load_warnings += self.sampler.check_classes()

    def _splits(self, data: ImageFolderData) -> dict[str, list[int]]:
        if data.layout.startswith("pre-split"):
            return {s: [i for i, c in enumerate(data.classes) if c.split == s] for s in SPLITS}
        groups = sorted({c.group for c in data.classes})
        unit = "alphabets" if data.layout.startswith("Omniglot") else "classes"
        cut = split_groups(len(groups), self.params["split"], self.params["split_seed"], unit)
        where = {groups[g]: s for s, gs in cut.items() for g in gs}
        return {s: [i for i, c in enumerate(data.classes) if where[c.group] == s] for s in SPLITS}

    def summary(self) -> str:
        d, sizes = self.data, self.split_sizes()
        size, channels = self.params["image_size"], self.params["channels"]
        return (f"{d.layout}: {len(d.classes)} classes, {len(d.images)} images at {size}×{size} "
                f"{'grey' if channels == 1 else 'RGB'}, {self.nbytes / 1e6:.1f} MB in memory; episode classes: "
                f"{sizes['train']} meta-train, {sizes['val']} validation, {sizes['test']} meta-test"
                + (f"; {len(d.skipped)} files skipped" if d.skipped else ""))

