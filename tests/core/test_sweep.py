"""Seed sweeps: the syntax a user types, and summary numbers checked against values computed by hand."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from core.storage.sweeps import SweepError, mean_ci, parse_grid, parse_seeds, plan, summarize, write_summary


def test_seeds_ranges_and_lists():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3") == [3]
    assert parse_seeds("0-2, 7,1") == [0, 1, 2, 7]
    for bad, says in (("a", "'a' is not a seed"), ("4-1", "runs backwards"), ("1,,2", "'' is not a seed"),
                      ("0-5000", "more than the 1000")):
        with pytest.raises(SweepError, match=says):
            parse_seeds(bad)


def test_a_sweep_takes_the_seeds_train_takes():
    """Each run is ``train --seed S``: a seed train refuses would fail every run of the sweep."""
    from core.cli.parser import build_parser
    from core.ranges import MAX_SEED

    assert parse_seeds(f"{MAX_SEED - 1}-{MAX_SEED}") == [MAX_SEED - 1, MAX_SEED]
    assert build_parser().parse_args(["train", "--out", "x", "--seed", str(MAX_SEED)]).seed == MAX_SEED
    with pytest.raises(SweepError, match=f"--seeds: {MAX_SEED + 1} is above the largest seed, {MAX_SEED}"):
        parse_seeds(f"0,{MAX_SEED + 1}")


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
        "n": 1, "mean": 0.5, "ci95": None, "values": [0.5], "scratch_mean": 4.0, "scratch_ci95": None,
        "diverged_seeds": 0}

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
    from core.cli.main import main as cli

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


# -- options the sweep must not misread (issue 26 items 1-3, 10) -----------------------------------
def _sweep_exit(argv, capsys):
    from core.cli.main import main as cli

    code = cli(["sweep", *argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("extra, says", [
    (["--seed", "7"], "--seed is set per run by the sweep"),
    (["--seed=7"], "--seed is set per run by the sweep"),
    (["--grid", "meta_lr=0.1,0.2", "--meta-lr", "0.3"], "--meta-lr is varied by --grid"),
    (["--iter", "5"], "unrecognized arguments: --iter"),   # no prefix of --iterations either
])
def test_a_per_run_option_or_a_prefix_is_refused_before_anything_runs(tmp_path, capsys, extra, says):
    out = tmp_path / "sweep"
    code, err = _sweep_exit(["--seeds", "0-2", "--family", "linear", "--iterations", "5", *extra, "--out", str(out)],
                            capsys)
    assert code == 2 and says in err and err.count("\n") == 1
    assert not out.exists()


def test_no_command_takes_a_prefix_of_an_option(capsys):
    from core.cli.main import main as cli
    from core.cli.parser import build_parser

    parsers = build_parser()._subparsers._group_actions[0].choices   # noqa: SLF001
    assert parsers and all(not p.allow_abbrev for p in parsers.values())
    assert cli(["evaluate", "runs/x", "--task", "5"]) == 2   # not --tasks
    assert "unrecognized arguments: --task" in capsys.readouterr().err


def test_duplicate_grid_values_are_refused():
    with pytest.raises(SweepError, match="meta_lr lists the value 0.001 twice"):
        parse_grid(["meta_lr=0.001,0.001,0.001"])
    with pytest.raises(SweepError, match=r"twice \(0.001 and 1e-3\)"):   # one value, two spellings
        parse_grid(["meta_lr=0.001,1e-3"], convert=lambda key, text: float(text))
    assert len(parse_grid(["meta_lr=0.1,0.2"], convert=lambda key, text: None)) == 2   # a check that returns nothing


def test_a_summary_never_counts_a_run_twice(tmp_path, capsys):
    # the command line refuses the duplicates outright, before creating anything
    out = tmp_path / "sweep"
    code, err = _sweep_exit(["--grid", "meta_lr=0.001,0.001,0.001", "--seeds", "0-1", "--family", "linear",
                             "--out", str(out)], capsys)
    assert code == 2 and "lists the value 0.001 twice" in err and not out.exists()
    # a grid with duplicates that reaches plan/summarize directly still yields each run once: n = 2
    grid = [{"meta_lr": "0.001"}] * 3
    runs = plan(tmp_path, [0, 1, 0], grid)
    assert [r.folder.name for r in runs] == ["meta_lr=0.001-seed0", "meta_lr=0.001-seed1"]
    _fake_eval(runs[0], {0: 1.0}, {0: 2.0})
    _fake_eval(runs[1], {0: 3.0}, {0: 2.0})
    [config] = summarize(runs + runs + runs).configs
    assert config["seeds"] == [0, 1] and config["steps"]["0"]["n"] == 2
    assert config["steps"]["0"]["ci95"] == pytest.approx(12.706 * 2.0 / 2)


@pytest.mark.parametrize("extra, says", [
    (["--tasks", "0"], "argument --tasks: 0 is outside 1..100000"),
    (["--tasks", "-1"], "argument --tasks: -1 is outside 1..100000"),
    (["--steps", "abc"], "invalid step list 'abc'"),
    (["--steps", "5000"], "steps must be in 0..1000"),
])
def test_what_evaluate_gets_is_checked_before_the_first_run(tmp_path, capsys, extra, says):
    out = tmp_path / "sweep"
    code, err = _sweep_exit(["--seeds", "0", "--family", "linear", "--iterations", "5", *extra, "--out", str(out)],
                            capsys)
    assert code == 2 and says in err and err.startswith("maml-gui sweep:") and err.count("\n") == 1
    assert not out.exists()   # no run folder, no sweep folder: nothing trained


def test_seed_counts_are_worked_out_from_the_ranges():
    assert len(parse_seeds("0-600,300-900")) == 901
    with pytest.raises(SweepError, match="2,147,483,648 seeds is more than the 1000"):
        parse_seeds("0-2147483647")
    with pytest.raises(SweepError, match="1,001 seeds"):
        parse_seeds("0-500,400-1000")
    with pytest.raises(SweepError, match="27,000,000 runs"):
        parse_grid([f"{k}={','.join(str(i) for i in range(1, 301))}" for k in ("meta_batch", "shots", "query")])


@pytest.mark.parametrize("argv, says", [
    (["--seeds", "0-2147483647"], "2,147,483,648 seeds is more than the 1000"),
    ([f"--grid={k}={','.join(str(i) for i in range(1, 301))}" for k in ("meta_batch", "shots", "query")]
     + ["--seeds", "0"], "300 × 300 × 300 settings × 1 seed(s) is 27,000,000 runs"),
])
def test_a_huge_sweep_is_refused_in_little_memory(tmp_path, argv, says):
    """In a child process capped at 1 GiB of address space: a plan built before the check (3.4 GB
    of seeds) would end in MemoryError; the refusal is one line and exit 2."""
    import subprocess
    import sys

    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
            "from core.cli.main import main; sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", code, "sweep", *argv, "--family", "linear",
                             "--out", str(tmp_path / "sweep")], capture_output=True, text=True, timeout=60,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2, result.stderr
    assert says in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "sweep").exists()


def test_the_sweep_rate_counts_only_iterations_done_since_it_started(tmp_path, capsys):
    """A resumed sweep with finished runs: their iterations were done before; the bar's it/s is the
    new iterations over the time taken (it showed 269,744,754 it/s)."""
    from types import SimpleNamespace

    from core.cli.sweep import _Bar

    done = {"n": 9000}   # 9000 of 10000 iterations were done by an earlier sweep
    runner = SimpleNamespace(runs=plan(tmp_path, [0, 1], []), progress=lambda: (done["n"], 10000))
    now = {"t": 100.0}
    bar = _Bar(runner, clock=lambda: now["t"])
    now["t"] += 1e-6
    bar.update(runner)
    assert " 0 it/s" in capsys.readouterr().err
    done["n"], now["t"] = 9500, now["t"] + 50.0
    bar.close(runner)
    line = capsys.readouterr().err.strip()
    assert "9,500/10,000 iterations" in line and line.endswith(" 10 it/s")


def test_python_m_core_cli_gives_the_same_one_line(tmp_path):
    """The sweep launches its runs as `python -m core.cli`; run that way, an error raised inside an
    imported module (core.cli.parser.UsageError, not __main__'s copy) must still be one line, exit 2."""
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "core.cli", "sweep", "--seeds", "0", "--steps", "5000",
                             "--family", "linear", "--out", str(tmp_path / "s")], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2
    assert result.stderr == "maml-gui sweep: argument --steps: invalid step list '5000'; steps must be in 0..1000 " \
                            "(see --help)\n"


@pytest.mark.parametrize("item, says", [
    ("meta_lr=-1,0.1", "meta_lr=-1 is not valid (-1 is outside (0, 10])"),
    ("inner_steps=0,1", "inner_steps=0 is not valid (0 is outside 1..100)"),
    ("iterations=99999999999", "iterations=99999999999 is not valid (99999999999 is outside 1..1000000000)"),
    ("meta_batch=abc", "meta_batch=abc is not valid ('abc' is not a whole number)"),
])
def test_a_grid_value_outside_trains_range_is_one_line(tmp_path, capsys, item, says):
    """The grid checks each value with train's own range types, which raise argparse's
    ArgumentTypeError (not a ValueError): that was a traceback."""
    out = tmp_path / "sweep"
    code, err = _sweep_exit(["--seeds", "0-1", "--grid", item, "--family", "linear", "--out", str(out)], capsys)
    assert code == 2 and says in err and err.startswith("maml-gui sweep: --grid:") and err.count("\n") == 1, err
    assert not out.exists()


@pytest.mark.parametrize("extra, says", [
    (["--time-limit", "-1"], "--time-limit must be a positive number of seconds"),
    (["--save-every", "nan"], "--save-every must be a number of seconds, 0 or more"),
    (["--nproc", "0"], "--nproc must be a number of processes from 1 to 1024"),
    (["--rank-timeout", "0"], "--rank-timeout must be a positive number of seconds"),
])
def test_train_flags_checked_past_parsing_are_checked_before_the_first_run(tmp_path, capsys, extra, says):
    """These are checked by train after argparse: every run of the sweep used to fail with exit 2 in turn."""
    out = tmp_path / "sweep"
    code, err = _sweep_exit(["--seeds", "0", "--family", "linear", "--iterations", "2", *extra, "--out", str(out)],
                            capsys)
    assert code == 2 and says in err and err.count("\n") == 1, err
    assert not out.exists()


def test_a_sweep_whose_runs_cannot_fit_in_memory_is_refused_before_any_starts(tmp_path, capsys, monkeypatch):
    import core.training.memory

    monkeypatch.setattr(core.training.memory, "available_bytes", lambda device: 4 << 30)   # 4 GiB free
    out = tmp_path / "sweep"
    # meta-batch 512 needs ~0.9 GiB (fits a 2 GiB share of --parallel 2), 4096 ~7.5 GiB: refused, named
    code, err = _sweep_exit(["--seeds", "0-1", "--family", "sinusoid", "--shots", "1000", "--query", "1000",
                             "--iterations", "1", "--parallel", "2", "--grid", "meta_batch=512,4096",
                             "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("maml-gui sweep: meta_batch=4096: one meta-iteration needs about 7.5 GiB but only 2.0 GiB")
    assert "--parallel 2 runs at once" in err and "nothing was started" in err
    assert not out.exists()


def test_a_sweep_out_that_is_a_file_is_one_line(tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    code, err = _sweep_exit(["--seeds", "0", "--family", "linear", "--iterations", "2", "--out", str(out)], capsys)
    assert code == 2 and f"{out} exists and is not a folder" in err and err.count("\n") == 1, err
    assert out.read_text() == "mine"


def test_a_step_where_a_runs_tasks_diverged_is_summarised_as_diverged(tmp_path):
    """evaluate writes null for a step where held-out tasks diverged: the summary added None to the
    other seeds' numbers, a traceback after every run had trained."""
    runs = plan(tmp_path, [0, 1], [])
    _fake_eval(runs[0], {0: 1.0, 1: None}, {0: 2.0, 1: 1.5})
    _fake_eval(runs[1], {0: 3.0, 1: 0.5}, {0: 2.0, 1: 1.5})
    [config] = summarize(runs).configs
    assert config["steps"]["0"]["mean"] == 2.0 and config["steps"]["0"]["diverged_seeds"] == 0
    assert config["steps"]["1"]["mean"] is None and config["steps"]["1"]["diverged_seeds"] == 1
    assert config["steps"]["1"]["scratch_mean"] == 1.5
    write_summary(tmp_path, runs)
    assert json.loads((tmp_path / "summary.json").read_text())["configs"][0]["steps"]["1"]["mean"] is None


@pytest.mark.parametrize("damage", [b"", b"\x00\xffjunk", b"[1]", b'{"metric": "mse", "steps": [0], "mean": "x"}',
                                    b'{"metric": "mse", "steps": [0], "mean": {"0": NaN}, "scratch": {"mean": {"0": 1}}}',
                                    b'{"metric": "mse", "steps": [0], "mean": {"0": 1e999}, "scratch": {"mean": {"0": 1}}}',
                                    b'{"metric": "mse", "steps": [0], "mean": {"5": 1}, "scratch": {"mean": {"5": 1}}}'])
def test_a_damaged_eval_json_makes_its_run_unfinished_not_a_traceback(tmp_path, damage):
    """A damaged eval.json counted as finished (it exists), so the summary read it and crashed; now
    the run is not finished (the sweep evaluates it again) and the summary leaves it out."""
    runs = plan(tmp_path, [0, 1], [])
    _fake_eval(runs[0], {0: 1.0}, {0: 2.0})
    _fake_eval(runs[1], {0: 3.0}, {0: 2.0})
    (runs[1].folder / "eval.json").write_bytes(damage)
    assert runs[0].finished and not runs[1].finished
    [config] = summarize(runs).configs
    assert config["seeds"] == [0] and config["steps"]["0"]["n"] == 1


def test_a_file_named_logs_in_the_sweep_folder_is_one_line(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["--seeds", "0", "--family", "linear", "--iterations", "2", "--out", str(out)]
    code, _ = _sweep_exit([*argv, "--parallel", "0"], capsys)   # refused: nothing created
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({"seeds": [0], "grid": [], "train_args": ["--family", "linear",
                                                "--iterations", "2"], "tasks": 100, "steps": "0,1,10"}))
    (out / "logs").write_text("not a folder")
    code, err = _sweep_exit(argv, capsys)
    assert code == 2 and f"cannot create {out / 'logs'}" in err and err.count("\n") == 1, err


# -- sweeps of meta-RL runs ------------------------------------------------------------------------
def test_a_sweep_of_meta_rl_runs_summarises_the_returns_and_their_baselines(tmp_path):
    """evaluate's meta-RL result has baselines, not ``scratch``: its random initialisation stands for
    training from scratch; the other baselines are summarised over the seeds beside it."""
    runs = plan(tmp_path, [0, 1], [{}])
    for run, model, random, oracle in ((runs[0], -10.0, -50.0, -2.0), (runs[1], -14.0, -50.0, -3.0)):
        run.folder.mkdir(parents=True)
        result = {"metric": "return", "tasks": 4, "rollouts": 40, "steps": [0, 1], "inner_lr": [0.1],
                  "mean": {"0": model - 30, "1": model}, "ci95": {"0": 1.0, "1": 1.0},
                  "baselines": {"random": {"mean": {"0": random, "1": random + 5}, "ci95": {"0": 1.0, "1": 1.0}},
                                "oracle": {"mean": {"0": oracle, "1": oracle}, "ci95": {"0": 0.1, "1": 0.1},
                                           "iterations": 2}}}
        (run.folder / "eval.json").write_text(json.dumps(result))
    summary = write_summary(tmp_path, runs)
    assert summary.metric == "return"
    [config] = summary.configs
    step = config["steps"]["1"]
    assert step["mean"] == pytest.approx(-12.0) and step["ci95"] == pytest.approx(12.706 * 4.0 / 2)
    assert step["scratch_mean"] == pytest.approx(-45.0) and step["scratch_ci95"] == pytest.approx(0.0)
    assert step["baselines"]["oracle"] == {"n": 2, "mean": pytest.approx(-2.5), "ci95": pytest.approx(12.706 / 2)}
    assert set(step["baselines"]) == {"random", "oracle"}


def test_a_nav2d_sweep_from_a_saved_experiment_writes_meta_rl_run_folders(tmp_path, capsys):
    """What the window's Run as a sweep… does with 2-D navigation settings: ``sweep --config``."""
    from core.cli.main import main as cli
    from core.config import ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
    from core.storage.checkpoint import load_run

    config = ExperimentConfig(family=FamilySpec("nav2d", {"horizon": 10}), model=ModelSpec(hidden=(8,)),
                              train=TrainSpec(meta_batch=2, iterations=2)).replace("rl", rollouts=2)
    (tmp_path / "experiment.json").write_text(config.to_json())
    out = tmp_path / "sweep"
    assert cli(["sweep", "--seeds", "0-1", "--parallel", "2", "--tasks", "3", "--out", str(out),
                "--config", str(tmp_path / "experiment.json")]) == 0
    assert "2 of 2 runs finished" in capsys.readouterr().out
    for seed in (0, 1):
        folder = out / "runs" / f"base-seed{seed}"
        stored, _weights = load_run(folder)
        assert stored.is_rl and stored.train.seed == seed and stored.rl.rollouts == 2
        assert (folder / "metrics.csv").read_text().startswith("iteration,meta_return,")
        result = json.loads((folder / "eval.json").read_text())
        assert result["metric"] == "return" and result["steps"] == [0, 1, 2, 3]   # the paper's figure by default
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metric"] == "return" and list(summary["configs"][0]["steps"]) == ["0", "1", "2", "3"]
    assert {"pretrained", "random", "oracle"} <= set(summary["configs"][0]["steps"]["1"]["baselines"])


def test_a_grid_varies_the_meta_rl_settings_with_trains_checks(tmp_path, capsys):
    from core.cli.parser import build_parser, train_value_reader

    read = train_value_reader(build_parser().commands["train"])
    grid = parse_grid(["rollouts=10,20", "max_kl=0.01,0.02", "outer=trpo,ppo"], read)
    assert len(grid) == 8 and grid[0] == {"rollouts": "10", "max_kl": "0.01", "outer": "trpo"}
    with pytest.raises(SweepError, match="max_kl=0 is not valid"):
        parse_grid(["max_kl=0,0.01"], read)
    out = tmp_path / "sweep"   # a supervised family has no trajectories: train's one line, before anything runs
    code, err = _sweep_exit(["--seeds", "0-1", "--grid", "rollouts=2,3", "--family", "linear", "--out", str(out)], capsys)
    assert code == 2 and "--rollouts applies to environment families" in err and err.count("\n") == 1, err
    assert not out.exists()
