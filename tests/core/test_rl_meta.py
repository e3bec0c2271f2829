"""MAML for policies: the batched meta-gradient equals a plain per-task autograd loop, the KL's
Hessian-vector product equals finite differences (float64), and TRPO keeps its promises."""

import dataclasses

import pytest
import torch

from core.config import AlgorithmSpec, ExperimentConfig, ModelSpec, RLSpec, TrainSpec
from core.rl import meta
from core.rl.hvp import maml_kl_hvp
from core.rl.trainer import RLTrainer, build_policy, policy_family
from core.rl.trpo import flat, kl_hvp, trpo_step
from core.tasks.spec import FamilySpec


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def small_config(algorithm="maml", steps=1, activation="relu", **rl):
    return ExperimentConfig(FamilySpec("nav2d", {"horizon": 6}), ModelSpec(hidden=(7, 5), activation=activation),
                            AlgorithmSpec(algorithm, steps, 0.3), TrainSpec(meta_batch=3, iterations=5, seed=2),
                            RLSpec(rollouts=4, **rl))


def sampled_problem(config, seed=0):
    family = policy_family(config)
    policy = build_policy(config, family)
    g = torch.Generator().manual_seed(seed)
    params = {n: (p + 0.1 * torch.randn(p.shape, generator=g)).requires_grad_(True)
              for n, p in policy.init(g).items()}
    tasks = family.sample_tasks(config.train.meta_batch, g)
    return policy, params, meta.sample(policy, params, family, tasks, config, g)


def reference_meta_gradient(policy, params, sampled, config):
    """Task by task, shared (unbatched) weights, plain autograd: mean over tasks of the surrogate."""
    names = list(params)
    total = 0.0
    for i in range(config.train.meta_batch):
        theta = dict(params)
        for batch in sampled.inner_batches:
            b_obs, b_act = batch.observations[i], batch.actions[i]
            loss = -(policy.log_prob(theta, b_obs, b_act) * batch.advantages[i] * batch.weights[i]).sum()
            grads = torch.autograd.grad(loss, [theta[n] for n in names], create_graph=config.algorithm.name == "maml")
            theta = {n: theta[n] - config.algorithm.inner_lr * g for n, g in zip(names, grads)}
        post = sampled.post_batch
        ratio = torch.exp(policy.log_prob(theta, post.observations[i], post.actions[i]) - sampled.old_log_prob[i])
        total = total + (ratio * post.advantages[i] * post.weights[i]).sum()
    return torch.autograd.grad(-total / config.train.meta_batch, [params[n] for n in names])


@pytest.mark.parametrize("algorithm,steps", [("maml", 1), ("maml", 2), ("fomaml", 1)])
def test_meta_gradient_equals_a_per_task_loop(float64, algorithm, steps):
    config = small_config(algorithm, steps)
    policy, params, sampled = sampled_problem(config)
    loss, _ = meta.objective(policy, params, sampled, config)(True)
    batched = torch.autograd.grad(loss, list(params.values()))
    reference = reference_meta_gradient(policy, params, sampled, config)
    assert flat(batched).norm() > 1e-3
    assert torch.allclose(flat(batched), flat(reference), atol=1e-5, rtol=0)
    if algorithm == "maml":   # the second-order terms matter: first order differs
        fo = reference_meta_gradient(policy, params, sampled, dataclasses.replace(
            config, algorithm=dataclasses.replace(config.algorithm, name="fomaml")))
        assert (flat(fo) - flat(batched)).abs().max() > 1e-4


@pytest.mark.parametrize("steps,activation", [(1, "relu"), (2, "relu"), (2, "tanh"), (2, "gelu")])
def test_kl_hessian_vector_product_matches_finite_differences(float64, steps, activation):
    """relu and tanh: the KL's Hessian in forward mode (hand-written derivative); gelu: by double backward."""
    config = small_config("maml", steps, activation)
    policy, params, sampled = sampled_problem(config, seed=3)
    objective = meta.objective(policy, params, sampled, config)
    values = list(params.values())
    v = torch.randn(sum(p.numel() for p in values), generator=torch.Generator().manual_seed(5))
    exact = kl_hvp(objective(True)[1], values)(v)
    structured = maml_kl_hvp(policy, params, sampled.inner_batches, [0.3] * steps, sampled.post_batch,
                             sampled.old_distribution)(v)

    def kl_grad_at(shift):
        moved = {n: p.detach() for n, p in params.items()}
        at = 0
        for n, p in moved.items():
            moved[n] = (p + shift[at:at + p.numel()].view_as(p)).requires_grad_(True)
            at += p.numel()
        kl = meta.objective(policy, moved, sampled, config)(True)[1]
        return flat(torch.autograd.grad(kl, list(moved.values())))

    eps = 1e-5
    finite = (kl_grad_at(eps * v) - kl_grad_at(-eps * v)) / (2 * eps)
    assert exact.norm() > 1e-3
    assert torch.allclose(exact, finite, atol=1e-6, rtol=1e-5)
    assert torch.allclose(structured, exact, atol=1e-9, rtol=1e-8)


def test_trpo_stays_within_the_kl_bound_and_never_accepts_a_worse_surrogate(float64):
    for seed in range(3):
        config = small_config("maml", 1, max_kl=0.002)
        policy, params, sampled = sampled_problem(config, seed=seed)
        objective = meta.objective(policy, params, sampled, config)
        before_loss = float(objective(False)[0])
        result = trpo_step(list(params.values()), objective, max_kl=0.002)
        loss, kl = objective(False)
        assert float(kl) <= 0.002 + 1e-12 and float(loss) <= before_loss
        assert result.accepted == (float(loss) < before_loss)


def test_trpo_keeps_the_parameters_when_no_step_improves():
    theta = torch.tensor([1.0, -2.0], requires_grad=True)
    start = theta.detach().clone()

    def objective(differentiable):   # |x| has gradient 0 at 0 in torch: the slope seen is 0.5, the kink is uphill
        return 10 * (theta - start).abs().sum() + 0.5 * (theta - start).sum(), 0.5 * (theta - start).pow(2).sum()

    result = trpo_step([theta], objective, max_kl=0.01)
    assert not result.accepted and torch.equal(theta.detach(), start)


def test_a_tiny_nav2d_run_improves_the_post_adaptation_return():
    from core.rl.evaluation import adaptation_returns, held_out_tasks

    config = ExperimentConfig(FamilySpec("nav2d", {"horizon": 12}), ModelSpec(hidden=(32, 32)),
                              AlgorithmSpec("maml", 1, 0.1), TrainSpec(meta_batch=8, iterations=12, seed=0),
                              RLSpec(rollouts=8, max_kl=0.05))
    trainer = RLTrainer(config)
    tasks = held_out_tasks(trainer.family, 16, seed=0)

    def post_return():
        g = torch.Generator().manual_seed(9)
        return float(adaptation_returns(config, trainer.policy, trainer.params, trainer.family, tasks, 8, 1, g)[1].mean())

    before = post_return()
    for _ in range(config.train.iterations):
        metrics = trainer.step()
    assert metrics.iteration == 12 and len(metrics.step_returns) == 2
    assert post_return() > before + 0.5


def test_the_bench_loop_collects_what_the_vectorised_rollouts_collect():
    from core.rl.bench import loop_collect
    from core.rl.rollouts import collect

    config = dataclasses.replace(small_config(), family=FamilySpec("nav2d", {"horizon": 6, "tolerance": 0.15}))
    family = policy_family(config)
    policy = build_policy(config, family)
    params = policy.init(torch.Generator().manual_seed(0))
    params["log_std"] = torch.full((2,), -40.0)   # no noise: both must walk the same paths
    tasks = torch.tensor([[0.02, 0.01], [0.3, -0.2], [-0.1, 0.4]])
    a = collect(policy, params, family, tasks, 2, torch.Generator())
    b = loop_collect(policy, params, family, tasks, 2, torch.Generator())
    h = a.mask.shape[2]
    assert torch.equal(a.mask, b.mask[..., :h]) and a.mask[0, 0].sum() < h   # the first goal is reached early
    taken = a.mask.unsqueeze(-1)   # what a trajectory holds after its end is never used
    assert torch.allclose(a.rewards, b.rewards[..., :h])
    assert torch.allclose(a.observations * taken, b.observations[:, :, :h] * taken)


@pytest.mark.parametrize("algorithm,outer", [("fomaml", "ppo"), ("maml", "ppo"), ("pretrain", "trpo")])
def test_every_algorithm_and_outer_step_takes_a_finite_step_that_raises_the_surrogate(algorithm, outer):
    config = small_config(algorithm, 1, outer=outer)
    trainer = RLTrainer(config)
    before = {n: p.detach().clone() for n, p in trainer.params.items()}
    metrics = trainer.step()
    assert len(metrics.step_returns) == (1 if algorithm == "pretrain" else 2)
    assert metrics.surrogate_gain > 0 and metrics.env_steps > 0
    assert any(not torch.equal(before[n], p) for n, p in trainer.params.items())
    state, meta_data = trainer.training_state()
    again = RLTrainer(config)
    again.load_weights(trainer.weights())
    again.load_training_state(state, meta_data)
    assert again.iteration == 1 and again.step().step_returns == trainer.step().step_returns   # resumes exactly


class _Chain:
    """A discrete family for the test: walk left or right on a line towards a goal."""

    name, observation_dim, action_dim, discrete, horizon = "chain", 1, 2, True, 5
    warnings: list = []

    def sample_tasks(self, n, generator):
        return torch.rand(n, 1, generator=generator) * 4 - 2

    def reset(self, tasks, rollouts, generator):
        goals = tasks.repeat_interleave(rollouts, 0)
        state = {"x": torch.zeros(len(goals), 1), "t": 0}

        class Batch:
            def step(self, actions):
                state["x"] = state["x"] + (actions.float().unsqueeze(1) * 2 - 1) * 0.5
                state["t"] += 1
                done = torch.full((len(goals),), state["t"] >= 5)
                return state["x"].clone(), -(state["x"] - goals).abs()[:, 0], done
        return Batch(), state["x"].clone()


def test_a_categorical_policy_meta_trains_on_a_discrete_family():
    config = small_config("maml", 1)
    trainer = RLTrainer(config, family=_Chain())
    assert trainer.policy.discrete and "log_std" not in trainer.params
    metrics = trainer.step()
    assert len(metrics.step_returns) == 2 and metrics.surrogate_gain > 0 and metrics.kl <= config.rl.max_kl
