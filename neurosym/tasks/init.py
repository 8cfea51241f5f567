"""`neurosym task init`: write the task file for a user's data, its types, loss and metric
inferred from the data (a table whose numbered columns vary as a series' steps do is read
as one series per row: `tasks.wide`), then load it once so that every problem shows now,
not mid-search."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from neurosym.lang.errors import NeurosymError, TaskError
from neurosym.lang.parser import parse_type
from neurosym.lang.types import ListT, Vec
from neurosym.tasks.assemble import class_name, infer_input_type, is_regression
from neurosym.tasks.files import read_examples
from neurosym.tasks.spec import Task, load_task
from neurosym.tasks.tables import find_categories
from neurosym.tasks.wide import steps_of_a_series


@dataclass(frozen=True, slots=True)
class DataFiles:
    train: str
    test: str | None  # None: `test_fraction` of train is held out
    val: str | None = None
    target: str | None = None  # CSV: the target column (default: the last)
    id_column: str | None = None  # CSV: one row per time step, this column names the series
    time_column: str | None = None
    ignore: tuple[str, ...] = ()  # CSV: columns that are not inputs
    test_fraction: float | None = None
    missing: str | None = None  # "drop" its examples, or "mean" fills a missing value
    header: bool | None = None  # CSV: whether the first row names the columns (None: told)


def init_task(name: str, files: DataFiles, out: Path, input_type: str | None = None,
              regression: bool | None = None, force: bool = False) -> Task:
    """Write `out` (a task named `name` over `files`) and return the task it loads as."""
    if out.exists() and not force:
        raise TaskError(f"{out} exists; choose another name or pass --force to replace it")
    data = {"source": "files", **_data_paths(files, out.parent)}
    if files.id_column:
        data.update(layout="long", id_column=files.id_column)
    for key in ("target", "time_column", "test_fraction", "missing"):
        if getattr(files, key):
            data[key] = getattr(files, key)
    if files.header is not None:
        data["header"] = files.header
    if files.ignore:
        data["ignore"] = list(files.ignore)
    categories = find_categories(files.train, Path(), data)
    if categories:
        data["categorical"] = categories
    train = read_examples(files.train, Path(), data)  # errors name the file as given
    in_type = parse_type(input_type) if input_type else infer_input_type(train)
    if input_type is None and isinstance(in_type, Vec) and steps_of_a_series(train):
        in_type = ListT(Vec(1))  # one series per row, kept as columns
    if regression is None:
        regression = is_regression(train.y)
    if regression:
        output = "Float"
    else:
        output = f"Vec[{len({class_name(v) for v in train.y})}]"
    text = _toml(name, files, data, str(in_type), output, regression)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    try:
        task = load_task(partial)
    except BaseException as err:
        partial.unlink()
        if isinstance(err, NeurosymError):
            raise _as_given(err, name, files, data, partial, out) from None
        raise
    os.replace(partial, out)
    return task


def _as_given(err: NeurosymError, name: str, files: DataFiles, data: dict, partial: Path,
              out: Path) -> NeurosymError:
    """The check load's error as the user sees their files: each data file named as they
    gave it (not relative to the task folder), the task file by its final name."""
    text = err.message.removeprefix(f"{partial} (task {name!r}): ")
    for split in ("train", "test", "val"):
        if split in data:
            text = text.replace(str(out.parent / data[split]), getattr(files, split))
    return type(err)(text.replace(str(partial), str(out)))


def _data_paths(files: DataFiles, folder: Path) -> dict[str, str]:
    """Data paths relative to the task file's folder, which is where they are read from."""
    paths = {}
    for split in ("train", "test", "val"):
        given = getattr(files, split)
        if given is not None:
            path = Path(given).resolve()
            if not path.is_file():
                raise TaskError(f"data file {given} not found")
            paths[split] = os.path.relpath(path, folder.resolve())
    return paths


def _toml(name: str, files: DataFiles, data: dict, input_type: str, output: str,
          regression: bool) -> str:
    def value(v) -> str:
        return json.dumps(v)  # a JSON string is a TOML basic string

    kind = "regression (mse)" if regression else "classification (cross_entropy, accuracy)"
    lines = [f"# Written by `neurosym task init`: {kind}. Edit freely; see the README,",
             "# 'Bring your own data'. Paths are relative to this file.",
             f"name = {value(name)}",
             f"description = {value('from ' + Path(files.train).name)}",
             "", "[data]"]
    lines += [f"{k} = {value(v)}" for k, v in data.items() if k != "categorical"]
    if "categorical" in data:  # one 0/1 feature per name, in this order
        lines += ["", "[data.categorical]"]
        lines += [f"{value(k)} = {value(v)}" for k, v in data["categorical"].items()]
    lines += ["", "[types]", f"input = {value(input_type)}", f"output = {value(output)}",
              "", "[train]", f"loss = {value('mse' if regression else 'cross_entropy')}",
              "seed = 0", "", "[search]", "time_limit = 300", ""]
    return "\n".join(lines)
