"""How MAML's held-out error falls with meta-iterations at the paper's settings.

    python scripts/convergence.py [--iterations 200000] [--every 25000] [--seed 0]

Trains one run (1-40-40-1 ReLU, K=10+10, meta-batch 25, inner lr 0.01, one step, Adam 0.001,
constant rate) and evaluates it every ``--every`` iterations on the same 600 held-out tasks
``maml-gui evaluate --tasks 600`` uses. It answers "how many iterations does a target need?",
independently of how fast the machine runs them.
"""

from __future__ import annotations

import argparse
import time

from core.config import ExperimentConfig
from core.trained.evaluation import evaluate
from core.training.trainer import MetaTrainer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--every", type=int, default=25_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shots", type=int, default=10)
    args = parser.parse_args()
    trainer = MetaTrainer(ExperimentConfig().replace("train", seed=args.seed))
    print("| iterations | minutes | train meta-loss (last 5k) | MSE after 0 / 1 / 10 steps (600 tasks) |")
    print("|---|---|---|---|")
    start, losses = time.perf_counter(), []
    for i in range(1, args.iterations + 1):
        losses.append(trainer.step().meta_loss)
        if i % args.every == 0:
            r = evaluate(trainer.algorithm, trainer.params, trainer.rates, trainer.family, tasks=600,
                         shots=args.shots, steps=(0, 1, 10), seed=0).to_dict()
            recent = losses[-5000:]
            cells = " / ".join("diverged" if r["mean"][s] is None else f"{r['mean'][s]:.3f}" for s in ("0", "1", "10"))
            print(f"| {i} | {(time.perf_counter() - start) / 60:.1f} | {sum(recent) / len(recent):.4f} | {cells} |",
                  flush=True)


if __name__ == "__main__":
    main()
