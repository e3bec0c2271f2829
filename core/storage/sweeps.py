"""Seed sweeps: the same experiment over several seeds (and a grid of settings), as parallel
``maml-gui train`` processes, summarised as a mean with a 95% confidence interval across seeds.

Each run is an ordinary run folder (``DIR/runs/<config>-seed<k>``) written by its own ``train``
process, so a sweep inherits everything a run has — checkpoints, locks, resume — and the window
can open or follow any of its runs. A run is finished once its ``eval.json`` exists; running the
same sweep command again skips finished runs and resumes the others, so an interrupted sweep
loses at most the time since each run's last checkpoint.
"""

from __future__ import annotations

import argparse

import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from core.storage.atomic import atomic_write
from core.errors import MamlError
from core.ranges import MAX_SEED   # each run's train --seed takes the same range
from core.storage.follow import last_iteration

EVAL_FILE = "eval.json"
SUMMARY_JSON, SUMMARY_CSV = "summary.json", "summary.csv"
# train options a grid may vary (CLI spelling with underscores); everything else is fixed per sweep
MAX_SEEDS = 1000        # seeds per sweep
MAX_RUNS = 10_000       # runs per sweep (settings × seeds): each is a process and a run folder
GRID_KEYS = ("algorithm", "inner_steps", "inner_lr", "meta_lr", "meta_batch", "shots", "query", "iterations",
             "rollouts", "outer", "max_kl")   # the last three: meta-RL runs only (train refuses them otherwise)

# two-sided 95% Student t quantiles for 1..30 degrees of freedom; past 30 the normal 1.96 is within 2%
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


class SweepError(MamlError):
    """Bad sweep syntax or a sweep folder that does not match the command; one readable line."""


def t95(df: int) -> float:
    return _T95[df - 1] if df <= len(_T95) else 1.96


def parse_seeds(text: str) -> list[int]:
    """``"0-4"``, ``"0,3,7"`` or a mix like ``"0-2,10"``; each seed once, in the order given.
    The count is worked out from the ranges before any list is built, so ``0-99999999999`` is
    refused at once rather than filling the memory."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise SweepError(f"--seeds: {part!r} is not a seed or a range like 0-4")
        low, high = int(match[1]), int(match[2] if match[2] is not None else match[1])
        if high < low:
            raise SweepError(f"--seeds: the range {part!r} runs backwards")
        if high > MAX_SEED:
            raise SweepError(f"--seeds: {high} is above the largest seed, {MAX_SEED}")
        ranges.append((low, high))
    count = _union_size(ranges)
    if count > MAX_SEEDS:
        raise SweepError(f"--seeds: {count:,} seeds is more than the {MAX_SEEDS} a sweep runs")
    seeds = dict.fromkeys(s for low, high in ranges for s in range(low, high + 1))
    return list(seeds)


def _union_size(ranges: Sequence[tuple[int, int]]) -> int:
    """How many integers the inclusive ranges cover together, overlaps counted once."""
    count, end = 0, -1
    for low, high in sorted(ranges):
        if high > end:
            count += high - max(low, end + 1) + 1
            end = high
    return count


def parse_grid(items: Sequence[str], convert: Callable[[str, str], object] | None = None,
               seeds: int = 1) -> list[dict[str, str]]:
    """``["inner_lr=0.01,0.05", "inner_steps=1,5"]`` -> every combination, in order, as
    ``{key: value text}``. ``convert(key, text)`` checks each value (raising ValueError) and
    returns it; two texts of one value (``0.001`` and ``1e-3``) would run the same experiment
    twice and count it twice in the summary, so they are refused. The number of runs (with
    ``seeds`` seeds each) is checked against :data:`MAX_RUNS` before any combination is built."""
    axes: list[tuple[str, list[str]]] = []
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise SweepError(f"--grid: {item!r} is not KEY=VALUE,VALUE (e.g. inner_lr=0.01,0.05)")
        if key not in GRID_KEYS:
            raise SweepError(f"--grid: {key!r} cannot be varied; choose from {', '.join(GRID_KEYS)}")
        if any(key == k for k, _ in axes):
            raise SweepError(f"--grid: {key} is given twice")
        texts = [v.strip() for v in values.split(",")]
        if not texts or any(v == "" for v in texts):
            raise SweepError(f"--grid: {item!r} has an empty value")
        axes.append((key, texts))
    runs = math.prod(len(texts) for _, texts in axes) * seeds
    if runs > MAX_RUNS:
        shape = " × ".join(str(len(texts)) for _, texts in axes)
        raise SweepError(f"--grid: {shape} settings × {seeds} seed(s) is {runs:,} runs, more than the "
                         f"{MAX_RUNS:,} a sweep runs")
    for key, texts in axes:
        seen: dict[object, str] = {}
        for text in texts:
            try:
                value = convert(key, text) if convert is not None else None
                value = text if value is None else value   # a checker that returns nothing: compare the texts
            except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:   # the flags' own range checks
                raise SweepError(f"--grid: {key}={text} is not valid ({exc})") from None
            if value in seen:
                same = "twice" if seen[value] == text else f"twice ({seen[value]} and {text})"
                raise SweepError(f"--grid: {key} lists the value {text} {same}: the same runs would be counted "
                                 "twice in the summary; give each value once")
            seen[value] = text
    return [dict(zip([k for k, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]


def config_label(params: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items()) or "base"


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", label)


@dataclass
class SweepRun:
    """One (configuration, seed) of a sweep and its run folder."""

    label: str
    params: dict[str, str]
    seed: int
    folder: Path

    @property
    def finished(self) -> bool:
        return read_result(self.folder) is not None

    def train_args(self, base: Sequence[str]) -> list[str]:
        """The ``train`` command line: resume when an earlier attempt left a checkpoint."""
        if (self.folder / "weights.safetensors").is_file() and (self.folder / "training_state.safetensors").is_file():
            return ["train", "--resume", str(self.folder)]
        grid = [a for k, v in self.params.items() for a in (f"--{k.replace('_', '-')}", v)]
        return ["train", *base, *grid, "--seed", str(self.seed), "--out", str(self.folder), "--force"]


def plan(out: Path, seeds: Sequence[int], grid: list[dict[str, str]]) -> list[SweepRun]:
    """One run per (setting, seed); a run folder named twice is planned once."""
    runs = (SweepRun(config_label(params), params, seed, out / "runs" / f"{_slug(config_label(params))}-seed{seed}")
            for params in (grid or [{}]) for seed in seeds)
    unique: dict[Path, SweepRun] = {}
    for run in runs:
        unique.setdefault(run.folder, run)
    return list(unique.values())


@dataclass
class Summary:
    metric: str
    configs: list[dict] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"metric": self.metric, "configs": self.configs}, indent=1, allow_nan=False) + "\n"

    def to_csv(self) -> str:
        keys = sorted({k for c in self.configs for k in c["params"]})
        lines = [",".join(["config", *keys, "step", "seeds", "mean", "ci95", "scratch_mean", "scratch_ci95"])]
        for c in self.configs:
            for step, row in c["steps"].items():
                cells = [f'"{c["label"]}"', *(c["params"].get(k, "") for k in keys), step, str(row["n"]),
                         _num(row["mean"]), _num(row["ci95"]), _num(row["scratch_mean"]), _num(row["scratch_ci95"])]
                lines.append(",".join(cells))
        return "\n".join(lines) + "\n"


def _num(v) -> str:
    return "" if v is None else repr(float(v))


def mean_ci(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and the half-width of its 95% confidence interval (Student t; None for one value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t95(n - 1) * sd / math.sqrt(n)


def read_result(folder: Path) -> dict | None:
    """A run's ``eval.json``; None when missing or damaged (not a file, not JSON, a score that is
    neither a number nor null), so the run counts as unfinished and the sweep evaluates it again."""
    path = folder / EVAL_FILE
    try:
        if not path.is_file():
            return None
        result = json.loads(path.read_text(encoding="utf-8"))
        steps = result["steps"]
        good = isinstance(result["metric"], str) and isinstance(steps, list) and bool(steps) and all(
            type(s) is int for s in steps) and all(_score(t[str(s)]) for t in (result["mean"], *_compared(result))
                                                   for s in steps)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError):
        return None
    return result if good else None


def _compared(result: dict) -> list[dict]:
    """The per-step means a run's result is compared with: training from scratch (a supervised run's
    ``scratch``; a meta-RL run's ``random`` baseline, a random initialisation adapted alike), then a
    meta-RL run's other baselines (pretrained, oracle)."""
    if "scratch" in result:
        return [result["scratch"]["mean"]]
    baselines = result["baselines"]
    return [baselines[name]["mean"] for name in sorted(baselines, key=lambda n: n != "random")]


def _scratch(result: dict) -> dict:
    if "scratch" in result:
        return result["scratch"]["mean"]
    return result["baselines"].get("random", {}).get("mean", {})


def _score(value) -> bool:
    """A held-out mean: a finite number, or null (evaluate's word for a step where tasks diverged)."""
    return value is None or (type(value) in (int, float) and math.isfinite(value))


def summarize(runs: Sequence[SweepRun]) -> Summary:
    """Per configuration and adaptation step: the mean over seeds of each run's mean held-out
    metric, with a 95% interval across seeds (the spread a reader of a paper table cares about)."""
    runs = list({r.folder: r for r in runs}.values())   # a run listed twice is still one result
    results = {id(r): result for r in runs if (result := read_result(r.folder)) is not None}
    metric = next((res["metric"] for res in results.values()), "")
    summary = Summary(metric)
    for label in dict.fromkeys(r.label for r in runs):
        group = [r for r in runs if r.label == label and id(r) in results]
        if not group:
            continue
        steps = results[id(group[0])]["steps"]
        rows = {}
        for step in steps:
            key = str(step)
            values = [results[id(r)]["mean"].get(key) for r in group]
            scratch = [_scratch(results[id(r)]).get(key) for r in group]
            # null: tasks diverged in that run at that step; no mean over seeds then (as evaluate shows none)
            mean, ci = mean_ci(values) if None not in values else (None, None)
            s_mean, s_ci = mean_ci(scratch) if None not in scratch else (None, None)
            rows[key] = {"n": len(values), "mean": mean, "ci95": ci, "values": values, "scratch_mean": s_mean,
                         "scratch_ci95": s_ci, "diverged_seeds": values.count(None)}
            baselines = _baselines(group, results, key)
            if baselines:
                rows[key]["baselines"] = baselines
        summary.configs.append({"label": label, "params": group[0].params, "seeds": [r.seed for r in group],
                                "steps": rows})
    return summary


def _baselines(group: list, results: dict, key: str) -> dict:
    """A meta-RL sweep's baselines at one step (pretrained, random, oracle): mean and 95% interval over the
    seeds that scored it (``evaluate --baselines`` may leave one out)."""
    out = {}
    for name in dict.fromkeys(n for r in group for n in results[id(r)].get("baselines", {})):
        values = [results[id(r)]["baselines"].get(name, {}).get("mean", {}).get(key) for r in group]
        values = [v for v in values if v is not None]
        if values:
            mean, ci = mean_ci(values)
            out[name] = {"n": len(values), "mean": mean, "ci95": ci}
    return out


def write_summary(out: Path, runs: Sequence[SweepRun]) -> Summary:
    summary = summarize(runs)
    atomic_write(out / SUMMARY_JSON, summary.to_json().encode())
    atomic_write(out / SUMMARY_CSV, summary.to_csv().encode())
    return summary


# -- running ---------------------------------------------------------------------------------------
def _command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "core.cli", *args]


def _child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


class Runner:
    """Runs a sweep's runs as at most ``parallel`` child processes, each train then evaluate."""

    def __init__(self, out: Path, runs: list[SweepRun], base_args: Sequence[str], eval_args: Sequence[str],
                 parallel: int, threads: int, total_iterations: Callable[[SweepRun], int]):
        self.out, self.runs, self.base, self.eval_args = out, runs, list(base_args), list(eval_args)
        self.parallel, self.threads, self.total = parallel, threads, total_iterations
        self.failed: list[tuple[SweepRun, str]] = []
        self._children: dict[int, tuple[SweepRun, str, subprocess.Popen]] = {}
        self._stop = False
        try:
            (out / "logs").mkdir(parents=True, exist_ok=True)
        except OSError as exc:   # e.g. a file named logs in the sweep folder
            raise SweepError(f"cannot create {out / 'logs'}: {exc.strerror or exc}") from None

    def stop(self) -> None:
        """Ask every child to stop and save (they handle SIGTERM); unfinished runs resume next time."""
        self._stop = True
        for _run, _phase, proc in self._children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def _log(self, run: SweepRun):
        return (self.out / "logs" / f"{run.folder.name}.log").open("ab")

    def _launch(self, run: SweepRun, phase: str) -> None:
        if phase == "train":
            args = run.train_args(self.base)
        else:
            args = ["evaluate", str(run.folder), "--json", *self.eval_args]
        with self._log(run) as log:
            log.write(f"$ maml-gui {' '.join(args)}\n".encode())
            log.flush()
            stdout = subprocess.PIPE if phase == "evaluate" else log
            proc = subprocess.Popen(_command(args), stdout=stdout, stderr=log, env=_child_env(self.threads),
                                    stdin=subprocess.DEVNULL)
        self._children[proc.pid] = (run, phase, proc)

    def _finish(self, run: SweepRun, phase: str, proc: subprocess.Popen) -> None:
        if phase == "train":
            if proc.returncode == 0:
                self._launch(run, "evaluate")
            elif not self._stop:
                self.failed.append((run, f"train exited {proc.returncode}; see logs/{run.folder.name}.log"))
            return
        output = proc.stdout.read() if proc.stdout else b""
        if proc.stdout:
            proc.stdout.close()
        if proc.returncode == 0:
            try:
                json.loads(output)
            except ValueError:
                self.failed.append((run, "evaluate printed no JSON"))
                return
            atomic_write(run.folder / EVAL_FILE, output)
        elif not self._stop:
            self.failed.append((run, f"evaluate exited {proc.returncode}; see logs/{run.folder.name}.log"))

    def progress(self) -> tuple[int, int]:
        """(iterations done, iterations in all) over the sweep, finished runs counted whole."""
        done = total = 0
        for run in self.runs:
            n = self.total(run)
            total += n
            done += n if run.finished else min(n, last_iteration(run.folder))
        return done, total

    def run(self, report: Callable[["Runner"], None] | None = None, poll: float = 0.2) -> None:
        queue = [r for r in self.runs if not r.finished]
        while (queue and not self._stop) or self._children:
            while queue and not self._stop and len(self._children) < self.parallel:
                self._launch(queue.pop(0), "train")
            for pid, (run, phase, proc) in list(self._children.items()):
                if phase == "evaluate":
                    proc.wait()   # short; its output is read whole
                if proc.poll() is not None:
                    del self._children[pid]
                    self._finish(run, phase, proc)
            if report is not None:
                report(self)
            if self._children:
                time.sleep(poll)
