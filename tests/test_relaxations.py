"""The neural relaxations' hand-written parts against their plain autograd versions."""

import pytest
import torch
from torch.func import grad, vmap

from neurosym.relax.networks import _all_ones, _Pooled, pool_reference


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


def _pooled(h, weights, last, dense=None):
    return _Pooled.apply(h, weights, last, _all_ones(weights) if dense is None else dense)


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("fractional", [False, True])
def test_pooling_in_few_passes_matches_its_plain_formulas(padded, fractional):
    """Values and gradients equal `pool_reference`'s, for full, padded and empty series
    and weights between 0 and 1; the gradient also passes a numerical check."""
    h, weights, last = _features(padded, fractional)
    fast = h.clone().requires_grad_()
    plain = h.clone().requires_grad_()
    out_fast = _pooled(fast, weights, last)
    out_plain = pool_reference(plain, weights, last)
    assert torch.allclose(out_fast, out_plain, atol=1e-12)
    probe = torch.randn_like(out_plain)
    (out_fast * probe).sum().backward()
    (out_plain * probe).sum().backward()
    assert torch.allclose(fast.grad, plain.grad, atol=1e-10)
    assert torch.autograd.gradcheck(lambda x: _pooled(x, weights, last),
                                    (h.clone().requires_grad_(),))


def test_full_series_take_the_dense_path_and_it_agrees_with_the_general_one():
    h, weights, last = _features(padded=False, fractional=False)
    assert _all_ones(weights) and not _all_ones(_features(True, False)[1])
    for dense in (True, False):
        x = h.clone().requires_grad_()
        out = _pooled(x, weights, last, dense)
        out.square().sum().backward()
        plain = h.clone().requires_grad_()
        pool_reference(plain, weights, last).square().sum().backward()
        assert torch.allclose(x.grad, plain.grad, atol=1e-10)


@pytest.mark.parametrize("padded", [False, True])
def test_a_peak_reached_twice_shares_its_gradient_as_amax_does(padded):
    """Repeated steps (a flat stretch of a series) tie at the max."""
    h, weights, last = _features(padded, fractional=False)
    h[0, 2] = h[0, 1] = h[0].amax(0) + 1
    fast, plain = h.clone().requires_grad_(), h.clone().requires_grad_()
    _pooled(fast, weights, last)[:, 6:9].sum().backward()  # the peak's gradient only
    pool_reference(plain, weights, last)[:, 6:9].sum().backward()
    assert torch.allclose(fast.grad, plain.grad) and fast.grad[0, 1, 0] == 0.5


def test_pooling_runs_under_vmap_as_nodes_trained_together_use_it():
    """Stacked members (vmap over their features and rows) get each member's own values
    and gradients."""
    h, weights, last = _features(padded=True, fractional=False)
    stacked = torch.stack([h, 2 * h, h.flip(1)])
    rows = torch.stack([weights, weights, weights.flip(1)])

    def loss(x, w, f):
        return f(x, w, last).square().sum()

    def fast(x, w, _last):
        return _pooled(x, w, _last)

    each = [grad(loss)(x, w, pool_reference) for x, w in zip(stacked, rows)]
    together = vmap(grad(loss), in_dims=(0, 0, None))(stacked, rows, fast)
    assert torch.allclose(together, torch.stack(each), atol=1e-10)


def test_under_vmap_the_encoder_pools_with_autograd():
    """`vmap` cannot tell whether a batched list is padded: `_all_ones` says so (None)."""
    _, weights, _ = _features(padded=False, fractional=False)
    seen = []
    vmap(lambda w: seen.append(_all_ones(w)) or w)(torch.stack([weights, weights]))
    assert seen == [None]
