"""A user's own data files, read into `Examples` (one array per example, raw targets).

Formats, by extension:
- `.npz`: named arrays (`x` and `y` unless `x_key`/`y_key` say otherwise);
- a pair of `.npy` files, given as `{x = "x.npy", y = "y.npy"}`;
- `.csv` or `.tsv`: a table (`tasks/tables.py` says how it is read);
- `.ts` and `.arff` (the UCR/UEA archive formats), through aeon's own readers.

Nothing here knows the task's types: `tasks.assemble` turns examples into splits.
Every error names the file.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neurosym.lang.errors import DataError
from neurosym.tasks.examples import Examples, existing
from neurosym.tasks.tables import TABLES, read_long, read_rows

FORMATS = (".npz", ".npy", ".csv", ".tsv", ".ts", ".arff")


def read_examples(spec: Any, folder: Path, params: Mapping[str, Any],
                  series: bool = True, targets: bool = True) -> Examples:
    """Read the examples a `[data]` entry names (`train = ...`), relative to `folder`.
    `series`: CSV rows may end early (trailing empty cells end a shorter series); when
    the rows are feature vectors, a missing value is an error, or its row is dropped
    (`missing = "drop"`). `targets=False` (new data to predict): a file without targets
    is read too, its targets left empty."""
    if isinstance(spec, Mapping):
        return _npy_pair(spec, folder)
    if not targets and isinstance(spec, str) and spec.lower().endswith(".npy"):
        path = existing(folder, spec)
        x = _load_npy(path)
        return _from_arrays(x, np.zeros(len(x)), str(path))
    if not isinstance(spec, str) or not spec:
        raise DataError(f"a data file must be a path or {{x = ..., y = ...}}, got {spec!r}")
    path = existing(folder, spec)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _npz(path, params, targets)
    if suffix in TABLES:
        layout = params.get("layout", "rows")
        if layout == "rows":
            return read_rows(path, params, series, targets)
        if layout == "long":
            return read_long(path, params, targets)
        raise DataError(f'[data] layout must be "rows" or "long", got {layout!r}')
    if suffix in (".ts", ".arff"):
        return _archive(path, targets)
    raise DataError(f"{path}: unknown data format {suffix or '(none)'!r}; one of "
                    + ", ".join(FORMATS) + " (a .npy file goes in a pair {x = ..., y = ...})")


# ---- NumPy ---------------------------------------------------------------------------------

def _load_npy(path: Path, what: str = "") -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)  # never unpickle: a data file runs no code
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}{what}: not a readable NumPy file ({err})") from err


def _npy_pair(spec: Mapping[str, Any], folder: Path) -> Examples:
    if set(spec) != {"x", "y"} or not all(isinstance(v, str) for v in spec.values()):
        raise DataError(f"a .npy pair is {{x = \"x.npy\", y = \"y.npy\"}}, got {dict(spec)!r}")
    x_path, y_path = (existing(folder, spec[k]) for k in ("x", "y"))
    return _from_arrays(_load_npy(x_path), _load_npy(y_path), f"{x_path} / {y_path.name}")


def _npz(path: Path, params: Mapping[str, Any], targets: bool = True) -> Examples:
    x_key, y_key = params.get("x_key", "x"), params.get("y_key", "y")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            needed = (x_key, y_key) if targets else (x_key,)
            missing = [k for k in needed if k not in arrays.files]
            if missing:
                raise DataError(f"{path}: no array named {missing[0]!r}; it has "
                                + ", ".join(arrays.files) + " (set x_key / y_key)")
            x = arrays[x_key]
            y = arrays[y_key] if y_key in arrays.files else np.zeros(len(x))
    except (OSError, ValueError, EOFError, RuntimeError, NotImplementedError,
            zipfile.BadZipFile) as err:  # RuntimeError: an encrypted member
        raise DataError(f"{path}: not a readable .npz file ({err})") from err
    return _from_arrays(x, y, str(path))


def _from_arrays(x: np.ndarray, y: np.ndarray, origin: str) -> Examples:
    if x.ndim < 2:
        raise DataError(f"{origin}: x must have one row per example, got shape {x.shape}")
    if y.ndim != 1:
        raise DataError(f"{origin}: y must be one target per example, got shape {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{origin}: x has {len(x)} examples but y has {len(y)}")
    if x.dtype.kind not in "fiub":
        raise DataError(f"{origin}: x must be numbers, got {x.dtype}")
    return Examples(list(x.astype(np.float64)), y, origin)


# ---- UCR / UEA archive formats -------------------------------------------------------------

def _archive(path: Path, targets: bool = True) -> Examples:
    """`.ts` / `.arff` through aeon's readers: series come as (N, C, T) or a list of
    (C, T_i); each becomes (T, C)."""
    from aeon.datasets import load_from_arff_file, load_from_ts_file  # slow import: here

    reader = load_from_ts_file if path.suffix.lower() == ".ts" else load_from_arff_file
    try:
        x, y = reader(str(path))
    except Exception as err:  # aeon raises many kinds on a malformed file  # noqa: BLE001
        raise DataError(f"{path}: not a readable {path.suffix} file ({err})") from err
    if not targets and (y is None or len(y) != len(x)):
        y = np.zeros(len(x))
    if y is None or len(y) != len(x):
        raise DataError(f"{path}: every series needs a class label or target value")
    labels = np.asarray(y)
    return Examples([np.asarray(s, dtype=np.float64).T for s in x],
                    labels if labels.dtype.kind == "f" else labels.astype(str), str(path))
