"""CSV task families: layouts, split by task, train-only normalization, sampling, warnings, CLI, end to end."""

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from core.cli.main import main
from core.config import FamilySpec
from core.cli.csv_options import add_csv_arguments, family_spec_from_args
from core.data.csv_reader import CsvError
from core.errors import ConfigError
from core.trained.evaluation import evaluate
from core.tasks import FAMILIES, build_family
from core.tasks.csv_family import CsvFamily, split_tasks
from core.training.trainer import MetaTrainer
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "assets" / "examples"
CORPUS = Path(__file__).parents[1] / "data" / "csv"
GROWTH = {"paths": [str(EXAMPLES / "growth.csv")], "task_column": "subject", "target": "height"}
SITES = {"paths": [str(EXAMPLES / "sites")], "target": "yield_t_ha"}
LETTERS = {"paths": [str(CORPUS / "classification.csv")], "task_column": "writer", "target": "letter",
           "classification": True, "split": [0.6, 0.2, 0.2]}


def csv(name: str, **params) -> CsvFamily:
    return CsvFamily({"paths": [str(CORPUS / name)], **params})


# -- layouts and splits ---------------------------------------------------------------------------
def test_registered_and_long_format_example():
    assert FAMILIES["csv"] is CsvFamily
    family = build_family(FamilySpec("csv", GROWTH))
    assert family.features == ["age"] and family.input_dim == 1 and family.output_dim == 1
    assert family.kind == "regression" and family.metric == "mse"
    assert family.split_sizes() == {"train": 28, "val": 6, "test": 6}
    names = [n for s in ("train", "val", "test") for n in family.task_names(s)]
    assert sorted(names) == [str(1001 + k) for k in range(40)]  # ids that look like numbers stay labels


def test_default_family_is_the_bundled_example():
    assert CsvFamily().task_names("train") == build_family(FamilySpec("csv", GROWTH)).task_names("train")


def test_split_is_by_task_seeded_and_covers_every_task_once():
    a, b = split_tasks(40, [0.7, 0.15, 0.15], 0), split_tasks(40, [0.7, 0.15, 0.15], 0)
    assert a == b and a != split_tasks(40, [0.7, 0.15, 0.15], 1)
    assert sorted(a["train"] + a["val"] + a["test"]) == list(range(40))
    assert [len(v) for v in split_tasks(3, [0.7, 0.15, 0.15], 0).values()] == [1, 1, 1]
    with pytest.raises(ConfigError, match="at least 3 tasks are needed") as info:
        split_tasks(2, [0.7, 0.15, 0.15], 0)
    assert info.value.field == "family.split"
    other = CsvFamily({**GROWTH, "split_seed": 5})
    assert other.task_names("test") != CsvFamily(GROWTH).task_names("test")


def test_one_task_per_file_matched_by_column_name():
    family = CsvFamily({"paths": [str(CORPUS / "per_task")], "target": "y", "split": [0.34, 0.33, 0.33]})
    assert family.features == ["x"]
    points = {n: family.task_points(s, i) for s in ("train", "val", "test") for i, n in enumerate(family.task_names(s))}
    x, y = points["site_b"]  # its columns are 'y,x': matched by name, not position
    assert x[:, 0].tolist() == [1, 2, 3, 4, 5] and y.tolist() == [3, 6, 9, 12, 15]
    assert any("site_c.csv" in w and "'note'" in w and "ignored" in w for w in family.warnings)


def test_files_whose_columns_differ_are_named():
    with pytest.raises(CsvError) as info:
        CsvFamily({"paths": [str(CORPUS / "mismatch")], "target": "height"})
    assert info.value.path.name == "site_b.csv"
    assert "lacks the column 'age' that site_a.csv has" in str(info.value) and "matched by name" in str(info.value)


def test_several_long_files_prefix_task_names_with_the_file(tmp_path):
    (tmp_path / "b.csv").write_bytes((CORPUS / "tab.csv").read_bytes())
    family = CsvFamily({"paths": [str(CORPUS / "tab.csv"), str(tmp_path / "b.csv")], "task_column": "subject",
                        "target": "height"})
    names = sum((family.task_names(s) for s in ("train", "val", "test")), [])
    assert len(names) == 12 and "tab/S1" in names and "b/S1" in names


# -- normalization ----------------------------------------------------------------------------------
def test_normalization_uses_meta_training_tasks_only_and_round_trips():
    family = CsvFamily(GROWTH)
    train = [family.task_points("train", i) for i in range(len(family.task_names("train")))]
    x = np.concatenate([p[0] for p in train])
    y = np.concatenate([p[1] for p in train])
    n = family.normalization
    assert n["features"] == ["age"] and n["target"] == "height"
    assert n["feature_mean"] == pytest.approx(x.mean(0).tolist())
    assert n["feature_std"] == pytest.approx(x.std(0).tolist())
    assert n["target_mean"] == pytest.approx(y.mean()) and n["target_std"] == pytest.approx(y.std())
    everything = np.concatenate([family.task_points(s, i)[1] for s in ("train", "val", "test")
                                 for i in range(len(family.task_names(s)))])
    assert n["target_mean"] != pytest.approx(everything.mean(), abs=1e-9)
    spec = family.spec()
    again = build_family(FamilySpec("csv", json.loads(json.dumps(spec.params))))  # plain JSON in a run folder
    assert again.normalization == n
    x0, y0 = family.task_points("test", 0)
    assert family.denormalize_y(family.normalize_y(y0)) == pytest.approx(y0)
    batch = family.sample(1, 3, 2, torch.Generator().manual_seed(0), split="test")
    assert batch.support_x.abs().max() < 5  # standardized


def test_stored_normalization_must_match_the_columns():
    params = dict(CsvFamily(GROWTH).spec().params)
    params["normalization"] = {**params["normalization"], "features": ["weight"]}
    with pytest.raises(ConfigError) as info:
        CsvFamily(params)
    assert info.value.field == "family.normalization" and "remove them to recompute" in str(info.value)


def test_constant_columns_are_scaled_by_one_with_a_warning():
    family = csv("constant_column.csv", task_column="subject", target="height", features=["age", "batch"])
    assert family.normalization["feature_std"][1] == 1.0
    assert any("'batch' is constant" in w for w in family.warnings)
    batch = family.sample(4, 3, 3, torch.Generator().manual_seed(0))
    assert torch.isfinite(batch.support_x).all() and (batch.support_x[..., 1] == 0).all()


def test_values_too_large_for_float32_are_refused_without_normalization(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("t,x,y\n" + "".join(f"{t},{i}e39,{i}\n" for t in "abc" for i in range(1, 5)))
    with pytest.raises(CsvError, match="too large for the model's 32-bit numbers") as info:
        CsvFamily({"paths": [str(path)], "task_column": "t", "target": "y", "normalize": False})
    assert info.value.column == "x" and "turn standardization on" in str(info.value)
    assert CsvFamily({"paths": [str(path)], "task_column": "t", "target": "y"}).input_dim == 1


@pytest.mark.parametrize("extreme", ["1e308", "1e25"])
def test_an_extreme_value_that_flattens_a_column_is_named(tmp_path, extreme):
    """One target of 1e308 among values near 1: standardised in float32 every other target became the
    same number and the meta-loss read 0.005 instead of 0.36, without a word."""
    rng = np.random.default_rng(0)
    path = tmp_path / "outlier.csv"
    rows = [(f"t{t}", float(x), 0.3 * float(rng.standard_normal())) for t in range(10)
            for x in np.linspace(-1, 1, 30)]
    lines = ["task,x,y"] + [f"{t},{x!r},{y!r}" for t, x, y in rows]
    lines[1 + 30 * 4 + 7] = f"t4,0.5,{extreme}"   # line 129 of the file: task t4's eighth row
    path.write_text("\n".join(lines) + "\n")
    family = CsvFamily({"paths": [str(path)], "task_column": "task", "target": "y", "split": [1.0, 0.0, 0.0]})
    [warning] = [w for w in family.warnings if "standardising" in w]
    assert warning.startswith(f"target column 'y': the value {float(extreme):.6g} at outlier.csv line 129 sets the "
                              "column's scale")
    assert "all become the same number after standardising" in warning
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join(lines[:128] + lines[129:]) + "\n")
    assert not any("standardising" in w for w in CsvFamily({"paths": [str(plain)], "task_column": "task",
                                                            "target": "y", "split": [1.0, 0.0, 0.0]}).warnings)


def test_a_flattened_input_column_is_named_too(tmp_path):
    path = tmp_path / "wide.csv"
    rows = [f"t{t},{x!r},{1e20 if (t, i) == (2, 3) else x / 7!r},{x!r}" for t in range(6)
            for i, x in enumerate(np.linspace(0, 1, 12).tolist())]
    path.write_text("task,a,b,y\n" + "\n".join(rows) + "\n")
    family = CsvFamily({"paths": [str(path)], "task_column": "task", "target": "y", "split": [1.0, 0.0, 0.0]})
    [warning] = [w for w in family.warnings if "standardising" in w]
    assert warning.startswith("input column 'b': the value 1e+20 at wide.csv line 29 ")


# -- sampling -----------------------------------------------------------------------------------------
def test_regression_batches_hold_distinct_rows_of_one_task():
    family = CsvFamily(GROWTH)
    batch = family.sample(7, 5, 6, torch.Generator().manual_seed(3))
    assert batch.support_x.shape == (7, 5, 1) and batch.support_y.shape == (7, 5, 1)
    assert batch.query_x.shape == (7, 6, 1) and batch.query_y.shape == (7, 6, 1)
    train = family._split["train"]
    for t, (sx, qx) in enumerate(zip(batch.support_x, batch.query_x)):
        task = int(batch.task_params["task"][t])
        assert task in train
        rows = torch.cat([sx, qx])[:, 0]
        assert len(set(rows.tolist())) == 11  # distinct points (ages are distinct within a subject)
        own = torch.as_tensor(family.normalize_x(family._raw_x[task]), dtype=torch.float32)[:, 0]
        assert all(bool((own - r).abs().min() < 1e-5) for r in rows)
    again = family.sample(7, 5, 6, torch.Generator().manual_seed(3))
    assert torch.equal(batch.query_y, again.query_y)


def test_sample_draws_from_the_requested_split_and_held_out_defaults_to_test():
    family = CsvFamily(GROWTH)
    g = torch.Generator().manual_seed(0)
    test = set(family._split["test"])
    assert set(family.sample(30, 5, 5, g, split="test").task_params["task"].tolist()) == test  # every test task
    held = family.held_out()
    assert set(held.sample(12, 5, 5, g).task_params["task"].tolist()) <= test
    assert set(family.sample(12, 5, 5, g).task_params["task"].tolist()) <= set(family._split["train"])
    with pytest.raises(ConfigError, match="unknown split"):
        family.sample(1, 1, 1, g, split="holdout")
    with pytest.raises(ConfigError, match="no meta-test tasks"):
        CsvFamily({**GROWTH, "split": [0.8, 0.2, 0.0]}).held_out()


def test_classification_episodes():
    family = CsvFamily(LETTERS)
    assert family.kind == "classification" and family.metric == "accuracy"
    assert family.classes == ["a", "b", "c", "d"] and family.output_dim == 4 and family.input_dim == 2
    batch = family.sample(3, 2, 3, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (3, 8, 2) and batch.query_x.shape == (3, 12, 2)
    assert batch.support_y.dtype == torch.long
    assert batch.support_y[0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert batch.query_y[0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    # width ~ the letter's index: one episode label always maps to one letter, and the mapping is re-drawn
    stats = family.normalization
    letter = (batch.support_x[..., 0] * stats["feature_std"][0] + stats["feature_mean"][0]).round()
    assert all(len(set(letter[t, batch.support_y[t] == k].tolist())) == 1 for t in range(3) for k in range(4))
    orders = {tuple(letter[t, ::2].tolist()) for t in range(3)}
    assert len(orders) > 1
    assert CsvFamily({**LETTERS, "n_way": 3}).sample(2, 1, 1, torch.Generator()).support_x.shape == (2, 3, 2)
    with pytest.raises(ConfigError, match="between 2 and 4") as info:
        CsvFamily({**LETTERS, "n_way": 7})
    assert info.value.field == "family.n_way"


def test_small_tasks_are_skipped_with_a_warning_and_too_few_is_an_error():
    family = csv("small_tasks.csv", task_column="subject", target="height", split=[0.5, 0.25, 0.25], split_seed=1)
    family.check_sizes(5, 5)
    (warning,) = [w for w in family.warnings if "skipped" in w]
    assert "skipped 1 of 9 tasks with fewer than shots + query = 10 rows: 'tiny'" in warning
    tiny = family._names.index("tiny")
    for split in ("train", "val", "test"):
        if family._split[split]:
            assert tiny not in family.sample(40, 5, 5, torch.Generator(), split=split).task_params["task"].tolist()
    with pytest.raises(ConfigError) as info:
        family.check_sizes(10, 10)
    assert info.value.field == "train.shots"
    assert "at least 1 meta-train task with shots + query = 20 rows is needed" in str(info.value)
    assert "shots + query <= 12" in str(info.value)
    assert family.max_query(5, "test") == 7


# -- data problems at family level --------------------------------------------------------------------
def test_missing_values_name_the_rows_or_are_dropped():
    with pytest.raises(CsvError) as info:
        csv("missing_values.csv", task_column="subject", target="height")
    err = info.value
    assert (err.path.name, err.line, err.column) == ("missing_values.csv", 3, "age")
    for words in ("3 rows have missing values", "line 3 (age)", "line 4 (height)", "line 6 (height)", "--drop-missing"):
        assert words in str(err)
    family = csv("missing_values.csv", task_column="subject", target="height", drop_missing=True)
    assert sorted(sum((family.task_sizes(s) for s in ("train", "val", "test")), [])) == [1, 2, 2]
    assert any("dropped 3 rows" in w and "line 6 (height)" in w for w in family.warnings)
    with pytest.raises(CsvError, match="line 3 \\(height\\)"):
        csv("nan_is_missing.csv", task_column="subject", target="height")


@pytest.mark.parametrize("name,params,error,field,words", [
    ("single_column.csv", {"target": "height"}, CsvError, None,
     ["single column ('height')", "commas, semicolons or tabs"]),
    ("tab.csv", {"target": "height"}, ConfigError, "family.task_column", ["holds a single task", "several files"]),
    ("tab.csv", {"task_column": "subject"}, ConfigError, "family.target", ["choose the target", "'age', 'height'"]),
    ("tab.csv", {"task_column": "subject", "target": "weight"}, ConfigError, "family.target",
     ["no target column 'weight'"]),
    ("tab.csv", {"task_column": "who", "target": "height"}, ConfigError, "family.task_column", ["no column 'who'"]),
    ("tab.csv", {"task_column": "subject", "target": "height", "features": ["age", "height"]}, ConfigError,
     "family.features", ["cannot include the target"]),
    ("tab.csv", {"task_column": "subject", "target": "height", "split": [0.5, 0.2, 0.2]}, ConfigError, "family.split",
     ["add up to 1"]),
    ("tab.csv", {"task_column": "subject", "target": "height", "colour": 1}, ConfigError, "family.colour",
     ["unknown setting"]),
    ("text_in_numeric.csv", {"task_column": "subject", "target": "height"}, CsvError, None, ["line 4", "'three'"]),
    ("classification.csv", {"task_column": "writer", "target": "width", "features": ["slant"]}, None, None, []),
])
def test_bad_choices_are_named(name, params, error, field, words):
    if error is None:
        assert csv(name, **params).input_dim == 1
        return
    with pytest.raises(error) as info:
        csv(name, **params)
    if field:
        assert info.value.field == field
    for w in words:
        assert w in str(info.value)


def test_numeric_task_ids_stay_distinct_labels():
    family = csv("numeric_ids.csv", task_column="subject", target="y", split=[0.34, 0.33, 0.33])
    sizes = {n: s for sp in ("train", "val", "test") for n, s in zip(family.task_names(sp), family.task_sizes(sp))}
    assert sizes == {"007": 2, "7": 2, "7.0": 1}


def test_an_excel_file_in_a_folder_is_named(tmp_path):
    (tmp_path / "a.csv").write_bytes((CORPUS / "per_task" / "site_a.csv").read_bytes())
    (tmp_path / "b.csv").write_bytes(b"PK\x03\x04" + b"[Content_Types].xml" + bytes(30))
    with pytest.raises(CsvError, match="^b.csv: is an Excel workbook"):
        CsvFamily({"paths": [str(tmp_path)], "target": "y"})


# -- training and evaluation ----------------------------------------------------------------------------
@pytest.mark.parametrize("params,algorithm", [(SITES, "maml"), (LETTERS, "fomaml")])
def test_end_to_end_train_then_evaluate_on_meta_test_tasks(params, algorithm):
    family = CsvFamily(params)
    shots, query = (5, 5) if family.kind == "regression" else (2, 2)
    config = tiny_config("csv", algorithm, shots=shots, query=query, params=dict(family.spec().params))
    trainer = MetaTrainer(config, family=family)
    losses = [trainer.step().meta_loss for _ in range(5)]
    assert all(math.isfinite(v) for v in losses)
    held = family.held_out()
    result = evaluate(trainer.algorithm, trainer.params, trainer.rates, held, tasks=10, shots=shots,
                      query=min(10, held.max_query(shots)), steps=(0, 1, 5))
    assert result.metric == family.metric and all(math.isfinite(v) for v in result.model.mean.values())


# -- command line ----------------------------------------------------------------------------------------
def _args(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--family")
    add_csv_arguments(parser)
    return parser.parse_args(argv)


def test_cli_flags_build_a_spec_with_absolute_paths_and_statistics(monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = family_spec_from_args(_args(["--csv", "assets/examples/growth.csv", "--task-column", "subject",
                                        "--target", "height", "--features", "age", "--split", "0.6,0.2,0.2"]))
    assert spec.name == "csv" and spec.params["paths"] == [str(EXAMPLES / "growth.csv")]
    assert spec.params["features"] == ["age"] and spec.params["split"] == [0.6, 0.2, 0.2]
    assert spec.params["normalization"]["target"] == "height"
    assert family_spec_from_args(_args([])) is None
    with pytest.raises(ConfigError, match="--target needs --csv"):
        family_spec_from_args(_args(["--target", "height"]))
    with pytest.raises(ConfigError, match="either --family or --csv"):
        family_spec_from_args(_args(["--family", "sinusoid", "--csv", "x.csv"]))


def test_cli_trains_on_a_csv_config_and_a_bad_file_exits_2_with_one_line(tmp_path, capsys):
    config = tmp_path / "exp.json"
    config.write_text(json.dumps({"family": {"name": "csv", "params": SITES},
                                  "train": {"shots": 5, "query": 5, "meta_batch": 2}}))
    assert main(["train", "--config", str(config), "--iterations", "3", "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    config.write_text(json.dumps({"family": {"name": "csv", "params": {"paths": [str(CORPUS / "units.csv")],
                                                                       "task_column": "subject", "target": "weight"}}}))
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "units.csv, line 2, column 'weight': value '12 kg' has a unit" in err


def test_held_out_view_checks_its_own_split(tmp_path):
    path = tmp_path / "six.csv"
    path.write_text("t,x,y\n" + "".join(f"{t},{i},{i * 2}\n" for t in "abcdefgh" for i in range(6)))
    family = CsvFamily({"paths": [str(path)], "task_column": "t", "target": "y"})
    family.check_sizes(3, 3)
    with pytest.raises(ConfigError, match="at least 1 meta-train task"):
        family.check_sizes(3, 4)
    with pytest.raises(ConfigError, match="at least 1 meta-test task"):
        family.held_out().check_sizes(3, 4)
    assert family.held_out().max_query(2) == 4 and family.held_out().default_split == "test"
    assert family.default_split == "train"


def test_a_family_is_built_once_while_its_files_are_unchanged(tmp_path):
    from core.tasks.csv_family import cached_family

    path = tmp_path / "long.csv"
    path.write_text((CORPUS / "tab.csv").read_text())
    params = {"paths": [str(path)], "task_column": "subject", "target": "height", "split": [0.5, 0.0, 0.5]}
    first = cached_family(params)
    again = build_family(cached_family(params).spec())   # the window passes the spec on, statistics included
    assert again is not first and again._x is first._x   # its own view over the same data
    first.check_sizes(7, 1)
    assert first.warnings == [] and again.held_out().default_split == "test" and again.default_split == "train"
    path.write_text((CORPUS / "tab.csv").read_text().replace("100.0", "101.0"))
    import os
    os.utime(path, ns=(1, 1))   # another modification time: read and built again
    assert cached_family(params)._x is not first._x


def test_too_few_tasks_to_split_names_the_file_or_folder(tmp_path):
    one = tmp_path / "onerow.csv"
    one.write_text("t,x,y\na,1,2\n")
    with pytest.raises(ConfigError, match=r"^family\.split: onerow\.csv: 1 task cannot be split") as info:
        CsvFamily({"paths": [str(one)], "task_column": "t", "target": "y"})
    assert info.value.field == "family.split" and "at least 3 tasks are needed" in info.value.message
    folder = tmp_path / "two_sites"
    folder.mkdir()
    for name in ("a.csv", "b.csv"):
        (folder / name).write_text("x,y\n1,2\n2,3\n")
    with pytest.raises(ConfigError, match=r"two_sites/ \(2 files\): 2 tasks cannot be split"):
        CsvFamily({"paths": [str(folder)], "target": "y"})


def test_capacities_say_what_each_shots_plus_query_keeps():
    family = csv("small_tasks.csv", task_column="subject", target="height")
    every = sorted(c for s in ("train", "val", "test") for c in family.capacities(s))
    assert every == [3] + [12] * 8 and len(family.capacities("train")) == family.split_sizes()["train"]
    labels = csv("classification.csv", task_column="writer", target="letter", classification=True, n_way=2,
                 split=[0.6, 0.2, 0.2])
    assert labels.capacities("train") == [6] * 3   # rows of the N-th largest class, not of the task


def test_a_column_flattened_by_many_extreme_values_is_named(tmp_path):
    """Over 5% of the targets at 1e308: the 5th-95th percentile span includes them, so the check on
    the bulk's spread saw nothing while every other target became one float32 number."""
    path = tmp_path / "many.csv"
    rows = [f"t{t},{i},{1e308 if (t + i) % 7 == 0 else i * 0.5}" for t in range(20) for i in range(10)]
    path.write_text("task,x,y\n" + "\n".join(rows) + "\n")
    family = CsvFamily({"paths": [str(path)], "task_column": "task", "target": "y", "split": [1.0, 0.0, 0.0]})
    [warning] = [w for w in family.warnings if "standardising" in w]
    assert warning.startswith("target column 'y': the value 1e+308 at many.csv line 2 sets the column's scale")
    assert "input column" not in " ".join(family.warnings)   # x (0..9, evenly spread) is not flattened


def test_csv_tasks_and_labelled_rows_standardise_huge_values_by_one_rule(tmp_path):
    """A column with values near float64's max: CSV tasks standardised it with a warning while
    labelled rows refused the file (their mean overflowed). Both now take it and warn in the same words."""
    from core.tasks.labelled_rows import LabelledRowsFamily

    path = tmp_path / "rows.csv"
    rows = [f"c{k},{1e308 if i == 2 else k + i / 10},{i}" for k in range(10) for i in range(5)]
    path.write_text("label,size,other\n" + "\n".join(rows) + "\n")
    tasks = CsvFamily({"paths": [str(path)], "task_column": "label", "target": "other", "features": ["size"],
                       "split": [1.0, 0.0, 0.0]})
    labelled = LabelledRowsFamily({"path": str(path), "target": "label", "features": ["size", "other"],
                                   "n_way": 2, "split": [0.5, 0.0, 0.5]})
    for family in (tasks, labelled):
        [warning] = [w for w in family.warnings if "sets the column's scale" in w]
        assert warning.startswith("input column 'size': the value 1e+308 at rows.csv line "), warning
        assert "all become the same number after standardising" in warning
