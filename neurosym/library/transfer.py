"""Measuring transfer: the same task learned with and without the library, at several
training-data sizes. What the library is worth shows as a lower test error at small
sizes; at full size both arms should meet.

Two methods. `search` (the default) runs one synthesis per arm with the same budget, so
the comparison includes whether the search finds the reuse. `fixed` trains two given
programs (e.g. `\\xs -> count nn xs` against `\\xs -> count lib.is_three xs`), which
isolates the effect of the learned function. In both, a smaller training split is given
proportionally more final epochs (see `lifelong.final_epochs`), so every size gets about the
same number of gradient steps and a small size is not merely under-trained (the
search sizes its per-node training in optimizer steps by itself).
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from neurosym import metrics
from neurosym.evaluate import Evaluation, train_and_evaluate, train_config
from neurosym.lang.errors import NeurosymError, TaskError
from neurosym.library.lifelong import (
    SearchLibrary,
    final_epochs,
    library_refs,
    search_productions,
)
from neurosym.library.store import Library
from neurosym.tasks.spec import Task, load_task


@dataclass(frozen=True, slots=True)
class Arm:
    """One training of the task: the program, its scores, the library functions it uses."""

    program: str
    evaluation: Evaluation
    reused: tuple[str, ...]
    seconds: float


@dataclass(frozen=True, slots=True)
class TransferRow:
    fraction: float
    train_size: int
    without: Arm
    with_library: Arm

    def error_ratio(self, metric: str) -> float:
        """Test error with the library over test error without (below 1: it helps)."""
        a, b = (error_of(metric, arm.evaluation.test) for arm in (self.with_library,
                                                                   self.without))
        return a / b if b > 0 else (1.0 if a == 0 else math.inf)


@dataclass(frozen=True, slots=True)
class TransferResult:
    task: str
    metric: str
    method: str  # "search" or "fixed"
    library: str
    baseline: float  # majority (or mean) baseline on the test split, at full data
    rows: tuple[TransferRow, ...]

    def as_dict(self) -> dict:
        return {"task": self.task, "metric": self.metric, "method": self.method,
                "library": self.library, "baseline": self.baseline,
                "rows": [{"fraction": r.fraction, "train_size": r.train_size,
                          "without": _arm_dict(r.without), "with": _arm_dict(r.with_library),
                          "error_ratio": r.error_ratio(self.metric)} for r in self.rows]}


def _arm_dict(arm: Arm) -> dict:
    return {"program": arm.program, "reused": list(arm.reused), "seconds": arm.seconds,
            **arm.evaluation.as_dict()}


def error_of(metric: str, value: float) -> float:
    """The error a metric stands for: MSE itself, else 1 - accuracy (or F1)."""
    return 1.0 - value if metrics.higher_is_better(metric) else value


def parse_fractions(text: str) -> tuple[float, ...]:
    """`0.02,0.1,1` -> (0.02, 0.1, 1.0), each in (0, 1]."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise TaskError(f"fractions must be numbers separated by commas, got {text!r}") from None
    if not values or not all(0.0 < v <= 1.0 for v in values):
        raise TaskError(f"fractions must be in (0, 1], got {text!r}")
    return tuple(sorted(set(values)))


def measure_transfer(task: str, library: Library, fractions: Sequence[float], *,
                     time_limit: float = 60.0, programs: tuple[str, str] | None = None,
                     seed: int = 0, max_nodes: int | None = None, epochs: int | None = None,
                     on_arm: Callable[[float, str], None] | None = None) -> TransferResult:
    """Train `task` without and with `library` (a `SearchLibrary` to offer only some of
    its functions) at each training-data fraction.
    `programs` = (without, with) switches to the fixed method. `epochs` is the full-data
    training budget (default: the task's), scaled up for smaller fractions."""
    lib = library if isinstance(library, SearchLibrary) else SearchLibrary(library.path,
                                                                           library.finetune)
    if not lib.names():
        what = f"has none of {', '.join(lib.only)}" if lib.only else "is empty"
        raise TaskError(f"the library at {lib.path} {what}: nothing to transfer (fill it "
                        "with `neurosym lifelong` first)")
    rows = []
    for fraction in fractions:
        data = load_task(task, data_fraction=fraction)
        arms = []
        for which, arm_lib in (("without", None), ("with", lib)):
            if on_arm is not None:
                on_arm(fraction, which)
            program = programs[which == "with"] if programs else None
            arms.append(_arm(data, arm_lib, program, time_limit, seed, max_nodes, epochs))
        rows.append(TransferRow(fraction, len(data.train), arms[0], arms[1]))
    full = load_task(task)
    return TransferResult(full.name, full.metric, "fixed" if programs else "search",
                          str(lib.path), metrics.majority_baseline(full.train.y, full.test.y,
                                                                   full.metric), tuple(rows))


def _arm(task: Task, library: SearchLibrary | None, program: str | None, time_limit: float,
         seed: int, max_nodes: int | None, epochs: int | None) -> Arm:
    start = time.perf_counter()
    final = final_epochs(task, epochs)
    if program is not None:
        return _fixed(task, library, program, final, seed, start)
    from neurosym.search import synthesize

    result = synthesize(task, time_limit=time_limit, max_nodes=max_nodes, seed=seed,
                        final_epochs=final, top_k=3,
                        productions=search_productions(task, library), library=library)
    best = result.best
    if best is None:
        raise TaskError(f"the search found no program for {task.name}")
    return Arm(best.text, best.evaluation, _refs(best.text, library),
               time.perf_counter() - start)


def _fixed(task: Task, library: SearchLibrary | None, program: str, epochs: int, seed: int,
           start: float) -> Arm:
    from neurosym.interp.compiler import as_task_program, compile_term
    from neurosym.lang.checker import check_term
    from neurosym.lang.parser import parse_term
    from neurosym.lang.types import Arrow

    term = parse_term(program, "<program>")
    checked = check_term(term, Arrow(task.input_type, task.output_type), library=library)
    torch.manual_seed(seed)
    model = as_task_program(compile_term(term, checked, library))
    evaluation = train_and_evaluate(model, task, train_config(task, epochs=epochs, seed=seed))
    return Arm(program, evaluation, _refs(program, library), time.perf_counter() - start)


def _refs(text: str, library: SearchLibrary | None) -> tuple[str, ...]:
    if library is None:
        return ()
    return tuple(library.get(n, v).ref for n, v in library_refs(text))


# ---- the plot ---------------------------------------------------------------------------------

def has_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def require_matplotlib() -> None:
    """Fail before a long measurement, not after it, when the plot cannot be drawn."""
    if not has_matplotlib():
        raise NeurosymError("--plot needs matplotlib, which is not installed "
                            "(pip install matplotlib); leave --plot out to print the table only")


def plot_transfer(result: TransferResult, path: str | Path) -> Path:
    """Test error against training-set size, with and without the library, as a PNG."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    sizes = [r.train_size for r in result.rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, pick in (("without library", "without"), ("with library", "with_library")):
        errors = [error_of(result.metric, getattr(r, pick).evaluation.test)
                  for r in result.rows]
        ax.plot(sizes, errors, marker="o", label=label)
    ax.axhline(error_of(result.metric, result.baseline), color="grey", linestyle="--",
               label="majority/mean baseline")
    ax.set_xscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel("test error" + (" (MSE)" if result.metric == "mse" else
                                  f" (1 - {result.metric})"))
    ax.set_title(f"{result.task}: transfer from the library ({result.method})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
