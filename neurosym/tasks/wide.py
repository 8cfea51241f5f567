"""Series kept as columns (one row per series, one column per time step): telling them
from a table whose columns are separate features, for `task init`.

Both must hold. The names: a shared prefix and increasing numbers (`t0`...`t285`, or
`1`...`286` in a file without a header row). The values: neighbouring columns correlate
strongly (ρ(1) ≥ 0.6 between column j and j+1, over the examples), no farther pair more
so, distant columns far less (ρ(1) exceeds the mean ρ at lags d/4 to d/2 by 0.25), and no
sharp peak at a farther lag (an image kept row by row correlates again at its width).
Measured on what we had: the UCR sets GunPoint, ItalyPowerDemand, ArrowHead, OSULeaf and
a random walk pass; scikit-learn's digits (8x8 and enlarged to 28x28), breast cancer,
wine and diabetes, and white noise, do not.
"""

from __future__ import annotations

import re

import numpy as np

from neurosym.tasks.examples import Examples

MIN_STEPS = 8
_NUMBERED = re.compile(r"^(.*?)(\d+)$")
_SAMPLE = 500  # examples enough to measure correlations
_NEAR = 64  # lags looked at for peaks


def numbered(names: list[str] | tuple[str, ...]) -> bool:
    """Names of one prefix and increasing numbers, at least `MIN_STEPS` of them."""
    found = [_NUMBERED.match(n) for n in names]
    if len(names) < MIN_STEPS or not all(found):
        return False
    numbers = [int(m.group(2)) for m in found]
    return len({m.group(1) for m in found}) == 1 and all(
        b > a for a, b in zip(numbers, numbers[1:]))


def series_like(x: np.ndarray) -> bool:
    """Whether the columns of `x` [examples, d] vary as the steps of a series do."""
    x = np.asarray(x, dtype=np.float64)[:_SAMPLE]
    d = x.shape[1]
    if d < MIN_STEPS or len(x) < 3:
        return False
    spread = x.std(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (x - x.mean(0)) / np.where(spread > 0, spread, np.nan)
    top = min(d // 2, _NEAR)
    rho = {k: _lag(z, k) for k in range(1, min(top + 3, d - 1) + 1)}
    far = [_lag(z, k) for k in sorted({int(k) for k in np.linspace(d // 4, d // 2, 8)}) if k]
    if not np.isfinite(rho[1]) or rho[1] < 0.6 or rho[1] - np.nanmean(far) < 0.25:
        return False
    farther = [rho[k] for k in range(2, top + 1)]
    peaks = [rho[k] - (rho[k - 3] + rho[k + 3]) / 2 for k in range(4, top + 1)
             if k + 3 in rho]
    return max(farther, default=-1.0) <= rho[1] and max(peaks, default=0.0) < 0.2


def _lag(z: np.ndarray, k: int) -> float:
    """Mean correlation of column j with column j + k (constant columns left out)."""
    with np.errstate(invalid="ignore"):
        values = np.mean(z[:, :-k] * z[:, k:], axis=0)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")


def steps_of_a_series(examples: Examples) -> bool:
    """Feature rows of equal length whose columns are the steps of a series."""
    names = examples.columns or ()
    if not numbered(names) or len({a.shape for a in examples.x}) != 1:
        return False
    return series_like(np.stack(examples.x))
