"""What a data file holds once read: one array per example, raw targets, and where they
came from; and which numbers a 32-bit float can hold."""

from __future__ import annotations

import math
from dataclasses import dataclass
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


def existing(folder: Path, name: str) -> Path:
    """`name` relative to `folder` (unless absolute), which must be a file."""
    path = Path(name) if Path(name).is_absolute() else folder / name
    if not path.is_file():
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
