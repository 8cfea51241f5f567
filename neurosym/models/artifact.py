"""A trained program kept as a model: save it, load it, apply it to new data.

A model directory holds three files, written together (a crash mid-save leaves the old
directory, or none, never half of one):
- `program.ns`: the program in DSL syntax, with what it learned written in
  (`interval[0.31:0.47]`, `above[0.42, 6.1]`); `neurosym check` reads it;
- `weights.safetensors`: the weights of its learned parts (affine maps, shapelets, ...);
- `model.json`: its type, entry, task, class names, input normalization, scores, search
  settings, seed, versions, the weights' SHA-256, and the library functions the program
  uses (carried in `program.ns` as definitions `lib_NAME_vN`, so that the model runs
  without the library; each named by its entry and its weights' SHA-256).
Loading parses and type-checks the program and reads tensors: it never executes stored code.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurosym.interp.compiler import CompiledTerm, as_task_program, compile_program
from neurosym.lang import ast
from neurosym.lang.errors import NeurosymError
from neurosym.lang.parser import parse_type
from neurosym.lang.printer import show_def
from neurosym.lang.types import Arrow, ListT, Type

FORMAT = "neurosym-model"
FORMAT_VERSION = 1
PROGRAM, WEIGHTS, RECORD = "program.ns", "weights.safetensors", "model.json"
_REQUIRED = {"format": str, "format_version": int, "entry": str, "input_type": str,
             "output_type": str, "loss": str, "classes": (list, type(None)),
             "normalization": (dict, type(None)), "weights_sha256": str}

_CARRIED = ("definition", "entry", "type", "sha256")  # each library function a model carries


class ModelError(NeurosymError):
    """A model directory that cannot be saved or loaded."""


@dataclass(frozen=True, eq=False)
class Model:
    """A trained program and what applying it to new data needs (`record`)."""

    source: str
    module: CompiledTerm
    record: dict[str, Any]

    @property
    def input_type(self) -> Type:
        return parse_type(self.record["input_type"])

    @property
    def output_type(self) -> Type:
        return parse_type(self.record["output_type"])

    @property
    def classes(self) -> tuple[str, ...] | None:
        classes = self.record["classes"]
        return tuple(classes) if classes is not None else None

    @property
    def program(self) -> str:
        return self.record.get("program", "")

    def outputs(self, data: Any) -> torch.Tensor:
        """The program's raw outputs (logits for classes) for a data file (any format a
        task reads) or arrays (one row per example, or a list of series)."""
        from neurosym.train import predict

        return predict(self.module, self.inputs(data))

    def read(self, data: Any):
        """New data as `Examples`: a data file (any format a task reads, its targets, if
        any, ignored), or arrays (one row per example, or a list of series)."""
        from dataclasses import replace

        from neurosym.tasks.arrays import examples
        from neurosym.tasks.examples import Examples
        from neurosym.tasks.files import read_examples

        if isinstance(data, Examples):
            return data
        layout = self.record.get("data", {})
        if isinstance(data, str | Path):
            found = read_examples(str(data), Path(), layout,
                                  series=isinstance(self.input_type, ListT), targets=False)
        else:
            found = examples(data, np.zeros(len(data)), "the data")
        # new data (its targets ignored): a missing value is filled where the model learned
        # to, else refused
        return replace(found, gaps=layout.get("missing") == "mean")

    def inputs(self, data: Any):
        """New data as the program's input value: read, checked against the input type
        (both shapes named when it does not fit) and normalized as the training data was."""
        from neurosym.tasks.assemble import batched_inputs

        return batched_inputs(self.read(data), self.input_type, self.normalization)

    @property
    def normalization(self):
        from neurosym.tasks.assemble import Normalization

        norm = self.record["normalization"]
        if not norm:
            return None
        target = norm.get("target")
        return Normalization(tuple(norm["mean"]), tuple(norm["std"]),
                             tuple(target) if target else None)

    def predict(self, data: Any) -> np.ndarray:
        """Class names (classification) or values (regression)."""
        out = self.outputs(data)
        loss = self.record["loss"]
        if loss == "mse":
            norm = self.normalization
            out = norm.restore(out) if norm is not None else out
            return out.double().numpy().reshape(-1)
        index = (out > 0).long() if loss == "bce" else out.argmax(1)
        names = self.classes or tuple(str(i) for i in range(int(index.max()) + 1))
        return np.asarray([names[i] for i in index.tolist()])

    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities, one column per class (in `classes` order)."""
        out = self.outputs(data)
        if self.record["loss"] == "mse":
            raise ModelError("a regression model has no class probabilities")
        if self.record["loss"] == "bce":
            p = torch.sigmoid(out)
            return torch.stack([1 - p, p], 1).double().numpy()
        return torch.softmax(out, 1).double().numpy()

    def save(self, path: str | Path) -> Path:
        return _write(Path(path), self.source, self.module, self.record)

    def __getstate__(self) -> dict:
        """Pickled as its source, record and weights: a compiled program is keyed by its
        syntax tree's nodes, which do not survive a pickle, so it is compiled again."""
        weights = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        return {"source": self.source, "record": self.record, "weights": weights}

    def __setstate__(self, state: dict) -> None:
        module = _compile(state["source"], state["record"]["entry"], "a pickled model")
        module.load_state_dict(state["weights"])
        object.__setattr__(self, "source", state["source"])
        object.__setattr__(self, "module", module.eval())
        object.__setattr__(self, "record", state["record"])


def from_trained(module: CompiledTerm, task, evaluation=None, entry: str = "main",
                 extra: dict[str, Any] | None = None) -> Model:
    """The model of a program trained on `task`: its source printed with what it learned
    written in, compiled again from that text, and checked to compute what the trained
    one computes on the test split (the printed form is what is saved)."""
    source, carried = program_source(module, entry, Arrow(task.input_type, task.output_type))
    model = _compile(source, entry, "the printed program")
    state = module.state_dict()
    missing = [k for k in model.state_dict() if k not in state]
    if missing:
        raise ModelError(f"the printed program has parts the trained one lacks: {missing[:3]}")
    model.load_state_dict({k: state[k] for k in model.state_dict()})
    _check_same(module, model, task.test.x)
    norm = task.normalization
    record = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "entry": entry,
        "program": show_def(ast.Def(entry, model.type, model.term)).split("=", 1)[1].strip(),
        "input_type": str(task.input_type), "output_type": str(task.output_type),
        "loss": task.loss, "metric": task.metric,
        "classes": list(task.classes) if task.classes is not None else None,
        "normalization": None if norm is None else {
            "mean": list(norm.mean), "std": list(norm.std),
            "target": None if norm.target is None else list(norm.target)},
        "task": task.name, "data": _data_layout(task),
        "input_names": None if task.input_names is None else list(task.input_names),
        "scores": None if evaluation is None else evaluation.as_dict(),
        "series_length": _longest(task.train.x),
        "library": carried, "seed": task.seed, "versions": _versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    return Model(source, model.eval(), record)


def program_source(module: CompiledTerm, entry: str, t: Arrow) -> tuple[str, list[dict]]:
    """Every definition the program uses, then the entry, each with its learned values.
    A library function it calls is carried as a definition, `lib_NAME_vN`, of its learned
    term, so that the model runs where the library is not; the list says which entry each
    came from, with the SHA-256 of its weights as the library computes it (equal to the
    entry's unless the function was fine-tuned)."""
    from neurosym.library.files import encode_weights

    defs: dict[str, str] = {}
    carried: list[dict] = []

    def define(name: str, d: CompiledTerm) -> None:
        defs[name] = show_def(ast.Def(name, d.type, d.learned_term(library=carry)))

    def carry(ref: ast.LibRef, lib: CompiledTerm) -> ast.Term:
        origin = lib.origin or f"{ref.name}@{ref.version}"
        sha = encode_weights(lib.state_dict())[1]
        same = [c for c in carried if c["entry"] == origin]
        for c in same:
            if c["sha256"] == sha:  # used again with the same weights: one definition
                return ast.Var(c["definition"])
        name = "lib_" + origin.replace("@", "_v") + (f"_{len(same) + 1}" if same else "")
        if name in module.defs:
            raise ModelError(f"the program defines {name}, the name its library function "
                             f"lib.{origin} is saved under; rename the definition")
        collect(lib)
        define(name, lib)
        carried.append({"definition": name, "entry": origin, "type": str(lib.type),
                        "sha256": sha})
        return ast.Var(name)

    def collect(m: CompiledTerm) -> None:
        for name, d in m.defs.items():
            if name not in defs:
                collect(d)
                define(name, d)

    collect(module)
    defs[entry] = show_def(ast.Def(entry, t, module.learned_term(library=carry)))
    return "\n\n".join(defs.values()) + "\n", carried


def _compile(source: str, entry: str, where: str) -> CompiledTerm:
    from neurosym.lang.load import check_source

    checked = check_source(source, where)
    try:
        defs = compile_program(checked)
    except NeurosymError as err:
        raise ModelError(f"{where}: {err.message}") from None
    if entry not in defs:
        raise ModelError(f"{where}: no definition named {entry!r} (the model's entry); it "
                         f"has {', '.join(defs) or 'none'}")
    return as_task_program(defs[entry])


def _check_same(trained: CompiledTerm, printed: CompiledTerm, x, rows: int = 256) -> None:
    """The printed program (a model lives on the host) computes what the trained one
    computes (on the data's device)."""
    from neurosym.interp.values import batch_size, index, to_device
    from neurosym.train import predict

    sample = index(x, torch.arange(min(rows, batch_size(x)), device="cpu"))
    gap = (predict(trained, sample).cpu() - predict(printed, to_device(sample, "cpu"))
           ).abs().max().item()
    if not gap <= 1e-4:
        raise ModelError(f"the printed program computes something else than the trained one "
                         f"(max difference {gap:.3g}); this is a bug, please report it")


def _longest(x) -> int | None:
    """The longest series of the training data (exports trace with series this long)."""
    from neurosym.interp.values import Seq

    return int((x.weights > 0).sum(1).max()) if isinstance(x, Seq) else None


def _data_layout(task) -> dict[str, Any]:
    """How the task's files were read (CSV layout and target column, array names), so
    that new data in the same format is read the same way."""
    return dict(task.options.get("data_layout", {}))


def _versions() -> dict[str, str]:
    try:
        mine = version("neurosym-synth")
    except PackageNotFoundError:
        mine = "unknown"
    return {"neurosym": mine, "torch": torch.__version__, "python": platform.python_version()}


# ---- files ---------------------------------------------------------------------------------

def _write(path: Path, source: str, module: CompiledTerm, record: dict) -> Path:
    from safetensors.torch import save_file

    if path.exists() and not (path / RECORD).is_file() and any(path.iterdir()):
        raise ModelError(f"{path} exists and is not a neurosym model; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        weights = {k: v.detach().contiguous().clone() for k, v in module.state_dict().items()}
        save_file(weights, str(staging / WEIGHTS))
        digest = hashlib.sha256((staging / WEIGHTS).read_bytes()).hexdigest()
        (staging / PROGRAM).write_text(source, encoding="utf-8")
        full = {**record, "weights_sha256": digest}
        (staging / RECORD).write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(staging, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        raise ModelError(f"cannot write the model {path}: {err}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def load(path: str | Path) -> Model:
    """Load a model directory, checking everything; a damaged one is reported by name with
    what is wrong, and nothing of it is used."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{path}: no such model directory")
    record = _read_record(path / RECORD)
    source = _read_text(path / PROGRAM)
    weights_file = path / WEIGHTS
    if not weights_file.is_file():
        raise ModelError(f"{weights_file}: the weights are missing")
    digest = hashlib.sha256(weights_file.read_bytes()).hexdigest()
    if digest != record["weights_sha256"]:
        raise ModelError(f"{weights_file}: the weights do not match the model's record "
                         "(truncated or replaced)")
    try:
        weights = load_file(str(weights_file))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelError(f"{weights_file}: unreadable weights ({err})") from None
    module = _compile(source, record["entry"], str(path / PROGRAM))
    if str(module.type) != f"{record['input_type']} -> {record['output_type']}":
        raise ModelError(f"{path / PROGRAM}: the program has type {module.type}, but the model "
                         f"record says {record['input_type']} -> {record['output_type']}")
    try:
        module.load_state_dict(weights)
    except RuntimeError as err:
        first = str(err).splitlines()[0:2]
        raise ModelError(f"{weights_file}: the weights do not fit the program: "
                         + " ".join(first)) from None
    return Model(source, module.eval(), record)


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ModelError(f"{file}: cannot read it ({err})") from None


def _read_record(file: Path) -> dict:
    try:
        record = json.loads(_read_text(file))
    except (ValueError, RecursionError) as err:  # JSONDecodeError, or a 5,000-digit integer
        raise ModelError(f"{file}: not valid JSON ({str(err)[:120]})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ModelError(f"{file}: not a neurosym model record")
    for key, kind in _REQUIRED.items():
        if key not in record:
            raise ModelError(f"{file}: the record has no {key!r}")
        if not isinstance(record[key], kind) or isinstance(record[key], bool):
            raise ModelError(f"{file}: {key!r} has the wrong type ({record[key]!r})")
    if record["format_version"] > FORMAT_VERSION:
        raise ModelError(f"{file}: written by a newer neurosym (model format "
                         f"{record['format_version']}; this version reads up to "
                         f"{FORMAT_VERSION}): upgrade neurosym to load it")
    _check_normalization(file, record["normalization"])
    classes = record["classes"]
    if classes is not None and not all(isinstance(c, str) for c in classes):
        raise ModelError(f"{file}: 'classes' must be a list of names")
    names = record.get("input_names")
    if names is not None and not (isinstance(names, list)
                                  and all(isinstance(n, str) for n in names)):
        raise ModelError(f"{file}: 'input_names' must be a list of names or null")
    if record["loss"] not in ("cross_entropy", "bce", "mse"):
        raise ModelError(f"{file}: unknown loss {record['loss']!r}")
    carried = record.get("library", [])
    if not (isinstance(carried, list) and all(
            isinstance(c, dict) and all(isinstance(c.get(k), str) for k in _CARRIED)
            for c in carried)):
        raise ModelError(f"{file}: 'library' must list the library functions the program "
                         f"carries, each with {', '.join(map(repr, _CARRIED))}")
    if not isinstance(record.get("data", {}), dict):
        raise ModelError(f"{file}: 'data' must be a table of how data files are read")
    return record


def _check_normalization(file: Path, norm: dict | None) -> None:
    if norm is None:
        return
    mean, std, target = norm.get("mean"), norm.get("std"), norm.get("target")
    if target is None:
        target = [0.0, 1.0]
    ok = (isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std)
          and isinstance(target, list) and len(target) == 2
          and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                  for v in mean + std + target) and all(v > 0 for v in std + target[1:]))
    if not ok:
        raise ModelError(f"{file}: 'normalization' must have 'mean' and 'std' lists of "
                         "finite numbers of one length (std positive), and 'target' a "
                         "[mean, std] pair or null")
