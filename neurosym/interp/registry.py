"""The registry of primitives: name, type scheme, torch implementation, and (for learnable
primitives) a module factory. Extend it from Python with one decorator:

    @primitive("double", "Float -> Float")
    def double(site, x):
        return 2 * x

An implementation receives a `Site` (its static `[params]`, its resolved type and its
module, if learnable) followed by the already evaluated arguments. The built-ins' types
live in `catalog.py` and their implementations in modules that import torch: `lookup`
(for type-checking) reads only the first, `implementation` (for running) loads both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from neurosym.lang import ast
from neurosym.lang.types import Type, uncurry

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True, slots=True)
class Site:
    """One occurrence of a primitive in a checked program."""

    params: tuple[ast.Param, ...]
    type: Type
    module: nn.Module | None = None  # noqa: F821 (torch, imported for type checkers only)


Signature = Callable[[tuple[ast.Param, ...]], Type]


@dataclass(frozen=True)
class Primitive:
    name: str
    signature: Signature
    impl: Callable[..., Any] | None  # None: declared, its implementation not loaded yet
    module: Callable[[Type, tuple[ast.Param, ...]], nn.Module] | None = None  # noqa: F821
    validate: Callable[[Type, tuple[ast.Param, ...]], str | None] | None = None
    cost: float = 1.0
    doc: str = ""
    learnable: bool = False  # it has weights (or learned values): its type must be concrete

    def type_of(self, params: tuple[ast.Param, ...]) -> Type:
        return self.signature(params)

    def arity(self, params: tuple[ast.Param, ...] = ()) -> int:
        return len(uncurry(self.type_of(params))[0])


PRIMITIVES: dict[str, Primitive] = {}


@dataclass(frozen=True, slots=True)
class _Fixed:
    """The signature of a primitive without parameters (a class, not a closure, so that
    compiled programs pickle)."""

    scheme: Type

    def __call__(self, params: tuple[ast.Param, ...]) -> Type:
        if params:
            raise ValueError("takes no [parameters]")
        return self.scheme


def _fixed(type_text: str) -> Signature:
    from neurosym.lang.parser import parse_type

    return _Fixed(parse_type(type_text))


def primitive(name: str, type_text: str | None = None, *, signature: Signature | None = None,
              module=None, validate=None, cost: float = 1.0):
    """Register `impl(site, *args)` as primitive `name` of type `type_text` (DSL syntax),
    or with a `signature(params) -> Type` for primitives that take `[params]`."""
    if (type_text is None) == (signature is None):
        raise ValueError("give exactly one of type_text or signature")

    def register(impl: Callable[..., Any]) -> Callable[..., Any]:
        sig = signature or _fixed(type_text)
        PRIMITIVES[name] = Primitive(name, sig, impl, module, validate, cost,
                                     (impl.__doc__ or "").strip(), module is not None)
        return impl

    return register


def implements(name: str, module=None):
    """Attach the torch implementation (and module factory) of built-in `name`, whose type
    `catalog.BUILTINS` declares."""

    def register(impl: Callable[..., Any]) -> Callable[..., Any]:
        _declare_builtins()
        PRIMITIVES[name] = replace(PRIMITIVES[name], impl=impl, module=module,
                                   doc=(impl.__doc__ or "").strip())
        return impl

    return register


def _declare_builtins() -> None:
    if "map" in PRIMITIVES:
        return
    from neurosym.interp.catalog import BUILTINS

    for name, (sig, validate, cost, learnable) in BUILTINS.items():
        signature = _fixed(sig) if isinstance(sig, str) else sig
        PRIMITIVES.setdefault(name, Primitive(name, signature, None, None, validate, cost,
                                              "", learnable))


def lookup(name: str) -> Primitive | None:
    """A primitive's type-level facts (its implementation may not be loaded)."""
    _declare_builtins()
    return PRIMITIVES.get(name)


def implementation(name: str) -> Primitive:
    """A primitive with its implementation loaded."""
    from neurosym.interp import algorithms, primitives, prototypes, rules, series  # noqa: F401  (the base set)
    from neurosym.relax import features  # noqa: F401  (what holes stand in as)

    return PRIMITIVES[name]
