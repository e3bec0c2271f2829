"""The command line is a contract other tools call: exit codes, one-line errors, one JSON object."""

import json
import signal
import subprocess
import sys
import time

import pytest

from core.storage.checkpoint import WEIGHTS_FILE
from core.cli.main import main


def test_train_then_evaluate_json(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--family", "sinusoid", "--algorithm", "fomaml", "--iterations", "30", "--meta-batch", "4",
                 "--inner-steps", "2", "--seed", "3", "--out", str(out)])
    assert code == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and "30 iterations" in summary[0]
    assert (out / WEIGHTS_FILE).exists() and len((out / "metrics.csv").read_text().splitlines()) == 31
    assert main(["evaluate", str(out), "--tasks", "20", "--shots", "5", "--steps", "0,1,10", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metric"] == "mse" and data["shots"] == 5 and data["tasks"] == 20 and data["steps"] == [0, 1, 10]
    assert set(data["mean"]) == set(data["ci95"]) == set(data["scratch"]["mean"]) == {"0", "1", "10"}


def test_time_limit_stops_cleanly_and_saves(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--iterations", "1000000", "--time-limit", "1", "--meta-batch", "2", "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "time limit of 1 s reached at iteration" in summary and f"train --resume {out}" in summary
    assert (out / WEIGHTS_FILE).exists()


def test_config_file_and_flags(tmp_path, capsys):
    cfg = tmp_path / "exp.json"
    cfg.write_text(json.dumps({"family": {"name": "blobs", "params": {"n_way": 3}},
                               "train": {"shots": 2, "query": 3, "meta_batch": 2}}))
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--iterations", "5", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--tasks", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metric"] == "accuracy"


@pytest.mark.parametrize("argv,words", [
    (["train", "--out", "x", "--shots", "0"], "argument --shots: 0 is outside 1..10000"),
    (["train", "--out", "x", "--algorithm", "magic"], "invalid choice"),
    (["train"], "--out"),
    (["train", "--out", "x", "--time-limit", "-5"], "--time-limit"),
    (["evaluate", "/does/not/exist"], "is it a run folder"),
    (["evaluate", "x", "--steps", "one"], "invalid step list"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_one_line(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("module", ["core.cli", "maml_gui"])
def test_console_script_bad_argument_has_no_traceback(module):
    proc = subprocess.run([sys.executable, "-m", module, "train", "--meta-batch", "two", "--out", "x"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "--meta-batch" in proc.stderr


def test_the_engine_cli_opens_no_window(capsys):
    """core never imports the window: with no command, or ``bench --gui`` and nobody to run it, one line and 2."""
    assert main([]) == 2
    assert "choose a command" in capsys.readouterr().err
    assert main(["bench", "--gui"]) == 2
    err = capsys.readouterr().err
    assert "maml-gui bench --gui" in err and len(err.strip().splitlines()) == 1


def test_launcher_dispatch(monkeypatch, capsys):
    """``maml-gui``: no arguments open the window; ``bench --gui`` runs the window's bench through core.cli's
    parsing and printing; everything else is core.cli's."""
    from maml_gui import launcher

    monkeypatch.setattr(launcher, "open_window", lambda: 42)
    assert launcher.main([]) == 42
    asked = []
    monkeypatch.setattr(launcher, "gui_bench", lambda seconds: asked.append(seconds) or {"gui_it_s": 1.5})
    assert launcher.main(["bench", "--gui", "--seconds", "0.25", "--json"]) == 0
    assert asked == [0.25] and json.loads(capsys.readouterr().out) == {"gui_it_s": 1.5}
    assert launcher.main(["train", "--out", "x", "--shots", "0"]) == 2
    assert "argument --shots" in capsys.readouterr().err


def test_bench_gui_images_measures_an_image_run(monkeypatch, capsys):
    """``bench --gui --images``: the window's bench of an image run (its ratio printed); --images alone is refused."""
    from maml_gui import launcher

    asked = []
    monkeypatch.setattr(launcher, "gui_bench", lambda seconds, images=False: asked.append((seconds, images))
                        or {"ratio": 0.9})
    assert launcher.main(["bench", "--gui", "--images", "--seconds", "2"]) == 0
    assert asked == [(2.0, True)] and capsys.readouterr().out.strip() == "ratio=0.9"
    assert launcher.main(["bench", "--images"]) == 2
    assert "--images goes with --gui" in capsys.readouterr().err


@pytest.mark.parametrize("argv,words", [
    ([], ["train", "evaluate", "bench", "export", "adapt", "opens the window"]),
    (["bench"], ["--gui", "--seconds", "--memory", "--rounds", "--json"]),
])
def test_launcher_help_shows_everything(argv, words, capsys):
    from maml_gui.launcher import main as launch

    with pytest.raises(SystemExit) as exit_:
        launch([*argv, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(word in out for word in words)


@pytest.mark.parametrize("argv,code,words", [
    ([], 1, "the window cannot start"),
    (["bench", "--gui"], 2, "bench --gui needs the window"),
    (["train", "--meta-batch", "two", "--out", "x"], 2, "--meta-batch"),
])
def test_launcher_without_qt_is_readable(argv, code, words):
    """Where Qt cannot load, the window says so in one line and the headless commands still work."""
    run = f"import sys; sys.modules['PySide6'] = None; from maml_gui.launcher import main; sys.exit(main({argv!r}))"
    proc = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True)
    assert proc.returncode == code
    assert words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_bench_json_contract(capsys):
    assert main(["bench", "--json", "--rounds", "1", "--meta-batch", "4"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"engine_it_s", "loop_it_s", "speedup", "device"}
    assert data["engine_it_s"] > 0 and data["loop_it_s"] > 0 and data["device"] == "cpu"


def test_resume_continues_exactly_where_training_stopped(tmp_path, capsys):
    import torch

    from core.storage.checkpoint import load_run

    common = ["--meta-batch", "3", "--inner-steps", "2", "--seed", "4"]
    assert main(["train", *common, "--iterations", "12", "--out", str(tmp_path / "straight")]) == 0
    assert main(["train", *common, "--iterations", "5", "--out", str(tmp_path / "split")]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "split"), "--iterations", "12"]) == 0
    assert ": 7 iterations (5 to 12) in " in capsys.readouterr().out   # this process's, not the run's 12
    straight, split = load_run(tmp_path / "straight")[1], load_run(tmp_path / "split")[1]
    assert all(torch.equal(straight[n], split[n]) for n in straight)
    assert len((tmp_path / "split" / "metrics.csv").read_text().splitlines()) == 13
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "split"), "--shots", "2"]) == 2
    assert "cannot change a resumed run" in capsys.readouterr().err


def test_a_csv_with_one_data_row_is_refused_by_file_name(tmp_path, capsys):
    data = tmp_path / "onerow.csv"
    data.write_text("t,x,y\na,1,2\n")
    assert main(["train", "--csv", str(data), "--task-column", "t", "--target", "y", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "onerow.csv: 1 task cannot be split" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_compile_flag_sets_the_config_and_auto_skips_a_short_run(tmp_path, capsys):
    from core.cli.parser import build_parser, config_from_args

    parse = build_parser().parse_args
    assert config_from_args(parse(["train", "--out", "x", "--compile"])).train.compile == "on"
    assert config_from_args(parse(["train", "--out", "x", "--compile", "auto"])).train.compile == "auto"
    assert config_from_args(parse(["train", "--out", "x"])).train.compile == "off"
    assert main(["train", "--out", "x", "--compile", "always"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    out = tmp_path / "run"
    assert main(["train", "--compile", "auto", "--iterations", "5", "--meta-batch", "2", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "too short to pay for compiling" in captured.err and "compiled" not in captured.out


def test_bench_compile_reports_both_rates_and_compile_times(monkeypatch, capsys):
    import core.training.bench
    from core.training.bench import CompileBench

    result = CompileBench(1000.0, 2000.0, 21.04, 3.61, "cpu", "closed form, one-step kernels, compiled", "compiled")
    monkeypatch.setattr(core.training.bench, "bench_compile", lambda config, rounds: result)
    assert main(["bench", "--compile", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["eager_it_s"] == 1000.0 and data["compiled_it_s"] == 2000.0 and data["speedup"] == 2.0
    assert data["compile_cold_s"] == 21.0 and data["compile_warm_s"] == 3.6 and data["device"] == "cpu"
    assert main(["bench", "--compile"]) == 0
    line = capsys.readouterr().out
    assert "eager 1000.0 it/s, compiled 2000.0 it/s, speedup 2.00x" in line and "21.0 s cold, 3.6 s warm" in line


def test_an_existing_run_folder_is_never_silently_replaced(tmp_path, capsys):
    out = tmp_path / "same"
    base = ["train", "--iterations", "3", "--meta-batch", "2", "--out", str(out)]
    assert main(base) == 0
    before = (out / WEIGHTS_FILE).read_bytes()
    capsys.readouterr()
    assert main(base[:-2] + ["--family", "linear", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--resume" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert (out / WEIGHTS_FILE).read_bytes() == before and '"sinusoid"' in (out / "config.json").read_text()
    assert main(base[:-2] + ["--family", "linear", "--out", str(out), "--force"]) == 0
    assert '"linear"' in (out / "config.json").read_text()
    assert len((out / "metrics.csv").read_text().splitlines()) == 4, "nothing of the old run is left"
    assert main(["train", "--resume", str(out), "--iterations", "5"]) == 0   # continuing is no overwrite


def test_sigterm_stops_saves_and_says_how_to_continue(tmp_path):
    from core.storage.checkpoint import load_checkpoint
    from core.storage.metrics import read_metrics

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "train", "--iterations", "100000000", "--meta-batch", "2",
                             "--save-every", "0.2", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while read_metrics(out) is None:   # a first periodic checkpoint with rows in it
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else "slow"
            time.sleep(0.05)   # a child process: its run folder is the only thing to watch
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert "stopped by SIGTERM at iteration" in stdout and f"train --resume {out}" in stdout
    iteration = int(load_checkpoint(out)[3]["iteration"])
    assert read_metrics(out)[:, 0].tolist() == list(range(1, iteration + 1))
    assert f"at iteration {iteration:,}" in stdout and not (out / ".lock").exists()


@pytest.mark.parametrize("argv,words", [
    (["--nproc", "0"], "--nproc must be"),
    (["--rank-timeout", "0"], "--rank-timeout must be"),
])
def test_bad_distributed_flags_exit_2_with_one_line(argv, words, tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_nproc_1_is_the_one_process_run(tmp_path, capsys):
    import torch

    from core.storage.checkpoint import load_run

    common = ["train", "--iterations", "5", "--meta-batch", "3", "--seed", "2"]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, "--nproc", "1", "--out", str(tmp_path / "one")]) == 0
    summaries = capsys.readouterr().out.strip().splitlines()
    assert "processes" not in summaries[1]
    plain, one = load_run(tmp_path / "plain")[1], load_run(tmp_path / "one")[1]
    assert set(plain) == set(one) and all(torch.equal(plain[n], one[n]) for n in plain)


def test_nproc_under_torchrun_is_refused_and_help_gives_the_torchrun_line(monkeypatch, tmp_path, capsys):
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    assert main(["train", "--nproc", "2", "--out", str(tmp_path / "r")]) == 2
    assert "under torchrun leave it out" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "torchrun --nproc-per-node 2 -m core.cli train --out OUT" in capsys.readouterr().out


def test_rates_count_only_this_process_iterations():
    from core.cli.train import iterations_done

    assert iterations_done(34000, 36000, 4.0) == "2000 iterations (34000 to 36000) in 4.0 s, 500 it/s"
    assert iterations_done(0, 300, 2.0) == "300 iterations in 2.0 s, 150 it/s"
    assert iterations_done(5, 5, 0.0) == "0 iterations (5 to 5) in 0.0 s, 0 it/s"
    assert iterations_done(0, 171, 2735.4) == "171 iterations in 2735.4 s, 0.06 it/s"   # meta-RL: slow iterations
