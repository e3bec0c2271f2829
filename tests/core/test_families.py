"""Task families: shapes, seeding, ranges and the errors a form shows."""

import math

import pytest
import torch

from core.config import FamilySpec
from core.errors import ConfigError
from core.tasks import FAMILIES, build_family


def _spec(name, tmp_path):
    """Families that read files get a small data set written for them; the others their defaults."""
    if name == "images":
        from PIL import Image
        for c in range(12):
            (tmp_path / f"class{c}").mkdir()
            for i in range(12):
                Image.new("L", (10, 10), 20 * c + i).save(tmp_path / f"class{c}" / f"{i}.png")
        return FamilySpec(name, {"path": str(tmp_path), "n_way": 2, "image_size": 8})
    if name == "labelled_csv":
        rows = [f"{c}.{i},{(c * 7 + i) % 5},L{c}" for c in range(12) for i in range(12)]
        (tmp_path / "rows.csv").write_text("a,b,label\n" + "\n".join(rows) + "\n")
        return FamilySpec(name, {"path": str(tmp_path / "rows.csv"), "target": "label", "n_way": 2})
    if name == "glyphs":
        return FamilySpec(name, {"n_alphabets": 6, "characters": 6, "examples": 12})
    return FamilySpec(name)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_samples_batches_of_the_documented_shape(name, tmp_path):
    family = build_family(_spec(name, tmp_path))
    batch = family.sample(3, 4, 6, torch.Generator().manual_seed(0))
    per = family.output_dim if family.kind == "classification" else 1
    shape = tuple(getattr(family, "input_shape", None) or (family.input_dim,))
    assert batch.support_x.shape == (3, 4 * per, *shape)
    assert batch.query_x.shape == (3, 6 * per, *shape)
    if family.kind == "classification":
        assert batch.support_y.dtype == torch.long and batch.support_y.shape == (3, 4 * per)
        assert set(batch.query_y.unique().tolist()) == set(range(per))
    else:
        assert batch.support_y.shape == (3, 4, 1)
    for t in (batch.support_x, batch.support_y, batch.query_x, batch.query_y):
        assert torch.isfinite(t.float()).all()


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_same_seed_same_tasks_and_other_seed_other_tasks(name, tmp_path):
    family = build_family(_spec(name, tmp_path))
    a = family.sample(2, 5, 5, torch.Generator().manual_seed(7))
    b = family.sample(2, 5, 5, torch.Generator().manual_seed(7))
    c = family.sample(2, 5, 5, torch.Generator().manual_seed(8))
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_y, b.query_y)
    assert not torch.equal(a.support_x, c.support_x)


def test_sinusoid_follows_the_paper_and_its_ranges():
    family = build_family(FamilySpec("sinusoid"))
    assert family.params["amplitude"] == [0.1, 5.0] and family.params["phase"] == [0.0, math.pi]
    batch = family.sample(500, 10, 10, torch.Generator().manual_seed(0))
    amp, phase = batch.task_params["amplitude"], batch.task_params["phase"]
    assert 0.1 <= amp.min() and amp.max() <= 5.0 and 0 <= phase.min() and phase.max() <= math.pi
    assert batch.support_x.min() >= -5 and batch.support_x.max() <= 5
    expected = amp[:, None, None] * torch.sin(batch.support_x - phase[:, None, None])
    assert torch.allclose(batch.support_y, expected, atol=1e-6)


def test_noise_is_added_only_when_asked():
    clean = build_family(FamilySpec("linear")).sample(4, 20, 1, torch.Generator().manual_seed(0))
    noisy = build_family(FamilySpec("linear", {"noise": 0.5})).sample(4, 20, 1, torch.Generator().manual_seed(0))
    p = clean.task_params
    exact = p["slope"][:, None, None] * clean.support_x + p["intercept"][:, None, None]
    assert torch.allclose(clean.support_y, exact, atol=1e-6)
    assert 0.3 < float((noisy.support_y - build_family(FamilySpec("linear")).function(noisy.task_params, noisy.support_x)).std()) < 0.7


def test_polynomial_and_step_evaluate_their_formulas():
    poly = build_family(FamilySpec("polynomial", {"degree": 2}))
    params = {"coefficients": torch.tensor([[1.0, -2.0, 0.5]])}
    x = torch.tensor([[[0.0], [1.0], [2.0]]])
    assert torch.allclose(poly.function(params, x)[0, :, 0], torch.tensor([1.0, -0.5, -1.0]))
    step = build_family(FamilySpec("step"))
    y = step.function({"amplitude": torch.tensor([2.0]), "period": torch.tensor([4.0]), "phase": torch.tensor([0.0])},
                      torch.tensor([[[0.5], [2.5], [4.5]]]))
    assert y[0, :, 0].tolist() == [2.0, -2.0, 2.0]


def test_formula_family_samples_the_users_function():
    family = build_family(FamilySpec("formula", {"expression": "a*x^2 + b", "ranges": {"a": [1, 2], "b": [-1, 0]}}))
    batch = family.sample(5, 8, 2, torch.Generator().manual_seed(0))
    a, b = batch.task_params["a"][:, None, None], batch.task_params["b"][:, None, None]
    assert torch.allclose(batch.support_y, a * batch.support_x ** 2 + b, atol=1e-5)


@pytest.mark.parametrize("spec,field,words", [
    (FamilySpec("sinusoid", {"amplitude": [5.0, 1.0]}), "family.amplitude", "larger than max"),
    (FamilySpec("sinusoid", {"amplitude": [0.1, "x"]}), "family.amplitude", "not a finite number"),
    (FamilySpec("sinusoid", {"wobble": 1}), "family.wobble", "unknown setting"),
    (FamilySpec("polynomial", {"degree": 2.5}), "family.degree", "not an integer"),
    (FamilySpec("blobs", {"n_way": 1}), "family.n_way", "between"),
    (FamilySpec("formula", {"expression": "a*sine(x)", "ranges": {"a": [0, 1]}}), "family.expression", "sine"),
    (FamilySpec("formula", {"expression": "a*x + b", "ranges": {"a": [0, 1]}}), "family.ranges.b", "give it a range"),
    (FamilySpec("formula", {"expression": "a*x", "ranges": {"a": [0, 1], "z": [0, 1]}}), "family.ranges.z", "does not appear"),
    (FamilySpec("nope"), "family.name", "unknown family"),
])
def test_invalid_settings_name_the_field(spec, field, words):
    with pytest.raises(ConfigError) as info:
        build_family(spec)
    assert info.value.field == field
    assert words in str(info.value)
