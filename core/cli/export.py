"""``maml-gui export`` and ``maml-gui adapt``: the command-line side of export, open and adapt.

``core/cli/parser.py`` registers the sub-commands' flags from here. Errors are :class:`MamlError`,
which ``core.cli.main`` prints as one line (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core import ranges
from core.trained.adapt import MAX_STEPS
from core.trained.export import FORMATS, SUFFIXES, export_weights
from core.trained.weights_io import config_sidecar, readme_sidecar


def add_export_parser(subparsers) -> None:
    ex = subparsers.add_parser("export", help="write a run's learned weights as safetensors, pt or onnx")
    ex.add_argument("run", type=Path, metavar="RUN_DIR", help="a run folder or a weights file (.safetensors, .pt)")
    ex.add_argument("--format", choices=FORMATS, default="safetensors",
                    help="safetensors (default: weights, learned inner rates, settings), pt (plain state_dict), "
                         "onnx (inference only; needs pip install 'maml-gui[onnx]')")
    ex.add_argument("--out", type=Path, required=True, metavar="FILE")
    ex.add_argument("--force", action="store_true", help="overwrite FILE and its sidecars if they exist")
    ex.add_argument("--no-readme", action="store_true", help="skip the FILE.README.txt loading instructions")


def run_export(args) -> int:
    from core.storage.checkpoint import folder_notes
    from core.trained.weights_io import open_weights_built

    built, weights = open_weights_built(args.run)
    for note in folder_notes(args.run, built):
        print(f"maml-gui: warning: {note}", file=sys.stderr)
    out = export_weights((built, weights), args.format, args.out, force=args.force, readme=not args.no_readme)
    extra = [p for p in ((config_sidecar(out) if args.format == "pt" else None),
                         (None if args.no_readme else readme_sidecar(out))) if p is not None]
    note = f" (+ {', '.join(p.name for p in extra)})" if extra else ""
    suffix = SUFFIXES[args.format]
    hint = "" if out.suffix == suffix else f"; note: {args.format} files usually end in {suffix}"
    print(f"exported {args.format} to {out}{note}{hint}")
    return 0


# -- adapt ------------------------------------------------------------------------------------
def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= MAX_STEPS:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..{MAX_STEPS}")
    return value


def add_adapt_parser(subparsers) -> None:
    ad = subparsers.add_parser("adapt", help="fine-tune learned weights on a new task from a CSV file",
                               description="Fine-tune learned weights on a new task from a CSV file. With --shots K, "
                                           "the support rows are drawn at random (seeded by --seed), not the "
                                           "first K: in a file sorted by x those would leave only extrapolation "
                                           "to score.")
    ad.add_argument("source", type=Path, metavar="FILE_OR_RUN_DIR", help="a run folder, .safetensors or .pt file")
    ad.add_argument("--csv", type=Path, metavar="TASK.csv", help="the new task's labeled rows")
    ad.add_argument("--images", type=Path, metavar="DIR",
                    help="the new task as labelled images: one folder per class (at most the run's N classes); "
                         "with --shots K, K images per class adapt and the others score")
    ad.add_argument("--goal", "--task", dest="task", metavar="X,Y",
                    help="a meta-RL run: the task to adapt to, e.g. the goal of 2-D navigation (--goal 0.3,-0.2)")
    ad.add_argument("--rollouts", type=ranges.integer(1, 100_000),
                    help="a meta-RL run: trajectories per adaptation step (default: the run's)")
    ad.add_argument("--target", help="the column to predict (with --csv)")
    ad.add_argument("--features", nargs="+", metavar="COLUMN",
                    help="input columns by name (default: the run's, else every numeric column but the target)")
    ad.add_argument("--steps", type=_count, required=True, help="adaptation steps")
    ad.add_argument("--shots", type=_count, metavar="K",
                    help="adapt on K rows (with --images: K images per class) drawn at random (see --seed) and "
                         "score the others (default: all of them)")
    ad.add_argument("--seed", type=ranges.seed, default=0,
                    help="which K rows (or images) are drawn as the support set (default 0; the window's adapt "
                         "view draws the same ones for the same seed)")
    ad.add_argument("--lr", type=ranges.number(0, 100),
                    help="one fixed inner learning rate instead of the run's (learned) rates")
    ad.add_argument("--config", type=Path, help="the run's config.json, for a .pt file without its sidecar")
    ad.add_argument("--out", type=Path, required=True, metavar="FILE", help="where to export the adapted weights")
    ad.add_argument("--format", choices=FORMATS, help="default: from FILE's suffix, else safetensors")
    ad.add_argument("--force", action="store_true", help="overwrite FILE and its sidecars if they exist")


def run_adapt(args) -> int:
    from core.trained.adapt import rows_text, support_rows, task_from_csv
    from core.trained.loaded_model import adapt_weights
    from core.errors import ConfigError
    from core.storage.checkpoint import folder_notes
    from core.trained.weights_io import open_weights_built

    built, weights = open_weights_built(args.source, args.config)
    for note in folder_notes(args.source, built):
        print(f"maml-gui: warning: {note}", file=sys.stderr)
    config, family = built.config, built.family
    if config.is_rl:
        return _adapt_policy(args, built, weights)
    if args.task is not None or args.rollouts is not None:
        raise ConfigError("task", f"--goal/--task and --rollouts apply to meta-RL runs; {args.source} is a "
                                  f"{config.family.name} run: give --csv TASK.csv or --images DIR")
    if (args.csv is None) == (args.images is None):
        raise ConfigError("csv", "give the new task as --csv TASK.csv (with --target) or --images DIR")
    if args.images is not None:
        return _adapt_images(args, built, weights)
    if getattr(family, "input_shape", None) is not None:
        raise ConfigError("csv", f"{args.source} learned images ({config.family.name}); adapt it to a new task with "
                                 "--images DIR, not --csv")
    if args.target is None:
        raise ConfigError("target", "--csv needs --target COLUMN (the column to predict)")
    task = task_from_csv(args.csv, args.target, args.features, classification=family.kind == "classification",
                         input_dim=family.input_dim, family=family)
    n = task.x.shape[0]
    k = n if args.shots is None else args.shots
    if not 1 <= k <= n:
        raise ConfigError("shots", f"{args.csv.name} has {n} rows; --shots must be between 1 and {n}")
    support, rest = support_rows(n, k, args.seed)
    query = {} if k == n else {"query_x": task.x[rest], "query_y": task.y[rest]}
    sx, sy = (task.x, task.y) if k == n else (task.x[support], task.y[support])
    result = adapt_weights(built, weights, sx, sy, args.steps, args.lr, **query)
    loss = "cross-entropy" if family.kind == "classification" else "MSE"
    scaled = "; losses in standardized units, as in training" if family.normalization else ""
    print(f"adapting {config.algorithm.name} weights to {args.csv.name}: {k} support rows"
          f"{f', {n - k} query rows' if query else ''}, inputs {', '.join(task.features)}{scaled}")
    if query:
        print(f"support rows (drawn at random, --seed {args.seed}): {rows_text(support)}")
    for s, value in enumerate(result.support_losses):
        scored = f"  query {loss} {result.query_losses[s]:.6g}" if result.query_losses else ""
        scored += f"  query accuracy {result.query_accuracy[s]:.4f}" if result.query_accuracy else ""
        print(f"step {s:>4}  support {loss} {value:.6g}{scored}")
    return _export_adapted(args, built, result)


def _export_adapted(args, built, result) -> int:
    fmt = args.format or next((f for f, suffix in SUFFIXES.items() if args.out.suffix == suffix), "safetensors")
    out = export_weights((built, result.weights), fmt, args.out, force=args.force)
    print(f"adapted weights exported as {fmt} to {out}")
    return 0


def _adapt_images(args, built, weights) -> int:
    """A new N-way task from a folder of class folders (:func:`core.trained.adapt.image_folder_task`, which
    the window's adapt view uses too), normalised as the run's training images."""
    from core.trained.adapt import image_folder_task
    from core.trained.loaded_model import adapt_weights

    config = built.config
    task = image_folder_task(args.images, built.family, args.shots, args.seed)
    query = {} if task.query_x is None else {"query_x": task.query_x, "query_y": task.query_y}
    result = adapt_weights(built, weights, task.support_x, task.support_y, args.steps, args.lr, **query)
    names = ", ".join(f"{i}={name}" for i, name in enumerate(task.class_names))
    scored = f", {len(task.query_x)} query images" if query else ""
    print(f"adapting {config.algorithm.name} weights to {args.images.name}: {len(task.support_x)} support images"
          f"{scored}; labels {names}")
    if query:
        print(f"support images: {args.shots} per class, drawn at random (--seed {args.seed})")
    for warning in task.notes:
        print(f"maml-gui: warning: {warning}")
    for s, value in enumerate(result.support_losses):
        scored = f"  query accuracy {result.query_accuracy[s]:.4f}" if result.query_accuracy else ""
        print(f"step {s:>4}  support cross-entropy {value:.6g}{scored}")
    return _export_adapted(args, built, result)


def _adapt_policy(args, built, weights) -> int:
    """A meta-RL run adapted to the task of ``--goal`` (``--task``) with its inner steps, then exported."""
    from core.errors import ConfigError
    from core.rl.adapt import adapt_to_task

    config, family = built.config, built.family
    if args.csv is not None or args.images is not None:
        raise ConfigError("task", f"{args.source} is a meta-RL run ({config.family.name}): give the task as "
                                  "--goal X,Y (or --task …), not --csv or --images")
    if args.task is None:
        raise ConfigError("task", f"give the task to adapt to as --goal (or --task) with {family.task_dim} numbers: "
                                  f"{', '.join(family.task_names)}")
    task = family.parse_task(args.task)
    rollouts = args.rollouts or config.rl.rollouts
    result = adapt_to_task(config, weights, task, args.steps, rollouts, args.seed, args.lr)
    where = ", ".join(f"{n} {v:g}" for n, v in zip(family.task_names, task[0].tolist()))
    print(f"adapting {config.algorithm.name} policy to {where}: {rollouts} trajectories per step")
    for s, value in enumerate(result.returns):
        print(f"step {s:>4}  average return {value:.4f}")
    return _export_adapted(args, built, result)
