"""Conv nets (the MAML paper's conv-4): the engine's meta-gradient against a plain per-task autograd
loop and against finite differences, for every algorithm and batch-norm mode; per-task batch
statistics; the plain nn.Module twin; config and build errors. Tiny nets, so the file runs in seconds."""

import pytest
import torch
from torch import nn

from core.algorithms import build_algorithm, closed_form, one_step
from core.config import AlgorithmSpec, ExperimentConfig, FamilySpec, ModelSpec
from core.nets.conv import ConvNet
from core.errors import ConfigError
from core.nets.models import ImageMLPNet, MLPNet, build_net
from core.algorithms.reference import loop_meta_gradient
from core.tasks import TaskBatch

from ..helpers import assert_finite_differences, max_rel_error

SHAPE = (2, 8, 8)
WAYS = 3


def episodes(generator, tasks=3, shots=2, query=3, dtype=torch.float32):
    def part(per_class):
        x = torch.randn(tasks, WAYS * per_class, *SHAPE, generator=generator, dtype=dtype)
        y = torch.randint(WAYS, (tasks, WAYS * per_class), generator=generator)
        return x, y

    return TaskBatch(*part(shots), *part(query))


def setup(algorithm, norm="batch", downsample="max", steps=2, dtype=torch.float32, seed=0):
    """A tiny conv net with random batch-norm weights (so every per-step set differs) and random
    learned rates (so a wrong broadcast would show)."""
    spec = ModelSpec(name="conv4", conv_channels=3, conv_depth=2, downsample=downsample, batch_norm=norm)
    net = build_net(spec, 128, WAYS, SHAPE, inner_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    params = net.init(gen, dtype=dtype)
    for name, p in params.items():
        if ".norm." in name:
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=dtype))
    params = {n: p.requires_grad_(True) for n, p in params.items()}
    algo = build_algorithm(AlgorithmSpec(name=algorithm, inner_steps=steps, inner_lr=0.3), net, "classification")
    rates = algo.make_rates(params)
    with torch.no_grad():
        for t in rates.tensors.values():
            t.uniform_(0.1, 0.4, generator=gen)
    for t in rates.tensors.values():
        t.requires_grad_(True)
    return net, params, algo, rates, episodes(gen, dtype=dtype)


def engine_gradient(algo, params, rates, batch, iteration):
    for p in [*params.values(), *rates.tensors.values()]:
        p.grad = None
    result = algo.meta_step(params, rates, batch, iteration)
    grads = {n: p.grad.clone() for n, p in params.items()}
    grads.update({f"inner_lr.{n}": t.grad.clone() for n, t in rates.tensors.items()})
    return result, grads


CASES = [(norm, downsample) for norm in ("batch", "per_step", "off") for downsample in ("max", "stride")]


@pytest.fixture(params=[("loop", 8), ("grouped", 2)])
def formulation(request, monkeypatch):
    """Both exact per-task formulations of second-order inner steps, and grouped convolutions over
    all 3 tasks at once or 2 at a time (as on a CPU with more tasks than TASK_GROUP)."""
    import core.nets.conv

    second_order, group = request.param
    monkeypatch.setattr(core.nets.conv, "SECOND_ORDER", second_order)
    monkeypatch.setattr(core.nets.conv, "TASK_GROUP", group)
    return request.param


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "metasgd", "mamlpp", "anil"])
@pytest.mark.parametrize("norm,downsample", CASES)
def test_meta_gradient_matches_per_task_loop(algorithm, norm, downsample, formulation):
    net, params, algo, rates, batch = setup(algorithm, norm, downsample)
    iteration = 600   # MAML++: second order, multi-step loss weights not yet annealed to the last step
    _, engine = engine_gradient(algo, params, rates, batch, iteration)
    weights = algo.step_weights(iteration)
    loss, ref = loop_meta_gradient(net.module(), params, batch, 2, dict(rates.tensors) or 0.3,
                                   first_order=not algo.second_order_at(iteration), classification=True,
                                   adapt_names=algo.adapt_names, per_step_rates=rates.mode == "per_step",
                                   step_weights=None if weights is None else weights.tolist())
    assert set(engine) == set(ref)
    for name in ref:
        assert max_rel_error(engine[name], ref[name]) <= 1e-5, name
    assert any(float(g.abs().max()) > 0 for n, g in engine.items() if n.startswith("blocks.0")) or algorithm == "anil"


def test_second_order_differs_from_first_order():
    _, params, algo, rates, batch = setup("maml")
    _, second = engine_gradient(algo, params, rates, batch, 0)
    _, params1, algo1, rates1, batch1 = setup("fomaml")
    _, first = engine_gradient(algo1, params1, rates1, batch1, 0)
    assert max(max_rel_error(second[n], first[n]) for n in second) > 1e-4


@pytest.mark.parametrize("algorithm,norm", [("maml", "batch"), ("metasgd", "off"), ("mamlpp", "per_step")])
def test_finite_differences_float64(algorithm, norm):
    """Central differences of the meta-loss agree with the engine's meta-gradient (float64)."""
    _, params, algo, rates, batch = setup(algorithm, norm, "stride", dtype=torch.float64)
    iteration = 10**6   # MAML++: second order, the meta-loss is the last step's query loss
    result, analytic = engine_gradient(algo, params, rates, batch, iteration)
    leaves = {**params, **{f"inner_lr.{n}": t for n, t in rates.tensors.items()}}

    def meta_loss():
        with torch.enable_grad():
            value = float(algo.meta_step(params, rates, batch, iteration).meta_loss)
        for p in leaves.values():
            p.grad = None
        return value

    assert_finite_differences(leaves, analytic, meta_loss, per_tensor=1, seed=3)   # one element of every tensor


def test_reptile_and_pretrain_match_plain_loops():
    """Reptile's gradient is θ minus the mean of per-task SGD; pretrain's is the joint loss's gradient."""
    net, params, algo, rates, batch = setup("reptile", "batch", "stride", steps=2)
    _, engine = engine_gradient(algo, params, rates, batch, 0)
    module = net.module()
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    for t in range(batch.n_tasks):
        module.load_state_dict({n: p.detach() for n, p in params.items()})
        opt = torch.optim.SGD(module.parameters(), lr=0.3)
        for _ in range(2):
            opt.zero_grad()
            nn.functional.cross_entropy(module(batch.support_x[t]), batch.support_y[t]).backward()
            opt.step()
        for n, p in module.named_parameters():
            expected[n] += (params[n].detach() - p.detach()) / batch.n_tasks
    for n in params:
        assert max_rel_error(engine[n], expected[n]) <= 1e-5, n

    net, params, algo, rates, batch = setup("pretrain", "batch", "max")
    _, engine = engine_gradient(algo, params, rates, batch, 0)
    module = net.module()
    module.load_state_dict({n: p.detach() for n, p in params.items()})
    x, y = torch.cat([batch.support_x, batch.query_x], 1), torch.cat([batch.support_y, batch.query_y], 1)
    sum(nn.functional.cross_entropy(module(x[t]), y[t]) for t in range(batch.n_tasks)).div(batch.n_tasks).backward()
    for n, p in module.named_parameters():
        assert max_rel_error(engine[n], p.grad) <= 1e-5, n


def test_per_step_batch_norm_is_refused_by_reptile_and_pretrain():
    spec = ModelSpec(name="conv4", conv_channels=3, conv_depth=2, batch_norm="per_step")
    net = build_net(spec, 128, WAYS, SHAPE, inner_steps=2)
    for name in ("reptile", "pretrain"):
        with pytest.raises(ConfigError) as err:
            build_algorithm(AlgorithmSpec(name=name, inner_steps=2), net, "classification")
        assert err.value.field == "model.batch_norm"


def test_batch_statistics_are_per_task_and_per_batch(formulation):
    """A task's output does not change when another task's images do, but does when its own batch does."""
    net, params, _, _, batch = setup("maml")
    x = batch.query_x
    out = net.forward(params, x)
    changed = x.clone()
    changed[1] += 5.0 * torch.randn(changed[1].shape)
    again = net.forward(params, changed)
    assert torch.allclose(out[0], again[0], atol=1e-6) and torch.allclose(out[2], again[2], atol=1e-6)
    assert not torch.allclose(out[1], again[1], atol=1e-3)
    alone = net.forward(params, x[0, :2])   # the same images in a smaller batch: other statistics
    assert not torch.allclose(alone, out[0, :2], atol=1e-4)


def test_shared_per_task_and_mixed_weights_agree(formulation):
    """Per-task copies of the shared weights give the shared forward; ANIL-style mixing too."""
    net, params, _, _, batch = setup("maml", "per_step")
    t = batch.n_tasks
    shared = net.forward(params, batch.query_x)
    per_task = {n: p.unsqueeze(0).expand(t, *p.shape).clone() for n, p in params.items()}
    assert torch.allclose(net.forward(per_task, batch.query_x), shared, atol=1e-5)
    mixed = {**params, **{n: per_task[n] for n in net.head_names}}
    assert torch.allclose(net.forward(mixed, batch.query_x), shared, atol=1e-5)


def test_module_twin_has_the_same_names_and_outputs():
    for norm in ("batch", "per_step", "off"):
        net, params, _, _, batch = setup("maml", norm, "stride", steps=3)
        module = net.module()
        assert [n for n, _ in module.named_parameters()] == net.names
        module.load_state_dict({n: p.detach() for n, p in params.items()})
        engine = net.forward(params, batch.query_x)
        for t in range(batch.n_tasks):
            assert torch.allclose(module(batch.query_x[t]), engine[t], atol=1e-5), norm


def test_per_step_sets_advance_with_the_inner_step():
    """Weights after s steps use set min(s, S-1): advancing shifts the rows, the last one repeats."""
    net, params, _, _, batch = setup("mamlpp", "per_step", steps=3)
    module = net.module()
    module.load_state_dict({n: p.detach() for n, p in params.items()})
    p = params
    for s in range(5):
        expected = module(batch.query_x[0], step=s)
        assert torch.allclose(net.forward(p, batch.query_x[0]), expected, atol=1e-5), s
        p = net.advance(p)
    assert not torch.allclose(module(batch.query_x[0], step=0), module(batch.query_x[0], step=1))


def test_init_is_deterministic_and_pytorch_like():
    spec = ModelSpec(name="conv4", conv_channels=8, conv_depth=3)
    net = build_net(spec, 128, WAYS, SHAPE)
    a = net.init(torch.Generator().manual_seed(5))
    b = net.init(torch.Generator().manual_seed(5))
    assert all(torch.equal(a[n], b[n]) for n in a)
    w = a["blocks.1.conv.weight"]
    bound = 1 / (8 * 9) ** 0.5
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.8 * bound
    assert torch.equal(a["blocks.0.norm.weight"], torch.ones(8)) and "blocks.0.conv.bias" not in a


def test_fast_paths_do_not_claim_conv_nets():
    net, params, algo, rates, _ = setup("maml", steps=1)
    assert not closed_form.applies(net, algo.adapt_names, params)
    assert not one_step.applies(algo, params, rates)
    assert "grouped convolutions" in algo.gradient_path(params, rates)


def test_build_net_and_config_errors():
    spec = ModelSpec(name="conv4")
    with pytest.raises(ConfigError, match="needs image inputs"):
        build_net(spec, 3, 2)
    with pytest.raises(ConfigError) as err:
        build_net(ModelSpec(name="conv4", conv_depth=5), 64, 2, (1, 8, 8))
    assert err.value.field == "model.conv_depth"
    assert isinstance(build_net(ModelSpec(), 128, 3, SHAPE), ImageMLPNet)
    assert type(build_net(ModelSpec(), 1, 1)) is MLPNet
    assert isinstance(build_net(spec, 784, 5, (1, 28, 28)), ConvNet)
    for field, value in (("name", "resnet"), ("conv_channels", 0), ("conv_depth", 9), ("downsample", "avg"),
                         ("batch_norm", "layer")):
        with pytest.raises(ConfigError) as err:
            ModelSpec(**{field: value}).validate()
        assert err.value.field == f"model.{field}"
    config = ExperimentConfig(family=FamilySpec("blobs")).replace("model", name="conv4", batch_norm="per_step") \
        .replace("algorithm", name="reptile")
    with pytest.raises(ConfigError) as err:
        config.validate()
    assert err.value.field == "model.batch_norm"


def test_mlp_on_images_matches_flat_inputs():
    """An MLP on images is the MLP on flattened pixels, closed-form meta-gradient included."""
    gen = torch.Generator().manual_seed(0)
    batch = episodes(gen)
    flat = TaskBatch(batch.support_x.flatten(2), batch.support_y, batch.query_x.flatten(2), batch.query_y)
    grads = []
    for net, b in ((build_net(ModelSpec(hidden=(16,)), 128, WAYS, SHAPE), batch), (build_net(ModelSpec(hidden=(16,)), 128, WAYS), flat)):
        params = {n: p.requires_grad_(True) for n, p in net.init(torch.Generator().manual_seed(1)).items()}
        algo = build_algorithm(AlgorithmSpec(name="maml", inner_steps=2, inner_lr=0.3), net, "classification")
        algo.meta_step(params, algo.make_rates(params), b, 0)
        grads.append({n: p.grad for n, p in params.items()})
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], atol=1e-6), n


def test_image_mlp_generic_path_flattens():
    net = build_net(ModelSpec(hidden=(16,), activation="gelu"), 128, WAYS, SHAPE)   # no manual backward
    params = {n: p.requires_grad_(True) for n, p in net.init(torch.Generator().manual_seed(1)).items()}
    algo = build_algorithm(AlgorithmSpec(name="maml", inner_steps=1, inner_lr=0.3), net, "classification")
    result = algo.meta_step(params, algo.make_rates(params), episodes(torch.Generator().manual_seed(2)), 0)
    assert torch.isfinite(result.meta_loss) and all(p.grad is not None for p in params.values())


def test_memory_estimate_tracks_the_measured_peak():
    """The no-run estimate is within a factor of two of the measured peak, and orders second-order
    MAML above first order, as the measurement does."""
    from core.training.bench import conv_peak_mib, estimate_peak_bytes

    class Family:
        kind, input_shape, input_dim, output_dim = "classification", (1, 16, 16), 256, 5

    small = {"channels": 8, "depth": 3, "image": (1, 16, 16), "meta_batch": 4, "query": 5}
    measured = conv_peak_mib(("maml", "fomaml"), **small)
    estimates = {}
    for name in ("maml", "fomaml"):
        config = (ExperimentConfig().replace("model", name="conv4", conv_channels=8, conv_depth=3, downsample="stride")
                  .replace("train", meta_batch=4, shots=1, query=5).replace("algorithm", name=name, inner_steps=1))
        estimates[name] = estimate_peak_bytes(config, Family()) / 2**20
        assert 0.5 <= estimates[name] / measured[name] <= 2.0, (name, estimates[name], measured[name])
    assert measured["maml"] > measured["fomaml"] and estimates["maml"] > estimates["fomaml"]


def test_compiling_a_conv_step_falls_back_to_eager():
    from core.training.compiled import MetaStep

    _, params, algo, rates, batch = setup("maml")
    step = MetaStep(algo, list(params.values()), torch.device("cpu"))
    compiled, line = step.compile(params, rates, batch)
    assert not compiled and "eager" in line and not step.compiled
    assert torch.isfinite(step(params, rates, batch, 0)).all()
