"""Relaxations that cost little: fixed random features and an `affine` map.

With `relaxation = "features"`, a node is scored with each hole rewritten into the DSL
itself: `?? e` of type `A -> R` becomes `affine (features[d, seed] e)`, a hole of several
arguments the `add` of one such map per argument, and a hole passed as a function
(`map ?? xs`) the same under a lambda. `features` has nothing to learn: it encodes a
vector `z` (standardized) as `[z, relu(R z + c)]` with R and c drawn once from the seed
and the input's width, and a list as those features of each element pooled over the
whole list (mean, spread, max, last) *and* over `SEGMENTS` equal parts of each list's own
length (mean, spread, max), so that, like `interval`, `slope`, `paa` or a shapelet, it can
tell where in a series something happens.

Two things follow from the rewrite, with no code of their own:
- `features e` of an input expression is a parameter-free part, so the search computes it
  once and caches it (`search.skeleton.FeatureCache`), for every node that reads it;
- a node linear in its maps (`?? (mean xs)`, `add (affine (std xs)) (?? xs)`, `mean (map
  ?? xs)`) is a convex problem, solved exactly (`neurosym.convex`); the others (a hole
  under `ite` or `mul`) train only their maps, over cached features.
A hole whose type has a function argument, or no argument, keeps a trained network.

A fold whose step function still has a hole (`fold ?? (?? (mean xs)) xs`) stands in as a
whole for a hole over the list it folds: `affine (features xs)`. Its accumulator depends
on the step's learnable part at every element, so nothing inside it could be cached, and
training it is what a fold node cost (ten times any other node, BasicMotions); a
function of the whole list is what the completed fold can be, as NEAR's relaxation of
the fold's type would be.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from neurosym.interp.registry import Site, implements
from neurosym.interp.standardize import Standardize
from neurosym.interp.values import Seq, shape_of
from neurosym.lang import ast
from neurosym.lang.checker import check_term
from neurosym.lang.errors import NeurosymError
from neurosym.lang.types import Arrow, ListT, Type, is_tensor, uncurry
from neurosym.relax.networks import pool_reference
from neurosym.search.terms import apply, hole_paths

SEGMENTS = 4  # equal parts of each list pooled on their own
STATS = 4 + 3 * SEGMENTS  # pooled statistics per element feature


def width(t: Type, hidden: int) -> int | None:
    """The width of `features` of a value of type `t` with `hidden` random features per
    vector; None if it cannot encode `t`."""
    if is_tensor(t):
        return (math.prod(shape_of(t)) or 1) + hidden
    if isinstance(t, ListT) and is_tensor(t.elem):
        return ((math.prod(shape_of(t.elem)) or 1) + hidden) * STATS
    return None


def relax_holes(term: ast.Term, task_type: Arrow, hidden: int, seed: int,
                library=None) -> ast.Term:
    """`term` with every hole that has tensor or list arguments replaced by affine maps
    of their `features`."""
    checked = check_term(term, task_type, library=library)
    names = (f"$r{i}" for i in itertools.count())

    def maps(args: list[ast.Term], types: list[Type]) -> ast.Term:
        parts = [ast.App(ast.Var("affine"), (ast.App(
            ast.Var("features", (width(t, hidden), seed)), (a,)),)) for a, t in zip(args, types)]
        out = parts[0]
        for part in parts[1:]:
            out = ast.App(ast.Var("add"), (out, part))
        return out

    def walk(t: ast.Term) -> ast.Term:
        if _open_fold(t):
            items = t.args[2]
            items_type = checked.type_of(items)
            if width(items_type, hidden):
                return maps([walk(items)], [items_type])
        if isinstance(t, ast.App) and isinstance(t.fn, ast.Hole):
            types, _ = uncurry(checked.type_of(t.fn))
            args = [walk(a) for a in t.args]
            if len(args) == len(types) and all(width(x, hidden) for x in types):
                return maps(args, types)
            return apply(walk(t.fn), tuple(args))
        if isinstance(t, ast.Hole):
            types, _ = uncurry(checked.type_of(t))
            if not types or not all(width(x, hidden) for x in types):
                return t
            params = [next(names) for _ in types]
            body = maps([ast.Var(p) for p in params], types)
            for p in reversed(params):
                body = ast.Lam(p, body)
            return body
        match t:
            case ast.Lam(param, body):
                return ast.Lam(param, walk(body))
            case ast.Let(name, value, body):
                return ast.Let(name, walk(value), walk(body))
            case ast.App(fn, args):
                return apply(walk(fn), tuple(walk(a) for a in args))
        return t

    return walk(term)


def _open_fold(t: ast.Term) -> bool:
    """A fold of all three arguments whose step function has a hole."""
    return (isinstance(t, ast.App) and isinstance(t.fn, ast.Var) and t.fn.name == "fold"
            and len(t.args) == 3 and bool(hole_paths(t.args[0])))


class _RandomFeatures(nn.Module):
    """`[z, relu(R z + c)]` of a vector z standardized by the first values it sees (the
    training split, when a search caches it); R ~ N(0, 1/d) and c ~ N(0, 1), drawn from
    the seed and d alone, so that a cached value does not depend on which node made it."""

    def __init__(self, d: int, hidden: int, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed * 1_000_003 + d)
        self.standardize = Standardize(d)
        self.register_buffer("project", torch.randn(d, hidden, generator=gen) / math.sqrt(d))
        self.register_buffer("offset", torch.randn(hidden, generator=gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1).float()
        if not self.standardize.ready:
            self.standardize.calibrate(x)
        z = self.standardize(x)
        return torch.cat([z, torch.relu(z @ self.project + self.offset)], 1)


class Features(nn.Module):
    """The `features[d, seed]` of a tensor, or of a list (pooled, see the module)."""

    def __init__(self, t: Type, params: tuple[ast.Param, ...]) -> None:
        super().__init__()
        (arg,), _ = uncurry(t)
        dim, seed = params
        self.list = isinstance(arg, ListT)
        elem = arg.elem if self.list else arg
        d = math.prod(shape_of(elem)) or 1
        hidden = dim // STATS - d if self.list else dim - d
        if hidden < 1 or width(arg, hidden) != dim:
            raise NeurosymError(f"features[{dim}, ...] does not fit {arg}")
        self.encode = _RandomFeatures(d, hidden, seed)

    def forward(self, x) -> torch.Tensor:
        if not self.list:
            return self.encode(x)
        h = self.encode(x.flat()).reshape(x.data.shape[0], x.length, -1)
        w = x.weights.to(h.dtype)
        rows = torch.arange(h.shape[0], device=h.device)
        parts = [*_pool(h, w), h[rows, x.last_index()]]
        present = (w > 0).to(h.dtype)
        position = present.cumsum(1) - 1  # among the present elements
        length = present.sum(1, keepdim=True).clamp_min(1)
        segment = (position * SEGMENTS / length).floor().clamp(0, SEGMENTS - 1)
        for s in range(SEGMENTS):
            parts.extend(_pool(h, w * (segment == s).to(h.dtype)))
        return torch.cat(parts, 1)


def _pool(h: torch.Tensor, w: torch.Tensor) -> list[torch.Tensor]:
    """Weighted mean, spread and max over dim 1, as a trained relaxation pools (0 where
    no weight is positive: an empty segment of a short list)."""
    first = torch.zeros(h.shape[0], dtype=torch.long, device=h.device)
    mean, spread, peak, _ = pool_reference(h, w, first).chunk(4, 1)
    return [mean, spread, torch.where(w.sum(1, keepdim=True) > 0, peak, 0.0)]


@implements("features", module=Features)
def features(site: Site, x: torch.Tensor | Seq) -> torch.Tensor:
    """Fixed random features of a value (a list's pooled over it and over 4 equal parts):
    what a hole stands in as while the search scores a node (`relaxation = "features"`)."""
    return site.module(x)
