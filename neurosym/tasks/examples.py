"""What a data file holds once read: one array per example, raw targets, and where they
came from; and which numbers a 32-bit float can hold."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from neurosym.lang.errors import DataError


@dataclass(frozen=True, slots=True, eq=False)
class Examples:
    """Examples read from one file: `x[i]` is example i's array ((d,) for a feature row,
    (T, C) for a series of C channels, (h, w) for an image); `y` holds the raw targets
    (class names or numbers, or real values); `origin` names the file in errors; `ids`
    names each example where the file does (a long-format CSV's id column); `columns`
    names the CSV columns the input's features (or a series' channels) were read from."""

    x: list[np.ndarray]
    y: np.ndarray
    origin: str
    ids: tuple[str, ...] | None = None
    columns: tuple[str, ...] | None = None
    dropped: int = 0  # rows left out for a missing value (`[data] missing = "drop"`)
    gaps: bool = False  # NaN in `x` is a missing value, filled with its column's mean

    def __len__(self) -> int:
        return len(self.x)


def with_missing(found: Examples, policy: str) -> Examples:
    """`found` under a missing-value policy: "drop" leaves out the examples with a NaN
    input or target, "mean" keeps NaN inputs for `assemble` to fill (and leaves out those
    with a NaN target); "error" leaves NaN to be refused with its place."""
    if policy == "error":
        return found
    nan_target = (np.isnan(found.y) if found.y.dtype.kind == "f"
                  else np.zeros(len(found.y), dtype=bool))
    keep = [i for i, a in enumerate(found.x) if not nan_target[i]
            and not (policy == "drop" and np.isnan(a).any())]
    if not keep:
        raise DataError(f"{found.origin}: every example has a missing value")
    return replace(found, x=[found.x[i] for i in keep], y=found.y[keep],
                   dropped=found.dropped + len(found.x) - len(keep), gaps=policy == "mean")


def existing(folder: Path, name: str) -> Path:
    """`name` relative to `folder` (unless absolute), which must be a file."""
    path = Path(name) if Path(name).is_absolute() else folder / name
    try:
        found = path.is_file()
    except (OSError, ValueError) as err:  # a name too long, a NUL in it
        raise DataError(f"data file {str(path)[:200]!r} cannot be opened: {err}") from None
    if not found:
        raise DataError(f"data file {path} not found")
    return path


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def unstorable(values: np.ndarray | float) -> np.ndarray:
    """Where `values` holds numbers a 32-bit float cannot: NaN, ±inf or beyond ±3.4e38."""
    return ~(np.abs(values) <= _FLOAT32_MAX)


def not_storable(value: float) -> str:
    """Why a number cannot be trained on: tensors here are 32-bit floats."""
    if math.isfinite(value):
        return "is beyond the range of 32-bit floats (±3.4e38)"
    return "is not a finite number"
