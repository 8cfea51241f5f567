"""The neural relaxations' hand-written parts against their plain autograd versions."""

import pytest
import torch

from neurosym.relax.networks import _Pooled, pool_reference


def _features(padded: bool, fractional: bool) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    h = torch.randn(4, 7, 3, dtype=torch.float64).relu() + 0.1 * torch.rand(4, 7, 3,
                                                                              dtype=torch.float64)
    weights = torch.ones(4, 7, dtype=torch.float64)
    if fractional:
        weights = torch.rand(4, 7, dtype=torch.float64)
    if padded:
        weights[1, 4:] = 0  # a shorter series
        weights[3] = 0  # an empty one
    last = torch.tensor([6, 3, 6, 0])
    return h, weights, last


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("fractional", [False, True])
def test_pooling_in_few_passes_matches_its_plain_formulas(padded, fractional):
    """Values and gradients equal `pool_reference`'s, for full, padded and empty series
    and weights between 0 and 1; the gradient also passes a numerical check."""
    h, weights, last = _features(padded, fractional)
    fast = h.clone().requires_grad_()
    plain = h.clone().requires_grad_()
    out_fast = _Pooled.apply(fast, weights, last)
    out_plain = pool_reference(plain, weights, last)
    assert torch.allclose(out_fast, out_plain, atol=1e-12)
    probe = torch.randn_like(out_plain)
    (out_fast * probe).sum().backward()
    (out_plain * probe).sum().backward()
    assert torch.allclose(fast.grad, plain.grad, atol=1e-10)
    assert torch.autograd.gradcheck(lambda x: _Pooled.apply(x, weights, last),
                                    (h.clone().requires_grad_(),))


@pytest.mark.parametrize("padded", [False, True])
def test_a_peak_reached_twice_shares_its_gradient_as_amax_does(padded):
    """Repeated steps (a flat stretch of a series) tie at the max."""
    h, weights, last = _features(padded, fractional=False)
    h[0, 2] = h[0, 1] = h[0].amax(0) + 1
    fast, plain = h.clone().requires_grad_(), h.clone().requires_grad_()
    _Pooled.apply(fast, weights, last)[:, 6:9].sum().backward()  # the peak's gradient only
    pool_reference(plain, weights, last)[:, 6:9].sum().backward()
    assert torch.allclose(fast.grad, plain.grad) and fast.grad[0, 1, 0] == 0.5
