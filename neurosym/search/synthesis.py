"""`synthesize`: NEAR on a task, from loading the production set to the top-k programs
retrained in full and scored on validation and test data."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path

from neurosym import metrics
from neurosym.evaluate import train_config
from neurosym.interp.values import Seq
from neurosym.lang.errors import SearchError
from neurosym.search import algorithms
from neurosym.search import checkpoint as checkpoints
from neurosym.search.algorithms import Budget, Progress, Run, SearchStats
from neurosym.search.final import MIN_TRAINING_SECONDS, FoundProgram, candidates, finalists
from neurosym.search.graph import Node, ProgramGraph
from neurosym.search.productions import (
    ProductionSet,
    default_set,
    feature_count,
    feature_groups,
    load_productions,
    with_library,
)
from neurosym.search.scoring import HoleStates, NodeSettings, Scorer, loss_scale
from neurosym.settings import SEARCH, SearchConfig, check_table, did_you_mean
from neurosym.tasks.spec import Task, load_task
from neurosym.train import TrainConfig

NODES_PER_PASS = 32  # nodes per worker scored together (those of one skeleton train at once)
COMPLETION_STEPS = 64  # most partial nodes visited looking for a child's cheapest completion


@dataclass(frozen=True, slots=True, eq=False)
class SearchResult:
    programs: list[FoundProgram]
    stats: SearchStats
    productions: str  # the name of the production set used
    config: SearchConfig | None = None
    failures: tuple[tuple[str, str], ...] = ()  # (program, error) of nodes that could not train
    dropped: tuple[tuple[str, str], ...] = ()  # (program, error) of finalists that failed
    task: Task | None = None
    restarts: int = 0  # times the worker pool was lost and started again

    @property
    def best(self) -> FoundProgram | None:
        return self.programs[0] if self.programs else None

    def save(self, path, rank: int = 0):
        """Save the program ranked `rank` (the best, by default) as a model directory
        (`neurosym.models`); returns the `Model`."""
        from dataclasses import asdict

        from neurosym.models import from_trained

        if not self.programs:
            raise SearchError("the search found no program to save")
        found = self.programs[rank]
        extra = {"search": asdict(self.config) if self.config else None,
                 "productions": self.productions,
                 "cv": None if found.cv is None else found.cv.summary()}
        model = from_trained(found.model, self.task, found.evaluation, extra=extra)
        model.save(path)
        return model


class NeuralGraph:
    """The program graph as `algorithms.Graph`: f = h + cost_weight * scale * g, where h
    is the trained node's heuristic (`scoring.heuristic`) and `scale` the loss of knowing
    nothing, so the cost weight means the same on every task. A program reached by two
    derivations is one node (its text is its key), trained once, with the warm start of
    the derivation that reached it first."""

    def __init__(self, programs: ProgramGraph, scorer: Scorer, cost_weight: float,
                 scale: float, warm_start: bool = True) -> None:
        self.programs, self.scorer = programs, scorer
        self.cost_weight, self.scale, self.warm_start = cost_weight, scale, warm_start
        self._root: Node | None = None

    def root(self) -> Node:
        if self._root is None:
            self._root = self.programs.root()
        return self._root

    def children(self, node: Node) -> list[Node]:
        return self.programs.children(node)

    def is_complete(self, node: Node) -> bool:
        return node.complete

    def cost(self, node: Node) -> float:
        return node.cost

    def depth(self, node: Node) -> int:
        return node.steps

    def key(self, node: Node) -> str:
        return node.text

    def f(self, node: Node, h: float) -> float:
        return h + self.cost_weight * self.scale * node.cost

    def evaluate(self, nodes: Sequence[Node]) -> Iterator[float]:
        """Each node's h, as soon as it is known (`Scorer.scored`)."""
        return (s.h for s in self.scorer.scored([(n.text, self._warm(n)) for n in nodes]))

    def _warm(self, node: Node) -> HoleStates | None:
        """The parent's trained relaxations for the holes the child kept (all but the
        first: the child filled it), aligned with the child's holes."""
        parent = node.parent
        if not self.warm_start or parent is None:
            return None
        done = self.scorer.cache.get(parent.text)
        if done is None or done.states is None:
            return None
        new = len(node.hole_depths) - (len(parent.hole_depths) - 1)
        return (None,) * new + done.states[1:]


def _options(task: Task) -> dict:
    search = task.options.get("search", {})
    return search if isinstance(search, dict) else {}


def production_set(task: Task, productions: ProductionSet | str | None = None,
                   library=None) -> ProductionSet:
    """The set named by the caller, else by the task's `[search] productions`, else the
    default for its input type. Placeholders take the task's feature groups, its
    `[search] intervals`, `shapelets` and `grids` if given, and its median series length."""
    if isinstance(productions, ProductionSet):
        return with_library(productions, library)
    opts = _options(task)
    name = productions or opts.get("productions") or default_set(task.input_type)
    groups = feature_groups(opts.get("feature_groups"), task.input_type)
    given = {k: opts[k + "s"] for k in ("interval", "shapelet", "grid") if k + "s" in opts}
    x = task.train.x
    length = int(x.weights.sum(1).median()) if isinstance(x, Seq) else None
    return with_library(load_productions(str(name), groups, library, given, length,
                                         task.num_classes, feature_count(task.input_type)),
                        library)


def resolve_config(task: Task, **given) -> SearchConfig:
    """Merge the caller's options (None: not given) over the task's `[search]` table. The
    defaults that depend on the task: about `node_steps` (150) optimizer steps per node,
    3x the task's learning rate (a few epochs must bring an affine program near its optimum,
    or complete programs look worse than the relaxations they are compared with), and a
    final retraining of at least 150 epochs at that rate, the task's seed, and at most 5%
    of the time limit (at least 1 s) for one node."""
    known = [f.name for f in fields(SearchConfig)]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise SearchError(f"unknown search option(s): {', '.join(unknown)}"
                          f"{did_you_mean(unknown[0], known)}")
    opts = _options(task)
    base = train_config(task)
    derived = {"epochs_per_node": node_epochs(task, int(opts.get("node_steps", 150))),
               "lr": 3 * base.lr, "final_epochs": max(base.epochs, 150), "seed": task.seed}
    values = {}  # kinds and ranges: checked below, as a task file's are
    for f in fields(SearchConfig):
        value = given.get(f.name)
        value = opts.get(f.name, derived.get(f.name)) if value is None else value
        if hasattr(value, "item"):  # a NumPy or torch scalar
            value = value.item()
        if f.metadata["key"].kind is float and isinstance(value, int) \
                and not isinstance(value, bool):
            value = float(value)
        values[f.name] = value
    chosen = {k: v for k, v in values.items() if v is not None}
    check_table(chosen, SEARCH, "search options", SearchError)
    config = replace(SearchConfig(), **chosen)
    if config.node_seconds is None:
        config = replace(config, node_seconds=max(1.0, 0.05 * config.time_limit))
    return config


def synthesize(task: Task | str | Path, *, productions: ProductionSet | str | None = None,
               library=None, on_progress: Callable[[Progress], None] | None = None,
               checkpoint: str | Path | None = None, resume: str | Path | None = None,
               checkpoint_every: float = 60.0, executor: str | None = None,
               ray_address: str | None = None, **options) -> SearchResult:
    """Search programs for `task` (a Task or a bundled task name) with NEAR.

    `options` are search settings by name (`settings.SearchConfig`: algorithm,
    time_limit, max_nodes, max_depth, workers, top_k, seed, cv_folds, relaxation, ...);
    one left out or None comes from the task's `[search]` table, then the default there.
    `time_limit` bounds the whole run: the search stops early enough for the finalists
    to be retrained in the rest (an estimate from the nodes' training times, at most
    `final_share` of the limit). Ctrl-C stops the search and still returns the best
    programs found so far (`stats.interrupted`). With `checkpoint` (A* only), the search
    state is saved there every `checkpoint_every` seconds and when the search stops
    (Ctrl-C included); `resume` continues from such a file (and keeps saving to it unless
    `checkpoint` names another), with a fresh time limit and the same node budget counted
    from the start. `executor` is where nodes train: "local" (this process), "pool"
    (`workers` local processes; the default when workers > 1) or "ray" (`workers` Ray
    tasks at a time, on the cluster at `ray_address` or on a new local one); the results
    do not depend on it.
    """
    start = time.perf_counter()
    task_ref = str(task) if isinstance(task, str | Path) else None  # a name or a file
    task = load_task(task) if task_ref else task
    config = resolve_config(task, **options)
    pset = production_set(task, productions, library)
    programs = ProgramGraph(task.input_type, task.output_type, pset, config.max_depth,
                            config.max_size, library)
    _check_expandable(programs, pset)
    train = replace(node_training(task, config), max_seconds=config.node_seconds)
    settings = NodeSettings(train, config.heuristic, config.hidden, config.seed, config.device,
                            config.relaxation)
    task = task.to(config.device)
    metric_scale = config.heuristic == "metric" and metrics.higher_is_better(task.metric)
    scale = 1.0 if metric_scale else loss_scale(task)
    scorer = Scorer(task, settings, task_ref, config.workers, library, executor, ray_address)
    graph = NeuralGraph(programs, scorer, config.cost_weight, scale, config.warm_start)
    search = Run(graph, Budget(config.time_limit - (time.perf_counter() - start),
                               config.max_nodes, config.workers,
                               config.workers * NODES_PER_PASS),
                 config.top_k, on_progress, show=lambda n: n.text,
                 reserve=lambda: final_reserve(task, config, scorer),
                 node_seconds=scorer.mean_seconds,
                 completion=partial(programs.first_complete, limit=COMPLETION_STEPS)
                 if config.completions else None)
    checkpoint = Path(checkpoint) if checkpoint else Path(resume) if resume else None
    try:
        if checkpoint is not None:
            _keep_checkpoints(search, scorer, programs, task, config, pset, checkpoint,
                              Path(resume) if resume else None, checkpoint_every)
        stats = algorithms.run(config.algorithm, search, config.frontier_capacity,
                               config.anytime, config.expansions)
        if checkpoint is not None:
            checkpoints.save(checkpoint, search, scorer, search.identity)
    finally:
        scorer.close()
    failures = tuple((text, score.error) for text, score in scorer.cache.items()
                     if score.error)
    others = sorted(search.complete.values(), key=lambda fn: (fn[0], fn[1].text))
    deadline = start + config.time_limit if stats.stopped_by == "time" else None
    found, dropped = finalists(task, candidates(search, programs), graph, config, library,
                               search.found_at, others, deadline)
    return SearchResult(found, stats, pset.name, config, failures, dropped, task,
                        scorer.restarts)


def _keep_checkpoints(search: Run, scorer: Scorer, programs: ProgramGraph, task: Task,
                      config: SearchConfig, pset: ProductionSet, path: Path,
                      resume: Path | None, every: float) -> None:
    """Resume from `resume`, if given; save to `path` before an A* pop once `every`
    seconds have passed since the last save."""
    if config.algorithm != "astar":
        raise SearchError("checkpoints are kept for A* searches only (--search astar)")
    search.identity = checkpoints.fingerprint(
        task, checkpoints.settings_of(config), [f"{p.text} {p.cost}" for p in pset.productions])
    if resume is not None:
        before = search.elapsed()
        checkpoints.load(resume, search, scorer, programs, search.identity)
        search.budget = replace(search.budget, time_limit=search.budget.time_limit
                                + search.elapsed() - before)
    last = [time.perf_counter()]

    def step(run: Run) -> None:
        if time.perf_counter() - last[0] >= every:
            checkpoints.save(path, run, scorer, run.identity)
            last[0] = time.perf_counter()

    search.on_step = step


def final_reserve(task: Task, config: SearchConfig, scorer: Scorer) -> float:
    """Seconds to keep for the finalists: about 3 * top_k programs, each trained once per
    fold and once more, each training ~final/node epochs as long as an average node so
    far (with a margin of 1.5), and at least `MIN_TRAINING_SECONDS` (cross-validation on
    small data is what makes the ranking hold); at most `final_share` of the limit, at
    least 2% of it."""
    node_seconds = scorer.mean_seconds()
    if node_seconds is None:
        return config.final_share * config.time_limit
    trainings = 3 * config.top_k * (config.cv_folds + 1 if config.cv_folds > 1 else 1)
    per = max(node_seconds * config.final_epochs / config.epochs_per_node * 1.5,
              MIN_TRAINING_SECONDS)
    return min(config.final_share, max(0.02, trainings * per / config.time_limit)) \
        * config.time_limit


def _steps_per_epoch(task: Task) -> int:
    return math.ceil(len(task.train) / train_config(task).batch_size)


def node_epochs(task: Task, steps: int) -> int:
    """Epochs for about `steps` optimizer steps: a budget in steps means the same on a task
    of 30 examples as on one of 3,000 (3 to 60 epochs)."""
    return max(3, min(60, math.ceil(steps / _steps_per_epoch(task))))


def node_training(task: Task, config: SearchConfig, steps_between_checks: int = 8,
                  patience: int = 3) -> TrainConfig:
    """How a node trains: `epochs_per_node` at the search's rate, validated about every 8
    optimizer steps rather than after every epoch (on a small training set an epoch is one
    step, and validating after each doubled a node's cost), and stopped after 3 checks
    without improvement."""
    return train_config(task, epochs=config.epochs_per_node, lr=config.lr, seed=config.seed,
                        eval_every=max(1, round(steps_between_checks / _steps_per_epoch(task))),
                        patience=patience)


def _check_expandable(programs: ProgramGraph, pset: ProductionSet) -> None:
    root = programs.root()
    if programs.first_complete(root) is None:
        raise SearchError(
            f"the production set '{pset.name}' cannot build a program of type {programs.type} "
            f"within depth {programs.max_depth}; name another set in the task's [search] "
            "table (productions = ...) or raise max_depth")
