"""The base set of primitives. Each works on whole batches (see values.py) and is
differentiable; divisions are guarded and soft choices use sigmoids, so gradients flow
through `ite`, `filter` and `count` alike."""

from __future__ import annotations

import math

import torch
from torch import nn

from neurosym.interp.registry import Site, primitive
from neurosym.interp.values import Seq, align, batch_size
from neurosym.lang import ast
from neurosym.lang.errors import NeurosymError
from neurosym.lang.parser import parse_type
from neurosym.lang.types import Type, Vec, is_tensor, uncurry

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


# ---- type checks run on a primitive's resolved type -------------------------------------

def _result_tensor(arity: int):
    """The value after the primitive's own `arity` arguments must be a tensor (read after
    uncurrying everything, `add f g` on two functions would pass)."""

    def check(t: Type, params) -> str | None:
        for _ in range(arity):
            t = t.result
        return None if is_tensor(t) else f"works on Float, Bool, Int, Vec and Image, not {t}"

    return check


def _all_tensors(t: Type, params) -> str | None:
    """One tensor argument to a tensor (`a -> b` must not stand for a two-argument function)."""
    bad = [x for x in (t.arg, t.result) if not is_tensor(x)]
    return f"works on Float, Bool, Int, Vec and Image, not {bad[0]}" if bad else None


def _map_result(t: Type, params) -> str | None:
    from neurosym.lang.types import ListT

    result = uncurry(t)[1]
    if isinstance(result, ListT) and isinstance(result.elem, ListT):
        return "lists of lists are not supported"
    return None


# ---- lists -------------------------------------------------------------------------------

@primitive("map", "(a -> b) -> List[a] -> List[b]", validate=_map_result)
def map_(site: Site, f, xs: Seq) -> Seq:
    """Apply f to every element (one batched call over all B*L elements)."""
    return xs.with_data(f(xs.flat()))


@primitive("filter", "(a -> Bool) -> List[a] -> List[a]")
def filter_(site: Site, p, xs: Seq) -> Seq:
    """Soft filter: scales each element's weight by sigmoid(p x)."""
    keep = torch.sigmoid(p(xs.flat())).reshape(xs.weights.shape)
    return Seq(xs.data, xs.weights * keep)


@primitive("fold", "(b -> a -> b) -> b -> List[a] -> b", validate=_result_tensor(3), cost=1.5)
def fold(site: Site, f, init: torch.Tensor, xs: Seq) -> torch.Tensor:
    """Left fold; padding (weight 0) leaves the accumulator unchanged."""
    acc = align(init, xs.data.shape[0])
    for t in range(xs.length):
        step = call(f, acc, xs.data[:, t])
        w = _like(xs.weights[:, t], step)
        acc = w * step + (1 - w) * acc
    return acc


def _window_signature(params: tuple[ast.Param, ...]) -> Type:
    if len(params) != 1 or not isinstance(params[0], int) or params[0] < 1:
        raise ValueError("takes one window size, e.g. window[5]")
    return parse_type("(List[a] -> b) -> List[a] -> List[b]")


@primitive("window", signature=_window_signature, validate=_map_result, cost=1.5)
def window(site: Site, f, xs: Seq) -> Seq:
    """Causal sliding window: element t sees the k elements ending at t."""
    k = int(site.params[0])
    b, n = xs.data.shape[:2]
    pad = torch.zeros(b, k - 1, *xs.data.shape[2:], dtype=xs.data.dtype)
    data = torch.cat([pad, xs.data], 1)
    weights = torch.cat([torch.zeros(b, k - 1), xs.weights], 1)
    wins = torch.stack([data[:, i:i + n] for i in range(k)], 2)
    win_w = torch.stack([weights[:, i:i + n] for i in range(k)], 2)
    inner = Seq(wins.flatten(0, 1), win_w.flatten(0, 1))
    return xs.with_data(f(inner))


@primitive("mean", "List[a] -> a", validate=_result_tensor(1))
def mean(site: Site, xs: Seq) -> torch.Tensor:
    """Weighted average over the list (padding excluded)."""
    data, w = _weighted(xs)
    return (w * data).sum(1) / w.sum(1).clamp_min(_EPS)


@primitive("sum", "List[a] -> a", validate=_result_tensor(1))
def sum_(site: Site, xs: Seq) -> torch.Tensor:
    """Sum over the list (padding excluded)."""
    data, w = _weighted(xs)
    return (w * data).sum(1)


@primitive("std", "List[a] -> a", validate=_result_tensor(1))
def std(site: Site, xs: Seq) -> torch.Tensor:
    """Weighted standard deviation, centred first for stability."""
    data, w = _weighted(xs)
    total = w.sum(1).clamp_min(_EPS)
    mu = (w * data).sum(1, keepdim=True) / total.unsqueeze(1)
    var = (w * (data - mu) ** 2).sum(1) / total
    return torch.sqrt(var + _EPS)


@primitive("last", "List[a] -> a", validate=_result_tensor(1))
def last(site: Site, xs: Seq) -> torch.Tensor:
    """The last present element (padding skipped)."""
    return xs.data[torch.arange(xs.data.shape[0]), xs.last_index()]


@primitive("length", "List[a] -> Float")
def length(site: Site, xs: Seq) -> torch.Tensor:
    """Number of elements (soft after `filter`)."""
    return xs.weights.sum(1)


@primitive("count", "(a -> Bool) -> List[a] -> Float")
def count(site: Site, p, xs: Seq) -> torch.Tensor:
    """Expected number of elements satisfying p."""
    probs = torch.sigmoid(p(xs.flat())).reshape(xs.weights.shape)
    return (probs * xs.weights).sum(1)


# ---- functions ---------------------------------------------------------------------------

@primitive("compose", "(b -> c) -> (a -> b) -> a -> c")
def compose(site: Site, f, g, x):
    """`compose f g x` is `f (g x)`."""
    return f(g(x))


@primitive("ite", "Bool -> a -> a -> a", validate=_result_tensor(3), cost=1.5)
def ite(site: Site, cond: torch.Tensor, then, other):
    """Soft if-then-else: sigmoid(cond) * then + (1 - sigmoid(cond)) * else."""
    gate = torch.sigmoid(align(cond, batch_size(then)))
    return _like(gate, then) * then + (1 - _like(gate, other)) * other


# ---- arithmetic and logic ----------------------------------------------------------------

@primitive("add", "a -> a -> a", validate=_result_tensor(2))
def add(site: Site, x, y):
    """Elementwise sum."""
    return x + y


@primitive("sub", "a -> a -> a", validate=_result_tensor(2))
def sub(site: Site, x, y):
    """Elementwise difference."""
    return x - y


@primitive("mul", "a -> a -> a", validate=_result_tensor(2))
def mul(site: Site, x, y):
    """Elementwise product."""
    return x * y


@primitive("relu", "a -> a", validate=_result_tensor(1))
def relu(site: Site, x):
    """max(x, 0), elementwise."""
    return torch.relu(x)


@primitive("gt", "Float -> Float -> Bool")
def gt(site: Site, x, y):
    """`x > y` as a logit (x - y): a soft, differentiable comparison."""
    return x - y


@primitive("not", "Bool -> Bool")
def not_(site: Site, b):
    """Negation of a Bool (its logit changes sign)."""
    return -b


@primitive("prob", "Bool -> Float")
def prob(site: Site, b):
    """The probability that a Bool (a logit) is true."""
    return torch.sigmoid(b)


@primitive("softargmax", "Vec[n] -> Float")
def softargmax(site: Site, v):
    """Expected index under softmax(v): a differentiable argmax (digit value from logits)."""
    return torch.softmax(v, -1) @ torch.arange(v.shape[-1], dtype=v.dtype)


# ---- learnable ---------------------------------------------------------------------------

def _numel(t: Type) -> int:
    from neurosym.interp.values import shape_of

    return math.prod(shape_of(t))


MAX_PARAMETERS = 100_000_000  # one affine map; a larger one would not fit in memory anyway


class Affine(nn.Module):
    """A linear map between any two tensor types (inputs are flattened)."""

    def __init__(self, t: Type, params) -> None:
        super().__init__()
        (arg,), result = uncurry(t)
        from neurosym.interp.values import shape_of

        self.out_shape = shape_of(result)
        if _numel(arg) * _numel(result) > MAX_PARAMETERS:
            raise NeurosymError(f"affine from {arg} to {result} would have "
                                f"{_numel(arg) * _numel(result):,} weights (at most "
                                f"{MAX_PARAMETERS:,})")
        self.linear = nn.Linear(_numel(arg), _numel(result))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x.reshape(x.shape[0], -1).to(self.linear.weight.dtype))
        return y.reshape(x.shape[0], *self.out_shape)


@primitive("affine", "a -> b", module=Affine, validate=_all_tensors)
def affine(site: Site, x):
    """Learnable linear map `W x + b`; its sizes come from the types around it."""
    return site.module(x)


def _select_signature(params: tuple[ast.Param, ...]) -> Type:
    if len(params) != 1:
        raise ValueError("takes one index or slice, e.g. select[2] or select[0:3]")
    p = params[0]
    bounds = (p.start, p.stop) if isinstance(p, ast.Slice) else (p,)
    if not all(isinstance(b, int) and b >= 0 for b in bounds):
        raise ValueError("takes integer feature indices from 0, e.g. select[2] or select[0:3]")
    if isinstance(p, ast.Slice):
        if p.stop <= p.start:
            raise ValueError(f"empty slice {p.start}:{p.stop}")
        return parse_type(f"Vec[n] -> Vec[{p.stop - p.start}]")
    return parse_type("Vec[n] -> Float")


def _select_bounds(t: Type, params) -> str | None:
    (arg,), _ = uncurry(t)
    p = params[0]
    stop = p.stop if isinstance(p, ast.Slice) else p + 1
    if isinstance(arg, Vec) and isinstance(arg.n, int) and stop > arg.n:
        return f"index {stop - 1} is out of range for {arg}"
    return None


@primitive("select", signature=_select_signature, validate=_select_bounds, cost=0.5)
def select(site: Site, x):
    """Feature selection: select[i] is feature i, select[i:j] features i..j-1."""
    p = site.params[0]
    return x[:, p.start:p.stop] if isinstance(p, ast.Slice) else x[:, p]




def _neural(t: Type, params) -> nn.Module:
    from neurosym.relax.networks import Relaxation

    return Relaxation([], t)


def _encodable_function(t: Type, params) -> str | None:
    from neurosym.relax.networks import encodable

    arg, result = t.arg, t.result  # one argument: `a -> b` is not `a -> c -> d`
    if not encodable(arg) or not is_tensor(result):
        return f"needs a tensor or list input and a tensor output, not {t}"
    return None


@primitive("nn", "a -> b", module=_neural, validate=_encodable_function, cost=2.0)
def neural(site: Site, x):
    """A small neural network of the type around it (MLP, CNN for images, pooled lists):
    the neural part of a program, and what the library stores for reuse."""
    return site.module([x], batch_size(x))
