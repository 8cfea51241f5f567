"""Term surgery for the search: find the leftmost hole, plug a production into it.

Plugging beta-reduces the production's lambdas against the hole's arguments, so a hole
`?? (mean xs)` filled with `\\x -> add (?? x) (?? x)` reads `add (?? (mean xs)) (?? (mean
xs))`, the program a person would write; a production put where a bare hole stands is
eta-reduced (`\\x -> affine x` becomes `affine`). Substitution is capture-avoiding.
"""

from __future__ import annotations

import dataclasses
import itertools

from neurosym.lang import ast
from neurosym.lang.ast import free_names

Path = tuple[int, ...]


def rebuild(t: ast.Term, kids: list[ast.Term]) -> ast.Term:
    """`t` with new children (in `ast.children` order), kept canonical: an App whose
    function became an App is flattened, one whose arguments all went away is its fn."""
    match t:
        case ast.Lam(param):
            return ast.Lam(param, kids[0])
        case ast.Let(name):
            return ast.Let(name, kids[0], kids[1])
        case ast.App():
            return apply(kids[0], tuple(kids[1:]))
    return t


def fresh(t: ast.Term) -> ast.Term:
    """A copy made of new objects. The checker and compiler key types and modules by node
    identity, so one object may not stand at two places of a program: a template used
    twice, or an argument copied by beta-reduction, would share one `affine` of one size."""
    kids = ast.children(t)
    if kids:
        return rebuild(t, [fresh(c) for c in kids])
    return dataclasses.replace(t)


def apply(fn: ast.Term, args: tuple[ast.Term, ...]) -> ast.Term:
    if not args:
        return fn
    if isinstance(fn, ast.App):
        return ast.App(fn.fn, (*fn.args, *args))
    return ast.App(fn, args)


def substitute(t: ast.Term, name: str, value: ast.Term) -> ast.Term:
    """`t[name := value]`, renaming binders that would capture a free name of `value`."""
    match t:
        case ast.Var(n, params) if n == name and not params:
            return value
        case ast.Lam(param, body):
            if param == name:
                return t
            param, body = _avoid(param, body, value)
            return ast.Lam(param, substitute(body, name, value))
        case ast.Let(n, val, body):
            new_val = substitute(val, name, value)
            if n == name:
                return ast.Let(n, new_val, body)
            n, body = _avoid(n, body, value)
            return ast.Let(n, new_val, substitute(body, name, value))
    kids = ast.children(t)
    return rebuild(t, [substitute(c, name, value) for c in kids]) if kids else t


def _avoid(binder: str, body: ast.Term, value: ast.Term) -> tuple[str, ast.Term]:
    taken = free_names(value)
    if binder not in taken:
        return binder, body
    taken |= free_names(body)
    fresh = next(f"{binder}{i}" for i in itertools.count(1) if f"{binder}{i}" not in taken)
    return fresh, substitute(body, binder, ast.Var(fresh))


def plug(template: ast.Term, args: tuple[ast.Term, ...]) -> ast.Term:
    """The production `template` applied to the hole's arguments, beta-reduced; with no
    arguments (a bare hole), eta-reduced instead."""
    while args and isinstance(template, ast.Lam):
        template = substitute(template.body, template.param, args[0])
        args = args[1:]
    return apply(template, args) if args else eta(template)


def eta(t: ast.Term) -> ast.Term:
    """`\\x -> f a x` is `f a` when x is not free in `f a`."""
    if isinstance(t, ast.Lam):
        body = eta(t.body)
        if (isinstance(body, ast.App) and body.args[-1] == ast.Var(t.param)
                and t.param not in free_names(apply(body.fn, body.args[:-1]))):
            return apply(body.fn, body.args[:-1])
        return ast.Lam(t.param, body)
    return t


_NAMES = {True: ("xs", "ys", "zs", "ws"), False: ("x", "y", "z", "v")}


def name_params(t: ast.Term, is_list: list[bool], taken: set[str]) -> ast.Term:
    """Rename the leading lambda parameters of a production put in a bare position by the
    kind of value they receive (`xs` for a list, `x` otherwise), never shadowing a name
    in `taken`: `\\x -> add (?? x) (?? x)` over a list reads `\\xs -> add ...`."""
    if not is_list or not isinstance(t, ast.Lam):
        return t
    busy = taken | free_names(t)
    name = next((n for n in _NAMES[is_list[0]] if n not in busy), t.param)
    if t.param in ("x", "xs") and name != t.param:
        t = ast.Lam(name, substitute(t.body, t.param, ast.Var(name)))
    body = name_params(t.body, is_list[1:], taken | {t.param})
    return ast.Lam(t.param, body)


def hole_site(t: ast.Term, path: Path = ()) -> tuple[Path, ast.Term, ast.Hole] | None:
    """The leftmost hole in pre-order: (path of its site, the site, the hole). The site is
    `?? a1 .. an` when the hole is applied, else the hole itself."""
    if isinstance(t, ast.Hole):
        return path, t, t
    if isinstance(t, ast.App) and isinstance(t.fn, ast.Hole):
        return path, t, t.fn
    for i, child in enumerate(ast.children(t)):
        found = hole_site(child, (*path, i))
        if found:
            return found
    return None


def replace(t: ast.Term, path: Path, new: ast.Term) -> ast.Term:
    if not path:
        return new
    kids = list(ast.children(t))
    kids[path[0]] = replace(kids[path[0]], path[1:], new)
    return rebuild(t, kids)


def hole_paths(t: ast.Term, path: Path = ()) -> list[tuple[Path, ast.Hole]]:
    """Every hole with its path, in pre-order (the order the search fills them)."""
    if isinstance(t, ast.Hole):
        return [(path, t)]
    out: list[tuple[Path, ast.Hole]] = []
    for i, child in enumerate(ast.children(t)):
        out += hole_paths(child, (*path, i))
    return out


def holes_in_arguments(t: ast.Term) -> bool:
    """True if a hole is applied to an argument that holds a hole: plugging would copy it."""
    for sub in ast.subterms(t):
        if isinstance(sub, ast.App) and isinstance(sub.fn, ast.Hole):
            if any(ast.holes(a) for a in sub.args):
                return True
    return False
