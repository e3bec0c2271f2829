"""Meta-iterations per second of ``maml-gui train`` with 1 process and with ``--nproc N``, side by side.

Two settings: the sinusoid at its defaults (a meta-step of about a millisecond: bound by per-op
and exchange overhead, so more processes may not gain) and the Omniglot conv-4 setting of
``maml-gui bench --conv`` (64 channels, 28×28 grey glyphs, 5-way 1-shot, 15 query per class,
meta-batch 32, one second-order step: bound by arithmetic, so it should gain), and meta-RL on
2-D navigation at the MAML paper's settings (MAML-TRPO, 20 tasks × 20 trajectories of 100 steps;
each process samples and adapts its share of the tasks). Each run is a
real ``train`` (sampling, exchange, Adam step, metrics) for ``--seconds``; the rate is the
median meta-iteration time of rank 0 (``metrics.csv``; the first iterations left out), and the
summary line's average for comparison.

    python scripts/bench_distributed.py                 # N = 1 vs 2, both settings
    python scripts/bench_distributed.py --nproc 4 --seconds 60 --meta-batch 8
    python scripts/bench_distributed.py --quick         # a sanity check: 5 s per run
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETTINGS = {
    "sinusoid (defaults)": [],
    "conv-4 Omniglot setting": ["--family", "glyphs", "--model", "conv4", "--conv-channels", "64", "--conv-depth", "4",
                                "--downsample", "stride", "--shots", "1", "--query", "15", "--inner-steps", "1",
                                "--inner-lr", "0.4"],
    "nav2d MAML-TRPO (paper)": ["--family", "nav2d"],
}


def measure(flags: list[str], nproc: int, seconds: float, folder: Path) -> dict:
    from core.storage.metrics import read_metrics

    out = folder / f"run-{len(list(folder.iterdir()))}"
    command = [sys.executable, "-m", "core.cli", "train", *flags, "--iterations", "100000000", "--time-limit",
               str(seconds), "--save-every", "0", "--out", str(out), *(["--nproc", str(nproc)] if nproc > 1 else [])]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 300)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    found = re.search(r"(\d+) iterations in ([\d.]+) s", done.stdout)
    steps = read_metrics(out)[:, 3]
    steady = steps[min(3, len(steps) - 1):]
    return {"iterations": int(found.group(1)), "average_it_s": int(found.group(1)) / float(found.group(2)),
            "median_it_s": 1.0 / float(np.median(steady))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="training time of each run")
    parser.add_argument("--meta-batch", type=int, default=32, help="of the conv-4 setting (the sinusoid keeps 25)")
    parser.add_argument("--quick", action="store_true", help="5 s per run: a sanity check, not a measurement")
    parser.add_argument("--only", default="", help="the settings whose name contains this (e.g. nav2d)")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 5.0
    SETTINGS["conv-4 Omniglot setting"] += ["--meta-batch", str(args.meta_batch)]
    print(f"{os.cpu_count()} cores; {args.seconds:g} s per run; it/s = median meta-iteration of rank 0 "
          f"(average over the whole run in brackets)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in SETTINGS.items():
            if args.only not in name:
                continue
            one = measure(flags, 1, args.seconds, Path(tmp))
            many = measure(flags, args.nproc, args.seconds, Path(tmp))
            print(f"{name:>26}: 1 process {one['median_it_s']:8.2f} it/s ({one['average_it_s']:.2f}), "
                  f"{args.nproc} processes {many['median_it_s']:8.2f} it/s ({many['average_it_s']:.2f}), "
                  f"speedup {many['median_it_s'] / one['median_it_s']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
