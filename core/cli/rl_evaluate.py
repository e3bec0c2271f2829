"""``maml-gui evaluate`` for a meta-RL run: the average return after each number of inner steps on
held-out tasks, beside the pretrained, random and oracle baselines (trained ones kept in RUN/baselines/)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.parser import UsageError
from core.cli.rl_options import baseline_names

BASELINE_DIR = "baselines"
MAX_DEFAULT_BASELINE_ITERATIONS = 500


def run_rl(args, config, weights) -> int:
    from core.rl.evaluation import evaluate_rl

    for flag in ("shots", "query", "images", "csv", "ways"):
        if getattr(args, flag, None) is not None:
            raise UsageError(f"maml-gui evaluate: --{flag} applies to supervised runs; {args.run} is a meta-RL run "
                             "(use --tasks, --rollouts, --steps)")
    try:
        names = baseline_names(args.baselines)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"maml-gui evaluate: argument --baselines: {exc}") from None
    iterations = args.baseline_iterations or _run_iterations(args.run, config)
    folder = Path(args.run) / BASELINE_DIR if Path(args.run).is_dir() else None
    quiet = args.json or not sys.stderr.isatty()
    result = evaluate_rl(config, weights, tasks=args.tasks, rollouts=args.rollouts or 40, steps=args.steps,
                         seed=args.seed, baselines=names, baseline_iterations=iterations,
                         cached=(lambda name, n: _cached(folder, config, name, n, args.seed)) if folder else None,
                         keep=(lambda name, n, w: _keep(folder, config, name, n, args.seed, w)) if folder else None,
                         progress=None if quiet else (lambda text: print(f"maml-gui: {text}", file=sys.stderr)))
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(f"{config.algorithm.name} on {config.family.name}: average return on {result.tasks} held-out tasks, "
          f"{result.rollouts} trajectories per step (inner lr {', '.join(f'{x:g}' for x in result.inner_lrs)})")
    columns = ["meta-learned", *result.baselines]
    print(f"{'steps':>6}  " + "  ".join(f"{c:>20}" for c in columns))
    for s in result.steps:
        cells = [result.model, *result.baselines.values()]
        print(f"{s:>6}  " + "  ".join(f"{c.mean[s]:>11.2f} ± {c.ci95[s]:<6.2f}" for c in cells))
    return 0


def _run_iterations(run, config) -> int:
    from core.storage.checkpoint import load_training_state

    try:
        done = int(load_training_state(run)[1].get("iteration", "0"))
    except Exception:   # a weights file, or no training state: the run's planned length
        done = config.train.iterations
    return max(1, min(done or config.train.iterations, MAX_DEFAULT_BASELINE_ITERATIONS))


def _file(folder: Path, name: str, iterations: int, seed: int) -> Path:
    return folder / f"{name}-{iterations}it-seed{seed}.safetensors"


def _cached(folder: Path, config, name: str, iterations: int, seed: int):
    """A baseline trained before with these settings (its stored config must match the run's), else None."""
    from core.storage.checkpoint import read_weights
    from core.errors import CheckpointError, ConfigError

    path = _file(folder, name, iterations, seed)
    if not path.is_file():
        return None
    try:
        stored, tensors = read_weights(path)
    except (CheckpointError, ConfigError):
        return None
    expected = _baseline_config(config, name)
    return tensors if not stored.changes(expected) else None


def _keep(folder: Path, config, name: str, iterations: int, seed: int, weights) -> None:
    from core.storage.atomic import StorageError, atomic_write
    from core.storage.checkpoint import weights_bytes

    if name == "oracle":   # its policy sees the task too: its shapes are not the run's
        return
    try:
        folder.mkdir(exist_ok=True)
        atomic_write(_file(folder, name, iterations, seed), weights_bytes(_baseline_config(config, name), weights))
    except (OSError, StorageError) as exc:
        print(f"maml-gui: warning: cannot keep the {name} baseline in {folder}: {exc}", file=sys.stderr)


def _baseline_config(config, name: str):
    return config.replace("algorithm", name="pretrain")
