"""The derivation graph: nodes are partial programs, edges fill the leftmost hole.

Filling always the leftmost hole removes the orders of expansion, but not every second
derivation: a production that plugs a hole's arguments can build, in two steps, what
another builds in one (`add (affine (mean xs)) (?? (std xs))` comes from two parents), so
the graph is a DAG, and the algorithms merge a program reached twice. A child is kept
only if the whole new program type-checks against the task type, every hole has a type a
relaxation can stand in for, and no hole sits deeper than `max_depth` productions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from neurosym.lang import ast
from neurosym.lang.checker import Checked, LibraryTypes, check_term
from neurosym.lang.errors import NeurosymError, SearchError, TypeMismatch
from neurosym.lang.printer import show
from neurosym.lang.types import Arrow, ListT, Type, is_tensor, uncurry
from neurosym.relax.networks import encodable
from neurosym.search.productions import Production, ProductionSet
from neurosym.search.terms import fresh, hole_paths, hole_site, name_params, plug, replace


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """A partial program. `hole_depths[i]` is the production depth the i-th hole (in
    pre-order) would be filled at; `depth` the deepest production used so far."""

    term: ast.Term
    text: str
    cost: float
    steps: int
    depth: int
    hole_depths: tuple[int, ...]
    checked: Checked = field(repr=False)
    parent: Node | None = field(default=None, repr=False)

    @property
    def complete(self) -> bool:
        return not self.hole_depths

    def hole_types(self) -> list[Type]:
        return [self.checked.type_of(h) for _, h in hole_paths(self.term)]


def relaxable(t: Type) -> bool:
    """Whether `Relaxation` can build a network for a hole of type `t` (no scope)."""
    args, result = uncurry(t)
    if not all(encodable(a) for a in args):
        return False
    if isinstance(result, ListT):
        return is_tensor(result.elem) and any(isinstance(a, ListT) for a in args)
    return is_tensor(result) and bool(args)


class ProgramGraph:
    """Expansion of partial programs of type `input -> output` by a production set."""

    def __init__(self, input_type: Type, output_type: Type, productions: ProductionSet,
                 max_depth: int = 6, max_size: int | None = None,
                 library: LibraryTypes | None = None) -> None:
        self.type = Arrow(input_type, output_type)
        self.productions = productions
        self.max_depth, self.max_size, self.library = max_depth, max_size, library
        self._closable: dict[tuple[Type, int], bool] = {}

    def check(self, term: ast.Term) -> Checked:
        return check_term(term, self.type, library=self.library)

    def root(self) -> Node:
        term = ast.Hole()
        if not relaxable(self.type):
            raise SearchError(f"no neural relaxation for programs of type {self.type}")
        return Node(term, show(term), 0.0, 0, 0, (1,), self.check(term))

    def children(self, node: Node) -> list[Node]:
        return list(self._children(node, self.productions.productions))

    def _children(self, node: Node, productions: Sequence[Production]) -> Iterator[Node]:
        """The children by `productions`, in their order, one at a time."""
        site = hole_site(node.term)
        if site is None:
            return
        path, at, hole = site
        hole_type = node.checked.type_of(hole)
        args = at.args if isinstance(at, ast.App) else ()
        for prod in productions:
            if prod.fits(hole_type):
                child = self._child(node, path, hole, args, prod)
                if child is not None:
                    yield child

    def _child(self, node: Node, path, hole: ast.Hole, args, prod: Production) -> Node | None:
        level = node.hole_depths[0]
        if prod.holes and level + 1 > self.max_depth:
            return None
        new = plug(prod.term, args) if args else self._named(prod.term, node, hole)
        term = fresh(replace(node.term, path, new))
        if self.max_size is not None and ast.size(term) > self.max_size:
            return None
        try:
            checked = self.check(term)
        except (NeurosymError, TypeMismatch):
            return None
        depths = (level + 1,) * prod.holes + node.hole_depths[1:]
        child = Node(term, show(term), node.cost + prod.cost, node.steps + 1,
                     max(node.depth, level), depths, checked, node)
        if len(hole_paths(term)) != len(depths):  # plugging may not copy or drop holes
            raise SearchError(f"production {prod.text!r} changed the holes of {child.text}")
        types = child.hole_types()
        if not all(relaxable(t) for t in types):
            return None
        levels = self.max_depth - level
        if not all(self.closable(t, levels) for t in types[:prod.holes]):
            return None  # a dead end: no complete program below it within max_depth
        return child

    def _named(self, template: ast.Term, node: Node, hole: ast.Hole) -> ast.Term:
        """A production put where a bare hole stands: eta-reduced, its parameters named by
        what they receive, never shadowing the hole's scope."""
        arg_types = uncurry(node.checked.type_of(hole))[0]
        taken = {name for name, _ in node.checked.scopes.get(id(hole), ())}
        return name_params(plug(template, ()), [isinstance(t, ListT) for t in arg_types],
                           taken)

    def closable(self, hole_type: Type, levels: int) -> bool:
        """Whether some program of `hole_type` is at most `levels` productions deep (memo)."""
        key = (hole_type, levels)
        if key not in self._closable:
            self._closable[key] = False  # a production that recurses on its own type
            self._closable[key] = levels > 0 and any(
                all(self.closable(t, levels - 1) for t in types)
                for types in self._filled(hole_type))
        return self._closable[key]

    def _filled(self, hole_type: Type):
        """For each production that fits `hole_type`, the types of its holes there."""
        for prod in self.productions.productions:
            if not prod.fits(hole_type):
                continue
            try:
                checked = check_term(prod.term, hole_type, library=self.library)
            except (NeurosymError, TypeMismatch):
                continue
            types = [checked.type_of(h) for _, h in hole_paths(prod.term)]
            if all(relaxable(t) for t in types):
                yield types

    def first_complete(self, node: Node, limit: int = 2000) -> Node | None:
        """A complete program below `node`, found depth-first with leaves tried first and
        nothing trained: a fallback when the budget ends before the search finds enough
        programs, and the proof that the production set can build any program at all."""
        budget = [limit]
        leaves_first = sorted(self.productions.productions, key=lambda p: (p.holes, p.cost))

        def dfs(n: Node) -> Node | None:
            if n.complete:
                return n
            if budget[0] <= 0:
                return None
            budget[0] -= 1
            return next((found for c in self._children(n, leaves_first) for found in [dfs(c)]
                         if found), None)

        return dfs(node)
