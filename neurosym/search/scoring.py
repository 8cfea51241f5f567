"""The NEAR heuristic: train a (partial) program briefly, holes relaxed, and read its
validation loss. Runs in the search process or in a pool of workers.

Each node is trained under its own seed (the search seed mixed with a hash of its text),
so a score does not depend on which worker trained it or in which order. Relaxations are
closed functions of their arguments (the scope the checker records is cleared): a hole
that could read the whole input would score every partial program alike.
"""

from __future__ import annotations

import math
import multiprocessing
import signal
import zlib
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace

import torch
from torch import nn

from neurosym import metrics
from neurosym.interp.compiler import CompiledTerm, compile_term, part_key
from neurosym.lang import ast
from neurosym.lang.checker import check_term
from neurosym.lang.errors import NeurosymError
from neurosym.lang.parser import parse_term
from neurosym.lang.types import Arrow
from neurosym.search.terms import hole_paths
from neurosym.tasks.spec import Task, load_task
from neurosym.train import TrainConfig, fit, loss_function, predict, snapshot

HoleStates = tuple[dict[str, torch.Tensor] | None, ...]


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """How one node is trained and scored: the same for every node of a search."""

    train: TrainConfig
    # "rescaled": validation loss after the best affine rescaling of the outputs; "loss":
    # plain validation loss; "metric": 1 - validation metric (or the mse)
    heuristic: str = "rescaled"
    hidden: int = 32
    seed: int = 0


@dataclass(frozen=True, slots=True)
class NodeScore:
    h: float  # the heuristic value; inf if the program could not be trained
    val_loss: float
    val_metric: float
    seconds: float
    states: HoleStates | None = None  # each hole's trained relaxation, for warm starts
    error: str | None = None


def node_seed(seed: int, text: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(text.encode())) % (2**31)


def build(task: Task, term: ast.Term, hidden: int, library=None) -> CompiledTerm:
    """Check and compile a program of the task's type, with closed relaxations."""
    return build_typed(Arrow(task.input_type, task.output_type), term, hidden, library)


def build_typed(t: Arrow, term: ast.Term, hidden: int, library=None) -> CompiledTerm:
    checked = check_term(term, t, library=library)
    for _, hole in hole_paths(term):
        checked.scopes[id(hole)] = ()
    return compile_term(term, checked, library, hidden=hidden)


def relaxations(model: CompiledTerm) -> list[nn.Module]:
    """The relaxation of each hole, in pre-order (the compiler keys parts by path); none
    if that ever changes, which only turns warm starts off."""
    keys = [part_key(path) for path, _ in hole_paths(model.term)]
    return [model.parts[k] for k in keys] if all(k in model.parts for k in keys) else []


def train_node(task: Task, text: str, settings: NodeSettings, warm: HoleStates | None = None,
               library=None) -> NodeScore:
    """Train one node from its text (so that it can run in another process)."""
    seed = node_seed(settings.seed, text)
    torch.manual_seed(seed)
    try:
        model = build(task, parse_term(text), settings.hidden, library)
        nets = relaxations(model)
        for net, state in zip(nets, warm or ()):
            if state is not None:
                _load_matching(net, state)
        result = fit(model, (task.train.x, task.train.y), (task.val.x, task.val.y), task.loss,
                     replace(settings.train, seed=seed), task.class_weights)
        h, metric = heuristic(task, model, settings.heuristic, result.val_loss)
    except (NeurosymError, RuntimeError, ValueError) as err:
        return NodeScore(math.inf, math.inf, math.nan, 0.0, error=str(err).splitlines()[0])
    states = tuple(snapshot(n) for n in nets) if nets else None
    return NodeScore(h, result.val_loss, metric, result.seconds, states)


def heuristic(task: Task, model: nn.Module, kind: str, val_loss: float) -> tuple[float, float]:
    """h of a trained model (inf if not finite) and its validation metric: one objective
    for a search node and for a final candidate retrained in full."""
    out = predict(model, task.val.x)
    metric = metrics.score(task, out, task.val.y)
    if kind == "rescaled":
        h = rescaled_loss(task, out, task.val.y)
    elif kind == "metric":
        h = metric_h(task.metric, metric)
    else:
        h = val_loss
    return (h if math.isfinite(h) else math.inf), metric


def rescaled_loss(task: Task, out: torch.Tensor, y: torch.Tensor,
                  max_scale: float = 4.0) -> float:
    """The validation loss of `a * out + b`, with the best offset b and scale a (up to
    `max_scale` for classification). A few epochs leave a simple program's outputs right
    but timid (a linear classifier's logits still small) while a relaxation's MLP is
    already sharp, so the plain loss ranks a right program below partial ones; more
    training would sharpen it. The cap keeps a validation set that every candidate
    separates from scoring them all zero. Never above the plain loss."""
    out = out.detach().reshape(len(y), -1).double()
    if task.loss == "mse":  # least squares per output, in closed form
        target = y.reshape(len(y), -1).double()
        design = torch.stack([out, torch.ones_like(out)], 2)  # [n, d, 2]
        fitted = [torch.linalg.lstsq(design[:, j], target[:, j:j + 1]).solution
                  for j in range(out.shape[1])]
        pred = torch.cat([design[:, j] @ w for j, w in enumerate(fitted)], 1)
        return float(((pred - target) ** 2).mean())
    loss = loss_function(task.loss, None if task.class_weights is None
                         else task.class_weights.double())
    target = y.double() if task.loss == "bce" else y
    out = out.reshape(y.shape) if task.loss == "bce" else out
    # a = max_scale * sigmoid(t), starting at a = 1
    t = torch.full((), -math.log(max_scale - 1), dtype=torch.float64, requires_grad=True)
    offset = torch.zeros(out.shape[1:], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([t, offset], lr=1.0, max_iter=30, line_search_fn="strong_wolfe")
    value = lambda: loss(max_scale * torch.sigmoid(t) * out + offset, target)  # noqa: E731

    def closure() -> torch.Tensor:
        opt.zero_grad()
        v = value()
        v.backward()
        return v

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        plain, best = float(loss(out, target)), float(value())
    return min(plain, best) if math.isfinite(best) else plain


def metric_h(metric: str, value: float) -> float:
    """A metric as a loss: 1 - value where higher is better (accuracy, F1), else itself."""
    return 1.0 - value if metrics.higher_is_better(metric) else value


def _load_matching(net: nn.Module, state: dict[str, torch.Tensor]) -> None:
    own = net.state_dict()
    if own.keys() == state.keys() and all(own[k].shape == v.shape for k, v in state.items()):
        net.load_state_dict(state)


def loss_scale(task: Task) -> float:
    """The loss of knowing nothing (uniform classes; the variance of the targets), so
    that a structural cost weight means the same on every task."""
    if task.loss == "cross_entropy":
        return math.log(task.num_classes)
    if task.loss == "bce":
        return math.log(2.0)
    return max(float(task.train.y.float().var()), 1e-6)


# ---- worker pool ------------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(task_ref: Task | str, settings: NodeSettings, library) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the search process's to handle
    torch.set_num_threads(1)
    task = load_task(task_ref) if isinstance(task_ref, str) else task_ref
    _WORKER.update(task=task, settings=settings, library=library)


def _work(text: str, warm: HoleStates | None) -> NodeScore:
    return train_node(_WORKER["task"], text, _WORKER["settings"], warm, _WORKER["library"])


class Scorer:
    """Scores nodes by text, with a cache; `workers > 1` trains siblings in parallel."""

    def __init__(self, task: Task, settings: NodeSettings, task_ref: Task | str | None = None,
                 workers: int = 1, library=None) -> None:
        self.task, self.settings, self.library = task, settings, library
        self.cache: dict[str, NodeScore] = {}
        self.trained = 0
        self._ok_seconds, self._ok = 0.0, 0  # training time of the nodes that trained
        self.pool: ProcessPoolExecutor | None = None
        if workers > 1:
            ctx = multiprocessing.get_context("spawn")
            self.pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                            initargs=(task_ref or task, settings, library))

    def score(self, items: list[tuple[str, HoleStates | None]]) -> list[NodeScore]:
        todo = [(t, w) for t, w in dict(items).items() if t not in self.cache]
        if self.pool is None:
            for text, warm in todo:
                self._keep(text, train_node(self.task, text, self.settings, warm,
                                            self.library))
        else:
            futures: list[Future] = [self.pool.submit(_work, t, w) for t, w in todo]
            try:
                for (text, _), fut in zip(todo, futures):
                    self._keep(text, fut.result())
            finally:
                for fut in futures:
                    fut.cancel()
        return [self.cache[t] for t, _ in items]

    def _keep(self, text: str, score: NodeScore) -> None:
        self.cache[text] = score
        self.trained += 1
        if score.error is None:
            self._ok_seconds, self._ok = self._ok_seconds + score.seconds, self._ok + 1

    def mean_seconds(self) -> float | None:
        """The mean training time of the nodes that trained so far (None before any):
        kept as a running sum, since the search asks for it before every node."""
        return self._ok_seconds / self._ok if self._ok else None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
