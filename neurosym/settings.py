"""The schema of every setting a user writes: the `[train]`, `[search]` and `[data]` tables
of a task file, the keys of a production set, and the search options given in Python or
on the command line. Each key
has a kind and a range; a value that does not fit is refused where it is read, naming the
file, the table and the key, and an unknown key gets a "did you mean". One table of facts
instead of checks scattered where the values are used."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from neurosym.lang.errors import TaskError

SEED_MAX = 2**63 - 1  # seeds must fit torch's and numpy's 64-bit generators


@dataclass(frozen=True, slots=True)
class Key:
    """One setting: `kind` is int, float (ints accepted), bool, str, list, or "any";
    `low`/`high` bound numbers (`high`: also the length of a text), `choices` strings,
    `items` the kind of a list's elements."""

    kind: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    open_low: bool = False  # low itself is excluded
    items: type | None = None

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value`, or None."""
        if self.kind == "any":
            return None
        if self.kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok:
                return f"must be a number, got {_short(value)}"
            if isinstance(value, float) and not math.isfinite(value):
                return f"must be a finite number, got {_short(value)}"
        elif self.kind is int:
            if not isinstance(value, int) or isinstance(value, bool):
                return f"must be a whole number, got {_short(value)}"
        elif not isinstance(value, self.kind):
            kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
            names = " or ".join(_KIND_NAMES.get(k.__name__, k.__name__) for k in kinds)
            return f"must be {names}, got {_short(value)}"
        if self.items and not all(isinstance(v, self.items) for v in value):
            kind = _KIND_NAMES.get(self.items.__name__, self.items.__name__)
            return f"must be a list of {kind}, got {_short(value)}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}, got {_short(value)}" + \
                did_you_mean(str(value), self.choices)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self._range(value)
        if isinstance(value, str) and self.high is not None and len(value) > self.high:
            return f"is longer than {self.high:g} characters ({len(value):,})"
        return None

    def _range(self, value: float) -> str | None:
        low, high = self.low, self.high
        too_low = low is not None and (value <= low if self.open_low else value < low)
        if too_low or (high is not None and value > high):
            lo = "" if low is None else (f"> {low:g}" if self.open_low else f">= {low:g}")
            hi = "" if high is None else f"<= {high:g}"
            return f"must be {' and '.join(p for p in (lo, hi) if p)}, got {value!r}"
        return None


MISSING_POLICIES = ("error", "drop", "mean")  # `[data] missing`: see tasks.tables
_KIND_NAMES = {"str": "text", "bool": "true or false", "list": "a list", "dict": "a table"}
HEAD = {"name": Key(str), "description": Key(str)}
COUNT = Key(int, 1, 10**9)
SEED = Key(int, 0, SEED_MAX)

TRAIN = {
    "loss": Key(str, choices=("cross_entropy", "bce", "mse")),
    "metric": Key(str, choices=("accuracy", "macro_f1", "mse", "exact_order")),
    "seed": SEED,
    "val_fraction": Key(float, 0, 1, open_low=True),
    "class_weights": Key((str, list)),  # "balanced" or a list, checked against the classes
    "epochs": COUNT,
    "lr": Key(float, 0, 10, open_low=True),
    "batch_size": COUNT,
    "patience": COUNT,
    "weight_decay": Key(float, 0, 10),
}

def _setting(default: Any, key: Key, help: str = "", flag: str | None = None,
             shown: str | None = None) -> Any:
    """One search setting: its default, its kind and range, and, where the command line
    takes it, its flag, help and default as said there (`shown`, for a default that
    depends on the task); `cli.search_options` makes the option from these."""
    return field(default=default, metadata={"key": key, "help": help, "flag": flag,
                                            "shown": str(default) if shown is None else shown})


@dataclass(frozen=True, slots=True)
class SearchConfig:
    """Every knob of a search, declared once: resolved from the caller's value (Python
    or command line), else the task's `[search]` table, else the default here
    (`search.synthesis.resolve_config`), then passed down whole."""

    algorithm: str = _setting("astar", Key(str, choices=("astar", "iddfs", "enumerate")),
                              "Search algorithm", "--search")
    time_limit: float = _setting(300.0, Key(float, 0, 10**8, open_low=True),
                                 "Seconds for the whole run, final retraining included",
                                 "--time-limit")
    max_nodes: int | None = _setting(None, COUNT, "Most nodes trained (unlike a time limit: the "
                                     "same program on an idle or a busy machine)",
                                     "--max-nodes", "none")
    max_depth: int = _setting(6, Key(int, 1, 1000), "Deepest derivation explored",
                              "--max-depth")
    max_size: int | None = _setting(None, COUNT)
    workers: int = _setting(1, Key(int, 1, 4096),
                            "Processes evaluating sibling nodes in parallel", "--workers")
    top_k: int = _setting(3, Key(int, 1, 1000), "Programs retrained in full and reported",
                          "--top-k")
    seed: int = _setting(0, SEED, "Search seed", "--seed", "the task's [train] seed")
    epochs_per_node: int = _setting(10, COUNT, "Training epochs per node", "--epochs-per-node",
                                    "about [search] node_steps (150) optimizer steps")
    final_epochs: int = _setting(150, COUNT, "Most epochs of a finalist's fit",
                                 "--final-epochs", "the task's [train] epochs, at least 150")
    lr: float = _setting(0.03, Key(float, 0, 10, open_low=True))  # 3x the task's rate
    hidden: int = _setting(32, Key(int, 1, 65536))
    heuristic: str = _setting("rescaled", Key(str, choices=("rescaled", "loss", "metric")))
    cost_weight: float = _setting(0.05, Key(float, 0, 10**6),
                                  "Weight of a program's size against its loss",
                                  "--cost-weight")
    warm_start: bool = _setting(True, Key(bool))
    # A*: keep only the best nodes (NEAR's beam)
    frontier_capacity: int | None = _setting(None, COUNT)
    # A*: partial nodes expanded together (work for many workers)
    expansions: int = _setting(1, Key(int, 1, 4096))
    # A*: use the whole budget, not stop at the first top_k popped
    anytime: bool = _setting(True, Key(bool))
    # A*: score each child's cheapest completion with it
    completions: bool = _setting(True, Key(bool))
    # at most this much of the limit is kept for the finalists
    final_share: float = _setting(0.2, Key(float, 0, 0.99, open_low=True))
    cv_folds: int = _setting(5, Key(int, 0, 100), "Folds of the cross-validation that "
                             "ranks the finalists; 0 or 1: none", "--cv-folds")
    # the pick among them: "best" (lowest f) or "one_se" (the cheapest within one standard
    # error of the best's f over the folds)
    selection: str = _setting("best", Key(str, choices=("best", "one_se")))
    # most seconds one node trains (None: 5% of the limit, at least 1 s)
    node_seconds: float | None = _setting(None, Key(float, 0, 10**8, open_low=True))
    device: str = _setting("cpu", Key(str, high=64),
                           "Where programs train: cpu, cuda, cuda:N or mps", "--device")
    # what fills a hole while a node is scored: "features" (fixed random features, a
    # linear head: solved exactly where the node is linear; the default: the same programs
    # as "trained" on the nine UCR sets measured, at 2-2.4x the nodes) or "trained" (small
    # networks)
    relaxation: str = _setting("features", Key(str, choices=("features", "trained")),
                               "What fills a hole while a node is scored: fixed random "
                               "features with a solved linear head, or small trained "
                               "networks", "--relaxation")


SETTINGS = {f.name: f.metadata["key"] for f in fields(SearchConfig)}  # given anywhere
SEARCH = {  # a task file's [search] table
    **SETTINGS,
    # read from the task only
    "productions": Key(str),
    "feature_groups": Key((dict, list)),
    "intervals": Key(list),
    "shapelets": Key(list),
    "grids": Key(list, items=str),  # "height, width" of the grids a task's lists are
    "node_steps": COUNT,
}

_LENGTH = Key(int, 1, 10**6)
DATA = {
    "aeon": {"source": Key(str), "dataset": Key(str), "normalize": Key(bool)},
    "digits": {"source": Key(str), "mode": Key(str, choices=("classify", "recognize", "count",
                                                             "sum", "path", "order")),
               "length": Key(int, 2, 10),
               "height": Key(int, 1, 64), "width": Key(int, 1, 64),
               "digit": Key(int, 0, 9), "pool_seed": SEED, "n_train": _LENGTH,
               "n_val": _LENGTH, "n_test": _LENGTH, "min_len": Key(int, 1, 1000),
               "max_len": Key(int, 1, 1000)},
    "planted": {"source": Key(str), "program": Key(str), "features": Key(int, 1, 4096),
                "n_train": _LENGTH, "n_val": _LENGTH, "n_test": _LENGTH,
                "min_len": Key(int, 1, 10**4), "max_len": Key(int, 1, 10**4),
                "data_seed": SEED},
    "files": {"source": Key(str), "train": Key((str, dict)), "test": Key((str, dict)),
              "val": Key((str, dict)), "normalize": Key(bool),
              "layout": Key(str, choices=("rows", "long")), "target": Key((str, int)),
              "header": Key(bool),
              "id_column": Key(str), "time_column": Key(str), "x_key": Key(str),
              "y_key": Key(str), "ignore": Key(list, items=str),
              "categorical": Key(dict), "missing": Key(str, choices=MISSING_POLICIES),
              "test_fraction": Key(float, 0, 0.9, open_low=True)},
}


PRODUCTION_SET = {"name": Key(str), "description": Key(str), "production": Key(list),
                  "shapelet_fractions": Key(list), "intervals": Key(list)}
PRODUCTION = {"term": Key(str, high=2000), "cost": Key("any")}  # the cost: checked with its line


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width] + "..."


def did_you_mean(given: str, known) -> str:
    """"; did you mean 'x'?" for the closest of `known`, or nothing."""
    if len(given) > 64:  # difflib is quadratic: no guess for a long garbled key
        return ""
    close = difflib.get_close_matches(given, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_table(table: Mapping[str, Any], schema: Mapping[str, Key], where: str,
                error: type[Exception] = TaskError) -> None:
    """Every key known, every value of its kind and in range; `where` names the file and
    the table (`tasks/t.toml [train]`)."""
    for key, value in table.items():
        spec = schema.get(key)
        if spec is None:
            raise error(f"{where}: unknown key {_short(key)}{did_you_mean(key, schema)} "
                        "(known: " + ", ".join(sorted(schema)) + ")")
        problem = spec.problem(value)
        if problem:
            raise error(f"{where}: {key} {problem}")
