"""Soft-DTW (Cuturi and Blondel, ICML 2017) and its divergence (Blondel, Mensch and Vert,
AISTATS 2021), batched over series and prototypes: the soft minimum over alignments,
computed in log-space one anti-diagonal at a time (unrolled, so that it exports), +inf
stood in by a large finite number so that gradients stay finite."""

from __future__ import annotations

import torch
import torch.nn.functional as F

GAMMA = 0.1  # the temperature, on costs that are mean squared differences per step
_BIG = 1e10  # stands for +inf in the recursion (a true inf gives NaN gradients)


def step_costs(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Squared differences, averaged over channels, of every step of each series in x
    (..., m, n) to every step of its counterpart in p (..., m', n), leading dimensions
    broadcast: (..., m, m')."""
    cross = torch.einsum("...in,...jn->...ij", x, p) / x.shape[-1]
    own_x, own_p = (x * x).mean(-1), (p * p).mean(-1)
    return (own_x[..., :, None] + own_p[..., None, :] - 2 * cross).clamp_min(0)


def soft_dtw(cost: torch.Tensor, gamma: float = GAMMA, band: int | None = None) -> torch.Tensor:
    """Soft-DTW of cost matrices (..., m, m'): the soft minimum (temperature `gamma`,
    log-sum-exp) over monotone alignments of their summed cost, by the recursion
    R[i, j] = cost[i, j] + softmin(R[i-1, j-1], R[i-1, j], R[i, j-1]) computed one
    anti-diagonal at a time (indexed by i; unrolled, so it exports); cells more than
    `band` steps off the diagonal (a Sakoe-Chiba band, for square matrices) are not on
    any alignment."""
    *lead, m, w = cost.shape
    if band is not None and m != w:
        raise ValueError("a band needs series of equal length")
    i = torch.arange(m + 1, device=cost.device)
    d = torch.arange(2, m + w + 1, device=cost.device).unsqueeze(1)
    j = d - i  # (D, m + 1): the column of row i on anti-diagonal d
    valid = (i >= 1) & (j >= 1) & (j <= w)
    if band is not None:
        valid &= (i - j).abs() <= band
    diagonals = cost[..., (i - 1).clamp(0, m - 1), (j - 1).clamp(0, w - 1)]  # (..., D, m+1)
    before = torch.full((*lead, m + 1), _BIG, dtype=cost.dtype, device=cost.device)
    before[..., 0] = 0.0  # R[0, 0], on diagonal 0
    prev = torch.full_like(before, _BIG)  # diagonal 1: borders only
    for step in range(m + w - 1):
        options = torch.stack([_down(before), _down(prev), prev], -1)
        soft = -gamma * torch.logsumexp(-options / gamma, -1)
        before, prev = prev, torch.where(valid[step], diagonals[..., step, :] + soft, _BIG)
    return prev[..., m]


def _down(diagonal: torch.Tensor) -> torch.Tensor:
    """A diagonal's values moved one row down (R[i-1, .] read at row i)."""
    return F.pad(diagonal[..., :-1], (1, 0), value=_BIG)


def soft_dtw_divergence(x: torch.Tensor, p: torch.Tensor, gamma: float = GAMMA,
                        band: int | None = None, independent: bool = False,
                        own_p: torch.Tensor | None = None) -> torch.Tensor:
    """The soft-DTW divergence D(x, p) = S(x, p) - (S(x, x) + S(p, p)) / 2 of (B, m, n)
    series to (k, m, n) prototypes, per step (divided by m): (B, k), 0 for a series and
    itself. `independent`: each channel is aligned on its own and the divergences averaged
    (DTW_I); otherwise all channels share one alignment (DTW_D). `own_p`: S(p, p) if known
    (`self_dtw`)."""
    own_p = self_dtw(p, gamma, band, independent) if own_p is None else own_p
    if independent:
        per = [soft_dtw_divergence(x[..., c:c + 1], p[..., c:c + 1], gamma, band, False,
                                   own_p[c:c + 1]) for c in range(x.shape[2])]
        return torch.stack(per).mean(0)
    # the series' own S(x, x) rides along with S(x, p): one recursion, not two
    both = soft_dtw(torch.cat([step_costs(x[:, None], p[None]), step_costs(x, x)[:, None]], 1),
                    gamma, band)
    cross, own_x = both[:, :-1], both[:, -1]
    return (cross - (own_x[:, None] + own_p[0][None, :]) / 2) / x.shape[1]


def self_dtw(p: torch.Tensor, gamma: float = GAMMA, band: int | None = None,
             independent: bool = False) -> torch.Tensor:
    """S(p, p) of (k, m, n) series: (1, k), or (n, k) per channel if `independent`."""
    if independent:
        return torch.stack([soft_dtw(step_costs(p[..., c:c + 1], p[..., c:c + 1]), gamma, band)
                            for c in range(p.shape[2])])
    return soft_dtw(step_costs(p, p), gamma, band).unsqueeze(0)
