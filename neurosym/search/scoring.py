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
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import torch
from torch import nn

from neurosym import metrics
from neurosym.convex import affine_weights, fit_exactly
from neurosym.interp.compiler import CompiledTerm, as_task_program, compile_term, part_key
from neurosym.interp.standardize import Standardize
from neurosym.interp.values import Seq
from neurosym.lang import ast
from neurosym.lang.checker import check_term
from neurosym.lang.errors import NeurosymError, SearchError
from neurosym.lang.parser import parse_term
from neurosym.lang.types import Arrow
from neurosym.search.rescale import rescaled_loss
from neurosym.search.skeleton import FeatureCache, Skeleton, skeleton
from neurosym.search.terms import hole_paths
from neurosym.tasks.spec import Task, load_task
from neurosym.train import (
    Member,
    MemberResult,
    Stack,
    TrainConfig,
    first_batch,
    losses_per_model,
    predict,
    set_training,
    set_up,
    snapshot,
    torch_threads,
)

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
    device: str = "cpu"  # where nodes train (the task's data is moved there)
    # what fills a hole: "trained" (a small network) or "features" (fixed random features
    # and an affine map, `relax.features`)
    relaxation: str = "features"


@dataclass(frozen=True, slots=True)
class NodeScore:
    h: float  # the heuristic value; inf if the program could not be trained
    val_loss: float
    val_metric: float
    seconds: float
    states: HoleStates | None = None  # each hole's trained relaxation, for warm starts
    error: str | None = None

    @classmethod
    def failed(cls, error: str | None, seconds: float = 0.0) -> NodeScore:
        """The score of a node that could not be trained (h is inf), and why."""
        return cls(math.inf, math.inf, math.nan, seconds, error=error)


def node_seed(seed: int, text: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(text.encode())) % (2**31)


def build(task: Task, term: ast.Term, hidden: int, library=None) -> CompiledTerm:
    """Check and compile a program of the task's type, with closed relaxations, on the
    device of the task's data."""
    return as_task_program(build_typed(Arrow(task.input_type, task.output_type), term,
                                       hidden, library, task.device))


def build_typed(t: Arrow, term: ast.Term, hidden: int, library=None,
                device: torch.device | str = "cpu") -> CompiledTerm:
    checked = check_term(term, t, library=library)
    for _, hole in hole_paths(term):
        checked.scopes[id(hole)] = ()
    return compile_term(term, checked, library, hidden=hidden).to(device)


def relaxations(model: CompiledTerm) -> list[nn.Module]:
    """The relaxation of each hole, in pre-order (the compiler keys parts by path); none
    if that ever changes, which only turns warm starts off."""
    keys = [part_key(path) for path, _ in hole_paths(model.term)]
    return [model.parts[k] for k in keys] if all(k in model.parts for k in keys) else []


def train_node(task: Task, text: str, settings: NodeSettings, warm: HoleStates | None = None,
               library=None) -> NodeScore:
    """Train one node from its text (so that it can run in another process)."""
    return train_nodes(task, [(text, warm)], settings, library)[0]


def train_nodes(task: Task, items: list[tuple[str, HoleStates | None]],
                settings: NodeSettings, library=None, features: FeatureCache | None = None
                ) -> list[NodeScore]:
    """Train nodes given by text (and warm starts), those of one skeleton together
    (`train.Stack`); each is scored as it would be alone."""
    scores: list[NodeScore | None] = [None] * len(items)
    for i, score in trained_nodes(task, items, settings, library, features):
        scores[i] = score
    return scores  # type: ignore[return-value]


def trained_nodes(task: Task, items: list[tuple[str, HoleStates | None]],
                  settings: NodeSettings, library=None, features: FeatureCache | None = None
                  ) -> Iterator[tuple[int, NodeScore]]:
    """`train_nodes`, as (index, score) pairs as soon as each is known: a node that
    cannot be built at once, the others group by group, in the order of each group's
    first node."""
    task = task.to(settings.device)
    features = features or FeatureCache(task, library)
    task_type = Arrow(task.input_type, task.output_type)
    groups: dict[tuple, list[tuple[int, Skeleton, list]]] = {}
    for i, (text, _) in enumerate(items):
        try:
            skel = skeleton(node_term(text, task_type, settings, library), task_type, library)
            values = [features.get(f, t) for f, t in zip(skel.features, skel.feature_types)]
        except (NeurosymError, RuntimeError, ValueError) as err:
            yield i, _failed(err, text)
            continue
        key = (skel.key, *(_shape(v) for pair in values for v in pair))
        groups.setdefault(key, []).append((i, skel, values))
    for group in groups.values():
        members = []
        for i, skel, values in group:
            text, warm = items[i]
            try:
                members.append((i, _member(task, skel, values, text,
                                           node_seed(settings.seed, text), warm, settings,
                                           library)))
            except (NeurosymError, RuntimeError, ValueError) as err:
                yield i, _failed(err, text)
        if members:
            yield from _train_group(task, members, settings)


def node_term(text: str, task_type: Arrow, settings: NodeSettings, library=None) -> ast.Term:
    """The term a node is scored as: its program, holes relaxed as the settings say."""
    term = parse_term(text)
    if settings.relaxation == "features":
        from neurosym.relax.features import relax_holes

        term = relax_holes(term, task_type, settings.hidden, settings.seed, library)
    return term


def _member(task: Task, skel, values, text: str, seed: int, warm: HoleStates | None,
            settings: NodeSettings, library) -> Member:
    """A node's skeleton built under its seed (as it would be alone), warm-started and
    set up on its first mini-batch."""
    torch.manual_seed(seed)
    model = as_task_program(build_typed(skel.type, skel.term, settings.hidden, library,
                                        task.device))
    for net, state in zip(relaxations(model), warm or ()):
        if state is not None:
            _load_matching(net, state)
    set_up(model, [train for train, _ in values],
           first_batch(len(task.train.y), seed, settings.train.batch_size), task.train.y)
    return Member(seed, model, [train for train, _ in values], [val for _, val in values],
                  text)


def _train_group(task: Task, group: list[tuple[int, Member]], settings: NodeSettings
                 ) -> list[tuple[int, NodeScore]]:
    """Vectorised over the members; one by one if the skeleton cannot run under `vmap`
    (and then a failure is that member's alone). Scoring too runs on the training's
    threads: the rescaled heuristic's small float64 solve took 1.4 ms on two threads
    against 0.6 ms on one."""
    with torch_threads(settings.train.threads):
        return _train_members(task, group, settings)


def _train_members(task: Task, group: list[tuple[int, Member]], settings: NodeSettings
                   ) -> list[tuple[int, NodeScore]]:
    if len(group) > 1:
        start = time.perf_counter()
        try:
            results = _fit_members([m for _, m in group], task, settings.train)
        except Exception:  # noqa: BLE001 (whatever vmap refuses, the loop below runs)
            pass  # and a fault of the machine (a device, memory) is raised there
        else:
            seconds = (time.perf_counter() - start) / len(group)
            return [(i, _score(task, m, r, settings, seconds))
                    for (i, m), r in zip(group, results)]
    out = []
    for i, m in group:
        start = time.perf_counter()
        try:
            result = _fit_members([m], task, settings.train)[0]
        except (NeurosymError, RuntimeError, ValueError) as err:
            out.append((i, _failed(err, m.text)))
            continue
        out.append((i, _score(task, m, result, settings, time.perf_counter() - start)))
    return out


def _fit_members(members: list[Member], task: Task, config: TrainConfig) -> list[MemberResult]:
    """`train.fit` for nodes of one skeleton at once: solved where the fit is convex,
    else descended together (`train.Stack`)."""
    if config.solve and affine_weights(members[0].model) is not None:
        results = _solved(members, task)
        if results is not None:
            return results
    weights = task.class_weights
    return Stack(members, (task.train.y, task.val.y),
                 lambda out, y: losses_per_model(task.loss, out, y, weights), config).descend()


# a partial node's solve: its h needs a few digits, not seven (L-BFGS on 6,345 weights
# over JapaneseVowels' 216 series and 9 classes ran 1,000 iterations, 4 s, for a heuristic)
RELAXED_TOLERANCE, RELAXED_ITERATIONS = 1e-4, 100


def _solved(members: list[Member], task: Task) -> list[MemberResult] | None:
    """Every member fitted to optimum, if the skeleton's fit is convex (`convex`); None
    (nothing changed) if it is not. A partial node (its holes relaxed as features) is
    solved to `RELAXED_TOLERANCE` in at most `RELAXED_ITERATIONS` steps, a complete
    program as `train.fit` solves it."""
    results = []
    for m in members:
        relaxed = ast.holes(parse_term(m.text)) > 0
        limits = dict(tolerance=RELAXED_TOLERANCE, max_iterations=RELAXED_ITERATIONS) \
            if relaxed else {}
        if fit_exactly(m.model, m.train, task.train.y, task.loss, task.class_weights,
                       **limits) is None:
            return None  # the same skeleton: none of the others is convex either
        set_training(m.model, False)
        with torch.no_grad():
            out = m.model(*m.val).unsqueeze(0)
        loss = losses_per_model(task.loss, out, task.val.y.unsqueeze(0), task.class_weights)[0]
        results.append(MemberResult(float(loss), out[0]) if torch.isfinite(loss)
                       else MemberResult(math.inf, None, "non-finite validation loss"))
    return results


def _score(task: Task, member: Member, result: MemberResult, settings: NodeSettings,
           seconds: float) -> NodeScore:
    if result.error is not None or result.val_out is None:
        return NodeScore.failed(result.error, seconds)
    h, metric = judge(task, result.val_out, settings.heuristic, result.val_loss)
    nets = relaxations(member.model)  # kept on the host: they may cross processes
    states = tuple({k: v.cpu() for k, v in snapshot(n).items()} for n in nets) if nets else None
    return NodeScore(h, result.val_loss, metric, seconds, states)


class MachineError(SearchError):
    """A node could not train for a reason that is not its program's (a device, memory):
    the search stops and says so, instead of scoring the node as a bad program."""


MACHINE_FAULTS = ("CUDA", "cuDNN", "MPS", "device", "out of memory")


def _failed(err: Exception, program: str | None = None) -> NodeScore:
    """The score of a node whose program could not train; raises `MachineError` if the
    fault is the machine's."""
    if isinstance(err, MachineError):  # from a worker
        raise err
    message = (str(err).splitlines() or [type(err).__name__])[0]
    if isinstance(err, MemoryError) or (isinstance(err, RuntimeError)
                                        and any(w in str(err) for w in MACHINE_FAULTS)):
        raise MachineError(f"could not train {program or 'a node'}: {message}") from err
    return NodeScore.failed(message)


def _shape(v) -> tuple:
    return ("seq", *v.data.shape[1:]) if isinstance(v, Seq) else tuple(v.shape[1:])


def heuristic(task: Task, model: nn.Module, kind: str, val_loss: float) -> tuple[float, float]:
    """h of a trained model (inf if not finite) and its validation metric: one objective
    for a search node and for a final candidate retrained in full."""
    return judge(task, predict(model, task.val.x), kind, val_loss)


def judge(task: Task, out: torch.Tensor, kind: str, val_loss: float) -> tuple[float, float]:
    """h of validation outputs `out` (inf if not finite) and their validation metric."""
    metric = metrics.score(task, out, task.val.y)
    if kind == "rescaled":  # a small solve, on the host
        weights = None if task.class_weights is None else task.class_weights.cpu()
        h = rescaled_loss(task.loss, out.detach().cpu(), task.val.y.cpu(), weights)
    elif kind == "metric":
        h = metric_h(task.metric, metric)
    else:
        h = val_loss
    return (h if math.isfinite(h) else math.inf), metric


def metric_h(metric: str, value: float) -> float:
    """A metric as a loss: 1 - value where higher is better (accuracy, F1), else itself."""
    return 1.0 - value if metrics.higher_is_better(metric) else value


def _load_matching(net: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """A parent's relaxation weights, if they fit; its input statistics are set up again
    from the child's own data."""
    own = net.state_dict()
    if own.keys() == state.keys() and all(own[k].shape == v.shape for k, v in state.items()):
        net.load_state_dict(state)
        for part in net.modules():
            if isinstance(part, Standardize):
                part.ready = False


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
    task = (load_task(task_ref) if isinstance(task_ref, str) else task_ref).to(settings.device)
    _WORKER.update(task=task, settings=settings, library=library,
                   features=FeatureCache(task, library))


def _work(items: list[tuple[str, HoleStates | None]]) -> list[NodeScore]:
    return train_nodes(_WORKER["task"], items, _WORKER["settings"], _WORKER["library"],
                       _WORKER["features"])


class Scorer:
    """Scores nodes by text, with a cache; the nodes of one call train together
    (`train_nodes`): in this process, split over a local pool of `workers` processes,
    or over Ray tasks (`executor="ray"`, on the cluster at `ray_address` or a local one).

    A worker that dies (killed, out of memory) or hangs past its time does not end the
    search: the pool is restarted and the nodes it held are tried again one by one (a
    node's seed comes from its text, so a retried node scores the same); a node lost
    `MAX_ATTEMPTS` times is scored as failed, with the reason."""

    MAX_ATTEMPTS = 3
    EXECUTORS = ("local", "pool", "ray")

    def __init__(self, task: Task, settings: NodeSettings, task_ref: Task | str | None = None,
                 workers: int = 1, library=None, executor: str | None = None,
                 ray_address: str | None = None) -> None:
        self.task, self.settings, self.library = task.to(settings.device), settings, library
        self.cache: dict[str, NodeScore] = {}
        self.features = FeatureCache(self.task, library)
        self.restarts = 0  # times the worker pool was lost and started again
        self._ok_seconds, self._ok = 0.0, 0  # training time of the nodes that trained
        self.workers = workers
        self.executor = executor or ("pool" if workers > 1 else "local")
        if self.executor not in self.EXECUTORS:
            raise ValueError(f"unknown executor {self.executor!r}; one of {self.EXECUTORS}")
        self._pool_args = (task_ref or task, settings, library)
        self.pool: ProcessPoolExecutor | None = \
            self._new_pool() if self.executor == "pool" else None
        self.ray = None
        if self.executor == "ray":
            from neurosym.search.ray_executor import RayWorkers

            self.ray = RayWorkers(task, settings, library, workers, ray_address)

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=self._pool_args)

    def score(self, items: list[tuple[str, HoleStates | None]]) -> list[NodeScore]:
        return list(self.scored(items))

    def scored(self, items: list[tuple[str, HoleStates | None]]) -> Iterator[NodeScore]:
        """Each item's score, in order, as soon as it is known: in this process, the
        first nodes' once their skeleton group has trained, so that A* holds (and
        reports) the first complete programs of a batch while the others train."""
        todo = [(t, w) for t, w in dict(items).items() if t not in self.cache]
        if self.executor == "local":
            done = trained_nodes(self.task, todo, self.settings, self.library, self.features)
            for text, _ in items:
                while text not in self.cache:
                    i, score = next(done)
                    self._keep(todo[i][0], score)
                yield self.cache[text]
            return
        if todo:  # one job per skeleton, the largest first: batched, and balanced
            self._in_workers(sorted(self._by_skeleton(todo), key=len, reverse=True))
        yield from (self.cache[t] for t, _ in items)

    def _by_skeleton(self, todo: list[tuple[str, HoleStates | None]]) -> list[list]:
        """The nodes grouped as `train_nodes` would group them (by skeleton; a node whose
        skeleton cannot be built goes alone, and fails in its worker)."""
        task_type = Arrow(self.task.input_type, self.task.output_type)
        groups: dict[str, list] = {}
        for item in todo:
            try:
                key = skeleton(node_term(item[0], task_type, self.settings, self.library),
                               task_type, self.library).key
            except (NeurosymError, RuntimeError, ValueError):
                key = "\0" + item[0]
            groups.setdefault(key, []).append(item)
        return list(groups.values())

    def _in_workers(self, parts: list[list[tuple[str, HoleStates | None]]]) -> None:
        attempts: dict[str, int] = {}
        while parts:
            results = self._run_ray(parts) if self.ray else self._run_pool(parts)
            lost, reason = [], ""
            for part, result in zip(parts, results):
                if isinstance(result, str):
                    lost.append(part)
                    reason = result
                    continue
                if isinstance(result, Exception):  # reported with the programs
                    result = [_failed(result) for _ in part]
                for (text, _), score in zip(part, result):
                    self._keep(text, score)
            if lost and self.pool is not None:
                self._restart()
            parts = []
            for item in (item for part in lost for item in part):
                attempts[item[0]] = attempts.get(item[0], 0) + 1
                if attempts[item[0]] < self.MAX_ATTEMPTS:
                    parts.append([item])  # alone now, to find the node at fault
                else:
                    self._keep(item[0], NodeScore.failed(
                        f"not scored: {reason} {self.MAX_ATTEMPTS} times"))

    def _run_ray(self, parts: list) -> list:
        return self.ray.run(parts, self._timeout(max(map(len, parts))))

    def _run_pool(self, parts: list) -> list:
        """Each slice's scores, the exception it raised, or why it was lost (a string)."""
        futures = self._submit(parts)
        out: list = []
        try:
            for part, fut in futures:
                try:
                    out.append(fut.result(timeout=self._timeout(len(part))))
                except FutureTimeout:
                    out.append("it did not answer in time")
                except BrokenProcessPool:
                    out.append("its worker process died")
                except Exception as err:  # noqa: BLE001 (reported with the programs)
                    out.append(err)
        finally:
            for _, fut in futures:
                fut.cancel()
        return out

    def _submit(self, parts: list) -> list[tuple[list, Future]]:
        try:
            return [(part, self.pool.submit(_work, part)) for part in parts]
        except (BrokenProcessPool, OSError):  # a worker died while the pool was idle (if
            # the pool had not noticed yet, spawning its replacement finds closed pipes)
            self._restart()
            return [(part, self.pool.submit(_work, part)) for part in parts]

    def _timeout(self, nodes: int) -> float | None:
        """How long a slice may take: generous, only so that a hung worker is noticed (a
        dead one is noticed at once). It counts from when the slice is collected, so
        it also covers waiting for a worker to start (importing torch on a busy
        machine took over a minute)."""
        per_node = self.settings.train.max_seconds
        return None if per_node is None else 300 + 4 * per_node * nodes

    def _restart(self) -> None:
        """Stop what is left of the pool (a hung worker too) and start a new one."""
        _stop(self.pool)
        self.pool = self._new_pool()
        self.restarts += 1

    def _keep(self, text: str, score: NodeScore) -> None:
        self.cache[text] = score
        if score.error is None:
            self._ok_seconds, self._ok = self._ok_seconds + score.seconds, self._ok + 1

    def mean_seconds(self) -> float | None:
        """The mean training time of the nodes that trained so far (None before any):
        kept as a running sum, since the search asks for it before every node."""
        return self._ok_seconds / self._ok if self._ok else None

    def close(self) -> None:
        if self.pool is not None:
            _stop(self.pool)
            self.pool = None
        if self.ray is not None:
            self.ray.close()
            self.ray = None


def _stop(pool: ProcessPoolExecutor) -> None:
    """Shut a pool down without waiting for its work, kill its workers (one killed while
    it held the pool's queue lock leaves the others blocked for ever, and the interpreter
    waits for them at exit), and let its manager thread finish closing its pipes before a
    new pool opens its own (else the two race on file descriptor numbers, and spawning
    fails with "bad value(s) in fds_to_keep")."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
        process.join(timeout=5)
    manager = getattr(pool, "_executor_manager_thread", None)
    if manager is not None:
        manager.join(timeout=10)
