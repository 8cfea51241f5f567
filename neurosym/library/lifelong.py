"""Lifelong learning, HOUDINI-style: solve a sequence of tasks in order. Each search sees
the functions that earlier tasks left in the library (as `lib.NAME` leaves), and each
solution's neural parts are stored for the tasks after it.

A sequence is a TOML file in `tasks/sequences/`:

    name = "count_digits"
    description = "recognise a 3, then count 3s reusing the recogniser"
    [[step]]
    task = "digit_recognize_3"
    save_as = "is_three"          # the whole program, as lib.is_three
    time_limit = 60               # any search setting (max_nodes, seed, top_k, ...)
    [[step]]
    task = "digit_count_3"
    save_as = "count_threes"
    data_fraction = 0.1           # share of the training split
    parts = true                  # also keep its function-typed parts (or {TYPE = NAME})
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurosym.evaluate import Evaluation, train_config
from neurosym.interp.compiler import CompiledTerm, compile_term, part_key
from neurosym.lang import ast
from neurosym.lang.checker import check_term
from neurosym.lang.errors import LibraryError, NeurosymError, SearchError, TaskError
from neurosym.lang.parser import parse_term, parse_type
from neurosym.lang.printer import show
from neurosym.lang.types import Arrow, ListT, Type, free_vars
from neurosym.library.entry import Entry, Provenance, check_name, parse_ref
from neurosym.library.store import Library
from neurosym.resources import read_toml, tasks_dir
from neurosym.search.productions import (
    Production,
    ProductionSet,
    library_productions,
    make_production,
)
from neurosym.search.terms import hole_site, plug
from neurosym.search.terms import replace as replace_at
from neurosym.settings import SETTINGS, check_table, did_you_mean
from neurosym.tasks.spec import Task

MAX_EPOCH_SCALE = 20.0
_STEP_KEYS = ("task", "save_as", "data_fraction", "productions", "parts")  # and search settings


@dataclass(frozen=True, slots=True)
class SearchLibrary(Library):
    """A library as the search sees it: `names()` is what `with_library` turns into leaf
    productions (every function, or only those in `only`). Picklable, for search workers."""

    only: tuple[str, ...] | None = None

    def names(self) -> list[str]:
        have = sorted({e.name for e in self.entries()})
        return [n for n in have if self.only is None or n in self.only]


@dataclass(frozen=True, slots=True)
class Step:
    """One task of a sequence, the name its solution is kept under, and its budget.
    `parts`: False (whole program only), True (also each function-typed part, named
    `SAVE_AS_partI`) or (type, name) pairs naming the parts to keep by their type.
    `search`: search settings by name (`settings.SearchConfig`), over the task's own."""

    task: str
    save_as: str
    data_fraction: float = 1.0
    productions: str | None = None
    parts: bool | tuple[tuple[str, str], ...] = False
    search: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskSequence:
    name: str
    description: str
    steps: tuple[Step, ...]
    path: Path | None = None


@dataclass(frozen=True, slots=True, eq=False)
class StepResult:
    """What one step found, what it reused and what it stored."""

    step: Step
    program: str  # DSL text; `lib.` references as the search wrote them
    reused: tuple[str, ...]  # NAME@VERSION of the library functions the program uses
    evaluation: Evaluation
    train_size: int
    saved: tuple[Entry, ...]
    seconds: float
    found: Any = field(repr=False, default=None)  # the FoundProgram, model included
    data_hash: str = ""  # of the training examples (`reverse.data_hash`), for a replay
    reverse: tuple = ()  # `reverse.ReverseResult` of each function it improved for others


# ---- sequence files ---------------------------------------------------------------------------

def sequences_dir() -> Path:
    return tasks_dir() / "sequences"


def list_sequences() -> list[tuple[str, str]]:
    """(name, description) of every bundled sequence."""
    return [(p.stem, load_sequence(p).description)
            for p in sorted(sequences_dir().glob("*.toml"))]


def load_sequence(name_or_path: str | Path) -> TaskSequence:
    """A bundled sequence by name, or a sequence file by path, validated."""
    path = _find_sequence(str(name_or_path))
    spec = read_toml(path, TaskError, "sequence")
    steps = spec.get("step")
    if not isinstance(steps, list) or not steps:
        raise TaskError(f"{path}: a sequence needs at least one [[step]] table")
    parsed = tuple(_step(s, f"{path} step {i}") for i, s in enumerate(steps, 1))
    return TaskSequence(str(spec.get("name", path.stem)), str(spec.get("description", "")),
                        parsed, path)


def _find_sequence(text: str) -> Path:
    path = Path(text)
    if path.suffix == ".toml" or "/" in text or path.is_file():
        if not path.is_file():
            raise TaskError(f"sequence file {text} not found")
        return path
    bundled = sequences_dir() / f"{text}.toml"
    if not bundled.is_file():
        known = ", ".join(p.stem for p in sorted(sequences_dir().glob("*.toml"))) or "(none)"
        raise TaskError(f"unknown task sequence {text!r}; bundled sequences: {known}")
    return bundled


def _step(raw: Any, where: str) -> Step:
    if not isinstance(raw, dict) or not isinstance(raw.get("task"), str):
        raise TaskError(f"{where}: every [[step]] needs task = \"NAME\"")
    search = {k: v for k, v in raw.items() if k not in _STEP_KEYS}
    known = [*_STEP_KEYS, *SETTINGS]
    for key in search:
        if key not in SETTINGS:
            raise TaskError(f"{where}: unknown key {key!r}{did_you_mean(key, known)} "
                            f"(known: {', '.join(known)})")
    check_table(search, SETTINGS, where)
    save_as = raw.get("save_as") or default_name(raw["task"])
    fraction, productions = raw.get("data_fraction", 1.0), raw.get("productions")
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) \
            or not 0.0 < fraction <= 1.0:
        raise TaskError(f"{where}: data_fraction must be a number in (0, 1], got {fraction!r}")
    if productions is not None and not isinstance(productions, str):
        raise TaskError(f"{where}: productions must be a name or a path, got {productions!r}")
    try:
        return Step(raw["task"], check_name(str(save_as)), float(fraction), productions,
                    _parts(raw.get("parts", False)), search)
    except ValueError as err:
        raise TaskError(f"{where}: {err}") from None
    except NeurosymError as err:  # a bad name or part type
        raise TaskError(f"{where}: {err.message}") from None


def _parts(raw: Any) -> bool | tuple[tuple[str, str], ...]:
    if isinstance(raw, bool):
        return raw
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ValueError("parts must be true, false or a table {\"TYPE\" = \"NAME\"}")
    return tuple((str(parse_type(t)), check_name(n)) for t, n in raw.items())


def default_name(task: str) -> str:
    """A library name from a task name or path: `tasks/My-Task.toml` -> `my_task`."""
    stem = Path(task).stem if task.endswith(".toml") else task
    name = re.sub(r"[^a-z0-9_]", "_", stem.lower())
    return name if re.match(r"[a-z_]", name) else f"_{name}"


# ---- running a sequence -----------------------------------------------------------------------

def run_step(step: Step, library: SearchLibrary, time_limit: float | None = None,
             on_progress: Callable | None = None,
             earlier: tuple[StepResult, ...] | None = None) -> StepResult:
    """Search the step's task with the library's functions as leaves, then store the best
    program (and, if asked, its parts) under the step's name. With `earlier` (the results
    of this run's steps before it), every library function the program reuses is then
    improved by reverse transfer over the earlier steps that use it (`reverse`)."""
    from neurosym.library.reverse import data_hash
    from neurosym.search import synthesize
    from neurosym.tasks.spec import load_task

    start = time.perf_counter()
    task = load_task(step.task, data_fraction=step.data_fraction)
    limit = {} if time_limit is None else {"time_limit": time_limit}
    result = synthesize(task, productions=search_productions(task, library, step.productions),
                        library=library, on_progress=on_progress,
                        **{"final_epochs": final_epochs(task), **step.search, **limit})
    best = result.best
    if best is None:
        raise TaskError(f"step {step.task}: the search found no program")
    saved = save_found(library, best, task, step.save_as, result.config,
                       parts=step.parts)
    reused = tuple(library.get(n, v).ref for n, v in library_refs(best.text))
    improved = () if earlier is None else _reverse(library, reused, task, best.model,
                                                   earlier, result.config.seed)
    return StepResult(step, best.text, reused, best.evaluation, len(task.train), tuple(saved),
                      time.perf_counter() - start, best, data_hash(task), improved)


def _reverse(library: Library, reused: tuple[str, ...], task: Task, model: CompiledTerm,
             earlier: tuple[StepResult, ...], seed: int) -> tuple:
    """Reverse transfer of each reused function over the earlier steps that made it or
    use it (their programs as stored; their data reloaded by task, fraction and hash)."""
    from neurosym.library.reverse import Replayed, reverse_transfer
    from neurosym.tasks.spec import load_task

    out = []
    for ref in reused:
        name, version = parse_ref(ref)
        replays = []
        for r in earlier:
            made = any(e.ref == ref for e in r.saved)
            if not made and ref not in r.reused:
                continue
            own = None if made else library.module(r.saved[0].name, r.saved[0].version,
                                                   finetune=False)[0]
            replays.append(Replayed(load_task(r.step.task, data_fraction=r.step.data_fraction),
                                    own, r.data_hash))
        if replays:
            config = train_config(task, epochs=final_epochs(task), seed=seed)
            out.append(reverse_transfer(library, name, version, (task, model), replays, config))
    return tuple(out)


def final_epochs(task: Task, epochs: int | None = None) -> int:
    """Final training epochs for a task loaded at a data fraction: a smaller training
    split gets proportionally more (up to MAX_EPOCH_SCALE times) so that it sees about as
    many gradient steps as the full split, and a small fraction measures less data, not
    less training (early stopping still ends it). `epochs`: the full-data budget."""
    fraction = float(task.options.get("data_fraction", 1.0))
    return math.ceil((epochs or train_config(task).epochs) * min(1.0 / fraction,
                                                                 MAX_EPOCH_SCALE))


def run_sequence(sequence: TaskSequence, library: Library, time_limit: float | None = None,
                 finetune: bool | None = None, reverse: bool = False) -> list[StepResult]:
    """Solve the sequence's tasks in order, growing `library`. `time_limit` overrides
    every step's search budget; `finetune` lets later tasks train library functions;
    `reverse` improves the functions a step reuses for the earlier steps too."""
    lib = SearchLibrary(library.path, library.finetune if finetune is None else finetune)
    results: list[StepResult] = []
    for step in sequence.steps:
        results.append(run_step(step, lib, time_limit,
                                earlier=tuple(results) if reverse else None))
    return results


# ---- library functions in the search ----------------------------------------------------------

def reuse_productions(pset: ProductionSet, library: SearchLibrary, rounds: int = 2,
                      cost: float = 1.0, reuse_cost: float = 0.0) -> ProductionSet:
    """`pset` plus every library function as a leaf (of `cost`, as `with_library` adds
    it) and inside the complete programs that one-hole templates make of it, `rounds`
    deep: `\\xs -> count lib.is_three xs`, then `\\xs -> sum (map (\\x -> softargmax
    (lib.digit x)) xs)`; a score read through a learned part, `\\xs -> sum (map (\\x -> ??
    (lib.digit_score x)) xs)`, is one such template too. A completion costs its templates
    plus `reuse_cost` (none by default): reusing a stored function is cheaper than
    growing a new network, so, as A* breaks ties towards complete programs, each
    expansion tries the library's completions first. Frozen, they need no training:
    trying them is nearly free."""
    one_hole = [p for p in pset.productions if p.holes == 1]
    added = library_productions(library, cost)  # leaves, and reading a score (one hole)
    layer = [Production(p.text, p.term, reuse_cost, p.scheme) if p.holes == 0 else p
             for p in added]
    extra = []
    for _ in range(rounds):
        layer = [m for t in one_hole for leaf in layer
                 for m in [_fill(t, leaf, library)] if m is not None]
        extra += layer
    return ProductionSet(pset.name, tuple(dict.fromkeys((*pset.productions, *added, *extra))))


def _fill(template: Production, leaf: Production, library: SearchLibrary) -> Production | None:
    path, site, _ = hole_site(template.term)
    args = site.args if isinstance(site, ast.App) else ()
    term = replace_at(template.term, path, plug(leaf.term, args))
    try:
        made = make_production(show(term), template.cost + leaf.cost, library)
    except SearchError:
        return None  # the function does not fit this template's hole
    return None if _nested_list(made.scheme) else made  # lists of lists: nothing uses them


def _nested_list(t: Type) -> bool:
    if isinstance(t, ListT):
        return isinstance(t.elem, ListT) or _nested_list(t.elem)
    return isinstance(t, Arrow) and (_nested_list(t.arg) or _nested_list(t.result))


def search_productions(task: Task, library: SearchLibrary | None,
                       productions: str | None = None) -> ProductionSet:
    """The production set a task's search uses, with the library's functions added."""
    from neurosym.search import production_set

    base = production_set(task, productions, None)
    return base if library is None else reuse_productions(base, library)


# ---- keeping a solution -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True, eq=False)
class Part:
    """A reusable piece of a trained program: a closed, function-typed term and a module
    compiled from exactly `source` (so the store can rebuild it) holding the trained
    weights. The whole program is the part at path ()."""

    path: tuple[int, ...]
    source: str
    type: Type
    module: CompiledTerm


def library_refs(program: str | ast.Term) -> list[tuple[str, int | None]]:
    """The library functions a program uses, as (name, version or None), in order."""
    term = parse_term(program) if isinstance(program, str) else program
    refs = [(t.name, t.version) for t in ast.subterms(term) if isinstance(t, ast.LibRef)]
    return list(dict.fromkeys(refs))


def reusable_parts(model: CompiledTerm, library: Library | None = None,
                   hidden: int = 32) -> list[Part]:
    """The whole program, then every closed function-typed sub-term that learned something
    in this program (it holds trainable parameters: a frozen `lib.f` alone does not), in
    pre-order. `\\xs -> count nn xs` gives itself and `nn : Image[8,8] -> Bool`."""
    found: list[tuple[tuple[int, ...], ast.Term]] = []

    def walk(t: ast.Term, path: tuple[int, ...], bound: frozenset[str]) -> None:
        for i, child in enumerate(ast.children(t)):
            inner = bound
            if isinstance(t, ast.Lam) or (isinstance(t, ast.Let) and i == 1):
                inner = bound | {t.param if isinstance(t, ast.Lam) else t.name}
            here = (*path, i)
            typ = model.checked.type_of(child)
            if (isinstance(typ, Arrow) and not free_vars(typ)
                    and not ast.free_names(child) & inner and _learns(model, here)):
                found.append((here, child))
            walk(child, here, inner)

    walk(model.term, (), frozenset())
    return [_extract(model, path, t, library, hidden) for path, t in [((), model.term), *found]]


def _learns(model: CompiledTerm, path: tuple[int, ...]) -> bool:
    key = part_key(path)
    return any(p.requires_grad for k, m in model.parts.items()
               if k == key or k.startswith(key + "_") for p in m.parameters())


def _extract(model: CompiledTerm, path: tuple[int, ...], term: ast.Term,
             library: Library | None, hidden: int) -> Part:
    """Compile the part's source afresh and copy the trained weights in, module by module
    (the part's sub-path Q is the program's path + Q)."""
    source, typ = show(term), model.checked.type_of(term)
    fresh_term = parse_term(source)
    fresh = compile_term(fresh_term, check_term(fresh_term, typ, library=library), library,
                         hidden=hidden)
    for key, module in fresh.parts.items():
        own = part_key((*path, *(int(i) for i in key[1:].split("_") if i)))
        if own not in model.parts:
            raise LibraryError(f"cannot take the part {source} out of its program: the "
                               f"module {key} has no counterpart {own}")
        module.load_state_dict(model.parts[own].state_dict())
    return Part(path, source, typ, fresh)


def save_found(library: Library, found: Any, task: Task, name: str, config: Any,
               parts: bool | tuple[tuple[str, str], ...] = False) -> list[Entry]:
    """Store a found program (a search `FoundProgram`) as `name`, with provenance; with
    `parts`, also its function-typed parts (see `Step`). `config` is the `SearchConfig`
    of the search that trained it (its seed and network width). Returns the new entries."""
    seed, hidden = config.seed, config.hidden
    pieces = reusable_parts(found.model, library, hidden)
    named = [(pieces[0], name), *_named(pieces[1:], name, parts)]
    entries = []
    for part, part_name in named:
        prov = _provenance(found.evaluation, task, seed, library, part.source)
        entries.append(library.save(part_name, part.source, part.type, part.module, prov,
                                    hidden))
    return entries


def _named(subs: list[Part], name: str, parts: bool | tuple[tuple[str, str], ...]
           ) -> list[tuple[Part, str]]:
    if parts is True:
        return [(p, f"{name}_part{i}") for i, p in enumerate(subs, 1)]
    if not parts:
        return []
    chosen = []
    for type_text, part_name in parts:
        match = next((p for p in subs if str(p.type) == type_text), None)
        if match is not None:
            chosen.append((match, part_name))
    return chosen


def _provenance(ev: Evaluation, task: Task, seed: int, library: Library,
                source: str) -> Provenance:
    m = ev.metric
    metrics = {f"test_{m}": ev.test, f"val_{m}": ev.val, f"train_{m}": ev.train,
               f"baseline_{m}": ev.baseline}
    parents = tuple(library.get(n, v).ref for n, v in library_refs(source))
    return Provenance(task=task.name, seed=seed, metrics=metrics, data_size=len(task.train),
                      parents=parents)
