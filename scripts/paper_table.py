"""Reproduce the MAML paper's sinusoid comparison with the command line, as a Markdown table.

    python scripts/paper_table.py [--time-limit 120] [--out runs/paper]

Trains MAML, Meta-SGD and the pretrain baseline (paper settings: 1-40-40-1 ReLU, K=10,
meta-batch 25, inner lr 0.01, Adam 0.001, one inner step) for the same wall-clock budget each,
then evaluates 5-, 10- and 20-shot adaptation on the same 600 held-out tasks.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

PAPER_5_SHOT = {"maml": {1: 0.67, 5: 0.38, 10: 0.35}, "pretrain": {1: 2.41, 5: 2.23, 10: 2.19}}


def cli(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "core.cli", *args], check=True, capture_output=True, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time-limit", default="120")
    parser.add_argument("--out", type=Path, default=Path("runs/paper"))
    parser.add_argument("--algorithms", default="maml,metasgd,pretrain")
    parser.add_argument("--evaluate-only", action="store_true", help="score runs already in --out")
    args = parser.parse_args()
    rows = []
    for algorithm in args.algorithms.split(","):
        run = args.out / algorithm
        if not args.evaluate_only:
            summary = cli("train", "--algorithm", algorithm, "--time-limit", args.time_limit, "--out", str(run),
                          "--force").strip()   # a new table replaces the runs of the last one
            print(summary, flush=True)
        for shots in (5, 10, 20):
            result = json.loads(cli("evaluate", str(run), "--shots", str(shots), "--steps", "0,1,5,10",
                                    "--tasks", "600", "--json"))
            rows.append((algorithm, shots, result))
    print("\n| algorithm | K | step 0 | step 1 | step 5 | step 10 | paper (K=5) 1 / 5 / 10 |")
    print("|---|---|---|---|---|---|---|")
    for algorithm, shots, r in rows:
        cells = [f"diverged on {r['diverged'][s]} tasks" if r["mean"][s] is None else
                 f"{r['mean'][s]:.3f} ± {r['ci95'][s]:.3f}" for s in ("0", "1", "5", "10")]
        paper = PAPER_5_SHOT.get(algorithm) if shots == 5 else None
        ref = " / ".join(f"{paper[s]:.2f}" for s in (1, 5, 10)) if paper else ""
        print(f"| {algorithm} | {shots} | {' | '.join(cells)} | {ref} |")
    scratch = rows[0][2]["scratch"]
    print(f"| scratch (fresh net) | {rows[0][1]} | " + " | ".join(f"{scratch['mean'][s]:.3f}" for s in ("0", "1", "5", "10")) + " | |")


if __name__ == "__main__":
    main()
