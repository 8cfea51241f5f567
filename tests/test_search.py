"""NEAR search: term surgery, production sets, expansion, the algorithms on a toy graph with
a known heuristic, and whole searches on a tiny synthetic task (budgets, seeds, Ctrl-C)."""

from __future__ import annotations

import dataclasses
import math
import time
from functools import partial

import pytest
import torch

from neurosym.interp.values import Seq
from neurosym.lang import ast
from neurosym.lang.checker import check_term
from neurosym.lang.errors import SearchError
from neurosym.lang.parser import parse_term, parse_type
from neurosym.lang.printer import show
from neurosym.lang.types import Arrow
from neurosym.search import ProgramGraph, load_productions, synthesize
from neurosym.search.algorithms import Budget, Run, run
from neurosym.search.productions import ProductionSet, feature_groups, make_production
from neurosym.search.rescale import rescaled_loss
from neurosym.search.scoring import build
from neurosym.search.synthesis import COMPLETION_STEPS, production_set, resolve_config
from neurosym.search.terms import plug, substitute
from neurosym.tasks.spec import Split, Task, load_task

# ---------------------------------------------------------------- a tiny synthetic task


def _split(n: int, gen: torch.Generator) -> Split:
    data = torch.randn(n, 5, 3, generator=gen)
    y = (data[:, :, 0].mean(1) > 0).long()
    return Split(Seq(data, torch.ones(n, 5)), y)


def tiny_task(**search) -> Task:
    """Is feature 0 positive on average? 5-step sequences of 3 features, 2 classes."""
    gen = torch.Generator().manual_seed(0)
    return Task(name="tiny", description="", input_type=parse_type("List[Vec[3]]"),
                output_type=parse_type("Vec[2]"), loss="cross_entropy", metric="accuracy",
                train=_split(48, gen), val=_split(24, gen), test=_split(24, gen), classes=None,
                seed=0, class_weights=None,
                options={"epochs": 5, "lr": 0.05, "batch_size": 16, "search": search})


# ---------------------------------------------------------------- terms


def test_plug_beta_reduces_against_the_hole_arguments():
    template = parse_term(r"\x -> add (?? x) (?? x)")
    out = plug(template, (parse_term("mean xs"),))
    assert show(out) == "add (?? (mean xs)) (?? (mean xs))"


def test_plug_eta_reduces_in_a_bare_position():
    assert plug(parse_term(r"\x -> affine x"), ()) == ast.Var("affine")
    kept = plug(parse_term(r"\x -> affine (select[0:1] x)"), ())
    assert isinstance(kept, ast.Lam)


def test_substitution_avoids_capture():
    body = parse_term(r"\y -> add x y")
    out = substitute(body, "x", ast.Var("y"))
    assert isinstance(out, ast.Lam) and out.param != "y"
    assert show(out) == rf"\{out.param} -> add y {out.param}"


# ---------------------------------------------------------------- productions


@pytest.mark.parametrize("loss", ["bce", "cross_entropy", "mse"])
def test_rescaled_loss_sees_through_timid_outputs(loss):
    """Right but timid outputs (a briefly trained linear program) score near zero once
    rescaled, never above the plain loss; random outputs stay bad."""
    torch.manual_seed(0)
    if loss == "bce":
        y = (torch.rand(300) > 0.5).float()
        timid = 1.5 * (2 * y - 1) + 0.3
    elif loss == "cross_entropy":
        y = torch.randint(0, 3, (300,))
        timid = 1.5 * torch.nn.functional.one_hot(y, 3).float() - 0.2
    else:
        y = torch.randn(300, 2)
        timid = 0.1 * y + 5.0
    plain = {"bce": lambda o: torch.nn.functional.binary_cross_entropy_with_logits(o, y),
             "cross_entropy": lambda o: torch.nn.functional.cross_entropy(o, y),
             "mse": lambda o: torch.nn.functional.mse_loss(o, y)}[loss]
    assert rescaled_loss(loss, timid, y) < 0.05 < 0.1 < float(plain(timid))
    noise = torch.randn_like(timid)
    assert 0.3 < rescaled_loss(loss, noise, y) <= float(plain(noise)) + 1e-9


def _rescaled_by_lbfgs(loss: str, out, y, weights, max_scale: float = 4.0) -> float:
    """The same minimum found by a general optimizer, a = max_scale * sigmoid(t)."""
    out = out.double()
    t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(out.shape[1:], dtype=torch.float64, requires_grad=True)
    if loss == "bce":
        f = lambda z: torch.nn.functional.binary_cross_entropy_with_logits(  # noqa: E731
            z, y.double(), pos_weight=weights[1] / weights[0])
    else:
        f = lambda z: torch.nn.functional.cross_entropy(z, y, weight=weights)  # noqa: E731
    opt = torch.optim.LBFGS([t, b], max_iter=500, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        v = f(max_scale * torch.sigmoid(t) * out + b)
        v.backward()
        return v

    opt.step(closure)
    with torch.no_grad():
        return min(float(f(out)), float(f(max_scale * torch.sigmoid(t) * out + b)))


@pytest.mark.parametrize("loss", ["bce", "cross_entropy"])
def test_rescaled_loss_reaches_the_optimum(loss):
    """Newton's minimum is the one a general optimizer finds, with class weights, for
    outputs too timid, about right and far too confident (the scale then held at its
    bound)."""
    gen = torch.Generator().manual_seed(1)
    for trial in range(30):
        n, c = 10 + 7 * trial, 2 if loss == "bce" else 2 + trial % 4
        y = torch.randint(0, c, (n,), generator=gen)
        weights = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
        signal = torch.nn.functional.one_hot(y, c).double() if loss == "cross_entropy" \
            else (2.0 * y - 1)
        noise = torch.randn(signal.shape, generator=gen, dtype=torch.float64)
        out = (trial % 3) * signal + [0.1, 1.0, 6.0][trial % 3] * noise
        target = y.double() if loss == "bce" else y
        ours = rescaled_loss(loss, out, target, weights)
        assert ours <= _rescaled_by_lbfgs(loss, out, target, weights) + 1e-6


def test_sequence_set_expands_groups():
    pset = load_productions("sequence", [(0, 3), (3, 6)])
    texts = {p.text for p in pset.productions}
    assert r"\x -> affine (select[0:3] x)" in texts
    assert r"\x -> affine (select[3:6] x)" in texts
    assert r"\xs -> ?? (mean xs)" in texts and r"\xs -> ?? (std xs)" in texts


def test_the_series_set_reads_each_channel_of_a_multivariate_series():
    several = {p.text for p in load_productions("series", series_length=40, channels=3)
               .productions}
    assert r"\xs -> ?? (paa[8] (map select[2:3] xs))" in several
    assert r"\xs -> ?? (spectrum[16] (map select[0:1] xs))" in several
    one = {p.text for p in load_productions("series", series_length=40, channels=1)
           .productions}
    assert not any("select" in t for t in one) and r"\xs -> ?? (paa[8] xs)" in one


def test_bad_productions_are_rejected():
    with pytest.raises(SearchError, match="may not contain a hole"):
        make_production(r"\x -> ?? (?? x)")
    with pytest.raises(SearchError):
        make_production("no_such_primitive")
    with pytest.raises(SearchError, match="unknown production set"):
        load_productions("no_such_set")


@pytest.mark.parametrize("text, message", [
    ('name = "x"\nshapelet_fraction = [0.1]\n[[production]]\nterm = "affine"\n',
     r"set.toml: unknown key 'shapelet_fraction'; did you mean 'shapelet_fractions'"),
    ('name = "x"\n[[production]]\nterm = "affine"\ncots = 2\n',
     r"set.toml:3 \[\[production\]\]: unknown key 'cots'; did you mean 'cost'"),
    ('name = 3\n[[production]]\nterm = "affine"\n', "name must be text"),
])
def test_production_set_keys_are_checked(tmp_path, text, message):
    path = tmp_path / "set.toml"
    path.write_text(text)
    with pytest.raises(SearchError, match=message):
        load_productions(str(path))


def test_default_feature_groups_are_single_features():
    assert feature_groups(None, parse_type("List[Vec[3]]")) == [(0, 1), (1, 2), (2, 3)]
    assert feature_groups({"acc": [0, 3]}, parse_type("List[Vec[6]]")) == [(0, 3)]
    with pytest.raises(SearchError):
        feature_groups([[0, 9]], parse_type("List[Vec[6]]"))


# ---------------------------------------------------------------- expansion


def test_expansion_yields_only_well_typed_children():
    pset = load_productions("sequence", [(0, 2)])
    graph = ProgramGraph(parse_type("List[Vec[3]]"), parse_type("Vec[2]"), pset, max_depth=3)
    want = Arrow(parse_type("List[Vec[3]]"), parse_type("Vec[2]"))
    layer, seen = [graph.root()], []
    for _ in range(3):
        layer = [c for node in layer[:6] for c in graph.children(node)]
        for child in layer:
            check_term(child.term, want)  # raises if ill-typed
            assert parse_term(child.text) == child.term
            assert len(child.hole_depths) == ast.holes(child.term)
            assert max(child.hole_depths, default=0) <= graph.max_depth
        seen += layer
    assert len(seen) > 20
    assert any(c.complete for c in seen)


def test_programs_from_the_graph_compile_as_they_are():
    """A template used twice, with different types at each place (an `affine` to Bool in
    the condition, to Vec[2] in the branches), must get a module of each size."""
    task = tiny_task()
    pset = load_productions("sequence", [])
    graph = ProgramGraph(task.input_type, task.output_type, pset, max_depth=3)
    ite = next(c for c in graph.children(graph.root()) if c.text.startswith(r"\xs -> ite"))
    node = graph.first_complete(ite)
    assert node.text.count("affine") == 3
    model = build(task, node.term, 8)
    assert model(task.val.x).shape == (len(task.val), 2)


def test_depth_limit_leaves_no_dead_ends():
    pset = load_productions("sequence", [])
    graph = ProgramGraph(parse_type("List[Vec[3]]"), parse_type("Vec[2]"), pset, max_depth=2)
    for child in graph.children(graph.root()):
        assert graph.first_complete(child) is not None, child.text


# ---------------------------------------------------------------- algorithms on a toy graph

# A tree with known edge costs; goals are the upper-case leaves. The heuristic is the true
# remaining cost to the nearest goal, scaled down: admissible.
EDGES = {
    "s": {"a": 1.0, "b": 2.0, "c": 1.0},
    "a": {"A1": 5.0, "d": 1.0},
    "d": {"D1": 3.0},
    "b": {"B1": 1.0, "B2": 3.0},
    "c": {"e": 0.5},
    "e": {"E1": 4.0},
}


class ToyGraph:
    def __init__(self, delay: float = 0.0) -> None:
        self.g = {"s": 0.0}
        self.depths = {"s": 0}
        self.evaluated: list[str] = []
        self.batches: list[list[str]] = []
        self.delay = delay

    def root(self) -> str:
        return "s"

    def children(self, node: str) -> list[str]:
        kids = list(EDGES.get(node, {}))
        for k, c in EDGES.get(node, {}).items():
            self.g[k] = self.g[node] + c
            self.depths[k] = self.depths[node] + 1
        return kids

    def is_complete(self, node: str) -> bool:
        return node[0].isupper()

    def cost(self, node: str) -> float:
        return self.g[node]

    def depth(self, node: str) -> int:
        return self.depths[node]

    def key(self, node: str) -> str:
        return node

    def remaining(self, node: str) -> float:
        if self.is_complete(node):
            return 0.0
        return min(c + self.remaining(k) for k, c in EDGES[node].items())

    def evaluate(self, nodes) -> list[float]:
        time.sleep(self.delay)
        self.evaluated += list(nodes)
        self.batches.append(list(nodes))
        return [0.5 * self.remaining(n) for n in nodes]

    def f(self, node: str, h: float) -> float:
        return self.g[node] + h


class ToyDAG(ToyGraph):
    """Nodes are (name, cost so far); `x` is reached from `a` (dear) and from `b` (cheap),
    and `X` below it. Keys are the names only: one program, two derivations."""

    DAG = {"s": {"a": 1.0, "b": 1.5}, "a": {"x": 3.0}, "b": {"x": 0.5}, "x": {"X": 1.0}}

    def root(self):
        return ("s", 0.0)

    def children(self, node):
        return [(k, node[1] + c) for k, c in self.DAG.get(node[0], {}).items()]

    def is_complete(self, node) -> bool:
        return node[0].isupper()

    def cost(self, node) -> float:
        return node[1]

    def depth(self, node) -> int:
        return len(node[0])

    def key(self, node):
        return node[0]

    def evaluate(self, nodes) -> list[float]:
        self.evaluated += [n[0] for n in nodes]
        return [0.0 for _ in nodes]  # h = 0: f is the cost

    def f(self, node, h: float) -> float:
        return node[1] + h


def toy_run(algorithm: str, top_k: int = 1, anytime: bool = False, graph=None,
            expansions: int = 1, **budget):
    graph = graph or ToyGraph(budget.pop("delay", 0.0))
    search = Run(graph, Budget(**budget), top_k)
    stats = run(algorithm, search, anytime=anytime, expansions=expansions)
    return search, stats


@pytest.mark.parametrize("expansions", [2, 3, 10])
def test_astar_expanding_several_nodes_at_once_still_proves_the_optimum(expansions):
    """Popping the best few partial nodes together scores more nodes per batch (the
    children of all of them) and may expand nodes plain A* would not, but still returns
    the optimum, and on a DAG still trains a program once."""
    search, stats = toy_run("astar", top_k=2, expansions=expansions)
    assert stats.stopped_by == "done"
    assert [f for f, _ in search.best()] == [3.0, 5.0]
    assert search.graph.evaluated[:3] == ["a", "b", "c"]
    dag, _ = toy_run("astar", anytime=True, graph=ToyDAG(), expansions=expansions)
    assert dag.graph.evaluated.count("X") == 1 and dag.best()[0] == (3.0, ("X", 3.0))


@pytest.mark.parametrize("algorithm", ["astar", "iddfs", "enumerate"])
def test_algorithms_find_the_optimum_on_a_toy_graph(algorithm):
    search, stats = toy_run(algorithm)
    assert stats.stopped_by == "done" and not stats.interrupted
    (f, best), = search.best()
    assert best == "B1" and f == pytest.approx(3.0)
    assert "s" not in search.graph.evaluated  # the root is expanded whatever its h


def test_astar_stops_once_the_optimum_is_proved():
    search, _ = toy_run("astar")
    # f(B1) = 3 ties f(a) = 3: a complete program wins the tie, so `a` is never expanded
    assert not {"d", "e", "A1"} & set(search.graph.evaluated)
    search, _ = toy_run("astar", top_k=2)
    assert [f for f, _ in search.best()] == [3.0, 5.0]


def test_astar_scores_every_child_before_any_grandchild():
    """...and never trains the root: it is expanded first whatever its h."""
    search, _ = toy_run("astar", top_k=2)
    order = search.graph.evaluated
    assert order[:3] == ["a", "b", "c"] and "s" not in order


def _first_complete(graph: ToyGraph, node: str) -> str | None:
    """The first complete node below `node`, depth-first, leaves first."""
    for kid in sorted(graph.children(node), key=lambda k: not graph.is_complete(k)):
        found = kid if graph.is_complete(kid) else _first_complete(graph, kid)
        if found:
            return found
    return None


def _logged_expand(search: Run, log: list, node):
    log.append(node)
    return Run.expand(search, node)


@pytest.mark.parametrize("anytime", [False, True])
def test_astar_scores_completions_first_and_keeps_its_order(anytime):
    """With completions, the root's cheapest completion is scored first (the root itself is
    not trained), and the children's before the partial children (the search holds a
    complete program from its first node), and A* expands the same partial nodes in the
    same order and proves the same top-k."""
    expanded = {}
    for completions in (False, True):
        graph = ToyGraph()
        search = Run(graph, Budget(batch=8, max_batch=8), 2,
                     completion=partial(_first_complete, graph) if completions else None)
        expanded[completions] = []
        search.expand = partial(_logged_expand, search, expanded[completions])
        stats = run("astar", search, anytime=anytime)
        assert stats.stopped_by == "done"
        assert [f for f, _ in search.best()] == [3.0, 5.0]
    assert graph.evaluated[:6] == ["A1", "B1", "E1", "a", "b", "c"]  # A1: the root's
    assert expanded[True] == expanded[False]
    # complete programs train in their own batches, and before the partial ones
    assert all(len({graph.is_complete(n) for n in batch}) == 1 for batch in graph.batches)
    assert graph.batches[1:3] == [["B1", "E1"], ["a", "b", "c"]]


class StreamingGraph(ToyGraph):
    """Yields each h as its node 'finishes training', noting what the search held then."""

    def __init__(self) -> None:
        super().__init__()
        self.held_before: dict[str, set[str]] = {}
        self.search: Run | None = None

    def evaluate(self, nodes):
        self.batches.append(list(nodes))
        for n in nodes:
            self.held_before[n] = set(self.search.complete)
            yield 0.5 * self.remaining(n)


def test_a_program_is_held_as_soon_as_its_h_is_known():
    """The search records each h as the graph yields it: the first complete program of a
    batch is held (and reported) while the rest of the batch still trains."""
    graph = StreamingGraph()
    reported = []
    search = Run(graph, Budget(batch=8, max_batch=8), 2, on_progress=reported.append,
                 show=str, completion=partial(_first_complete, graph))
    graph.search = search
    run("astar", search)
    assert ["B1", "E1"] in graph.batches
    assert "B1" in graph.held_before["E1"] and "E1" not in graph.held_before["E1"]
    assert [p.trained for p in reported] == list(range(1, len(reported) + 1))


@pytest.mark.parametrize("algorithm", ["astar", "iddfs", "enumerate"])
def test_a_program_reached_twice_is_one_node_at_its_cheaper_cost(algorithm):
    search, stats = toy_run(algorithm, anytime=True, graph=ToyDAG())
    assert stats.stopped_by == "done"
    evaluated = search.graph.evaluated
    assert evaluated.count("x") <= 1 and evaluated.count("X") == 1
    (f, best), = search.best()
    assert best == ("X", 3.0) and f == 3.0  # through b: 1.5 + 0.5 + 1


def test_anytime_astar_goes_on_after_the_proof():
    search, stats = toy_run("astar", anytime=True)
    assert stats.stopped_by == "done"
    assert {"A1", "D1", "E1"} <= set(search.graph.evaluated)  # the whole toy tree
    assert search.best()[0][1] == "B1"


def test_enumeration_trains_only_complete_programs_in_cost_order():
    search, _ = toy_run("enumerate", top_k=5)
    done = search.graph.evaluated
    assert all(n[0].isupper() for n in done)
    costs = [search.graph.cost(n) for n in done]
    assert costs == sorted(costs)


def test_node_budget_is_respected():
    search, stats = toy_run("enumerate", max_nodes=2)
    assert stats.stopped_by == "nodes" and stats.trained == 2
    assert len(search.graph.evaluated) == 2


def test_time_budget_is_respected():
    start = time.perf_counter()
    _, stats = toy_run("iddfs", time_limit=0.05, delay=0.03)
    assert stats.stopped_by == "time"
    assert time.perf_counter() - start < 0.5


def test_interrupt_returns_what_was_found():
    def stop(progress):
        if progress.trained >= 3:
            raise KeyboardInterrupt

    search = Run(ToyGraph(), Budget(), 1, on_progress=stop)
    stats = run("enumerate", search)
    assert stats.interrupted and stats.stopped_by == "interrupt"
    assert search.best()


# ---------------------------------------------------------------- whole searches (trained)


def test_synthesize_tiny_task_under_a_node_budget():
    task = tiny_task()
    seen = []
    result = synthesize(task, algorithm="astar", time_limit=30, max_depth=3, top_k=2,
                        epochs_per_node=3, final_epochs=5, max_nodes=8,
                        on_progress=seen.append)
    assert result.stats.trained <= 8 and len(seen) == result.stats.trained
    assert 1 <= len(result.programs) <= 2
    want = Arrow(task.input_type, task.output_type)
    for prog in result.programs:
        check_term(parse_term(prog.text), want)
        assert "??" not in prog.text
        assert prog.f is None or 0.0 <= prog.found_at <= result.stats.seconds
        ev = prog.evaluation
        assert 0.0 <= ev.test <= 1.0 and ev.baseline > 0
        out = prog.model(task.test.x)
        assert out.shape == (len(task.test), 2)


def test_synthesize_is_deterministic_under_a_seed():
    def once():
        r = synthesize(tiny_task(), algorithm="iddfs", time_limit=30, max_depth=2,
                       epochs_per_node=2, final_epochs=2, max_nodes=6, seed=3)
        return [(p.text, p.f, p.evaluation.val_loss) for p in r.programs]

    assert once() == once()


def test_ctrl_c_during_search_returns_best_so_far():
    def interrupt(progress):
        if progress.trained >= 3:
            raise KeyboardInterrupt

    result = synthesize(tiny_task(), algorithm="astar", time_limit=30, max_depth=3,
                        epochs_per_node=2, final_epochs=2, on_progress=interrupt)
    assert result.stats.interrupted and result.stats.trained == 3
    assert result.programs and all("??" not in p.text for p in result.programs)


def test_time_limit_stops_the_search():
    start = time.perf_counter()
    result = synthesize(tiny_task(), algorithm="enumerate", time_limit=1.0, max_depth=3,
                        epochs_per_node=2, final_epochs=2, top_k=1)
    assert result.stats.stopped_by == "time"
    assert result.stats.seconds < 4.0 and time.perf_counter() - start < 15.0
    assert math.isfinite(result.programs[0].evaluation.val_loss)


def test_options_come_from_the_task_then_the_caller():
    task = tiny_task(cost_weight=0.2, max_depth=2, epochs_per_node=4)
    config = resolve_config(task, max_depth=3)
    assert (config.cost_weight, config.max_depth, config.epochs_per_node) == (0.2, 3, 4)
    assert config.lr == pytest.approx(3 * 0.05) and config.final_epochs >= 150
    with pytest.raises(SearchError, match="unknown search option"):
        synthesize(task, no_such_option=1)
    with pytest.raises(SearchError, match="heuristic"):
        synthesize(task, heuristic="vibes")


def test_a_type_the_productions_cannot_build_is_a_search_error():
    only_lists = ProductionSet("lists", (make_production(r"\xs -> ?? (mean xs)"),))
    with pytest.raises(SearchError, match="cannot build"):
        synthesize(tiny_task(), productions=only_lists, time_limit=5)


def test_parallel_workers_score_like_one_worker():
    kwargs = dict(algorithm="enumerate", time_limit=60, max_depth=2, epochs_per_node=2,
                  final_epochs=2, max_nodes=4, top_k=4)
    serial = synthesize(tiny_task(), workers=1, **kwargs)
    parallel = synthesize(tiny_task(), workers=2, **kwargs)
    assert [(p.text, p.f) for p in serial.programs] == [
        (p.text, p.f) for p in parallel.programs]


# ---------------------------------------------------------------- A* order on a real task


def _traced_search(monkeypatch, task: str, **options):
    """Run a search, logging the texts trained (in order) and the nodes expanded."""
    from neurosym.search import scoring

    trained, expanded = [], []
    scored, expand = scoring.Scorer.scored, Run.expand

    def logged_scored(self, items):
        trained.extend(t for t, _ in items if t not in self.cache)
        return scored(self, items)

    def logged_expand(self, node):
        expanded.append((node.text, node.cost))
        return expand(self, node)

    monkeypatch.setattr(scoring.Scorer, "scored", logged_scored)
    monkeypatch.setattr(Run, "expand", logged_expand)
    result = synthesize(task, final_epochs=2, **options)
    return result, trained, expanded


def test_astar_scores_every_child_of_the_root_before_any_grandchild(monkeypatch):
    """The root's cheapest completion (the root is not trained), then its complete children and the
    cheapest completions of the others (complete programs first), then its partial
    children, then anything deeper."""
    result, trained, expanded = _traced_search(
        monkeypatch, "planted_compare", algorithm="astar", max_nodes=40, time_limit=120,
        cv_folds=0, top_k=1)  # the order of the search is tested, not its finalists
    task = load_task("planted_compare")
    graph = ProgramGraph(task.input_type, task.output_type, production_set(task))
    children = graph.children(graph.root())
    completions = {graph.first_complete(c, COMPLETION_STEPS).text for c in children}
    partial = [c.text for c in children if not c.complete]
    first = graph.first_complete(graph.root()).text
    assert trained[0] == first and first in completions and "??" not in trained
    after = len(completions)  # the root's completion is one of its children's
    assert set(trained[1:after]) == completions - {first}
    assert trained[after:after + len(partial)] == partial
    assert r"\xs -> mean (map ?? xs)" in trained
    assert len(trained) == result.stats.trained == 40


def test_a_program_reached_twice_is_trained_and_expanded_once(monkeypatch):
    """`add (affine (mean xs)) (?? (std xs))` is derived from `add (?? (mean xs)) (?? (std
    xs))` and from `add (affine (mean xs)) (?? xs)`, at the same cost: one node."""
    pset = ProductionSet("dag", tuple(make_production(t, c) for t, c in [
        (r"\xs -> add (?? (mean xs)) (?? (std xs))", 3.0), (r"\x -> add (?? x) (?? x)", 1.0),
        (r"\xs -> ?? (mean xs)", 1.0), (r"\xs -> ?? (std xs)", 1.0), ("affine", 1.0)]))
    result, trained, expanded = _traced_search(
        monkeypatch, tiny_task(), algorithm="astar", productions=pset, max_depth=3,
        epochs_per_node=1, time_limit=120, cv_folds=0, top_k=1)
    assert result.stats.stopped_by == "done"
    shared = r"\xs -> add (affine (mean xs)) (?? (std xs))"
    assert trained.count(shared) == 1
    assert [text for text, _ in expanded].count(shared) == 1
    assert len(trained) == len(set(trained))
    assert len(expanded) == len({text for text, _ in expanded})


def test_the_tasks_search_settings_reach_the_search():
    task = tiny_task(algorithm="iddfs", top_k=5, seed=7, workers=2, max_depth=2,
                     epochs_per_node=2, final_epochs=2, max_nodes=6)
    result = synthesize(task, time_limit=60)
    c = result.config
    assert (c.algorithm, c.top_k, c.seed, c.workers) == ("iddfs", 5, 7, 2)
    assert result.stats.algorithm == "iddfs"
    override = resolve_config(task, algorithm="astar", top_k=1, seed=0, workers=1)
    assert (override.algorithm, override.top_k, override.seed, override.workers) == (
        "astar", 1, 0, 1)


def test_final_ranking_is_the_search_objective_after_full_training():
    """Each finalist's `final_f` is the search's f (the rescaled heuristic plus the cost
    term) of its retrained model; the programs are ranked by it, or, on small data, by
    its mean over cross-validation folds."""
    from neurosym.search.scoring import heuristic, loss_scale

    task = tiny_task()
    options = dict(algorithm="astar", time_limit=60, max_depth=3, top_k=4,
                   epochs_per_node=3, final_epochs=20, max_nodes=12)
    result = synthesize(task, cv_folds=0, **options)
    c = result.config
    assert len(result.programs) >= 2 and all(p.cv is None for p in result.programs)
    finals = [p.final_f for p in result.programs]
    assert finals == sorted(finals)
    for p in result.programs:
        h, _ = heuristic(task, p.model, c.heuristic, p.evaluation.val_loss)
        assert p.final_f == pytest.approx(h + c.cost_weight * loss_scale(task) * p.cost)
    crossed = synthesize(task, cv_folds=4, **options).programs
    assert all(p.cv.folds == 4 and len(p.cv.f) == 4 * p.cv.repeats and 0 <= p.cv.mean <= 1
               for p in crossed)
    assert any(p.cv.repeats == 3 for p in crossed)  # a convex fit: three splits into folds
    means = [p.cv.mean_f for p in crossed]
    assert means == sorted(means)
    assert all(min(p.cv.f) - 1e-9 >= c.cost_weight * loss_scale(task) * p.cost
               for p in crossed)


def test_finalists_include_the_best_of_each_leading_family():
    """A family (the programs below one child of the root) that brief training ranks
    below many programs of another still sends its best program to the final ranking."""
    from types import SimpleNamespace

    from neurosym.search.final import candidates

    root = SimpleNamespace(text="root", parent=None)
    tops = {name: SimpleNamespace(text=name, parent=root) for name in "ABC"}
    deeper = SimpleNamespace(text="C1", parent=tops["C"])
    scored = [(0.1, "a1", tops["A"]), (0.2, "a2", tops["A"]), (0.3, "a3", tops["A"]),
              (0.5, "b1", tops["B"]), (0.6, "c1", deeper)]
    complete = {text: (f, SimpleNamespace(text=text, parent=parent))
                for f, text, parent in scored}
    search = SimpleNamespace(complete=complete, top_k=2, best_partial=lambda: [])
    programs = SimpleNamespace(root=lambda: root, first_complete=lambda node: None)
    assert [node.text for _, node in candidates(search, programs)] == ["a1", "a2", "b1", "c1"]
    search.top_k = 1  # two families: A and B
    assert [node.text for _, node in candidates(search, programs)] == ["a1", "b1"]


def test_a_finalist_that_fails_to_retrain_is_reported(monkeypatch):
    from neurosym.lang.errors import TrainingError
    from neurosym.search import final

    def broken(*args, **kwargs):
        raise TrainingError("non-finite loss (nan) at epoch 1")

    monkeypatch.setattr(final, "train_and_evaluate", broken)
    result = synthesize(tiny_task(), algorithm="astar", time_limit=30, max_depth=2,
                        epochs_per_node=2, final_epochs=2, max_nodes=5)
    assert not result.programs and result.dropped
    assert all("non-finite" in why for _, why in result.dropped)


def test_the_time_limit_ends_the_search_never_a_finalists_fit():
    start = time.perf_counter()
    result = synthesize(tiny_task(), algorithm="astar", time_limit=2.0, max_depth=4,
                        epochs_per_node=5, final_epochs=100_000, top_k=2, cv_folds=2)
    assert result.stats.seconds <= 2.0 and result.programs
    assert time.perf_counter() - start > result.stats.seconds  # the finalists, uncut


def test_past_the_time_limit_no_further_costly_finalist_is_started(monkeypatch):
    """Finalists whose fit is not convex (here: all of them, say) are not started once the
    limit that ended the search has passed; the first always is. Under a node budget,
    every one is fitted, whatever the clock."""
    monkeypatch.setattr("neurosym.search.final.convex_fit", lambda *args: False)
    timed = synthesize(tiny_task(), algorithm="astar", time_limit=1.0, max_depth=4,
                       epochs_per_node=5, final_epochs=300, top_k=3, cv_folds=2)
    assert timed.stats.stopped_by == "time" and len(timed.programs) >= 1
    skipped = [text for text, why in timed.dropped
               if why == "not fitted: the time limit was reached"]
    assert skipped and not {p.text for p in timed.programs} & set(skipped)
    budget = synthesize(tiny_task(), algorithm="astar", time_limit=600, max_depth=4,
                        max_nodes=6, epochs_per_node=5, final_epochs=5, top_k=3, cv_folds=2)
    assert budget.stats.stopped_by != "time" and not budget.dropped


def test_past_the_time_limit_convex_finalists_are_fitted_without_folds_too(monkeypatch):
    """With no cross-validation (large data, or cv_folds=0), a finalist whose fit is
    convex is solved in milliseconds: the limit that ended the search skips none."""
    monkeypatch.setattr("neurosym.search.final.convex_fit", lambda *args: True)
    timed = synthesize(tiny_task(), algorithm="astar", time_limit=1.0, max_depth=4,
                       epochs_per_node=5, final_epochs=300, top_k=3, cv_folds=0)
    assert timed.stats.stopped_by == "time" and timed.programs
    assert not [text for text, why in timed.dropped
                if why == "not fitted: the time limit was reached"]


def test_a_node_budget_gives_the_same_programs_fitted_the_same_idle_and_busy():
    """Neither the search under a node budget nor a finalist's fit reads the clock: two
    processes burning both cores change nothing (issue 28: a busy machine refit GunPoint's
    program for 65 epochs instead of 149, and its test score fell from 0.973 to 0.880)."""
    import subprocess
    import sys

    budget = dict(algorithm="astar", max_depth=4, max_nodes=8, epochs_per_node=5,
                  final_epochs=10, top_k=2, time_limit=600, cv_folds=2)
    clock = dict(algorithm="astar", max_depth=4, epochs_per_node=5, final_epochs=10,
                 top_k=2, time_limit=2, cv_folds=2)
    idle = [synthesize(tiny_task(), **budget), synthesize(tiny_task(), **clock)]
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        busy = [synthesize(tiny_task(), **budget), synthesize(tiny_task(), **clock)]
    finally:
        for p in burners:
            p.kill()
            p.wait()

    def fits(result) -> dict:  # (f adds the cost of the derivation the search took)
        return {p.printed: (p.evaluation.test, p.evaluation.val_loss, p.cv and p.cv.metric)
                for p in result.programs}

    assert list(fits(idle[0])) == list(fits(busy[0]))  # the same programs, in order
    assert fits(idle[0]) == fits(busy[0])
    # under a time limit the busy search may get less far, but a program returned by
    # both is fitted the same
    common = fits(idle[1]).keys() & fits(busy[1]).keys()
    assert common and all(fits(idle[1])[p] == fits(busy[1])[p] for p in common)


def test_a_result_no_better_than_the_majority_says_so():
    from neurosym.evaluate import train_and_evaluate, train_config
    from neurosym.metrics import no_better_than_majority

    assert no_better_than_majority("accuracy", 0.52, 0.5, 100)
    from neurosym.metrics import baseline_name, trivial_words

    assert "training mean" in trivial_words("mse") and baseline_name("mse") == "mean"
    assert "majority class" in trivial_words("accuracy")
    assert not no_better_than_majority("accuracy", 0.75, 0.5, 100)
    assert no_better_than_majority("mse", 0.99, 1.0, 100)
    task = tiny_task()
    constant = build(task, parse_term(r"\xs -> affine (length xs)"), 8)  # always 5 steps
    assert train_and_evaluate(constant, task, train_config(task, epochs=3)).trivial
    good = build(task, parse_term(r"\xs -> affine (mean xs)"), 8)
    assert not train_and_evaluate(good, task, train_config(task, epochs=40, lr=0.1)).trivial


@pytest.mark.parametrize("term, cost, message", [
    (r"\xs -> ?? (mean (no_such xs))", 1.0, "no_such"),
    (r"\x -> ?? (softargmax (length x))", 1.0, r"expected Vec\[n\], found Float"),
    (r"\xs -> ?? (mean xs)", -1, "positive number"),
    (r"\xs -> ?? (mean (interval[{nope}] xs))", 1.0, "unknown placeholder"),
])
def test_production_set_errors_name_the_file_and_line(tmp_path, term, cost, message):
    path = tmp_path / "bad.toml"
    path.write_text(f"name = 'bad'\n\n[[production]]\nterm = 'affine'\n\n"
                    f"[[production]]\nterm = '{term}'\ncost = {cost}\n")
    with pytest.raises(SearchError, match=rf"bad\.toml:7: .*{message}"):
        load_productions(str(path))


def test_a_worker_killed_mid_search_does_not_end_it():
    """A worker process killed (as the out-of-memory killer would) mid-search: the pool is
    restarted, the nodes it held are trained again, and the search returns what a search
    without the kill returns."""
    import multiprocessing
    import os
    import signal

    kwargs = dict(algorithm="astar", time_limit=120, max_depth=3, epochs_per_node=2,
                  final_epochs=2, max_nodes=12, top_k=2, workers=2, cv_folds=0)
    calm = synthesize(tiny_task(), **kwargs)
    killed: list[int] = []

    def kill_a_worker(progress) -> None:
        workers = multiprocessing.active_children()
        if progress.trained >= 1 and not killed and workers:
            killed.append(workers[0].pid)
            os.kill(workers[0].pid, signal.SIGKILL)

    hit = synthesize(tiny_task(), on_progress=kill_a_worker, **kwargs)
    assert killed and hit.restarts == 1 and calm.restarts == 0
    assert [(p.text, p.f) for p in hit.programs] == [(p.text, p.f) for p in calm.programs]
    assert not hit.failures or all("not scored" not in e for _, e in hit.failures)


def test_a_scorer_gives_each_score_once_its_group_has_trained():
    """In this process the first node's score comes before the next skeleton trains, and
    the scores are those of `score`, in the caller's order."""
    from neurosym.search.scoring import NodeSettings, Scorer
    from neurosym.train import TrainConfig

    settings = NodeSettings(TrainConfig(epochs=3, patience=3, batch_size=16, lr=0.05))
    texts = [r"\xs -> affine (std xs)", r"\xs -> affine (mean xs)", r"\xs -> ?? (std xs)"]
    scorer = Scorer(tiny_task(), settings)
    stream = scorer.scored([(t, None) for t in texts])
    first = next(stream)
    assert set(scorer.cache) == {texts[0]}  # the others have not trained yet
    rest = list(stream)
    together = Scorer(tiny_task(), settings).score([(t, None) for t in texts])
    assert [s.h for s in [first, *rest]] == [s.h for s in together]


def test_nodes_of_a_worker_killed_while_training_are_trained_again():
    import multiprocessing
    import os
    import signal
    import threading

    from neurosym.search.scoring import NodeSettings, Scorer
    from neurosym.train import TrainConfig

    task = tiny_task()
    # trained relaxations: nodes that train long enough to be killed (solved ones take ms)
    settings = NodeSettings(TrainConfig(epochs=200, patience=200, batch_size=8, lr=0.01),
                            relaxation="trained")
    texts = [f"\\xs -> {p}" for p in ("?? (mean xs)", "?? (std xs)", "mean (map ?? xs)",
                                      "add (?? (mean xs)) (?? (last xs))")]
    alone = Scorer(task, settings).score([(t, None) for t in texts])
    pooled = Scorer(task, settings, workers=2)
    pooled.score([("\\xs -> ??", None)])  # the workers are up

    def kill() -> None:
        os.kill(multiprocessing.active_children()[0].pid, signal.SIGKILL)

    timer = threading.Timer(0.5, kill)
    timer.start()
    try:
        scores = pooled.score([(t, None) for t in texts])
    finally:
        timer.join()
        pooled.close()
    assert pooled.restarts == 1
    for a, b in zip(alone, scores):
        assert b.error is None and abs(a.h - b.h) <= 1e-6


# ---------------------------------------------------------------- checkpoints

CHECKPOINTED = dict(algorithm="astar", time_limit=120, max_depth=3, epochs_per_node=2,
                    final_epochs=2, max_nodes=16, top_k=2, cv_folds=0)


@pytest.mark.parametrize("expansions", [1, 3])
def test_a_resumed_search_ends_where_an_uninterrupted_one_does(tmp_path, expansions):
    settings = {**CHECKPOINTED, "expansions": expansions}
    whole = synthesize(tiny_task(), checkpoint=tmp_path / "whole.ckpt", **settings)

    def interrupt(progress) -> None:
        if progress.trained >= 7:  # in the middle of an expansion's children
            raise KeyboardInterrupt

    cut = synthesize(tiny_task(), checkpoint=tmp_path / "cut.ckpt", on_progress=interrupt,
                     **settings)
    assert cut.stats.interrupted and cut.stats.trained == 7
    resumed = synthesize(tiny_task(), resume=tmp_path / "cut.ckpt", **settings)
    assert resumed.stats.trained == whole.stats.trained == 16
    assert [(p.text, p.f) for p in resumed.programs] == [(p.text, p.f) for p in whole.programs]


def test_a_checkpoint_of_another_search_is_refused_with_the_difference(tmp_path):
    from neurosym.search.checkpoint import CheckpointError

    path = tmp_path / "s.ckpt"
    synthesize(tiny_task(), checkpoint=path, **{**CHECKPOINTED, "max_nodes": 3})
    other = tiny_task()
    other = dataclasses.replace(other, train=Split(other.train.x, 1 - other.train.y))
    with pytest.raises(CheckpointError, match="other data"):
        synthesize(other, resume=path, **CHECKPOINTED)
    with pytest.raises(CheckpointError, match="seed 0 then, 1 now"):
        synthesize(tiny_task(), resume=path, **{**CHECKPOINTED, "seed": 1})
    with pytest.raises(SearchError, match="A\\* searches only"):
        synthesize(tiny_task(), resume=path, **{**CHECKPOINTED, "algorithm": "iddfs"})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable neurosym search checkpoint"):
        synthesize(tiny_task(), resume=path, **CHECKPOINTED)


def test_a_checkpoint_keeps_each_nodes_family(tmp_path):
    """Saved nodes name their parents (the finalists take the best of each family, the
    programs below one child of the root), and are linked to them again on load; a
    format-1 entry without one, a missing parent or a cycle leaves a node without one."""
    import json

    from safetensors import safe_open

    from neurosym.search.checkpoint import _nodes
    from neurosym.search.final import family

    path = tmp_path / "s.ckpt"
    synthesize(tiny_task(), checkpoint=path, **CHECKPOINTED)
    with safe_open(str(path), framework="pt") as f:
        entries = json.loads(f.metadata()["neurosym_search"])["nodes"]
    task = tiny_task()
    graph = ProgramGraph(task.input_type, task.output_type, production_set(task))
    nodes = _nodes(entries, graph)
    roots = {t for t, n in nodes.items() if n.parent is None}
    assert roots == {"??"}
    children = {c.text for c in graph.children(graph.root())}
    assert all(family(n) in children for t, n in nodes.items() if t != "??")
    a, b = r"\xs -> ?? (mean xs)", r"\xs -> affine (mean xs)"
    odd = {a: [1.0, 1, 1, [1], b], b: [2.0, 2, 2, [], a], "??": [0.0, 0, 0, [1]]}
    rebuilt = _nodes(odd, graph)
    assert rebuilt["??"].parent is None and {rebuilt[a].parent, rebuilt[b].parent} & {None}


def test_an_edited_checkpoint_is_reported_and_changes_nothing(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from neurosym.search.checkpoint import CheckpointError

    path = tmp_path / "s.ckpt"
    synthesize(tiny_task(), checkpoint=path, **{**CHECKPOINTED, "max_nodes": 5})
    with safe_open(str(path), framework="pt") as f:
        record = json.loads(f.metadata()["neurosym_search"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    record["frontier"][0][4] = "\\xs -> ?? (mean"  # a program that does not parse
    save_file(tensors, str(path), metadata={"neurosym_search": json.dumps(record)})
    with pytest.raises(CheckpointError, match="is damaged"):
        synthesize(tiny_task(), resume=path, **CHECKPOINTED)
