"""Speed and memory measurements, printed as numbers (never asserted by timed unit tests).

The engine and the per-task loop run on the same pre-sampled batches, interleaved round by
round, so machine noise hits both alike and their ratio is meaningful.
"""

from __future__ import annotations

import gc
import resource
import time
from dataclasses import dataclass

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
    for b in batches:  # warm-up
        for e in engines:
            e.step(b)
        loop_step(b)
    engine_times = [0.0] * len(engines)
    loop_time = 0.0
    for r in range(rounds):
        for k, e in enumerate(engines):
            start = time.perf_counter()
            for i in range(engine_steps):
                e.step(batches[i % n_batches])
            engine_times[k] += time.perf_counter() - start
        start = time.perf_counter()
        for i in range(loop_steps):
            loop_step(batches[i % n_batches])
        loop_time += time.perf_counter() - start
    rates = [rounds * engine_steps / t for t in engine_times]
    return BenchResult(rates[0], rounds * loop_steps / loop_time, str(trainer.device), rates[1] if autograd else None)


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
