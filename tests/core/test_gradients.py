"""The vectorised meta-gradient against independent references: a per-task autograd loop and
finite differences. These fail if the inner loop, the batching or second order is wrong."""

import pytest
import torch
from torch import nn

from core.algorithms import build_algorithm, closed_form, one_step
from core.nets.models import ModuleNet
from core.training.trainer import MetaTrainer

from ..helpers import assert_finite_differences, engine_and_loop, max_rel_error, tiny_config

CASES = [
    ("sinusoid", "relu", (40, 40), 1),  # relu MLPs take the closed-form gradient by default
    ("sinusoid", "tanh", (16, 8), 3),
    ("polynomial", "gelu", (12,), 2),   # gelu has no hand-written backward: generic autograd path
    ("blobs", "relu", (16, 16), 2),
    ("blobs", "sigmoid", (10,), 1),
]


def engine_and_reference(family, activation, hidden, steps, algorithm, seed=0):
    config = tiny_config(family, algorithm, steps, hidden, activation, meta_batch=6, seed=seed, inner_lr=0.05)
    return engine_and_loop(MetaTrainer(config), algorithm, steps, family == "blobs", config.algorithm.inner_lr)


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "metasgd"])
@pytest.mark.parametrize("family,activation,hidden,steps", CASES)
def test_meta_gradient_matches_per_task_loop(algorithm, family, activation, hidden, steps):
    loss, engine, ref_loss, ref = engine_and_reference(family, activation, hidden, steps, algorithm)
    assert abs(float(loss) - float(ref_loss)) <= 1e-5 * max(1.0, abs(float(ref_loss)))
    assert set(engine) == set(ref)
    for name in ref:
        assert max_rel_error(engine[name], ref[name]) <= 1e-5, name


def test_second_order_differs_from_first_order():
    _, second, _, _ = engine_and_reference("sinusoid", "tanh", (16, 16), 2, "maml")
    _, first, _, _ = engine_and_reference("sinusoid", "tanh", (16, 16), 2, "fomaml")
    diff = max(max_rel_error(second[n], first[n]) for n in second)
    assert diff > 1e-3


def test_generic_module_path_matches_fast_path():
    """Any nn.Module can be meta-trained: the vmap path gives the same gradient as the MLP fast path."""
    torch.manual_seed(0)
    config = tiny_config("sinusoid", "maml", 2, (8, 8), "tanh", meta_batch=5)
    trainer = MetaTrainer(config)
    batch = trainer.sample_batch()
    trainer.optimizer.zero_grad()
    trainer.algorithm.meta_step(trainer.params, trainer.rates, batch, 0)
    fast = {n: p.grad.clone() for n, p in trainer.params.items()}

    module = trainer.net.module()
    generic = ModuleNet(module)
    params = {n: p.detach().clone().requires_grad_(True) for n, p in trainer.params.items()}
    algorithm = build_algorithm(config.algorithm, generic, "regression")
    algorithm.meta_step(params, algorithm.make_rates(params), batch, 0)
    for n in fast:
        assert max_rel_error(params[n].grad, fast[n]) <= 1e-5, n


@pytest.mark.parametrize("activation", ["gelu", "tanh", "relu"])  # autograd; closed form, smooth and piecewise linear
@pytest.mark.parametrize("algorithm", ["maml", "metasgd", "mamlpp"])
@pytest.mark.parametrize("steps", [1, 2])   # one step of relu MAML: the one-step kernels
def test_finite_differences_float64(algorithm, activation, steps):
    """Central differences of the meta-loss agree with the analytic meta-gradient (float64)."""
    config = tiny_config("sinusoid", algorithm, steps, (4,), activation, meta_batch=3, shots=4, query=5)
    trainer = MetaTrainer(config)
    params = {n: p.detach().double().requires_grad_(True) for n, p in trainer.params.items()}
    rates = trainer.algorithm.make_rates(params)
    for t in rates.tensors.values():
        t.requires_grad_(True)
    batch = trainer.sample_batch()
    batch.support_x, batch.support_y = batch.support_x.double(), batch.support_y.double()
    batch.query_x, batch.query_y = batch.query_x.double(), batch.query_y.double()
    iteration = 10**6  # MAML++: fully annealed, second order

    def meta_loss():
        for p in [*params.values(), *rates.tensors.values()]:
            p.grad = None
        return float(trainer.algorithm.meta_step(params, rates, batch, iteration).meta_loss)

    meta_loss()
    leaves = {**params, **{f"inner_lr.{n}": t for n, t in rates.tensors.items()}}
    analytic = {n: p.grad.clone() for n, p in leaves.items()}
    assert_finite_differences(leaves, analytic, meta_loss, per_tensor=3, seed=1)


def test_anil_adapts_only_the_head():
    config = tiny_config("sinusoid", "anil", 3)
    trainer = MetaTrainer(config)
    batch = trainer.sample_batch()
    trajectory = trainer.algorithm.adapt(trainer.params, trainer.rates, batch.support_x, batch.support_y, 3)
    head = set(trainer.net.head_names)
    for name, p in trainer.params.items():
        final = trajectory[-1][name]
        if name in head:
            assert final.shape[0] == batch.n_tasks and not torch.allclose(final, p.detach().expand_as(final))
        else:
            assert torch.equal(final, p.detach())


def test_reptile_gradient_is_the_mean_displacement():
    config = tiny_config("sinusoid", "reptile", 3)
    trainer = MetaTrainer(config)
    batch = trainer.sample_batch()
    module = trainer.net.module()
    trainer.optimizer.zero_grad()
    trainer.algorithm.meta_step(trainer.params, trainer.rates, batch, 0)
    # independent: plain SGD per task with an nn.Module copy
    expected = {n: torch.zeros_like(p) for n, p in trainer.params.items()}
    for t in range(batch.n_tasks):
        module.load_state_dict({n: p.detach() for n, p in trainer.params.items()})
        opt = torch.optim.SGD(module.parameters(), lr=config.algorithm.inner_lr)
        for _ in range(3):
            opt.zero_grad()
            nn.functional.mse_loss(module(batch.support_x[t]), batch.support_y[t]).backward()
            opt.step()
        for n, p in module.named_parameters():
            expected[n] += (trainer.params[n].detach() - p.detach()) / batch.n_tasks
    for n, p in trainer.params.items():
        assert max_rel_error(p.grad, expected[n]) <= 1e-5, n


def _float64_grads(trainer, batch, iteration: int, path: str):
    """``path``: "default" (one-step kernels where they apply, else the closed form), "general"
    (the multi-step closed form, forced) or "autograd"."""
    params = {n: p.detach().double().requires_grad_(True) for n, p in trainer.params.items()}
    rates = trainer.algorithm.make_rates(params)
    gen = torch.Generator().manual_seed(3)
    for t in rates.tensors.values():
        with torch.no_grad():
            t.copy_(0.01 + 0.09 * torch.rand(t.shape, generator=gen, dtype=t.dtype))
        t.requires_grad_(True)
    trainer.algorithm.closed_form = path != "autograd"
    if path == "general":
        result = closed_form.meta_step(trainer.algorithm, params, rates, batch, iteration)
    else:
        result = trainer.algorithm.meta_step(params, rates, batch, iteration)
    grads = {n: p.grad for n, p in params.items()}
    grads.update({f"inner_lr.{n}": t.grad for n, t in rates.tensors.items()})
    return result, grads


@pytest.mark.parametrize("family", ["sinusoid", "blobs"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("algorithm,iteration", [("maml", 0), ("fomaml", 0), ("metasgd", 0),
                                                 ("mamlpp", 0), ("mamlpp", 700), ("mamlpp", 10**6)])
@pytest.mark.parametrize("steps,hidden", [(1, (8, 8)), (1, (5, 5, 5)), (3, (6,))])
@pytest.mark.parametrize("path", ["default", "general"])
def test_closed_form_matches_autograd_path(family, activation, algorithm, iteration, steps, hidden, path):
    """The hand-derived gradient equals the batched-autograd one in float64 (MAML++ at three
    points of its schedule: first order with the multi-step loss, second order mid-anneal, final)."""
    config = tiny_config(family, algorithm, steps, hidden, activation, meta_batch=4)
    trainer = MetaTrainer(config)
    assert closed_form.applies(trainer.net, trainer.algorithm.adapt_names, trainer.params)
    batch = trainer.sample_batch()
    batch.support_x, batch.query_x = batch.support_x.double(), batch.query_x.double()
    if family != "blobs":
        batch.support_y, batch.query_y = batch.support_y.double(), batch.query_y.double()
    fast, fast_grads = _float64_grads(trainer, batch, iteration, path)
    slow, slow_grads = _float64_grads(trainer, batch, iteration, "autograd")
    assert set(fast_grads) == set(slow_grads)
    for name in slow_grads:
        assert max_rel_error(fast_grads[name], slow_grads[name]) <= 1e-10, name
    assert torch.allclose(fast.step_losses, slow.step_losses, rtol=1e-12, atol=0)
    assert float(fast.meta_loss) == pytest.approx(float(slow.meta_loss), rel=1e-12)
    if family == "blobs":
        assert torch.equal(fast.step_accuracy, slow.step_accuracy)


def test_closed_form_is_the_default_only_where_it_is_exact():
    """MLPs adapting every weight take it when their activation has hand-written first and second
    derivatives; GELU, SiLU and ANIL keep autograd."""
    def uses(algorithm, activation):
        trainer = MetaTrainer(tiny_config("sinusoid", algorithm, 1, (8,), activation))
        return closed_form.applies(trainer.net, trainer.algorithm.adapt_names, trainer.params)

    assert uses("maml", "relu") and uses("metasgd", "leaky_relu") and uses("mamlpp", "relu") and uses("maml", "tanh")
    assert uses("maml", "sigmoid") and not uses("maml", "gelu") and not uses("maml", "silu") and not uses("anil", "relu")


@pytest.mark.parametrize("algorithm,steps,activation,path", [
    ("maml", 1, "relu", "closed form, one-step kernels"), ("maml", 2, "relu", "closed form"),
    ("metasgd", 1, "tanh", "closed form"), ("maml", 1, "gelu", "batched autograd"),
    ("anil", 1, "relu", "batched autograd")])
def test_the_trainer_names_its_gradient_path(algorithm, steps, activation, path):
    """The run summary and the window's device tooltip say which path computes the meta-gradient."""
    assert MetaTrainer(tiny_config("sinusoid", algorithm, steps, (8,), activation)).gradient_path == path


def test_one_step_kernels_serve_exactly_one_fixed_rate_step():
    def served(algorithm, steps, hidden=(8,), activation="relu"):
        trainer = MetaTrainer(tiny_config("sinusoid", algorithm, steps, hidden, activation))
        return one_step.applies(trainer.algorithm, trainer.params, trainer.rates)

    assert served("maml", 1) and served("fomaml", 1) and served("maml", 1, hidden=(4, 4, 4))
    assert not served("maml", 2) and not served("metasgd", 1) and not served("mamlpp", 1)
    assert not served("maml", 1, activation="tanh")   # its second-derivative term is the general closed form's
