"""Differentiable algorithms: a learned part can be trained through their output alone.

- Soft logic over `Bool` (a logit): `and` is the product t-norm, P(a) P(b); `or` its dual
  (probabilistic sum), 1 - (1 - P(a)) (1 - P(b)); `all` and `any` the same over the present
  elements of a list. All in log-space, so a logit of 50 or -50 stays exact.
- Sorting: an odd-even transposition sorting network whose comparators are relaxed with
  the Cauchy distribution's CDF, a monotonic sigmoid (Petersen et al., "Monotonic
  Differentiable Sorting Networks", ICLR 2022): every output is a convex combination of
  the inputs, and as the steepness grows the network sorts exactly. `sort` returns the
  values in ascending order, `rank` each element's expected position (0 first).
- Shortest paths: the soft minimum, over walks of at most `sweeps` moves between the four
  neighbours of a grid of costs, from the top-left to the bottom-right cell, of the sum of
  the costs of the cells visited (both ends included): soft-min Bellman-Ford, unrolled.
  At temperature -> 0 it is the shortest path's cost (Dijkstra's); `path` is its gradient
  with respect to the costs, the expected number of visits of each cell (the soft path).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from neurosym.interp.registry import Site, implements
from neurosym.interp.values import Seq

STEEPNESS = 10.0  # of `sort` and `rank`: values 0.1 apart are ordered with 0.75 confidence
TEMPERATURE = 0.1  # of `shortest_path` and `path`, in units of the costs


# ---- soft logic --------------------------------------------------------------------------

def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, accurate at both ends (Maechler, 2012)."""
    cut = -math.log(2)  # each branch sees only inputs it is accurate (and finite) on, so
    # that the branch torch.where drops cannot send a NaN gradient
    return torch.where(x > cut, torch.log(-torch.expm1(x.clamp(min=cut))),
                       torch.log1p(-torch.exp(x.clamp(max=cut))))


def logit_of_log_prob(log_p: torch.Tensor) -> torch.Tensor:
    """The logit of a probability given by its logarithm (a certain event, log P = 0, gets
    the largest finite logit, about 87 in single precision)."""
    log_p = log_p.clamp(max=-torch.finfo(log_p.dtype).tiny)
    return log_p - log1mexp(log_p)


def _and(*logits: torch.Tensor) -> torch.Tensor:
    return logit_of_log_prob(sum(torch.nn.functional.logsigmoid(b) for b in logits))


@implements("and")
def and_(site: Site, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Both true: the product t-norm P(a) P(b), as a logit."""
    return _and(a, b)


@implements("or")
def or_(site: Site, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Either true: 1 - (1 - P(a)) (1 - P(b)), as a logit (De Morgan's dual of `and`)."""
    return -_and(-a, -b)


def all_true(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Every present element true: the product of their probabilities (a weight in (0, 1)
    after a soft `filter` counts that element partly)."""
    return logit_of_log_prob((weights * torch.nn.functional.logsigmoid(logits)).sum(1))


@implements("all")
def all_(site: Site, p, xs: Seq) -> torch.Tensor:
    """`p` holds for every element (true for an empty list)."""
    return all_true(p(xs.flat()).reshape(xs.weights.shape), xs.weights)


@implements("any")
def any_(site: Site, p, xs: Seq) -> torch.Tensor:
    """`p` holds for some element (false for an empty list)."""
    return -all_true(-p(xs.flat()).reshape(xs.weights.shape), xs.weights)


# ---- sorting -----------------------------------------------------------------------------

def cauchy_cdf(x: torch.Tensor) -> torch.Tensor:
    """A monotonic sigmoid (heavy-tailed, so no comparator's gradient vanishes)."""
    return torch.atan(x) / math.pi + 0.5


def sorting_network(x: torch.Tensor, present: torch.Tensor, steepness: float
                    ) -> torch.Tensor:
    """The relaxed permutation matrix P (batch, n, n) that sorts `x` (batch, n) ascending:
    row i of P x is the i-th smallest. Absent elements (`present` False) go last, exactly;
    lists are padded at the end, so they are already there. n layers of n/2 comparators
    (odd-even transposition): n^2 comparisons, n^3 for P, meant for short lists."""
    b, n = x.shape
    perm = torch.eye(n, dtype=x.dtype, device=x.device).expand(b, n, n)
    for layer in range(n):
        lo = torch.arange(layer % 2, n - 1, 2, device=x.device)
        if len(lo) == 0:
            continue
        hi = lo + 1
        a, c = x[:, lo], x[:, hi]
        # the probability that the pair is in order: soft for two present elements, and
        # exact when either is absent (an absent element is larger than everything)
        soft = cauchy_cdf(steepness * (c - a))
        keep = torch.where(~present[:, hi], 1.0, torch.where(present[:, lo], soft, 0.0))
        k = keep.unsqueeze(-1)
        rows_lo, rows_hi = perm[:, lo], perm[:, hi]
        perm = perm.index_copy(1, lo, k * rows_lo + (1 - k) * rows_hi)
        perm = perm.index_copy(1, hi, (1 - k) * rows_lo + k * rows_hi)
        x = x.index_copy(1, lo, keep * a + (1 - keep) * c)
        x = x.index_copy(1, hi, (1 - keep) * a + keep * c)
        present = present.index_copy(1, lo, present[:, lo] | present[:, hi]) \
            .index_copy(1, hi, present[:, lo] & present[:, hi])
    return perm


def _steepness(site: Site) -> float:
    return float(site.params[0]) if site.params else STEEPNESS


@implements("sort")
def sort(site: Site, xs: Seq) -> Seq:
    """The list in ascending order (each output a convex combination of the inputs; the
    present elements first)."""
    perm = sorting_network(xs.data, xs.weights > 0, _steepness(site))
    return Seq(_apply(perm, xs.data), _apply(perm, xs.weights).clamp(0.0, 1.0))


def _apply(perm: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (perm @ x.unsqueeze(-1)).squeeze(-1)


@implements("rank")
def rank(site: Site, xs: Seq) -> Seq:
    """Each element's expected position in ascending order, 0 for the smallest."""
    perm = sorting_network(xs.data, xs.weights > 0, _steepness(site))
    positions = torch.arange(xs.length, dtype=xs.data.dtype, device=xs.data.device)
    return Seq(torch.einsum("bji,j->bi", perm, positions), xs.weights)


# ---- grids and shortest paths ------------------------------------------------------------

@implements("grid")
def grid(site: Site, xs: Seq) -> torch.Tensor:
    """The first h*w elements of a list, row by row, as an h x w grid (missing cells 0)."""
    h, w = (int(p) for p in site.params)
    data = xs.data * xs.weights
    cells = data[:, : h * w]
    if cells.shape[1] < h * w:
        cells = torch.nn.functional.pad(cells, (0, h * w - cells.shape[1]))
    return cells.reshape(-1, h, w)


def soft_shortest_path(costs: torch.Tensor, temperature: float, sweeps: int | None = None
                       ) -> torch.Tensor:
    """The soft-min path cost (batch,) from the top-left to the bottom-right cell of
    `costs` (batch, h, w), moving between 4-neighbours, over walks of at most `sweeps`
    moves (default h*w, enough for every simple path). Unreached cells hold a large finite
    cost, so that no gradient is NaN."""
    b, h, w = costs.shape
    sweeps = h * w if sweeps is None else sweeps
    far = costs.detach().abs().sum((1, 2), keepdim=True) * 2 + 1  # above every path's cost
    source = torch.zeros(h, w, dtype=torch.bool, device=costs.device)
    source[0, 0] = True
    start = torch.where(source, costs, far + costs)
    row, column = far.expand(b, 1, w), far.expand(b, h, 1)
    dist = start
    for _ in range(sweeps):
        neighbours = (torch.cat([row, dist[:, :-1]], 1), torch.cat([dist[:, 1:], row], 1),
                      torch.cat([column, dist[:, :, :-1]], 2),
                      torch.cat([dist[:, :, 1:], column], 2))
        candidates = torch.stack([start, *(d + costs for d in neighbours)], -1)
        dist = -temperature * torch.logsumexp(-candidates / temperature, -1)
    return dist[:, -1, -1]


def cheapest_paths(costs: np.ndarray) -> np.ndarray:
    """The exact counterpart of `soft_shortest_path` (batch,) for costs (batch, h, w), by
    Dijkstra's algorithm (SciPy's): each move to a 4-neighbour costs the cell entered, and
    the start cell counts too."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    _, h, w = costs.shape
    cell = np.arange(h * w).reshape(h, w)
    pairs = [(a, b) for x, y in ((cell[:, :-1], cell[:, 1:]), (cell[:-1], cell[1:]))
             for a, b in zip(x.ravel(), y.ravel())]
    tails, heads = np.array(pairs + [(b, a) for a, b in pairs]).T
    flat = costs.reshape(len(costs), -1)
    return np.array([dijkstra(csr_matrix((c[heads], (tails, heads)), shape=(h * w, h * w)),
                              indices=0)[-1] + c[0] for c in flat])


def _path_params(site: Site) -> tuple[float, int | None]:
    t = float(site.params[0]) if site.params else TEMPERATURE
    return t, (int(site.params[1]) if len(site.params) > 1 else None)


@implements("shortest_path")
def shortest_path(site: Site, costs: torch.Tensor) -> torch.Tensor:
    """The soft shortest-path cost through a grid of costs, top-left to bottom-right."""
    return soft_shortest_path(costs, *_path_params(site))


@implements("path")
def path(site: Site, costs: torch.Tensor) -> torch.Tensor:
    """The soft shortest path: how often each cell is visited, in expectation (the
    gradient of the soft path cost with respect to the costs; differentiable again)."""
    with torch.enable_grad():  # the path is a gradient, also when predicting
        leaf = costs if costs.requires_grad else costs.detach().requires_grad_()
        total = soft_shortest_path(leaf, *_path_params(site)).sum()
        (visits,) = torch.autograd.grad(total, leaf, create_graph=costs.requires_grad)
    return visits
