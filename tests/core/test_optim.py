"""The lean meta-optimiser must be Adam, exactly: compared with torch.optim.Adam step by step."""

import pytest
import torch

from core.training.optim import MetaAdam


@pytest.mark.parametrize("portable", [False, True])
def test_meta_adam_matches_torch_adam(portable):
    gen = torch.Generator().manual_seed(0)
    shapes = [(40, 1), (40,), (40, 40), (1,)]
    ours = [torch.randn(s, generator=gen).requires_grad_(True) for s in shapes]
    ref = [p.detach().clone().requires_grad_(True) for p in ours]
    opt = MetaAdam(ours, lr=0.01)
    if portable:
        opt._fused = None
    ref_opt = torch.optim.Adam(ref, lr=0.01)
    for step in range(25):
        grads = [torch.randn(s, generator=gen) for s in shapes]
        for p, q, g in zip(ours, ref, grads):
            p.grad, q.grad = g.clone(), g.clone()
        if step == 3:
            ours[1].grad = ref[1].grad = None  # a tensor without a gradient is left alone
        opt.step()
        ref_opt.step()
    for p, q in zip(ours, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_state_round_trip_continues_identically():
    gen = torch.Generator().manual_seed(1)
    a = [torch.randn(5, 3, generator=gen).requires_grad_(True)]
    b = [a[0].detach().clone().requires_grad_(True)]
    opt_a, opt_b = MetaAdam(a, lr=0.1), MetaAdam(b, lr=0.1)
    grads = [torch.randn(5, 3, generator=gen) for _ in range(6)]
    for g in grads[:3]:
        a[0].grad = g.clone()
        opt_a.step()
    b[0].data.copy_(a[0].data)
    opt_b.load_state_dict({k: v for k, v in opt_a.state_dict().items()})
    for g in grads[3:]:
        a[0].grad, b[0].grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    assert torch.equal(a[0], b[0])
