"""The command line's grammar: every subcommand's flags, checked while they are parsed, and the
experiment they describe (:func:`config_from_args`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from core import ranges
from core.cli.csv_options import add_csv_arguments, family_spec_from_args
from core.cli.export import add_adapt_parser, add_export_parser
from core.cli.model_options import add_trust_argument
from core.cli.image_options import add_episode_arguments, add_evaluate_arguments, apply_episode_arguments
from core.cli.rl_options import add_rl_arguments, add_rl_evaluate_arguments, apply_rl_arguments
from core.built import Built
from core.config import ALGORITHMS, COMPILE_MODES, DEVICES, ExperimentConfig, FamilySpec, default_rl_config
from core.envs import ENV_FAMILIES, is_env_family
from core.storage.schemas import read_config_file
from core.tasks import FAMILIES, TaskFamily


class UsageError(Exception):
    """Bad arguments: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage, so the caller prints one line and exits 2.
    No prefix matching (here and in every sub-parser, which argparse builds from this class): it
    would silently read ``sweep --seed 7`` as ``--seeds 7``. ``commands`` maps each subcommand to
    its parser (argparse itself has no getter for them)."""

    commands: dict[str, argparse.ArgumentParser]

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):  # noqa: D401 - argparse override
        raise UsageError(f"{self.prog}: {message} (see --help)")


SAVE_EVERY = 60.0            # seconds between checkpoints of `train`, by default
TRAIN_EPILOG = """\
crash safety:
  A checkpoint (weights, training state and metrics, all of one iteration) is written atomically
  every --save-every seconds and whenever the run stops (completed, --time-limit, SIGTERM, Ctrl-C,
  divergence). After a crash, `kill -9` or a power cut, `maml-gui train --resume OUT` continues
  from the last checkpoint; metrics rows past it are dropped, never duplicated. A full disk or a
  read-only folder leaves the previous checkpoint intact: training goes on with a warning, and a
  final save that fails exits 1.

one writer per folder:
  OUT/.lock names the process writing OUT (pid, host, start time, command). A second train,
  train --resume or train --force on OUT exits 2 naming it. A lock left by a process that is gone
  (same host) is taken over with a warning; one from another host is kept: delete it by hand only
  when sure that run is over.

several processes (data parallel, torch.distributed):
  --nproc N starts N processes on this machine. Each takes its share of every meta-batch (the very
  tasks one process would sample), the meta-gradients are summed over the processes with one
  all-reduce (gloo on the CPU; nccl on CUDA, one GPU per process) and every process takes the same
  Adam step, so the run follows the one-process run up to rounding; metrics are the global ones.
  Rank 0 alone writes OUT. Threads per process: the cores divided by N. The same command runs under
  torchrun (without --nproc), e.g. on one machine or on two (run on each, R = 0 or 1):
    torchrun --nproc-per-node 2 -m core.cli train --out OUT ...
    torchrun --nnodes 2 --node-rank R --nproc-per-node 4 --master-addr HOST0 --master-port 29500 \
        -m core.cli train --out OUT ...
  (OUT is written on the machine of rank 0, node 0; CSV or image data must exist on every machine.)
  A process that dies stops the run within seconds, one that hangs within --rank-timeout; rank 0
  saves the last completed iteration. --resume OUT continues with any number of processes.
"""


def _steps(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(s) for s in text.split(",") if s.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid step list {text!r}; expected e.g. 0,1,10") from None
    if not steps or min(steps) < 0 or max(steps) > 1000:
        raise argparse.ArgumentTypeError(f"invalid step list {text!r}; steps must be in 0..1000")
    return steps


def train_value_reader(train: argparse.ArgumentParser):
    """``read(key, text)``: ``text`` as ``train`` reads its option ``key`` (so ``0.001`` and ``1e-3`` are
    one value), raising ValueError or ArgumentTypeError when train would refuse it: a sweep's grid
    values are checked by the very types and choices of the options they stand for."""
    actions = {a.dest: a for a in train._actions}   # noqa: SLF001 - argparse has no getter

    def read(key: str, text: str):
        action = actions[key]
        value = action.type(text) if action.type else text
        if action.choices is not None and value not in action.choices:
            raise ValueError(f"choose from {', '.join(map(str, action.choices))}")
        return value
    return read


def build_parser() -> _Parser:
    parser = _Parser(prog="maml-gui", description="MAML Explorer: meta-learning you can watch. "
                     "With no command, opens the window.")
    sub = parser.add_subparsers(dest="command", metavar="{train,sweep,evaluate,bench,export,adapt}")

    train = sub.add_parser("train", help="meta-train headless and save a run folder", epilog=TRAIN_EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--config", type=Path, help="experiment JSON (as saved by the window); flags override it")
    train.add_argument("--family", choices=sorted(FAMILIES) + sorted(ENV_FAMILIES),
                       help="a task family, or an environment family for meta-RL (nav2d, …)")
    train.add_argument("--algorithm", choices=ALGORITHMS)
    train.add_argument("--inner-steps", type=ranges.integer(1, 100))
    train.add_argument("--inner-lr", type=ranges.number(0, 100))
    train.add_argument("--meta-lr", type=ranges.number(0, 10))
    train.add_argument("--meta-batch", type=ranges.integer(1, 4096))
    train.add_argument("--shots", type=ranges.integer(1, ranges.MAX_POINTS),
                       help="support examples per task (per class for N-way episodes)")
    train.add_argument("--query", type=ranges.integer(1, ranges.MAX_POINTS),
                       help="query examples per task (per class for N-way episodes)")
    train.add_argument("--iterations", type=ranges.integer(1, ranges.MAX_ITERATIONS))
    train.add_argument("--time-limit", type=float, metavar="SECONDS", help="stop cleanly and save after this long")
    train.add_argument("--seed", type=ranges.seed, help=f"0..{ranges.MAX_SEED}")
    train.add_argument("--device", choices=DEVICES)
    train.add_argument("--compile", nargs="?", const="on", choices=COMPILE_MODES,
                       help="run the meta-step through torch.compile: about 2x the iterations/s, after a first "
                       "start of 20-30 s (a few seconds once the kernels are cached); 'auto' compiles runs that "
                       "would take over a minute; without a C++ compiler the run stays eager (default: off)")
    add_csv_arguments(train)
    add_episode_arguments(train)
    add_rl_arguments(train)
    train.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a saved run from its last "
                       "checkpoint, also after a crash, kill -9 or power cut (its settings; --iterations sets the new total)")
    train.add_argument("--out", type=Path, metavar="RUN_DIR", help="where to save (default with --resume: the same "
                       "folder); an existing run folder is refused unless --force or --resume")
    add_trust_argument(train)
    train.add_argument("--force", action="store_true", help="replace the run already in --out (its settings, "
                       "weights, training state and metrics are deleted first)")
    train.add_argument("--nproc", type=int, metavar="N", help="meta-train with N processes on this machine, each on "
                       "1/N of every meta-batch (see 'several processes' below; default 1)")
    train.add_argument("--rank-timeout", type=float, metavar="SECONDS", help="with several processes: how long one "
                       "waits for the others at a gradient exchange before the run stops as hung (default "
                       "120)")
    train.add_argument("--save-every", type=float, default=SAVE_EVERY, metavar="SECONDS",
                       help=f"save a checkpoint this often (default {SAVE_EVERY:g}; stretched when saving would take "
                       "over 1%% of the time; 0: only when the run stops)")

    ev = sub.add_parser("evaluate", help="adapt a trained run to held-out tasks and report the loss per step")
    ev.add_argument("run", type=Path, metavar="FILE_OR_RUN_DIR")
    ev.add_argument("--tasks", type=ranges.integer(1, ranges.MAX_EVAL_TASKS), default=100,
                    help="held-out tasks (default 100; 40 for a meta-RL run)")
    ev.add_argument("--shots", type=ranges.integer(1, ranges.MAX_POINTS),
                    help="support points per task, per class for N-way episodes (default: the run's)")
    ev.add_argument("--query", type=ranges.integer(1, ranges.MAX_POINTS),
                    help="query points per task for scoring (default 100, or what the smallest held-out CSV task allows)")
    ev.add_argument("--steps", type=_steps, default=(0, 1, 10), help="adaptation steps to report, e.g. 0,1,10 "
                    "(default 0,1,10; 0,1,2,3 for a meta-RL run)")
    ev.add_argument("--seed", type=ranges.seed, default=0)
    ev.add_argument("--device", choices=DEVICES, default="cpu")
    ev.add_argument("--json", action="store_true")
    add_trust_argument(ev)
    add_evaluate_arguments(ev)
    add_rl_evaluate_arguments(ev)

    add_export_parser(sub)
    add_adapt_parser(sub)
    add_sweep_parser(sub)

    bench = sub.add_parser("bench", help="engine speed vs a per-task autograd loop (or --gui / --memory)")
    bench.add_argument("--algorithm", choices=("maml", "fomaml", "metasgd"), default="maml")
    bench.add_argument("--inner-steps", type=ranges.integer(1, 100), default=1)
    bench.add_argument("--meta-batch", type=ranges.integer(1, 4096), default=25)
    bench.add_argument("--rounds", type=ranges.integer(1, 1000), default=8)
    bench.add_argument("--device", choices=DEVICES, default="cpu")
    bench.add_argument("--gui", action="store_true", help="iterations/s with the window open vs headless, and UI latency")
    bench.add_argument("--seconds", type=ranges.number(0, 3600), default=10.0, help="duration of each half of --gui")
    bench.add_argument("--images", action="store_true", help="with --gui: an image run (glyphs 28×28, conv-4, first "
                       "order, meta-batch 8) with its held-out snapshots and baseline, instead of the sinusoid")
    bench.add_argument("--memory", type=ranges.integer(1, 10**7), metavar="ITERATIONS",
                       help="report RSS over a long run instead")
    bench.add_argument("--compile", action="store_true", help="eager vs compiled meta-steps side by side, and the "
                       "compile time with a cold and a warm kernel cache; with --conv, the conv-4 meta-gradient at "
                       "meta-batch 2 (compiling takes minutes, and more with more tasks)")
    bench.add_argument("--conv", action="store_true",
                       help="the Omniglot setting (conv-4, 64 channels, 28×28, 5-way 1-shot, 15 query per class, "
                            "meta-batch 32, second order): engine vs per-task loop, and peak memory per meta-gradient "
                            "(second order, first order, ANIL); then 600-episode evaluation (28×28, max-pool, "
                            "steps 0,1,5,10) and first-order training, grouped vs per-task convolutions; "
                            "--meta-batch and --rounds apply")
    bench.add_argument("--rl", action="store_true", help="meta-RL: 2-D navigation rollouts (env steps/s) and "
                       "MAML-TRPO meta-iterations/s, vectorised vs a per-task, per-trajectory loop, in the MAML paper's "
                       "setting (20 tasks x 20 trajectories x 100 steps)")
    bench.add_argument("--quick", action="store_true", help="with --conv or --rl: small sizes, for a sanity check")
    bench.add_argument("--json", action="store_true")
    parser.commands = dict(sub.choices)
    return parser


def config_from_args(args, base: ExperimentConfig | None = None, known: Built | None = None) -> ExperimentConfig:
    """The experiment the flags describe, over ``--config`` (else ``base``, else the defaults);
    ``known``: what ``base`` built, whose family is not built again when the flags keep it."""
    return experiment_from_args(args, base, known)[0]


def experiment_from_args(args, base: ExperimentConfig | None = None,
                         known: Built | None = None) -> tuple[ExperimentConfig, TaskFamily]:
    """:func:`config_from_args` and the family its validation built, to build the experiment with."""
    if args.config is not None:
        config = read_config_file(args.config, validate=False)   # validated below, with the flags applied
    else:
        config = base or ExperimentConfig()
    if args.family is not None and args.family != config.family.name:
        if is_env_family(args.family):   # the MAML paper's RL settings, not the supervised defaults
            base_rl = config if config.is_rl else default_rl_config(args.family)
            config = ExperimentConfig(FamilySpec(args.family), base_rl.model, base_rl.algorithm, base_rl.train,
                                      base_rl.rl)
        else:
            config = ExperimentConfig(FamilySpec(args.family), config.model, config.algorithm, config.train)
    csv_spec = family_spec_from_args(args)
    if csv_spec is not None:
        config = ExperimentConfig(csv_spec, config.model, config.algorithm, config.train)
    config = apply_episode_arguments(args, config)
    config = apply_rl_arguments(args, config)
    alg = {k: v for k, v in (("name", args.algorithm), ("inner_steps", args.inner_steps), ("inner_lr", args.inner_lr))
           if v is not None}
    train = {k: getattr(args, k) for k in ("meta_lr", "meta_batch", "shots", "query", "iterations", "seed", "device",
                                           "compile") if getattr(args, k, None) is not None}
    config = config.replace("algorithm", **alg).replace("train", **train)
    family = config.validate(known.family if known is not None and known.config.family == config.family else None)
    return config, family


SWEEP_HELP = """the same training over several seeds (and a grid of settings) in parallel processes; writes
summary.json / summary.csv: per setting and adaptation step, the mean over seeds with a 95%% confidence interval"""
SWEEP_EPILOG = """Any other option is passed to every run's `maml-gui train` (e.g. --family, --algorithm,
--iterations). Runs live in OUT/runs/<setting>-seed<k> (ordinary run folders: the window can open or
follow them); logs in OUT/logs. Ctrl-C or SIGTERM stops every run after it saves; the same command
again skips finished runs and resumes the others from their last checkpoint."""


def add_sweep_parser(subparsers) -> argparse.ArgumentParser:
    sw = subparsers.add_parser("sweep", help=SWEEP_HELP, description=SWEEP_HELP, epilog=SWEEP_EPILOG)
    sw.add_argument("--seeds", required=True, help="seeds to run, e.g. 0-4 or 0,3,7")
    sw.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                    help="a setting to vary (repeatable; every combination runs), e.g. inner_lr=0.01,0.05")
    sw.add_argument("--parallel", type=int, default=1, metavar="P",
                    help="runs at once, each with cores/P threads (default 1)")
    sw.add_argument("--out", type=Path, required=True, metavar="DIR")
    sw.add_argument("--tasks", type=int, default=100, help="held-out tasks each run is evaluated on (default 100)")
    sw.add_argument("--steps", default=None, help="adaptation steps to summarise (default 0,1,10; meta-RL runs: "
                                                  "0,1,2,3, the MAML paper's figure)")
    return sw
