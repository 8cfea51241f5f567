"""Production sets: the DSL templates the search may put into a hole, each with a cost.

A set lives in `dsl/search/NAME.toml`:

    name = "sequence"
    [[production]]
    term = '\\xs -> ?? (mean xs)'      # DSL syntax; holes are applied to variables
    cost = 1.0
    [[production]]
    term = '\\x -> affine (select[{group}] x)'   # one copy per feature group ("0:3")

Placeholders: `{group}` (the task's feature groups), `{feature}` (each feature index in
them, for `select[{feature}]`, a Float), `{channel}` (each channel of a series of several,
as `i:i+1`: `paa[8] (map select[{channel}] xs)` reads one channel; none for one channel),
`{interval}` (the set's `intervals`
list, or the task's `[search] intervals`) and `{shapelet}` (pattern lengths: the set's
`shapelet_fractions` of the task's median series length).

Holes in templates stand for functions applied to the template's variables (`?? x`), so
every relaxation is a closed function of its arguments, as in NEAR. Feature groups come
from the task (`[search] feature_groups`), else every single feature of the input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from neurosym.lang import ast
from neurosym.lang.checker import Checker, LibraryTypes
from neurosym.lang.errors import NeurosymError, SearchError, TypeMismatch
from neurosym.lang.parser import parse_term, parse_type
from neurosym.lang.printer import show
from neurosym.lang.types import FLOAT, Arrow, Image, ListT, Subst, Type, Vec, pretty
from neurosym.resources import dsl_dir, read_toml
from neurosym.search.terms import holes_in_arguments

Group = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Production:
    """One template. `scheme` is its most general type, for a cheap pre-filter by
    unification before the whole program is checked."""

    text: str
    term: ast.Term = field(compare=False)
    cost: float
    scheme: Type = field(compare=False)
    holes: int = 0

    def fits(self, hole_type: Type) -> bool:
        subst = Subst()
        try:
            subst.unify(hole_type, subst.instantiate(self.scheme))
        except TypeMismatch:
            return False
        return True


@dataclass(frozen=True, slots=True)
class ProductionSet:
    name: str
    productions: tuple[Production, ...]

    def __len__(self) -> int:
        return len(self.productions)

    def describe(self) -> str:
        return "\n".join(f"{p.cost:4.1f}  {p.text}" for p in self.productions)


def make_production(text: str, cost: float = 1.0,
                    library: LibraryTypes | None = None) -> Production:
    """Parse and vet one template: closed, well-typed on its own, no hole inside the
    argument of another hole (plugging would duplicate it)."""
    term = parse_term(text, "<production>")
    if holes_in_arguments(term):
        raise SearchError(f"production {text!r}: a hole's argument may not contain a hole")
    checker = Checker(library)
    try:
        inferred = checker.subst.resolve(checker.infer(term, {}))
    except NeurosymError as err:
        raise SearchError(f"production {text!r}: {err.message}") from None
    if cost < 0:
        raise SearchError(f"production {text!r}: cost must be >= 0, got {cost}")
    # Renamed to plain names (a, b, n): instantiating a scheme whose variables look like
    # the fresh ones ('t0) could map a variable to itself.
    scheme = parse_type(pretty(inferred)[0])
    return Production(show(term), term, float(cost), scheme, ast.holes(term))


def available_sets() -> list[str]:
    return sorted(p.stem for p in (dsl_dir() / "search").glob("*.toml"))


def _find_file(name: str) -> Path:
    path = Path(name)
    if path.suffix == ".toml" or "/" in name:
        if not path.is_file():
            raise SearchError(f"production set file {name} not found")
        return path
    bundled = dsl_dir() / "search" / f"{name}.toml"
    if not bundled.is_file():
        known = ", ".join(available_sets()) or "(none)"
        raise SearchError(f"unknown production set {name!r}; bundled: {known}")
    return bundled


PLACEHOLDER = re.compile(r"\{(\w+)\}")
MAX_STEPS = 64  # `{steps}`: prototypes longer than this cost more (DTW: steps squared)


def load_productions(name: str, groups: list[Group] | None = None,
                     library: LibraryTypes | None = None,
                     values: Mapping[str, Sequence[str]] | None = None,
                     series_length: int | None = None, classes: int | None = None,
                     channels: int | None = None) -> ProductionSet:
    """Load a bundled set by name (or a file by path). A template with placeholders is
    copied once per combination of their values: `{group}` over the feature `groups`,
    `{interval}` over the set's `intervals` and `{shapelet}` over pattern lengths, both
    overridable by `values` (the caller's: from the task), `{grid}` over the task's grid
    shapes (`[search] grids`, "height, width": none by default), `{steps}` (a prototype's length:
    the median series length, at most 64), `{prototypes}` (4 per class of `classes`, 8 to
    128) and `{channel}` (each of `channels`, if more than one); a placeholder with no
    values gives no copies. Errors name the file and the line of the production."""
    path = _find_file(name)
    spec = read_toml(path, SearchError, "production set")
    from neurosym.settings import PRODUCTION, PRODUCTION_SET, check_table

    check_table(spec, PRODUCTION_SET, str(path), SearchError)
    entries = spec.get("production")
    if not isinstance(entries, list) or not entries:
        raise SearchError(f"{path}: no [[production]] entries")
    fill = _placeholder_values(spec, groups, values, series_length, classes, path)
    fill["channel"] = [f"{i}:{i + 1}" for i in range(channels or 0)] \
        if (channels or 0) > 1 else []
    lines = path.read_text(encoding="utf-8").splitlines()
    made: dict[tuple[str, float], list[Production]] = {}  # an entry repeated is read once
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("term"), str):
            raise SearchError(f"{path}: every [[production]] needs a term = '...' string")
        cost = entry.get("cost", 1.0)
        valid = set(entry) <= {"term", "cost"} and _positive(cost)
        if valid and (entry["term"], cost) in made:
            continue  # the same production again: read once
        where = f"{path}:{_line_of(lines, entry['term'])}"
        check_table(entry, PRODUCTION, f"{where} [[production]]", SearchError)
        if not valid:
            raise SearchError(f"{where}: the cost of {entry['term']!r} must be a positive "
                              f"number, not {cost!r}")
        try:
            made[entry["term"], cost] = [make_production(t, cost, library)
                                         for t in _expand(entry["term"], fill)]
        except NeurosymError as err:  # a term that does not parse or type-check
            raise SearchError(f"{where}: {err.message}") from None
    # a group listed twice gives one production
    unique = tuple(dict.fromkeys(p for prods in made.values() for p in prods))
    return ProductionSet(str(spec.get("name", path.stem)), unique)


def _positive(cost) -> bool:
    return isinstance(cost, int | float) and not isinstance(cost, bool) and cost > 0


def _placeholder_values(spec: dict, groups: list[Group] | None,
                        given: Mapping[str, Sequence[str]] | None, series_length: int | None,
                        classes: int | None, path: Path) -> dict[str, list[str]]:
    fill = {"group": [f"{a}:{b}" for a, b in groups or []],
            "feature": [str(i) for i in sorted({i for a, b in groups or [] for i in range(a, b)})],
            "steps": [str(max(2, min(series_length, MAX_STEPS)))] if series_length else [],
            "prototypes": [str(min(128, max(8, 4 * (classes or 1))))] if series_length else []}
    fractions = spec.get("shapelet_fractions", [])
    if not isinstance(fractions, list) or not all(
            isinstance(f, int | float) and 0 < f <= 1 for f in fractions):
        raise SearchError(f"{path}: shapelet_fractions must be fractions in (0, 1]")
    lengths = sorted({max(3, round(f * series_length)) for f in fractions}) \
        if series_length else []
    for key, default in (("interval", spec.get("intervals", [])), ("shapelet", lengths),
                         ("grid", [])):
        raw = (given or {}).get(key, default)
        if not isinstance(raw, list | tuple) or not all(isinstance(v, str | int) for v in raw):
            raise SearchError(f"{path}: {key} values must be a list, got {raw!r}")
        fill[key] = [str(v) for v in raw]
    return fill


def _expand(term: str, fill: dict[str, list[str]]) -> list[str]:
    texts = [term]
    for key in dict.fromkeys(PLACEHOLDER.findall(term)):
        if key not in fill:
            raise SearchError(f"unknown placeholder {{{key}}} in {term!r}; known: "
                              + ", ".join(f"{{{k}}}" for k in fill))
        texts = [t.replace(f"{{{key}}}", v) for t in texts for v in fill[key]]
    return texts


def _line_of(lines: list[str], term: str) -> int:
    """The line of a production's term in its file (1 if it cannot be told)."""
    return next((i for i, line in enumerate(lines, 1) if term in line), 1)


def with_library(pset: ProductionSet, library, cost: float = 1.0) -> ProductionSet:
    """Add every function of a library (`library.names()`): `library_productions`."""
    if library is None or getattr(library, "names", None) is None:
        return pset
    extra = library_productions(library, cost)
    return ProductionSet(pset.name, tuple(dict.fromkeys((*pset.productions, *extra))))


def library_productions(library, cost: float = 1.0) -> list[Production]:
    """Every function of a library (`library.names()`) as a leaf, and a function that
    scores (one argument to a Float) also read through a learned part, `\\x -> ?? (lib.F
    x)`: a score learned through an order (a sorting network) is right only up to a
    monotone map, which a task that needs its values learns on top. An entry the checker
    cannot type is skipped, like a damaged one."""
    made = []
    for name in library.names():
        try:
            leaf = make_production(f"lib.{name}", cost, library)
            made.append(leaf)
            if _scores(leaf):
                made.append(make_production(f"\\x -> ?? (lib.{name} x)", cost, library))
        except SearchError:
            continue
    return made


def _scores(production: Production) -> bool:
    """A function of one argument to a Float."""
    t = production.scheme
    return isinstance(t, Arrow) and t.result == FLOAT and not isinstance(t.arg, Arrow)


# ---- choosing a set and feature groups for a task -------------------------------------------

def default_set(input_type: Type) -> str:
    """Digits for images (or lists of images), tabular for feature vectors (decision
    rules and sparse linear ones), series for univariate series (shape: intervals,
    trends, shapelets), sequence for everything else."""
    inner = input_type.elem if isinstance(input_type, ListT) else input_type
    if isinstance(inner, Image):
        return "digits"
    if isinstance(input_type, Vec):
        return "tabular"
    return "series" if isinstance(input_type, ListT) and inner == Vec(1) else "sequence"


def feature_count(input_type: Type) -> int | None:
    inner = input_type.elem if isinstance(input_type, ListT) else input_type
    return int(inner.n) if isinstance(inner, Vec) and isinstance(inner.n, int) else None


def feature_groups(spec, input_type: Type) -> list[Group]:
    """`[search] feature_groups`: a table {name = [start, stop]} or a list of [start, stop]
    pairs; missing, every single feature of a Vec[n] input (nothing for images)."""
    n = feature_count(input_type)
    if spec is None:
        return [(i, i + 1) for i in range(n)] if n and n > 1 else []
    pairs = list(spec.values()) if isinstance(spec, dict) else spec
    if not isinstance(pairs, list):
        raise SearchError(f"feature_groups must be a table or a list, got {spec!r}")
    groups = []
    for pair in pairs:
        ok = (isinstance(pair, list | tuple) and len(pair) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in pair))
        if not ok or not 0 <= pair[0] < pair[1] or (n is not None and pair[1] > n):
            raise SearchError(f"feature group {pair!r} is not [start, stop] within 0..{n}")
        groups.append((pair[0], pair[1]))
    return groups
