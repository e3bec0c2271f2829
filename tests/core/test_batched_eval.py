"""Evaluation of conv nets at batched speed: grouped fine-tuning equals a plain per-task loop, held-out
tasks are adapted in memory-bounded chunks, and the query set is scored only at the steps asked for."""

import pytest
import torch
from torch import nn

import core.nets.conv
import core.trained.evaluation as evaluation
from core.algorithms import build_algorithm
from core.config import AlgorithmSpec, ModelSpec
from core.nets.models import build_net
from core.tasks import TaskBatch
from core.trained.evaluation import chunk_size, evaluate, per_step_scores
from core.training.bench import step_peak_bytes
from core.training.trainer import MetaTrainer

from ..helpers import max_rel_error, tiny_config

SHAPE = (2, 8, 8)
WAYS = 3
CASES = [(norm, downsample) for norm in ("batch", "per_step", "off") for downsample in ("max", "stride")]


def episodes(generator, tasks, shots=2, query=3):
    def part(per_class):
        x = torch.randn(tasks, WAYS * per_class, *SHAPE, generator=generator)
        return x, torch.arange(WAYS).repeat_interleave(per_class).expand(tasks, -1).contiguous()

    return TaskBatch(*part(shots), *part(query))


def conv_setup(norm="batch", downsample="max", steps=3, channels=3, seed=0):
    spec = ModelSpec(name="conv4", conv_channels=channels, conv_depth=2, downsample=downsample, batch_norm=norm)
    net = build_net(spec, 128, WAYS, SHAPE, inner_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    params = net.init(gen)
    for name, p in params.items():
        if ".norm." in name:   # every per-step set differs, some scales negative
            p.add_(0.5 * torch.randn(p.shape, generator=gen))
    algo = build_algorithm(AlgorithmSpec(name="fomaml", inner_steps=steps, inner_lr=0.3), net, "classification")
    return net, params, algo, algo.make_rates(params), gen


@pytest.mark.parametrize("norm,downsample", CASES)
def test_grouped_fine_tuning_matches_a_per_task_loop(norm, downsample, monkeypatch):
    """Every step's adapted weights and query logits equal plain SGD on the nn.Module twin, task by
    task (5 tasks, grouped 2 at a time as a CPU runs them)."""
    monkeypatch.setattr(core.nets.conv, "TASK_GROUP", 2)
    net, params, algo, rates, gen = conv_setup(norm, downsample)
    batch = episodes(gen, 5)
    trajectory = algo.adapt(params, rates, batch.support_x, batch.support_y, 3)
    fixed = set(net.meta_only_names)   # per-step batch-norm sets are meta-learned, never adapted
    for t in range(batch.n_tasks):
        module = net.module()
        module.load_state_dict(params)
        opt = torch.optim.SGD([p for n, p in module.named_parameters() if n not in fixed], lr=0.3)
        for s in range(4):
            with torch.no_grad():
                expected = module(batch.query_x[t], step=s)
                got = net.forward({n: p[t] if p.dim() > params[n].dim() else p for n, p in trajectory[s].items()},
                                  batch.query_x[t])
            assert max_rel_error(got, expected) <= 1e-5, (t, s)
            for n, p in module.named_parameters():
                if n not in fixed:
                    assert max_rel_error(trajectory[s][n][t], p.detach()) <= 1e-5, (t, s, n)
            opt.zero_grad()
            nn.functional.cross_entropy(module(batch.support_x[t], step=s), batch.support_y[t]).backward()
            opt.step()


def test_scores_do_not_depend_on_the_chunk(monkeypatch):
    monkeypatch.setattr(core.nets.conv, "TASK_GROUP", 3)
    net, params, algo, rates, gen = conv_setup("batch", "stride")
    batch = episodes(gen, 7)
    whole = per_step_scores(algo, params, rates, batch, 2, chunk=7)
    assert torch.equal(per_step_scores(algo, params, rates, batch, 2, chunk=2), whole)
    assert torch.equal(per_step_scores(algo, params, rates, batch, 2, at=(0, 2)), whole[[0, 2]])


def test_the_chunk_is_sized_from_the_memory_estimate():
    """The issue's setting (28×28 grey, max-pool, 64 channels, 5-way 1-shot, 5 query per class): a few
    tasks per 256 MiB, many more for a small net, fewer for a smaller budget."""
    spec = ModelSpec(name="conv4", conv_channels=64, conv_depth=4, downsample="max")
    net = build_net(spec, 784, 5, (1, 28, 28))
    params = net.init(torch.Generator().manual_seed(0))
    batch = TaskBatch(torch.zeros(1, 5, 1, 28, 28), torch.zeros(1, 5, dtype=torch.long),
                      torch.zeros(1, 25, 1, 28, 28), torch.zeros(1, 25, dtype=torch.long))
    assert 4 <= chunk_size(net, params, batch) <= 16
    assert chunk_size(net, params, batch, budget=2**20) == 1
    small, small_params, *_ = conv_setup()
    assert chunk_size(small, small_params, episodes(torch.Generator(), 1)) > 16


def test_peak_memory_does_not_grow_with_the_number_of_tasks(monkeypatch):
    """600 held-out tasks take no more memory than 50 (tensor bytes allocated while scoring, from
    the torch profiler), and both stay within the budget the chunks are sized for."""
    budget = 3 * 2**20
    monkeypatch.setattr(evaluation, "EVAL_MEMORY", budget)
    net, params, algo, rates, gen = conv_setup("batch", "max", steps=2, channels=8)
    batches = {n: episodes(gen, n, shots=3, query=5) for n in (50, 600)}
    assert 4 <= chunk_size(net, params, batches[50]) < 50   # so 50 tasks already fill a chunk
    peak = {n: step_peak_bytes(lambda b=b: per_step_scores(algo, params, rates, b, 2))[0] for n, b in batches.items()}
    assert peak[600] <= 1.1 * peak[50] + 2**16, peak
    assert peak[600] <= budget, peak


def count_query_forwards(net, monkeypatch, query_points: int) -> list[int]:
    """Records every forward of ``net`` on query-sized inputs (the support sets have another size)."""
    calls, forward = [], net.forward

    def counting(params, x):
        if x.shape[-2 if x.dim() == 3 else 1] == query_points:
            calls.append(x.shape[0])
        return forward(params, x)

    monkeypatch.setattr(net, "forward", counting)
    return calls


def test_query_set_is_scored_only_at_the_asked_steps(monkeypatch):
    """``evaluate --steps 0,5``: two query passes per network (meta-learned and scratch), while the
    adaptation runs all five steps (its support passes are counted apart)."""
    net, params, algo, rates, gen = conv_setup("batch", "max", steps=1)
    batch = episodes(gen, 6)
    calls = count_query_forwards(net, monkeypatch, WAYS * 3)
    support = []
    real_step = evaluation.Algorithm.adapt_steps

    def adapt_steps(self, *args):
        for p in real_step(self, *args):
            support.append(1)
            yield p

    monkeypatch.setattr(evaluation.Algorithm, "adapt_steps", adapt_steps)
    scores = per_step_scores(algo, params, rates, batch, 5, chunk=6, at=(0, 5))
    assert scores.shape == (2, 6) and len(calls) == 2 and len(support) == 6   # steps 0..5 all run


def test_evaluate_scores_the_asked_steps_and_step_zero_for_a_loss(monkeypatch):
    """A loss is also scored at step 0 (the level that tells a diverged task); the summary has the asked steps."""
    trainer = MetaTrainer(tiny_config(meta_batch=2, shots=4, query=7))
    calls = count_query_forwards(trainer.net, monkeypatch, 7)
    result = evaluate(trainer.algorithm, trainer.params, trainer.rates, trainer.family, tasks=10, shots=4,
                      steps=(2, 5), query=7)
    assert len(calls) == 2 * 3 and set(result.model.mean) == {2, 5}
    whole = per_step_scores(trainer.algorithm, trainer.params, trainer.rates,
                            evaluation.held_out_tasks(trainer.family, 10, 4, 7, 0), 5)
    assert result.model.mean[5] == pytest.approx(float(whole[5].mean()), rel=1e-6)
