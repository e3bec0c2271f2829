"""Returns, GAE, the linear feature baseline and the policy's densities on examples worked by hand."""

import math

import pytest
import torch

from core.config import ModelSpec
from core.nets.policy import PolicyNet
from core.rl.returns import baseline_features, discounted_returns, fit_linear_baseline, gae, normalise


def test_discounted_returns_by_hand_and_zero_after_the_end():
    rewards = torch.tensor([[[1.0, 2.0, 3.0], [1.0, 1.0, 0.0]]])
    mask = torch.tensor([[[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]])
    got = discounted_returns(rewards, mask, 0.5)
    assert got.flatten().tolist() == pytest.approx([2.75, 3.5, 3.0, 1.5, 1.0, 0.0])


def test_gae_by_hand():
    rewards, values = torch.tensor([[[1.0, 1.0]]]), torch.tensor([[[0.5, 0.2]]])
    mask = torch.ones(1, 1, 2)
    # δ0 = 1 + 0.9·0.2 − 0.5 = 0.68, δ1 = 1 − 0.2 = 0.8 (nothing after the end); A0 = δ0 + 0.9·0.5·δ1
    assert gae(rewards, values, mask, 0.9, 0.5).flatten().tolist() == pytest.approx([1.04, 0.8])
    # λ = 1: the discounted return minus the baseline
    assert gae(rewards, values, mask, 0.9, 1.0).flatten().tolist() == pytest.approx([1.9 - 0.5, 1.0 - 0.2])


def test_gae_ignores_the_value_past_an_early_end():
    rewards, values = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.5, 7.0]]])
    mask = torch.tensor([[[1.0, 0.0]]])
    assert gae(rewards, values, mask, 0.9, 1.0).flatten().tolist() == pytest.approx([0.5, 0.0])


def test_baseline_features_are_garages():
    obs = torch.tensor([[[[2.0, -20.0], [0.5, 1.0]]]])          # [T=1, R=1, H=2, D=2]
    f = baseline_features(obs, torch.ones(1, 1, 2))
    assert f[0, 0, 0].tolist() == pytest.approx([2, -10, 4, 100, 0, 0, 0, 1])      # clipped to ±10
    assert f[0, 0, 1].tolist() == pytest.approx([0.5, 1, 0.25, 1, 0.01, 1e-4, 1e-6, 1])


def test_the_baseline_fits_each_task_on_its_own():
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(2, 3, 5, 1, generator=g, dtype=torch.float64)
    mask = torch.ones(2, 3, 5, dtype=torch.float64)
    returns = torch.stack([3 * obs[0, ..., 0] + 1, -2 * obs[1, ..., 0] ** 2])   # each linear in its features
    assert torch.allclose(fit_linear_baseline(obs, returns, mask), returns, atol=1e-4)


def test_normalise_per_task_over_steps_taken():
    adv = torch.tensor([[[1.0, 3.0, 100.0]], [[2.0, 2.0, 4.0]]])
    mask = torch.tensor([[[1.0, 1.0, 0.0]], [[1.0, 1.0, 1.0]]])
    got = normalise(adv, mask)
    assert got[0, 0].tolist() == pytest.approx([-1.0, 1.0, 0.0], abs=1e-6)
    assert float(got[1].mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(got[1].pow(2).mean()) == pytest.approx(1.0, abs=1e-5)


def test_gaussian_log_prob_and_kl_match_torch_distributions():
    policy = PolicyNet(2, 2, ModelSpec(hidden=(8,)))
    params = policy.init(torch.Generator().manual_seed(1))
    params["log_std"] = torch.tensor([-0.5, 0.3])
    obs, actions = torch.randn(5, 2), torch.randn(5, 2)
    mean = policy.forward(params, obs)
    ref = torch.distributions.Normal(mean, params["log_std"].exp())
    assert torch.allclose(policy.log_prob(params, obs, actions), ref.log_prob(actions).sum(-1), atol=1e-6)
    other = {**params, "log_std": torch.tensor([0.1, -0.2]), "layers.1.bias": params["layers.1.bias"] + 0.3}
    new = torch.distributions.Normal(policy.forward(other, obs), other["log_std"].exp())
    expected = torch.distributions.kl_divergence(ref, new).sum(-1)
    assert torch.allclose(policy.kl(policy.distribution(params, obs), other, obs), expected, atol=1e-6)
    assert math.isclose(float(policy.kl(policy.distribution(params, obs), params, obs).abs().max()), 0.0, abs_tol=1e-6)
