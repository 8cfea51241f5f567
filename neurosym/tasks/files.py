"""A user's own data files, read into `Examples` (one array per example, raw targets).

Formats, by extension:
- `.npz`: named arrays (`x` and `y` unless `x_key`/`y_key` say otherwise);
- a pair of `.npy` files, given as `{x = "x.npy", y = "y.npy"}`;
- `.csv` with a header row, one row per example (`layout = "rows"`: the target column and
  the features, or, for series, the time steps, trailing empty cells ending a shorter
  series), or one row per time step (`layout = "long"`: an `id_column` naming the series,
  an optional `time_column` ordering its steps, the target, and one column per channel);
  columns named in `ignore` (dates, names, row numbers) are not read, and a column of
  names listed in `categorical` (`{island = ["Biscoe", "Dream"]}`) becomes one 0/1
  feature per name;
- `.ts` and `.arff` (the UCR/UEA archive formats), through aeon's own readers.

Nothing here knows the task's types: `tasks.assemble` turns examples into splits.
Every error names the file, and in a CSV the row and the column.
"""

from __future__ import annotations

import csv
import json
import math
import shlex
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurosym.lang.errors import DataError
from neurosym.settings import did_you_mean

FORMATS = (".npz", ".npy", ".csv", ".ts", ".arff")


@dataclass(frozen=True, slots=True, eq=False)
class Examples:
    """Examples read from one file: `x[i]` is example i's array ((d,) for a feature row,
    (T, C) for a series of C channels, (h, w) for an image); `y` holds the raw targets
    (class names or numbers, or real values); `origin` names the file in errors; `ids`
    names each example where the file does (a long-format CSV's id column); `columns`
    names the CSV columns the input's features (or a series' channels) were read from."""

    x: list[np.ndarray]
    y: np.ndarray
    origin: str
    ids: tuple[str, ...] | None = None
    columns: tuple[str, ...] | None = None
    dropped: int = 0  # rows left out for a missing value (`[data] missing = "drop"`)

    def __len__(self) -> int:
        return len(self.x)


def read_examples(spec: Any, folder: Path, params: Mapping[str, Any],
                  series: bool = True, targets: bool = True) -> Examples:
    """Read the examples a `[data]` entry names (`train = ...`), relative to `folder`.
    `series`: CSV rows may end early (trailing empty cells end a shorter series); when
    the rows are feature vectors, a missing value is an error, or its row is dropped
    (`missing = "drop"`). `targets=False` (new data
    to predict): a file without targets is read too, its targets left empty."""
    if isinstance(spec, Mapping):
        return _npy_pair(spec, folder)
    if not targets and isinstance(spec, str) and spec.lower().endswith(".npy"):
        path = _existing(folder, spec)
        x = _load_npy(path)
        return _from_arrays(x, np.zeros(len(x)), str(path))
    if not isinstance(spec, str) or not spec:
        raise DataError(f"a data file must be a path or {{x = ..., y = ...}}, got {spec!r}")
    path = _existing(folder, spec)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _npz(path, params, targets)
    if suffix == ".csv":
        layout = params.get("layout", "rows")
        if layout == "rows":
            return _csv_rows(path, params, series, targets)
        if layout == "long":
            return _csv_long(path, params, targets)
        raise DataError(f'[data] layout must be "rows" or "long", got {layout!r}')
    if suffix in (".ts", ".arff"):
        return _archive(path, targets)
    raise DataError(f"{path}: unknown data format {suffix or '(none)'!r}; one of "
                    + ", ".join(FORMATS) + " (a .npy file goes in a pair {x = ..., y = ...})")


def _existing(folder: Path, name: str) -> Path:
    path = Path(name) if Path(name).is_absolute() else folder / name
    if not path.is_file():
        raise DataError(f"data file {path} not found")
    return path


# ---- NumPy ---------------------------------------------------------------------------------

def _load_npy(path: Path, what: str = "") -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)  # never unpickle: a data file runs no code
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}{what}: not a readable NumPy file ({err})") from err


def _npy_pair(spec: Mapping[str, Any], folder: Path) -> Examples:
    if set(spec) != {"x", "y"} or not all(isinstance(v, str) for v in spec.values()):
        raise DataError(f"a .npy pair is {{x = \"x.npy\", y = \"y.npy\"}}, got {dict(spec)!r}")
    x_path, y_path = (_existing(folder, spec[k]) for k in ("x", "y"))
    return _from_arrays(_load_npy(x_path), _load_npy(y_path), f"{x_path} / {y_path.name}")


def _npz(path: Path, params: Mapping[str, Any], targets: bool = True) -> Examples:
    x_key, y_key = params.get("x_key", "x"), params.get("y_key", "y")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            needed = (x_key, y_key) if targets else (x_key,)
            missing = [k for k in needed if k not in arrays.files]
            if missing:
                raise DataError(f"{path}: no array named {missing[0]!r}; it has "
                                + ", ".join(arrays.files) + " (set x_key / y_key)")
            x = arrays[x_key]
            y = arrays[y_key] if y_key in arrays.files else np.zeros(len(x))
    except (OSError, ValueError, EOFError, RuntimeError, NotImplementedError,
            zipfile.BadZipFile) as err:  # RuntimeError: an encrypted member
        raise DataError(f"{path}: not a readable .npz file ({err})") from err
    return _from_arrays(x, y, str(path))


def _from_arrays(x: np.ndarray, y: np.ndarray, origin: str) -> Examples:
    if x.ndim < 2:
        raise DataError(f"{origin}: x must have one row per example, got shape {x.shape}")
    if y.ndim != 1:
        raise DataError(f"{origin}: y must be one target per example, got shape {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{origin}: x has {len(x)} examples but y has {len(y)}")
    if x.dtype.kind not in "fiub":
        raise DataError(f"{origin}: x must be numbers, got {x.dtype}")
    return Examples(list(x.astype(np.float64)), y, origin)


# ---- CSV -----------------------------------------------------------------------------------

def _csv_table(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header, and the (line number, cells) of the other non-empty rows, read as they
    are used: a bad cell in row 39 of a 500,000-row file is reported at once."""
    rows = _csv_lines(path)
    first = next(rows, None)
    if first is None:
        raise DataError(f"{path}: needs a header row and at least one example")
    return [h.strip() for h in first[1]], rows


def _csv_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for row in reader:
                if any(cell.strip() for cell in row):
                    yield reader.line_num, row
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: not a readable CSV file ({err})") from err


def _no_examples(path: Path) -> DataError:
    return DataError(f"{path}: needs a header row and at least one example")


def _column(path: Path, header: list[str], name: Any, what: str) -> int:
    if name not in header:
        raise DataError(f"{path}: no {what} column {name!r}"
                        f"{did_you_mean(str(name), header) or ';'} the columns are "
                        + ", ".join(map(repr, header[:20]))
                        + (f", ... ({len(header)} in all)" if len(header) > 20 else ""))
    return header.index(name)


def target_column(header: list[str], params: Mapping[str, Any]) -> str:
    """The `target` named in `[data]`, else the last column."""
    return params.get("target", header[-1])


def csv_target(spec: Any, folder: Path, params: Mapping[str, Any]) -> str | None:
    """The target column of a CSV training file (the one named, else its last), recorded
    so that new data without targets is read with that column missing, not with its own
    last column taken for the target; None for other formats."""
    if not (isinstance(spec, str) and spec.lower().endswith(".csv")):
        return None
    header, rows = _csv_table(_existing(folder, spec))
    rows.close()
    return target_column(header, params)


def _inputs(path: Path, header: list[str], params: Mapping[str, Any], taken: tuple[int, ...],
            targets: bool) -> list[int]:
    """The columns read as inputs: all but the `taken` ones (target, id, time) and those
    `[data] ignore` names. Each ignored column must be in a file with targets (a typo
    would otherwise read a column the user meant to leave out); new data to predict on
    may lack it."""
    ignore = params.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(n, str) for n in ignore):
        raise DataError(f"{path}: ignore must be a list of column names, got {ignore!r}")
    for name in ignore if targets else ():
        _column(path, header, name, "ignored")
    return [c for c in range(len(header)) if c not in taken and header[c] not in ignore]


def _categories(path: Path, header: list[str], params: Mapping[str, Any], columns: list[int],
                targets: bool) -> dict[int, list[str]]:
    """`[data] categorical` ({column: [its names]}) by input column index."""
    given = params.get("categorical", {})
    if not isinstance(given, Mapping) or not all(
            isinstance(names, list) and names and all(isinstance(n, str) for n in names)
            and len(set(names)) == len(names) for names in given.values()):
        raise DataError(f"{path}: categorical must be a table of column = [its distinct "
                        f"names], got {given!r}")
    for name in given if targets else ():
        _column(path, header, name, "categorical")
    return {c: list(given[header[c]]) for c in columns if header[c] in given}


def find_categories(spec: Any, folder: Path, params: Mapping[str, Any], most: int = 50
                    ) -> dict[str, list[str]]:
    """For `task init`: the CSV input columns in which no cell is a number and which repeat
    their names (at most `most` distinct ones, each in two rows on average: else it is a
    free text, a date or a name, not a category), with their names sorted."""
    if not (isinstance(spec, str) and spec.lower().endswith(".csv")) or \
            params.get("layout", "rows") != "rows":
        return {}
    path = _existing(folder, spec)
    header, rows = _csv_table(path)
    target = _column(path, header, target_column(header, params), "target")
    columns = _inputs(path, header, params, (target,), True)
    seen: dict[int, set[str]] = {c: set() for c in columns}
    count = 0
    for _, row in rows:
        count += 1
        for c in list(seen):
            cell = row[c].strip() if c < len(row) else ""
            if cell in MISSING:
                continue
            if _is_number(cell) or len(seen[c]) >= most:
                del seen[c]
            else:
                seen[c].add(cell)
    return {header[c]: sorted(names) for c, names in seen.items()
            if names and len(names) <= count / 2}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _one_hot(path: Path, row: int, column: str, cell: str, names: list[str]) -> list[float]:
    """One 0/1 value per category name; all NaN where the cell is missing."""
    text = cell.strip()
    if text in MISSING:
        return [math.nan] * len(names)
    if text not in names:
        raise DataError(f"{path}, row {row}, column {column!r}: {text!r} is not one of its "
                        "categories ("
                        + ", ".join(map(repr, names[:20])) + (", ..." if len(names) > 20 else "")
                        + ")")
    return [float(text == name) for name in names]


def input_columns(spec: Any, folder: Path, params: Mapping[str, Any]) -> list[str] | None:
    """The names of the columns a CSV file's inputs are read from (for `task init` to show
    what it read); None for other formats."""
    if not (isinstance(spec, str) and spec.lower().endswith(".csv")):
        return None
    path = _existing(folder, spec)
    header, rows = _csv_table(path)
    rows.close()
    taken = [params.get(k) for k in ("id_column", "time_column")]
    taken = tuple(header.index(n) for n in [target_column(header, params), *taken]
                  if n in header)
    return [header[c] for c in _inputs(path, header, params, taken, True)]


# what marks a missing value in a CSV cell: an empty cell, and pandas' default markers
# (which is what people who write CSVs with pandas or R expect), and "?" (UCI's)
MISSING = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
                     "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
                     "nan", "null", "?"})


def _number(path: Path, row: int, column: str, cell: str, ignorable: bool = True) -> float:
    """A numeric cell; a missing one is NaN. Rows count from 1 at the header, as a
    spreadsheet shows them. `ignorable`: an input column, which `ignore` can leave out
    (the error says how)."""
    text = cell.strip()
    if text in MISSING:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        hint = (f" (if it is not an input, leave it out: [data] ignore = [{json.dumps(column)}]"
                f", or `task init --ignore {shlex.quote(column)}`; if it names categories, "
                f"list them: [data.categorical] {json.dumps(column)} = [...])"
                ) if ignorable else ""
        raise DataError(f"{path}, row {row}, column {column!r}: {text!r} is not a number"
                        + hint) from None
    if unstorable(value):
        raise DataError(f"{path}, row {row}, column {column!r}: {text!r} "
                        f"{not_storable(value)}")
    return value


def _csv_rows(path: Path, params: Mapping[str, Any], series: bool,
              targets: bool = True) -> Examples:
    header, rows = _csv_table(path)
    name = target_column(header, params)
    if not targets and name not in header:  # new data: every column is an input
        header, rows = [*header, name], ((r, [*row, "0"]) for r, row in rows)
    target = _column(path, header, name, "target")
    columns = _inputs(path, header, params, (target,), targets)
    categories = _categories(path, header, params, columns, targets)
    drop = targets and params.get("missing", "error") == "drop"
    xs, ys, at, dropped = [], [], [], 0
    for r, row in rows:
        cells = row + [""] * (len(header) - len(row))
        if len(row) > len(header):
            raise DataError(f"{path}, row {r}: {len(row)} cells but {len(header)} columns")
        values, where = [], []  # where: each value's column
        for c in columns:
            read = (_one_hot(path, r, header[c], cells[c], categories[c]) if c in categories
                    else [_number(path, r, header[c], cells[c])])
            values += read
            where += [c] * len(read)
        while series and values and not cells[where[-1]].strip() and not categories:
            values.pop()  # a shorter series ends early (an empty cell, not an NA)
            where.pop()
        gap = next((c for c, v in zip(where, values, strict=False) if math.isnan(v)), None)
        if gap is None and cells[target].strip() in MISSING and targets:
            gap = target
        if gap is not None and drop:
            dropped += 1
            continue
        if gap is not None:
            raise DataError(_missing(path, r, header[gap], cells[gap], targets,
                                     "target" if gap == target else "value"))
        if not values:
            raise DataError(f"{path}, row {r}: no values")
        xs.append(np.asarray(values))
        ys.append(cells[target].strip())
        at.append(r)
    if not xs and dropped:
        raise DataError(f"{path}: every row has a missing value ({dropped} left out)")
    if not xs:
        raise _no_examples(path)
    names = [[f"{header[c]}={n}" for n in categories[c]] if c in categories else [header[c]]
             for c in columns]
    return Examples(xs, _targets(path, ys, header[target], at), str(path),
                    columns=tuple(n for each in names for n in each), dropped=dropped)


def _missing(path: Path, row: int, column: str, cell: str, targets: bool, what: str) -> str:
    found = f"{path}, row {row}, column {column!r}: a missing {what} ({cell.strip()!r})"
    if not targets:
        return f"{found}; a model cannot predict without it"
    return (f"{found}; to leave out the rows that have one: [data] missing = \"drop\", or "
            "`task init --missing drop`")


def _csv_long(path: Path, params: Mapping[str, Any], targets: bool = True) -> Examples:
    """One row per time step; the steps of a series are kept in file order unless a
    `time_column` orders them."""
    header, rows = _csv_table(path)
    if "id_column" not in params:
        raise DataError(f'{path}: layout = "long" needs [data] id_column')
    name = target_column(header, params)
    if not targets and name not in header:
        header, rows = [*header, name], ((r, [*row, "0"]) for r, row in rows)
    ident = _column(path, header, params["id_column"], "id")
    target = _column(path, header, target_column(header, params), "target")
    time_col = (_column(path, header, params["time_column"], "time")
                if "time_column" in params else None)
    channels = _inputs(path, header, params, (ident, target, time_col), targets)
    if not channels:
        raise DataError(f"{path}: no value columns besides the id, target, time and ignored")
    series: dict[str, list[tuple[float, list[float]]]] = {}
    labels: dict[str, tuple[str, int]] = {}
    for r, row in rows:
        if len(row) != len(header):
            raise DataError(f"{path}, row {r}: {len(row)} cells but {len(header)} columns")
        key, label = row[ident].strip(), row[target].strip()
        if key in labels and labels[key][0] != label:
            raise DataError(f"{path}, row {r}, column {header[target]!r}: series {key!r} has "
                            f"target {label!r} here but {labels[key][0]!r} at row "
                            f"{labels[key][1]}")
        labels.setdefault(key, (label, r))
        step = [_number(path, r, header[c], row[c]) for c in channels]
        for c, v in zip(channels, step, strict=True):
            if math.isnan(v):
                raise DataError(f"{path}, row {r}, column {header[c]!r}: a missing value "
                                f"({row[c].strip()!r})")
        order = (_number(path, r, header[time_col], row[time_col], False)
                 if time_col is not None else len(series.get(key, ())))
        series.setdefault(key, []).append((order, step))
    xs = [np.asarray([s for _, s in sorted(steps, key=lambda p: p[0])]) for steps in
          series.values()]
    if not xs:
        raise _no_examples(path)
    return Examples(xs, _targets(path, [labels[k][0] for k in series], header[target],
                                 [labels[k][1] for k in series]), str(path), tuple(series),
                    tuple(header[c] for c in channels))


def _targets(path: Path, labels: list[str], column: str, rows: list[int]) -> np.ndarray:
    """Numbers where every label is one, else class names. `rows`: each label's CSV row."""
    gap = next((i for i, label in enumerate(labels) if label in MISSING), None)
    if gap is not None:
        raise DataError(f"{path}, row {rows[gap]}, column {column!r}: a missing target "
                        f"({labels[gap]!r})")
    try:
        values = np.asarray([float(label) for label in labels])
    except ValueError:
        return np.asarray(labels, dtype=str)
    bad = np.flatnonzero(unstorable(values))
    if len(bad):
        raise DataError(f"{path}, row {rows[bad[0]]}, column {column!r}: "
                        f"{labels[bad[0]]!r} {not_storable(values[bad[0]])}")
    return values


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def unstorable(values: np.ndarray | float) -> np.ndarray:
    """Where `values` holds numbers a 32-bit float cannot: NaN, ±inf or beyond ±3.4e38."""
    return ~(np.abs(values) <= _FLOAT32_MAX)


def not_storable(value: float) -> str:
    """Why a number cannot be trained on: tensors here are 32-bit floats."""
    if math.isfinite(value):
        return "is beyond the range of 32-bit floats (±3.4e38)"
    return "is not a finite number"


# ---- UCR / UEA archive formats -------------------------------------------------------------

def _archive(path: Path, targets: bool = True) -> Examples:
    """`.ts` / `.arff` through aeon's readers: series come as (N, C, T) or a list of
    (C, T_i); each becomes (T, C)."""
    from aeon.datasets import load_from_arff_file, load_from_ts_file  # slow import: here

    reader = load_from_ts_file if path.suffix.lower() == ".ts" else load_from_arff_file
    try:
        x, y = reader(str(path))
    except Exception as err:  # aeon raises many kinds on a malformed file  # noqa: BLE001
        raise DataError(f"{path}: not a readable {path.suffix} file ({err})") from err
    if not targets and (y is None or len(y) != len(x)):
        y = np.zeros(len(x))
    if y is None or len(y) != len(x):
        raise DataError(f"{path}: every series needs a class label or target value")
    labels = np.asarray(y)
    return Examples([np.asarray(s, dtype=np.float64).T for s in x],
                    labels if labels.dtype.kind == "f" else labels.astype(str), str(path))
