"""The headless commands of ``maml-gui``: ``train``, ``evaluate``, ``bench``, ``export``, ``adapt``.

A contract other tools call: bad arguments exit 2 with one readable line on stderr, never a
traceback; ``--json`` prints exactly one JSON object on stdout. The ``maml-gui`` command itself
starts in ``maml_gui/launcher.py``, which opens the window when given no command; the engine never
imports the window, so the launcher passes in the one command that needs it (``bench --gui``).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import signal
import sys
import time
from functools import partial
from pathlib import Path
from typing import Callable

from core import ranges
from core.config import ALGORITHMS, COMPILE_MODES, DEVICES, ExperimentConfig, FamilySpec
from core.errors import MamlError, TrainingDiverged


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage, so the caller prints one line and exits 2.
    No prefix matching (here and in every sub-parser, which argparse builds from this class): it
    would silently read ``sweep --seed 7`` as ``--seeds 7``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):  # noqa: D401 - argparse override
        raise UsageError(f"{self.prog}: {message} (see --help)")


SAVE_EVERY = 60.0            # seconds between checkpoints of `train`, by default
PENDING_LIMIT = 64 << 20     # bytes of metrics rows kept in memory while checkpoints keep failing

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


def build_parser() -> _Parser:
    from core.cli.csv_options import add_csv_arguments
    from core.cli.image_options import add_episode_arguments, add_evaluate_arguments
    from core.cli.export import add_adapt_parser, add_export_parser
    from core.cli.sweep import add_sweep_parser
    from core.tasks import FAMILIES

    parser = _Parser(prog="maml-gui", description="MAML Explorer: meta-learning you can watch. "
                     "With no command, opens the window.")
    sub = parser.add_subparsers(dest="command", metavar="{train,sweep,evaluate,bench,export,adapt}")

    train = sub.add_parser("train", help="meta-train headless and save a run folder", epilog=TRAIN_EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--config", type=Path, help="experiment JSON (as saved by the window); flags override it")
    train.add_argument("--family", choices=sorted(FAMILIES))
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
    train.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a saved run from its last "
                       "checkpoint, also after a crash, kill -9 or power cut (its settings; --iterations sets the new total)")
    train.add_argument("--out", type=Path, metavar="RUN_DIR", help="where to save (default with --resume: the same "
                       "folder); an existing run folder is refused unless --force or --resume")
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
    ev.add_argument("--tasks", type=ranges.integer(1, ranges.MAX_EVAL_TASKS), default=100)
    ev.add_argument("--shots", type=ranges.integer(1, ranges.MAX_POINTS),
                    help="support points per task, per class for N-way episodes (default: the run's)")
    ev.add_argument("--query", type=ranges.integer(1, ranges.MAX_POINTS),
                    help="query points per task for scoring (default 100, or what the smallest held-out CSV task allows)")
    ev.add_argument("--steps", type=_steps, default=(0, 1, 10), help="adaptation steps to report, e.g. 0,1,10")
    ev.add_argument("--seed", type=ranges.seed, default=0)
    ev.add_argument("--device", choices=DEVICES, default="cpu")
    ev.add_argument("--json", action="store_true")
    add_evaluate_arguments(ev)

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
    bench.add_argument("--memory", type=ranges.integer(1, 10**7), metavar="ITERATIONS",
                       help="report RSS over a long run instead")
    bench.add_argument("--compile", action="store_true", help="eager vs compiled meta-steps side by side, and the "
                       "compile time with a cold and a warm kernel cache; with --conv, the conv-4 meta-gradient at "
                       "meta-batch 2 (compiling takes minutes, and more with more tasks)")
    bench.add_argument("--conv", action="store_true",
                       help="the Omniglot setting (conv-4, 64 channels, 28×28, 5-way 1-shot, 15 query per class, "
                            "meta-batch 32, second order): engine vs per-task loop, and peak memory per meta-gradient "
                            "(second order, first order, ANIL); --meta-batch and --rounds apply")
    bench.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None, gui_bench: Callable[[float], dict] | None = None) -> int:
    """Run one command; ``gui_bench(seconds) -> dict`` serves ``bench --gui`` (given by the launcher)."""
    argv = sys.argv[1:] if argv is None else argv
    for stream in (sys.stdout, sys.stderr):   # a file name that is not UTF-8 is shown escaped, never a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        if argv and argv[0] == "sweep":   # its unknown options are train's: parsed by the sweep itself
            from core.cli.sweep import run_sweep

            return run_sweep(argv[1:], UsageError)
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise UsageError("maml-gui: choose a command: train, sweep, evaluate, bench, export or adapt "
                             "(with no command at all, the maml-gui launcher opens the window)")
        from core.cli.export import run_adapt, run_export

        args.argv = argv
        commands = {"train": _train, "evaluate": _evaluate, "bench": partial(_bench, gui_bench=gui_bench),
                    "export": run_export, "adapt": run_adapt}
        return commands[args.command](args)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except MamlError as exc:
        print(f"maml-gui: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("maml-gui: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as exc:   # an allocation the memory estimate did not foresee
        if not _out_of_memory(exc):
            raise
        said = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else type(exc).__name__
        print(f"maml-gui: error: out of memory ({said}); use smaller sizes (--tasks, --meta-batch, --shots, --query "
              "or the network)", file=sys.stderr)
        return 1


def _out_of_memory(exc: BaseException) -> bool:
    """torch's CPU allocator raises RuntimeError ("can't allocate memory"), CUDA's OutOfMemoryError."""
    return isinstance(exc, MemoryError) or "can't allocate memory" in str(exc) or "out of memory" in str(exc)


# -- train ------------------------------------------------------------------------------------
def config_from_args(args, base: ExperimentConfig | None = None) -> ExperimentConfig:
    """The experiment the flags describe, over ``--config`` (else ``base``, else the defaults)."""
    from core.cli.csv_options import family_spec_from_args
    from core.cli.image_options import apply_episode_arguments

    if args.config is not None:
        from core.storage.schemas import read_config_file

        config = read_config_file(args.config, validate=False)   # validated below, with the flags applied
    else:
        config = base or ExperimentConfig()
    if args.family is not None and args.family != config.family.name:
        config = ExperimentConfig(FamilySpec(args.family), config.model, config.algorithm, config.train)
    csv_spec = family_spec_from_args(args)
    if csv_spec is not None:
        config = ExperimentConfig(csv_spec, config.model, config.algorithm, config.train)
    config = apply_episode_arguments(args, config)
    alg = {k: v for k, v in (("name", args.algorithm), ("inner_steps", args.inner_steps), ("inner_lr", args.inner_lr))
           if v is not None}
    train = {k: getattr(args, k) for k in ("meta_lr", "meta_batch", "shots", "query", "iterations", "seed", "device",
                                           "compile") if getattr(args, k, None) is not None}
    config = config.replace("algorithm", **alg).replace("train", **train)
    config.validate()
    return config


def _train(args) -> int:
    """Check the flags, then train here, as one rank of several, or launch ``--nproc`` ranks."""
    from core.training.distributed import RANK_TIMEOUT, launch, launched_here, rank_from_env

    if args.time_limit is not None and not (math.isfinite(args.time_limit) and args.time_limit > 0):
        raise UsageError("maml-gui train: --time-limit must be a positive number of seconds")
    if not (math.isfinite(args.save_every) and args.save_every >= 0):
        raise UsageError("maml-gui train: --save-every must be a number of seconds, 0 or more")
    if args.resume is None and args.out is None:
        raise UsageError("maml-gui train: the following arguments are required: --out")
    if args.nproc is not None and not 1 <= args.nproc <= 1024:
        raise UsageError("maml-gui train: --nproc must be a number of processes from 1 to 1024")
    if args.rank_timeout is not None and not (math.isfinite(args.rank_timeout) and args.rank_timeout > 0):
        raise UsageError("maml-gui train: --rank-timeout must be a positive number of seconds")
    ranked = rank_from_env()
    if ranked is not None:
        if args.nproc not in (None, 1) and not launched_here():
            raise UsageError("maml-gui train: --nproc starts its own processes; under torchrun leave it out")
        return _train_rank(args, ranked, args.rank_timeout or RANK_TIMEOUT)
    if args.nproc is not None and args.nproc > 1:
        return launch(list(args.argv), args.nproc, args.out or args.resume, args.rank_timeout or RANK_TIMEOUT)
    return _train_here(args)


def _train_here(args, group=None) -> int:
    """Lock the run folder, then train; the lock is released on every way out (a SIGTERM sets a
    flag from the moment the lock is taken, so even a stop during setup releases it). With a
    group (rank 0 of several), Ctrl-C sets the flag too: the ranks must stop together."""
    from core.storage.checkpoint import remove_leftovers
    from core.storage.lock import RunLock

    out = args.out = args.out or args.resume
    if out.exists() and not out.is_dir():
        raise UsageError(f"maml-gui train: {out} exists and is not a folder")
    continuing = args.resume is not None and out.resolve() == args.resume.resolve()
    stop = {"flag": False, "signal": None, "setup": False}
    previous = _on_stop_signals(stop, group is not None)
    lock = RunLock(out)
    try:
        warning = lock.acquire("maml-gui " + shlex.join(getattr(args, "argv", None) or ["train"]))
        if group is None:   # from here (the lock ours), a SIGTERM during setup ends the command at once
            if stop["flag"]:
                raise _StoppedInSetup(stop["signal"])
            stop["setup"] = True
        if warning:
            print(f"maml-gui: warning: {warning}", file=sys.stderr)
        if not continuing:
            _claim_out(out, args.force)   # checks first, deletes only with --force, and only under the lock
        remove_leftovers(out)
        return _train_locked(args, out, continuing, stop, group)
    except _StoppedInSetup as exc:
        print(f"maml-gui: stopped by {exc} before training started; nothing was written to {out}", file=sys.stderr)
        return _STOP_CODES.get(str(exc), 143)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if lock.held:
            remove_leftovers(out)   # whatever ended the run (Ctrl-C in a save included) leaves no temporaries
        lock.release()


class _StoppedInSetup(BaseException):
    """SIGTERM while the run is still being set up (reading data, building the network): nothing is
    saved yet, so the command ends at once instead of finishing a long read first."""


def _on_stop_signals(stop: dict, ranked: bool) -> dict:
    """SIGTERM (and, for a rank of several, SIGINT) sets ``stop``; returns the handlers replaced.
    While ``stop["setup"]`` holds, SIGTERM ends the command at once (:class:`_StoppedInSetup`)."""
    def request(signum, _frame):
        stop.update(flag=True, signal=signal.Signals(signum).name)
        if stop.get("setup"):
            stop["setup"] = False
            raise _StoppedInSetup(signal.Signals(signum).name)

    signals = (signal.SIGTERM, signal.SIGINT) if ranked else (signal.SIGTERM,)
    return {s: signal.signal(s, request) for s in signals}


def _train_rank(args, ranked, timeout: float) -> int:
    """One process of a run of several: rank 0 trains as a lone run does (lock, checkpoints,
    summary), the others follow it silently."""
    from core.training.distributed import Group

    group = Group.join(ranked, timeout)
    try:
        return _train_here(args, group) if group.rank == 0 else _train_follower(group)
    finally:
        group.close()


def _train_follower(group) -> int:
    """A rank other than 0: rank 0's trainer, its share of each batch, no files and no output."""
    from core.config import ExperimentConfig
    from core.training.distributed import AGREED, PEER_FAILED, PeerFailed
    from core.training.trainer import MetaTrainer

    stop = {"flag": False, "signal": None}
    previous = _on_stop_signals(stop, True)
    group.watch_parent(lambda: stop.update(flag=True, signal="SIGTERM"))
    try:
        start = group.share(None)
        trainer = MetaTrainer(ExperimentConfig.from_json(start["config"]), group=group)
        trainer.load_weights(start["weights"])
        trainer.load_training_state(*start["state"])
        trainer.compile_step()
        code = 0
        try:
            while trainer.iteration < trainer.config.train.iterations:
                group.stop = stop["signal"]
                trainer.step()
                if group.agreed:
                    break
        except TrainingDiverged:
            code = 1
        group.mark(AGREED)
        return _STOP_CODES.get(group.agreed, code)
    except PeerFailed:
        group.mark(PEER_FAILED)
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


_STOP_CODES = {"SIGTERM": 143, "SIGINT": 130, "time": 0}
_STOP_WORDS = {"SIGTERM": "SIGTERM", "SIGINT": "Ctrl-C (SIGINT)"}


def _train_locked(args, out: Path, continuing: bool, stop: dict, group=None) -> int:
    from core.storage.checkpoint import Checkpointer
    from core.training.distributed import AGREED, PEER_FAILED, PeerFailed
    from core.training.memory import fitting_family, memory_tips
    from core.training.trainer import MetaTrainer

    if args.resume is not None:
        trainer = _resumed(args, group)
    else:
        config = config_from_args(args)
        trainer = MetaTrainer(config, family=fitting_family(config), group=group)
    if group is not None:
        group.watch_parent(lambda: stop.update(flag=True, signal="SIGTERM"))
        group.share({"config": trainer.config.to_json(), "weights": trainer.weights(),
                     "state": trainer.training_state()})
    config = trainer.config
    for warning in trainer.family.warnings:
        print(f"maml-gui: warning: {warning}", file=sys.stderr)
    stop["setup"] = False   # from the first file written, a stop saves a checkpoint
    saver = Checkpointer(out, config.algorithm.inner_steps + 1, args.save_every,
                         resume_from=trainer.iteration if continuing else None)
    if continuing and (saver.log.last_row or 0) != trainer.iteration:
        print(f"maml-gui: warning: {saver.log.path} ends at iteration {saver.log.last_row or 0:,}, the checkpoint is "
              f"at {trainer.iteration:,}: the rows in between are missing (damaged or deleted); the resumed rows "
              "follow", file=sys.stderr)
    saves = _Saves(saver, trainer, out)
    if not continuing:
        saves.periodic()   # iteration 0 (or the resumed one): resumable from the first second
    note = trainer.compile_step(announce=lambda text: print(f"maml-gui: {text}", file=sys.stderr, flush=True))
    if note:
        print(f"maml-gui: {note}", file=sys.stderr)
    first = trainer.iteration   # rates count this process's iterations, not those before a --resume
    progress = _Progress(config.train.iterations, first) if sys.stderr.isatty() else None
    saves.progress = progress
    start = time.perf_counter()
    resume_hint = f"; continue with `maml-gui train --resume {out}`"
    reason, code, last, ending = "completed", 0, None, AGREED   # ending: how a rank of several ended
    try:
        while trainer.iteration < config.train.iterations and (group is not None or not stop["flag"]):
            timed_out = args.time_limit is not None and time.perf_counter() - start >= args.time_limit
            if group is not None:   # the ranks stop together: requests travel with the gradients
                group.stop = stop["signal"] or ("time" if timed_out else None)
            elif timed_out:
                reason = f"time limit of {args.time_limit:g} s reached at iteration {trainer.iteration:,}{resume_hint}"
                break
            last = trainer.step()
            saver.add(last)
            if saver.due():
                saves.periodic()
            if progress:
                progress.update(last, time.perf_counter() - start)
            if group is not None and group.agreed:
                stop.update(flag=True, signal=group.agreed)
                break
        if stop["flag"] and stop["signal"] == "time":
            reason = f"time limit of {args.time_limit:g} s reached at iteration {trainer.iteration:,}{resume_hint}"
        elif stop["flag"]:
            words, code = _STOP_WORDS[stop["signal"]], _STOP_CODES[stop["signal"]]
            reason = f"stopped by {words} at iteration {trainer.iteration:,}{resume_hint}"
    except TrainingDiverged as exc:
        reason, code = f"stopped: {exc}; the last finite weights are saved", 1
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        reason = f"stopped: out of memory at iteration {trainer.iteration:,}; {memory_tips(config)}{resume_hint}"
        code = 1
    except KeyboardInterrupt:
        reason, code = f"stopped by Ctrl-C (SIGINT) at iteration {trainer.iteration:,}{resume_hint}", 130
    except _SavesStalled as exc:
        reason, code, ending = f"stopped: {exc}", 1, None   # alone: the others' next exchange fails
    except PeerFailed as exc:
        reason, code, ending = f"stopped after iteration {trainer.iteration:,}: {exc}{resume_hint}", 1, PEER_FAILED
    finally:
        if progress:
            progress.close()
        saved = saves.final()
    if group is not None and ending is not None:
        group.mark(ending)
    elapsed = time.perf_counter() - start
    if trainer.compile_failure:
        print(f"maml-gui: the compiled meta-step failed ({trainer.compile_failure}); the run continued eager",
              file=sys.stderr)
    loss = f"{last.meta_loss:.4f}" if last else "n/a"
    where = f"saved to {out}" if saved else f"NOT saved (see the error above): {out} holds {saves.previous()}"
    processes = f", {group.world} processes" if group is not None else ""
    print(f"{config.algorithm.name} on {config.family.name}: {iterations_done(first, trainer.iteration, elapsed)} "
          f"({trainer.device}, {trainer.gradient_path}{processes}), final meta-loss {loss}, {reason}; {where}")
    return code if saved else (code or 1)


class _SavesStalled(Exception):
    pass


class _Saves:
    """The command line's side of checkpointing: one readable line per storage problem (not one
    per attempt), a note when slow saves stretch the interval, and a stop when the metrics waiting
    for a checkpoint that cannot be written grow past :data:`PENDING_LIMIT`."""

    def __init__(self, saver, trainer, out: Path):
        self.saver, self.trainer, self.out = saver, trainer, out
        self.progress = None
        self._failing: str | None = None
        self._noted = False

    def previous(self) -> str:
        done = self.saver.saved_iteration
        return "no checkpoint yet" if done is None else f"the checkpoint of iteration {done:,}"

    def _say(self, line: str) -> None:
        print(("\n" if self.progress else "") + f"maml-gui: {line}", file=sys.stderr, flush=True)

    def _save(self):
        from core.storage.checkpoint import SaveFailed

        try:
            self.saver.save(self.trainer.config, self.trainer.weights(), self.trainer.training_state())
        except SaveFailed as exc:
            return exc
        return None

    def periodic(self) -> None:
        failed = self._save()
        if failed is None:
            if self._failing:
                self._say(f"checkpoint saved again to {self.out} at iteration {self.saver.saved_iteration:,}")
                self._failing = None
            self._note_interval()
            return
        if failed.reason != self._failing:
            self._failing = failed.reason
            if failed.committed:
                self._say(f"warning: cannot update the weights file in {self.out}: {failed.reason}; the checkpoint of "
                          f"iteration {self.saver.saved_iteration:,} is saved and resumable; training goes on")
            else:
                self._say(f"warning: cannot save checkpoint to {self.out}: {failed.reason}; "
                          f"{self._intact()}; training goes on")
        if self.saver.log.pending_bytes > PENDING_LIMIT:
            raise _SavesStalled(f"no checkpoint could be saved to {self.out} since {self.previous()} "
                                f"({failed.reason}), and the unsaved metrics outgrew {PENDING_LIMIT >> 20} MiB of "
                                f"memory; free some space and continue with `maml-gui train --resume {self.out}`")

    def _intact(self) -> str:
        done = self.saver.saved_iteration
        return "no checkpoint has been saved yet" if done is None else \
            f"the previous checkpoint (iteration {done:,}) is intact"

    def _note_interval(self) -> None:
        s = self.saver
        if not self._noted and s.every > 0 and s.interval > 2 * s.every:
            self._noted = True
            self._say(f"note: a checkpoint takes {s.last_seconds:.2f} s, so one is saved every {s.interval:.0f} s "
                      f"instead of every {s.every:g} s (saving stays under 1% of the training time)")

    def final(self) -> bool:
        """The last save; False (with one line on stderr) when it failed."""
        failed = self._save()
        if failed is None:
            return True
        if failed.committed:
            self._say(f"error: the final checkpoint (iteration {self.saver.saved_iteration:,}) is saved in {self.out}, "
                      f"but its weights file could not be updated: {failed.reason}; after freeing space, "
                      f"`maml-gui train --resume {self.out}` writes it")
        else:
            self._say(f"error: cannot save the final checkpoint to {self.out}: {failed.reason}; {self._intact()}; "
                      f"free some space (or make the folder writable) and continue with "
                      f"`maml-gui train --resume {self.out}`")
        return False


def _claim_out(out: Path, force: bool) -> None:
    """Refuse to write a new run over an existing one unless ``--force``; with it, delete the old
    run's files first so nothing of it mixes with the new run. Called with the folder's lock held."""
    from core.storage.checkpoint import CONFIG_FILE, METRICS_FILE, STATE_FILE, WEIGHTS_FILE

    found = [out / n for n in (CONFIG_FILE, WEIGHTS_FILE, STATE_FILE, METRICS_FILE) if (out / n).exists()]
    if not found:
        return
    if not force:
        raise UsageError(f"maml-gui train: {out} already holds a run ({', '.join(p.name for p in found)}); "
                         f"continue it with --resume {out}, replace it with --force, or choose another --out")
    for path in found:
        try:
            path.unlink()
        except OSError as exc:
            raise UsageError(f"maml-gui train: cannot replace {path}: {exc.strerror or exc}") from None


def _resumed(args, group=None):
    """A trainer restored from a run folder's last checkpoint: weights, Adam moments, sampler state, iteration."""
    from core.storage.checkpoint import STATE_FILE, folder_notes, load_checkpoint, with_resume_hint
    from core.errors import CheckpointError
    from core.training.memory import fitting_family
    from core.training.trainer import MetaTrainer

    saved, weights, tensors, metadata = load_checkpoint(args.resume)
    for note in folder_notes(args.resume, saved, weights_file=True):
        print(f"maml-gui: warning: {note}", file=sys.stderr)
    config = config_from_args(args, base=saved)
    changed = config.continue_changes(saved)
    if changed:
        raise UsageError(f"maml-gui train: {', '.join(changed)} cannot change a resumed run (only the iteration count, "
                         "meta learning rate, device and --compile can); start a new one instead")
    trainer = MetaTrainer(config, family=fitting_family(config), group=group)
    trainer.load_weights(weights)
    try:
        trainer.load_training_state(tensors, metadata, source=args.resume / STATE_FILE)
    except CheckpointError as exc:
        raise with_resume_hint(exc, args.resume) from None
    if args.meta_lr is not None:
        trainer.set_meta_lr(args.meta_lr)
    return trainer


def iterations_done(first: int, last: int, elapsed: float) -> str:
    """``"2000 iterations (34000 to 36000) in 3.4 s, 588 it/s"``: what this process did; a resumed
    run's earlier iterations took their time in another process."""
    done = last - first
    span = f" ({first} to {last})" if first else ""
    rate = done / elapsed if elapsed > 0 else 0.0
    return f"{done} iterations{span} in {elapsed:.1f} s, {rate:.0f} it/s"


class _Progress:
    """A one-line progress bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, total: int, first: int = 0):
        self.total, self.first, self._last = total, first, 0.0

    def update(self, m, elapsed: float) -> None:
        if elapsed - self._last < 0.1:
            return
        self._last = elapsed
        rate = (m.iteration - self.first) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - m.iteration) / rate if rate > 0 else 0.0
        filled = int(30 * m.iteration / self.total)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {m.iteration}/{self.total} "
                         f"{rate:5.0f} it/s  loss {m.meta_loss:8.4f}  ETA {eta:5.0f}s ")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


# -- evaluate ---------------------------------------------------------------------------------
def _evaluate(args) -> int:
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


# -- bench ------------------------------------------------------------------------------------
def _bench(args, gui_bench: Callable[[float], dict] | None = None) -> int:
    if args.gui:
        if gui_bench is None:
            raise UsageError("maml-gui bench: --gui measures the window, which the engine cannot open; "
                             "run `maml-gui bench --gui` or `python -m maml_gui bench --gui`")
        result = gui_bench(args.seconds)
        print(json.dumps(result) if args.json else "  ".join(f"{k}={v}" for k, v in result.items()))
        return 0
    config = ExperimentConfig().replace("algorithm", name=args.algorithm, inner_steps=args.inner_steps).replace(
        "train", meta_batch=args.meta_batch, device=args.device)
    config.validate()
    if args.memory is not None:
        from core.training.bench import bench_memory

        if args.memory < 1:
            raise UsageError("maml-gui bench: --memory needs a positive iteration count")
        rows = [{"iteration": i, "rss_mib": round(cur, 1), "peak_rss_mib": round(peak, 1)}
                for i, cur, peak in bench_memory(config, args.memory, max(1, args.memory // 10))]
        if args.json:
            print(json.dumps({"memory": rows}))
        else:
            for r in rows:
                print(f"iteration {r['iteration']:>7}  rss {r['rss_mib']:8.1f} MiB  peak {r['peak_rss_mib']:8.1f} MiB")
        return 0
    if args.compile and args.conv:
        from core.training.bench import bench_conv_compile, conv_compile_lines

        given = {"meta_batch": args.meta_batch} if "--meta-batch" in args.argv else {}
        result = bench_conv_compile(rounds=args.rounds if "--rounds" in args.argv else 2, device=args.device, **given)
        print(json.dumps(result) if args.json else "\n".join(conv_compile_lines(result)))
        return 0
    if args.compile:
        return _bench_compile(args, config)
    if args.conv:
        from core.training.bench import bench_conv, conv_lines

        given = {"meta_batch": args.meta_batch} if "--meta-batch" in args.argv else {}
        result = bench_conv(rounds=args.rounds if "--rounds" in args.argv else 2, device=args.device, **given)
        print(json.dumps(result) if args.json else "\n".join(conv_lines(result)))
        return 0
    from core.training.bench import bench_speed

    result = bench_speed(config, rounds=args.rounds)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"{args.algorithm}, {args.inner_steps} inner step(s), meta-batch {args.meta_batch}, sinusoid 1-40-40-1, "
              f"K=10+10 on {result.device}: engine {result.engine_it_s:.1f} it/s, per-task loop "
              f"{result.loop_it_s:.1f} it/s, speedup {result.speedup:.1f}x"
              + (f" (batched-autograd path: {result.autograd_it_s:.1f} it/s, "
                 f"{result.autograd_it_s / result.loop_it_s:.1f}x)" if result.autograd_it_s else ""))
    return 0


def _bench_compile(args, config: ExperimentConfig) -> int:
    from core.training.bench import bench_compile

    result = bench_compile(config, rounds=args.rounds)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    setting = (f"{args.algorithm}, {args.inner_steps} inner step(s), meta-batch {args.meta_batch}, sinusoid 1-40-40-1, "
               f"K=10+10 on {result.device} ({result.gradient_path})")
    if result.compiled_it_s is None:
        print(f"{setting}: eager {result.eager_it_s:.1f} it/s; {result.note}")
        return 0

    def seconds(x):
        return "failed" if x is None else f"{x:.1f} s"

    print(f"{setting}: eager {result.eager_it_s:.1f} it/s, compiled {result.compiled_it_s:.1f} it/s, "
          f"speedup {result.speedup:.2f}x; compile time {seconds(result.compile_cold_s)} cold, "
          f"{seconds(result.compile_warm_s)} warm")
    return 0

