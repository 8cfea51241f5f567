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
from dataclasses import dataclass
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
    "metric": Key(str, choices=("accuracy", "macro_f1", "mse")),
    "seed": SEED,
    "val_fraction": Key(float, 0, 1, open_low=True),
    "class_weights": Key((str, list)),  # "balanced" or a list, checked against the classes
    "epochs": COUNT,
    "lr": Key(float, 0, 10, open_low=True),
    "batch_size": COUNT,
    "patience": COUNT,
    "weight_decay": Key(float, 0, 10),
}

SEARCH = {
    "algorithm": Key(str, choices=("astar", "iddfs", "enumerate")),
    "time_limit": Key(float, 0, 10**8, open_low=True),
    "max_nodes": COUNT,
    "max_depth": Key(int, 1, 1000),
    "max_size": COUNT,
    "workers": Key(int, 1, 4096),
    "top_k": Key(int, 1, 1000),
    "seed": SEED,
    "epochs_per_node": COUNT,
    "final_epochs": COUNT,
    "lr": Key(float, 0, 10, open_low=True),
    "hidden": Key(int, 1, 65536),
    "heuristic": Key(str, choices=("rescaled", "loss", "metric")),
    "cost_weight": Key(float, 0, 10**6),
    "warm_start": Key(bool),
    "frontier_capacity": COUNT,
    "expansions": Key(int, 1, 4096),
    "anytime": Key(bool),
    "completions": Key(bool),
    "final_share": Key(float, 0, 0.99, open_low=True),
    "node_seconds": Key(float, 0, 10**8, open_low=True),
    "cv_folds": Key(int, 0, 100),
    "device": Key(str, high=64),
    "relaxation": Key(str, choices=("features", "trained")),
    "selection": Key(str, choices=("best", "one_se")),
    # read from the task only
    "productions": Key(str),
    "feature_groups": Key((dict, list)),
    "intervals": Key(list),
    "shapelets": Key(list),
    "node_steps": COUNT,
}

_LENGTH = Key(int, 1, 10**6)
DATA = {
    "aeon": {"source": Key(str), "dataset": Key(str), "normalize": Key(bool)},
    "digits": {"source": Key(str), "mode": Key(str, choices=("classify", "recognize", "count",
                                                             "sum", "path")),
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
