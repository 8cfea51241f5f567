"""Neural relaxations: a small network for any hole type.

A hole of type `A1 -> ... -> An -> R` in a scope of variables `v1 : T1, ...` becomes a
network from (v1, ..., A1, ..., An) to R. Each input is encoded to a flat vector by the
encoder of its type (a GRU for lists, a small CNN for images); the result is decoded from
an MLP, or per element by a GRU when a list maps to a list. Function-typed scope variables
cannot be encoded and are left out.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from neurosym.interp.standardize import Standardize
from neurosym.interp.values import Seq, Value, align, shape_of
from neurosym.lang.errors import NeurosymError
from neurosym.lang.types import Image, ListT, Type, encodable, is_tensor, uncurry


class RelaxationError(NeurosymError):
    pass


class _Flat(nn.Module):
    """A tensor as a vector, standardized (an MLP on unstandardized log band powers
    stayed at chance on OSULeaf; standardized, it reads them as logistic regression does)."""

    def __init__(self, t: Type) -> None:
        super().__init__()
        self.dim = math.prod(shape_of(t)) or 1
        self.standardize = Standardize(self.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.standardize(x.reshape(x.shape[0], -1))


class _ImageEncoder(nn.Module):
    """Two conv layers and pooling: cheap enough to train at every search node."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.dim = hidden
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
            nn.Flatten(), nn.Linear(64, hidden), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(1))


class _GRUEncoder(nn.Module):
    """A GRU over the element encodings; the state at the last present element.
    Order-aware but sequential, so slow to train on a CPU."""

    def __init__(self, elem: Type, hidden: int) -> None:
        super().__init__()
        self.elem = encoder(elem, hidden)
        self.gru = nn.GRU(self.elem.dim, hidden, batch_first=True)
        self.dim = hidden

    def steps(self, xs: Seq) -> torch.Tensor:
        flat = self.elem(xs.flat())
        out, _ = self.gru(flat.reshape(xs.data.shape[0], xs.length, -1))
        return out

    def forward(self, xs: Seq) -> torch.Tensor:
        out = self.steps(xs)
        return out[torch.arange(out.shape[0], device=out.device), xs.last_index()]


class _PoolEncoder(nn.Module):
    """Per-element features pooled by weighted mean, spread, max and last element, then
    mixed. Covers what the list primitives compute (mean, std, last, folds of sums) and
    trains an order of magnitude faster than a GRU: this is the default for search."""

    def __init__(self, elem: Type, hidden: int) -> None:
        super().__init__()
        self.elem = encoder(elem, hidden)
        self.features = nn.Sequential(nn.Linear(self.elem.dim, hidden), nn.ReLU())
        self.mix = nn.Sequential(nn.Linear(4 * hidden, hidden), nn.ReLU())
        self.dim = hidden

    def steps(self, xs: Seq) -> torch.Tensor:
        h = self.features(self.elem(xs.flat()))
        return h.reshape(xs.data.shape[0], xs.length, -1)

    def forward(self, xs: Seq) -> torch.Tensor:
        h = self.steps(xs)
        dense = _all_ones(xs.weights)
        if dense is None or xs.weights.requires_grad:  # under vmap, or weights a program
            pooled = pool_reference(h, xs.weights, xs.last_index())  # learns
        else:
            pooled = _Pooled.apply(h, xs.weights, xs.last_index(), dense)
        return self.mix(pooled)


def pool_reference(h: torch.Tensor, weights: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Weighted mean, spread (+1e-6 under the root), max over present elements and last
    present element of features `h` (B, L, H): what `_Pooled` computes, written plainly."""
    w = weights.unsqueeze(2)
    total = w.sum(1).clamp_min(1e-6)
    mean = (w * h).sum(1) / total
    spread = torch.sqrt((w * (h - mean.unsqueeze(1)) ** 2).sum(1) / total + 1e-6)
    peak = h.masked_fill(w == 0, -1e4).amax(1)
    return torch.cat([mean, spread, peak, h[torch.arange(h.shape[0], device=h.device), last]], 1)


def _all_ones(weights: torch.Tensor) -> bool | None:
    """Whether no element is padded or down-weighted, where that is cheap to know (on the
    CPU; elsewhere it is a host sync, so False); None under `vmap`, where the values are
    not known, and where autograd's pooling is the faster (measured: 1.0 s against 1.3-1.5
    s for three BasicMotions nodes trained together)."""
    if weights.device.type != "cpu":
        return False
    try:
        return bool((weights == 1).all())
    except RuntimeError:  # a batched tensor: data-dependent control flow
        return None


def _squared(x: torch.Tensor) -> torch.Tensor:
    """`x` squared in place (`mul_`: `vmap` has no batching rule for `square_`)."""
    return x.mul_(x)


def _share(weights: torch.Tensor) -> torch.Tensor:
    return (weights / weights.sum(1, keepdim=True).clamp_min(1e-6)).unsqueeze(2)


class _Pooled(torch.autograd.Function):
    """`pool_reference` in fewer passes over `h`, with a hand-written gradient. A list
    relaxation's training step is bound by passes over its (B, L, H) features: autograd's
    version of these formulas makes about three times as many, and reductions over L
    are cheap only as sums and `amax` (`bmm`, `max` with indices and `var_mean` cost 4-60x
    more at L = 5). Series without padding (`dense`: all weights 1) skip the weighting.
    Written in the functorch style, so that nodes trained together under `vmap` use it."""

    generate_vmap_rule = True

    @staticmethod
    def forward(h: torch.Tensor, weights: torch.Tensor, last: torch.Tensor,
                dense: bool) -> torch.Tensor:
        if dense:
            mean = h.sum(1, keepdim=True) / h.shape[1]
            var = _squared(h - mean).sum(1) / h.shape[1]
            peak = h.amax(1)
        else:
            share = _share(weights)
            mean = (h * share).sum(1, keepdim=True)
            var = _squared(h - mean).mul_(share).sum(1)
            peak = h.masked_fill(share == 0, -1e4).amax(1)
        rows = torch.arange(h.shape[0], device=h.device)
        return torch.cat([mean.squeeze(1), torch.sqrt(var + 1e-6), peak, h[rows, last]], 1)

    @staticmethod
    def setup_context(ctx, inputs: tuple, output: torch.Tensor) -> None:
        h, weights, last, ctx.dense = inputs
        ctx.save_for_backward(h, weights, last, output)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        h, weights, last, pooled = ctx.saved_tensors
        mean, spread, peak, _ = (p.unsqueeze(1) for p in pooled.chunk(4, 1))
        g_mean, g_spread, g_peak, g_last = (g.unsqueeze(1) for g in grad.chunk(4, 1))
        coef = g_spread / spread
        if ctx.dense:
            out = torch.addcmul(g_mean, h - mean, coef).div_(h.shape[1])
            top = (h >= peak).to(h.dtype)
        else:
            # d spread / d h_l = share_l (h_l - mean - c) / spread, c = mean (1 - sum
            # share): 0 unless every weight is 0 (the clamp)
            share = _share(weights)
            shift = mean * (2 - share.sum(1, keepdim=True))
            out = torch.addcmul(g_mean, h - shift, coef).mul_(share)
            top = ((h >= peak) & (share > 0)).to(h.dtype)
        # the max's gradient is shared among tied elements, as `amax`'s is (in float:
        # sums and products on bool tensors cost a conversion each; and `vmap` has no
        # batching rule for `addcmul_`)
        out = torch.addcmul(out, top, g_peak / top.sum(1, keepdim=True).clamp_min(1))
        out[torch.arange(h.shape[0], device=h.device), last] += g_last.squeeze(1)
        return out, None, None, None


LIST_ENCODERS = {"pool": _PoolEncoder, "gru": _GRUEncoder}


def encoder(t: Type, hidden: int, list_encoder: str = "pool") -> nn.Module:
    if isinstance(t, ListT):
        return LIST_ENCODERS[list_encoder](t.elem, hidden)
    if isinstance(t, Image):
        return _ImageEncoder(hidden)
    if is_tensor(t):
        return _Flat(t)
    raise RelaxationError(f"no neural encoder for values of type {t}")


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


class Relaxation(nn.Module):
    """The network standing in for one hole. `forward(inputs, rows)` takes the encodable
    scope values followed by the hole's arguments."""

    def __init__(self, scope: list[Type], hole_type: Type, hidden: int = 32,
                 list_encoder: str = "pool") -> None:
        super().__init__()
        args, result = uncurry(hole_type)
        self.input_types = [*scope, *args]
        self.to_list = isinstance(result, ListT)  # one output per element of a list input
        self.arity = len(args)
        self.encoders = nn.ModuleList(encoder(t, hidden, list_encoder)
                                      for t in self.input_types)
        width = sum(e.dim for e in self.encoders)
        self.seq_index = next((i for i, t in enumerate(self.input_types)
                               if isinstance(t, ListT)), None)
        if self.to_list:
            if self.seq_index is None or not is_tensor(result.elem):
                raise RelaxationError(f"no neural relaxation for a hole of type {hole_type}")
            self.out_shape = shape_of(result.elem)
            self.head = _mlp(width, hidden, math.prod(self.out_shape) or 1)
        elif is_tensor(result):
            self.out_shape = shape_of(result)
            size = math.prod(self.out_shape) or 1
            self.head = _mlp(width, hidden, size) if width else None
            self.const = nn.Parameter(torch.zeros(size)) if not width else None
        else:
            raise RelaxationError(f"no neural relaxation for a hole of type {hole_type}")

    def forward(self, inputs: list[Value], rows: int) -> Value:
        if self.to_list:
            return self._per_element(inputs)
        if self.head is None:
            return self.const.expand(rows, -1).reshape(rows, *self.out_shape)
        feats = torch.cat(self._encode(inputs, rows), 1)
        return self.head(feats).reshape(rows, *self.out_shape)

    def _encode(self, inputs: list[Value], rows: int) -> list[torch.Tensor]:
        """Encode each input at its own batch size, then align: a list captured outside a
        `map` is encoded once per example, not once per element."""
        return [align(e(x), rows) for e, x in zip(self.encoders, inputs)]

    def _per_element(self, inputs: list[Value]) -> Seq:
        xs: Seq = inputs[self.seq_index]
        steps = self.encoders[self.seq_index].steps(xs)
        rows = xs.data.shape[0]
        others = [x for i, x in enumerate(self._encode(inputs, rows)) if i != self.seq_index]
        if others:
            ctx = torch.cat(others, 1).unsqueeze(1).expand(-1, xs.length, -1)
            steps = torch.cat([ctx, steps], 2)
        out = self.head(steps)
        return Seq(out.reshape(*out.shape[:2], *self.out_shape), xs.weights)


def relaxation_inputs(scope, values: dict[str, Value]) -> list[Value]:
    """The scope values a relaxation reads (at their own batch sizes)."""
    return [values[name] for name, t in scope if encodable(t)]
