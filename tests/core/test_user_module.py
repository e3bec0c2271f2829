"""Your own nn.Module (issue 24): module files written here are meta-trained, evaluated, exported and
resumed; the engine's meta-gradient matches a per-task autograd loop; each error is one line, exit 2,
nothing written; a run folder's copy runs only when it is the user's own file (or they trust it)."""

import json
import textwrap

import pytest
import torch

from core.cli.main import main
from core.config import ExperimentConfig, FamilySpec
from core.errors import ConfigError
from core.nets import user_module
from core.trained.export import missing_onnx_packages
from core.training.trainer import MetaTrainer

from ..helpers import engine_and_loop, max_rel_error

MODULES = textwrap.dedent('''
    import torch
    from torch import nn

    class MLP(nn.Module):
        """1-40-40-1 ReLU written by a user."""
        def __init__(self, in_features, out_features, hidden=40):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, out_features))
        def forward(self, x):
            return self.net(x)

    class Conv1D(nn.Module):
        """A small 1-D conv over the feature vector."""
        def __init__(self, in_features, out_features, channels=4):
            super().__init__()
            self.conv = nn.Conv1d(1, channels, 3, padding=1)
            self.out = nn.Linear(channels * in_features, out_features)
        def forward(self, x):
            return self.out(torch.tanh(self.conv(x.unsqueeze(1))).flatten(1))

    class Norm(nn.Module):
        """Batch norm as PyTorch builds it by default: track_running_stats=True."""
        def __init__(self, in_features, out_features):
            super().__init__()
            self.inp = nn.Linear(in_features, 16)
            self.bn = nn.BatchNorm1d(16)
            self.out = nn.Linear(16, out_features)
        def forward(self, x):
            return self.out(torch.relu(self.bn(self.inp(x))))

    class Headed(nn.Module):
        """ANIL adapts `head` only."""
        def __init__(self, in_features, out_features):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(in_features, 16), nn.Tanh())
            self.head = nn.Linear(16, out_features)
        def forward(self, x):
            return self.head(self.body(x))

    def make_mlp(in_features, out_features, width=8):
        """A factory function works as well as a class."""
        return nn.Sequential(nn.Linear(in_features, width), nn.Tanh(), nn.Linear(width, out_features))

    class WrongWidth(nn.Module):
        def __init__(self, in_features, out_features):
            super().__init__()
            self.l = nn.Linear(in_features, 3)
        def forward(self, x):
            return self.l(x)

    class Raises(nn.Module):
        def __init__(self, in_features, out_features):
            super().__init__()
            self.l = nn.Linear(in_features, out_features)
        def forward(self, x):
            raise ValueError("my forward is broken")
''')
RAISE_LINE = MODULES.splitlines().index('        raise ValueError("my forward is broken")') + 1


@pytest.fixture
def module_file(tmp_path):
    path = tmp_path / "mynets.py"
    path.write_text(MODULES)
    return path


def user_config(path, name, family="sinusoid", algorithm="maml", steps=1, args=None, meta_batch=4) -> ExperimentConfig:
    source = user_module.read_source(path)
    user_module.allow(source)
    return (ExperimentConfig(family=FamilySpec(family))
            .replace("model", name="module", module=f"{path}:{name}", module_args=args or {}, module_sha256=source.sha256)
            .replace("algorithm", name=algorithm, inner_steps=steps, inner_lr=0.05)
            .replace("train", meta_batch=meta_batch, shots=5, query=7, seed=0, device="cpu", iterations=6))


@pytest.mark.parametrize("name,family,algorithm,steps", [
    ("MLP", "sinusoid", "maml", 2), ("MLP", "sinusoid", "fomaml", 1), ("MLP", "sinusoid", "metasgd", 1),
    ("Conv1D", "blobs", "maml", 2), ("Norm", "sinusoid", "maml", 2), ("Headed", "sinusoid", "anil", 2),
    ("make_mlp", "polynomial", "maml", 1),
])
def test_meta_gradient_matches_per_task_loop(module_file, name, family, algorithm, steps):
    trainer = MetaTrainer(user_config(module_file, name, family, algorithm, steps))
    adapt = trainer.algorithm.adapt_names if algorithm == "anil" else None
    meta_loss, engine, loss, ref = engine_and_loop(trainer, algorithm, steps, family == "blobs", 0.05, adapt)
    assert abs(float(meta_loss) - float(loss)) <= 1e-5 * max(1.0, abs(float(loss)))
    assert set(engine) == set(ref)
    for n in ref:
        assert max_rel_error(engine[n], ref[n]) <= 1e-5, n
    if algorithm == "anil":
        assert trainer.algorithm.adapt_names == ["head.weight", "head.bias"]


def test_batch_norm_uses_task_statistics_without_running_averages(module_file):
    trainer = MetaTrainer(user_config(module_file, "Norm"))
    assert trainer.net.converted == ["bn"]
    module = trainer.net.module()
    assert module.bn.running_mean is None and not module.bn.track_running_stats
    assert not any("running" in k for k in module.state_dict())
    # each task normalised with its own statistics: moving one point of task 1 moves task 1's other
    # outputs (its statistics changed) and leaves task 0's alone
    x = torch.randn(2, 6, 1)
    before = trainer.net.forward(trainer.params, x)
    x[1, 0] += 5.0
    after = trainer.net.forward(trainer.params, x)
    assert torch.allclose(before[0], after[0]) and not torch.allclose(before[1, 1:], after[1, 1:])


def test_every_algorithm_trains_a_user_module(module_file):
    for algorithm in ("maml", "fomaml", "metasgd", "reptile", "pretrain", "anil"):
        trainer = MetaTrainer(user_config(module_file, "Headed", algorithm=algorithm))
        start = {n: p.detach().clone() for n, p in trainer.params.items()}
        for _ in range(3):
            metrics = trainer.step()
        assert torch.isfinite(torch.tensor(metrics.meta_loss))
        assert any(not torch.equal(start[n], p) for n, p in trainer.params.items()), algorithm


def test_cli_trains_evaluates_exports_and_resumes(module_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model-file", f"{module_file}:MLP", "--model-args", '{"hidden": 12}', "--iterations", "6",
                 "--meta-batch", "3", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())["model"]
    assert config["name"] == "module" and config["module"] == f"{module_file}:MLP"
    assert config["module_args"] == {"hidden": 12}
    assert (out / "model.py").read_bytes() == module_file.read_bytes()
    assert config["module_sha256"] == user_module.sha256_of(module_file)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--tasks", "4", "--steps", "0,1", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["metric"] == "mse"
    assert main(["export", str(out), "--out", str(tmp_path / "w.safetensors")]) == 0
    assert main(["export", str(out), "--format", "pt", "--out", str(tmp_path / "w.pt")]) == 0
    readme = (tmp_path / "w.pt.README.txt").read_text()
    assert "from mynets import MLP" in readme and "MLP(1, 1, hidden=12)" in readme
    # the README's recipe: the user's class with the same arguments takes the state_dict exactly
    namespace = {}
    exec(compile(MODULES, "mynets.py", "exec"), namespace)  # the test's own module text
    plain = namespace["MLP"](1, 1, hidden=12)
    plain.load_state_dict(torch.load(tmp_path / "w.pt", weights_only=True))
    assert main(["train", "--resume", str(out), "--iterations", "9"]) == 0
    assert "9 iterations" in capsys.readouterr().out or (out / "metrics.csv").read_text().count("\n") >= 9


def test_run_folder_copy_is_used_and_a_changed_original_is_reported(module_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model-file", f"{module_file}:MLP", "--iterations", "3", "--meta-batch", "2",
                 "--out", str(out)]) == 0
    module_file.write_text(MODULES.replace("hidden=40", "hidden=41"))   # the original changes
    user_module._ALLOWED.clear()   # a new process: nothing allowed yet
    user_module._NAMESPACES.clear()
    capsys.readouterr()
    assert main(["evaluate", str(out), "--tasks", "3", "--json"]) == 2
    err = capsys.readouterr().err
    assert "has changed since the run was trained" in err and "--trust-model" in err and len(err.splitlines()) == 1
    assert main(["evaluate", str(out), "--tasks", "3", "--json", "--trust-model"]) == 0
    captured = capsys.readouterr()
    assert "the run's own copy" in captured.err and json.loads(captured.out)["tasks"] == 3
    module_file.unlink()   # gone altogether: the same
    user_module._ALLOWED.clear()
    assert main(["export", str(out), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "is gone" in capsys.readouterr().err
    (out / "model.py").write_text(MODULES + "\n# edited\n")   # the run's copy edited: refused even when trusted
    assert main(["evaluate", str(out), "--tasks", "3", "--trust-model"]) == 2
    assert "differs from the file this run was trained with" in capsys.readouterr().err


ERRORS = [
    (["--model-file", "{file}:WrongWidth"], "WrongWidth returns shape [5, 3]", "last layer 1 outputs"),
    (["--model-file", "{file}:Raises"], f"mynets.py:{RAISE_LINE}: Raises.forward raised ValueError", "change Raises"),
    (["--model-file", "{file}:Nope"], "no class or function 'Nope'", "MLP, Conv1D"),
    (["--model-file", "{file}:MLP", "--model-args", '{"hiden": 3}'], "unexpected keyword argument 'hiden'",
     "change the JSON arguments"),
    (["--model-file", "{file}:WrongWidth", "--model-args", '{"width": 3}'], "cannot be called with", "WrongWidth"),
    (["--model-file", "{syntax}:Net"], "broken.py:3: syntax error", "fix the file"),
    (["--model-file", "{file}:MLP", "--algorithm", "anil"], "ANIL adapts only the network's head", "MLP"),
    (["--model", "no_such_package_xyz.nets:Net"], "cannot import it", "install the package"),
]


@pytest.mark.parametrize("flags,said,change", ERRORS)
def test_errors_are_one_line_exit_2_nothing_written(module_file, tmp_path, capsys, flags, said, change):
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\n\nclass Net(torch.nn.Module:\n    pass\n")
    flags = [f.replace("{file}", str(module_file)).replace("{syntax}", str(broken)) for f in flags]
    out = tmp_path / "out"
    assert main(["train", *flags, "--iterations", "2", "--shots", "5", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert said in err and change in err
    assert not out.exists()


def test_names_are_found_without_running_the_file(tmp_path):
    path = tmp_path / "careful.py"
    marker = tmp_path / "ran"
    path.write_text(f"open({str(marker)!r}, 'w').close()\n\nclass Net:\n    def __init__(self, a, b, k=3):\n"
                    "        pass\n\ndef factory(a, b, *, depth=2):\n    pass\n\nclass _Private:\n    pass\n")
    found = user_module.definitions(user_module.read_source(path))
    assert [(d.name, d.kind, d.signature) for d in found] == [("Net", "class", "(a, b, k=3)"),
                                                              ("factory", "function", "(a, b, depth=2)")]
    assert not marker.exists()


def test_an_unallowed_file_never_runs(module_file, tmp_path):
    source = user_module.read_source(module_file)
    spec = ExperimentConfig().replace("model", name="module", module=f"{module_file}:MLP",
                                      module_sha256="0" * 64).model
    with pytest.raises(ConfigError, match="not yet allowed to run here"):
        user_module.build_user_net(spec, 1, 1)
    assert source.sha256 != "0" * 64


def test_image_family_signature(tmp_path):
    path = tmp_path / "imgnet.py"
    path.write_text(textwrap.dedent('''
        import torch
        from torch import nn
        class Tiny(nn.Module):
            def __init__(self, in_channels, ways, image_size, channels=4):
                super().__init__()
                self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
                self.head = nn.Linear(channels * image_size * image_size, ways)
            def forward(self, x):
                return self.head(torch.relu(self.conv(x)).flatten(1))
    '''))
    config = user_config(path, "Tiny", "glyphs", args={"channels": 3}).replace(
        "family", params={"image_size": 8, "n_alphabets": 3, "characters": 4, "examples": 8, "n_way": 3})
    config = ExperimentConfig(FamilySpec("glyphs", {"image_size": 8, "n_alphabets": 3, "characters": 4,
                                                    "examples": 8, "n_way": 3}), config.model, config.algorithm,
                              config.train.__class__(**{**config.train.__dict__, "shots": 1, "query": 2}))
    trainer = MetaTrainer(config)
    assert trainer.params["head.weight"].shape == (3, 3 * 8 * 8)
    probe = user_module.probe(trainer.net, trainer.family, "maml", 1)
    assert probe.output_shape == (3, 3) and probe.input_shape == (3, 1, 8, 8)
    assert torch.isfinite(torch.tensor(trainer.step().meta_loss))


@pytest.mark.skipif(bool(missing_onnx_packages()), reason="onnx/onnxscript not installed: bash install.sh --test installs them")
def test_onnx_export_of_a_user_module(module_file, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--model-file", f"{module_file}:Conv1D", "--family", "blobs", "--iterations", "2",
                 "--meta-batch", "2", "--out", str(out)]) == 0
    assert main(["export", str(out), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    import onnx

    model = onnx.load(str(tmp_path / "m.onnx"))
    assert [i.name for i in model.graph.input] == ["x"]
    assert "your module Conv1D" in (tmp_path / "m.onnx.README.txt").read_text()


def test_an_installed_module_and_a_saved_config(module_file, tmp_path, monkeypatch, capsys):
    """``--model package.module:Name`` imports as Python does (no copy is kept); a ``--config`` naming a
    file runs that file, its current content (a note says when it changed)."""
    package = tmp_path / "site" / "ownnets"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(MODULES)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    out = tmp_path / "installed"
    assert main(["train", "--model", "ownnets.nets:Headed", "--algorithm", "anil", "--iterations", "3",
                 "--meta-batch", "2", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["model"]["module"] == "ownnets.nets:Headed"
    assert not (out / "model.py").exists()
    assert main(["evaluate", str(out), "--tasks", "3", "--json"]) == 0
    config = user_config(module_file, "MLP", args={"hidden": 6})
    (tmp_path / "cfg.json").write_text(config.to_json())
    module_file.write_text(MODULES.replace("hidden=40", "hidden=39"))
    user_module._ALLOWED.clear()
    capsys.readouterr()
    assert main(["train", "--config", str(tmp_path / "cfg.json"), "--iterations", "2", "--out",
                 str(tmp_path / "fromcfg")]) == 0
    assert "changed since the settings were saved" in capsys.readouterr().err
    assert (tmp_path / "fromcfg" / "model.py").read_bytes() == module_file.read_bytes()


def test_an_exported_file_runs_the_original_only_while_it_is_unchanged(module_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model-file", f"{module_file}:MLP", "--iterations", "2", "--meta-batch", "2",
                 "--out", str(out)]) == 0
    exported = tmp_path / "elsewhere" / "w.safetensors"
    exported.parent.mkdir()
    assert main(["export", str(out), "--out", str(exported)]) == 0
    assert main(["export", str(out), "--format", "pt", "--out", str(tmp_path / "elsewhere" / "w.pt")]) == 0
    user_module._ALLOWED.clear()
    capsys.readouterr()
    assert main(["evaluate", str(exported), "--tasks", "2", "--json"]) == 0   # the user's own file, unchanged
    user_module._ALLOWED.clear()
    assert main(["evaluate", str(tmp_path / "elsewhere" / "w.pt"), "--tasks", "2", "--json"]) == 0
    module_file.write_text(MODULES + "\n# changed\n")
    user_module._ALLOWED.clear()
    capsys.readouterr()
    assert main(["evaluate", str(exported), "--tasks", "2"]) == 2
    assert "use the run folder, which keeps its copy" in capsys.readouterr().err
