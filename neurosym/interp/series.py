"""Primitives that read the shape of a series, as interpretable time-series classifiers do
(interval features as in time-series forests, learned shapelets as in Grabocka et al.,
"Learning time-series shapelets", KDD 2014). All work on padded batches of variable-length
series: positions are relative to each series' own length, padding is never read, and
every division is guarded, so a constant or very long series gives finite values."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from neurosym.interp.primitives import MAX_PARAMETERS
from neurosym.interp.registry import Site, implements
from neurosym.interp.values import Seq
from neurosym.lang import ast
from neurosym.lang.errors import NeurosymError
from neurosym.lang.types import Type, Vec, uncurry

_EPS = 1e-6


def _present(xs: Seq) -> torch.Tensor:
    return (xs.weights > 0).to(xs.data.dtype)


def positions(xs: Seq) -> torch.Tensor:
    """Each element's place in its own series: 0 at the first present element, 1 at the
    last (B, L); a series of one element sits at 0."""
    present = _present(xs)
    rank = torch.cumsum(present, 1) - 1
    return rank / (present.sum(1, keepdim=True) - 1).clamp_min(1)


# ---- where in the series -----------------------------------------------------------------

def hard_interval(xs: Seq, start: float, stop: float) -> Seq:
    """The elements between two fractions of each series (at least the one nearest the
    middle of the interval, so a short series never comes out empty)."""
    pos = positions(xs)
    inside = (pos >= start - _EPS) & (pos <= stop + _EPS)
    gap = torch.where(xs.weights > 0, (pos - (start + stop) / 2).abs(), torch.inf)
    nearest = gap == gap.amin(1, keepdim=True)
    return Seq(xs.data, xs.weights * (inside | nearest).to(xs.weights.dtype))


class LearnedInterval(nn.Module):
    """Interval bounds learned by gradient: in training the interval's edges are soft
    (sigmoids 0.05 of the series wide); evaluated, it is the hard interval with its
    bounds rounded to 2 decimals, exactly what the printed program says
    (`interval[0.31:0.47]`), so the program written back by hand means the same."""

    def __init__(self, t: Type, params, start: float = 0.25, stop: float = 0.75) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.logit(torch.tensor([start, stop])))

    def bounds(self) -> tuple[float, float]:
        start, stop = sorted(round(v, 2) for v in torch.sigmoid(self.logits).tolist())
        return (start, stop) if stop > start else (max(stop - 0.01, 0.0), start + 0.01)

    def learned_params(self) -> tuple[ast.Param, ...]:
        return (ast.Slice(*self.bounds()),)

    def forward(self, xs: Seq, softness: float = 0.05) -> Seq:
        if not self.training:
            return hard_interval(xs, *self.bounds())
        start, stop = torch.sort(torch.sigmoid(self.logits)).values
        pos = positions(xs)
        inside = torch.sigmoid((pos - start) / softness) * torch.sigmoid((stop - pos) / softness)
        return Seq(xs.data, xs.weights * inside.clamp_min(_EPS))


def _interval_module(t: Type, params) -> nn.Module | None:
    return None if params else LearnedInterval(t, params)


@implements("interval", module=_interval_module)
def interval(site: Site, xs: Seq) -> Seq:
    """The part of each series between two fractions of its own length: interval[0.3:0.5]
    keeps the elements from 30% to 50% of the way (at least the one nearest the middle);
    a bare `interval` learns its bounds, and a found program prints them."""
    if site.module is not None:
        return site.module(xs)
    p = site.params[0]
    return hard_interval(xs, p.start, p.stop)


@implements("diff")
def diff(site: Site, xs: Seq) -> Seq:
    """First differences x[t] - x[t-1] (the first element has none and is dropped)."""
    data = torch.cat([torch.zeros_like(xs.data[:, :1]), xs.data[:, 1:] - xs.data[:, :-1]], 1)
    prev = torch.cat([torch.zeros_like(xs.weights[:, :1]), xs.weights[:, :-1]], 1)
    return Seq(data, xs.weights * prev)


@implements("paa")
def paa(site: Site, xs: Seq) -> torch.Tensor:
    """Piecewise aggregate approximation: the mean of each of k equal parts of each series
    (by position relative to its own length), paa[8] giving 8 values, the series' shape at
    a coarse resolution. A series shorter than k gives, for an empty part, the element
    nearest the part's middle."""
    k = int(site.params[0])
    present = _present(xs)
    pos = positions(xs)  # (B, L)
    part = (pos * k).floor().clamp(0, k - 1).long()
    member = F.one_hot(part, k).to(xs.data.dtype) * present.unsqueeze(2)  # (B, L, k)
    values = xs.data[..., 0]  # (B, L): one feature (the type says Vec[1])
    count = member.sum(1)
    mean = (member * values.unsqueeze(2)).sum(1) / count.clamp_min(1)
    middle = (torch.arange(k, dtype=pos.dtype, device=pos.device) + 0.5) / k
    gap = (pos.unsqueeze(2) - middle).abs().masked_fill(present.unsqueeze(2) == 0, torch.inf)
    nearest = values.gather(1, gap.argmin(1))  # (B, k)
    return torch.where(count > 0, mean, nearest)


SPECTRUM_FLOOR = 1e-4  # added to every share: an empty band reads log10(1e-4) = -4


@implements("spectrum")
def spectrum(site: Site, xs: Seq) -> torch.Tensor:
    """How the variance of each series splits over k equal frequency bands, from the
    slowest (one cycle over many steps) to the fastest (steps that alternate), as
    log10(share + 1e-4), from -4 (none) to 0 (all of it): spectrum[8] gives 8 values,
    which a linear leaf reads as "more of the energy in the fast bands". Each series is
    transformed at its own length, so a series reads the same alone or padded in a batch;
    a constant series has no variance (every share 0)."""
    k = int(site.params[0])
    present = _present(xs)
    values = xs.data[..., 0] * present
    count = present.sum(1).long()
    mean = values.sum(1, keepdim=True) / count.clamp_min(1).unsqueeze(1).to(values.dtype)
    # the present steps first, in order (an interval's steps sit in the middle)
    order = torch.argsort(present, dim=1, descending=True, stable=True)
    centred = ((values - mean) * present).gather(1, order)
    # shares do not depend on the scale: at most 1 in size, the power cannot overflow
    tiny = torch.finfo(values.dtype).tiny
    centred = centred / centred.abs().amax(1, keepdim=True).clamp_min(tiny)
    out = torch.empty(len(values), k, dtype=values.dtype, device=values.device)
    for n in count.unique().tolist():
        rows = count == n
        out[rows] = _band_shares(centred[rows, :max(n, 1)], k)
    return torch.log10(out + SPECTRUM_FLOOR)


def _band_shares(series: torch.Tensor, k: int) -> torch.Tensor:
    """(R, n) centred series of one length -> (R, k) shares of their power per band."""
    n = series.shape[1]
    power = torch.fft.rfft(series, dim=1).abs().square()
    bins = power.shape[1]
    freq = torch.arange(bins, dtype=series.dtype, device=series.device) / n  # 0 to 0.5
    band = (freq * 2 * k).floor().clamp(0, k - 1).long()
    twice = torch.full((bins,), 2.0, dtype=series.dtype, device=series.device)
    twice[0] = 1.0  # the one-sided spectrum counts every bin but 0 (and n/2) twice
    if n % 2 == 0:
        twice[-1] = 1.0
    per_band = torch.zeros(len(series), k, dtype=series.dtype, device=series.device)
    per_band = per_band.index_add(1, band, power * twice)
    total = per_band.sum(1, keepdim=True)
    return torch.where(total > _EPS, per_band / total.clamp_min(_EPS), 0.0)


# ---- summaries -------------------------------------------------------------------------------

@implements("slope")
def slope(site: Site, xs: Seq) -> torch.Tensor:
    """The least-squares trend per feature, in units per whole series (x at the end minus
    x at the start, on a straight line); 0 for a series of one element."""
    w = xs.per_element(xs.weights)
    pos = xs.per_element(positions(xs))
    total = w.sum(1, keepdim=True).clamp_min(_EPS)
    pc = pos - (w * pos).sum(1, keepdim=True) / total
    xc = xs.data - (w * xs.data).sum(1, keepdim=True) / total
    return (w * pc * xc).sum(1) / (w * pc * pc).sum(1).clamp_min(_EPS)


def _masked(xs: Seq, fill: float) -> torch.Tensor:
    present = xs.per_element(xs.weights > 0)
    return torch.where(present, xs.data, torch.full_like(xs.data, fill))


@implements("max")
def max_(site: Site, xs: Seq) -> torch.Tensor:
    """The largest value per feature (padding skipped; 0 for an empty list)."""
    out = _masked(xs, -torch.inf).amax(1)
    return torch.where(torch.isfinite(out), out, torch.zeros_like(out))


@implements("min")
def min_(site: Site, xs: Seq) -> torch.Tensor:
    """The smallest value per feature (padding skipped; 0 for an empty list)."""
    out = _masked(xs, torch.inf).amin(1)
    return torch.where(torch.isfinite(out), out, torch.zeros_like(out))


@implements("argmax")
def argmax(site: Site, xs: Seq, sharpness: float = 10.0) -> torch.Tensor:
    """Where the maximum is, per feature, as a fraction of the series (0 start, 1 end):
    the expected position under a softmax of the values (sharpness 10), so it is smooth."""
    logits = _masked(xs, -torch.inf) * sharpness
    weights = torch.softmax(logits, 1).nan_to_num(0.0)
    return (weights * xs.per_element(positions(xs))).sum(1)


# ---- shapes ----------------------------------------------------------------------------------

class Shapelet(nn.Module):
    """m learned patterns of k steps of the series' n features. Each starts as a window of
    a series it is trained on (under the node's seed), as learned shapelets are usually
    initialised: a random pattern far from every window gets almost no gradient through
    the soft minimum."""

    def __init__(self, t: Type, params) -> None:
        super().__init__()
        (arg,), _ = uncurry(t)
        n = arg.elem.n if isinstance(arg.elem, Vec) and isinstance(arg.elem.n, int) else 1
        self.single = len(params) == 1
        m = 1 if self.single else int(params[1])
        if m * int(params[0]) * n > MAX_PARAMETERS:
            raise NeurosymError(f"shapelet{list(params)} on {n} features would have "
                                f"{m * int(params[0]) * n:,} values (at most "
                                f"{MAX_PARAMETERS:,})")
        self.pattern = nn.Parameter(0.5 * torch.randn(m, int(params[0]), n))
        self.register_buffer("seeded", torch.tensor(False))

    def explain(self) -> dict:
        """What a reader needs: the patterns' length and values (per feature), each drawn
        as a sparkline from its lowest to its highest value (one line per pattern)."""
        m, k, _ = self.pattern.shape
        values = self.pattern.detach().transpose(1, 2).tolist()  # [m][n][k]
        return {"part": f"shapelet[{k}]" if self.single else f"shapelet[{k}, {m}]",
                "pattern": values[0] if self.single else values,
                "sketch": [" | ".join(sparkline(f) for f in p) for p in values]}

    def _seed_from(self, xs: Seq, candidates_per_pattern: int = 16) -> None:
        """Seed the patterns from windows of the batch, chosen as k-means++ chooses
        centres (each next one far, in squared distance, from those already taken), so
        that m patterns start on m different shapes rather than on near-copies."""
        m, k, _ = self.pattern.shape
        lengths = _present(xs).sum(1)
        count = candidates_per_pattern * m
        rows = torch.randint(len(lengths), (count,), device="cpu").to(lengths.device)
        starts = (torch.rand(count, device="cpu").to(lengths.device)
                  * ((lengths[rows] - k).clamp_min(0) + 1)).long()
        steps = (starts[:, None] + torch.arange(k, device=starts.device)
                 ).clamp_max(xs.data.shape[1] - 1)
        windows = xs.data[rows[:, None], steps] * _present(xs)[rows[:, None], steps][..., None]
        with torch.no_grad():
            chosen = [int(torch.randint(count, (), device="cpu"))]
            for _ in range(1, m):
                gap = torch.cdist(windows.flatten(1), windows[chosen].flatten(1)).amin(1) ** 2
                chosen.append(int(torch.multinomial(gap, 1)) if gap.sum() > 0
                              else int(torch.randint(count, (), device="cpu")))
            self.pattern.copy_(windows[chosen])
        self.seeded.fill_(True)

    def forward(self, xs: Seq, temperature: float = 0.1) -> torch.Tensor:
        if self.training and not bool(self.seeded):
            self._seed_from(xs)
        dist = self.distances(xs)
        out = -temperature * torch.logsumexp(-dist / temperature, 2).clamp(-1e6, 1e6)
        return out[:, 0] if self.single else out

    def distances(self, xs: Seq) -> torch.Tensor:
        """Mean squared distance of every pattern to every window (B, m, windows), as
        sum x^2 - 2 x.p + sum p^2 by convolutions; inf where a window is not one to read:
        windows must lie inside the series, except in a series shorter than k, which is
        compared once, from its start, on its present elements."""
        m, k, n = self.pattern.shape
        present = _present(xs)
        pad = max(k - present.shape[1], 0)
        present = F.pad(present, (0, pad)).unsqueeze(1)  # (B, 1, L)
        x = F.pad(xs.data.transpose(1, 2), (0, pad)) * present  # (B, n, L), padding 0
        ones = x.new_ones(1, 1, k)
        cross = F.conv1d(x, self.pattern.transpose(1, 2))  # (B, m, W)
        xx = F.conv1d((x * x).sum(1, keepdim=True), ones)
        pp = F.conv1d(present, (self.pattern ** 2).sum(2).unsqueeze(1))
        count = F.conv1d(present, ones)  # present elements per window (B, 1, W)
        dist = (xx - 2 * cross + pp).clamp_min(0) / (count.clamp_min(1) * n)
        full = count == k
        first = torch.zeros_like(full)
        first[..., 0] = True
        valid = full | (~full.any(2, keepdim=True) & first)
        return torch.where(valid, dist, torch.full_like(dist, torch.inf))


def sparkline(values: list[float]) -> str:
    """A series as block characters, lowest value to highest."""
    bars = "▁▂▃▄▅▆▇█"
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(bars[round((v - low) / span * (len(bars) - 1))] for v in values)


@implements("shapelet", module=Shapelet)
def shapelet(site: Site, xs: Seq) -> torch.Tensor:
    """How closely a learned pattern of k steps matches anywhere in the series: the soft
    minimum (temperature 0.1) over windows of the mean squared distance to the pattern;
    0 is an exact match somewhere. shapelet[k, m] learns m patterns (a Vec[m])."""
    return site.module(xs)
