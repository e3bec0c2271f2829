"""Export, open and adapt: exact round trips, refusal of hostile or broken files, atomic writes,
and adaptation from exported weights that reproduces the engine's own numbers."""

import argparse
import importlib.util
import io
import json
import os
import pickle
import tempfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from core.trained.adapt import support_rows
from core.trained.loaded_model import adapt_weights
from core.storage.checkpoint import load_run, save_run
from core.config import FamilySpec
from core.errors import CheckpointError, ConfigError
from core.trained.evaluation import held_out_tasks, per_step_scores
from core.trained.export import config_sidecar, export_weights, loading_code, missing_onnx_packages, readme_sidecar
from core.cli.export import add_export_parser, run_export
from core.nets.models import MLP
from core.tasks import TaskBatch
from core.training.trainer import MetaTrainer
from core.trained.weights_io import open_weights

from ..helpers import pretend_installed, tiny_config

HAS_ONNX_EXPORT = not missing_onnx_packages()
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None


def make_run(path, algorithm="metasgd", family="sinusoid", iterations=3, **kw):
    trainer = MetaTrainer(tiny_config(family, algorithm, **kw))
    rows = [trainer.step() for _ in range(iterations)]
    save_run(path, trainer.config, trainer.weights(), rows)
    return trainer


@pytest.fixture
def run(tmp_path):
    trainer = make_run(tmp_path / "run", steps=2)
    return tmp_path / "run", trainer


def assert_same(a, b):
    assert set(a) == set(b)
    assert all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


class Payload:
    """Unpickling this would run a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# -- round trips ----------------------------------------------------------------------------
def test_safetensors_round_trip_is_bit_exact_and_self_describing(run, tmp_path):
    path, trainer = run
    family = SimpleNamespace(kind="regression", normalization={"mean": [0.5], "std": [2.0]})
    out = export_weights(path, "safetensors", tmp_path / "w.safetensors", family=family)
    config, weights = open_weights(out)
    assert config == trainer.config
    assert_same(weights, trainer.weights())
    assert any(k.startswith("inner_lr.") for k in weights)  # Meta-SGD's learned rates travel too
    assert_same(load_run(out)[1], weights)  # the run reader opens an export as is
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert meta["format_version"] == "1" and meta["algorithm"] == "metasgd"
    assert json.loads(meta["model"]) == {"input_dim": 1, "output_dim": 1, "hidden": [8, 8], "activation": "relu"}
    assert json.loads(meta["config"])["train"]["shots"] == trainer.config.train.shots
    assert json.loads(meta["normalization"]) == {"mean": [0.5], "std": [2.0]}
    assert "normalization" in readme_sidecar(out).read_text()


def test_pt_is_a_plain_state_dict_for_the_documented_model(run, tmp_path):
    path, trainer = run
    out = export_weights(path, "pt", tmp_path / "w.pt")
    state = torch.load(out, weights_only=True)
    model = MLP(1, 1, (8, 8), "relu")
    model.load_state_dict(state)  # strict: exactly the model's keys, nothing else
    x = torch.linspace(-5, 5, 33).reshape(1, 33, 1)
    with torch.no_grad():
        assert torch.equal(model(x[0]), trainer.net.forward(trainer.params, x)[0])
    config, weights = open_weights(out)  # settings from the w.pt.config.json sidecar
    assert config == trainer.config and config_sidecar(out).exists()
    assert_same(weights, {k: v for k, v in trainer.weights().items() if k.startswith("model.")})
    assert open_weights(out, config=path / "config.json")[0] == trainer.config


@pytest.mark.skipif(not HAS_ONNX_EXPORT, reason="onnx/onnxscript not installed: bash install.sh --test installs them")
@pytest.mark.parametrize("dynamo", [True, False], ids=["torch.export", "torchscript (torch < 2.5)"])
def test_onnx_matches_torch(run, tmp_path, monkeypatch, dynamo):
    path, trainer = run
    if not dynamo:
        monkeypatch.setattr("core.trained.export._dynamo_exporter", lambda: False)
    out = export_weights(path, "onnx", tmp_path / "w.onnx")
    assert out.stat().st_size > 0 and readme_sidecar(out).exists()
    with pytest.raises(CheckpointError, match="ONNX file, made for inference only"):
        open_weights(out)
    if not HAS_ORT:
        pytest.skip("onnxruntime not installed: the ONNX output comparison needs it")
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"] and [o.name for o in session.get_outputs()] == ["y"]
    for n in (1, 7, 64):  # the batch axis is dynamic
        x = torch.randn(n, 1, generator=torch.Generator().manual_seed(n)) * 5
        (y,) = session.run(["y"], {"x": x.numpy()})
        with torch.no_grad():
            ref = trainer.net.forward(trainer.params, x[None])[0]
        assert y.shape == (n, 1)
        torch.testing.assert_close(torch.from_numpy(y), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("hidden", [("onnxscript",), ("onnx",), ("onnx", "onnxscript")])
def test_onnx_without_its_packages_says_how_to_install(run, tmp_path, monkeypatch, hidden):
    path, _ = run
    pretend_installed(monkeypatch, {p: p not in hidden for p in ("onnx", "onnxscript")})
    names = ", ".join(hidden)
    with pytest.raises(CheckpointError, match=rf"needs the optional packages {names}: pip install 'maml-gui\[onnx\]'$"):
        export_weights(path, "onnx", tmp_path / "w.onnx")
    assert not (tmp_path / "w.onnx").exists() and not readme_sidecar(tmp_path / "w.onnx").exists()


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_readme_code_loads_the_file_without_this_app(run, tmp_path, monkeypatch, fmt):
    path, trainer = run
    out = export_weights(path, fmt, tmp_path / f"w.{fmt}")
    code = loading_code(fmt, trainer.config, trainer.weights(), out.name)
    assert code in readme_sidecar(out).read_text() and "core" not in code and "maml" not in code.lower()
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, "README", "exec"), scope)
    with torch.no_grad():
        assert torch.equal(scope["y"], trainer.net.forward(trainer.params, torch.zeros(1, 5, 1))[0])


# -- hostile and broken files ---------------------------------------------------------------
def test_malicious_pickle_is_refused_and_never_runs(run, tmp_path):
    path, _ = run
    marker = tmp_path / "pwned"
    raw = pickle.dumps({"layers.0.weight": Payload(marker)})
    buf = io.BytesIO()
    torch.save({"layers.0.weight": Payload(marker)}, buf)  # the zip layout torch.save writes
    for i, data in enumerate((raw, buf.getvalue())):
        evil = tmp_path / f"evil{i}.pt"
        evil.write_bytes(data)
        config_sidecar(evil).write_text((path / "config.json").read_text())
        with pytest.raises(CheckpointError, match="objects other than tensors.*refused without running"):
            open_weights(evil)
        with pytest.raises(CheckpointError, match="refused"):
            export_weights(evil, "safetensors", tmp_path / "out.safetensors")
        renamed = tmp_path / f"evil{i}.safetensors"
        renamed.write_bytes(data)
        with pytest.raises(CheckpointError, match="not a valid safetensors weights file"):
            open_weights(renamed)
    assert not marker.exists()
    assert not (tmp_path / "out.safetensors").exists()


def test_truncated_files_are_refused(run, tmp_path):
    path, _ = run
    for fmt, message in (("pt", "not a valid PyTorch weights file \\(truncated or corrupted\\?\\)"),
                         ("safetensors", "not a valid safetensors weights file \\(truncated or corrupted\\?\\)")):
        out = export_weights(path, fmt, tmp_path / f"w.{fmt}")
        data = out.read_bytes()
        out.write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointError, match=message):
            open_weights(out)


def test_other_model_shapes_are_refused(run, tmp_path):
    path, trainer = run
    other = make_run(tmp_path / "wide", hidden=(8, 16), steps=2)
    out = export_weights(tmp_path / "wide", "pt", tmp_path / "wide.pt")
    config_sidecar(out).write_text((path / "config.json").read_text())  # claims the (8, 8) network
    with pytest.raises(CheckpointError, match=r"model.layers.1.weight has shape \(16, 8\), the model needs \(8, 8\)"):
        open_weights(out)
    weights = trainer.weights()
    weights["inner_lr.layers.0.weight"] = torch.zeros(3)
    meta = {"format_version": "1", "config": trainer.config.to_json()}
    save_file(weights, str(tmp_path / "rates.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match=r"inner_lr.layers.0.weight has shape \(3,\), the model needs \(8, 1\)"):
        open_weights(tmp_path / "rates.safetensors")
    state = {k[len("model."):]: v for k, v in trainer.weights().items() if k.startswith("model.")}
    torch.save({**state, "layers.3.weight": torch.zeros(1, 1)}, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match="unexpected tensor model.layers.3.weight"):
        open_weights(tmp_path / "extra.pt", config=trainer.config)
    assert other.config.model.hidden == (8, 16)


def test_newer_format_and_missing_settings_are_refused(run, tmp_path):
    path, trainer = run
    out = export_weights(path, "pt", tmp_path / "w.pt")
    newer = json.loads(config_sidecar(out).read_text())
    newer["format_version"] = 99
    config_sidecar(out).write_text(json.dumps(newer))
    with pytest.raises(CheckpointError, match="format version 99; this app reads up to 1: update the app"):
        open_weights(out)
    config_sidecar(out).unlink()
    with pytest.raises(CheckpointError, match="holds weights only; its settings file w.pt.config.json is missing"):
        open_weights(out)
    save_file(trainer.weights(), str(tmp_path / "new.safetensors"),
              metadata={"format_version": "99", "config": trainer.config.to_json()})
    with pytest.raises(CheckpointError, match="update the app"):
        open_weights(tmp_path / "new.safetensors")


# -- writing --------------------------------------------------------------------------------
def test_existing_files_are_overwritten_only_with_force(run, tmp_path):
    path, _ = run
    out = tmp_path / "w.safetensors"
    out.write_bytes(b"precious")
    with pytest.raises(CheckpointError, match="w.safetensors exists; use --force to overwrite"):
        export_weights(path, "safetensors", out)
    assert out.read_bytes() == b"precious" and not readme_sidecar(out).exists()
    export_weights(path, "safetensors", out, force=True)
    assert_same(open_weights(out)[1], load_run(path)[1])
    out.unlink()  # a sidecar left from an earlier export is protected too
    with pytest.raises(CheckpointError, match="README.txt exists; use --force"):
        export_weights(path, "safetensors", out)


def test_force_replaces_regular_files_only(run, tmp_path, capsys):
    """A FIFO in the way stays what it is, with or without --force, on the command line too (export
    and adapt); a sidecar's name is checked as well. (Device nodes go the same way: never tested on
    a real one, which a failing run would replace.)"""
    from core.cli.main import main as cli

    path, trainer = run
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    for force in (False, True):
        with pytest.raises(CheckpointError, match=r"pipe.safetensors is a named pipe \(FIFO\), not a regular file; "
                                                  r"--force replaces regular files only"):
            export_weights(path, "safetensors", fifo, force=force)
    assert cli(["export", str(path), "--out", str(fifo), "--force"]) == 2
    assert "is a named pipe (FIFO), not a regular file" in capsys.readouterr().err
    batch = held_out_tasks(trainer.family, 1, 4, 0, seed=2)
    csv = tmp_path / "task.csv"
    csv.write_text("x,y\n" + "".join(f"{a!r},{b!r}\n" for a, b in zip(batch.support_x[0, :, 0].tolist(),
                                                                     batch.support_y[0, :, 0].tolist())))
    assert cli(["adapt", str(path), "--csv", str(csv), "--target", "y", "--steps", "1", "--out", str(fifo),
                "--force"]) == 2
    assert "is a named pipe (FIFO), not a regular file" in capsys.readouterr().err
    assert fifo.is_fifo() and not readme_sidecar(fifo).exists()
    os.mkfifo(readme_sidecar(tmp_path / "w.safetensors"))   # a sidecar in the way counts too
    with pytest.raises(CheckpointError, match="README.txt is a named pipe"):
        export_weights(path, "safetensors", tmp_path / "w.safetensors", force=True)
    assert not (tmp_path / "w.safetensors").exists()


@pytest.mark.parametrize("target,errno,text", [("os.replace", 28, "No space left on device"),
                                               ("os.fsync", 28, "No space left on device"),
                                               ("tempfile.mkstemp", 30, "Read-only file system")])
def test_failed_write_leaves_no_partial_file(run, tmp_path, monkeypatch, target, errno, text):
    path, _ = run
    dest = tmp_path / "out"
    dest.mkdir()

    def fail(*args, **kwargs):
        raise OSError(errno, text)

    module, name = target.split(".")
    monkeypatch.setattr({"os": os, "tempfile": tempfile}[module], name, fail)
    for fmt in ("safetensors", "pt"):
        with pytest.raises(CheckpointError, match=text):
            export_weights(path, fmt, dest / f"w.{fmt}")
    assert os.listdir(dest) == []


def test_a_failing_sidecar_removes_the_file_just_written(run, tmp_path, monkeypatch):
    path, _ = run
    real, calls = os.replace, []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(CheckpointError, match="No space left on device"):
        export_weights(path, "pt", tmp_path / "w.pt")
    assert len(calls) == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_export_command(run, tmp_path, capsys):
    path, _ = run
    parser = argparse.ArgumentParser()
    add_export_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", str(path), "--format", "pt", "--out", str(tmp_path / "w.pt")])
    assert run_export(args) == 0
    assert "exported pt to" in capsys.readouterr().out and (tmp_path / "w.pt").exists()
    with pytest.raises(CheckpointError, match="use --force"):
        run_export(args)
    forced = parser.parse_args(["export", str(path), "--format", "pt", "--out", str(tmp_path / "w.pt"), "--force"])
    assert run_export(forced) == 0


# -- adaptation -----------------------------------------------------------------------------
def one_task(batch: TaskBatch, i: int) -> TaskBatch:
    return TaskBatch(batch.support_x[i:i + 1], batch.support_y[i:i + 1], batch.query_x[i:i + 1], batch.query_y[i:i + 1])


@pytest.mark.parametrize("algorithm,family,kw", [("metasgd", "sinusoid", {"steps": 2}), ("anil", "sinusoid", {}),
                                                  ("mamlpp", "sinusoid", {"steps": 2}),
                                                  ("maml", "blobs", {"shots": 2, "query": 3, "params": {"n_way": 3}})])
def test_adaptation_from_exported_weights_reproduces_the_engine(tmp_path, algorithm, family, kw):
    trainer = make_run(tmp_path / "run", algorithm, family, iterations=5, **kw)
    config, weights = open_weights(export_weights(tmp_path / "run", "safetensors", tmp_path / "w.safetensors"))
    batch = held_out_tasks(trainer.family, 3, 5, 20, seed=0)
    steps = 4
    engine = per_step_scores(trainer.algorithm, trainer.params, trainer.rates, batch, steps)  # [steps + 1, T]
    for i in range(batch.n_tasks):
        r = adapt_weights(config, weights, batch.support_x[i], batch.support_y[i], steps,
                          query_x=batch.query_x[i], query_y=batch.query_y[i])
        scores = r.query_accuracy if trainer.family.kind == "classification" else r.query_losses
        alone = per_step_scores(trainer.algorithm, trainer.params, trainer.rates, one_task(batch, i), steps)[:, 0]
        assert list(scores) == alone.tolist()  # the same task alone: bit for bit
        torch.testing.assert_close(torch.tensor(scores), engine[:, i], rtol=1e-5, atol=1e-6)  # inside a batch
        assert len(r.support_losses) == steps + 1 and r.support_losses[-1] < r.support_losses[0]


def test_adapted_weights_predict_and_save_like_the_last_step(run, tmp_path):
    path, trainer = run
    config, weights = open_weights(path)
    batch = held_out_tasks(trainer.family, 1, 5, 20, seed=1)
    r = adapt_weights(config, weights, batch.support_x[0], batch.support_y[0], 3,
                      query_x=batch.query_x[0], query_y=batch.query_y[0])
    assert_same({k: v for k, v in r.weights.items() if k.startswith("inner_lr.")},
                {k: v for k, v in weights.items() if k.startswith("inner_lr.")})
    out = export_weights((config, r.weights), "pt", tmp_path / "adapted.pt")
    model = MLP(1, 1, (8, 8), "relu")
    model.load_state_dict(torch.load(out, weights_only=True))
    with torch.no_grad():
        mse = (model(batch.query_x[0]) - batch.query_y[0]).pow(2).mean().item()
    assert mse == pytest.approx(r.query_losses[-1], rel=1e-6)
    save_run(tmp_path / "adapted", config, r.weights, [])
    assert_same(load_run(tmp_path / "adapted")[1], r.weights)
    fixed = adapt_weights(config, weights, batch.support_x[0], batch.support_y[0], 3, lr=0.001)
    assert fixed.support_losses != r.support_losses and fixed.query_losses is None


def test_adapt_rejects_data_that_does_not_fit(run):
    path, _ = run
    config, weights = open_weights(path)
    with pytest.raises(ConfigError, match=r"expected \[points, 1\] inputs, got shape \(4, 2\)"):
        adapt_weights(config, weights, torch.zeros(4, 2), torch.zeros(4, 1), 1)
    with pytest.raises(ConfigError, match=r"expected \[4, 1\] targets"):
        adapt_weights(config, weights, torch.zeros(4, 1), torch.zeros(3, 1), 1)
    with pytest.raises(ConfigError, match="steps"):
        adapt_weights(config, weights, torch.zeros(4, 1), torch.zeros(4, 1), -1)


# -- adapt from a CSV file ------------------------------------------------------------------
def adapt_parser():
    from core.cli.export import add_adapt_parser

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_adapt_parser(sub)
    return parser


def test_adapt_command_prints_the_engine_losses_and_exports(run, tmp_path, capsys):
    from core.cli.export import run_adapt

    path, trainer = run
    batch = held_out_tasks(trainer.family, 1, 6, 4, seed=2)
    x = torch.cat([batch.support_x[0], batch.query_x[0]])[:, 0].tolist()
    y = torch.cat([batch.support_y[0], batch.query_y[0]])[:, 0].tolist()
    csv = tmp_path / "task.csv"
    csv.write_text("note,y,x\n" + "".join(f"p{i},{b!r},{a!r}\n" for i, (a, b) in enumerate(zip(x, y))))  # any column order
    out = tmp_path / "adapted.pt"
    args = adapt_parser().parse_args(["adapt", str(path), "--csv", str(csv), "--target", "y", "--features", "x",
                                      "--steps", "3", "--shots", "6", "--out", str(out)])
    assert args.seed == 0
    assert run_adapt(args) == 0
    lines = capsys.readouterr().out.splitlines()
    config, weights = open_weights(path)
    support, query = support_rows(10, 6, seed=0)   # the window's adapt view draws the same rows
    assert len(support) == 6 and support.tolist() != list(range(6))
    xs, ys = torch.cat([batch.support_x[0], batch.query_x[0]]), torch.cat([batch.support_y[0], batch.query_y[0]])
    ref = adapt_weights(config, weights, xs[support], ys[support], 3, query_x=xs[query], query_y=ys[query])
    steps = [line for line in lines if line.startswith("step")]
    assert len(steps) == 4 and "6 support rows, 4 query rows" in lines[0] and "exported as pt" in lines[-1]
    assert lines[1] == f"support rows (drawn at random, --seed 0): {', '.join(str(i + 1) for i in support.tolist())}"
    for line, s, q in zip(steps, ref.support_losses, ref.query_losses):
        assert f"support MSE {s:.6g}" in line and f"query MSE {q:.6g}" in line
    assert_same(open_weights(out)[1], {k: v for k, v in ref.weights.items() if k.startswith("model.")})
    args = adapt_parser().parse_args(["adapt", str(path), "--csv", str(csv), "--target", "y", "--features", "x",
                                      "--steps", "3", "--shots", "6", "--seed", "1", "--out", str(out), "--force"])
    assert run_adapt(args) == 0
    other = capsys.readouterr().out.splitlines()
    assert other[1] != lines[1] and other[1].startswith("support rows (drawn at random, --seed 1): ")


def test_csv_support_rows_are_a_seeded_random_draw(tmp_path):
    from core.trained.adapt import csv_rows_task
    from core.tasks import build_family

    n = 30
    csv = tmp_path / "sorted.csv"   # sorted by x: the first K rows would leave only extrapolation to score
    csv.write_text("x,y\n" + "".join(f"{x:.3f},{np.sin(x):.5f}\n" for x in np.linspace(-5, 5, n)))
    family = build_family(FamilySpec("sinusoid"))
    first = csv_rows_task(csv, "y", ["x"], 5, family, seed=0)
    again = csv_rows_task(csv, "y", ["x"], 5, family, seed=0)
    other = csv_rows_task(csv, "y", ["x"], 5, family, seed=1)
    assert first.support_rows == again.support_rows and torch.equal(first.support_x, again.support_x)
    assert first.support_rows != other.support_rows
    assert first.support_rows != tuple(range(5)) and len(set(first.support_rows)) == 5
    assert list(first.support_rows) == sorted(first.support_rows)   # in file order
    xs = torch.linspace(-5, 5, n, dtype=first.support_x.dtype)
    # support and query split the rows, each in file order: every row once
    assert len(first.query_x) == n - 5
    assert sorted(torch.cat([first.support_x, first.query_x])[:, 0].tolist()) == pytest.approx(xs.tolist(), abs=1e-3)
    assert first.support_x[:, 0].tolist() == pytest.approx(xs[list(first.support_rows)].tolist(), abs=1e-3)
    assert "5 of 30 rows drawn at random (seed 0) as support, the other 25 as query" in first.title
    whole = csv_rows_task(csv, "y", ["x"], 50, family, seed=3)
    assert whole.query_x is None and len(whole.support_x) == n and whole.support_rows == tuple(range(n))
    # the view's task and the command line's draw are the same rows
    support, query = support_rows(n, 5, 0)
    assert tuple(support.tolist()) == first.support_rows and len(query) == n - 5


def test_task_csv_problems_are_named(tmp_path):
    from core.trained.adapt import task_from_csv
    from core.data.csv_reader import CsvError

    csv = tmp_path / "task.csv"
    csv.write_text("a,b,y\n1,2,3\n4,,6\n")
    with pytest.raises(CsvError, match="line 3.*missing values"):
        task_from_csv(csv, "y", ["a", "b"])
    with pytest.raises(ConfigError, match=r"the network takes 1 input\(s\); task.csv gives 2 \(a, b\)"):
        task_from_csv(csv, "y", input_dim=1)
    with pytest.raises(CsvError, match="there is no column 'z'"):
        task_from_csv(csv, "z")
    labels = tmp_path / "labels.csv"
    labels.write_text("x1,x2,kind\n0,1,cat\n1,0,dog\n2,2,cat\n")
    task = task_from_csv(labels, "kind", classification=True, input_dim=2)
    assert task.y.tolist() == [0, 1, 0] and task.classes == ("cat", "dog") and task.features == ("x1", "x2")


def test_csv_run_exports_its_statistics_and_adapts_in_training_units(tmp_path, capsys):
    from core.cli.export import run_adapt
    from core.tasks import csv_family

    assert csv_family.EXAMPLE.exists(), "the bundled CSV example (assets/examples/growth.csv) is missing"

    trainer = make_run(tmp_path / "run", "maml", "csv", iterations=3, shots=3, query=3)
    family = trainer.family
    out = export_weights(tmp_path / "run", "safetensors", tmp_path / "w.safetensors")
    with safe_open(str(out), "pt") as f:
        assert json.loads(f.metadata()["normalization"]) == family.normalization
    assert "x = (x - torch.tensor(" in readme_sidecar(out).read_text()
    x, y = family.task_points("test", 0)  # raw units, as a user's file would hold them
    csv = tmp_path / "new.csv"
    rows = "".join(f"{float(b)!r},{float(a)!r}\n" for a, b in zip(x[:, 0], y))
    csv.write_text(f"{family.target},{family.features[0]}\n{rows}")
    args = adapt_parser().parse_args(["adapt", str(out), "--csv", str(csv), "--target", family.target, "--steps", "2",
                                      "--out", str(tmp_path / "adapted.safetensors")])
    assert run_adapt(args) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step")]
    config, weights = open_weights(out)
    sx = torch.as_tensor(family.normalize_x(x), dtype=torch.float32)
    sy = torch.as_tensor(family.normalize_y(y), dtype=torch.float32)[:, None]
    ref = adapt_weights(config, weights, sx, sy, 2, family=family)
    assert [line.split("support MSE ")[1] for line in printed] == [f"{v:.6g}" for v in ref.support_losses]


class _ImageFamily:
    """A stand-in image family (5-way, 1×12×12) for exporting conv nets."""

    kind, normalization, input_shape, input_dim, output_dim = "classification", None, (1, 12, 12), 144, 5

    def sample(self, n_tasks, shots, query, generator):
        from core.tasks import TaskBatch

        def part(k):
            return torch.randn(n_tasks, 5 * k, 1, 12, 12, generator=generator), torch.randint(5, (n_tasks, 5 * k), generator=generator)

        return TaskBatch(*part(shots), *part(query))


@pytest.mark.parametrize("norm", ["batch", "per_step"])
def test_conv_export_round_trips_through_the_readme_code(tmp_path, monkeypatch, norm):
    """safetensors and .pt of a conv net load into the README's plain module and give the engine's outputs."""
    import core.tasks
    from core.config import ExperimentConfig, FamilySpec
    from core.trained.export import export_weights, readme_sidecar
    from core.nets.models import build_net

    family = _ImageFamily()
    monkeypatch.setattr(core.tasks, "build_family", lambda spec: family)
    config = (ExperimentConfig(family=FamilySpec("blobs")).replace("model", name="conv4", conv_channels=4, conv_depth=2,
                                                                    batch_norm=norm, downsample="stride")
              .replace("algorithm", name="mamlpp", inner_steps=2))
    net = build_net(config.model, 144, 5, family.input_shape, inner_steps=2)
    params = net.init(torch.Generator().manual_seed(0))
    params = {n: p + 0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) for n, p in params.items()}
    x = torch.randn(7, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    expected = net.forward(params, x)
    weights = {f"model.{n}": p for n, p in params.items()}
    for fmt in ("safetensors", "pt"):
        out = export_weights((config, weights), fmt, tmp_path / f"w.{fmt}", family=family)
        code = readme_sidecar(out).read_text().split("Load it (plain Python, no MAML Explorer needed):", 1)[1]
        code = code.replace("torch.zeros(5, 1, 12, 12)", "x")
        scope = {"x": x}
        monkeypatch.chdir(tmp_path)
        exec(compile(code, "readme", "exec"), scope)
        assert torch.allclose(scope["y"], expected, atol=1e-5), fmt


# -- ONNX of a conv net ------------------------------------------------------------------------
GLYPHS = {"image_size": 12, "n_alphabets": 6, "characters": 4, "examples": 6, "n_way": 3}


def glyph_trainer(downsample: str, norm: str) -> MetaTrainer:
    """A few meta-iterations of a small conv-4 on 3-way glyphs (per-step batch norm comes with MAML++)."""
    from core.config import AlgorithmSpec, ExperimentConfig, ModelSpec, TrainSpec

    config = ExperimentConfig(family=FamilySpec("glyphs", GLYPHS),
                              model=ModelSpec(name="conv4", conv_channels=4, conv_depth=2, downsample=downsample,
                                              batch_norm=norm),
                              algorithm=AlgorithmSpec("mamlpp" if norm == "per_step" else "maml", inner_steps=2,
                                                      inner_lr=0.4),
                              train=TrainSpec(meta_batch=2, shots=1, query=2, iterations=3, device="cpu"))
    trainer = MetaTrainer(config)
    for _ in range(3):
        trainer.step()
    return trainer


def onnx_dims(value) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


@pytest.mark.skipif(not HAS_ONNX_EXPORT, reason="onnx/onnxscript not installed: bash install.sh --test installs them")
@pytest.mark.parametrize("downsample, norm", [("max", "batch"), ("stride", "batch"), ("stride", "per_step")])
def test_conv_onnx_is_valid_and_computes_what_the_engine_does(tmp_path, downsample, norm):
    """A conv-4 run exported as ONNX passes the checker, declares ``x [batch, 1, 12, 12]`` -> ``y [batch, 3]``,
    carries the settings and image statistics, and gives the engine's logits (onnx's reference evaluator;
    onnxruntime too where installed) for any batch, batch norm on that batch's statistics; adapted
    weights (per-step batch norm moved on to the last step's set) give the adaptation's query loss."""
    import onnx
    from onnx.reference import ReferenceEvaluator

    trainer = glyph_trainer(downsample, norm)
    save_run(tmp_path / "run", trainer.config, trainer.weights(), [])
    out = export_weights(tmp_path / "run", "onnx", tmp_path / "w.onnx")
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    assert [onnx_dims(i) for i in model.graph.input] == [["batch", 1, 12, 12]]
    assert [i.name for i in model.graph.input] == ["x"] and [o.name for o in model.graph.output] == ["y"]
    assert [onnx_dims(o) for o in model.graph.output] == [["batch", 3]]
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["maml_explorer.config"])["model"]["batch_norm"] == norm
    assert json.loads(props["maml_explorer.normalization"])["channel_mean"] == trainer.family.normalization["channel_mean"]
    assert "[batch, 1, 12, 12]" in readme_sidecar(out).read_text()
    runners = [lambda m, x: ReferenceEvaluator(m).run(None, {"x": x})[0]]
    if HAS_ORT:
        import onnxruntime

        runners.append(lambda m, x: onnxruntime.InferenceSession(
            m.SerializeToString(), providers=["CPUExecutionProvider"]).run(["y"], {"x": x})[0])
    for n in (1, 4, 9):   # the batch axis is dynamic
        x = torch.randn(n, 1, 12, 12, generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            expected = trainer.net.forward(trainer.params, x[None])[0]
        for run in runners:
            y = run(model, x.numpy())
            assert y.shape == (n, 3)
            torch.testing.assert_close(torch.from_numpy(y), expected, atol=1e-4, rtol=1e-4)

    batch = held_out_tasks(trainer.family, 1, 2, 3, seed=0)
    config, weights = open_weights(tmp_path / "run")
    r = adapt_weights(config, weights, batch.support_x[0], batch.support_y[0], 2, family=trainer.family,
                      query_x=batch.query_x[0], query_y=batch.query_y[0])
    adapted = onnx.load(export_weights((config, r.weights), "onnx", tmp_path / "adapted.onnx", family=trainer.family))
    logits = torch.from_numpy(runners[0](adapted, batch.query_x[0].numpy()))
    loss = torch.nn.functional.cross_entropy(logits, batch.query_y[0]).item()
    assert loss == pytest.approx(r.query_losses[-1], rel=1e-4, abs=1e-5)
    assert (logits.argmax(-1) == batch.query_y[0]).double().mean().item() == pytest.approx(r.query_accuracy[-1])
