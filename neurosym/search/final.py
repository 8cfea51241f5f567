"""The end of a search: the finalists (the best complete programs and the cheapest
completions of the best partial ones) retrained in full from fresh weights, within what is
left of the time limit, and ranked by the search's own objective measured again."""

from __future__ import annotations

import math
import time
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from neurosym.evaluate import Evaluation, train_and_evaluate, train_config
from neurosym.interp.compiler import CompiledTerm
from neurosym.lang import ast
from neurosym.lang.errors import NeurosymError
from neurosym.search.algorithms import Run
from neurosym.search.graph import Node, ProgramGraph
from neurosym.search.scoring import build, heuristic
from neurosym.tasks.spec import Task

if TYPE_CHECKING:
    from neurosym.search.synthesis import NeuralGraph, SearchConfig


@dataclass(frozen=True, slots=True, eq=False)
class FoundProgram:
    """A complete program retrained with the full budget. `cost` is its structural cost
    (sum of production costs), `f` its score in the search (short training; None for a
    completion of a partial program that the search did not train), `final_f` the same
    objective after full training (what the programs are ranked by), `found_at` the
    seconds into the search when it was first trained (None for such a completion)."""

    term: ast.Term
    text: str
    size: int
    cost: float
    f: float | None
    evaluation: Evaluation
    model: CompiledTerm
    found_at: float | None = None
    final_f: float = math.inf


def candidates(search: Run, programs: ProgramGraph) -> list[tuple[float | None, Node]]:
    """The top-k complete programs and the cheapest completions of the top-k partial ones:
    a relaxation can fit better than any complete program trained briefly, so the search
    may not have met the best completions of its best nodes (and on a small budget it
    may have met no complete program at all)."""
    found: list[tuple[float | None, Node]] = list(search.best())
    seen = {node.text for _, node in found}
    partial = [node for _, node in search.best_partial()] or [programs.root()]
    for start in partial:
        node = programs.first_complete(start)
        if node is not None and node.text not in seen:
            found.append((None, node))  # never trained in the search: no f
            seen.add(node.text)
    return found


def finalists(task: Task, found: list[tuple[float | None, Node]], graph: NeuralGraph,
              config: SearchConfig, library, deadline: float,
              found_at: dict[Hashable, float]) -> tuple[list[FoundProgram],
                                                         tuple[tuple[str, str], ...]]:
    """Retrain each candidate, sharing the time left before `deadline` among those still
    to train (each gets at least 1% of the limit); rank by f after full training. Returns
    the top-k and the (program, reason) of the candidates that failed."""
    final = train_config(task, epochs=config.final_epochs, lr=config.lr, seed=config.seed,
                         patience=max(train_config(task).patience, 30))
    kept, dropped = [], []
    for i, (f, node) in enumerate(found):
        share = (deadline - time.perf_counter()) / (len(found) - i)
        seconds = max(share, 0.01 * config.time_limit)
        try:
            kept.append(_retrain(task, f, node, replace(final, max_seconds=seconds), graph,
                                 config, library, found_at.get(node.text)))
        except (NeurosymError, RuntimeError, ValueError) as err:
            dropped.append((node.text, str(err).splitlines()[0]))
    kept.sort(key=lambda p: p.final_f)
    return kept[: config.top_k], tuple(dropped)


def _retrain(task: Task, f: float | None, node: Node, train, graph: NeuralGraph,
             config: SearchConfig, library, found_at: float | None) -> FoundProgram:
    """Full training from fresh weights; raises if it fails (a non-finite loss at the
    final learning rate, say)."""
    torch.manual_seed(train.seed)
    model = build(task, node.term, config.hidden, library)
    evaluation = train_and_evaluate(model, task, train)
    h, _ = heuristic(task, model, config.heuristic, evaluation.val_loss)
    return FoundProgram(node.term, node.text, ast.size(node.term), node.cost, f, evaluation,
                        model, found_at, graph.f(node, h))
