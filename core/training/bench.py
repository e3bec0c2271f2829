"""Speed and memory measurements, printed as numbers (never asserted by timed unit tests).

The engine and the per-task loop run on the same pre-sampled batches, interleaved round by
round, so machine noise hits both alike and their ratio is meaningful.
"""

from __future__ import annotations

import contextlib
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

import torch

from core.algorithms import closed_form
from core.config import ExperimentConfig
from core.training.optim import MetaAdam
from core.algorithms.reference import loop_meta_gradient
from core.training.trainer import MetaTrainer


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
    code = "import sys; from core.training.bench import compile_seconds; compile_seconds(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, config.replace("train", compile="on").to_json()], env=env,
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, check=False)
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


# -- conv nets: the Omniglot setting ---------------------------------------------------------
OMNIGLOT = {"channels": 64, "depth": 4, "image": (1, 28, 28), "ways": 5, "shots": 1, "query": 15, "meta_batch": 32,
            "inner_steps": 1, "inner_lr": 0.4}


def step_peak_bytes(step, device: torch.device | str = "cpu") -> tuple[int, str]:
    """Peak bytes of tensors allocated by ``step()`` beyond those alive before it, and what measured it.

    CUDA: ``torch.cuda.max_memory_allocated`` (the caching allocator's own count). CPU: the torch
    profiler's memory timeline (every tensor created and destroyed during the step, summed in time
    order) — the same quantity, tensors only: no allocator slack, no Python objects."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before, "torch.cuda.max_memory_allocated"
    from torch.profiler import ProfilerActivity, profile

    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    # every allocation (+bytes) and release (−bytes) in time order; no stacks recorded, so it is cheap
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    current = peak = 0
    for _, size in events:
        current += size
        peak = max(peak, current)
    return peak, "torch profiler memory timeline (tensor bytes)"


@contextlib.contextmanager
def _native_stderr_silenced():
    """The profiler's C++ side logs start/stop lines straight to file descriptor 2; a bench prints
    its own numbers only."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _conv_setup(algorithm: str, setting: dict, device, generator: torch.Generator):
    from core.algorithms import build_algorithm
    from core.config import AlgorithmSpec, ModelSpec
    from core.nets.models import build_net

    spec = ModelSpec(name="conv4", conv_channels=setting["channels"], conv_depth=setting["depth"],
                     downsample=setting.get("downsample", "stride"))
    c, h, w = setting["image"]
    net = build_net(spec, c * h * w, setting["ways"], setting["image"], setting["inner_steps"])
    params = {n: p.requires_grad_(True) for n, p in net.init(generator, device).items()}
    algo = build_algorithm(AlgorithmSpec(name=algorithm, inner_steps=setting["inner_steps"], inner_lr=setting["inner_lr"]),
                           net, "classification")
    return net, params, algo, algo.make_rates(params)


def meta_stepper(algorithm, params: dict, rates):
    """One meta-gradient of ``algorithm`` per call, its gradients cleared first: what the benches time."""
    def step(batch):
        for p in params.values():
            p.grad = None
        algorithm.meta_step(params, rates, batch, 0)
    return step


def image_batches(setting: dict, n: int, device, generator: torch.Generator):
    """Random image episodes of the setting's shapes (the speed does not depend on the pixels)."""
    from core.tasks import TaskBatch

    t, ways, image = setting["meta_batch"], setting["ways"], setting["image"]

    def part(per_class):
        x = torch.randn(t, ways * per_class, *image, generator=generator)
        y = torch.arange(ways).repeat_interleave(per_class).expand(t, -1).contiguous()
        return x.to(device), y.to(device)

    return [TaskBatch(*part(setting["shots"]), *part(setting["query"])) for _ in range(n)]


def bench_conv(rounds: int = 2, steps: int = 2, n_batches: int = 2, device: str = "cpu", memory: bool = True,
               **overrides) -> dict:
    """The Omniglot setting (conv-4, 64 channels, 28×28 grey, 5-way 1-shot, 15 query per class,
    meta-batch 32, one inner step, second order): meta-gradients/s of the engine vs the per-task
    autograd loop on the same batches, interleaved, and the peak memory of one meta-gradient for
    both, plus the engine's peak for first-order MAML and ANIL. ``overrides`` change the setting
    (tests shrink it). Only the meta-gradient is timed (no optimiser step) on either side."""
    setting = {**OMNIGLOT, **overrides}
    where = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    net, params, algo, rates = _conv_setup("maml", setting, where, gen)
    batches = image_batches(setting, n_batches, where, gen)
    module = net.module().to(where)

    engine = meta_stepper(algo, params, rates)

    def loop(batch):
        loop_meta_gradient(module, params, batch, setting["inner_steps"], setting["inner_lr"], classification=True)

    engine_s, loop_s = interleaved_seconds([(engine, steps), (loop, steps)], batches, rounds)
    out = {"setting": setting, "device": str(where), "gradient_path": algo.gradient_path(params, rates),
           "engine_it_s": rounds * steps / engine_s, "loop_it_s": rounds * steps / loop_s}
    out["speedup"] = out["engine_it_s"] / out["loop_it_s"]
    if memory:
        out["peak_mib"] = {"engine": step_peak_bytes(lambda: engine(batches[0]), where)[0] / 2**20,
                           "loop": step_peak_bytes(lambda: loop(batches[0]), where)[0] / 2**20}
        out["peak_mib"].update(conv_peak_mib(("fomaml", "anil"), device, **overrides))
        out["memory_measured_by"] = step_peak_bytes(lambda: None, where)[1]
    return out


CONV_COMPILE_META_BATCH = 2   # the per-task loop is unrolled into the graph: compiling 32 tasks takes far too long


def bench_conv_compile(rounds: int = 2, steps: int = 2, n_batches: int = 2, device: str = "cpu",
                       backend: str = "inductor", **overrides) -> dict:
    """Why conv nets train eager: the Omniglot setting's second-order meta-gradient (at
    :data:`CONV_COMPILE_META_BATCH` tasks unless ``overrides`` say otherwise) eager and compiled,
    interleaved on the same batches, and the seconds the first compiled call took (tracing and
    compiling; with a warm kernel cache, less)."""
    from core.training.compiled import meta_step_numbers, traced_meta_gradient

    setting = {**OMNIGLOT, "meta_batch": CONV_COMPILE_META_BATCH, **overrides}
    where = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    _, params, algo, rates = _conv_setup("maml", setting, where, gen)
    batches = image_batches(setting, n_batches, where, gen)
    metas = [*params.values(), *rates.tensors.values()]
    traced = traced_meta_gradient(algo, metas, where, backend)

    def eager(batch):
        for p in metas:
            p.grad = None
        meta_step_numbers(algo, metas, params, rates, batch, 0)

    def compiled(batch):
        for p in metas:
            p.grad = None
        traced(params, rates, batch)

    start = time.perf_counter()
    compiled(batches[0])
    compile_s = time.perf_counter() - start
    eager_s, compiled_s = interleaved_seconds([(eager, steps), (compiled, steps)], batches, rounds)
    return {"setting": setting, "device": str(where), "backend": backend, "compile_s": compile_s,
            "eager_it_s": rounds * steps / eager_s, "compiled_it_s": rounds * steps / compiled_s,
            "speedup": eager_s / compiled_s}


def conv_peak_mib(algorithms=("maml", "fomaml", "anil"), device: str = "cpu", **overrides) -> dict[str, float]:
    """Peak MiB of one meta-gradient per algorithm at the Omniglot setting (``overrides`` change it)."""
    setting = {**OMNIGLOT, **overrides}
    where = torch.device(device)
    out = {}
    for name in algorithms:
        gen = torch.Generator().manual_seed(0)
        _, params, algo, rates = _conv_setup(name, setting, where, gen)
        batch = image_batches(setting, 1, where, gen)[0]
        algo.meta_step(params, rates, batch, 0)   # warm-up: one-time allocations are not the step's
        for p in params.values():
            p.grad = None
        out[name] = step_peak_bytes(lambda: algo.meta_step(params, rates, batch, 0), where)[0] / 2**20
    return out


def conv_lines(result: dict) -> list[str]:
    """``bench_conv``'s result as lines for a terminal."""
    s = result["setting"]
    lines = [f"conv-4 ({s['channels']} channels, {s['image'][1]}×{s['image'][2]}), {s['ways']}-way {s['shots']}-shot, "
             f"{s['query']} query per class, meta-batch {s['meta_batch']}, {s['inner_steps']} inner step(s), second order, "
             f"{result['device']} ({result['gradient_path']})",
             f"engine {result['engine_it_s']:.2f} it/s, per-task loop {result['loop_it_s']:.2f} it/s: "
             f"{result['speedup']:.2f}x"]
    if "peak_mib" in result:
        m = result["peak_mib"]
        lines.append(f"peak memory per meta-gradient: engine {m['engine']:.0f} MiB, loop {m['loop']:.0f} MiB; "
                     f"first order {m['fomaml']:.0f} MiB, ANIL {m['anil']:.0f} MiB ({result['memory_measured_by']})")
    return lines


def conv_compile_lines(result: dict) -> list[str]:
    """``bench_conv_compile``'s result as lines for a terminal."""
    s = result["setting"]
    return [f"conv-4 ({s['channels']} channels, {s['image'][1]}×{s['image'][2]}), {s['ways']}-way {s['shots']}-shot, "
            f"{s['query']} query per class, meta-batch {s['meta_batch']}, second order, {result['device']}",
            f"eager {result['eager_it_s']:.2f} it/s, compiled {result['compiled_it_s']:.2f} it/s: "
            f"{result['speedup']:.2f}x, after {result['compile_s']:.1f} s of compiling (the first call); "
            "training keeps conv nets eager"]


def estimate_peak_bytes(config: ExperimentConfig, family, n_weights: int | None = None) -> int:
    """A quick estimate (no network is run) of the extra bytes one meta-iteration needs: every
    support and query image's activations kept for the backward pass, twice for the support
    passes when the inner loop is differentiated to second order, and per-task weight copies.
    For a warning such as "would not fit; try first order or ANIL" before a run starts; errs high by
    about 20 % against :func:`step_peak_bytes` for conv nets. ``n_weights``: the network's size,
    when the caller built it already (else the network is built to count them)."""
    from core.nets.models import build_net

    shape = getattr(family, "input_shape", None)
    if n_weights is None or config.model.name == "conv4":   # conv-4 without images is refused here
        net = build_net(config.model, family.input_dim, family.output_dim, input_shape=shape,
                        inner_steps=config.algorithm.inner_steps)
    if n_weights is None:
        n_weights = sum(p.numel() for p in net.init(torch.Generator().manual_seed(0)).values())
    t, a = config.train, config.algorithm
    ways = family.output_dim if family.kind == "classification" and shape is not None else 1
    n_support, n_query = t.shots * ways, t.query * ways
    if config.model.name == "conv4":
        per_image = net.activation_floats()   # fitted: MAML measured 102 MiB / estimated 163, first order 91 / 154,
        # ANIL 156 / 147 at the Omniglot setting, meta-batch 8 (per-task loop formulation)
    else:
        per_image = 2 * (sum(config.model.hidden) + family.output_dim)
    second = a.name in ("maml", "metasgd", "mamlpp")   # ANIL differentiates only the head twice
    support = n_support * a.inner_steps * (2 if second else 1)
    adapted = 0 if a.name in ("anil", "pretrain") else n_weights * t.meta_batch * (a.inner_steps + 1)
    return int(4 * (t.meta_batch * per_image * (support + n_query) + adapted + 4 * n_weights))
