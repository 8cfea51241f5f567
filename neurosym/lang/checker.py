"""Type checking by unification (Hindley-Milner style, monomorphic lambdas and lets,
polymorphic primitives). The result records the resolved type of every node and, for each
hole, the variables in scope: the interpreter needs both to build modules of the right size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from neurosym.lang import ast
from neurosym.lang.errors import DSLTypeError, NeurosymError, TypeMismatch
from neurosym.lang.printer import show
from neurosym.lang.types import FLOAT, INT, Arrow, Subst, TVar, Type, free_vars, pretty

Scope = tuple[tuple[str, Type], ...]


class LibraryTypes(Protocol):
    def signature(self, name: str, version: int | None) -> Type: ...


@dataclass
class Checked:
    """A checked program or term, with the resolved type of every node."""

    types: dict[int, Type] = field(default_factory=dict)
    scopes: dict[int, Scope] = field(default_factory=dict)
    def_types: dict[str, Type] = field(default_factory=dict)
    primitives: dict[int, object] = field(default_factory=dict)  # id(Var) -> Primitive
    program: ast.Program | None = None
    roots: list[ast.Term] = field(default_factory=list)  # keeps checked nodes alive (ids)

    def type_of(self, term: ast.Term) -> Type:
        return self.types[id(term)]


def _short(term: ast.Term, limit: int = 60) -> str:
    text = show(term)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Checker:
    def __init__(self, library: LibraryTypes | None = None) -> None:
        self.library = library
        self.subst = Subst()
        self.out = Checked()
        self._numeric: list[tuple[ast.Num, Type]] = []

    # -- entry points ----------------------------------------------------------------------
    def check_program(self, program: ast.Program) -> Checked:
        self.out.program = program
        for d in program.defs:
            if d.name in self.out.def_types:
                raise DSLTypeError(f"'{d.name}' is defined twice", d.span)
            if free_vars(d.type):
                raise DSLTypeError(
                    f"the type of '{d.name}' must be concrete, but {d.type} has variables "
                    f"({', '.join(sorted(free_vars(d.type)))})", d.span)
            self._check_against(d.body, d.type, {}, f"the body of '{d.name}'")
            self.out.def_types[d.name] = d.type
        self._finish([d.body for d in program.defs])
        return self.out

    def check_term(self, term: ast.Term, expected: Type, defs: dict[str, Type] | None = None,
                   ) -> Checked:
        self.out.def_types = dict(defs or {})
        self._check_against(term, self.subst.instantiate(expected), {}, "the program")
        self._finish([term])
        return self.out

    def _check_against(self, term: ast.Term, expected: Type, env: dict, what: str) -> None:
        """Check mode: push the expected type into lambdas and lets, so a mismatch is
        reported where it happens rather than at the enclosing definition."""
        want = self.subst.resolve(expected)
        if isinstance(term, ast.Lam) and isinstance(want, Arrow):
            self.out.types[id(term)] = want
            self._check_against(term.body, want.result, {**env, term.param: want.arg}, what)
            return
        if isinstance(term, ast.Let):
            self.out.types[id(term)] = want
            value = self.infer(term.value, env)
            self._check_against(term.body, want, {**env, term.name: value}, what)
            return
        found = self.infer(term, env)
        try:
            self.subst.unify(expected, found)
        except TypeMismatch as err:
            got, exp = pretty(self.subst.resolve(found), self.subst.resolve(expected))
            note = f" ({err.note})" if err.note else ""
            raise DSLTypeError(f"{what}: expected {exp}, found {got}{note}",
                               term.span) from None

    # -- inference -------------------------------------------------------------------------
    def infer(self, term: ast.Term, env: dict[str, Type]) -> Type:
        t = self._infer(term, env)
        self.out.types[id(term)] = t
        return t

    def _infer(self, term: ast.Term, env: dict[str, Type]) -> Type:
        match term:
            case ast.Num(_, is_int):
                if not is_int:
                    return FLOAT
                t = self.subst.fresh("num")
                self._numeric.append((term, t))
                return t
            case ast.Hole(declared):
                self.out.scopes[id(term)] = tuple(env.items())
                return self.subst.instantiate(declared) if declared else self.subst.fresh("hole")
            case ast.LibRef(name, version):
                return self._library(term, name, version)
            case ast.Var():
                return self._var(term, env)
            case ast.Lam(param, body):
                arg = self.subst.fresh()
                return Arrow(arg, self.infer(body, {**env, param: arg}))
            case ast.Let(name, value, body):
                return self.infer(body, {**env, name: self.infer(value, env)})
            case ast.App(fn, args):
                return self._app(term, fn, args, env)
        raise DSLTypeError(f"not a term: {term!r}")

    def _var(self, term: ast.Var, env: dict[str, Type]) -> Type:
        if term.name in env or term.name in self.out.def_types:
            if term.params:
                raise DSLTypeError(f"'{term.name}' is a variable; only primitives take [...]",
                                   term.span)
            return env.get(term.name) or self.out.def_types[term.name]
        from neurosym.interp.registry import lookup

        prim = lookup(term.name)
        if prim is None:
            raise DSLTypeError(f"unknown name '{term.name}' (not a variable, definition or "
                               "primitive; `neurosym primitives` lists them)", term.span)
        try:
            scheme = prim.type_of(term.params)
        except ValueError as err:
            raise DSLTypeError(f"'{term.name}' {err}", term.span) from None
        self.out.primitives[id(term)] = prim
        return self.subst.instantiate(scheme)

    def _library(self, term: ast.LibRef, name: str, version: int | None) -> Type:
        if self.library is None:
            raise DSLTypeError(f"lib.{name}: no library is open", term.span)
        try:
            return self.library.signature(name, version)
        except KeyError as err:
            raise DSLTypeError(f"lib.{name}: {err.args[0] if err.args else 'not found'}",
                               term.span) from None
        except NeurosymError as err:  # a damaged library: say so where it is used
            raise DSLTypeError(f"lib.{name}: {err.message}", term.span) from None

    def _app(self, term: ast.App, fn: ast.Term, args, env) -> Type:
        fn_type = self.infer(fn, env)
        prim = self.out.primitives.get(id(fn))
        if prim is not None and len(args) > prim.arity(fn.params):
            raise DSLTypeError(f"'{_short(fn)}' takes {prim.arity(fn.params)} argument(s), "
                               f"but is given {len(args)}", term.span)
        for i, arg in enumerate(args, 1):
            current = self.subst.resolve(fn_type)
            if not isinstance(current, Arrow):
                if not isinstance(current, TVar):
                    raise DSLTypeError(
                        f"'{_short(fn)}' is applied to {len(args)} argument(s), but its type "
                        f"{pretty(current)[0]} takes {i - 1}", term.span)
                fn_type = Arrow(self.subst.fresh(), self.subst.fresh())
                self.subst.unify(current, fn_type)
                current = fn_type
            self._check_against(arg, current.arg, env, f"argument {i} of '{_short(fn)}'")
            fn_type = current.result
        return fn_type

    # -- after inference ---------------------------------------------------------------------
    def _finish(self, roots: list[ast.Term]) -> None:
        for num, t in self._numeric:
            resolved = self.subst.resolve(t)
            if resolved in (FLOAT, INT):
                continue
            if isinstance(resolved, TVar):  # nothing decided it: an integer
                self.subst.unify(t, INT)
                continue
            hint = " (a number is not a function)" if isinstance(resolved, Arrow) else ""
            raise DSLTypeError(f"the number {show(num)} is used as {pretty(resolved)[0]}{hint}",
                               num.span)
        self.out.types = {k: self.subst.resolve(v) for k, v in self.out.types.items()}
        self.out.scopes = {k: tuple((n, self.subst.resolve(t)) for n, t in scope)
                           for k, scope in self.out.scopes.items()}
        self.out.roots = roots
        for root in roots:
            self._validate(root)

    def _validate(self, root: ast.Term) -> None:
        """Concrete types where modules are built; each primitive's own checks."""
        for node in ast.subterms(root):
            t = self.out.types[id(node)]
            if isinstance(node, ast.Hole) and free_vars(t):
                raise DSLTypeError(f"cannot infer a concrete type for this hole (got "
                                   f"{pretty(t)[0]}); "
                                   "annotate it, e.g. (?? : Vec[4] -> Float)", node.span)
            prim = self.out.primitives.get(id(node))
            if prim is None:
                continue
            if prim.learnable and free_vars(t):
                raise DSLTypeError(f"cannot infer the sizes of '{_short(node)}' (got "
                                   f"{pretty(t)[0]})",
                                   node.span)
            problem = prim.validate(t, node.params) if prim.validate else None
            if problem:
                raise DSLTypeError(f"'{_short(node)}' {problem}", node.span)


def check_program(program: ast.Program, library: LibraryTypes | None = None) -> Checked:
    return Checker(library).check_program(program)


def check_term(term: ast.Term, expected: Type, defs: dict[str, Type] | None = None,
               library: LibraryTypes | None = None) -> Checked:
    return Checker(library).check_term(term, expected, defs)
