"""The command line for meta-RL runs: train, resume exactly, evaluate --json, one-line errors (exit 2)."""

import json

import pytest

from core.cli.main import main
from core.storage.metrics import metrics_kind, read_metrics

TINY = ["--family", "nav2d", "--horizon", "8", "--meta-batch", "3", "--rollouts", "3", "--seed", "4"]


def test_train_writes_a_run_folder_with_returns_and_resumes_exactly(tmp_path, capsys):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(["train", *TINY, "--iterations", "4", "--out", str(whole)]) == 0
    assert "final meta-return" in capsys.readouterr().out
    config = json.loads((whole / "config.json").read_text())
    assert config["family"]["name"] == "nav2d" and config["rl"]["outer"] == "trpo"
    assert config["model"]["hidden"] == [100, 100] and config["algorithm"]["inner_lr"] == 0.1
    assert metrics_kind(whole) == "rl"
    header = (whole / "metrics.csv").read_text().splitlines()[0]
    assert header == "iteration,meta_return,grad_norm,seconds,step_return_0,step_return_1,wall_time"
    assert main(["train", *TINY, "--iterations", "2", "--out", str(split)]) == 0
    assert main(["train", "--resume", str(split), "--iterations", "4"]) == 0
    a, b = read_metrics(whole), read_metrics(split)
    assert a.shape == b.shape == (4, 7)   # iteration, return, grad norm, seconds, 2 step returns, wall time
    assert (a[:, [0, 1, 4, 5]] == b[:, [0, 1, 4, 5]]).all()   # the same returns, the seconds aside


def test_evaluate_json_reports_returns_with_baselines(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--iterations", "2", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--steps", "0,1,2", "--tasks", "4", "--rollouts", "3",
                 "--baseline-iterations", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metric"] == "return" and data["tasks"] == 4 and data["rollouts"] == 3 and data["steps"] == [0, 1, 2]
    assert set(data["mean"]) == set(data["ci95"]) == {"0", "1", "2"}
    assert set(data["baselines"]) == {"pretrained", "random", "oracle"}
    assert data["baselines"]["pretrained"]["iterations"] == 2 and all(v < 0 for v in data["mean"].values())
    assert len(list((run / "baselines").iterdir())) == 2   # pretrained and oracle, kept for the next evaluate
    assert main(["evaluate", str(run), "--tasks", "2", "--rollouts", "2", "--baselines", "none", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["baselines"] == {}


@pytest.mark.parametrize("flags,says", [
    (["--horizon", "-5"], "--horizon: -5 is outside 1..10000"),
    (["--max-kl", "0"], "--max-kl: 0 is outside (0, 10]"),
    (["--family", "maze9"], "invalid choice: 'maze9'"),
    (["--algorithm", "reptile"], "reptile does not train policies"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, flags, says):
    argv = ["train", "--family", "nav2d", *flags, "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_rl_flags_are_refused_for_supervised_families(tmp_path, capsys):
    assert main(["train", "--family", "sinusoid", "--rollouts", "3", "--out", str(tmp_path / "r")]) == 2
    assert "--rollouts applies to environment families" in capsys.readouterr().err


def test_export_gives_the_action_mean_and_adapt_walks_to_a_given_goal(tmp_path, capsys):
    import torch

    from core.nets.policy import PolicyNet
    from core.trained.weights_io import open_weights

    run = tmp_path / "run"
    assert main(["train", *TINY, "--iterations", "1", "--out", str(run)]) == 0
    config, weights = open_weights(run)
    params = {k[len("model."):]: v for k, v in weights.items()}
    policy = PolicyNet(2, 2, config.model)
    obs = torch.tensor([[0.1, -0.2], [0.0, 0.3], [0.4, 0.4], [0.0, 0.0], [-0.3, 0.1]])
    for fmt in ("safetensors", "pt"):
        out = tmp_path / f"policy.{fmt}"
        assert main(["export", str(run), "--format", fmt, "--out", str(out)]) == 0
        code = (tmp_path / f"policy.{fmt}.README.txt").read_text().split("no MAML Explorer needed):\n\n", 1)[1]
        code = code.replace(f'"policy.{fmt}"', repr(str(out))).replace("torch.zeros(5, 2)", "obs")
        scope = {"obs": obs}
        exec(compile(code, "README", "exec"), scope)
        assert torch.allclose(scope["y"], policy.forward(params, obs), atol=1e-6)
        assert torch.equal(scope["log_std"], params["log_std"])
    capsys.readouterr()
    adapted = tmp_path / "adapted.safetensors"
    assert main(["adapt", str(run), "--goal", "0.3,-0.2", "--steps", "2", "--rollouts", "4",
                 "--out", str(adapted)]) == 0
    said = capsys.readouterr().out
    assert "goal x 0.3, goal y -0.2" in said and "step    2  average return" in said
    new_config, new_weights = open_weights(adapted)
    assert new_config.family.name == "nav2d" and set(new_weights) == set(weights)
    assert not torch.equal(new_weights["model.layers.0.weight"], weights["model.layers.0.weight"])
    assert main(["adapt", str(run), "--goal", "0.3", "--steps", "1", "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "2 numbers (goal x, goal y), got 1" in capsys.readouterr().err


def test_onnx_export_of_a_policy_gives_the_action_mean(tmp_path):
    import importlib.util

    import numpy as np
    import torch

    from core.nets.policy import PolicyNet
    from core.trained.export import missing_onnx_packages
    from core.trained.weights_io import open_weights

    if missing_onnx_packages() or importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnx/onnxscript/onnxruntime not installed: bash install.sh --test installs them")
    import onnxruntime

    run = tmp_path / "run"
    assert main(["train", *TINY, "--iterations", "1", "--out", str(run)]) == 0
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "p.onnx")]) == 0
    config, weights = open_weights(run)
    obs = np.array([[0.1, -0.2], [0.4, 0.4], [0.0, 0.0]], dtype=np.float32)
    session = onnxruntime.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["y"], {"x": obs})[0]
    params = {k[len("model."):]: v for k, v in weights.items()}
    expected = PolicyNet(2, 2, config.model).forward(params, torch.from_numpy(obs))
    assert np.allclose(got, expected.numpy(), atol=1e-5)


def test_evaluate_takes_baseline_runs_trained_by_hand_and_refuses_others(tmp_path, capsys):
    run, pre, oracle = tmp_path / "run", tmp_path / "pre", tmp_path / "oracle"
    assert main(["train", *TINY, "--iterations", "1", "--out", str(run)]) == 0
    assert main(["train", *TINY, "--algorithm", "pretrain", "--iterations", "2", "--out", str(pre)]) == 0
    config = json.loads((pre / "config.json").read_text())
    config["family"]["params"]["observe_goal"] = True
    (tmp_path / "oracle.json").write_text(json.dumps(config))
    assert main(["train", "--config", str(tmp_path / "oracle.json"), "--out", str(oracle)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--tasks", "3", "--rollouts", "2", "--steps", "0,1", "--pretrained", str(pre),
                 "--oracle", str(oracle), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["baselines"]["pretrained"]["iterations"] == 2 and data["baselines"]["oracle"]["iterations"] == 2
    assert not (run / "baselines").exists()   # nothing trained here
    assert main(["evaluate", str(run), "--tasks", "3", "--pretrained", str(oracle), "--json"]) == 2
    assert "is not a pretrained baseline of this run (family.observe_goal differs)" in capsys.readouterr().err


def test_an_evaluation_can_be_cancelled_between_pieces_of_work(tmp_path):
    from core.rl.evaluation import EvaluationCancelled, evaluate_rl
    from core.trained.weights_io import open_weights

    run = tmp_path / "run"
    assert main(["train", *TINY, "--iterations", "1", "--out", str(run)]) == 0
    config, weights = open_weights(run)
    said = []
    with pytest.raises(EvaluationCancelled):
        evaluate_rl(config, weights, tasks=2, rollouts=2, steps=(0, 1), baseline_iterations=3,
                    progress=said.append, should_stop=lambda: len(said) >= 3)
    assert said == ["scoring the meta-learned policy", "training the pretrained baseline (3 iterations)",
                    "scoring the pretrained baseline"]   # stopped before the random baseline


def test_evaluate_defaults_to_the_papers_figure_for_rl_runs(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--iterations", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--rollouts", "2", "--baselines", "random", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["steps"] == [0, 1, 2, 3] and data["tasks"] == 40 and data["inner_lr"] == [0.1, 0.05, 0.05]
