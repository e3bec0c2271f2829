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
    from core.training.memory import draw_problem
    from core.training.trainer import MetaTrainer
    from core.trained.weights_io import open_weights_built

    built, weights = open_weights_built(args.run)
    config = built.config
    for note in folder_notes(args.run, built):
        print(f"maml-gui: warning: {note}", file=sys.stderr)
    if config.is_rl:
        from core.cli.rl_evaluate import run_rl

        return run_rl(args, config, weights)
    for flag in ("rollouts", "baseline_iterations"):
        if getattr(args, flag, None) is not None:
            raise UsageError(f"maml-gui evaluate: --{flag.replace('_', '-')} applies to meta-RL runs; "
                             f"{args.run} is a {config.family.name} run")
    trainer = MetaTrainer(built.with_config(config.replace("train", device=args.device)))
    trainer.load_weights(weights)
    shots = args.shots or config.train.shots
    family = evaluation_family(args, config, trainer.family)
    query = args.query or family.held_out_query(shots, 100)   # CSV: what every meta-test task can give
    tight = draw_problem(family, args.tasks, shots, query, args.seed, trainer.device)
    if tight:
        raise UsageError(f"maml-gui evaluate: {tight}")
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


def _cell(summary, step: int) -> str:
    if summary.diverged.get(step):
        return f"{'diverged on ' + str(summary.diverged[step]) + ' task(s)':>22}"
    return f"{summary.mean[step]:>12.4f} ± {summary.ci95[step]:<7.4f}"
