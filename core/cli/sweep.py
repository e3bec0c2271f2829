"""``maml-gui sweep``: one experiment over several seeds (and a grid), as parallel train processes.

Every option ``sweep`` does not know itself is a ``train`` option, checked by ``train``'s own
parser before anything starts, so a typo costs one readable line (exit 2), not a sweep of
failed runs. See :mod:`core.storage.sweeps` for the folder layout and how a sweep resumes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from core.cli.parser import build_parser, config_from_args, train_value_reader
from core.cli.train import check_train_flags
from core.storage.sweeps import Runner, SweepError, config_label, parse_grid, parse_seeds, plan, write_summary
from core.envs import build_env_family
from core.tasks import build_family

SWEEP_FILE = "sweep.json"
FIXED = ("--out", "--resume", "--force", "--seed")   # per run, set by the sweep itself
MAX_PARALLEL = 256   # runs at once; each is a process
STEPS, RL_STEPS = "0,1,10", "0,1,2,3"   # adaptation steps summarised by default: supervised, meta-RL runs


def run_sweep(argv: list[str], usage_error: type[Exception]) -> int:
    """``argv`` after ``sweep``. Raises ``usage_error`` (exit 2) for bad syntax."""
    parser = build_parser()
    sweep_parser = parser.commands["sweep"]
    args, rest = sweep_parser.parse_known_args(argv)
    train_parser = parser.commands["train"]
    try:
        seeds = parse_seeds(args.seeds)
        grid = parse_grid(args.grid, train_value_reader(train_parser), seeds=len(seeds))
    except SweepError as exc:
        raise usage_error(f"maml-gui sweep: {exc}") from None
    _check_rest(rest, grid, usage_error)
    if not 1 <= args.parallel <= MAX_PARALLEL:
        raise usage_error(f"maml-gui sweep: --parallel must be from 1 to {MAX_PARALLEL}")
    # every configuration must be a valid train command before any process starts (with the
    # largest seed: train checks its range too)
    totals, family = {}, None
    for params in grid:
        extra = [a for k, v in params.items() for a in (f"--{k.replace('_', '-')}", v)]
        train_args = train_parser.parse_args([*rest, *extra, "--seed", str(max(seeds)), "--out", str(args.out / "x")])
        check_train_flags(train_args)
        config = config_from_args(train_args)
        if config.is_rl:   # an environment family: train checks no memory for it either (policies are small)
            family = family or build_env_family(config.family)
        else:
            family = family or build_family(config.family)   # the grid never varies the family
            _check_memory(config, family, args.parallel, config_label(params), usage_error)
        totals[json.dumps(params, sort_keys=True)] = config.train.iterations
    if args.steps is None:   # evaluate's own default for the kind of run (the grid never varies the family)
        args.steps = RL_STEPS if config.is_rl else STEPS
    _check_evaluate(parser, args, usage_error)
    out = args.out
    runs = plan(out, seeds, grid)
    record = {"seeds": seeds, "grid": args.grid, "train_args": rest, "tasks": args.tasks, "steps": args.steps}
    _claim(out, record)

    from core.storage.lock import RunLock

    lock = RunLock(out)
    warning = lock.acquire("maml-gui sweep")
    if warning:
        print(f"maml-gui: warning: {warning}", file=sys.stderr)
    try:
        return _run(out, runs, rest, args, totals)
    finally:
        lock.release()


def _check_memory(config, family, parallel: int, label: str, usage_error: type[Exception]) -> None:
    """A setting whose runs would not fit (``parallel`` of them at once) is refused before any starts,
    as ``train`` refuses one run, rather than every run failing in turn."""
    from core.device import resolve_device
    from core.training.memory import available_bytes, fit_problem

    available = available_bytes(resolve_device(config.train.device))
    tight = fit_problem(config, family, None if available is None else available // parallel)
    if tight:
        share = f" (a 1/{parallel} share: --parallel {parallel} runs at once)" if parallel > 1 else ""
        raise usage_error(f"maml-gui sweep: {label}: {tight}{share}; nothing was started")


def _check_rest(rest: list[str], grid: list[dict[str, str]], usage_error: type[Exception]) -> None:
    """Refuse train options the sweep sets itself: per run (``--seed``, ``--out``…) or by ``--grid``
    (the grid's value would silently win over the one typed)."""
    varied = {f"--{k.replace('_', '-')}" for k in (grid[0] if grid else {})}
    for option in rest:
        name = option.split("=", 1)[0]
        if name in FIXED:
            raise usage_error(f"maml-gui sweep: {name} is set per run by the sweep; leave it out")
        if name in varied:
            raise usage_error(f"maml-gui sweep: {name} is varied by --grid; leave it out or drop it from the grid")


def _check_evaluate(parser, args, usage_error: type[Exception]) -> None:
    """What every run's ``evaluate`` will be given, checked by evaluate's own parser now: a bad
    ``--tasks`` or ``--steps`` must not surface only after every run has trained."""
    evaluate_parser = parser.commands["evaluate"]
    try:
        evaluate_parser.parse_args([str(args.out), "--json", "--tasks", str(args.tasks), "--steps", args.steps])
    except usage_error as exc:
        raise usage_error(str(exc).replace("maml-gui evaluate:", "maml-gui sweep:")) from None


def _claim(out: Path, record: dict) -> None:
    """A new sweep folder, or the same sweep again (it resumes); never a different sweep's folder."""
    path = out / SWEEP_FILE
    if path.is_file():
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            before = None
        if before != record:
            raise SweepError(f"{out} holds another sweep (see its {SWEEP_FILE}); choose another --out, or run the "
                             "same command as before to resume it")
        return
    if out.exists() and not out.is_dir():
        raise SweepError(f"{out} exists and is not a folder; choose another --out")
    if out.exists() and any(out.iterdir()):
        raise SweepError(f"{out} exists and is not a sweep folder; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    from core.storage.atomic import atomic_write

    atomic_write(path, (json.dumps(record, indent=1) + "\n").encode())


def _run(out: Path, runs, rest, args, totals) -> int:
    threads = max(1, (os.cpu_count() or 1) // args.parallel)
    runner = Runner(out, runs, rest, ["--tasks", str(args.tasks), "--steps", args.steps], args.parallel, threads,
                    lambda run: totals[json.dumps(run.params, sort_keys=True)])
    already = sum(r.finished for r in runs)
    stopped = {"by": None}

    def on_signal(signum, _frame):
        stopped["by"] = signal.Signals(signum).name
        runner.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    bar = _Bar(runner)
    start = time.monotonic()
    try:
        if already:
            print(f"maml-gui sweep: {already} of {len(runs)} runs already finished; resuming the others",
                  file=sys.stderr)
        runner.run(report=bar.update)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        bar.close(runner)
    summary = write_summary(out, runs)
    finished = sum(r.finished for r in runs)
    for run, why in runner.failed:
        print(f"maml-gui sweep: {run.folder.name} failed: {why}", file=sys.stderr)
    for config in summary.configs:
        cells = "  ".join(f"step {s}: " + (f"diverged in {row['diverged_seeds']} seed(s)" if row["mean"] is None else
                                            f"{row['mean']:.4g}" + (f" ± {row['ci95']:.2g}" if row["ci95"] is not None
                                                                    else ""))
                          for s, row in config["steps"].items())
        print(f"{config['label']} ({len(config['seeds'])} seeds, {summary.metric}): {cells}")
    took = time.monotonic() - start
    if stopped["by"]:
        print(f"sweep stopped by {stopped['by']} after {took:.0f} s: {finished} of {len(runs)} runs finished; run the "
              f"same command again to resume; partial summary in {out / 'summary.json'}")
        return 130 if stopped["by"] == "SIGINT" else 143
    print(f"sweep: {finished} of {len(runs)} runs finished in {took:.0f} s; summary in {out / 'summary.json'} and "
          f"{out / 'summary.csv'}")
    return 0 if finished == len(runs) else 1


class _Bar:
    """One progress line for the whole sweep (iterations over all runs), redrawn in place on a
    terminal and printed every 30 s otherwise (a log file then holds a readable history)."""

    def __init__(self, runner: Runner, clock=time.monotonic):
        self.n_runs = len(runner.runs)
        self.tty = sys.stderr.isatty()
        self.clock = clock
        self._last = 0.0
        self._start = clock()
        self._before = runner.progress()[0]   # finished or resumed runs' iterations: not this sweep's speed

    def update(self, runner: Runner) -> None:
        now = self.clock()
        if self._last and now - self._last < (0.5 if self.tty else 30.0):
            return
        self._last = now
        done, total = runner.progress()
        finished = sum(r.finished for r in runner.runs)
        seconds = now - self._start
        rate = max(0, done - self._before) / seconds if seconds > 0 else 0.0
        width = 30
        filled = int(width * done / total) if total else width
        line = (f"sweep [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} iterations, "
                f"{finished}/{self.n_runs} runs done, {rate:,.0f} it/s")
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self, runner: Runner) -> None:
        self._last = 0.0
        self.update(runner)   # the final count, on a terminal and in a log alike
        if self.tty:
            print(file=sys.stderr)
