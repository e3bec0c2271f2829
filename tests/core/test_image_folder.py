"""Image-folder episodes: the three layouts, bad files named and counted, the decode cache, progress and cancel."""

import os
import numpy as np
import pytest
import torch
from PIL import Image

from core.config import FamilySpec
from core.errors import ConfigError
from core.tasks import build_family
from core.tasks import image_folder
from core.tasks.image_folder import LoadCancelled, load_image_folder


def _png(path, value, size=12, mode="L"):
    """A small image whose pixels encode ``value``, so a test can tell classes apart."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    arr = (rng.integers(0, 60, (size, size)) + value).clip(0, 255).astype(np.uint8)
    if mode == "RGB":
        Image.fromarray(np.stack([arr, 255 - arr, arr // 2], -1), "RGB").save(path)
    else:
        Image.fromarray(arr, "L").save(path)


def _classes(root, names, per=4, **kw):
    for k, name in enumerate(names):
        for i in range(per):
            _png(root / name / f"{i}.png", 10 * k + i, **kw)


def _family(path, **params):
    return build_family(FamilySpec("images", {"path": str(path), "image_size": 8, "n_way": 3, **params}))


def test_imagefolder_layout_episodes_and_normalisation_from_train_classes(tmp_path):
    _classes(tmp_path, [f"c{k:02d}" for k in range(15)], per=5)
    fam = _family(tmp_path)
    assert fam.layout.startswith("ImageFolder") and fam.input_shape == (1, 8, 8) and fam.input_dim == 64
    assert fam.nbytes == 15 * 5 * 64 and f"{fam.nbytes / 1e6:.1f} MB" in fam.summary()
    splits = {s: set(fam.class_names(s)) for s in ("train", "val", "test")}
    assert not (splits["train"] & splits["test"] or splits["train"] & splits["val"] or splits["val"] & splits["test"])
    assert sum(map(len, splits.values())) == 15
    train = [c for c in fam.data.classes if c.name in splits["train"]]
    pixels = torch.cat([fam.data.images[c.start:c.start + c.count] for c in train]).double() / 255
    assert fam.normalization["channel_mean"][0] == pytest.approx(float(pixels.mean()))
    everything = fam.data.images.double() / 255
    assert fam.normalization["channel_mean"][0] != pytest.approx(float(everything.mean()))
    fam.check_sizes(2, 2)
    batch = fam.sample(4, 2, 2, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (4, 6, 1, 8, 8) and batch.query_x.dtype == torch.float32
    assert set(sum(fam.episode_classes(batch), [])) <= splits["train"]
    held = fam.sample_held_out(4, 2, 2, torch.Generator().manual_seed(0))
    assert set(sum(fam.episode_classes(held), [])) <= splits["test"]


def test_omniglot_layout_splits_by_alphabet(tmp_path):
    for a in range(6):
        _classes(tmp_path / f"alpha{a}", [f"char{c}" for c in range(3)], per=3)
    fam = _family(tmp_path, split=[0.5, 0.0, 0.5])
    assert fam.layout.startswith("Omniglot")
    alphabets = {s: {n.split("/")[0] for n in fam.class_names(s)} for s in ("train", "test")}
    assert len(alphabets["train"]) == 3 and not alphabets["train"] & alphabets["test"]
    assert len(fam.class_names("train")) == 9


def test_pre_split_layout_uses_its_folders_and_rgb(tmp_path):
    for split, n in (("train", 4), ("validation", 3), ("test", 3)):
        _classes(tmp_path / split, [f"{split}{k}" for k in range(n)], per=3, mode="RGB")
    fam = _family(tmp_path, channels=3)
    assert fam.layout.startswith("pre-split") and fam.input_shape == (3, 8, 8)
    assert fam.split_sizes() == {"train": 4, "val": 3, "test": 3}
    assert all(n.startswith("test/") for n in fam.class_names("test"))
    assert len(fam.normalization["channel_mean"]) == 3
    assert fam.sample_validation(2, 1, 1, torch.Generator()).support_x.shape == (2, 3, 3, 8, 8)


def test_bad_files_are_skipped_named_and_counted(tmp_path):
    _classes(tmp_path, ["a", "b", "c", "d"], per=4)
    (tmp_path / "a" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (tmp_path / "b" / "empty.png").write_bytes(b"")
    (tmp_path / "c" / "text.png").write_text("not an image")
    (tmp_path / "c" / "README.txt").write_text("notes")
    (tmp_path / "d" / ".DS_Store").write_bytes(b"\0\0")
    Image.fromarray(np.full((9, 9), 40000, dtype=np.uint16)).save(tmp_path / "d" / "deep.png")     # 16-bit
    Image.fromarray(np.arange(81, dtype=np.uint8).reshape(9, 9) % 4, "L").convert("P").save(tmp_path / "a" / "pal.png")
    Image.new("CMYK", (9, 9), (0, 0, 0, 255)).save(tmp_path / "b" / "cmyk.jpg")
    fam = _family(tmp_path, split=[0.5, 0.0, 0.5], n_way=2)
    text = " ".join(fam.warnings)
    assert "skipped 3 of" in text and "a/corrupt.png" in text and "b/empty.png" in text and "c/text.png" in text
    assert "ignored 1 file(s) that are not images" in text and "README.txt" in text and "DS_Store" not in text
    counts = {c.name: c.count for c in fam.data.classes}
    assert counts == {"a": 5, "b": 5, "c": 4, "d": 5}
    deep = fam.data.images[fam.data.classes[3].start + 4]                       # 40000/65535 of white, not clipped
    assert abs(int(deep.float().mean()) - round(40000 / 257)) <= 1


def test_unusual_modes_are_converted_with_a_note_naming_them(tmp_path):
    _classes(tmp_path, ["a", "b", "c", "d"], per=3)
    Image.fromarray(np.full((9, 9), 40000, dtype=np.uint16)).save(tmp_path / "d" / "deep.png")     # 16-bit
    Image.fromarray(np.arange(81, dtype=np.uint8).reshape(9, 9) % 4, "L").convert("P").save(tmp_path / "a" / "pal.png")
    Image.new("CMYK", (9, 9), (0, 0, 0, 255)).save(tmp_path / "b" / "cmyk.jpg")
    Image.new("RGBA", (9, 9), (0, 0, 0, 0)).save(tmp_path / "c" / "clear.png")                     # transparent
    fam = _family(tmp_path, split=[0.5, 0.0, 0.5], n_way=2)
    [note] = [w for w in fam.warnings if "unusual mode" in w]
    assert note.startswith("converted 4 image(s) in an unusual mode to grey")
    for says in ("a/pal.png (palette)", "b/cmyk.jpg (CMYK)", "d/deep.png (16-bit)",
                 "c/clear.png (transparency, laid over white)"):
        assert says in note
    clear = fam.data.images[fam.data.classes[2].start + 3]   # after 0-2.png in name order; white, not black
    assert int(clear.min()) == 255


def test_plain_images_get_no_mode_note(tmp_path):
    _classes(tmp_path, ["a", "b", "c", "d"], per=3)
    Image.new("1", (9, 9), 1).save(tmp_path / "a" / "bits.png")                 # Omniglot's 1-bit PNGs are plain
    _classes(tmp_path, ["e"], per=3, mode="RGB")
    assert not any("unusual" in w for w in _family(tmp_path, split=[0.5, 0.0, 0.5], n_way=2).warnings)


def test_top_level_files_are_counted_once_and_a_loose_png_is_called_an_image(tmp_path):
    _classes(tmp_path, ["a", "b", "c", "d"], per=3)
    _png(tmp_path / "loose.png", 5)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "a" / "labels.csv").write_text("x")
    fam = _family(tmp_path, split=[0.5, 0.0, 0.5], n_way=2)
    text = " | ".join(fam.warnings)
    assert "ignored 1 image file(s) outside any class folder (a class is a folder of images): loose.png" in text
    assert "ignored 2 file(s) that are not images by their extension: notes.txt, a/labels.csv" in text
    assert text.count("loose.png") == 1 and text.count("notes.txt") == 1


def test_a_named_pipe_or_broken_link_in_a_class_folder_is_named_not_dropped(tmp_path):
    _classes(tmp_path, ["a", "b", "c", "d"], per=3)
    os.mkfifo(tmp_path / "a" / "x.png")
    (tmp_path / "b" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    fam = _family(tmp_path, split=[0.5, 0.0, 0.5], n_way=2)
    text = " | ".join(fam.warnings)
    assert "ignored 2 entries that are not regular files (a named pipe, a device, a socket or a broken link): " \
           "a/x.png, b/gone.png" in text


def _png_header(path, width, height):
    """A PNG whose header claims ``width``×``height`` RGBA pixels and whose data is a few bytes: what
    a decompression bomb looks like before it is decoded."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_the_pixel_limit_follows_the_image_size():
    assert image_folder.pixel_limit(28) == image_folder.pixel_limit(84) == 24_000_000
    assert image_folder.pixel_limit(256) == 1024 * 256 * 256
    assert image_folder.pixel_limit(256) < Image.MAX_IMAGE_PIXELS   # ours refuses before Pillow's check


def test_decompression_bombs_are_refused_by_name_before_decoding(tmp_path):
    """In a child process capped at 1.5 GiB: a 13000² RGBA PNG would take 3.7 GB to decode. Three
    headers (past Pillow's error, past its warning, past only our limit) are refused by name, with
    no raw DecompressionBombWarning on stderr; the ordinary images are read."""
    import subprocess
    import sys

    _classes(tmp_path, ["a", "b", "c", "d"], per=3)
    _png_header(tmp_path / "a" / "bomb30k.png", 30000, 30000)
    _png_header(tmp_path / "b" / "bomb13k.png", 13000, 13000)
    _png_header(tmp_path / "c" / "big6k.png", 6000, 5000)
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29)); "
            "from core.tasks.image_folder import load_image_folder; "
            "data = load_image_folder(sys.argv[1], 28, 1); print(len(data.images)); print('\\n'.join(data.warnings))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    count, *warnings = result.stdout.splitlines()
    assert count == "12"
    [skipped] = [w for w in warnings if w.startswith("skipped 3 of 15")]
    assert "a/bomb30k.png (900.0 megapixels, more than the 24 megapixels a 28×28 input needs (refused unread" in skipped
    assert "b/bomb13k.png (169.0 megapixels" in skipped
    assert "c/big6k.png (6000×5000 = 30.0 megapixels, more than the 24" in skipped


def test_classes_too_small_warn_and_too_few_classes_raise(tmp_path):
    _classes(tmp_path, [f"c{k}" for k in range(8)], per=6)
    for i in range(3, 6):
        (tmp_path / "c7" / f"{i}.png").unlink()
    fam = _family(tmp_path, n_way=2, split=[0.5, 0.0, 0.5])
    fam.check_sizes(3, 3)   # c7 has 3 images
    assert len(fam.warnings) == 1 and "skipped 1 of 8 classes" in fam.warnings[0] and "'c7'" in fam.warnings[0]
    fam.check_sizes(3, 0)
    assert fam.warnings == []
    batch = fam.sample(20, 3, 3, torch.Generator().manual_seed(0))
    assert "c7" not in sum(fam.episode_classes(batch), [])
    with pytest.raises(ConfigError) as info:
        fam.check_sizes(4, 4)
    assert info.value.field == "train.shots" and "has 0 of its 4 classes" in str(info.value)
    assert "fewer ways, fewer shots" in str(info.value)
    with pytest.raises(ConfigError) as info:
        _family(tmp_path, n_way=5, split=[0.5, 0.0, 0.5])
    assert info.value.field == "family.n_way" and "split has 4 classes" in str(info.value)


@pytest.mark.parametrize("make,words", [
    (lambda p: p, "is empty"),
    (lambda p: (p / "x.txt").write_text("x") and p / "x.txt", "is a file"),
    (lambda p: (_png(p / "loose.png", 1), p)[1], "no class folders"),
    (lambda p: p / "missing", "does not exist"),
    (lambda p: ((p / "a").mkdir(), (p / "a" / "n.txt").write_text("x"), p)[2], "no image files"),
])
def test_unusable_paths_say_what_to_do(tmp_path, make, words):
    with pytest.raises(ConfigError) as info:
        _family(make(tmp_path))
    assert info.value.field == "family.path" and words in str(info.value)


def test_rotations_are_new_classes_inside_their_split(tmp_path):
    _classes(tmp_path, [f"c{k}" for k in range(6)], per=3)
    plain = _family(tmp_path, split=[0.5, 0.0, 0.5])
    fam = _family(tmp_path, split=[0.5, 0.0, 0.5], rotations=True)
    assert len(fam.class_names("train")) == 4 * len(plain.class_names("train"))
    assert {n.split(" ")[0] for n in fam.class_names("test")} == set(plain.class_names("test"))
    batch = fam.sample(6, 1, 2, torch.Generator().manual_seed(1))
    for t, names in enumerate(fam.episode_classes(batch)):
        for label, name in enumerate(names):
            if "↻90°" in name:
                c = next(c for c in fam.data.classes if c.name == name.split(" ")[0])
                raw = fam.sampler.to_float(fam.data.images[c.start:c.start + c.count])
                turned = torch.rot90(raw, 1, dims=(-2, -1))
                assert (turned - batch.support_x[t, label]).abs().flatten(1).max(1).values.min() < 1e-5


def test_decoded_once_then_cached_and_progress_and_cancel(tmp_path, monkeypatch):
    _classes(tmp_path, [f"c{k}" for k in range(5)], per=3)
    image_folder.clear_cache()
    calls = []
    monkeypatch.setattr(image_folder, "CHUNK", 4)
    first = load_image_folder(tmp_path, 8, 1, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (15, 15) and len(calls) == 4 and [d for d, _ in calls] == sorted(d for d, _ in calls)
    decoded = []
    real = image_folder.decode_image
    monkeypatch.setattr(image_folder, "decode_image", lambda *a: decoded.append(a) or real(*a))
    assert load_image_folder(tmp_path, 8, 1) is first and not decoded
    _family(tmp_path, n_way=2, split=[0.6, 0.0, 0.4])
    assert not decoded
    _png(tmp_path / "c0" / "0.png", 99)          # a changed file is read again
    again = load_image_folder(tmp_path, 8, 1)
    assert again is not first and decoded
    with pytest.raises(LoadCancelled):
        load_image_folder(tmp_path, 10, 1, cancelled=lambda: True)
