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
RL_STEPS, RL_TASKS = (0, 1, 2, 3), 40     # evaluate's defaults for a meta-RL run: the MAML paper's figure


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
    given = {name: _given(getattr(args, name), config, name) for name in ("pretrained", "oracle")
             if getattr(args, name, None) is not None}
    given_flags = set(getattr(args, "argv", None) or ())
    steps = args.steps if "--steps" in given_flags else RL_STEPS        # the paper's figure, not 0,1,10
    tasks = args.tasks if "--tasks" in given_flags else RL_TASKS
    result = evaluate_rl(config, weights, tasks=tasks, rollouts=args.rollouts or 40, steps=steps,
                         seed=args.seed, baselines=names, baseline_iterations=iterations, given=given,
                         cached=(lambda name, cfg, n: _cached(folder, cfg, name, n, args.seed)) if folder else None,
                         keep=(lambda name, cfg, n, w: _keep(folder, cfg, name, n, args.seed, w)) if folder else None,
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


def _given(path: Path, config, name: str):
    """A baseline run given on the command line: its weights and iterations, checked to be the baseline of
    ``config`` (trained with pretrain on the same family, with the oracle's view for the oracle)."""
    from core.rl.evaluation import baseline_config
    from core.storage.checkpoint import load_run, read_weights_at, WEIGHTS_FILE

    expected = baseline_config(config, name)
    if expected is None:
        raise UsageError(f"maml-gui evaluate: the {config.family.name} family has no oracle baseline")
    stored, weights = load_run(path)
    iteration = read_weights_at(path / WEIGHTS_FILE if path.is_dir() else path)[2]
    differ = [c for c in stored.changes(expected) if c.startswith(("family.", "model.", "algorithm.name"))]
    if differ:
        raise UsageError(f"maml-gui evaluate: --{name} {path} is not a {name} baseline of this run "
                         f"({', '.join(differ[:3])} differ{'s' if len(differ) == 1 else ''}); train it with "
                         f"--algorithm pretrain{' on the family with observe_goal' if name == 'oracle' else ''}")
    return weights, iteration


def _cached(folder: Path, expected, name: str, iterations: int, seed: int):
    """A baseline trained before with these settings (its stored config must be ``expected``), else None."""
    from core.storage.checkpoint import read_weights
    from core.errors import CheckpointError, ConfigError

    path = _file(folder, name, iterations, seed)
    if not path.is_file():
        return None
    try:
        stored, tensors = read_weights(path)
    except (CheckpointError, ConfigError):
        return None
    return tensors if not stored.changes(expected.replace("train", iterations=stored.train.iterations)) else None


def _keep(folder: Path, config, name: str, iterations: int, seed: int, weights) -> None:
    from core.storage.atomic import StorageError, atomic_write
    from core.storage.checkpoint import weights_bytes

    try:
        folder.mkdir(exist_ok=True)
        atomic_write(_file(folder, name, iterations, seed), weights_bytes(config, weights))
    except (OSError, StorageError) as exc:
        print(f"maml-gui: warning: cannot keep the {name} baseline in {folder}: {exc}", file=sys.stderr)
