"""Data sources, chosen by `[data] source = ...` in a task file.

A source is a function `(params, seed, val_fraction) -> SourceData`, where `params` is
the task's `[data]` table; it returns train/val/test splits and class names. Register a
new one with a single entry in `SOURCES`. Sources only read data that ships inside
installed packages (aeon's bundled UCR/UEA files, scikit-learn's digits): nothing is
ever downloaded, so every task works offline. `load_task` validates what they return.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurosym.interp.values import Seq, pad_sequences
from neurosym.lang.errors import DataError, TaskError
from neurosym.tasks.spec import Split, stratified_partition


@dataclass(frozen=True, slots=True, eq=False)
class SourceData:
    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...] | None = None


Source = Callable[[Mapping[str, Any], int, float], SourceData]


def _param(params: Mapping[str, Any], key: str, kind: type | tuple, default: Any = None) -> Any:
    value = params.get(key, default)
    if value is None:
        raise TaskError(f"[data] needs {key!r}")
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise TaskError(f"[data] {key} has the wrong type: {value!r}")
    return value


# --------------------------------------------------------------------------- aeon

def aeon_data_dir() -> Path:
    """Where the aeon wheel keeps its bundled data sets (found without importing aeon)."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the aeon package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


@lru_cache(maxsize=1)
def bundled_aeon_sets() -> tuple[str, ...]:
    """The classification sets inside the aeon wheel: a folder NAME with NAME_TRAIN.ts and
    NAME_TEST.ts whose header says `@classLabel true`. Only these files are read (with
    aeon's own .ts reader); aeon's downloaders are never called."""
    found = []
    for folder in sorted(aeon_data_dir().glob("*/")):
        train, test = (folder / f"{folder.name}_{s}.ts" for s in ("TRAIN", "TEST"))
        if train.is_file() and test.is_file() and _has_class_labels(train):
            found.append(folder.name)
    return tuple(found)


def _has_class_labels(path: Path) -> bool:
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.lower().startswith("@classlabel"):
                return line.split()[1].lower() == "true"
            if line.lower().startswith("@data"):
                return False
    return False


def aeon_source(params: Mapping[str, Any], seed: int, val_fraction: float) -> SourceData:
    """A UCR/UEA classification set as `List[Vec[C]]` (time steps of C channels); the
    validation split is carved (stratified) from the official train split, and the test
    split is the official one, so accuracies compare with published results."""
    dataset = _param(params, "dataset", str)
    if dataset not in bundled_aeon_sets():
        raise DataError(f"unknown aeon data set {dataset!r}; bundled: "
                        + ", ".join(bundled_aeon_sets()))
    train_x, train_labels = _aeon_split(dataset, "train")
    test_x, test_labels = _aeon_split(dataset, "test")
    classes = _sorted_classes(train_labels, test_labels)
    code = {c: i for i, c in enumerate(classes)}
    train_y = torch.tensor([code[c] for c in train_labels])
    test_y = torch.tensor([code[c] for c in test_labels])
    fit, val = stratified_partition(train_y, len(train_y), (1 - val_fraction, val_fraction), seed)
    fit_x, val_x = [train_x[i] for i in fit], [train_x[i] for i in val]
    if _param(params, "normalize", bool, True):
        mean, std = _channel_stats(fit_x)
        fit_x, val_x, test_x = ([(s - mean) / std for s in xs] for xs in (fit_x, val_x, test_x))
    return SourceData(
        train=Split(pad_sequences(fit_x), train_y[fit]),
        val=Split(pad_sequences(val_x), train_y[val]),
        test=Split(pad_sequences(test_x), test_y),
        classes=classes,
    )


@lru_cache(maxsize=16)
def _aeon_raw(dataset: str, split: str) -> tuple[tuple[np.ndarray, ...], tuple[str, ...]]:
    from aeon.datasets import load_from_ts_file  # slow to import (about 2 s): only here

    path = aeon_data_dir() / dataset / f"{dataset}_{split.upper()}.ts"
    x, y = load_from_ts_file(str(path))
    return tuple(np.asarray(s) for s in x), tuple(str(c) for c in y)


def _aeon_split(dataset: str, split: str) -> tuple[list[torch.Tensor], tuple[str, ...]]:
    """Series as (T_i, C) float32 tensors: aeon gives (N, C, T) or a list of (C, T_i)."""
    series, labels = _aeon_raw(dataset, split)
    return [torch.tensor(s.T, dtype=torch.float32) for s in series], labels


def _sorted_classes(*label_sets: tuple[str, ...]) -> tuple[str, ...]:
    """Class names in sorted order; numerically when they are all integers, so that
    "10" follows "9" and class index i of a digit-labelled set is what one expects."""
    names = sorted({c for labels in label_sets for c in labels})
    if all(_is_int(c) for c in names):
        names.sort(key=int)
    return tuple(names)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _channel_stats(series: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over every time step of the training series only."""
    steps = torch.cat(series, dim=0)
    finite = torch.isfinite(steps)
    # NaN-safe, so that non-finite raw data reaches the validator rather than hiding here
    count = finite.sum(0).clamp(min=1)
    mean = torch.where(finite, steps, 0.0).sum(0) / count
    var = torch.where(finite, (steps - mean) ** 2, 0.0).sum(0) / count
    std = var.sqrt()
    return mean, torch.where(std > 1e-8, std, torch.ones_like(std))


# ------------------------------------------------------------------------- digits

DIGIT_POOLS = (0.6, 0.2, 0.2)  # train/val/test shares of the 1,797 images


@lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits, scaled from 0..16 to [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32) / 16.0
    return images, torch.tensor(bunch.target, dtype=torch.long)


@lru_cache(maxsize=8)
def digit_pools(pool_seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices of the train/val/test image pools: one fixed, stratified split shared by
    every digits task (independent of the task seed), so that a function learned on one
    digits task has never seen the test images of another."""
    _, labels = _digits()
    train, val, test = stratified_partition(labels, len(labels), DIGIT_POOLS, pool_seed)
    return train, val, test


def digits_source(params: Mapping[str, Any], seed: int, val_fraction: float) -> SourceData:
    """Modes: `classify` (Image -> Vec[10]), `recognize` (Image -> Bool: is it `digit`?),
    `count` (List[Image] -> Float: how many are `digit`), `sum` (List[Image] -> Float).
    The val split is the fixed val pool; `val_fraction` is not used."""
    mode = _param(params, "mode", str, "classify")
    pools = digit_pools(_param(params, "pool_seed", int, 0))
    images, labels = _digits()
    if mode in ("classify", "recognize"):
        if mode == "classify":
            targets, classes = labels, tuple(str(d) for d in range(10))
        else:
            digit = _digit(params)
            targets, classes = (labels == digit).float(), (f"not_{digit}", str(digit))
        train, val, test = (Split(images[p], targets[p]) for p in pools)
        return SourceData(train, val, test, classes)
    if mode in ("count", "sum"):
        value = (labels == _digit(params)).float() if mode == "count" else labels.float()
        defaults = (("n_train", 1000), ("n_val", 300), ("n_test", 300))
        sizes = [_param(params, key, int, default) for key, default in defaults]
        lengths = (_param(params, "min_len", int, 2), _param(params, "max_len", int, 6))
        if not 1 <= lengths[0] <= lengths[1]:
            raise TaskError(f"[data] need 1 <= min_len <= max_len, got {lengths}")
        train, val, test = (
            _image_lists(images, value, pool, n, lengths, [seed, k])
            for k, (pool, n) in enumerate(zip(pools, sizes, strict=True))
        )
        return SourceData(train, val, test, None)
    raise TaskError(f"[data] mode must be classify, recognize, count or sum, got {mode!r}")


def _digit(params: Mapping[str, Any]) -> int:
    digit = _param(params, "digit", int)
    if not 0 <= digit <= 9:
        raise TaskError(f"[data] digit must be 0..9, got {digit}")
    return digit


def _image_lists(
    images: torch.Tensor,
    value: torch.Tensor,
    pool: torch.Tensor,
    n: int,
    lengths: tuple[int, int],
    seed: list[int],
) -> Split:
    """`n` lists of images drawn (with replacement) from one pool, lengths uniform in
    `lengths`; the target is the sum of `value` over each list's present images."""
    if n < 1:
        raise TaskError(f"[data] list counts must be positive, got {n}")
    rng = np.random.default_rng(seed)
    lo, hi = lengths
    length = torch.from_numpy(rng.integers(lo, hi + 1, size=n))
    picks = pool[torch.from_numpy(rng.integers(0, len(pool), size=(n, hi)))]
    weights = (torch.arange(hi) < length[:, None]).float()
    data = images[picks] * weights[:, :, None, None]
    return Split(Seq(data, weights), (value[picks] * weights).sum(1))


def _planted(params: Mapping[str, Any], seed: int, val_fraction: float) -> SourceData:
    from neurosym.tasks.planted import planted_source

    return planted_source(params, seed, val_fraction)


SOURCES: dict[str, Source] = {
    "aeon": aeon_source,
    "digits": digits_source,
    "planted": _planted,
}
