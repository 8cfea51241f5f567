"""CSV files, as tables come: a header row, then one example per row (`layout = "rows"`:
the target column and the features, or, for series, the time steps, trailing empty cells
ending a shorter series), or one time step per row (`layout = "long"`: an `id_column`
naming the series, an optional `time_column` ordering its steps, the target, and one
column per channel). Columns named in `ignore` (dates, names, row numbers) are not read;
a column of names listed in `categorical` (`{island = ["Biscoe", "Dream"]}`) becomes one
0/1 feature per name; a missing value (`MISSING`) is refused with its place, its row left
out (`missing = "drop"`), or kept as NaN for `tasks.assemble` to fill with the column's
mean (`missing = "mean"`, which leaves out the rows whose target is missing). Every error
names the file, the row and the column.

A file without a header row (`header = false`, or told by its first row: numbers where
names would be, but at most one cell) has its columns named by number from "1", and its
target is the first column unless `target` names another: the UCR archive's layout
(the label, then the values; a shorter series padded with NaN or left short). Cells are
separated by commas, semicolons, tabs, bars or, in a file that has none of those, by
runs of whitespace (the UEA archive's `.txt` files)."""

from __future__ import annotations

import csv
import json
import math
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurosym.lang.errors import DataError
from neurosym.settings import did_you_mean
from neurosym.tasks.examples import Examples, existing, not_storable, unstorable

# what marks a missing value in a CSV cell: an empty cell, and pandas' default markers
# (which is what people who write CSVs with pandas or R expect), and "?" (UCI's)
MISSING = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
                     "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
                     "nan", "null", "?"})
TABLES = (".csv", ".tsv", ".txt")
DELIMITERS = ",;\t|"
WHITESPACE = " "  # the delimiter of a file whose cells are separated by runs of spaces
_SAMPLE = 16384  # characters read to tell the delimiter
# "3,5" in a table whose cells are separated by semicolons (as spreadsheets write them
# where the comma is the decimal mark): the number 3.5
_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d*,\d+(?:[eE][+-]?\d+)?\s*")


@dataclass
class _Table:
    """A table's column names (numbers from "1" when it has no header row), and the
    (line number, cells) of its rows, read as they are used."""

    header: list[str]
    rows: Iterator[tuple[int, list[str]]]
    named: bool  # the first row named the columns

    def target(self, params: Mapping[str, Any]) -> str:
        """The `target` named in `[data]`, else the last column (the first without a
        header row, as the UCR archive writes its files)."""
        given = params.get("target")
        if given is not None:
            return str(given)
        return self.header[-1] if self.named else self.header[0]


def _csv_table(path: Path, params: Mapping[str, Any]) -> _Table:
    """The table of `path`: a bad cell in row 39 of a 500,000-row file is reported at
    once."""
    rows = _csv_lines(path)
    first = next(rows, None)
    if first is None:
        raise _no_examples(path)
    cells = [c.strip() for c in first[1]]
    named = params.get("header")
    if named is None:
        named = not _is_data_row(cells)
    if not named:
        width = max(len(row) for _, row in _csv_lines(path))
        return _Table([str(i + 1) for i in range(width)], _after(first, rows), False)
    header = cells
    named_at = [i for i, name in enumerate(header) if name]
    if named_at and named_at[-1] < len(header) - 1:  # a separator ending every line
        header = header[:named_at[-1] + 1]
        rows = _trimmed(rows, len(header))
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if name and name in seen:  # a column is chosen, ignored and explained by its name
            rows.close()
            raise DataError(f"{path}: columns {seen[name] + 1} and {i + 1} are both named "
                            f"{name!r}; rename one")
        seen[name] = i
    return _Table(header, rows, True)


def _after(first: tuple[int, list[str]], rows: Iterator[tuple[int, list[str]]]
           ) -> Iterator[tuple[int, list[str]]]:
    yield first
    yield from rows


def _is_data_row(cells: list[str]) -> bool:
    """Whether a first row holds values, not names: at least two numbers, and numbers (or
    missing markers) in every cell but at most one (a label), and not the numbers 0, 1,
    2, ... (or 1, 2, 3, ...) that name the steps of a series kept as columns."""
    words = [c for c in cells if not _is_number(c) and c not in MISSING]
    numbers = [c for c in cells if _is_number(c)]
    if len(words) > 1 or len(numbers) < 2:
        return False
    steps = all(c.isdigit() for c in numbers) and all(
        int(b) - int(a) == 1 for a, b in zip(numbers, numbers[1:]))
    return not steps


def is_table(spec: Any) -> bool:
    """Whether a `[data]` entry names a CSV (or tab-separated) file."""
    return isinstance(spec, str) and spec.lower().endswith(TABLES)


def _trimmed(rows: Iterator[tuple[int, list[str]]], width: int
             ) -> Iterator[tuple[int, list[str]]]:
    """Rows cut to `width` cells where the cells beyond it are empty."""
    for r, row in rows:
        yield r, row[:width] if not any(c.strip() for c in row[width:]) else row


def _csv_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            delimiter = _delimiter(path, f.read(_SAMPLE))
            f.seek(0)
            if delimiter == WHITESPACE:
                numbered = ((i, line.split()) for i, line in enumerate(f, 1))
            else:
                reader = csv.reader(f, delimiter=delimiter)
                numbered = ((reader.line_num, row) for row in reader)
            for number, row in numbered:
                if delimiter == ";":
                    row = [c.replace(",", ".") if _DECIMAL_COMMA.fullmatch(c) else c
                           for c in row]
                if any(cell.strip() for cell in row):
                    yield number, row
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err}); save it as UTF-8") from err
    except (OSError, csv.Error) as err:
        raise DataError(f"{path}: not a readable CSV file ({err})") from err


def _delimiter(path: Path, sample: str) -> str:
    """Tab for .tsv; else what separates the cells of the first lines (comma, semicolon,
    tab or bar: spreadsheets in many locales write semicolons), comma when unsure, and
    runs of whitespace in a file with none of those but spaces between its values."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    lines = sample.splitlines()
    if len(sample) == _SAMPLE and len(lines) > 1:
        lines.pop()  # cut off mid-line
    head = lines[:20]
    if head and not any(d in line for line in head for d in DELIMITERS) \
            and len(head[0].split()) > 1:
        return WHITESPACE
    try:
        return csv.Sniffer().sniff("\n".join(lines[:20]), delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def _no_examples(path: Path) -> DataError:
    return DataError(f"{path}: needs at least one example")


def _column(path: Path, header: list[str], name: Any, what: str) -> int:
    if name not in header:
        raise DataError(f"{path}: no {what} column {name!r}"
                        f"{did_you_mean(str(name), header) or ';'} the columns are "
                        + ", ".join(map(repr, header[:20]))
                        + (f", ... ({len(header)} in all)" if len(header) > 20 else ""))
    return header.index(name)


def csv_layout(spec: Any, folder: Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """The target column of a CSV training file (the one named, else its last, or first
    without a header row) and whether it has a header row, recorded so that new data is
    read the same way (without targets: with that column missing, not its own last column
    taken for the target); nothing for other formats."""
    if not is_table(spec):
        return {}
    table = _csv_table(existing(folder, spec), params)
    table.rows.close()
    return {"target": table.target(params), "header": table.named}


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
        if _column(path, header, name, "ignored") in taken:
            raise DataError(f"{path}: column {name!r} is read as the target, id or time; "
                            "it cannot be ignored")
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
    if not is_table(spec) or params.get("layout", "rows") != "rows":
        return {}
    path = existing(folder, spec)
    table = _csv_table(path, params)
    header, rows = table.header, table.rows
    target = _column(path, header, table.target(params), "target")
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
    if not is_table(spec):
        return None
    path = existing(folder, spec)
    table = _csv_table(path, params)
    table.rows.close()
    header = table.header
    taken = [params.get(k) for k in ("id_column", "time_column")]
    taken = tuple(header.index(n) for n in [table.target(params), *taken] if n in header)
    return [header[c] for c in _inputs(path, header, params, taken, True)]


def _number(path: Path, row: int, column: str, cell: str, ignorable: bool = True,
            categorical: bool = True) -> float:
    """A numeric cell; a missing one is NaN. Rows count from 1 at the header, as a
    spreadsheet shows them. `ignorable`: an input column, which `ignore` can leave out;
    `categorical`: which can be a category (the error says how)."""
    text = cell.strip()
    if text in MISSING:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        hint = (f" (if it is not an input, leave it out: [data] ignore = [{json.dumps(column)}]"
                f", or `task init --ignore {shlex.quote(column)}`"
                + (f"; if it names categories, list them: [data.categorical] "
                   f"{json.dumps(column)} = [...]" if categorical else "") + ")"
                ) if ignorable else ""
        raise DataError(f"{path}, row {row}, column {column!r}: {text!r} is not a number"
                        + hint) from None
    if unstorable(value):
        raise DataError(f"{path}, row {row}, column {column!r}: {text!r} "
                        f"{not_storable(value)}")
    return value


def read_rows(path: Path, params: Mapping[str, Any], series: bool,
              targets: bool = True) -> Examples:
    table = _csv_table(path, params)
    header, rows, name = table.header, table.rows, table.target(params)
    if not targets and name not in header:  # new data: every column is an input
        header, rows = [*header, name], ((r, [*row, "0"]) for r, row in rows)
    # a series ends at its first trailing empty cell (and, without a header row, as the
    # UCR archive pads its shorter series, at trailing NaN too)
    ends = ("",) if table.named else MISSING
    target = _column(path, header, name, "target")
    columns = _inputs(path, header, params, (target,), targets)
    if not columns:
        raise DataError(f"{path}: no input column besides the target {header[target]!r}"
                        + (" and the ignored ones" if params.get("ignore") else ""))
    categories = _categories(path, header, params, columns, targets)
    gaps = _Gaps(path, header, target, targets, params.get("missing", "error"))
    xs, ys, at = [], [], []
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
        while series and values and cells[where[-1]].strip() in ends and not categories:
            values.pop()  # a shorter series ends early (an empty cell, not an NA)
            where.pop()
        if not gaps.keep(r, cells, where, values):
            continue
        if not values:
            raise DataError(f"{path}, row {r}: no values")
        xs.append(np.asarray(values))
        ys.append(cells[target].strip())
        at.append(r)
    gaps.check_left(len(xs))
    names = [[f"{header[c]}={n}" for n in categories[c]] if c in categories else [header[c]]
             for c in columns]
    return Examples(xs, _targets(path, ys, header[target], at), str(path),
                    columns=tuple(n for each in names for n in each), dropped=gaps.dropped,
                    gaps=gaps.impute)


@dataclass
class _Gaps:
    """What a row with a missing value does under `[data] missing`: "error" refuses it
    with its place; "drop" leaves it out; "mean" keeps its missing inputs (NaN, for
    `tasks.assemble` to fill) and leaves it out only when its target is missing. New data
    (`targets=False`) is never left out. Counts the rows left out."""

    path: Path
    header: list[str]
    target: int
    targets: bool
    policy: str
    dropped: int = 0

    @property
    def impute(self) -> bool:
        return self.policy == "mean"

    def keep(self, row: int, cells: list[str], where: list[int], values: list[float]) -> bool:
        """Whether to read the row whose input `values` come from columns `where`."""
        gap = None if self.impute else next(
            (c for c, v in zip(where, values, strict=False) if math.isnan(v)), None)
        if gap is None and self.targets and cells[self.target].strip() in MISSING:
            gap = self.target
        if gap is None:
            return True
        if self.targets and self.policy in ("drop", "mean"):
            self.dropped += 1
            return False
        what = "target" if gap == self.target else "value"
        found = (f"{self.path}, row {row}, column {self.header[gap]!r}: a missing {what} "
                 f"({cells[gap].strip()!r})")
        if not self.targets:
            raise DataError(f"{found}; a model cannot predict without it")
        if what == "target":
            raise DataError(f"{found}; to leave out the rows that have one: [data] missing "
                            '= "drop", or `task init --missing drop`')
        raise DataError(f"{found}; to leave out the rows that have one: [data] missing = "
                        "\"drop\"; to fill it with its column's mean: missing = \"mean\" (or "
                        "`task init --missing drop|mean`)")

    def check_left(self, count: int) -> None:
        if not count and self.dropped:
            raise DataError(f"{self.path}: every row has a missing value ({self.dropped} "
                            "left out)")
        if not count:
            raise _no_examples(self.path)


def read_long(path: Path, params: Mapping[str, Any], targets: bool = True) -> Examples:
    """One row per time step; the steps of a series are kept in file order unless a
    `time_column` orders them. `missing = "drop"` leaves out a step with a missing value
    (its series keeps the others), and either policy a step whose target is missing."""
    table = _csv_table(path, params)
    header, rows, name = table.header, table.rows, table.target(params)
    if "id_column" not in params:
        raise DataError(f'{path}: layout = "long" needs [data] id_column')
    if not targets and name not in header:
        header, rows = [*header, name], ((r, [*row, "0"]) for r, row in rows)
    ident = _column(path, header, params["id_column"], "id")
    target = _column(path, header, name, "target")
    time_col = (_column(path, header, params["time_column"], "time")
                if "time_column" in params else None)
    channels = _inputs(path, header, params, (ident, target, time_col), targets)
    if not channels:
        raise DataError(f"{path}: no value columns besides the id, target, time and ignored")
    gaps = _Gaps(path, header, target, targets, params.get("missing", "error"))
    series: dict[str, list[tuple[float, list[float]]]] = {}
    labels: dict[str, tuple[str, int]] = {}
    for r, row in rows:
        if len(row) != len(header):
            raise DataError(f"{path}, row {r}: {len(row)} cells but {len(header)} columns")
        key, label = row[ident].strip(), row[target].strip()
        step = [_number(path, r, header[c], row[c], categorical=False) for c in channels]
        if not gaps.keep(r, row, channels, step):
            continue
        if key in labels and labels[key][0] != label:
            raise DataError(f"{path}, row {r}, column {header[target]!r}: series {key!r} has "
                            f"target {label!r} here but {labels[key][0]!r} at row "
                            f"{labels[key][1]}")
        labels.setdefault(key, (label, r))
        order = (_number(path, r, header[time_col], row[time_col], False)
                 if time_col is not None else len(series.get(key, ())))
        if math.isnan(order):
            raise DataError(f"{path}, row {r}, column {header[time_col]!r}: a missing time "
                            f"({row[time_col].strip()!r})")
        series.setdefault(key, []).append((order, step))
    xs = [np.asarray([s for _, s in sorted(steps, key=lambda p: p[0])]) for steps in
          series.values()]
    gaps.check_left(len(xs))
    return Examples(xs, _targets(path, [labels[k][0] for k in series], header[target],
                                 [labels[k][1] for k in series]), str(path), tuple(series),
                    tuple(header[c] for c in channels), dropped=gaps.dropped,
                    gaps=gaps.impute)


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
