"""``maml-gui bench --conv``'s image-speed numbers: evaluation of held-out episodes and first-order
training, the engine's grouped convolutions side by side with per-task convolutions, in one
process, interleaved part by part on the same episodes (so a shared machine's drift hits both).

Evaluation: the issue's setting (28×28 grey, max-pool, 64 channels, 5-way 1-shot, 5 query per
class, steps 0,1,5,10, meta-learned and scratch weights) against a plain per-task loop (the
``nn.Module`` twin, SGD with ``autograd.grad``, query accuracy at the asked steps). First-order MAML:
the Omniglot setting (stride, meta-batch 32, 15 query per class) against the same engine running
one convolution per task (the formulation training used before) and the per-task autograd loop.
"""

from __future__ import annotations

import resource
import time

import torch

from core.algorithms.reference import loop_meta_gradient
from core.nets.conv import ConvNet
from core.tasks import TaskBatch
from core.trained.evaluation import chunk_size, per_step_scores
from core.training.bench import (OMNIGLOT, _conv_setup, image_batches, interleaved_seconds, meta_stepper,
                                 step_peak_bytes)

EVALUATION = {"channels": 64, "depth": 4, "image": (1, 28, 28), "ways": 5, "shots": 1, "query": 5, "meta_batch": 1,
              "inner_steps": 1, "inner_lr": 0.4, "downsample": "max", "steps": (0, 1, 5, 10)}
QUICK_TASKS = 40


class PerTaskConvNet(ConvNet):
    """The conv net with one ordinary convolution per task everywhere (the formulation every path
    ran before grouped convolutions): the baseline the grouped engine is timed against."""

    def forward(self, params, x):
        if x.dim() == 4 or not self._body_per_task(params):
            return super().forward(params, x)
        return self._forward_loop(params, x)


def _setup(algorithm: str, setting: dict, per_task: bool = False):
    net, params, algo, rates = _conv_setup(algorithm, setting, torch.device("cpu"), torch.Generator().manual_seed(0))
    if per_task:
        baseline = PerTaskConvNet(net.spec, net.input_shape, net.output_dim, setting["inner_steps"])
        algo.net = baseline
        net = baseline
    return net, params, algo, rates


def loop_scores(module, params: dict, batch: TaskBatch, steps: int, at, lr: float) -> torch.Tensor:
    """``[len(at), T]`` query accuracy of plain per-task fine-tuning: the reference evaluation."""
    rows = torch.zeros(len(at), batch.n_tasks)
    for t in range(batch.n_tasks):
        fast = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
        for s in range(steps + 1):
            if s in at:
                with torch.no_grad():
                    out = torch.func.functional_call(module, fast, (batch.query_x[t],))
                rows[at.index(s), t] = (out.argmax(-1) == batch.query_y[t]).float().mean()
            if s == steps:
                break
            loss = torch.nn.functional.cross_entropy(torch.func.functional_call(module, fast, (batch.support_x[t],)),
                                                     batch.support_y[t])
            grads = torch.autograd.grad(loss, list(fast.values()))
            fast = {n: (p - lr * g).detach().requires_grad_(True) for (n, p), g in zip(fast.items(), grads)}
    return rows


def bench_evaluation(tasks: int = 600, parts: int = 0) -> dict:
    """Seconds to evaluate ``tasks`` held-out episodes (meta-learned and scratch weights) with the
    engine and with the per-task loop, interleaved part by part, and each one's peak tensor bytes
    over one chunk's worth of episodes (the peak of a chunk: it does not grow with the tasks)."""
    setting = EVALUATION
    net, params, algo, rates = _setup("fomaml", setting)
    scratch = {n: p.detach() for n, p in net.init(torch.Generator().manual_seed(1)).items()}
    gen = torch.Generator().manual_seed(2)
    batch = image_batches({**setting, "meta_batch": tasks}, 1, "cpu", gen)[0]
    steps, at = max(setting["steps"]), setting["steps"]
    chunk = chunk_size(net, params, batch)
    module = net.module()
    lr = setting["inner_lr"]
    parts = parts or max(1, min(10, tasks // max(chunk, 1)))
    bounds = [round(k * tasks / parts) for k in range(parts + 1)]
    pieces = [_tasks(batch, a, b) for a, b in zip(bounds, bounds[1:]) if b > a]

    def engine(b):
        per_step_scores(algo, params, rates, b, steps, at=at)
        per_step_scores(algo, scratch, rates, b, steps, at=at)

    def loop(b):
        loop_scores(module, params, b, steps, at, lr)
        loop_scores(module, scratch, b, steps, at, lr)

    engine(pieces[0])   # warm-up (one part, not timed)
    seconds = [0.0, 0.0]
    for piece in pieces:
        for k, run in enumerate((engine, loop)):
            start = time.perf_counter()
            run(piece)
            seconds[k] += time.perf_counter() - start
    sample = _tasks(batch, 0, min(tasks, 2 * chunk))
    return {"setting": {k: v for k, v in setting.items() if k != "meta_batch"}, "tasks": tasks, "chunk": chunk,
            "threads": torch.get_num_threads(), "engine_s": seconds[0], "loop_s": seconds[1],
            "speedup": seconds[1] / seconds[0],
            "peak_mib": {"engine": step_peak_bytes(lambda: engine(sample))[0] / 2**20,
                         "loop": step_peak_bytes(lambda: loop(_tasks(batch, 0, 2)))[0] / 2**20},
            "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def bench_first_order(rounds: int = 2, steps: int = 2, meta_batch: int | None = None) -> dict:
    """First-order MAML meta-gradients/s at the Omniglot setting: the engine (grouped convolutions),
    the same engine with one convolution per task, and the per-task autograd loop, interleaved."""
    setting = {**OMNIGLOT, **({"meta_batch": meta_batch} if meta_batch else {})}
    _, params, algo, rates = _setup("fomaml", setting)
    _, _, per_task, _ = _setup("fomaml", setting, per_task=True)
    module = algo.net.module()
    batches = image_batches(setting, 2, "cpu", torch.Generator().manual_seed(3))

    def loop(batch):
        loop_meta_gradient(module, params, batch, setting["inner_steps"], setting["inner_lr"], first_order=True,
                           classification=True)

    grouped_s, per_task_s, loop_s = interleaved_seconds([(meta_stepper(algo, params, rates), steps),
                                                         (meta_stepper(per_task, params, rates), steps),
                                                         (loop, steps)], batches, rounds)
    n = rounds * steps
    return {"setting": setting, "threads": torch.get_num_threads(), "engine_it_s": n / grouped_s,
            "per_task_it_s": n / per_task_s, "loop_it_s": n / loop_s, "speedup_vs_per_task": per_task_s / grouped_s,
            "speedup_vs_loop": loop_s / grouped_s}


def _tasks(batch: TaskBatch, start: int, end: int) -> TaskBatch:
    return TaskBatch(batch.support_x[start:end], batch.support_y[start:end], batch.query_x[start:end],
                     batch.query_y[start:end])


def image_lines(evaluation: dict, first_order: dict) -> list[str]:
    """Both results as lines for a terminal."""
    s = evaluation["setting"]
    f = first_order["setting"]
    return [f"evaluation of {evaluation['tasks']} episodes (conv-4, {s['channels']} channels, {s['image'][1]}×"
            f"{s['image'][2]}, {s['downsample']}-pool, {s['ways']}-way {s['shots']}-shot, {s['query']} query per class, "
            f"steps {','.join(map(str, s['steps']))}, meta-learned and scratch; {evaluation['threads']} thread(s)): "
            f"engine {evaluation['engine_s']:.1f} s ({evaluation['chunk']} episodes a chunk), per-task loop "
            f"{evaluation['loop_s']:.1f} s: {evaluation['speedup']:.2f}x; peak tensor memory engine "
            f"{evaluation['peak_mib']['engine']:.0f} MiB, loop {evaluation['peak_mib']['loop']:.0f} MiB; process "
            f"max RSS {evaluation['max_rss_mib']:.0f} MiB",
            f"first-order MAML (Omniglot setting, stride, meta-batch {f['meta_batch']}, {f['query']} query per class; "
            f"{first_order['threads']} thread(s)): grouped {first_order['engine_it_s']:.2f} it/s, per-task "
            f"convolutions {first_order['per_task_it_s']:.2f} it/s ({first_order['speedup_vs_per_task']:.2f}x), "
            f"per-task autograd loop {first_order['loop_it_s']:.2f} it/s ({first_order['speedup_vs_loop']:.2f}x)"]
