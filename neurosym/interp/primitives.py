"""The base set of primitives. Each works on whole batches (see values.py) and is
differentiable; divisions are guarded and soft choices use sigmoids, so gradients flow
through `ite`, `filter` and `count` alike."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from neurosym.interp.registry import Site, implements
from neurosym.interp.standardize import Standardize
from neurosym.interp.values import Seq, align, batch_size
from neurosym.lang import ast
from neurosym.lang.errors import NeurosymError
from neurosym.lang.types import Type, uncurry

_EPS = 1e-6


def call(f, *args):
    """Apply a curried function value to several arguments."""
    for a in args:
        f = f(a)
    return f


def _like(g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """View a per-row tensor (N,) so that it broadcasts against x (N, ...)."""
    return g.reshape(g.shape[0], *([1] * (x.dim() - 1)))


def _weighted(xs: Seq) -> tuple[torch.Tensor, torch.Tensor]:
    """The data and its weights shaped to broadcast against it: (B, L, 1, ...)."""
    w = xs.per_element(xs.weights)
    return xs.data, w


# ---- lists -------------------------------------------------------------------------------

@implements("map")
def map_(site: Site, f, xs: Seq) -> Seq:
    """Apply f to every element (one batched call over all B*L elements)."""
    return xs.with_data(f(xs.flat()))


@implements("filter")
def filter_(site: Site, p, xs: Seq) -> Seq:
    """Soft filter: scales each element's weight by sigmoid(p x)."""
    keep = torch.sigmoid(p(xs.flat())).reshape(xs.weights.shape)
    return Seq(xs.data, xs.weights * keep)


@implements("fold")
def fold(site: Site, f, init: torch.Tensor, xs: Seq) -> torch.Tensor:
    """Left fold; padding (weight 0) leaves the accumulator unchanged."""
    return fold_positions(lambda acc, t: call(f, acc, xs.data[:, t]), init, xs)


def fold_positions(step: Callable[[torch.Tensor, int], torch.Tensor], init: torch.Tensor,
                   xs: Seq) -> torch.Tensor:
    """`step(acc, t)` folded over the positions t of xs, padding (weight 0) leaving the
    accumulator unchanged: `fold`'s loop, shared with the interpreter's hoisted folds."""
    acc = align(init, xs.data.shape[0])
    every = bool((xs.weights == 1).all())  # no padding, no soft filter: no blending
    for t in range(xs.length):
        new = step(acc, t)
        if every:
            acc = new
        else:
            w = _like(xs.weights[:, t], new)
            acc = w * new + (1 - w) * acc
    return acc


@implements("window")
def window(site: Site, f, xs: Seq) -> Seq:
    """Causal sliding window: element t sees the k elements ending at t."""
    b, n = xs.data.shape[:2]
    k = min(int(site.params[0]), n)  # a longer window reads only padding (weight 0) more
    pad = xs.data.new_zeros(b, k - 1, *xs.data.shape[2:])
    data = torch.cat([pad, xs.data], 1)
    weights = torch.cat([xs.weights.new_zeros(b, k - 1), xs.weights], 1)
    wins = torch.stack([data[:, i:i + n] for i in range(k)], 2)
    win_w = torch.stack([weights[:, i:i + n] for i in range(k)], 2)
    inner = Seq(wins.flatten(0, 1), win_w.flatten(0, 1))
    return xs.with_data(f(inner))


@implements("mean")
def mean(site: Site, xs: Seq) -> torch.Tensor:
    """Weighted average over the list (padding excluded)."""
    data, w = _weighted(xs)
    return (w * data).sum(1) / w.sum(1).clamp_min(_EPS)


@implements("sum")
def sum_(site: Site, xs: Seq) -> torch.Tensor:
    """Sum over the list (padding excluded)."""
    data, w = _weighted(xs)
    return (w * data).sum(1)


@implements("std")
def std(site: Site, xs: Seq) -> torch.Tensor:
    """Weighted standard deviation, centred first for stability."""
    data, w = _weighted(xs)
    total = w.sum(1).clamp_min(_EPS)
    mu = (w * data).sum(1, keepdim=True) / total.unsqueeze(1)
    var = (w * (data - mu) ** 2).sum(1) / total
    return torch.sqrt(var + _EPS)


@implements("last")
def last(site: Site, xs: Seq) -> torch.Tensor:
    """The last present element (padding skipped)."""
    return xs.data[torch.arange(xs.data.shape[0], device=xs.data.device), xs.last_index()]


@implements("length")
def length(site: Site, xs: Seq) -> torch.Tensor:
    """Number of elements (soft after `filter`)."""
    return xs.weights.sum(1)


@implements("count")
def count(site: Site, p, xs: Seq) -> torch.Tensor:
    """Expected number of elements satisfying p."""
    probs = torch.sigmoid(p(xs.flat())).reshape(xs.weights.shape)
    return (probs * xs.weights).sum(1)


# ---- functions ---------------------------------------------------------------------------

@implements("compose")
def compose(site: Site, f, g, x):
    """`compose f g x` is `f (g x)`."""
    return f(g(x))


@implements("ite")
def ite(site: Site, cond: torch.Tensor, then, other):
    """Soft if-then-else: sigmoid(cond) * then + (1 - sigmoid(cond)) * else."""
    gate = torch.sigmoid(align(cond, batch_size(then)))
    return _like(gate, then) * then + (1 - _like(gate, other)) * other


# ---- arithmetic and logic ----------------------------------------------------------------

@implements("add")
def add(site: Site, x, y):
    """Elementwise sum."""
    return x + y


@implements("sub")
def sub(site: Site, x, y):
    """Elementwise difference."""
    return x - y


@implements("mul")
def mul(site: Site, x, y):
    """Elementwise product."""
    return x * y


@implements("relu")
def relu(site: Site, x):
    """max(x, 0), elementwise."""
    return torch.relu(x)


@implements("gt")
def gt(site: Site, x, y):
    """`x > y` as a logit (x - y): a soft, differentiable comparison."""
    return x - y


@implements("not")
def not_(site: Site, b):
    """Negation of a Bool (its logit changes sign)."""
    return -b


@implements("prob")
def prob(site: Site, b):
    """The probability that a Bool (a logit) is true."""
    return torch.sigmoid(b)


@implements("softargmax")
def softargmax(site: Site, v):
    """Expected index under softmax(v): a differentiable argmax (digit value from logits)."""
    return torch.softmax(v, -1) @ torch.arange(v.shape[-1], dtype=v.dtype, device=v.device)


# ---- learnable ---------------------------------------------------------------------------

def _numel(t: Type) -> int:
    from neurosym.interp.values import shape_of

    return math.prod(shape_of(t))


MAX_PARAMETERS = 100_000_000  # one affine map; a larger one would not fit in memory anyway


class Affine(nn.Module):
    """A linear map between any two tensor types (inputs are flattened and standardized,
    `Standardize`); `effective()` is the same map on the inputs as they come."""

    def __init__(self, t: Type, params) -> None:
        super().__init__()
        (arg,), result = uncurry(t)
        from neurosym.interp.values import shape_of

        self.out_shape = shape_of(result)
        if _numel(arg) * _numel(result) > MAX_PARAMETERS:
            raise NeurosymError(f"affine from {arg} to {result} would have "
                                f"{_numel(arg) * _numel(result):,} weights (at most "
                                f"{MAX_PARAMETERS:,})")
        self.standardize = Standardize(_numel(arg))
        self.linear = nn.Linear(_numel(arg), _numel(result))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.linear.weight.dtype
        flat = x.reshape(x.shape[0], -1).to(dtype)
        if self._folds():
            # the standardization folded into the weights: out x in values to scale
            # instead of rows x in (40% of a node descending over cached list features)
            shift, scale = (self.standardize.shift.to(dtype),
                            self.standardize.scale.to(dtype))
            weight = self.linear.weight / scale
            out = nn.functional.linear(flat, weight, self.linear.bias - weight @ shift)
        else:
            out = self.linear(self.standardize(flat))
        return out.reshape(x.shape[0], *self.out_shape)

    def _folds(self) -> bool:
        """Whether to fold: `Standardize.foldable` statistics of one model (not stacked
        under `vmap`, where they differ by member and cannot decide a branch). Not by the
        number of rows: an exported program would keep that as a guard on its batch."""
        return (self.standardize.ready and self.standardize.foldable
                and not torch._C._functorch.is_functorch_wrapped_tensor(self.standardize.shift))

    def effective(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the map on unstandardized inputs, in double precision on
        the host (a large shift cancels in the bias)."""
        weight, bias, shift, scale = (t.detach().cpu().double() for t in (
            self.linear.weight, self.linear.bias, self.standardize.shift,
            self.standardize.scale))
        return weight / scale, bias - (weight / scale) @ shift


@implements("affine", module=Affine)
def affine(site: Site, x):
    """Learnable linear map `W x + b`; its sizes come from the types around it."""
    return site.module(x)


@implements("select")
def select(site: Site, x):
    """Feature selection: select[i] is feature i, select[i:j] features i..j-1."""
    p = site.params[0]
    return x[:, p.start:p.stop] if isinstance(p, ast.Slice) else x[:, p]




def _neural(t: Type, params) -> nn.Module:
    from neurosym.relax.networks import Relaxation

    return Relaxation([], t)


@implements("nn", module=_neural)
def neural(site: Site, x):
    """A small neural network of the type around it (MLP, CNN for images, pooled lists):
    the neural part of a program, and what the library stores for reuse."""
    return site.module([x], batch_size(x))
