"""A*, iterative-deepening branch-and-bound and size-ordered enumeration over any graph.

The algorithms see a graph only through `Graph`: a root, children, whether a node is a
complete program, its structural cost and search-tree depth, a key (one key per program:
two derivations of the same program are one node), `evaluate`, which returns the heuristic
h of a batch of nodes (training them, in the search), and `f`, which adds the cost term. So
they can be tested on small graphs with known heuristics and no training at all.

Every algorithm keeps the best complete programs seen (by f) and stops cleanly on a
budget (time, nodes evaluated) or on Ctrl-C, which it turns into `interrupted`.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

N = TypeVar("N")


class Graph(Protocol[N]):
    def root(self) -> N: ...
    def children(self, node: N) -> list[N]: ...
    def is_complete(self, node: N) -> bool: ...
    def cost(self, node: N) -> float: ...
    def depth(self, node: N) -> int: ...
    def key(self, node: N) -> Hashable: ...
    def evaluate(self, nodes: Sequence[N]) -> Iterable[float]: ...  # h, in order
    def f(self, node: N, h: float) -> float: ...


@dataclass(frozen=True, slots=True)
class Budget:
    time_limit: float = math.inf  # seconds
    max_nodes: int | None = None  # nodes evaluated (trained)
    batch: int = 1  # nodes evaluated together at least (the worker count)
    max_batch: int = 1  # ... and at most, while a batch is short beside the time left


@dataclass(frozen=True, slots=True)
class Progress:
    elapsed: float
    expanded: int
    trained: int
    frontier: int
    best_f: float
    best_text: str | None


@dataclass(frozen=True, slots=True)
class SearchStats:
    algorithm: str
    expanded: int
    trained: int
    seconds: float
    frontier: int
    interrupted: bool
    exhausted: bool  # the graph ran out of nodes (or A* proved its top-k) within budget
    stopped_by: str  # "done", "time", "nodes" or "interrupt"


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


@dataclass
class Run(Generic[N]):
    """One search in progress: the budget bookkeeping all algorithms share, the heuristic
    of every node evaluated (by key: a program is trained once, however often it is
    reached) and the best complete and partial programs seen."""

    graph: Graph[N]
    budget: Budget
    top_k: int = 3
    on_progress: Callable[[Progress], None] | None = None
    show: Callable[[N], str] = str
    reserve: Callable[[], float] = lambda: 0.0  # seconds kept from the limit, for what follows
    node_seconds: Callable[[], float | None] = lambda: None  # mean time per node so far
    start: float = field(default_factory=time.perf_counter)
    expanded: int = 0
    evaluated: int = 0
    frontier: int = 0
    scores: dict[Hashable, float] = field(default_factory=dict)  # h by key
    complete: dict[Hashable, tuple[float, N]] = field(default_factory=dict)
    partial: dict[Hashable, tuple[float, N]] = field(default_factory=dict)
    found_at: dict[Hashable, float] = field(default_factory=dict)  # complete: first scored
    state: AStarState[N] | None = None  # A*'s frontier and merges: data, so it can be saved
    on_step: Callable[[Run[N]], None] | None = None  # called before each A* pop (checkpoints)
    identity: dict = field(default_factory=dict)  # what a checkpoint of this search must match
    # A*: a partial node's cheapest completion, scored with the node so that the search
    # holds good complete programs from its first expansion (None: no completions)
    completion: Callable[[N], N | None] | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def check_budget(self) -> None:
        if self.elapsed() >= self.budget.time_limit - self.reserve():
            raise _Stop("time")
        if self.budget.max_nodes is not None and self.evaluated >= self.budget.max_nodes:
            raise _Stop("nodes")

    def expand(self, node: N) -> list[N]:
        self.check_budget()
        self.expanded += 1
        return self.graph.children(node)

    def with_completions(self, nodes: list[N]) -> list[N]:
        """With `completion`: the complete nodes, the cheapest completion of each partial
        one, then the partial ones (complete programs are scored first, so that even a
        search cut short holds some); else `nodes` as they are."""
        if self.completion is None:
            return nodes
        complete = [n for n in nodes if self.graph.is_complete(n)]
        partial = [n for n in nodes if not self.graph.is_complete(n)]
        completions = [done for node in partial for done in [self.completion(node)]
                       if done is not None]
        return complete + completions + partial

    def evaluate(self, nodes: Sequence[N]) -> list[tuple[float, N]]:
        """f of each node, from its own cost and the h of its program. Programs seen before
        are not evaluated again; new ones go in chunks (`chunk_size`), with a budget check
        before each. A chunk holds complete programs or partial ones, not both: complete
        programs (a single affine map, often) train in a fraction of the time of
        relaxations, and the search holds them, and reports them, before the partial ones
        have trained (BasicMotions' `affine (std xs)` at 5.7 s, with the root's 20
        children, otherwise). Each h is recorded as the graph yields it, so a program is
        held as soon as it has trained, not when its whole chunk has."""
        key, complete = self.graph.key, self.graph.is_complete
        fresh = list({key(n): n for n in nodes if key(n) not in self.scores}.values())
        i = 0
        while i < len(fresh):
            self.check_budget()
            chunk = fresh[i:i + self.chunk_size()]
            kind = complete(chunk[0])
            chunk = chunk[:next((j for j, n in enumerate(chunk) if complete(n) != kind),
                                len(chunk))]
            i += len(chunk)
            if self.budget.max_nodes is not None:
                chunk = chunk[: self.budget.max_nodes - self.evaluated]
            for node, h in zip(chunk, self.graph.evaluate(chunk)):
                self.scores[key(node)] = h
                self.evaluated += 1
                self._record(node, self.graph.f(node, h))
                self.report()
        if any(key(n) not in self.scores for n in nodes):
            raise _Stop("nodes")  # the node budget ran out inside the last chunk
        scored = [(self.graph.f(n, self.scores[key(n)]), n) for n in nodes]
        for f, n in scored:
            self._record(n, f)  # a cheaper derivation of a program seen before
        return scored

    def chunk_size(self) -> int:
        """Nodes to evaluate together: up to `max_batch` (nodes of one skeleton train in
        one pass), while the chunk takes under a tenth of the time left at the mean node
        time so far, so that a time limit is not overrun by much."""
        per_node = self.node_seconds()
        if per_node is None or self.budget.max_batch <= self.budget.batch:
            return self.budget.batch
        left = self.budget.time_limit - self.reserve() - self.elapsed()
        fits = int(left / (10 * max(per_node, 1e-6)))
        return max(self.budget.batch, min(self.budget.max_batch, fits))

    def _record(self, node: N, f: float) -> None:
        if not math.isfinite(f):
            return
        k = self.graph.key(node)
        table = self.complete if self.graph.is_complete(node) else self.partial
        if k not in table or f < table[k][0]:
            table[k] = (f, node)
        if table is self.complete:
            self.found_at.setdefault(k, self.elapsed())

    def best(self) -> list[tuple[float, N]]:
        """The top-k complete programs by f (ties: first found)."""
        return sorted(self.complete.values(), key=lambda fn: fn[0])[: self.top_k]

    def best_partial(self) -> list[tuple[float, N]]:
        return sorted(self.partial.values(), key=lambda fn: fn[0])[: self.top_k]

    def report(self) -> None:
        if self.on_progress is None:
            return
        top = self.best()
        self.on_progress(Progress(self.elapsed(), self.expanded, self.evaluated, self.frontier,
                                  top[0][0] if top else math.inf,
                                  self.show(top[0][1]) if top else None))

    def stats(self, algorithm: str, reason: str) -> SearchStats:
        return SearchStats(algorithm, self.expanded, self.evaluated, self.elapsed(),
                           self.frontier, reason == "interrupt", reason == "done", reason)


class Merged(Generic[N]):
    """The derivation graph as a graph, not a tree: a program reached again is the node
    already known (merged), unless the new derivation is strictly cheaper; then it takes
    the cheaper cost, and is expanded again if it had been (its children get cheaper too;
    nothing is trained again, scores are kept by key)."""

    def __init__(self, graph: Graph[N]) -> None:
        self.graph = graph
        self.cheapest: dict[Hashable, float] = {}
        self.closed: dict[Hashable, float] = {}  # expanded programs, at the cost expanded

    def admit(self, nodes: Sequence[N]) -> list[N]:
        """The nodes that are new programs, or cheaper derivations of known ones."""
        kept = []
        for node in nodes:
            k, cost = self.graph.key(node), self.graph.cost(node)
            if self.cheapest.get(k, math.inf) <= cost:
                continue
            self.cheapest[k] = cost
            kept.append(node)
        return kept

    def close(self, node: N) -> bool:
        """Mark `node` expanded; False if it is stale: a derivation no cheaper than one
        already expanded, or than a cheaper one now known."""
        k, cost = self.graph.key(node), self.graph.cost(node)
        if cost >= self.closed.get(k, math.inf) or cost > self.cheapest.get(k, math.inf):
            return False
        self.closed[k] = cost
        return True


def run(algorithm: str, search: Run[N], frontier_capacity: int | None = None,
        anytime: bool = False, expansions: int = 1) -> SearchStats:
    """Run `algorithm` ("astar", "iddfs" or "enumerate") until done, out of budget or
    interrupted; the results are in `search.best()`."""
    algorithms = {"astar": lambda s: astar(s, frontier_capacity, anytime, expansions),
                  "iddfs": iddfs,
                  "enumerate": enumerate_by_size}
    if algorithm not in algorithms:
        raise ValueError(f"unknown search algorithm {algorithm!r}; one of {sorted(algorithms)}")
    try:
        algorithms[algorithm](search)
        reason = "done"
    except _Stop as stop:
        reason = stop.reason
    except KeyboardInterrupt:
        reason = "interrupt"
    return search.stats(algorithm, reason)


@dataclass
class AStarState(Generic[N]):
    """Everything A* knows besides `Run`: the frontier (f, partial?, cost, tie, node), the
    merged graph, the tie counter, the complete programs popped, and the node being
    expanded with what its expansion changed (so that a state saved mid-expansion can be
    taken back to before it: the node on the frontier again, its children unmerged)."""

    merged: Merged[N]
    frontier: list[tuple[float, bool, float, int, N]] = field(default_factory=list)
    tie: int = 0
    popped: int = 0
    # each node being expanded: its frontier entry, its closed cost before, and the
    # cheapest costs its children had before
    expanding: list[tuple[tuple, float | None, dict[Hashable, float | None]]] = field(
        default_factory=list)

    def before_expansion(self) -> tuple[list[tuple], dict[Hashable, float],
                                        dict[Hashable, float]]:
        """The frontier, closed and cheapest maps as they were before the expansion in
        progress, if any."""
        frontier = list(self.frontier)
        closed, cheapest = dict(self.merged.closed), dict(self.merged.cheapest)
        for entry, was_closed, was_cheapest in reversed(self.expanding):
            frontier.append(entry)
            key = self.merged.graph.key(entry[-1])
            _restore(closed, key, was_closed)
            for k, cost in was_cheapest.items():
                _restore(cheapest, k, cost)
        return frontier, closed, cheapest


def _restore(table: dict, key: Hashable, value: float | None) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value


def astar(search: Run[N], capacity: int | None = None, anytime: bool = False,
          expansions: int = 1) -> None:
    """Expand the lowest f, scoring every child of the node expanded (in chunks of the
    worker count) before anything else is popped; a complete program popped is the best
    left (h admissible). Ties go to complete programs, then to cheaper ones. Stops after
    `top_k` complete programs have been popped, or, `anytime`, goes on in f order until
    the budget ends (a neural heuristic is not truly admissible, so the proof may be
    wrong). Children are scored eagerly because a child's h is often below its parent's
    (its relaxations fit better than the parent's one): a lazy bound from the parent
    would put the first child trained ahead of all its untrained siblings. With a
    `capacity`, only that many of the best nodes stay on the frontier (NEAR's frontier
    capacity: a beam that trades optimality for depth). With `search.completion`, the
    root's and each child's cheapest completion is scored and pushed with them: a
    complete program has an exact f, so the order stays A*'s, and the search holds good
    programs (the incumbents) long before it expands its way down to them. The root is
    pushed untrained (h = 0): it is popped first whatever its h, and its children fill its
    only hole, so its relaxation would be trained for nothing."""
    g = search.graph

    def push(scored: list[tuple[float, N]]) -> None:
        for f, node in scored:
            if math.isfinite(f):
                entry = (f, not g.is_complete(node), g.cost(node), state.tie, node)
                state.tie += 1
                heapq.heappush(state.frontier, entry)
        if capacity is not None and len(state.frontier) > capacity:
            state.frontier[:] = heapq.nsmallest(capacity, state.frontier)  # still a heap
        search.frontier = len(state.frontier)

    state = search.state
    if state is None:  # a new search (else one resumed from its saved state)
        state = search.state = AStarState(Merged(g))
        root = g.root()
        first = state.merged.admit(search.with_completions([root]))
        if not g.is_complete(root):  # expanded first whatever its h: not worth training
            first.remove(root)
            push([(g.f(root, 0.0), root)])
        push(search.evaluate(first))
    while state.frontier:
        if search.on_step is not None:
            search.on_step(search)
        batch = []
        while state.frontier and len(batch) < expansions:
            entry = heapq.heappop(state.frontier)
            node = entry[-1]
            was_closed = state.merged.closed.get(g.key(node))
            if not state.merged.close(node):
                continue  # merged into a cheaper derivation of the same program
            if g.is_complete(node):
                state.popped += 1
                if state.popped >= search.top_k and not anytime:
                    for taken, closed_before, _ in batch:  # not expanded: back as they were
                        _restore(state.merged.closed, g.key(taken[-1]), closed_before)
                    return
                continue
            batch.append((entry, was_closed, {}))
        state.expanding = batch
        admitted = []
        for entry, _, was_cheapest in batch:
            children = search.with_completions(search.expand(entry[-1]))
            was_cheapest.update((g.key(c), state.merged.cheapest.get(g.key(c)))
                                for c in children if g.key(c) not in was_cheapest)
            admitted += state.merged.admit(children)
        push(search.evaluate(admitted))
        state.expanding = []


def iddfs(search: Run[N], start_depth: int = 1) -> None:
    """Depth-first, best child first, pruning nodes whose f is not below the bound (the
    k-th best complete f so far); the depth limit grows until nothing was cut off. Every
    child of a node is scored before the first is descended into, and within a pass a
    program reached again is not descended into twice. The root is trained only if it is
    a complete program: else it is expanded whatever its h."""
    g = search.graph
    root = g.root()
    if g.is_complete(root):
        search.evaluate([root])
    limit = start_depth
    while True:
        cut = _dfs(search, Merged(g), root, limit)
        if not cut:
            return
        limit += 1


def _bound(search: Run) -> float:
    top = search.best()
    return top[-1][0] if len(top) >= search.top_k else math.inf


def _dfs(search: Run[N], graph: Merged[N], node: N, limit: int) -> bool:
    """One bounded depth-first pass; True if some node was cut off by the depth limit."""
    g = search.graph
    if g.is_complete(node):
        return False
    if g.depth(node) >= limit:
        return True
    scored = sorted(search.evaluate(graph.admit(search.expand(node))), key=lambda fn: fn[0])
    cut = False
    for f, child in scored:
        search.frontier = len(scored)
        if (math.isfinite(f) and f < _bound(search) and not g.is_complete(child)
                and graph.close(child)):
            cut = _dfs(search, graph, child, limit) or cut
    return cut


def enumerate_by_size(search: Run[N]) -> None:
    """The baseline: complete programs in order of structural cost, no heuristic; only
    complete programs are trained, each program once."""
    g = search.graph
    graph = Merged(g)
    tie = itertools.count()
    frontier: list[tuple[float, int, N]] = [(g.cost(g.root()), next(tie), g.root())]
    while frontier:
        search.frontier = len(frontier)
        _, _, node = heapq.heappop(frontier)
        if not graph.close(node):
            continue
        if g.is_complete(node):
            search.evaluate([node])
            continue
        for child in graph.admit(search.expand(node)):
            heapq.heappush(frontier, (g.cost(child), next(tie), child))
