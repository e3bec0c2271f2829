"""Few-shot classification with the command line, as a Markdown table: MAML vs the pretrain
baseline (pre-trained on every meta-train class with a class head, then fine-tuned from a zero
N-way head; see core/algorithms/pretrain.py) and a fresh network, on 5-way 1-shot episodes of
meta-test classes.

    python scripts/fewshot_table.py [--minutes 10] [--out runs/fewshot]

Two data sets, both available offline: the built-in procedural glyphs (conv-4, the MAML paper's
Omniglot network: 64 channels, stride-2 convolutions, inner lr 0.4, one inner step) and a labelled
CSV of 4-D rows this script writes (an MLP). MAML and pretrain train side by side, one CPU thread
each, for the same wall-clock budget, so the baseline gets comparable training; then both are
evaluated on the same 600 meta-test episodes after 0, 1 and 5 steps (accuracy, 95% CI).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

GLYPHS = ["--family", "glyphs", "--ways", "5", "--shots", "1", "--query", "15", "--model", "conv4",
          "--downsample", "stride", "--inner-lr", "0.4", "--meta-batch", "8"]


def rows_csv(path: Path, classes: int = 100, per_class: int = 20, seed: int = 0) -> None:
    """Classes whose 4-D rows lie on their own random line segment plus noise: a class is
    recognised from one example only if the network learned what makes these classes differ."""
    rng = np.random.default_rng(seed)
    lines = ["x1,x2,x3,x4,label"]
    for c in range(classes):
        start, direction = rng.normal(0, 2, 4), rng.normal(0, 1, 4)
        for _ in range(per_class):
            x = start + rng.uniform(-1, 1) * direction + rng.normal(0, 0.3, 4)
            lines.append(",".join(f"{v:.4f}" for v in x) + f",class{c:03d}")
    path.write_text("\n".join(lines) + "\n")


def cli(*args: str, threads: int | None = None) -> subprocess.Popen:
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    return subprocess.Popen([sys.executable, "-m", "core.cli", *args], stdout=subprocess.PIPE, text=True, env=env)


def train_pair(name: str, data: list[str], seconds: float, out: Path) -> dict[str, str]:
    procs = {alg: cli("train", *data, "--algorithm", alg, "--time-limit", str(seconds), "--iterations", "10000000",
                      "--out", str(out / f"{name}-{alg}"), "--force", threads=1) for alg in ("maml", "pretrain")}
    summaries = {}
    for alg, proc in procs.items():
        summaries[alg] = proc.communicate()[0].strip()
        print(summaries[alg], flush=True)
    return summaries


def evaluate(run: Path, tasks: int) -> dict:
    proc = cli("evaluate", str(run), "--steps", "0,1,5", "--tasks", str(tasks), "--query", "15", "--json")
    return json.loads(proc.communicate()[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of each run (default 10)")
    parser.add_argument("--rows-minutes", type=float, default=2.0, help="the same for the labelled rows")
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--out", type=Path, default=Path("runs/fewshot"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows_file = args.out / "rows.csv"
    rows_csv(rows_file)
    sets = {"glyphs (conv-4)": ("glyphs", GLYPHS, args.minutes * 60),
            "labelled rows (MLP)": ("rows", ["--csv", str(rows_file), "--target", "label", "--classification",
                                             "--ways", "5", "--shots", "1", "--query", "15", "--meta-batch", "16",
                                             "--inner-lr", "0.4"], args.rows_minutes * 60)}
    table = []
    for title, (name, data, seconds) in sets.items():
        summaries = train_pair(name, data, seconds, args.out)
        for alg in ("maml", "pretrain"):
            result = evaluate(args.out / f"{name}-{alg}", args.tasks)
            iterations = summaries[alg].split(": ", 1)[1].split(" iterations")[0]
            table.append((title, f"{alg} ({iterations} iterations)", result["mean"], result["ci95"]))
        table.append((title, "scratch (fresh network)", result["scratch"]["mean"], result["scratch"]["ci95"]))
    print(f"\n5-way 1-shot, {args.tasks} meta-test episodes, 15 query images per class, accuracy ± 95% CI\n")
    print("| data | model | 0 steps | 1 step | 5 steps |")
    print("|---|---|---|---|---|")
    for title, label, mean, ci in table:
        print(f"| {title} | {label} | " + " | ".join(f"{mean[s]:.3f} ± {ci[s]:.3f}" for s in ("0", "1", "5")) + " |")


if __name__ == "__main__":
    main()
