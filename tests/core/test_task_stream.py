"""The trainer's task stream: blocks drawn ahead give the same batches, and the same generator
state, as drawing each batch on its own (so seeds, checkpoints and resume mean what they did)."""

from __future__ import annotations

import pytest
import torch

from core.config import FamilySpec
from core.tasks import build_family
from core.tasks.stream import BLOCK_BATCHES, TaskStream

FUNCTION_FAMILIES = ["sinusoid", "linear", "polynomial", "step", "formula"]


def reference_batch(family, n, shots, query, g):
    """A batch as the families drew it before the stream: each parameter, then the inputs, in turn."""
    def uniform(low, high, shape):
        return low + (high - low) * torch.rand(shape, generator=g)

    if family.name == "polynomial":
        params = {"coefficients": uniform(*family.params["coefficient"], (n, family.params["degree"] + 1))}
    elif family.name == "formula":
        params = {k: uniform(*v, (n,)) for k, v in family.params["ranges"].items()}
    else:
        names = {"sinusoid": ("amplitude", "phase"), "linear": ("slope", "intercept"),
                 "step": ("amplitude", "period", "phase")}[family.name]
        params = {k: uniform(*family.params[k], (n,)) for k in names}
    x = uniform(*family.params["x_range"], (n, shots + query, 1))
    return x, family.function(params, x), params


def same(batch, x, y, params) -> bool:
    return (torch.equal(torch.cat([batch.support_x, batch.query_x], 1), x)
            and torch.equal(torch.cat([batch.support_y, batch.query_y], 1), y)
            and batch.task_params.keys() == params.keys()
            and all(torch.equal(batch.task_params[k], v) for k, v in params.items()))


@pytest.mark.parametrize("name", FUNCTION_FAMILIES)
def test_the_stream_draws_what_one_batch_at_a_time_drew(name):
    family = build_family(FamilySpec(name))
    g = torch.Generator().manual_seed(7)
    stream = TaskStream(family, 6, 3, 4, seed=7)
    for i in range(BLOCK_BATCHES * 2 + 5):   # across block boundaries
        assert same(stream.next(), *reference_batch(family, 6, 3, 4, g)), f"batch {i}"
        if i in (0, 10, BLOCK_BATCHES - 1, BLOCK_BATCHES + 3):
            assert torch.equal(stream.get_state(), g.get_state()), f"state after batch {i}"
    one = build_family(FamilySpec(name)).sample(6, 3, 4, torch.Generator().manual_seed(7))
    assert same(one, *reference_batch(family, 6, 3, 4, torch.Generator().manual_seed(7)))


def test_a_state_taken_mid_block_continues_exactly():
    family = build_family(FamilySpec("sinusoid"))
    stream = TaskStream(family, 5, 2, 2, seed=3)
    for _ in range(10):
        stream.next()
    state = stream.get_state()
    ahead = [stream.next() for _ in range(BLOCK_BATCHES)]
    again = TaskStream(family, 5, 2, 2, seed=99)
    again.set_state(state)
    for a, b in zip(ahead, (again.next() for _ in range(BLOCK_BATCHES))):
        assert torch.equal(a.query_y, b.query_y) and torch.equal(a.support_x, b.support_x)


def test_rewind_hands_out_the_same_batch_again():
    stream = TaskStream(build_family(FamilySpec("linear")), 4, 2, 2, seed=0)
    stream.next()
    mark = stream.position()
    first = stream.next()
    stream.rewind(mark)
    assert torch.equal(stream.next().support_y, first.support_y)


@pytest.mark.parametrize("spec", [FamilySpec("sinusoid", {"noise": 0.3}), FamilySpec("blobs")])
def test_families_with_more_than_one_draw_are_sampled_batch_by_batch(spec):
    family = build_family(spec)
    stream, g = TaskStream(family, 4, 3, 3, seed=1), torch.Generator().manual_seed(1)
    for _ in range(3):
        assert torch.equal(stream.next().query_y, family.sample(4, 3, 3, g).query_y)
    assert torch.equal(stream.get_state(), g.get_state())
