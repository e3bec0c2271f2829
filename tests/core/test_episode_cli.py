"""The few-shot classification command line: train on an image folder or labelled rows, evaluate on
the run's meta-test classes or on another data set, adapt to a folder of labelled images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.cli.main import main as cli


def image_folder(root, classes: int, per_class: int = 6, seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(classes):
        (root / f"class{c:02d}").mkdir(parents=True)
        pattern = rng.integers(0, 255, (4, 4))
        for i in range(per_class):
            noisy = np.clip(pattern + rng.normal(0, 20, (4, 4)), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).resize((12, 12)).save(root / f"class{c:02d}" / f"{i}.png")
    return root


TINY = ["--shots", "1", "--query", "2", "--meta-batch", "2", "--iterations", "6", "--conv-channels", "4",
        "--conv-depth", "2", "--image-size", "8"]


def test_an_image_folder_trains_conv4_and_evaluates_on_its_own_and_other_classes(tmp_path, capsys):
    data = image_folder(tmp_path / "data", 15)
    assert cli(["train", "--images", str(data), "--ways", "3", *TINY, "--out", str(tmp_path / "run")]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["name"] == "conv4" and config["family"]["params"]["n_way"] == 3   # images get conv4
    capsys.readouterr()
    assert cli(["evaluate", str(tmp_path / "run"), "--tasks", "4", "--steps", "0,1", "--json"]) == 0
    own = json.loads(capsys.readouterr().out)
    assert own["metric"] == "accuracy" and set(own["mean"]) == {"0", "1"}
    assert all(0.0 <= v <= 1.0 for v in own["mean"].values())
    other = image_folder(tmp_path / "other", 4, seed=1)   # all 4 classes of another set (cross-domain)
    assert cli(["evaluate", str(tmp_path / "run"), "--images", str(other), "--tasks", "4", "--steps", "0,1",
                "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks"] == 4
    assert cli(["evaluate", str(tmp_path / "run"), "--ways", "4"]) == 2
    assert "--ways must be between 2 and 3" in capsys.readouterr().err

    new_task = image_folder(tmp_path / "new", 3, seed=2)
    assert cli(["adapt", str(tmp_path / "run"), "--images", str(new_task), "--shots", "2", "--steps", "2",
                "--out", str(tmp_path / "adapted.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "6 support images, 12 query images" in out and "query accuracy" in out
    assert (tmp_path / "adapted.safetensors").is_file()
    assert cli(["adapt", str(tmp_path / "run"), "--images", str(data), "--steps", "1", "--out",
                str(tmp_path / "x.safetensors")]) == 2
    assert "holds 15 classes; the network tells apart 2 to 3" in capsys.readouterr().err


def test_labelled_rows_become_episodes_over_their_labels(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = ["a,b,species"] + [f"{c + rng.normal():.3f},{-c + rng.normal():.3f},kind{c}" for c in range(12)
                              for _ in range(8)]
    (tmp_path / "rows.csv").write_text("\n".join(rows) + "\n")
    assert cli(["train", "--csv", str(tmp_path / "rows.csv"), "--target", "species", "--classification", "--ways", "2",
                "--shots", "1", "--query", "3", "--iterations", "20", "--out", str(tmp_path / "run")]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["family"]["name"] == "labelled_csv" and config["family"]["params"]["target"] == "species"
    capsys.readouterr()
    assert cli(["evaluate", str(tmp_path / "run"), "--csv", str(tmp_path / "rows.csv"), "--tasks", "5", "--steps",
                "0,1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metric"] == "accuracy"


@pytest.mark.parametrize("argv, says", [
    (["--family", "sinusoid", "--ways", "3"], "--ways applies to classification families, not sinusoid"),
    (["--family", "linear", "--image-size", "8"], "--image-size applies to image families"),
    (["--family", "glyphs", "--channels", "3"], "the glyphs family is grey"),
    (["--csv", "ROWS", "--classification"], "needs --target LABEL"),
    (["--family", "glyphs", "--images", "DATA"], "give one of --family, --csv or --images"),
])
def test_bad_few_shot_options_are_one_line(tmp_path, capsys, argv, says):
    (tmp_path / "rows.csv").write_text("a,label\n1,x\n2,y\n")
    argv = [str(tmp_path / "rows.csv") if a == "ROWS" else str(tmp_path) if a == "DATA" else a for a in argv]
    assert cli(["train", *argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_file_with_few_labels_trains_on_episodes_over_held_out_rows(tmp_path, capsys):
    from ..csv_fixtures import penguins_csv

    path = str(penguins_csv(tmp_path))
    base = ["train", "--csv", path, "--target", "species", "--classification", "--shots", "2", "--query", "3",
            "--iterations", "3", "--meta-batch", "2"]
    assert cli([*base, "--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert "penguins.csv has 3 labels of 'species'" in err and "split by rows" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "refused").exists()
    assert cli([*base, "--split-by", "rows", "--out", str(tmp_path / "run")]) == 0
    params = json.loads((tmp_path / "run" / "config.json").read_text())["family"]["params"]
    assert params["split_rows"] is True and params["n_way"] == 3   # as many ways as labels
    capsys.readouterr()
    assert cli(["evaluate", str(tmp_path / "run"), "--tasks", "4", "--steps", "0,1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metric"] == "accuracy"
    assert cli(["train", "--csv", path, "--task-column", "species", "--split-by", "rows", "--out",
                str(tmp_path / "x")]) == 2
    assert "--split-by applies to one labelled file" in capsys.readouterr().err


def test_evaluate_on_another_folder_says_what_it_skipped(tmp_path, capsys):
    """`train` reports unreadable files and classes; `evaluate --images` must say the same, not drop them."""
    data = image_folder(tmp_path / "data", 15)
    assert cli(["train", "--images", str(data), "--ways", "3", *TINY, "--iterations", "2",
                "--out", str(tmp_path / "run")]) == 0
    other = image_folder(tmp_path / "other", 3, seed=1)
    (other / "class00" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 8)
    (other / "class09").mkdir()
    (other / "class09" / "empty.png").write_bytes(b"")
    capsys.readouterr()
    assert cli(["evaluate", str(tmp_path / "run"), "--images", str(other), "--tasks", "2", "--steps", "0",
                "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["tasks"] == 2   # stdout stays one JSON object
    assert "maml-gui: warning: skipped 2 of 20 image files that could not be read: class00/broken.png" in captured.err
    assert "class09/empty.png (the file is empty)" in captured.err
    assert "left out 1 class folder(s) with no readable image: class09" in captured.err
