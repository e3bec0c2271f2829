"""Speed and memory measurements, printed as numbers (never asserted by timed unit tests).

The engine and the per-task loop run on the same pre-sampled batches, interleaved round by
round, so machine noise hits both alike and their ratio is meaningful.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .algorithms import closed_form
from .config import ExperimentConfig
from .optim import MetaAdam
from .reference import loop_meta_gradient
from .trainer import MetaTrainer


@dataclass(frozen=True)
class BenchResult:
    engine_it_s: float
    loop_it_s: float
    device: str
    autograd_it_s: float | None = None  # the engine's batched-autograd path, where the closed form is the default

    @property
    def speedup(self) -> float:
        return self.engine_it_s / self.loop_it_s

    def to_dict(self) -> dict:
        """The ``--json`` contract: exactly these four keys (the autograd path is in the text line only)."""
        return {"engine_it_s": round(self.engine_it_s, 2), "loop_it_s": round(self.loop_it_s, 2),
                "speedup": round(self.speedup, 2), "device": self.device}


def bench_speed(config: ExperimentConfig, rounds: int = 6, engine_steps: int = 40, loop_steps: int = 4,
                n_batches: int = 4) -> BenchResult:
    """Meta-iterations/s of the engine vs the per-task autograd loop (both include the Adam step).

    Where the engine uses the closed-form gradient, its batched-autograd path is timed too.
    """
    trainer = MetaTrainer(config)
    autograd = None
    if closed_form.applies(trainer.net, trainer.algorithm.adapt_names, trainer.params):
        autograd = MetaTrainer(config)
        autograd.algorithm.closed_form = False
    algorithm = config.algorithm
    if algorithm.name not in ("maml", "fomaml", "metasgd"):
        raise ValueError("the loop reference covers maml, fomaml and metasgd")
    batches = [trainer.sample_batch() for _ in range(n_batches)]
    module = trainer.net.module().to(trainer.device)
    params = {n: p.detach().clone().requires_grad_(True) for n, p in trainer.params.items()}
    rates = {n: t.detach().clone().requires_grad_(True) for n, t in trainer.rates.tensors.items()}
    opt = MetaAdam([*params.values(), *rates.values()], lr=config.train.meta_lr)  # the same optimiser as the engine

    def loop_step(batch):
        opt.zero_grad(set_to_none=True)
        _, grads = loop_meta_gradient(module, params, batch, algorithm.inner_steps, rates or algorithm.inner_lr,
                                      first_order=algorithm.first_order,
                                      classification=trainer.family.kind == "classification")
        for n, p in params.items():
            p.grad = grads[n]
        for n, t in rates.items():
            t.grad = grads[f"inner_lr.{n}"]
        opt.step()

    engines = [trainer] if autograd is None else [trainer, autograd]
    *engine_times, loop_time = interleaved_seconds([(e.step, engine_steps) for e in engines] + [(loop_step, loop_steps)],
                                                   batches, rounds)
    rates = [rounds * engine_steps / t for t in engine_times]
    return BenchResult(rates[0], rounds * loop_steps / loop_time, str(trainer.device), rates[1] if autograd else None)


def interleaved_seconds(steppers, batches, rounds: int) -> list[float]:
    """Total seconds each ``(step function, steps per round)`` took, timed in turns round by round
    on the same batches (after one warm-up pass each), so a shared machine's drift hits all alike."""
    for step, _ in steppers:
        for batch in batches:
            step(batch)
    seconds = [0.0] * len(steppers)
    for _ in range(rounds):
        for k, (step, count) in enumerate(steppers):
            start = time.perf_counter()
            for i in range(count):
                step(batches[i % len(batches)])
            seconds[k] += time.perf_counter() - start
    return seconds


@dataclass(frozen=True)
class CompileBench:
    """Eager vs compiled meta-iterations/s (whole ``step()`` calls on the same batches, interleaved
    round by round) and the seconds compiling took before the first step in a fresh process with
    an empty (cold) and then a filled (warm) kernel cache. ``compiled_it_s`` is None when the step
    could not be compiled here; ``note`` says why or what was compiled."""

    eager_it_s: float
    compiled_it_s: float | None
    compile_cold_s: float | None
    compile_warm_s: float | None
    device: str
    gradient_path: str
    note: str

    @property
    def speedup(self) -> float | None:
        return None if self.compiled_it_s is None else self.compiled_it_s / self.eager_it_s

    def to_dict(self) -> dict:
        def rounded(x, digits=2):
            return None if x is None else round(x, digits)

        return {"eager_it_s": rounded(self.eager_it_s), "compiled_it_s": rounded(self.compiled_it_s),
                "speedup": rounded(self.speedup), "compile_cold_s": rounded(self.compile_cold_s, 1),
                "compile_warm_s": rounded(self.compile_warm_s, 1), "device": self.device,
                "gradient_path": self.gradient_path, "note": self.note}


def bench_compile(config: ExperimentConfig, rounds: int = 8, steps: int = 250, n_batches: int = 4,
                  cache_times: bool = True) -> CompileBench:
    """Eager and compiled trainers side by side; ``cache_times`` adds the cold and warm compile
    times, each measured in a child process (a cold cache is a temporary folder, deleted after)."""
    cold = warm = None
    if cache_times:
        with tempfile.TemporaryDirectory(prefix="maml-compile-bench-") as cache:
            cold, warm = (_compile_seconds_in_child(config, cache) for _ in range(2))
    eager = MetaTrainer(config.replace("train", compile="off"))
    compiled = MetaTrainer(config.replace("train", compile="on"))
    note = compiled.compile_step() or ""
    batches = [eager.sample_batch() for _ in range(n_batches)]
    trainers = [eager, compiled] if compiled.compiled else [eager]
    times = interleaved_seconds([(t.step, steps) for t in trainers], batches, rounds)
    rates = [rounds * steps / s for s in times]
    return CompileBench(rates[0], rates[1] if len(rates) > 1 else None, cold, warm, str(eager.device),
                        compiled.gradient_path, note)


def _compile_seconds_in_child(config: ExperimentConfig, cache: str) -> float | None:
    """Seconds from a built trainer to a compiled meta-step in a fresh interpreter using ``cache``."""
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    code = "import sys; from core.bench import compile_seconds; compile_seconds(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, config.replace("train", compile="on").to_json()], env=env,
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=False)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    except (IndexError, KeyError, ValueError):
        return None


def compile_seconds(config_json: str) -> None:
    """(Child process of :func:`bench_compile`.) Print ``{"seconds": …}``: how long compiling took,
    null when it failed."""
    trainer = MetaTrainer(ExperimentConfig.from_json(config_json))
    start = time.perf_counter()
    trainer.compile_step()
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds if trainer.compiled else None}))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return peak_rss_mib()


def bench_memory(config: ExperimentConfig, iterations: int, report_every: int):
    """Yield ``(iteration, current RSS MiB, peak RSS MiB)`` while training, to show memory stays flat."""
    trainer = MetaTrainer(config)
    for i in range(1, iterations + 1):
        trainer.step()
        if i % report_every == 0 or i == iterations:
            gc.collect()
            yield i, current_rss_mib(), peak_rss_mib()
