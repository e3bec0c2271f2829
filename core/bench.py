"""Speed and memory measurements, printed as numbers (never asserted by timed unit tests).

The engine and the per-task loop run on the same pre-sampled batches, interleaved round by
round, so machine noise hits both alike and their ratio is meaningful.
"""

from __future__ import annotations

import gc
import resource
import time
from dataclasses import dataclass

import torch

from .config import ExperimentConfig
from .optim import MetaAdam
from .reference import loop_meta_gradient
from .trainer import MetaTrainer


@dataclass(frozen=True)
class BenchResult:
    engine_it_s: float
    loop_it_s: float
    device: str

    @property
    def speedup(self) -> float:
        return self.engine_it_s / self.loop_it_s

    def to_dict(self) -> dict:
        return {"engine_it_s": round(self.engine_it_s, 2), "loop_it_s": round(self.loop_it_s, 2),
                "speedup": round(self.speedup, 2), "device": self.device}


def bench_speed(config: ExperimentConfig, rounds: int = 6, engine_steps: int = 40, loop_steps: int = 4,
                n_batches: int = 4) -> BenchResult:
    """Meta-iterations/s of the engine vs the per-task autograd loop (both include the Adam step)."""
    trainer = MetaTrainer(config)
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

    for b in batches:  # warm-up
        trainer.step(b)
        loop_step(b)
    engine_time = loop_time = 0.0
    for r in range(rounds):
        start = time.perf_counter()
        for i in range(engine_steps):
            trainer.step(batches[i % n_batches])
        engine_time += time.perf_counter() - start
        start = time.perf_counter()
        for i in range(loop_steps):
            loop_step(batches[i % n_batches])
        loop_time += time.perf_counter() - start
    return BenchResult(rounds * engine_steps / engine_time, rounds * loop_steps / loop_time, str(trainer.device))


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
