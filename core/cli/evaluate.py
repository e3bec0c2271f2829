"""``maml-gui evaluate``: held-out scores of a trained run, after 0, 1, 10 … adaptation steps."""

from __future__ import annotations

import json
import sys

from core.cli.parser import UsageError


# -- evaluate ---------------------------------------------------------------------------------
def run(args) -> int:
    from core.storage.checkpoint import folder_notes
    from core.cli.image_options import evaluation_family
    from core.trained.evaluation import evaluate
    from core.training.trainer import MetaTrainer
    from core.trained.weights_io import open_weights

    for name in ("tasks", "query"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UsageError(f"maml-gui evaluate: --{name} must be at least 1")
    if args.shots is not None and args.shots < 1:
        raise UsageError("maml-gui evaluate: --shots must be at least 1")
    config, weights = open_weights(args.run)
    for note in folder_notes(args.run, config):
        print(f"maml-gui: warning: {note}", file=sys.stderr)
    trainer = MetaTrainer(config.replace("train", device=args.device))
    trainer.load_weights(weights)
    shots = args.shots or config.train.shots
    family = evaluation_family(args, config, trainer.family)
    query = args.query or family.held_out_query(shots, 100)   # CSV: what every meta-test task can give
    _check_evaluate_memory(family, args.tasks, shots, query, args.seed, trainer.device)
    result = evaluate(trainer.algorithm, trainer.params, trainer.rates, family, tasks=args.tasks, shots=shots,
                      steps=args.steps, query=query, seed=args.seed, device=trainer.device)
    for warning in family.warnings:   # skipped files and classes: said wherever a folder is read, as train does
        print(f"maml-gui: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(f"{config.algorithm.name} on {config.family.name}: {result.metric} on {result.tasks} held-out tasks, "
          f"{shots} shots")
    print(f"{'steps':>6}  {'meta-learned':>22}  {'scratch':>22}")
    for s in result.steps:
        print(f"{s:>6}  {_cell(result.model, s)}  {_cell(result.scratch, s)}")
    return 0


DRAW_PEAK = 3   # drawing tasks holds about this many copies of them at its peak (inputs, temporaries, targets)


def _check_evaluate_memory(family, tasks: int, shots: int, query: int, seed: int, device) -> None:
    """The held-out tasks are drawn at once (only their adaptation is chunked): a draw that cannot
    fit is refused before it is made, sized from one task drawn alike."""
    from core.trained.evaluation import held_out_tasks
    from core.training.memory import SHARE, available_bytes

    available = available_bytes(device)
    one = held_out_tasks(family, 1, shots, query, seed, device)
    per_task = DRAW_PEAK * sum(t.nbytes for t in (one.support_x, one.support_y, one.query_x, one.query_y))
    if available is not None and per_task * tasks > SHARE * available:
        raise UsageError(f"maml-gui evaluate: {tasks:,} held-out tasks of {shots} shots and {query} query points need "
                         f"about {per_task * tasks / 2**30:.1f} GiB but only {available / 2**30:.1f} GiB is free; use "
                         f"--tasks {max(1, int(SHARE * available // per_task)):,} or fewer, or fewer --shots / --query")


def _cell(summary, step: int) -> str:
    if summary.diverged.get(step):
        return f"{'diverged on ' + str(summary.diverged[step]) + ' task(s)':>22}"
    return f"{summary.mean[step]:>12.4f} ± {summary.ci95[step]:<7.4f}"
