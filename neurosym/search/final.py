"""The end of a search: the finalists (the best complete programs, the best of each
leading family, the cheapest completions of the best partial ones, and every other
complete program whose fit is convex) retrained in full from fresh weights, for a budget
of epochs that no clock cuts (a convex fit is solved exactly), and ranked by the search's
own objective measured again: by k-fold cross-validation on train + validation when the data
is small (a validation split of 10 examples cannot tell programs apart), else on the
validation split. A program ranked by cross-validation is then refit on train +
validation together (solved again, or for the number of epochs that was best on its
folds): on small data every example counts."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from neurosym.convex import affine_weights, design
from neurosym.evaluate import Evaluation, train_and_evaluate, train_config, train_on_task
from neurosym.interp.compiler import CompiledTerm
from neurosym.interp.values import concat
from neurosym.lang import ast
from neurosym.lang.errors import NeurosymError
from neurosym.lang.printer import show
from neurosym.search.algorithms import Run
from neurosym.search.graph import Node, ProgramGraph
from neurosym.search.scoring import build, heuristic
from neurosym.settings import SearchConfig
from neurosym.tasks.spec import Split, Task
from neurosym.tasks.splits import stratified_folds
from neurosym.train import first_batch, set_up, torch_threads

if TYPE_CHECKING:
    from neurosym.search.synthesis import NeuralGraph


MIN_TRAINING_SECONDS = 0.5  # a finalist's training, or one fold's, takes at least this


@dataclass(frozen=True, slots=True, eq=False)
class FoundProgram:
    """A complete program retrained with the full budget. `cost` is its structural cost
    (sum of production costs), `f` its score in the search (short training; None for a
    completion of a partial program that the search did not train), `final_f` the same
    objective after full training (what the programs are ranked by), `found_at` the
    seconds into the search when it was first trained (None for such a completion).
    `text` is the structure the search found (its key); `printed` the same program with
    what it learned written in (`interval[0.31:0.47]` for a learned `interval`). With
    `cv`, the model was refit on train + validation, so its validation score is in-sample
    and `final_f` is the mean over the folds."""

    term: ast.Term
    text: str
    size: int
    cost: float
    f: float | None
    evaluation: Evaluation
    model: CompiledTerm
    found_at: float | None = None
    final_f: float = math.inf
    cv: CrossValidation | None = None
    printed: str = ""


@dataclass(frozen=True, slots=True)
class CrossValidation:
    """f, the task's metric and the best epoch on each held-out fold (train + validation,
    stratified), over `repeats` different splits into folds."""

    f: tuple[float, ...]
    metric: tuple[float, ...]
    epochs: tuple[int, ...] = ()
    repeats: int = 1

    @property
    def folds(self) -> int:
        return len(self.f) // self.repeats

    @property
    def mean_f(self) -> float:
        return statistics.fmean(self.f)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.metric)

    @property
    def std(self) -> float:
        return statistics.stdev(self.metric) if len(self.metric) > 1 else 0.0

    def summary(self) -> dict:
        """What a saved model's record and `--json` say of it."""
        return {"folds": self.folds, "repeats": self.repeats, "mean": self.mean,
                "std": self.std}


def candidates(search: Run, programs: ProgramGraph) -> list[tuple[float | None, Node]]:
    """The top-k complete programs; the best complete program of each of the 2k best
    families (a family: the programs below one child of the root, one top-level
    production such as `?? (paa[8] xs)` or `?? (shapelet[30, 8] xs)`); the cheapest
    completions of the top-k partial programs; and the cheapest program of all.
    Brief training scored on a small validation split can rank a whole family low (on
    GunPoint, seed 2, every shapelet program came below 45 others, while 5-fold CV ranks
    it first); a relaxation can fit better than any complete program trained briefly, so
    the search may not have met the best completions of its best nodes (and on a small
    budget it may have met no complete program at all); and the simplest program (a
    linear map of every input, say), ranked low after brief training, must still meet
    the others after full training."""
    ranked = sorted(search.complete.values(), key=lambda fn: fn[0])
    best_of_family: dict[str, tuple[float, Node]] = {}
    for f, node in ranked:
        best_of_family.setdefault(family(node), (f, node))
    partial = [node for _, node in search.best_partial()] + [programs.root()]
    # completions were never trained in the search: no f
    completions = [(None, programs.first_complete(start)) for start in partial]
    found: dict[str, tuple[float | None, Node]] = {}
    for f, node in (ranked[: search.top_k] + list(best_of_family.values())[: 2 * search.top_k]
                    + completions):
        if node is not None:
            found.setdefault(node.text, (f, node))
    return list(found.values())


def family(node: Node) -> str:
    """The text of the root's child that `node` descends from (itself, for the root)."""
    while node.parent is not None and node.parent.parent is not None:
        node = node.parent
    return node.text


def finalists(task: Task, found: list[tuple[float | None, Node]], graph: NeuralGraph,
              config: SearchConfig, library, found_at: dict[Hashable, float],
              others: list[tuple[float, Node]] = (), deadline: float | None = None,
              ) -> tuple[list[FoundProgram], tuple[tuple[str, str], ...]]:
    """Retrain each candidate in full, and cross-validate it on small data; then the
    other complete programs of the search (`others`, best first, at most
    `MAX_SOLVED_OTHERS`) whose fit is convex, since their folds are solved exactly in
    milliseconds. Rank by f after full training (its mean over the folds, with CV). A
    program whose fit is convex is cross-validated over `CV_REPEATS` splits into folds
    (its mean f varies less), the others over one. No fit reads the clock: a program is
    fitted the same on an idle and a busy machine (`--time-limit` ends the search, never
    a finalist's training). Past `deadline` (`time.perf_counter()`; given when the time
    limit ended the search), no further candidate whose fit is not convex is started
    (the first always is): that changes which programs compete, as the limit changes how
    far the search got, never how one is fitted. Returns the top-k and the (program,
    reason) of the candidates that failed or were not fitted."""
    final = train_config(task, epochs=config.final_epochs, lr=config.lr, seed=config.seed,
                         patience=max(train_config(task).patience, 30))
    folds = cv_folds(task, config.cv_folds, config.seed)
    repeated = [fold for r in range(CV_REPEATS)
                for fold in cv_folds(task, config.cv_folds, config.seed + r)]
    seen = {node.text for _, node in found}
    extra = [(f, node) for f, node in others if node.text not in seen
             and convex_fit(task, node.term, config.hidden, library)][:MAX_SOLVED_OTHERS]
    solved = {node.text for _, node in extra}
    kept, dropped = [], []
    with torch_threads(final.threads):  # its scores' small solves too (`_train_group`)
        for f, node in [*found, *extra]:
            try:
                convex = node.text in solved or convex_fit(task, node.term, config.hidden,
                                                           library)
                if deadline is not None and kept and not convex and time.perf_counter() > deadline:
                    dropped.append((node.text, "not fitted: the time limit was reached"))
                    continue
                cv = cross_validate(task, node, repeated if convex else folds, final, graph,
                                    config, library)
                if cv is not None and convex:
                    cv = dataclasses.replace(cv, repeats=CV_REPEATS)
                kept.append(_retrain(task, f, node, final, graph, config, library,
                                     found_at.get(node.text), cv))
            except (NeurosymError, RuntimeError, ValueError) as err:
                dropped.append((node.text, str(err).splitlines()[0]))
    kept.sort(key=lambda p: (p.final_f, p.cost, p.text))
    if config.selection == "one_se":
        kept = one_standard_error(kept)
    return kept[: config.top_k], tuple(dropped)


def one_standard_error(ranked: list[FoundProgram]) -> list[FoundProgram]:
    """`ranked` (best f first) with the cheapest program whose mean f over the folds is
    within one standard error of the best's moved to the front (Breiman et al.'s rule:
    among programs the folds cannot tell apart, the simplest)."""
    best = ranked[0] if ranked else None
    if best is None or best.cv is None or len(best.cv.f) < 2:
        return ranked
    # (repeated splits are not independent: the error is taken over one split's folds)
    bound = best.final_f + statistics.stdev(best.cv.f) / math.sqrt(best.cv.folds)
    pick = min((p for p in ranked if p.final_f <= bound), key=lambda p: (p.cost, p.final_f))
    return [pick, *(p for p in ranked if p is not pick)]


MAX_SOLVED_OTHERS = 64  # complete programs with a convex fit cross-validated beyond the finalists
# splits into folds averaged for a program whose fit is convex (solved: cheap): on 36
# ArrowHead series, one split's 5 folds ranked `affine (spectrum[16] xs)` (test 0.51)
# above `affine (paa[16] xs)` (0.70); over three splits, paa[16] is first by far
CV_REPEATS = 3


def convex_fit(task: Task, term: ast.Term, hidden: int, library) -> bool:
    """Whether the program's fit on the task is convex (solved exactly, `convex`)."""
    model = build(task, term, hidden, library)
    if affine_weights(model) is None:
        return False
    set_up(model, [task.train.x], first_batch(len(task.train.y), task.seed,
                                               train_config(task).batch_size), task.train.y)
    return design(model, [task.train.x], len(task.train.y)) is not None


def cv_folds(task: Task, k: int, seed: int, max_examples: int = 2000) -> list[Task]:
    """The task with train + validation split into k stratified folds, one task per fold
    (that fold as validation); none if k < 2 or the data is large enough for its split."""
    n = len(task.train) + len(task.val)
    if k < 2 or n > max_examples or n < 2 * k:
        return []
    pool = pooled(task)
    labels = pool.y if task.num_classes else None
    parts = stratified_folds(labels, n, k, seed)
    every = torch.arange(n)
    return [dataclasses.replace(task, train=pool.subset(every[~torch.isin(every, held)]),
                                val=pool.subset(held)) for held in parts]


def pooled(task: Task) -> Split:
    """Train and validation examples together."""
    return Split(concat(task.train.x, task.val.x), torch.cat([task.train.y, task.val.y]))


def cross_validate(task: Task, node: Node, folds: list[Task], train, graph: NeuralGraph,
                   config: SearchConfig, library) -> CrossValidation | None:
    if not folds:
        return None
    fs, scores, epochs = [], [], []
    for fold in folds:
        torch.manual_seed(train.seed)
        model = build(fold, node.term, config.hidden, library)
        result = train_on_task(model, fold, train)
        h, metric = heuristic(fold, model, config.heuristic, result.val_loss)
        fs.append(graph.f(node, h))
        scores.append(metric)
        epochs.append(result.best_epoch)
    return CrossValidation(tuple(fs), tuple(scores), tuple(epochs))


def _retrain(task: Task, f: float | None, node: Node, train, graph: NeuralGraph,
             config: SearchConfig, library, found_at: float | None,
             cv: CrossValidation | None) -> FoundProgram:
    """Full training from fresh weights; raises if it fails (a non-finite loss at the
    final learning rate, say). With `cv`, on train + validation for the median of the
    folds' best epochs (no early stopping: the validation split is part of the fit)."""
    torch.manual_seed(train.seed)
    model = build(task, node.term, config.hidden, library)
    if cv is None:
        evaluation = train_and_evaluate(model, task, train)
        h, _ = heuristic(task, model, config.heuristic, evaluation.val_loss)
        final_f = graph.f(node, h)
    else:
        epochs = max(1, round(statistics.median(cv.epochs)))
        refit = replace(train, epochs=epochs, patience=epochs)
        evaluation = train_and_evaluate(model, replace(task, train=pooled(task)), refit)
        final_f = cv.mean_f
    return FoundProgram(node.term, node.text, ast.size(node.term), node.cost, f, evaluation,
                        model, found_at, final_f, cv, show(model.learned_term()))
