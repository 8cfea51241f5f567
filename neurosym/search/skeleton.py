"""A search node as a function of its parameter-free parts, and the cache of their values.

The largest sub-terms of a node that read only the input and hold nothing learnable
(`mean xs`, `window[5] std xs`, `xs` itself) are evaluated over the data once, cached for
the search, and the node becomes a *skeleton* over them: `\\xs -> ?? (mean xs)` is
`\\$0 -> ?? $0` applied to the means. Skeletons that are equal (with equal feature shapes)
train together (`train.Stack`).

Before the split, a parameter-free part of a mapped function's argument is moved out of
the loop (map fission): `window[5] (\\ys -> ite (affine (features ys)) ..) xs` is
`map (\\z -> ite (affine z) ..) (window[5] features xs)`, so the features of every window
are computed once per search, not at every step of every node that reads them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from neurosym.interp.prototypes import seed_prototypes
from neurosym.interp.values import Value
from neurosym.lang import ast
from neurosym.lang.checker import Checked, check_term
from neurosym.lang.printer import show
from neurosym.lang.types import Arrow, Type, is_tensor
from neurosym.search.terms import rebuild
from neurosym.tasks.spec import Task
from neurosym.train import torch_threads


@dataclass(frozen=True)
class Skeleton:
    """A node as a function of its parameter-free parts: `term` takes one argument per
    feature, in order (each a function of the input, as AST and as text)."""

    term: ast.Term
    type: Arrow
    features: tuple[ast.Lam, ...]
    feature_types: tuple[Type, ...]
    key: str  # equal for skeletons that can train together (with equal feature shapes)


def skeleton(node: ast.Term, task_type: Arrow, library=None) -> Skeleton:
    """Split `node` into a skeleton and the largest sub-terms that read only the input
    and have nothing to learn (the input itself when nothing else qualifies)."""
    if not isinstance(node, ast.Lam):  # eta-expand, so that the input has a name
        node = ast.Lam("$x", ast.App(node, (ast.Var("$x"),)))
    node, checked = fission(node, task_type, library)
    found: dict[str, tuple[str, ast.Term]] = {}  # text -> ($i, sub-term)
    body = _replace(node.body, node.param, checked, found, {})
    types = [checked.type_of(t) for _, t in found.values()]
    if not found:  # the skeleton still takes the input, for its batch size
        found[node.param] = ("$0", ast.Var(node.param))
        types = [task_type.arg]
    subs = [t for _, t in found.values()]
    term: ast.Term = body
    for name, _ in reversed(found.values()):
        term = ast.Lam(name, term)
    result: Type = task_type.result
    for t in reversed(types):
        result = Arrow(t, result)
    return Skeleton(term, result, tuple(ast.Lam(node.param, t) for t in subs), tuple(types),
                    show(term) + " : " + " ".join(map(str, types)))


def _replace(t: ast.Term, input_name: str | None, checked: Checked,
             found: dict[str, tuple[str, ast.Term]], memo: dict[int, tuple[frozenset, bool]]
             ) -> ast.Term:
    """`t` with every largest parameter-free sub-term of the input replaced by `$i`.
    `input_name` is None below a binder that shadows it."""
    free, learns = _facts(t, checked, memo)
    if input_name is not None and free == {input_name} and not learns \
            and not isinstance(checked.type_of(t), Arrow):
        text = show(t)
        if text not in found:
            found[text] = (f"${len(found)}", t)
        return ast.Var(found[text][0])
    match t:
        case ast.Lam(param, body):
            inner = None if param == input_name else input_name
            return ast.Lam(param, _replace(body, inner, checked, found, memo), t.span)
        case ast.Let(name, value, body):
            inner = None if name == input_name else input_name
            return ast.Let(name, _replace(value, input_name, checked, found, memo),
                           _replace(body, inner, checked, found, memo), t.span)
        case ast.App(fn, args):
            return ast.App(_replace(fn, input_name, checked, found, memo),
                           tuple(_replace(a, input_name, checked, found, memo) for a in args),
                           t.span)
    return t


def _facts(t: ast.Term, checked: Checked, memo: dict) -> tuple[frozenset, bool]:
    """The free variables of `t` and whether anything in it learns."""
    if id(t) in memo:
        return memo[id(t)]
    match t:
        case ast.Var(name):
            prim = checked.primitives.get(id(t))
            facts = (frozenset(), prim.learnable) if prim is not None \
                else (frozenset({name}), False)
        case ast.Hole() | ast.LibRef():
            facts = (frozenset(), True)
        case ast.Lam(param, body):
            free, learns = _facts(body, checked, memo)
            facts = (free - {param}, learns)
        case ast.Let(name, value, body):
            (fv, lv), (fb, lb) = _facts(value, checked, memo), _facts(body, checked, memo)
            facts = (fv | (fb - {name}), lv or lb)
        case ast.App(fn, args):
            parts = [_facts(c, checked, memo) for c in (fn, *args)]
            facts = (frozenset().union(*(f for f, _ in parts)), any(x for _, x in parts))
        case _:
            facts = (frozenset(), False)
    memo[id(t)] = facts
    return facts


class FeatureCache:
    """The values of parameter-free parts on the training and validation inputs, by
    text, for one search (the oldest forgotten past `size` entries)."""

    def __init__(self, task: Task, library=None, size: int = 256) -> None:
        self.task, self.library, self.size = task, library, size
        self.values: dict[str, tuple[Value, Value]] = {}

    def get(self, feature: ast.Lam, t: Type) -> tuple[Value, Value]:
        text = show(feature)
        if text not in self.values:
            if len(self.values) >= self.size:
                del self.values[next(iter(self.values))]
            self.values[text] = self._compute(feature, t)
        return self.values[text]

    def _compute(self, feature: ast.Lam, t: Type) -> tuple[Value, Value]:
        x_train, x_val = self.task.train.x, self.task.val.x
        if isinstance(feature.body, ast.Var) and feature.body.name == feature.param:
            return x_train, x_val
        from neurosym.search.scoring import build_typed

        model = build_typed(Arrow(self.task.input_type, t), feature, 0, self.library,
                            self.task.device)
        with torch_threads(1):
            seed_prototypes(model, [x_train], self.task.train.y)  # as a program's fit does
            model.eval()
            with torch.no_grad():
                return model(x_train), model(x_val)


# ---- map fission ------------------------------------------------------------------------------

_LOOPS = {"map": 2, "window": 2, "fold": 3}  # loops whose function reads one element: arity


def fission(node: ast.Term, task_type: Arrow, library=None) -> tuple[ast.Term, Checked]:
    """`node` with the parameter-free part of each loop's element moved out of the loop,
    where the element is read through that one part (checked again after each move)."""
    checked = check_term(node, task_type, library=library)
    while (moved := _move_one(node, checked, {})) is not None:
        node = moved
        checked = check_term(node, task_type, library=library)
    return node, checked


def _move_one(t: ast.Term, checked: Checked, memo: dict) -> ast.Term | None:
    """`t` with one loop's part moved out (outermost first), or None if there is none."""
    if isinstance(t, ast.App) and isinstance(t.fn, ast.Var) \
            and _LOOPS.get(t.fn.name) == len(t.args):
        moved = _moved(t, checked, memo)
        if moved is not None:
            return moved
    kids = ast.children(t)
    for i, kid in enumerate(kids):
        new = _move_one(kid, checked, memo)
        if new is not None:
            return rebuild(t, [*kids[:i], new, *kids[i + 1:]])
    return None


def _moved(loop: ast.App, checked: Checked, memo: dict) -> ast.Term | None:
    """`map (\\x -> B[s x]) xs` as `map (\\z -> B[z]) (map (\\x -> s x) xs)`; `window[k]` and
    `fold`'s element likewise. None unless the element is read only through one part."""
    fn, xs = loop.args[0], loop.args[-1]
    outer = None
    if loop.fn.name == "fold":
        if not isinstance(fn, ast.Lam):
            return None
        outer, fn = fn, fn.body
    if not isinstance(fn, ast.Lam):
        return None
    parts: dict[str, ast.Term] = {}
    _parts(fn.body, fn.param, checked, memo, parts)
    if len(parts) != 1:
        return None
    (text, part), = parts.items()
    if part is fn.body:  # the loop computes the part alone: nothing to move
        return None
    taken = {n for s in ast.walk(loop) for n in _names(s)}
    z = next(f"$e{i}" for i in itertools.count() if f"$e{i}" not in taken)
    body = _swap(fn.body, fn.param, text, z)
    if fn.param in ast.free_names(body):
        return None
    each = ast.Lam(fn.param, part)
    if outer is not None:  # fold f init xs
        return ast.App(loop.fn, (ast.Lam(outer.param, ast.Lam(z, body)), loop.args[1],
                                 ast.App(ast.Var("map"), (each, xs))))
    inner = ast.App(ast.Var("map") if loop.fn.name == "map" else loop.fn, (each, xs))
    return ast.App(ast.Var("map"), (ast.Lam(z, body), inner))


def _parts(t: ast.Term, param: str, checked: Checked, memo: dict,
           found: dict[str, ast.Term]) -> None:
    """The largest tensor-valued parts of `t` that read `param` alone and learn nothing."""
    free, learns = _facts(t, checked, memo)
    if free == {param} and not learns and is_tensor(checked.type_of(t)) \
            and not isinstance(t, ast.Var):
        found.setdefault(show(t), t)
        return
    match t:
        case ast.Lam(p, body) if p != param:
            _parts(body, param, checked, memo, found)
        case ast.Let(name, value, body):
            _parts(value, param, checked, memo, found)
            if name != param:
                _parts(body, param, checked, memo, found)
        case ast.App(fn, args):
            for c in (fn, *args):
                _parts(c, param, checked, memo, found)


def _swap(t: ast.Term, param: str, text: str, name: str) -> ast.Term:
    """`t` with every occurrence of the part `text` (of `param`, not shadowed) as `name`."""
    if ast.free_names(t) & {param} and show(t) == text:
        return ast.Var(name)
    match t:
        case ast.Lam(p, _) if p == param:
            return t
        case ast.Let(n, value, body):
            return ast.Let(n, _swap(value, param, text, name),
                           body if n == param else _swap(body, param, text, name))
    kids = ast.children(t)
    return rebuild(t, [_swap(k, param, text, name) for k in kids]) if kids else t


def _names(t: ast.Term) -> tuple[str, ...]:
    match t:
        case ast.Var(name) | ast.Lam(name) | ast.Let(name):
            return (name,)
    return ()
