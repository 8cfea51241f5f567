"""NEAR search: term surgery, production sets, expansion, the algorithms on a toy graph with
a known heuristic, and whole searches on a tiny synthetic task (budgets, seeds, Ctrl-C)."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

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
from neurosym.search.scoring import build, rescaled_loss
from neurosym.search.synthesis import resolve_config
from neurosym.search.terms import plug, substitute
from neurosym.tasks.spec import Split, Task

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
    task = SimpleNamespace(loss=loss, class_weights=None)
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
    assert rescaled_loss(task, timid, y) < 0.05 < 0.1 < float(plain(timid))
    noise = torch.randn_like(timid)
    assert 0.3 < rescaled_loss(task, noise, y) <= float(plain(noise)) + 1e-9


def test_sequence_set_expands_groups():
    pset = load_productions("sequence", [(0, 3), (3, 6)])
    texts = {p.text for p in pset.productions}
    assert r"\x -> affine (select[0:3] x)" in texts
    assert r"\x -> affine (select[3:6] x)" in texts
    assert r"\xs -> ?? (mean xs)" in texts and r"\xs -> ?? (std xs)" in texts


def test_bad_productions_are_rejected():
    with pytest.raises(SearchError, match="may not contain a hole"):
        make_production(r"\x -> ?? (?? x)")
    with pytest.raises(SearchError):
        make_production("no_such_primitive")
    with pytest.raises(SearchError, match="unknown production set"):
        load_productions("no_such_set")


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
        return [self.g[n] + 0.5 * self.remaining(n) for n in nodes]


class LazyToyGraph(ToyGraph):
    """With a lower bound on a child's f, A* trains children only when they surface."""

    def lower_bound(self, parent_f: float, parent: str, child: str) -> float:
        return parent_f + 0.5 * EDGES[parent][child]  # h is consistent: f grows by >= half


def toy_run(algorithm: str, top_k: int = 1, lazy: bool = False, anytime: bool = False,
            **budget):
    graph = (LazyToyGraph if lazy else ToyGraph)(budget.pop("delay", 0.0))
    search = Run(graph, Budget(**budget), top_k)
    stats = run(algorithm, search, anytime=anytime)
    return search, stats


@pytest.mark.parametrize("algorithm", ["astar", "iddfs", "enumerate"])
def test_algorithms_find_the_optimum_on_a_toy_graph(algorithm):
    search, stats = toy_run(algorithm)
    assert stats.stopped_by == "done" and not stats.interrupted
    (f, best), = search.best()
    assert best == "B1" and f == pytest.approx(3.0)


def test_astar_stops_once_the_optimum_is_proved():
    search, _ = toy_run("astar")
    # f(B1) = 3 ties f(a) = 3: a complete program wins the tie, so `a` is never expanded
    assert not {"d", "e", "A1"} & set(search.graph.evaluated)
    search, _ = toy_run("astar", top_k=2)
    assert [f for f, _ in search.best()] == [3.0, 5.0]


def test_lazy_astar_finds_the_optimum_training_fewer_nodes():
    eager, _ = toy_run("astar", top_k=2)
    lazy, stats = toy_run("astar", top_k=2, lazy=True)
    assert stats.stopped_by == "done"
    assert [f for f, _ in lazy.best()] == [3.0, 5.0]
    assert len(lazy.graph.evaluated) < len(eager.graph.evaluated)


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
