"""Task specs: what to learn (types, loss, metric), from which data, under which budgets.

A task is a TOML file (bundled ones live in `tasks/NAME.toml`):

    name = "basic_motions"
    description = "one line"
    [data]    source = "aeon", dataset = "BasicMotions", ...   (keys of the source)
    [types]   input = "List[Vec[6]]", output = "Vec[4]"        (DSL type strings)
    [train]   loss, metric, seed, val_fraction, class_weights, epochs, lr, batch_size, ...
    [search]  time_limit, ...

Everything is checked here, before any training, so that a search never runs on NaNs,
on labels out of range, or on data whose layout disagrees with the declared types.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from neurosym.interp.values import Seq, Value, check_value, index, to_device
from neurosym.lang.errors import DataError, NeurosymError, TaskError
from neurosym.lang.types import BOOL, FLOAT, Arrow, ListT, Type, Vec, free_vars
from neurosym.resources import read_toml, tasks_dir
from neurosym.tasks.splits import stratified_partition

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

METRICS_FOR_LOSS = {
    "cross_entropy": ("accuracy", "macro_f1"),
    "bce": ("accuracy", "macro_f1"),
    "mse": ("mse", "exact_order"),
}
DEFAULT_METRIC = {"cross_entropy": "accuracy", "bce": "macro_f1", "mse": "mse"}
_TABLES = ("data", "types", "train", "search")
_OPTION_TABLES = ("search",)  # kept in Task.options by name
# how a task's files are read: kept with a saved model, to read new data the same way
DATA_LAYOUT = ("layout", "target", "header", "id_column", "time_column", "x_key", "y_key",
               "ignore", "categorical", "missing")


def resolve_device(name: str | torch.device) -> torch.device:
    """A torch device by name ("cpu", "cuda", "cuda:1", "mps"), refused with a reason if
    this machine has no such device."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise TaskError(f"unknown device {str(name)!r} (cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TaskError(f"device {str(name)!r}: this machine has no CUDA GPU (torch "
                        f"{torch.__version__}); use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise TaskError(f"device {str(name)!r}: MPS is not available here; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise TaskError(f"device {str(name)!r}: only cpu, cuda and mps are supported")
    return device


@dataclass(frozen=True, slots=True, eq=False)
class Split:
    """Inputs `x` (a batched value of the task's input type) and targets `y`, row-aligned."""

    x: Value
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, idx: Any) -> Split:
        idx = torch.as_tensor(idx, dtype=torch.long)
        return Split(index(self.x, idx), self.y[idx])

    def to(self, device: torch.device) -> Split:
        return Split(to_device(self.x, device), self.y.to(device))


@dataclass(frozen=True, slots=True, eq=False)
class Task:
    """A loaded, validated task. `options` holds the budget settings of the TOML file:
    the extra keys of `[train]` (epochs, lr, batch_size, ...) at top level, every other
    table by its name (`options["search"]["time_limit"]`), and `data_fraction`."""

    name: str
    description: str
    input_type: Type
    output_type: Type
    loss: str
    metric: str
    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...] | None
    seed: int
    class_weights: torch.Tensor | None
    options: dict[str, Any] = field(default_factory=dict)
    normalization: Any = None  # assemble.Normalization of the inputs, when the source made one
    input_names: tuple[str, ...] | None = None  # a feature's or channel's name, by index

    @property
    def num_classes(self) -> int | None:
        """C for cross-entropy, 2 for bce, None for regression."""
        if self.loss == "cross_entropy":
            return int(self.output_type.n)
        return 2 if self.loss == "bce" else None

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}

    @property
    def device(self) -> torch.device:
        """Where the task's data is (`to`)."""
        return self.train.y.device

    def to(self, device: str | torch.device) -> Task:
        """The task with its data (and class weights) on `device`: programs and
        relaxations then run there end to end."""
        device = resolve_device(device)
        if self.device == device:
            return self
        weights = None if self.class_weights is None else self.class_weights.to(device)
        return dataclasses.replace(self, train=self.train.to(device), val=self.val.to(device),
                                   test=self.test.to(device), class_weights=weights)

    @classmethod
    def from_arrays(cls, x_train: Any, y_train: Any, x_test: Any, y_test: Any,
                    **options: Any) -> Task:
        """A task from arrays: `x` with one row per example (or a list of series of
        different lengths), `y` class names or numbers, or real values for regression.
        The input type is inferred unless `input_type` says it; see
        `tasks.arrays.task_from_arrays` for the options (validation arrays, seed, ...)."""
        from neurosym.tasks.arrays import task_from_arrays

        return task_from_arrays(x_train, y_train, x_test, y_test, **options)


def task_folders() -> list[Path]:
    """Where tasks are found by name: `./tasks` (the user's, written by `neurosym task
    init`), then the bundled ones."""
    local = Path.cwd() / "tasks"
    bundled = tasks_dir()
    return [local, bundled] if local.is_dir() and local.resolve() != bundled.resolve() \
        else [bundled]


def list_tasks() -> list[tuple[str, str]]:
    """(name, description) of every task found by name (`task_folders`); files without a
    `[data]` table (such as lifelong task sequences) are not tasks and are skipped."""
    found, seen = [], set()
    for path in (p for folder in task_folders() for p in sorted(folder.glob("*.toml"))):
        if path.stem in seen:
            continue
        try:
            spec = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if isinstance(spec.get("data"), dict):
            found.append((path.stem, str(spec.get("description", ""))))
            seen.add(path.stem)
    return sorted(found)


def load_task(name_or_path: str | Path, data_fraction: float = 1.0) -> Task:
    """Load a bundled task by name or a task file by path, with its data, validated.
    `data_fraction` < 1 keeps that share of the training split only (stratified,
    deterministic under the task seed), for learning-curve and transfer experiments."""
    if isinstance(data_fraction, bool) or not 0.0 < float(data_fraction) <= 1.0:
        raise TaskError(f"data_fraction must be in (0, 1], got {data_fraction!r}")
    path = _find_task_file(name_or_path)
    return task_from_spec(read_toml(path, TaskError, "task"), path, data_fraction)


def task_from_spec(spec: dict, path: Path, data_fraction: float = 1.0, raw: Any = None) -> Task:
    """A task from the parsed TOML of `path` (which names it in errors, and whose folder
    data paths are relative to); `raw`, a `SourceData`, stands in for the `[data]` table."""
    header = _parse_header(spec, path, in_memory=raw is not None)
    splits, classes, raw = _load_splits(header, spec["data"], raw)
    train = splits["train"]
    if data_fraction < 1.0:
        labels = None if header["loss"] == "mse" else train.y
        keep = stratified_partition(
            labels, len(train), (data_fraction, 1.0 - data_fraction), header["seed"]
        )[0]
        train = train.subset(keep)
    return Task(
        name=header["name"],
        description=header["description"],
        input_type=header["input_type"],
        output_type=header["output_type"],
        loss=header["loss"],
        metric=header["metric"],
        train=train,
        val=splits["val"],
        test=splits["test"],
        classes=classes,
        seed=header["seed"],
        class_weights=_class_weights(header, train),
        options={**_relative_to(header["options"], path.parent),
                 "data_fraction": float(data_fraction),
                 "data_layout": _data_layout(spec["data"], path.parent)},
        normalization=getattr(raw, "normalization", None),
        input_names=getattr(raw, "input_names", None),
    )


def _data_layout(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """How the task's files are read (`DATA_LAYOUT` keys, the CSV target column resolved),
    so that a saved model reads new data the same way."""
    from neurosym.tasks.tables import csv_layout

    layout = {k: v for k, v in data.items() if k in DATA_LAYOUT}
    if data.get("source") == "files":
        layout.update(csv_layout(data.get("train"), folder, data))
    return layout


def _relative_to(options: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A production set named by a relative `.toml` path in `[search] productions` is
    read next to the task file, wherever the command runs."""
    search = options.get("search")
    name = search.get("productions") if isinstance(search, dict) else None
    if not isinstance(name, str) or not name.endswith(".toml") or Path(name).is_absolute():
        return options
    return {**options, "search": {**search, "productions": str(folder / name)}}


def _find_task_file(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    path = Path(text)
    if path.suffix == ".toml" or "/" in text or "\\" in text or path.is_file():
        if not path.is_file():
            raise TaskError(f"task file {text} not found")
        return path
    for folder in task_folders():
        if (folder / f"{text}.toml").is_file():
            return folder / f"{text}.toml"
    known = ", ".join(name for name, _ in list_tasks()) or "(none)"
    raise TaskError(f"unknown task {text!r}; known tasks: {known}")


def _table(spec: dict, key: str, path: Path, required: bool = False) -> dict:
    value = spec.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        what = "missing" if value is None else "not a table"
        raise TaskError(f"{path}: [{key}] is {what}")
    return value


def _parse_header(spec: dict, path: Path, in_memory: bool = False) -> dict[str, Any]:
    """Everything but the data: names, types, loss/metric, seed, options. Every setting is
    checked against `settings` (kind, range, known key) where it is read."""
    from neurosym.settings import DATA, HEAD, SEARCH, TRAIN, Key, check_table

    check_table(spec, {**HEAD, **{t: Key(dict) for t in _TABLES}}, str(path))
    data = _table(spec, "data", path, required=True)
    types = _table(spec, "types", path, required=True)
    check_table(types, {"input": Key(str), "output": Key(str)}, f"{path} [types]")
    train = dict(_table(spec, "train", path))
    where = f"{path} [train]"
    check_table(train, TRAIN, where)
    check_table(_table(spec, "search", path), SEARCH, f"{path} [search]")
    from neurosym.tasks.sources import SOURCES  # sources build Splits: imported late

    if not in_memory:  # data handed over in memory names no source to read
        check_table({"source": data.get("source")},
                    {"source": Key(str, choices=tuple(sorted(SOURCES)))}, f"{path} [data]")
    if data["source"] in DATA:
        check_table(data, DATA[data["source"]], f"{path} [data]")
    input_type = _parse_type(types, "input", path)
    output_type = _parse_type(types, "output", path)
    loss = train["loss"] if "loss" in train else _infer_loss(output_type, path)
    metric = train.get("metric", DEFAULT_METRIC[loss])
    if metric not in METRICS_FOR_LOSS[loss]:
        raise TaskError(f"{where}: metric {metric!r} does not fit loss {loss!r} (one of "
                        + ", ".join(METRICS_FOR_LOSS[loss]) + ")")
    _check_output(loss, output_type, path)
    special = {"loss", "metric", "seed", "val_fraction", "class_weights"}
    options = {k: v for k, v in train.items() if k not in special}
    options.update({k: v for k, v in spec.items() if k in _OPTION_TABLES})
    return {
        "path": path,
        "name": spec.get("name", path.stem),
        "description": spec.get("description", ""),
        "input_type": input_type,
        "output_type": output_type,
        "loss": loss,
        "metric": metric,
        "seed": train.get("seed", 0),
        "val_fraction": float(train.get("val_fraction", 0.2)),
        "class_weights": train.get("class_weights"),
        "options": options,
    }


def _parse_type(types: dict, key: str, path: Path) -> Type:
    from neurosym.lang.parser import parse_type  # the parser lives beside; imported late

    text = types.get(key)
    if text is None:
        raise TaskError(f"{path}: [types] has no {key!r} type")
    try:
        t = parse_type(text)
    except NeurosymError as err:
        raise TaskError(f"{path}: bad {key} type {text!r}: {err.message}") from err
    if free_vars(t) or _has_arrow(t):
        raise TaskError(f"{path}: {key} type {t} must be concrete data (no variables/functions)")
    return t


def _has_arrow(t: Type) -> bool:
    return isinstance(t, Arrow) or (hasattr(t, "elem") and _has_arrow(t.elem))


def _infer_loss(output_type: Type, path: Path) -> str:
    if isinstance(output_type, Vec):
        return "cross_entropy"
    if output_type == BOOL:
        return "bce"
    if output_type in (FLOAT, ListT(FLOAT)):
        return "mse"
    raise TaskError(f"{path}: cannot infer a loss for output type {output_type}; set [train] loss")


def _check_output(loss: str, output_type: Type, path: Path) -> None:
    ok = {
        "cross_entropy": isinstance(output_type, Vec),
        "bce": output_type == BOOL,
        "mse": output_type in (FLOAT, ListT(FLOAT)),  # a list: a target per element
    }[loss]
    if not ok:
        need = {"cross_entropy": "Vec[C]", "bce": "Bool", "mse": "Float or List[Float]"}[loss]
        raise TaskError(f"{path}: loss {loss!r} needs output type {need}, not {output_type}")


def _load_splits(header: dict, data: dict, raw: Any = None):
    """The validated splits and class names of the task's data, and what the source gave
    (for its input normalization and names)."""
    name = f"{header['path']} (task {header['name']!r})"
    try:
        raw = raw or _read_source(header, data)
    except NeurosymError as err:
        raise type(err)(f"{name}: {err.format().removeprefix('error: ')}") from err
    classes = tuple(str(c) for c in raw.classes) if raw.classes is not None else None
    n_classes = _n_classes(header, classes)
    splits = {
        split: _validated(name, split, s, header, n_classes)
        for split, s in (("train", raw.train), ("val", raw.val), ("test", raw.test))
    }
    return splits, classes, raw


def _read_source(header: dict, data: dict):
    from neurosym.tasks.sources import SOURCES, SourceContext  # sources build Splits

    source = data["source"]  # checked with the header
    context = SourceContext(header["seed"], header["val_fraction"], header["path"].parent,
                            header["input_type"], header["loss"] == "mse")
    return SOURCES[source](data, context)


def _n_classes(header: dict, classes: tuple[str, ...] | None) -> int | None:
    loss, out = header["loss"], header["output_type"]
    n = {"cross_entropy": out.n if isinstance(out, Vec) else None, "bce": 2}.get(loss)
    if classes is not None and n is not None and len(classes) != n:
        raise DataError(
            f"{header['path']} (task {header['name']!r}): the data has {len(classes)} "
            f"classes but the output "
            f"type {out} needs {n}"
        )
    return n


def _validated(name: str, split: str, s: Split, header: dict, n_classes: int | None) -> Split:
    """Layout, finiteness and label checks for one split; returns it with float32 inputs."""
    where = f"{name}, split {split!r}"
    if len(s) == 0:
        raise DataError(f"{where}: the split is empty")
    if not isinstance(s.x, torch.Tensor | Seq):
        raise DataError(f"{where}: inputs must be a tensor or a Seq, got {type(s.x).__name__}")
    _check_finite(where, s)
    x = _as_float32(s.x)
    try:
        check_value(x, header["input_type"], rows=len(s))
    except ValueError as err:
        raise DataError(f"{where}: inputs do not fit {header['input_type']}: {err}") from err
    if isinstance(header["output_type"], ListT):
        return Split(x, _checked_element_targets(where, x, s.y))
    return Split(x, _checked_labels(where, s.y, header["loss"], n_classes))


def _check_finite(where: str, s: Split) -> None:
    problems = []
    xs = [s.x.data, s.x.weights] if isinstance(s.x, Seq) else [s.x]
    for what, tensors in (("inputs", xs), ("labels", [s.y])):
        nan = sum(int(torch.isnan(t).sum()) for t in tensors if t.is_floating_point())
        inf = sum(int(torch.isinf(t).sum()) for t in tensors if t.is_floating_point())
        if nan or inf:
            problems.append(f"{nan} NaN and {inf} infinite values in the {what}")
    if problems:
        raise DataError(f"{where}: {'; '.join(problems)}; refusing to train on non-finite data")


def _as_float32(x: Value) -> Value:
    if isinstance(x, Seq):
        return Seq(x.data.float(), x.weights.float())
    return x.float() if isinstance(x, torch.Tensor) and x.is_floating_point() else x


def _checked_labels(where: str, y: torch.Tensor, loss: str, n_classes: int | None) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.dim() != 1:
        raise DataError(f"{where}: targets must be a 1-D tensor")
    if loss == "mse":
        return y.float()
    if loss == "cross_entropy":
        if y.is_floating_point() or y.dtype == torch.bool:
            raise DataError(f"{where}: cross-entropy labels must be integer class indices")
        y = y.long()
        bad = int(((y < 0) | (y >= n_classes)).sum())
        if bad:
            raise DataError(f"{where}: {bad} labels outside 0..{n_classes - 1}")
        return y
    y = y.float()
    bad = int(((y != 0) & (y != 1)).sum())
    if bad:
        raise DataError(f"{where}: {bad} bce targets are not 0 or 1")
    return y


def _checked_element_targets(where: str, x: Value, y: torch.Tensor) -> torch.Tensor:
    """A target per element of a list output ([lists, length] numbers): the input lists
    must all be that long (a program's list output is as long as its input list)."""
    if not isinstance(x, Seq) or not isinstance(y, torch.Tensor) or y.dim() != 2:
        raise DataError(f"{where}: a List[Float] output needs list inputs and targets of "
                        "shape [lists, length]")
    if y.shape[1] != x.length:
        raise DataError(f"{where}: {y.shape[1]} targets per list, but the input lists are "
                        f"{x.length} long: a List[Float] output has a target per element")
    if not bool((x.weights == 1).all()):
        raise DataError(f"{where}: some input lists are shorter than {x.length}: a "
                        "List[Float] output needs every list of its targets' length")
    return y.float()


def _class_weights(header: dict, train: Split) -> torch.Tensor | None:
    """`class_weights = "balanced"` (N / (C * n_c), from the training split as loaded) or a
    list of C floats. For bce the tensor is [w_negative, w_positive]."""
    spec, loss = header["class_weights"], header["loss"]
    if spec is None:
        return None
    where = f"{header['path']} [train] class_weights"
    if loss == "mse":
        raise TaskError(f"{where}: class weights need a classification loss")
    c = int(header["output_type"].n) if loss == "cross_entropy" else 2
    if spec == "balanced":
        counts = torch.bincount(train.y.long(), minlength=c).float()
        return len(train) / (c * counts.clamp(min=1.0))
    if isinstance(spec, list) and all(isinstance(w, int | float) for w in spec) and spec:
        if len(spec) != c or not all(0 <= w < math.inf for w in spec):
            raise TaskError(f"{where}: need {c} non-negative weights, got {spec}")
        return torch.tensor([float(w) for w in spec])
    raise TaskError(f'{where}: must be "balanced" or a list of {c} numbers, got {spec!r}')
