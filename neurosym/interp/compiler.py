"""Checked AST -> `torch.nn.Module`.

Every learnable part of a program gets its own module, built once from its resolved type:
`affine` sites, holes (neural relaxations), referenced definitions (shared wherever they are
used) and library functions. `forward` then interprets the tree over whole batches; a
fold's step is interpreted at each position, less what reads only the element, which is
computed for every element before the loop (`hoist`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

from neurosym.interp.hoist import HoistedFold, hoisted_fold
from neurosym.interp.primitives import fold_positions
from neurosym.interp.registry import Primitive, Site, implementation
from neurosym.interp.values import Seq, Value, align, batch_size, device_of
from neurosym.lang import ast
from neurosym.lang.checker import Checked
from neurosym.lang.types import Type, uncurry
from neurosym.relax.networks import Relaxation, relaxation_inputs


class LibraryModules(Protocol):
    def module(self, name: str, version: int | None) -> tuple[nn.Module, Type]: ...


def curried(fn: Callable[..., Value], arity: int) -> Value:
    """Turn `fn(a1, ..., an)` into a function value taking its arguments one at a time."""
    return fn() if arity == 0 else _Curried(fn, arity, ())


class _Curried:
    """`fn` with some of its arguments. A class, not a closure that refers to itself: such
    a closure is a reference cycle, and the interpreter made tens of thousands per node
    (a `fold` calls its step function at every element), which only the cyclic garbage
    collector frees (measured: 7% of a BasicMotions search's node training time)."""

    __slots__ = ("fn", "arity", "collected")

    def __init__(self, fn: Callable[..., Value], arity: int, collected: tuple) -> None:
        self.fn, self.arity, self.collected = fn, arity, collected

    def __call__(self, x: Value) -> Value:
        args = (*self.collected, x)
        return self.fn(*args) if len(args) == self.arity else _Curried(self.fn, self.arity, args)


def part_key(path: tuple[int, ...]) -> str:
    """The name in `CompiledTerm.parts` of the module of the sub-term at `path` (child
    indices from the root): search warm starts and library extraction find modules by it."""
    return "n" + "_".join(map(str, path))


class CompiledTerm(nn.Module):
    """A closed, checked term. Calling it with a batch applies the term's function to it."""

    origin: str | None = None  # "NAME@VERSION" of the library entry it was loaded from
    # a task's program (`as_task_program`): a list of numbers comes out as its values
    # [batch, length], as the task's targets are, not as a list
    task_program: bool = False

    def __init__(self, term: ast.Term, checked: Checked, defs: dict[str, CompiledTerm],
                 library: LibraryModules | None = None, hidden: int = 32) -> None:
        super().__init__()
        self.term, self.checked, self.defs = term, checked, defs
        self.parts = nn.ModuleDict()
        self._keys: dict[int, str] = {}  # id of a sub-term -> the key of its module
        self._sites: dict[int, Site] = {}
        # id of a primitive's use -> its implementation with the site bound, and its arity
        self._calls: dict[int, tuple[Callable[..., Value], int]] = {}
        self._library_types: dict[int, Type] = {}
        self._device = torch.device("cpu")  # where constants are made: the input's device
        self._folds: dict[int, HoistedFold] = {}  # id of a fold application -> its plan
        self._build(term, (), library, hidden)

    @property
    def type(self) -> Type:
        return self.checked.type_of(self.term)

    def learned_term(self, library: Callable[[ast.LibRef, nn.Module], ast.Term] | None = None
                     ) -> ast.Term:
        """The term with what its parts learned written in (a bare `interval` becomes
        `interval[0.31:0.47]`): the same function, in a form a reader sees. A part says
        what it learned with `learned_params()`. `library`, if given, rewrites each
        `lib.NAME` reference, given its module."""

        def walk(t: ast.Term) -> ast.Term:
            if library is not None and isinstance(t, ast.LibRef):
                return library(t, self.parts[self._keys[id(t)]])
            site = self._sites.get(id(t))
            if site is not None and hasattr(site.module, "learned_params"):
                return dataclasses.replace(t, params=site.module.learned_params())
            match t:
                case ast.App(fn, args):
                    return dataclasses.replace(t, fn=walk(fn), args=tuple(map(walk, args)))
                case ast.Lam(_, body):
                    return dataclasses.replace(t, body=walk(body))
                case ast.Let(_, value, body):
                    return dataclasses.replace(t, value=walk(value), body=walk(body))
            return t

        return walk(self.term)

    def _build(self, term: ast.Term, path: tuple[int, ...], library, hidden: int) -> None:
        key = part_key(path)
        t = self.checked.type_of(term)
        prim: Primitive | None = self.checked.primitives.get(id(term))
        if prim is not None:
            prim = implementation(prim.name)
            module = prim.module(t, term.params) if prim.module else None
            if module is not None:
                self.parts[key] = module
                self._keys[id(term)] = key
            site = self._sites[id(term)] = Site(term.params, t, module)
            self._calls[id(term)] = (functools.partial(prim.impl, site), len(uncurry(t)[0]))
        elif isinstance(term, ast.Hole):
            scope = list(self.checked.scopes[id(term)])
            self.parts[key] = Relaxation([ty for _, ty in scope if _encodable(ty)], t, hidden)
            self._keys[id(term)] = key
        elif isinstance(term, ast.LibRef):
            if library is None:
                raise ValueError("a library reference needs a library")
            module, lib_type = library.module(term.name, term.version)
            self.parts[key] = module
            self._keys[id(term)] = key
            self._library_types[id(term)] = lib_type
        elif isinstance(term, ast.Var) and term.name in self.defs:
            self.parts[key] = self.defs[term.name]  # shared: same parameters at every use
            self._keys[id(term)] = key
        elif isinstance(term, ast.App) and (plan := hoisted_fold(term, self.checked)):
            self._folds[id(term)] = plan
        for i, child in enumerate(ast.children(term)):
            self._build(child, (*path, i), library, hidden)

    def forward(self, *args: Value) -> Value:
        rows = batch_size(args[0]) if args else 1
        if args:
            self._device = device_of(args[0], self._device)
        value = self.evaluate(self.term, {}, rows)
        for a in args:
            value = value(a)
        return value.data if self.task_program and isinstance(value, Seq) else value

    def value(self, rows: int) -> Value:
        return self.evaluate(self.term, {}, rows)

    # -- interpretation --------------------------------------------------------------------
    def evaluate(self, term: ast.Term, env: dict[str, Value], rows: int) -> Value:
        match term:
            case ast.Num(value):
                return torch.full((rows,), float(value), device=self._device)
            case ast.Var(name):
                if name in env:
                    return align(env[name], rows)
                if id(term) in self._calls:
                    return self._primitive(term)
                definition = self.defs[name]
                definition._device = self._device
                return definition.value(rows)
            case ast.Hole():
                return self._hole(term, env, rows)
            case ast.LibRef():
                module = self.parts[self._keys[id(term)]]
                return curried(module, len(uncurry(self._library_types[id(term)])[0]))
            case ast.Lam(param, body):
                return lambda x: self.evaluate(body, {**env, param: x}, batch_size(x) or rows)
            case ast.Let(name, value, body):
                return self.evaluate(body, {**env, name: self.evaluate(value, env, rows)}, rows)
            case ast.App(fn, args):
                plan = self._folds.get(id(term))
                if plan is not None:
                    return self._fold(plan, term, env, rows)
                f = self.evaluate(fn, env, rows)
                for a in args:
                    f = f(self.evaluate(a, env, rows))
                return f
        raise TypeError(f"cannot evaluate {term!r}")

    def _fold(self, plan: HoistedFold, term: ast.App, env: dict[str, Value], rows: int
              ) -> torch.Tensor:
        """A fold whose step's element-only parts are computed for all elements first."""
        init, xs = (self.evaluate(a, env, rows) for a in term.args[1:])
        b, n = xs.data.shape[:2]
        inner = {**env, plan.element: xs.flat()}
        parts = {name: self.evaluate(part, inner, b * n).unflatten(0, (b, n))
                 for name, part in plan.parts}
        return fold_positions(lambda acc, t: self.evaluate(plan.body, {
            **env, plan.acc: acc, plan.element: xs.data[:, t],
            **{name: v[:, t] for name, v in parts.items()}}, b), init, xs)

    def _primitive(self, term: ast.Var) -> Value:
        return curried(*self._calls[id(term)])

    def _hole(self, term: ast.Hole, env: dict[str, Value], rows: int) -> Value:
        net: Relaxation = self.parts[self._keys[id(term)]]
        context = relaxation_inputs(self.checked.scopes[id(term)], env)

        def run(*args: Value) -> Value:
            n = (batch_size(args[0]) if args else None) or rows
            return net(context + list(args), n)

        return curried(run, net.arity)


def _encodable(t: Type) -> bool:
    from neurosym.relax.networks import encodable

    return encodable(t)


def compile_program(checked: Checked, library: LibraryModules | None = None,
                    hidden: int = 32) -> dict[str, CompiledTerm]:
    """Compile every definition of a checked program, in order (later ones may use earlier)."""
    assert checked.program is not None
    defs: dict[str, CompiledTerm] = {}
    for d in checked.program.defs:
        defs[d.name] = CompiledTerm(d.body, checked, dict(defs), library, hidden)
    return defs


def as_task_program(model: CompiledTerm) -> CompiledTerm:
    """`model` as a task's whole program, whose list output is one target per element
    (`CompiledTerm.task_program`); a part or a library function keeps its lists."""
    model.task_program = True
    return model


def compile_term(term: ast.Term, checked: Checked, library: LibraryModules | None = None,
                 defs: dict[str, CompiledTerm] | None = None, hidden: int = 32) -> CompiledTerm:
    return CompiledTerm(term, checked, defs or {}, library, hidden)
