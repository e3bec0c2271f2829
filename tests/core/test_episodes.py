"""N-way K-shot episodes: the shared sampler, the procedural glyphs and labelled CSV rows."""

import time

import numpy as np
import pytest
import torch

from core.config import FamilySpec
from core.errors import ConfigError
from core.tasks import build_family
from core.tasks.episodes import EpisodeSampler
from core.tasks.glyphs import glyph_images


def _sampler(n_classes=12, per=6, n_way=4, rotations=False):
    """Each example's value is its class id * 100 + its index, so a test can read back where it came from."""
    counts = [per + (c % 3) for c in range(n_classes)]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    data = torch.cat([c * 100 + torch.arange(n, dtype=torch.float32) for c, n in enumerate(counts)])
    data = data[:, None, None, None].expand(-1, 1, 2, 2).contiguous()
    splits = {"train": list(range(0, 6)), "val": [6, 7, 8], "test": [9, 10, 11]}
    return EpisodeSampler(data, starts, counts, [f"k{c}" for c in range(n_classes)], splits, n_way,
                          rotations=rotations)


def test_episode_labels_match_their_classes_in_support_and_query():
    s = _sampler()
    batch = s.sample("train", 50, 2, 3, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (50, 8, 1, 2, 2) and batch.query_y.shape == (50, 12)
    assert batch.support_y.dtype == torch.long and batch.support_y.max() == 3
    classes = batch.task_params["classes"]
    for x, y, per in ((batch.support_x, batch.support_y, 2), (batch.query_x, batch.query_y, 3)):
        source = (x[:, :, 0, 0, 0] // 100).long()
        assert torch.equal(source, classes.gather(1, y))          # label i is class classes[t, i], everywhere
    values = torch.cat([batch.support_x, batch.query_x], 1)[:, :, 0, 0, 0]
    for t in range(50):   # the K + Q examples of a class are distinct
        for label in range(4):
            picked = values[t][torch.cat([batch.support_y[t], batch.query_y[t]]) == label]
            assert len(picked.unique()) == 5
    assert set(classes.unique().tolist()) == set(range(6))                  # only meta-train classes
    first = classes[:, 0]
    assert len(first.unique()) > 1 and not torch.equal(classes.sort(1).values, classes)   # labels shuffled


def test_splits_never_share_classes_and_seeds_decide_episodes():
    s = _sampler(n_way=3)
    seen = {split: set(s.sample(split, 40, 1, 1, torch.Generator().manual_seed(1)).task_params["classes"]
                       .unique().tolist()) for split in ("train", "val", "test")}
    assert seen == {"train": set(range(6)), "val": {6, 7, 8}, "test": {9, 10, 11}}
    a = s.sample("train", 5, 2, 2, torch.Generator().manual_seed(3))
    b = s.sample("train", 5, 2, 2, torch.Generator().manual_seed(3))
    c = s.sample("train", 5, 2, 2, torch.Generator().manual_seed(4))
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.task_params["classes"], b.task_params["classes"])
    assert not torch.equal(a.support_x, c.support_x)


def test_sizes_are_checked_before_training():
    s = _sampler(per=4, n_way=2)       # classes hold 4, 5 or 6 examples
    assert s.check_sizes(2, 2) == []
    notes = s.check_sizes(2, 3)
    assert "skipped 4 of 12 classes with fewer than shots + query = 5" in notes[0] and "'k0'" in notes[0]
    batch = s.sample("train", 30, 2, 3, torch.Generator().manual_seed(0))
    assert not set(batch.task_params["classes"].unique().tolist()) & {0, 3}
    with pytest.raises(ConfigError) as info:
        s.check_sizes(3, 4)
    assert info.value.field == "train.shots" and "meta-train split has 0 of its 6 classes" in str(info.value)
    few = EpisodeSampler(torch.zeros(6, 1), [0, 2, 4], [2, 2, 2], list("abc"), {"train": [0, 1], "test": [2]}, 2)
    with pytest.raises(ConfigError, match="meta-test split has 1 class,"):
        few.check_classes()


def test_rotated_classes_are_turned_copies():
    s = _sampler(rotations=True)
    assert len(s.classes("train")) == 24 and s.class_name(4 * 2 + 1) == "k2 ↻90°"
    s.data = torch.arange(12 * 8 * 4, dtype=torch.float32).reshape(-1, 1, 2, 2)
    batch = s.sample("train", 20, 1, 0, torch.Generator().manual_seed(0))
    for t in range(20):
        for label, cid in enumerate(batch.task_params["classes"][t].tolist()):
            x = batch.support_x[t, label]
            raw = s.data[(x.flatten().min() // 4 * 4).long() // 4]
            assert torch.equal(x, torch.rot90(raw, cid % 4, dims=(-2, -1)))


def test_glyphs_are_deterministic_quick_and_split_by_alphabet():
    start = time.perf_counter()
    images = glyph_images(6, 5, 4, 28, 1.0, seed=11)
    elapsed = time.perf_counter() - start
    assert images.shape == (120, 1, 28, 28) and images.dtype == torch.uint8 and elapsed < 2.0
    assert torch.equal(images, _fresh(6, 5, 4, 28, 1.0, 11)) and glyph_images(6, 5, 4, 28, 1.0, seed=11) is images
    assert not torch.equal(images, _fresh(6, 5, 4, 28, 1.0, 12))
    same_char = (images[0].float() - images[1].float()).abs().mean()
    other_char = (images[0].float() - images[4].float()).abs().mean()
    assert 0 < same_char < other_char         # examples of a character differ, less than characters do
    fam = build_family(FamilySpec("glyphs", {"n_alphabets": 10, "characters": 5, "examples": 6, "seed": 3}))
    assert fam.input_shape == (1, 28, 28) and fam.output_dim == 5 and fam.kind == "classification"
    alphabets = {s: {n.split(" / ")[0] for n in fam.class_names(s)} for s in ("train", "val", "test")}
    assert not (alphabets["train"] & alphabets["test"]) and len(alphabets["test"]) == 2
    assert "MB in memory" in fam.summary()


def _fresh(*key):
    from core.tasks import glyphs
    return glyphs._draw(*key)


def test_default_glyphs_build_within_seconds():
    from core.tasks import glyphs
    start = time.perf_counter()
    images = glyphs._draw(30, 20, 20, 28, 1.0, 0)
    assert len(images) == 12_000 and time.perf_counter() - start < 6.0   # ~1 s alone on 2 cores


def test_labelled_csv_with_text_labels(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["size,weight,colour,species"]
    for k, name in enumerate(["oak", "ash", "elm", "yew", "fir", "pine", "larch", "beech", "birch", "lime"]):
        for i in range(8):
            lines.append(f"{k * 10 + rng.normal():.3f},{k * 2 + rng.normal():.3f},red,{name}")
    lines.append("1.0,,red,oak")                       # a missing input: left out and counted
    path = tmp_path / "trees.csv"
    path.write_text("\n".join(lines) + "\n")
    fam = build_family(FamilySpec("labelled_csv", {"path": str(path), "target": "species", "n_way": 2}))
    assert fam.features == ["size", "weight"] and fam.input_dim == 2 and fam.input_shape is None
    assert "line 82" in " ".join(fam.warnings)
    batch = fam.sample(4, 3, 2, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (4, 6, 2) and batch.query_y.shape == (4, 4)
    names = fam.episode_classes(batch)
    assert all(n in fam.class_names("train") for n in sum(names, []))
    rows = [ln.split(",") for ln in lines[1:81]]
    train = [float(r[0]) for r in rows if r[3] in fam.class_names("train")]
    assert fam.normalization["feature_mean"][0] == pytest.approx(np.mean(train))      # meta-train classes only
    assert fam.normalization["feature_mean"][0] != pytest.approx(np.mean([float(r[0]) for r in rows]))
    held = fam.sample_held_out(4, 3, 2, torch.Generator().manual_seed(0))
    assert set(sum(fam.episode_classes(held), [])) <= set(fam.class_names("test"))
    with pytest.raises(ConfigError, match="no label column 'kind'"):
        build_family(FamilySpec("labelled_csv", {"path": str(path), "target": "kind"}))
    with pytest.raises(ConfigError, match="choose the label column"):
        build_family(FamilySpec("labelled_csv", {"path": str(path)}))


# -- labelled rows split by rows (a file with few labels) ----------------------------------------------
def _rows(x: torch.Tensor) -> set:
    return {tuple(r) for r in x.reshape(-1, x.shape[-1]).tolist()}


def test_a_file_with_three_labels_is_refused_by_label_split_with_what_works(tmp_path):
    from ..csv_fixtures import penguins_csv

    path = str(penguins_csv(tmp_path))
    with pytest.raises(ConfigError) as caught:
        build_family(FamilySpec("labelled_csv", {"path": path, "target": "species"}))
    assert caught.value.field == "family.n_way"
    message = caught.value.message
    assert message.startswith("penguins.csv has 3 labels of 'species'; split by label, meta-train gets 1 and "
                              "meta-test 1, and 5-way episodes need at least 5 in each")
    assert "split by rows instead of by label" in message and "family." not in message
    with pytest.raises(ConfigError, match="choose 3 classes per episode or fewer"):
        build_family(FamilySpec("labelled_csv", {"path": path, "target": "species", "split_rows": True}))


def test_split_by_rows_draws_meta_test_episodes_from_held_out_rows_only(tmp_path):
    from ..csv_fixtures import penguins_csv

    path = str(penguins_csv(tmp_path))
    params = {"path": path, "target": "species", "n_way": 3, "split_rows": True, "split": [0.7, 0.15, 0.15]}
    fam = build_family(FamilySpec("labelled_csv", params))
    assert fam.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert fam.split_rows() == {"train": 240, "val": 51, "test": 51}   # 342 rows with values, per label 70/15/15
    assert len(_rows(fam.sampler.data)) == len(fam.sampler.data)        # every row distinct: sets compare rows
    fam.check_sizes(5, 5)
    g = torch.Generator().manual_seed(0)
    train = fam.sample(200, 5, 5, g)
    val = fam.sample_validation(50, 5, 5, g)
    test = fam.sample_held_out(200, 5, 5, g)
    seen = _rows(train.support_x) | _rows(train.query_x)
    held = _rows(test.support_x) | _rows(test.query_x)
    assert not seen & held and not (_rows(val.support_x) | _rows(val.query_x)) & (seen | held)
    assert len(held) == 51 and len(seen) == 240          # every held-out row is drawn, and only those
    assert {n for names in fam.episode_classes(test) for n in names} == set(fam.classes)
    mean = fam.normalization["feature_mean"]
    train_raw = fam.sampler.data[torch.cat([torch.arange(int(s), int(s) + int(n)) for s, n in
                                            zip(fam.sampler._starts[0::3], fam.sampler._counts[0::3])])]
    assert torch.allclose(train_raw.mean(0), torch.zeros(4), atol=1e-5) and mean[3] > 3000   # meta-train rows' stats
    again = build_family(FamilySpec("labelled_csv", params))
    assert torch.equal(again.sampler.data, fam.sampler.data)                                   # seeded split
    other = build_family(FamilySpec("labelled_csv", {**params, "split_seed": 1}))
    assert not torch.equal(other.sampler.data, fam.sampler.data)


def test_split_by_rows_scores_every_row_of_another_file(tmp_path):
    from ..csv_fixtures import penguins_csv

    path = str(penguins_csv(tmp_path))
    params = {"path": path, "target": "species", "n_way": 3, "split_rows": True}
    trained = build_family(FamilySpec("labelled_csv", params))
    from core.tasks.labelled_rows import LabelledRowsFamily

    other = LabelledRowsFamily(params, every_class=True).normalised_like(trained)
    assert other.sampler.sizes("test") == [151, 68, 123]
    batch = other.sample_held_out(4, 2, 3, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (4, 6, 4)
