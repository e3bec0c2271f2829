"""Seed sweeps: the syntax a user types, and summary numbers checked against values computed by hand."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from core.sweep import SweepError, mean_ci, parse_grid, parse_seeds, plan, summarize, write_summary


def test_seeds_ranges_and_lists():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3") == [3]
    assert parse_seeds("0-2, 7,1") == [0, 1, 2, 7]
    for bad, says in (("a", "'a' is not a seed"), ("4-1", "runs backwards"), ("1,,2", "'' is not a seed"),
                      ("0-5000", "more than the 1000")):
        with pytest.raises(SweepError, match=says):
            parse_seeds(bad)


def test_grid_is_every_combination_in_order():
    grid = parse_grid(["inner_lr=0.01,0.05", "inner-steps=1,5"])
    assert grid == [{"inner_lr": "0.01", "inner_steps": "1"}, {"inner_lr": "0.01", "inner_steps": "5"},
                    {"inner_lr": "0.05", "inner_steps": "1"}, {"inner_lr": "0.05", "inner_steps": "5"}]
    assert parse_grid([]) == [{}]


@pytest.mark.parametrize("item, says", [
    ("inner_lr", "is not KEY=VALUE"),
    ("hidden=40", "'hidden' cannot be varied"),
    ("inner_lr=0.1,", "has an empty value"),
    ("inner_lr=fast", "inner_lr=fast is not valid"),
])
def test_bad_grid_syntax_is_one_readable_line(item, says):
    with pytest.raises(SweepError, match=says) as info:
        parse_grid([item], convert=lambda key, text: float(text))
    assert "\n" not in str(info.value)


def test_a_key_given_twice_is_refused():
    with pytest.raises(SweepError, match="given twice"):
        parse_grid(["meta_lr=0.1", "meta-lr=0.2"])


def test_mean_and_95_percent_interval_by_hand():
    values = [1.0, 2.0, 4.0]
    mean, ci = mean_ci(values)
    sd = math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    assert mean == pytest.approx(7 / 3) and ci == pytest.approx(4.303 * sd / math.sqrt(3))
    assert mean_ci([2.5]) == (2.5, None)


def _fake_eval(run, by_step: dict, scratch: dict):
    run.folder.mkdir(parents=True)
    (run.folder / "eval.json").write_text(json.dumps({
        "metric": "mse", "steps": list(by_step), "mean": {str(k): v for k, v in by_step.items()},
        "scratch": {"mean": {str(k): v for k, v in scratch.items()}}}))


def test_summary_per_configuration_and_step(tmp_path):
    runs = plan(tmp_path, [0, 1], parse_grid(["inner_lr=0.01,0.05"]))
    assert [r.folder.name for r in runs] == ["inner_lr=0.01-seed0", "inner_lr=0.01-seed1",
                                             "inner_lr=0.05-seed0", "inner_lr=0.05-seed1"]
    _fake_eval(runs[0], {0: 3.0, 1: 1.0}, {0: 4.0, 1: 3.5})
    _fake_eval(runs[1], {0: 5.0, 1: 2.0}, {0: 4.0, 1: 3.7})
    _fake_eval(runs[2], {0: 4.0, 1: 0.5}, {0: 4.2, 1: 4.0})   # its seed 1 is unfinished: one value, no interval
    summary = write_summary(tmp_path, runs)
    first, second = summary.configs
    assert first["label"] == "inner_lr=0.01" and first["seeds"] == [0, 1]
    # two values a, b: mean (a+b)/2, sd |a-b|/√2, half-width t(1)·sd/√2 = 12.706·|a-b|/2
    assert first["steps"]["0"]["mean"] == pytest.approx(4.0)
    assert first["steps"]["0"]["ci95"] == pytest.approx(12.706 * 2.0 / 2)
    assert first["steps"]["1"]["mean"] == pytest.approx(1.5)
    assert first["steps"]["1"]["ci95"] == pytest.approx(12.706 * 1.0 / 2)
    assert first["steps"]["1"]["scratch_mean"] == pytest.approx(3.6)
    assert second["seeds"] == [0] and second["steps"]["1"] == {
        "n": 1, "mean": 0.5, "ci95": None, "values": [0.5], "scratch_mean": 4.0, "scratch_ci95": None}

    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["configs"] == json.loads(json.dumps(summary.configs)) and on_disk["metric"] == "mse"
    rows = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    assert [(r["config"], r["step"], r["seeds"]) for r in rows] == [
        ("inner_lr=0.01", "0", "2"), ("inner_lr=0.01", "1", "2"), ("inner_lr=0.05", "0", "1"), ("inner_lr=0.05", "1", "1")]
    assert float(rows[1]["mean"]) == pytest.approx(1.5) and rows[3]["ci95"] == ""


def test_an_unfinished_run_resumes_and_a_new_one_starts_fresh(tmp_path):
    run = plan(tmp_path, [3], [{"inner_lr": "0.05"}])[0]
    args = run.train_args(["--family", "linear"])
    assert args == ["train", "--family", "linear", "--inner-lr", "0.05", "--seed", "3", "--out", str(run.folder), "--force"]
    run.folder.mkdir(parents=True)
    for name in ("weights.safetensors", "training_state.safetensors"):
        (run.folder / name).write_bytes(b"x")
    assert run.train_args(["--family", "linear"]) == ["train", "--resume", str(run.folder)]
    assert summarize([run]).configs == []


def test_a_sweep_of_real_processes_summarises_and_resumes(tmp_path, capsys):
    from core.cli import main as cli

    out = tmp_path / "sweep"
    argv = ["sweep", "--seeds", "0-1", "--parallel", "2", "--family", "linear", "--iterations", "40",
            "--meta-batch", "2", "--tasks", "6", "--steps", "0,1", "--out", str(out)]
    assert cli(argv) == 0
    runs = sorted((out / "runs").iterdir())
    assert [r.name for r in runs] == ["base-seed0", "base-seed1"]
    results = [json.loads((r / "eval.json").read_text()) for r in runs]
    summary = json.loads((out / "summary.json").read_text())
    [config] = summary["configs"]
    for step in ("0", "1"):
        a, b = (res["mean"][step] for res in results)
        assert config["steps"][step]["mean"] == pytest.approx((a + b) / 2)
        assert config["steps"][step]["ci95"] == pytest.approx(12.706 * abs(a - b) / 2)
    assert "2 of 2 runs finished" in capsys.readouterr().out

    # an interrupted sweep: one run lost its evaluation; the same command finishes only that one
    kept = (runs[0] / "eval.json").stat().st_mtime_ns
    (runs[1] / "eval.json").unlink()
    assert cli(argv) == 0
    assert (runs[0] / "eval.json").stat().st_mtime_ns == kept and (runs[1] / "eval.json").is_file()
    assert "1 of 2 runs already finished" in capsys.readouterr().err
    assert "--resume" in (out / "logs" / "base-seed1.log").read_text()
    # a different sweep into the same folder is refused, one line, exit 2
    assert cli([*argv[:-2], "--iterations", "50", "--out", str(out)]) == 2
    assert "holds another sweep" in capsys.readouterr().err
