"""Distances to prototype series: a series read as nearest-neighbour classifiers read it
("which known shape is it closest to?"), without storing the training set.

`prototypes[k, m] xs` resamples each series to m steps (linearly, by position in its own
length) and returns its mean squared distance to each of k prototypes (a `Vec[k]`).
`prototypes_dtw[k, m, band]` returns the soft-DTW divergence instead (Cuturi and Blondel,
ICML 2017; the divergence of Blondel, Mensch and Vert, AISTATS 2021, which is 0 for a
series and itself, where raw soft-DTW is not), with a Sakoe-Chiba band of `band` x m
steps, so that a shape that moves or stretches a little still matches; channels are
warped together (dependent DTW), or each on its own with `prototypes_dtw_i`.

The prototypes are taken from the training data the program is fitted on (up to
`SEED_ROWS` series of the fold being fitted, `seed_prototypes`): per class, its medoid, then
k-medoids, classes served in turn so that none is left without one, at most
`MAX_PER_CLASS` and at most a quarter of a class's series (storing every training
series would be 1-NN itself, a yardstick rather than a reader). They are then fixed: a
program reads them as fixed features with a linear head, which is solved exactly
(`neurosym.convex`); soft-DTW is differentiable (its gradient is checked in double
precision) for programs that learn on top of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn

from neurosym.interp.dtw import GAMMA, self_dtw, soft_dtw_divergence
from neurosym.interp.primitives import MAX_PARAMETERS
from neurosym.interp.registry import Site, implements
from neurosym.interp.series import sparkline
from neurosym.interp.values import Seq, Value, batch_size, index
from neurosym.lang.errors import NeurosymError
from neurosym.lang.types import Type, Vec, uncurry

MAX_PER_CLASS = 8
SEED_ROWS = 256  # training series the prototypes are chosen among (evenly spread)
MEMO = 8192  # series whose distances a module keeps
PAIRS = 2**21  # (series, prototype) distances kept across modules (`_PAIR_CACHE`)
MEDOID_CANDIDATES = 32  # of them, per class, compared pairwise for its medoids
_MEDOID_ROUNDS = 4
_CELLS = 2**23  # cost-matrix cells computed at once (32 MB in float32)

_TARGETS: ContextVar[torch.Tensor | None] = ContextVar("setup_targets", default=None)

# (kind, m, band) -> {(resampled series bytes, prototype bytes): distance}. Every fold of a
# finalist's cross-validation takes its prototypes again (from that fold's series) and
# measures every series against them: the prototypes are resampled training series, so
# the same pairs recur from fold to fold and finalist to finalist.
_PAIR_CACHE: dict[tuple, dict[tuple[bytes, bytes], float]] = {}


@contextmanager
def setup_targets(y: torch.Tensor | None) -> Iterator[None]:
    """The labels of the rows a model is being set up on (`train.set_up`), for parts that
    take their starting values per class."""
    token = _TARGETS.set(y)
    try:
        yield
    finally:
        _TARGETS.reset(token)


def _classes(rows: int) -> torch.Tensor | None:
    """The class of each of `rows` examples being set up, or None (no labels, labels of
    another batch, or a real-valued target)."""
    y = _TARGETS.get()
    if y is None or len(y) != rows:
        return None
    if not (y.dtype.is_floating_point or y.dtype == torch.bool):
        return y.reshape(rows, -1)[:, 0].long().cpu()
    flat = y.reshape(rows, -1)
    if flat.shape[1] == 1 and bool(((flat == 0) | (flat == 1)).all()):
        return flat[:, 0].long().cpu()
    return None


# ---- resampling and distances -----------------------------------------------------------------

def resample(xs: Seq, m: int) -> torch.Tensor:
    """Each series' present elements, in order, linearly interpolated at m evenly spaced
    positions of its own length (B, m, n), as one product with hat-function weights
    (no sort or gather: exports to ONNX); an empty series gives zeros."""
    present = (xs.weights > 0).to(xs.data.dtype)
    rank = present.cumsum(1) - 1  # (B, L): each present element's place among them
    last = (present.sum(1, keepdim=True) - 1).clamp_min(0)
    grid = torch.linspace(0, 1, m, dtype=xs.data.dtype, device=xs.data.device)
    at = grid.unsqueeze(0) * last  # (B, m): where each output step reads, in ranks
    hat = (1 - (rank.unsqueeze(1) - at.unsqueeze(2)).abs()).clamp_min(0) * present.unsqueeze(1)
    return hat @ xs.data  # (B, m, L) @ (B, L, n)


def squared_distance(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Mean squared difference per step and channel of (B, m, n) series to (k, m, n)
    prototypes: (B, k)."""
    a, b = x.flatten(1), p.flatten(1)
    square = (a * a).sum(1, keepdim=True) + (b * b).sum(1) - 2 * a @ b.T
    return square.clamp_min(0) / a.shape[1]


# ---- the prototypes ---------------------------------------------------------------------------

def medoids(distance: torch.Tensor, count: int) -> list[int]:
    """`count` members of a group (its (g, g) distances) that stand for it: the medoid,
    then each next one the farthest from those taken, then a few rounds of k-medoids
    (each member goes to its nearest pick, each pick moves to its cluster's medoid).
    Deterministic: ties go to the lowest index."""
    picks = [int(distance.sum(1).argmin())]
    while len(picks) < min(count, len(distance)):
        picks.append(int(distance[:, picks].amin(1).argmax()))
    for _ in range(_MEDOID_ROUNDS if len(picks) > 1 else 0):
        nearest = distance[:, picks].argmin(1)
        moved = []
        for c in range(len(picks)):
            members = (nearest == c).nonzero()[:, 0]
            inner = distance[members][:, members].sum(1)
            moved.append(int(members[inner.argmin()]) if len(members) else picks[c])
        if moved == picks:
            break
        picks = moved
    return picks


def allot(classes: torch.Tensor, k: int) -> dict[int, int]:
    """How many of k prototypes each class gets: one each in turn, the largest classes
    first, up to `MAX_PER_CLASS` and a quarter of the class's series (at least one)."""
    names, counts = classes.unique(return_counts=True)
    order = sorted(zip(names.tolist(), counts.tolist()), key=lambda nc: (-nc[1], nc[0]))
    caps = {c: max(1, min(MAX_PER_CLASS, n // 4)) for c, n in order}
    given = {c: 0 for c, _ in order}
    while sum(given.values()) < k and any(given[c] < caps[c] for c in given):
        for c, _ in order:
            if given[c] < caps[c] and sum(given.values()) < k:
                given[c] += 1
    return given


class Prototypes(nn.Module):
    """k prototype series of m steps and n channels, taken from the data it is set up on
    (see the module's docstring) and fixed after; `forward` gives each series' distance
    to each of them, in units of a typical distance of a training series to its nearest
    prototype (so that `softmin` reads them at one temperature whatever the data's
    scale)."""

    elastic: str | None = None  # None: Euclidean; "dependent" or "independent" soft-DTW

    def __init__(self, t: Type, params) -> None:
        super().__init__()
        (arg,), _ = uncurry(t)
        n = arg.elem.n if isinstance(arg.elem, Vec) and isinstance(arg.elem.n, int) else 1
        k, m = int(params[0]), int(params[1])
        if k * m * n > MAX_PARAMETERS:
            raise NeurosymError(f"{self.name}{list(params)} on {n} channels would store "
                                f"{k * m * n:,} values (at most {MAX_PARAMETERS:,})")
        self.k, self.m = k, m
        self.band = None if self.elastic is None else round(
            (float(params[2]) if len(params) > 2 else DEFAULT_BAND) * m)
        self.register_buffer("pattern", torch.zeros(k, m, n))
        self.register_buffer("own", torch.zeros(n if self.elastic == "independent" else 1, k))
        self.register_buffer("origin", torch.full((k,), -1))  # the class each came from
        self.register_buffer("scale", torch.tensor(1.0))  # a typical nearest distance
        self.register_buffer("seeded", torch.tensor(False))
        self.ready = False
        self._memo: dict[tuple[bytes, bytes], torch.Tensor] = {}

    @property
    def name(self) -> str:
        return {None: "prototypes", "dependent": "prototypes_dtw",
                "independent": "prototypes_dtw_i"}[self.elastic]

    def distances(self, x: torch.Tensor, to: torch.Tensor) -> torch.Tensor:
        """(B, m, n) resampled series to (k, m, n) prototypes: (B, k)."""
        if self.elastic is None:
            return squared_distance(x, to)
        return soft_dtw_divergence(x, to, GAMMA, self.band, self.elastic == "independent",
                                   self.own if to is self.pattern else None)

    def forward(self, xs: Seq) -> torch.Tensor:
        if not self.ready:
            self._seed(resample(xs, self.m))
        if xs.data.requires_grad or torch.compiler.is_compiling() \
                or getattr(self, "_memo", None) is None:  # (the exported file keeps none)
            return self._distances(xs)
        return self._recalled(xs)

    def _distances(self, xs: Seq) -> torch.Tensor:
        x = resample(xs, self.m)
        plain = x.requires_grad or getattr(self, "_memo", None) is None  # (exported: no cache)
        return (self.distances(x, self.pattern) if plain else self._pairs(x, self.pattern)) \
            / self.scale

    def _pairs(self, x: torch.Tensor, to: torch.Tensor) -> torch.Tensor:
        """`distances` of resampled series to patterns (no gradients), each pair computed
        once per process (`_PAIR_CACHE`); the series missing a pair are computed
        together."""
        if torch.compiler.is_compiling():
            return self.distances(x, to)
        cache = _PAIR_CACHE.setdefault((self.elastic, self.m, self.band, GAMMA), {})
        rows = [r.tobytes() for r in x.detach().cpu().numpy()]
        cols = [c.tobytes() for c in to.detach().cpu().numpy()]
        missing = [i for i, r in enumerate(rows) if any((r, c) not in cache for c in cols)]
        if missing:
            if sum(map(len, _PAIR_CACHE.values())) + len(missing) * len(cols) > PAIRS:
                for kept in _PAIR_CACHE.values():
                    kept.clear()
            fresh = self._chunked(x[missing], to).tolist()
            for i, values in zip(missing, fresh):
                cache.update(((rows[i], c), v) for c, v in zip(cols, values))
        return torch.tensor([[cache[r, c] for c in cols] for r in rows], dtype=x.dtype,
                            device=x.device)

    def _recalled(self, xs: Seq) -> torch.Tensor:
        """The distances, each series' computed once: a fit evaluates the same training
        series dozens of times (a linear map's design, block by block; its solver's
        losses; every prediction), and a soft-DTW table costs m^2 per series and
        prototype. Kept by each series' exact values, for up to `MEMO` series."""
        data, weights = xs.data.detach().cpu().numpy(), xs.weights.detach().cpu().numpy()
        keys = [(d.tobytes(), w.tobytes()) for d, w in zip(data, weights)]
        missing = [i for i, key in enumerate(keys) if key not in self._memo]
        if missing:
            if len(self._memo) + len(missing) > MEMO:
                self._memo = {}
            rows = torch.tensor(missing, device=xs.data.device)
            fresh = self._distances(Seq(xs.data[rows], xs.weights[rows]))
            self._memo.update({keys[i]: row for i, row in zip(missing, fresh)})
        return torch.stack([self._memo[key] for key in keys])

    def _seed(self, x: torch.Tensor) -> None:
        x = x.detach()  # (no autograd below: only `distances` of detached values)
        classes = _classes(len(x))
        if classes is None:
            classes = torch.zeros(len(x), dtype=torch.long)
        picks, origin = [], []
        for c, count in allot(classes, self.k).items():
            members = (classes == c).nonzero()[:, 0]
            if len(members) > MEDOID_CANDIDATES:  # evenly spread: soft-DTW costs m^2 a pair
                members = members[torch.linspace(0, len(members) - 1,
                                                 MEDOID_CANDIDATES).round().long()]
            chosen = medoids(self._pairs(x[members], x[members]), count)
            picks += members[chosen].tolist()
            origin += [c] * len(chosen)
        distance = self._pairs(x, x[picks])
        rest = torch.ones(len(x), dtype=torch.bool)
        rest[picks] = False
        nearest = distance.amin(1)
        typical = float((nearest[rest] if rest.any() else nearest).median())
        self.scale.fill_(typical if typical > 1e-12 else 1.0)
        # more slots than the caps allow: prototypes repeated, the largest classes' first
        self.pattern.copy_(x[(picks * self.k)[:self.k]])
        if self.elastic is not None:
            self.own.copy_(self_dtw(self.pattern, GAMMA, self.band, self.elastic == "independent"))
        self.origin.copy_(torch.tensor((origin * self.k)[:self.k]))
        self.seeded.fill_(True)
        self.ready, self._memo = True, {}

    def _chunked(self, x: torch.Tensor, to: torch.Tensor) -> torch.Tensor:
        """`distances` in pieces of at most `_CELLS` cost-matrix cells, on the CPU."""
        rows = max(1, _CELLS // (len(to) * self.m * self.m))
        return torch.cat([self.distances(x[i:i + rows], to)
                          for i in range(0, len(x), rows)]).cpu()

    def _load_from_state_dict(self, state, prefix, *args, **kwargs):
        super()._load_from_state_dict(state, prefix, *args, **kwargs)
        # a plain flag: export cannot trace a tensor's truth
        self.ready, self._memo = bool(self.seeded), {}

    def explain(self, names: list[str] | None = None) -> dict:
        """The prototypes' values (per channel), the class of the training series each
        was taken from (-1: no labels), and a sparkline of each distinct one with its
        class (by name if `names` are given)."""
        values = self.pattern.transpose(1, 2).tolist()  # [k][n][m]
        origin = self.origin.tolist()
        distinct = len(dict.fromkeys(map(str, values)))  # repeats fill the slots after
        label = (lambda c: names[c] if names and 0 <= c < len(names) else f"class {c}") \
            if min(origin) >= 0 else (lambda c: "")
        return {"part": f"{self.name}[{self.k}, {self.m}]", "pattern": values,
                "classes": origin,
                "sketch": [f"{label(c)}  " + " | ".join(sparkline(ch) for ch in p)
                           for p, c in zip(values[:distinct], origin)]}


def unseeded(model: nn.Module) -> bool:
    """Whether the model has prototypes not yet taken from data."""
    return any(isinstance(m, Prototypes) and not m.ready for m in model.modules())


def seed_prototypes(model: nn.Module, inputs: list[Value], targets: torch.Tensor | None
                    ) -> None:
    """Take the model's prototypes from up to `SEED_ROWS` training examples, evenly spread
    over them (all of a smaller set; the same rows whatever the run's seed), per class of
    `targets`. Evaluated without gradients: nothing else in the model sets itself up."""
    if not unseeded(model):
        return
    n = batch_size(inputs[0])
    rows = torch.linspace(0, n - 1, min(n, SEED_ROWS)).round().long().unique()
    was_training = model.training
    model.eval()
    with torch.no_grad(), setup_targets(None if targets is None else index(targets, rows)):
        model(*[index(v, rows) for v in inputs])
    model.train(was_training)


class DTWPrototypes(Prototypes):
    elastic = "dependent"


class IndependentDTWPrototypes(Prototypes):
    elastic = "independent"


DEFAULT_BAND = 0.1  # of the prototype's length
SOFTMIN_FLOOR = 1e-6
SOFTMIN_TEMPERATURE = 0.3  # typical nearest distances (measured: 0.3 > 1 > 3 on ArrowHead)


@implements("prototypes", module=Prototypes)
def prototypes(site: Site, xs: Seq) -> torch.Tensor:
    """The distance of each series to each of k prototype series (mean squared difference
    per step, the series resampled to the prototypes' m steps): prototypes[8, 32] gives 8
    values, 0 where the series is that shape. The prototypes are training series, per
    class (medoids), taken when the program is fitted."""
    return site.module(xs)


@implements("prototypes_dtw", module=DTWPrototypes)
def prototypes_dtw(site: Site, xs: Seq) -> torch.Tensor:
    """As `prototypes`, by the soft-DTW divergence (temperature 0.1) within a band of a
    fraction of m steps (prototypes_dtw[8, 32, 0.1]; default 0.1): shapes that move or
    stretch a little still match. Channels share one alignment."""
    return site.module(xs)


@implements("prototypes_dtw_i", module=IndependentDTWPrototypes)
def prototypes_dtw_i(site: Site, xs: Seq) -> torch.Tensor:
    """As `prototypes_dtw`, each channel aligned on its own (the divergences averaged)."""
    return site.module(xs)


@implements("softmin")
def softmin(site: Site, v: torch.Tensor) -> torch.Tensor:
    """A soft one-hot of the smallest entry, softmax(-v / t) (t default 0.3): on
    prototype distances, how much the series belongs to each prototype, the soft form of
    "nearest to this shape" that a linear map then reads as a vote. Shares below 1e-6
    read 1e-6 (a share of 1e-30 standardized would blow up a linear map's input)."""
    t = float(site.params[0]) if site.params else SOFTMIN_TEMPERATURE
    return torch.softmax(-v / t, -1).clamp_min(SOFTMIN_FLOOR)


@implements("znorm")
def znorm(site: Site, xs: Seq) -> Seq:
    """Each series shifted and scaled to mean 0 and spread 1 per channel (over its present
    elements; a constant channel only shifted), so that shapes compare whatever their
    level and amplitude."""
    w = xs.per_element(xs.weights > 0).to(xs.data.dtype)
    count = w.sum(1, keepdim=True).clamp_min(1)
    mean = (xs.data * w).sum(1, keepdim=True) / count
    spread = (((xs.data - mean) * w) ** 2).sum(1, keepdim=True).div(count).sqrt()
    return Seq((xs.data - mean) / torch.where(spread > 1e-6, spread, 1.0) * w, xs.weights)
