"""Tasks from arrays handed over in Python (`Task.from_arrays`), with the same checks,
splits and normalization as tasks read from files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from neurosym.lang.errors import DataError, NeurosymError, TaskError
from neurosym.lang.types import Type
from neurosym.settings import MISSING_POLICIES
from neurosym.tasks.assemble import assemble, infer_input_type, is_regression, named_width
from neurosym.tasks.examples import Examples, with_missing
from neurosym.tasks.spec import Task, task_from_spec


def examples(x: Any, y: Any, what: str) -> Examples:
    """Arrays as `Examples`: `x` is an array (or a pandas DataFrame) with one row per
    example, or a list of per-example arrays (series of different lengths); `y` one target
    per example."""
    if x is None or y is None:
        raise DataError(f"{what}: needs both inputs and targets")
    if hasattr(x, "to_numpy"):  # a DataFrame iterates over its column names, not its rows
        x = x.to_numpy()
    try:
        given = [np.asarray(a) for a in x]
        if any(np.iscomplexobj(a) for a in given):
            raise DataError(f"{what}: inputs must be real numbers, not complex")
        rows = [a.astype(np.float64) for a in given]
    except (TypeError, ValueError) as err:
        raise DataError(f"{what}: inputs must be numbers ({err}); code categories as 0/1 "
                        "columns first (pandas.get_dummies), or save the table as a CSV for "
                        "`neurosym task init`, which does") from err
    targets = np.asarray(y)
    if targets.ndim != 1:
        raise DataError(f"{what}: targets must be one per example, got shape {targets.shape}")
    if len(rows) != len(targets):
        raise DataError(f"{what}: {len(rows)} inputs but {len(targets)} targets")
    if targets.dtype.kind not in "fiub":
        targets = targets.astype(str)
    return Examples(rows, targets, what)


def task_from_arrays(x_train: Any, y_train: Any, x_test: Any, y_test: Any, *,
                     x_val: Any = None, y_val: Any = None, input_type: str | None = None,
                     regression: bool | None = None, name: str = "arrays", seed: int = 0,
                     val_fraction: float = 0.2, normalize: bool = True,
                     train: dict | None = None, search: dict | None = None,
                     input_names: Any = None, missing: str = "error") -> Task:
    """`input_names`: a name per feature (or per channel of a series), which saved models
    explain their parts by; by default a pandas DataFrame's column names. `missing`: what
    a NaN input does, as in a task file ("error", "drop" its example, or "mean" of its
    column, which a saved model then fills in new data too); a NaN target is refused, or
    its example left out under "drop" and "mean"."""
    if missing not in MISSING_POLICIES:
        raise TaskError(f"missing must be one of {', '.join(MISSING_POLICIES)}, got "
                        f"{missing!r}")
    columns = getattr(x_train, "columns", None)  # a pandas DataFrame's
    if input_names is None and columns is not None and all(isinstance(c, str) for c in columns):
        input_names = list(columns)
    train_ex = with_missing(examples(x_train, y_train, "x_train"), missing)
    test_ex = with_missing(examples(x_test, y_test, "x_test"), missing)
    val_ex = (with_missing(examples(x_val, y_val, "x_val"), missing)
              if x_val is not None or y_val is not None else None)
    in_type = _input_type(input_type, train_ex)
    if input_names is not None:
        train_ex = replace(train_ex, columns=_names(input_names, in_type))
    if regression is None:
        regression = is_regression(train_ex.y)
    raw = assemble(train_ex, test_ex, val_ex, in_type, regression, seed, val_fraction,
                   normalize)
    output = "Float" if regression else f"Vec[{len(raw.classes)}]"
    spec = {"name": name, "types": {"input": str(in_type), "output": output},
            "train": {"seed": seed, "val_fraction": val_fraction, **(train or {})},
            "data": {"source": "arrays", "missing": missing}}
    if search:
        spec["search"] = dict(search)
    return task_from_spec(spec, Path(f"<{name}>"), raw=raw)


def _names(names: Any, input_type: Type) -> tuple[str, ...]:
    width = named_width(input_type)
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise DataError(f"input_names must be a list of texts, got {names!r}")
    if len(names) != width:
        raise DataError(f"input_names: {len(names)} names, but the input type {input_type} "
                        f"has {width or 'no named'} features")
    return tuple(names)


def _input_type(text: str | None, train: Examples) -> Type:
    if text is None:
        return infer_input_type(train)
    from neurosym.lang.parser import parse_type

    try:
        return parse_type(text)
    except NeurosymError as err:
        raise TaskError(f"input_type {text!r}: {err.message}") from err
