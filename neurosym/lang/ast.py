"""Program trees: frozen dataclasses. Positions (`span`) do not take part in equality, so a
program equals its re-parse whatever the layout of the text."""

from __future__ import annotations

from dataclasses import dataclass, field

from neurosym.lang.errors import Span
from neurosym.lang.types import Type

_SPAN = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Slice:
    """A primitive's static parameter `i:j` (as in `select[0:3]`, or `interval[0.25:0.5]`:
    fractions of a series' length)."""

    start: int | float
    stop: int | float


Param = int | float | Slice


@dataclass(frozen=True, slots=True)
class Var:
    """A name: a bound variable, a definition, or a primitive (with `[params]`)."""

    name: str
    params: tuple[Param, ...] = ()
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Num:
    value: float
    is_int: bool = False
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Hole:
    """`??` or `?? : T`: a part left to a neural network (or to the search)."""

    type: Type | None = None
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class LibRef:
    """`lib.NAME` or `lib.NAME@VERSION`: a function from the persistent library."""

    name: str
    version: int | None = None
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Lam:
    param: str
    body: Term
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Let:
    name: str
    value: Term
    body: Term
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class App:
    """`fn a1 a2 ...` (curried: same meaning as nested applications)."""

    fn: Term
    args: tuple[Term, ...]
    span: Span | None = _SPAN


Term = Var | Num | Hole | LibRef | Lam | Let | App


@dataclass(frozen=True, slots=True)
class Def:
    name: str
    type: Type
    body: Term
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Program:
    defs: tuple[Def, ...]

    def get(self, name: str) -> Def:
        for d in self.defs:
            if d.name == name:
                return d
        raise KeyError(name)

    @property
    def main(self) -> Def:
        """The entry point: the def named `main`, else the last one."""
        for d in self.defs:
            if d.name == "main":
                return d
        return self.defs[-1]


def children(t: Term) -> tuple[Term, ...]:
    match t:
        case Lam(_, body):
            return (body,)
        case Let(_, value, body):
            return (value, body)
        case App(fn, args):
            return (fn, *args)
    return ()


def subterms(t: Term):
    """Pre-order walk of a term."""
    yield t
    for c in children(t):
        yield from subterms(c)


def walk(t: Term):
    """Every sub-term of `t`, `t` first (iteratively: deep programs do not recurse)."""
    stack = [t]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def size(t: Term) -> int:
    return sum(1 for _ in subterms(t))


def holes(t: Term) -> int:
    return sum(1 for s in subterms(t) if isinstance(s, Hole))


def free_names(t: Term) -> set[str]:
    """Names used free in `t` (variables and primitives alike: callers only ask whether a
    bound name would capture one of them)."""
    match t:
        case Var(name):
            return {name}
        case Lam(param, body):
            return free_names(body) - {param}
        case Let(name, value, body):
            return free_names(value) | (free_names(body) - {name})
    return set().union(*(free_names(c) for c in children(t)))
