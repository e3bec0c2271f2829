"""How fast a large long-format CSV becomes tasks, next to pandas' bare ``read_csv`` of the same file.

    python scripts/bench_csv.py [--file big.csv] [--tasks 20000] [--repeat 3]

Writes (once, seeded) a file of ``task,x1,x2,x3,y`` with 73-75 rows per task (20,000 tasks: about
55 MB, 1.48 M rows) unless ``--file`` names one, then measures, each in a fresh interpreter so that
peaks do not mix: pandas' bare read (and a minimal numpy grouping of its result into tasks), our
reader (fast path, and the precise reader forced), and what ``maml-gui train --csv`` does before
its first iteration (parse the flags, build the family, the trainer, sample one batch). Peak memory
is the child's peak RSS minus its RSS after its imports (pandas, torch and ``core`` are imported
in every child first, so import costs are not counted); times are the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def generate(path: Path, n_tasks: int = 20_000, seed: int = 0) -> Path:
    """``task,x1,x2,x3,y``: text task ids, 73-75 rows per task, 4-decimal values; the same bytes for a seed."""
    rng = np.random.default_rng(seed)
    task = np.repeat(np.arange(n_tasks), rng.integers(73, 76, n_tasks))
    x = rng.uniform(-5, 5, (len(task), 3))
    y = rng.uniform(0.1, 5, n_tasks)[task] * np.sin(x[:, 0]) + 0.1 * x[:, 1] - 0.2 * x[:, 2]
    names = np.char.add("t", np.char.zfill(np.arange(n_tasks).astype(str), 5))
    with open(path, "w", newline="") as f:
        f.write("task,x1,x2,x3,y\n")
        for start in range(0, len(task), 100_000):
            rows = slice(start, start + 100_000)
            cells = [names[task[rows]]] + [np.char.mod("%.4f", v) for v in (*x[rows].T, y[rows])]
            lines = cells[0]
            for column in cells[1:]:
                lines = np.char.add(np.char.add(lines, ","), column)
            f.write("\n".join(lines.tolist()) + "\n")
    return path


_CHILD = r"""
import json, resource, sys, time, tempfile
import numpy as np, pandas as pd, torch
import core.cli.main, core.data.csv_reader, core.data.csv_fast, core.training.trainer, core.tasks
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
path, what = sys.argv[1], sys.argv[2]
base = rss()
start = time.perf_counter()
if what == "pandas":
    df = pd.read_csv(path)
elif what == "pandas+group":
    df = pd.read_csv(path)
    codes, names = pd.factorize(df["task"])
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes))[:-1]
    xs = np.split(df[["x1", "x2", "x3"]].to_numpy()[order], bounds)
    ys = np.split(df["y"].to_numpy()[order], bounds)
elif what in ("reader", "precise reader"):
    if what == "precise reader":
        core.data.csv_fast.FAST_MIN_BYTES = float("inf")
    table = core.data.csv_reader.read_csv(path)
    values = [table.numeric(c) for c in table.columns[1:]], table.labels(table.columns[0])
elif what == "train --csv":
    args = core.cli.main.build_parser().parse_args(["train", "--csv", path, "--task-column", "task", "--target", "y",
                                               "--out", tempfile.mkdtemp()])
    trainer = core.training.trainer.MetaTrainer(core.cli.main.config_from_args(args))
    batch = trainer.family.sample(25, 10, 10, torch.Generator().manual_seed(0))
print(json.dumps({"seconds": time.perf_counter() - start, "peak_mb": rss() - base}))
"""


def measure(path: Path, what: str, repeat: int) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", _CHILD, str(path), what], cwd=ROOT, capture_output=True,
                             text=True, check=False)
        if out.returncode:
            raise SystemExit(f"{what} failed:\n{out.stderr}")
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"seconds": statistics.median(r["seconds"] for r in runs),
            "peak_mb": statistics.median(r["peak_mb"] for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, help="an existing long-format CSV with columns task,x1,x2,x3,y")
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-precise", action="store_true", help="do not time the precise reader (slow)")
    args = parser.parse_args()
    path = args.file or generate(Path(tempfile.gettempdir()) / f"maml_bench_{args.tasks}.csv", args.tasks)
    size_mb = path.stat().st_size / 1e6
    print(f"{path.name}: {size_mb:.1f} MB, {sum(1 for _ in open(path, 'rb')) - 1:,} rows")
    order = ["pandas", "pandas+group", "reader", "train --csv"] + ([] if args.skip_precise else ["precise reader"])
    results = {what: measure(path, what, args.repeat) for what in order}
    bare, grouped = results["pandas"], results["pandas+group"]
    print(f"{'measurement':<16}{'time s':>9}{'peak MB':>10}{'time / pandas':>15}{'time / pandas+group':>21}"
          f"{'peak / file':>13}")
    for what, r in results.items():
        print(f"{what:<16}{r['seconds']:>9.2f}{r['peak_mb']:>10.0f}{r['seconds'] / bare['seconds']:>15.2f}"
              f"{r['seconds'] / grouped['seconds']:>21.2f}{r['peak_mb'] / size_mb:>13.2f}")
    total = results["train --csv"]
    print(f"train --csv until the first batch: {total['seconds'] / grouped['seconds']:.2f}x pandas read + numpy "
          f"grouping (target <= 3), peak {total['peak_mb']:.0f} MB = {total['peak_mb'] / size_mb:.2f}x the file "
          "(target <= 3)")


if __name__ == "__main__":
    main()
