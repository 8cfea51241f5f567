"""A fold's step with the work that does not depend on the accumulator taken out of the loop.

`fold (\\acc x -> add (affine acc) (affine x)) init xs` interprets its step at every element
of every series, one position after another; `affine x` reads the element alone, so it can
be computed for all elements at once, as `map` does, before the loop, which then only looks
up its value at each position. Such a part is a largest application in the step's body that
reads the element, but neither the accumulator nor a name bound inside the body, holds no
hole (a relaxation reads every name in its scope, the accumulator too) and gives a tensor
(not a function or a list). The parts are evaluated at B*L rows, the elements laid out as
`map` lays them, so what a part computes for an element is what the loop would have
computed: every primitive reads its rows independently. On BasicMotions, such folds were
half of a search's node-training time.
"""

from __future__ import annotations

from dataclasses import dataclass

from neurosym.lang import ast
from neurosym.lang.checker import Checked
from neurosym.lang.types import Arrow, ListT


@dataclass(frozen=True, slots=True)
class HoistedFold:
    """`fold (\\acc x -> body) init xs` as the interpreter runs it: `parts` (name, sub-term
    of the original body) computed for every element first, then `body`, where each part
    stands as a variable of its name, at each position."""

    acc: str
    element: str
    body: ast.Term
    parts: tuple[tuple[str, ast.Term], ...]


def hoisted_fold(term: ast.App, checked: Checked) -> HoistedFold | None:
    """The hoisted form of `term` if it is a full application of the `fold` primitive to a
    two-parameter lambda with at least one part to take out, else None."""
    prim = checked.primitives.get(id(term.fn))
    if prim is None or prim.name != "fold" or len(term.args) != 3:
        return None
    step = term.args[0]
    if not (isinstance(step, ast.Lam) and isinstance(step.body, ast.Lam)):
        return None
    acc, element, body = step.param, step.body.param, step.body.body
    if acc == element:
        return None
    parts: list[tuple[str, ast.Term]] = []

    def hoistable(t: ast.Term, bound: frozenset[str]) -> bool:
        if not isinstance(t, ast.App) or ast.holes(t):
            return False
        names = ast.free_names(t)
        found = checked.type_of(t)
        return (element in names and not names & bound
                and not isinstance(found, Arrow | ListT))

    def rewrite(t: ast.Term, bound: frozenset[str]) -> ast.Term:
        if hoistable(t, bound):
            name = f"%{len(parts)}"  # not a DSL name: captures nothing
            parts.append((name, t))
            return ast.Var(name)
        match t:
            case ast.Lam(param, inner):
                new = rewrite(inner, bound | {param})
                return t if new is inner else ast.Lam(param, new)
            case ast.Let(name, value, inner):
                v, b = rewrite(value, bound), rewrite(inner, bound | {name})
                return t if (v is value and b is inner) else ast.Let(name, v, b)
            case ast.App(fn, args):
                f, a = rewrite(fn, bound), tuple(rewrite(x, bound) for x in args)
                same = f is fn and all(x is y for x, y in zip(a, args))
                return t if same else ast.App(f, a)
        return t

    new_body = rewrite(body, frozenset({acc}))
    return HoistedFold(acc, element, new_body, tuple(parts)) if parts else None
