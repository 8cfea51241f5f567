"""Data sources, chosen by `[data] source = ...` in a task file.

A source is a function `(params, context) -> SourceData`, where `params` is the task's
`[data]` table and the context carries the seed, the validation share, the task file's
folder and the declared types; it returns train/val/test splits and class names. Register
a new one with a single entry in `SOURCES`. Bundled sources read only data that ships
inside installed packages (aeon's UCR/UEA files, scikit-learn's digits), and `files`
reads the user's own: nothing is ever downloaded. `load_task` validates what they return.
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

from neurosym.interp.values import Seq
from neurosym.lang.errors import DataError, TaskError
from neurosym.lang.types import ListT, Type
from neurosym.tasks.assemble import SourceData, assemble, hold_out
from neurosym.tasks.examples import Examples, with_missing
from neurosym.tasks.files import read_examples
from neurosym.tasks.spec import Split
from neurosym.tasks.splits import stratified_partition


@dataclass(frozen=True, slots=True)
class SourceContext:
    seed: int
    val_fraction: float
    folder: Path  # where the task file is: data paths are relative to it
    input_type: Type
    regression: bool


Source = Callable[[Mapping[str, Any], SourceContext], SourceData]


def _param(params: Mapping[str, Any], key: str, kind: type | tuple, default: Any = None) -> Any:
    value = params.get(key, default)
    if value is None:
        raise TaskError(f"[data] needs {key!r}")
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise TaskError(f"[data] {key} has the wrong type: {value!r}")
    return value


# -------------------------------------------------------------------------- files

def files_source(params: Mapping[str, Any], context: SourceContext) -> SourceData:
    """The user's own files (`tasks/files.py` lists the formats): `train`, and `test` or a
    `test_fraction` of train held out; optionally `val` (else a stratified share of
    train); paths relative to the task file. Its keys are checked by
    `settings.DATA["files"]`."""
    series = isinstance(context.input_type, ListT)
    if "train" not in params:
        raise TaskError("[data] needs 'train' (a data file)")
    if ("test" in params) == ("test_fraction" in params):
        raise TaskError("[data] needs either 'test' (a data file) or 'test_fraction' (a "
                        "share of train held out for testing, e.g. 0.2)")
    policy = params.get("missing", "error")
    read = {split: with_missing(read_examples(params[split], context.folder, params, series),
                                policy)
            for split in ("train", "test", "val") if split in params}
    if "test_fraction" in params:
        read["train"], read["test"] = hold_out(read["train"], params["test_fraction"],
                                               context.regression)
    return assemble(read["train"], read["test"], read.get("val"), context.input_type,
                    context.regression, context.seed, context.val_fraction,
                    _param(params, "normalize", bool, True))


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


def aeon_source(params: Mapping[str, Any], context: SourceContext) -> SourceData:
    """A UCR/UEA classification set as `List[Vec[C]]` (time steps of C channels); the
    validation split is carved (stratified) from the official train split, and the test
    split is the official one, so accuracies compare with published results."""
    dataset = _param(params, "dataset", str)
    if dataset not in bundled_aeon_sets():
        raise DataError(f"unknown aeon data set {dataset!r}; bundled: "
                        + ", ".join(bundled_aeon_sets()))
    train, test = (_aeon_examples(dataset, split) for split in ("TRAIN", "TEST"))
    return assemble(train, test, None, context.input_type, False, context.seed,
                    context.val_fraction, _param(params, "normalize", bool, True))


@lru_cache(maxsize=16)
def _aeon_examples(dataset: str, split: str) -> Examples:
    return read_examples(str(aeon_data_dir() / dataset / f"{dataset}_{split}.ts"), Path("."),
                         {})


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


def digits_source(params: Mapping[str, Any], context: SourceContext) -> SourceData:
    """Modes: `classify` (Image -> Vec[10]), `recognize` (Image -> Bool: is it `digit`?),
    `count` (List[Image] -> Float: how many are `digit`), `sum` (List[Image] -> Float),
    `path` (List[Image] -> Float: a `height` x `width` grid of images, row by row, and
    the cost of the cheapest path through it, each cell costing its digit plus one),
    `order` (List[Image] -> List[Float]: `length` images of distinct digits, labelled only
    by the order that sorts them: each image's position in it, 0 for the smallest).
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
        lengths = (_param(params, "min_len", int, 2), _param(params, "max_len", int, 6))
        if not 1 <= lengths[0] <= lengths[1]:
            raise TaskError(f"[data] need 1 <= min_len <= max_len, got {lengths}")
        sizes = _sizes(params, lengths[1], "lists of up to")
        train, val, test = (
            _image_lists(images, value, pool, n, lengths, [context.seed, k])
            for k, (pool, n) in enumerate(zip(pools, sizes, strict=True))
        )
        return SourceData(train, val, test, None)
    if mode == "path":
        shape = (_param(params, "height", int, 3), _param(params, "width", int, 3))
        sizes = _sizes(params, shape[0] * shape[1], "grids of")
        train, val, test = (_image_grids(images, labels, pool, n, shape, [context.seed, k])
                            for k, (pool, n) in enumerate(zip(pools, sizes, strict=True)))
        return SourceData(train, val, test, None)
    if mode == "order":
        length = _param(params, "length", int, 5)
        if not 2 <= length <= 10:
            raise TaskError(f"[data] length must be 2..10 (distinct digits), got {length}")
        sizes = _sizes(params, length, "lists of")
        train, val, test = (_ordered_lists(images, labels, pool, n, length, [context.seed, k])
                            for k, (pool, n) in enumerate(zip(pools, sizes, strict=True)))
        return SourceData(train, val, test, None)
    raise TaskError("[data] mode must be classify, recognize, count, sum, path or order, "
                    f"got {mode!r}")


def _sizes(params: Mapping[str, Any], images_each: int, what: str) -> list[int]:
    """How many lists (or grids) of images the train, val and test splits hold, refused
    beyond 5,000,000 images in all (8x8 each: about 1.3 GB)."""
    defaults = (("n_train", 1000), ("n_val", 300), ("n_test", 300))
    sizes = [_param(params, key, int, default) for key, default in defaults]
    if sum(sizes) * images_each > 5_000_000:
        raise TaskError(f"[data] asks for {sum(sizes)} {what} {images_each} images: more "
                        "than 5,000,000 images; make it smaller")
    return sizes


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


def _image_grids(images: torch.Tensor, labels: torch.Tensor, pool: torch.Tensor, n: int,
                 shape: tuple[int, int], seed: list[int]) -> Split:
    """`n` grids of digit images (row by row, as a list) drawn from one pool; the target
    is the cost of the cheapest path between opposite corners, moving between
    4-neighbours, each visited cell costing its digit plus one (Dijkstra's)."""
    from neurosym.interp.algorithms import cheapest_paths

    h, w = shape
    if n < 1:
        raise TaskError(f"[data] grid counts must be positive, got {n}")
    rng = np.random.default_rng(seed)
    picks = pool[torch.from_numpy(rng.integers(0, len(pool), size=(n, h * w)))]
    costs = (labels[picks] + 1).reshape(n, h, w).numpy().astype(np.float64)
    return Split(Seq(images[picks], torch.ones(n, h * w)),
                 torch.tensor(cheapest_paths(costs), dtype=torch.float32))


def _ordered_lists(images: torch.Tensor, labels: torch.Tensor, pool: torch.Tensor, n: int,
                   length: int, seed: list[int]) -> Split:
    """`n` lists of `length` images of distinct digits drawn from one pool; the target of
    each image is its position in the list sorted by digit (no digit label is given)."""
    if n < 1:
        raise TaskError(f"[data] list counts must be positive, got {n}")
    rng = np.random.default_rng(seed)
    by_digit = [pool[labels[pool] == d].numpy() for d in range(10)]
    digits = np.stack([rng.choice(10, length, replace=False) for _ in range(n)])
    picks = torch.from_numpy(np.vectorize(lambda d: rng.choice(by_digit[d]))(digits))
    positions = torch.from_numpy(digits.argsort(1).argsort(1)).float()
    return Split(Seq(images[picks], torch.ones(n, length)), positions)


def _planted(params: Mapping[str, Any], context: SourceContext) -> SourceData:
    from neurosym.tasks.planted import planted_source

    return planted_source(params, context.seed, context.val_fraction)


SOURCES: dict[str, Source] = {
    "aeon": aeon_source,
    "digits": digits_source,
    "files": files_source,
    "planted": _planted,
}
