"""Types of the DSL: frozen dataclasses, unification and substitution.

Dimensions (`Vec[n]`, `Image[h,w]`) are part of the type so that shapes are checked
before anything runs; a dimension is an int or a `DimVar` solved by unification
(`affine : Vec[n] -> Vec[m]` learns its sizes from the context it is used in).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from neurosym.lang.errors import TypeMismatch


@dataclass(frozen=True, slots=True)
class DimVar:
    name: str

    def __str__(self) -> str:
        return self.name


Dim = int | DimVar


@dataclass(frozen=True, slots=True)
class Base:
    """`Float`, `Bool` (a logit; its probability is its sigmoid) or `Int`."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Vec:
    n: Dim

    def __str__(self) -> str:
        return f"Vec[{self.n}]"


@dataclass(frozen=True, slots=True)
class Image:
    h: Dim
    w: Dim

    def __str__(self) -> str:
        return f"Image[{self.h},{self.w}]"


@dataclass(frozen=True, slots=True)
class ListT:
    elem: Type

    def __str__(self) -> str:
        return f"List[{self.elem}]"


@dataclass(frozen=True, slots=True)
class Arrow:
    arg: Type
    result: Type

    def __str__(self) -> str:
        left = f"({self.arg})" if isinstance(self.arg, Arrow) else str(self.arg)
        return f"{left} -> {self.result}"


@dataclass(frozen=True, slots=True)
class TVar:
    name: str

    def __str__(self) -> str:
        return self.name


Type = Base | Vec | Image | ListT | Arrow | TVar

FLOAT, BOOL, INT = Base("Float"), Base("Bool"), Base("Int")
BASE_TYPES = {"Float": FLOAT, "Bool": BOOL, "Int": INT}


def arrows(*types: Type) -> Type:
    """`arrows(a, b, c)` is `a -> b -> c`."""
    result = types[-1]
    for t in reversed(types[:-1]):
        result = Arrow(t, result)
    return result


def uncurry(t: Type) -> tuple[list[Type], Type]:
    """Split `a -> b -> c` into ([a, b], c)."""
    args: list[Type] = []
    while isinstance(t, Arrow):
        args.append(t.arg)
        t = t.result
    return args, t


def is_tensor(t: Type) -> bool:
    """A type whose values are one plain tensor per example (no list, no function)."""
    return isinstance(t, Base | Vec | Image)


def free_vars(t: Type | Dim) -> set[str]:
    match t:
        case TVar(name) | DimVar(name):
            return {name}
        case Vec(n):
            return free_vars(n)
        case Image(h, w):
            return free_vars(h) | free_vars(w)
        case ListT(elem):
            return free_vars(elem)
        case Arrow(a, r):
            return free_vars(a) | free_vars(r)
    return set()


class Subst:
    """A substitution from variable names to types or dimensions, grown by `unify`."""

    def __init__(self) -> None:
        self.map: dict[str, Type | Dim] = {}
        self._fresh = itertools.count()

    def fresh(self, prefix: str = "t") -> TVar:
        return TVar(f"'{prefix}{next(self._fresh)}")

    def fresh_dim(self) -> DimVar:
        return DimVar(f"'d{next(self._fresh)}")

    def instantiate(self, t: Type) -> Type:
        """Rename the variables of a type scheme apart from everything else."""
        renaming: dict[str, Type | Dim] = {}
        for name in sorted(free_vars(t)):
            renaming[name] = self.fresh() if _is_type_var(t, name) else self.fresh_dim()
        return _apply(t, renaming, deep=False)

    def resolve(self, t: Type | Dim) -> Type | Dim:
        return _apply(t, self.map)

    def unify(self, expected: Type | Dim, found: Type | Dim) -> None:
        a, b = self._walk(expected), self._walk(found)
        if a == b:
            return
        if isinstance(a, TVar | DimVar):
            self._bind(a, b, expected, found)
        elif isinstance(b, TVar | DimVar):
            self._bind(b, a, expected, found)
        elif isinstance(a, Vec) and isinstance(b, Vec):
            self._unify_parts(expected, found, (a.n, b.n))
        elif isinstance(a, Image) and isinstance(b, Image):
            self._unify_parts(expected, found, (a.h, b.h), (a.w, b.w))
        elif isinstance(a, ListT) and isinstance(b, ListT):
            self._unify_parts(expected, found, (a.elem, b.elem))
        elif isinstance(a, Arrow) and isinstance(b, Arrow):
            self._unify_parts(expected, found, (a.arg, b.arg), (a.result, b.result))
        else:
            raise TypeMismatch(self.resolve(expected), self.resolve(found))

    def _unify_parts(self, expected, found, *pairs) -> None:
        try:
            for x, y in pairs:
                self.unify(x, y)
        except TypeMismatch as err:
            raise TypeMismatch(self.resolve(expected), self.resolve(found)) from err

    def _walk(self, t: Type | Dim) -> Type | Dim:
        while isinstance(t, TVar | DimVar) and t.name in self.map:
            t = self.map[t.name]
        return t

    def _bind(self, var: TVar | DimVar, value, expected, found) -> None:
        if isinstance(var, DimVar) != (isinstance(value, int | DimVar)):
            raise TypeMismatch(self.resolve(expected), self.resolve(found))
        if var.name in free_vars(self.resolve(value)):
            raise TypeMismatch(self.resolve(expected), self.resolve(found), "infinite type")
        self.map[var.name] = value


def _is_type_var(t: Type | Dim, name: str) -> bool:
    match t:
        case TVar(n):
            return n == name
        case ListT(elem):
            return _is_type_var(elem, name)
        case Arrow(a, r):
            return _is_type_var(a, name) or _is_type_var(r, name)
    return False


def _apply(t, mapping: dict, deep: bool = True):
    """Substitute variables; `deep` also substitutes inside what they map to (a solved
    substitution), while a renaming must not (its targets may reuse source names)."""
    match t:
        case TVar(name) | DimVar(name):
            if name not in mapping:
                return t
            return _apply(mapping[name], mapping) if deep else mapping[name]
        case Vec(n):
            return Vec(_apply(n, mapping, deep))
        case Image(h, w):
            return Image(_apply(h, mapping, deep), _apply(w, mapping, deep))
        case ListT(elem):
            return ListT(_apply(elem, mapping, deep))
        case Arrow(a, r):
            return Arrow(_apply(a, mapping, deep), _apply(r, mapping, deep))
    return t


def pretty(*types: Type) -> list[str]:
    """Show types with the checker's internal variables renamed a, b, c... (n, m... for dims)."""
    names: dict[str, str] = {}
    letters, dims = iter("abcdefghijkpqrsuvwxyz"), iter("nmlkjuvw")

    def rename(t):
        match t:
            case TVar(name) if name.startswith("'"):
                return TVar(names.setdefault(name, next(letters, name)))
            case DimVar(name) if name.startswith("'"):
                return DimVar(names.setdefault(name, next(dims, name)))
            case Vec(n):
                return Vec(rename(n))
            case Image(h, w):
                return Image(rename(h), rename(w))
            case ListT(elem):
                return ListT(rename(elem))
            case Arrow(a, r):
                return Arrow(rename(a), rename(r))
        return t

    return [str(rename(t)) for t in types]


def encodable(t: Type) -> bool:
    """Data a neural network can read: a tensor, or a list of (lists of) tensors."""
    return not isinstance(t, Arrow) and (
        is_tensor(t) or (isinstance(t, ListT) and encodable(t.elem)))
