"""From examples read anywhere (a user's files, arrays handed over in Python, aeon's
bundled archive) to a task's splits: inputs laid out as the input type says, labels coded
as class indices (names kept) or real targets, a stratified validation split carved from
train when none is given, and inputs standardized with statistics of the fitted split only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from neurosym.interp.values import pad_sequences
from neurosym.lang.errors import DataError
from neurosym.lang.types import Image, ListT, Type, Vec
from neurosym.tasks.examples import Examples, not_storable, unstorable
from neurosym.tasks.spec import Split
from neurosym.tasks.splits import stratified_partition


@dataclass(frozen=True, slots=True)
class Normalization:
    """Per-feature (vectors) or per-channel (series) mean and spread of the fitted training
    split, applied to every split, and to be applied to new inputs before predicting; for
    regression, the targets' mean and spread too (a program then predicts standardized
    values, which `restore` turns back into the data's units)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    target: tuple[float, float] | None = None

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if not self.mean:
            return x
        return (x - torch.tensor(self.mean)) / torch.tensor(self.std)

    def restore(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.target is None else y * self.target[1] + self.target[0]


@dataclass(frozen=True, slots=True, eq=False)
class SourceData:
    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...] | None = None
    normalization: Normalization | None = None
    input_names: tuple[str, ...] | None = None  # a feature's or channel's name, by index


def infer_input_type(examples: Examples) -> Type:
    """Vec[d] for feature rows, List[Vec[C]] for series (T, C) (read from a series format,
    or of unequal lengths), Image[h,w] for 2-D arrays of one shape. Rows of unequal length
    are univariate series."""
    shapes = {a.shape for a in examples.x}
    ndims = {len(s) for s in shapes}
    if ndims == {1}:
        return Vec(shapes.pop()[0]) if len(shapes) == 1 else ListT(Vec(1))
    if ndims == {2}:
        channels = {s[1] for s in shapes}
        series_file = examples.origin.endswith((".ts", ".arff", ".csv", ".tsv"))
        if len(channels) == 1 and (series_file or len(shapes) > 1):
            return ListT(Vec(channels.pop()))
        if len(shapes) == 1:
            h, w = shapes.pop()
            return Image(h, w)
    raise DataError(f"{examples.origin}: cannot tell the input type from example shapes "
                    f"{sorted(shapes)[:3]}; set [types] input")


def is_regression(y: np.ndarray, max_classes: int = 20) -> bool:
    """Real-valued targets: floating-point numbers that are not all integers, or that take
    more than `max_classes` values (integer labels are classes)."""
    if y.dtype.kind != "f":
        return False
    y = y[np.isfinite(y)]  # non-finite targets are refused with their place, later
    return not np.all(np.mod(y, 1) == 0) or len(np.unique(y)) > max_classes


def assemble(train: Examples, test: Examples, val: Examples | None, input_type: Type,
             regression: bool, seed: int, val_fraction: float, normalize: bool = True,
             ) -> SourceData:
    """Splits of a task from its examples (see the module docstring)."""
    for found in (train, test, val):
        if found is not None and len(found) == 0:
            raise DataError(f"{found.origin}: no examples")
        if found is not None:
            _check_targets(found)
    classes = None if regression else _classes(train, test, val)
    xs = {name: _inputs(e, input_type) for name, e in (("train", train), ("test", test),
                                                       ("val", val)) if e is not None}
    ys = {name: _coded(e, classes) for name, e in (("train", train), ("test", test),
                                                   ("val", val)) if e is not None}
    if val is None:
        labels = None if classes is None else ys["train"]
        fit, held = stratified_partition(labels, len(train), (1 - val_fraction, val_fraction),
                                         seed)
        if len(held) == 0 or len(fit) == 0:
            raise DataError(f"{train.origin}: {len(train)} examples are too few to carve a "
                            "validation split from; give a val file")
        xs["val"], ys["val"] = [xs["train"][i] for i in held], ys["train"][held]
        xs["train"], ys["train"] = [xs["train"][i] for i in fit], ys["train"][fit]
    norm = _normalization(xs["train"], input_type) if normalize else None
    if norm is None and any(e is not None and e.gaps for e in (train, test, val)):
        raise DataError(f'{train.origin}: missing = "mean" fills a missing value with its '
                        "column's mean, which needs normalize = true")
    if normalize and regression:  # a bias of 150 takes Adam thousands of steps to reach
        fitted = ys["train"].double()  # in float32 the spread of large values overflows
        mean, spread = float(fitted.mean()), float(fitted.std(unbiased=False))
        spread = spread if spread > 1e-8 else 1.0
        ys = {name: (y - mean) / spread for name, y in ys.items()}
        norm = replace(norm or Normalization((), ()), target=(mean, spread))
    splits = {name: Split(_batched(xs[name], input_type, norm), ys[name]) for name in xs}
    return SourceData(splits["train"], splits["val"], splits["test"], classes, norm,
                      _input_names(train, input_type))


def _input_names(examples: Examples, input_type: Type) -> tuple[str, ...] | None:
    """The CSV columns that are the features of a `Vec[d]` input, or the channels of a
    `List[Vec[C]]` one (not a series' time steps, which have no names worth showing)."""
    if examples.columns is None or named_width(input_type) != len(examples.columns):
        return None  # (a series given as one row of time steps: its steps' columns)
    return examples.columns


def named_width(input_type: Type) -> int | None:
    """How many names an input has: its features (`Vec[d]`), or the channels of its
    series (`List[Vec[C]]`); None for other types."""
    features = input_type.elem if isinstance(input_type, ListT) else input_type
    return features.n if isinstance(features, Vec) else None


TEST_SPLIT_SEED = 0  # a held-out test share is the same rows whatever the search's seed


def hold_out(examples: Examples, fraction: float, regression: bool
             ) -> tuple[Examples, Examples]:
    """The examples split into the rest and a test share (`[data] test_fraction`, for data
    that comes as one file): stratified by class, and fixed, so that runs with different
    seeds are scored on the same test examples."""
    labels = None
    if not regression:
        codes = {c: i for i, c in enumerate(sorted({class_name(v) for v in examples.y}))}
        labels = torch.tensor([codes[class_name(v)] for v in examples.y])
    rest, held = stratified_partition(labels, len(examples), (1 - fraction, fraction),
                                      TEST_SPLIT_SEED)
    if len(held) == 0 or len(rest) == 0:
        raise DataError(f"{examples.origin}: {len(examples)} examples are too few to hold "
                        f"out a test share of {fraction:g}; give a test file")

    def part(rows: torch.Tensor, name: str) -> Examples:
        keep = rows.tolist()
        ids = None if examples.ids is None else tuple(examples.ids[i] for i in keep)
        return replace(examples, x=[examples.x[i] for i in keep], y=examples.y[keep],
                       origin=f"{examples.origin} ({name})", ids=ids)

    return part(rest, "all but the test share"), part(held, f"test share {fraction:g}")


def _check_targets(examples: Examples) -> None:
    """Numeric targets a 32-bit float holds (NaN is a missing label, not a class)."""
    if examples.y.dtype.kind != "f":
        return
    bad = np.flatnonzero(unstorable(examples.y))
    if len(bad):
        value = examples.y[bad[0]]
        raise DataError(f"{examples.origin}: target {bad[0]} ({value}) {not_storable(value)}"
                        f" ({len(bad)} such)")


def _classes(train: Examples, test: Examples, val: Examples | None) -> tuple[str, ...]:
    names = sorted_classes({class_name(v) for v in train.y})
    if len(names) < 2:
        raise DataError(f"{train.origin}: the targets have one class only ({names[0]!r}); "
                        "a classifier needs at least two")
    for other in (test, val):
        unseen = sorted({class_name(v) for v in (other.y if other else ())} - set(names))
        if unseen:
            numeric = train.y.dtype.kind in "fiu"
            raise DataError(f"{other.origin}: labels never seen in training: "
                            + ", ".join(map(repr, unseen[:5]))
                            + ("; if the target is a quantity, not a class: `task init "
                               "--regression`, or regression=True in Python" if numeric
                               else ""))
    return names


def class_name(label) -> str:
    """A class name: numbers without a spurious `.0`."""
    if isinstance(label, float | np.floating) and float(label).is_integer():
        return str(int(label))
    return str(label)


def sorted_classes(names: set[str]) -> tuple[str, ...]:
    """Sorted, numerically when every name is an integer ("10" after "9")."""
    ordered = sorted(names)
    if all(_is_int(c) for c in ordered):
        ordered.sort(key=int)
    return tuple(ordered)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _coded(examples: Examples, classes: tuple[str, ...] | None) -> torch.Tensor:
    if classes is None:
        if examples.y.dtype.kind not in "fiu":
            raise DataError(f"{examples.origin}: regression targets must be numbers")
        return torch.tensor(examples.y.astype(np.float64), dtype=torch.float32)
    code = {c: i for i, c in enumerate(classes)}
    return torch.tensor([code[class_name(v)] for v in examples.y], dtype=torch.long)


def _inputs(examples: Examples, input_type: Type) -> list[torch.Tensor]:
    """Each example as a float32 tensor of the layout `input_type` needs, checked."""
    out = []
    for i, a in enumerate(examples.x):
        a = np.asarray(a, dtype=np.float64)
        if isinstance(input_type, ListT) and a.ndim == 1:
            a = a[:, None]  # a univariate series
        bad = unstorable(a) & ~(np.isnan(a) if examples.gaps else False)
        if bad.any():
            where = tuple(int(v) for v in np.argwhere(bad)[0])
            hint = (' (a missing value? missing = "drop" leaves its example out, "mean" '
                    "fills it)") if np.isnan(a[where]) else ""
            raise DataError(f"{examples.origin}: example {i}, position {where}: "
                            f"{a[where]} {not_storable(a[where])}{hint}")
        problem = _shape_problem(a.shape, input_type)
        if problem:
            raise DataError(f"{examples.origin}: example {i} has shape {a.shape}, but the "
                            f"input type {input_type} needs {problem}")
        out.append(torch.tensor(a, dtype=torch.float32))
    return out


def _shape_problem(shape: tuple[int, ...], t: Type) -> str | None:
    match t:
        case Vec(n):
            return None if shape == (n,) else f"({n},)"
        case Image(h, w):
            return None if shape == (h, w) else f"({h}, {w})"
        case ListT(Vec(n)):
            return None if len(shape) == 2 and shape[1] == n and shape[0] > 0 else f"(T, {n})"
    return f"a layout neurosym cannot read from files ({t})"


def batched_inputs(examples: Examples, input_type: Type, norm: Normalization | None):
    """New inputs (no targets needed) as one batched value of `input_type`, normalized with
    the training data's statistics (which also fill missing values)."""
    if examples.gaps and norm is None:
        raise DataError(f"{examples.origin}: a missing value cannot be filled: the model "
                        "keeps no column means")
    return _batched(_inputs(examples, input_type), input_type, norm)


def _normalization(xs: list[torch.Tensor], input_type: Type) -> Normalization | None:
    """Statistics of the last axis (features or channels) over the fitted examples only;
    images are left as they are."""
    if isinstance(input_type, Image):
        return None
    steps = torch.cat([x.reshape(-1, x.shape[-1]) for x in xs]).double()  # no overflow
    mean = steps.nanmean(0)  # over the values present (`missing = "mean"`)
    std = (steps - mean).square().nanmean(0).sqrt()
    mean = mean.nan_to_num(0.0)  # a column with no value at all
    std = torch.where(std > 1e-8, std, torch.ones_like(std))  # (NaN > 1e-8 is false)
    return Normalization(tuple(mean.tolist()), tuple(std.tolist()))


def _batched(xs: list[torch.Tensor], input_type: Type, norm: Normalization | None):
    """Normalized (a missing value, NaN, becomes 0: its column's mean) and batched."""
    if norm is not None:
        xs = [norm.apply(x).nan_to_num(0.0) for x in xs]
    return pad_sequences(xs) if isinstance(input_type, ListT) else torch.stack(xs)
