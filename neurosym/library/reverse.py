"""Reverse transfer (NTPT's term): a later task improves a library function that earlier
tasks use, and the earlier tasks with it.

When a step's program reuses `lib.F` with fine-tuning, its copy of F has learned from the
new task alone, and may have forgotten what the earlier tasks needed. `reverse_transfer`
trains that copy on the new task *together with a replay* of every earlier task that uses
F (its training data reloaded from the task's name, fraction and seed, and checked by a
hash of its examples): one model over all of them whose output is each example's loss,
each task weighted equally, trained by `train.descend` (the one training loop: Adam, early
stopping on the tasks' joint validation loss). Only F and the new program's own parts
train; the earlier programs' own parts stay as stored (they are not refit), so an earlier
task changes only through F.

The improved F is stored as the next version of F only if some earlier task improves on
its validation split (a lower error, or the same error and a lower loss) and none gets
worse: a validation error may rise by at most `tolerance` of its value before (or 0.005,
whichever is larger). The test scores before and after are reported beside, never used
to decide.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from neurosym import metrics
from neurosym.interp.compiler import CompiledTerm
from neurosym.interp.values import flatten_values, index
from neurosym.lang import ast
from neurosym.lang.errors import TaskError
from neurosym.library.entry import Entry, Provenance
from neurosym.library.store import Library
from neurosym.library.transfer import error_of
from neurosym.tasks.spec import Task
from neurosym.train import TrainConfig, descend, example_losses, predict

TOLERANCE = 0.05  # an earlier task's validation error may rise by 5% of itself
FLOOR = 0.005  # ... or by this much, whichever is larger


@dataclass(frozen=True, slots=True)
class Replayed:
    """An earlier task and the program it kept: compiled, its `lib.F` to be swapped, or
    None if that program is F itself (the task that made F)."""

    task: Task
    model: CompiledTerm | None
    data_hash: str  # of its training examples when it was learned

    def program(self, name: str, function: nn.Module) -> nn.Module:
        """The earlier program computing `lib.name` with `function`."""
        return function if self.model is None else use_function(self.model, name, function)


@dataclass(frozen=True, slots=True)
class EarlierScore:
    task: str
    metric: str
    val_before: float
    val_after: float
    test_before: float
    test_after: float
    val_loss_before: float
    val_loss_after: float

    @property
    def worse(self) -> bool:
        return _error_rose(self.metric, self.val_before, self.val_after)

    @property
    def improved(self) -> bool:
        """Lower validation error, or the same and a lower validation loss."""
        before, after = (error_of(self.metric, v) for v in (self.val_before, self.val_after))
        return after < before or (after == before and self.val_loss_after < self.val_loss_before)


@dataclass(frozen=True, slots=True)
class ReverseResult:
    function: str  # NAME@VERSION fine-tuned
    earlier: tuple[EarlierScore, ...]
    stored: Entry | None  # the new version, if kept
    epochs: int

    @property
    def accepted(self) -> bool:
        return self.stored is not None


def data_hash(task: Task) -> str:
    """A digest of a task's training examples, to check that a replay reloads them."""
    digest = hashlib.sha256()
    for t in flatten_values([task.train.x, task.train.y]):
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _error_rose(metric: str, before: float, after: float, tolerance: float = TOLERANCE) -> bool:
    b, a = error_of(metric, before), error_of(metric, after)
    return a > b + max(tolerance * b, FLOOR)


def shared_function(model: CompiledTerm, name: str) -> nn.Module:
    """The module of the (first) `lib.name` reference in `model`."""
    for node in ast.walk(model.term):
        if isinstance(node, ast.LibRef) and node.name == name and id(node) in model._keys:
            return model.parts[model._keys[id(node)]]
    raise TaskError(f"the program {model.term} does not use lib.{name}")


def use_function(model: CompiledTerm, name: str, function: nn.Module) -> CompiledTerm:
    """`model` with every `lib.name` reference computed by `function` (one shared module:
    what trains in one program changes the others)."""
    for node in ast.walk(model.term):
        if isinstance(node, ast.LibRef) and node.name == name and id(node) in model._keys:
            model.parts[model._keys[id(node)]] = function
    return model


class _Joint(nn.Module):
    """Several tasks' programs as one model over row numbers: row r is example `local[r]`
    of task `owner[r]`, and the output is that example's loss, weighted so that every
    task counts the same whatever its size. Row numbers cover each task's training rows,
    then its validation rows (`split` tells them apart)."""

    def __init__(self, tasks: Sequence[Task], models: Sequence[nn.Module]) -> None:
        super().__init__()
        self.tasks, self.programs = list(tasks), nn.ModuleList(models)
        owner, local, split = [], [], []
        for t, task in enumerate(self.tasks):
            for s, part in enumerate((task.train, task.val)):
                owner += [t] * len(part.y)
                local += range(len(part.y))
                split += [s] * len(part.y)
        self.owner, self.local = torch.tensor(owner), torch.tensor(local)
        self.split = torch.tensor(split)

    def rows(self, split: int) -> torch.Tensor:
        return (self.split == split).nonzero()[:, 0]

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(rows))
        for t, (task, program) in enumerate(zip(self.tasks, self.programs)):
            for s, part in enumerate((task.train, task.val)):
                mask = (self.owner[rows] == t) & (self.split[rows] == s)
                if not mask.any():
                    continue
                idx = self.local[rows[mask]]
                each = example_losses(task.loss, program(index(part.x, idx)), index(part.y, idx),
                                      task.class_weights)
                out = out.index_put((mask.nonzero()[:, 0],),
                                    each * (len(rows) / (len(self.tasks) * int(mask.sum()))))
        return out


def _scores(task: Task, model: nn.Module) -> tuple[float, float, float]:
    """Validation and test metric, and the validation loss."""
    val = predict(model, task.val.x)
    return (metrics.score(task, val, task.val.y),
            metrics.score(task, predict(model, task.test.x), task.test.y),
            float(example_losses(task.loss, val, task.val.y, task.class_weights).mean()))


def reverse_transfer(library: Library, name: str, version: int,
                     current: tuple[Task, CompiledTerm], earlier: Sequence[Replayed],
                     config: TrainConfig, tolerance: float = TOLERANCE) -> ReverseResult:
    """Fine-tune `current`'s copy of `lib.name@version` on its task together with a replay
    of the `earlier` tasks (each program made to share that copy), and store it as the
    next version of `name` if no earlier task's validation error rises beyond
    `tolerance`. Earlier programs' own parts are not refit."""
    task, model = current
    function = shared_function(model, name)
    for p in function.parameters():
        p.requires_grad_(True)
    for replay in earlier:
        if data_hash(replay.task) != replay.data_hash:
            raise TaskError(f"cannot replay {replay.task.name}: its training data is not what "
                            "it was when the task was learned (the hash differs)")
        for part in (replay.model.parts.values() if replay.model is not None else ()):
            for p in part.parameters():  # their own parts stay as stored
                p.requires_grad_(False)
    stored_function, _ = library.module(name, version, finetune=False)
    before = [_scores(r.task, r.program(name, stored_function)) for r in earlier]
    programs = [r.program(name, function) for r in earlier]
    joint = _Joint([task, *(r.task for r in earlier)], [model, *programs])
    train_rows, val_rows = joint.rows(0), joint.rows(1)
    result = descend(joint, (train_rows, torch.zeros(len(train_rows))),
                     (val_rows, torch.zeros(len(val_rows))), lambda out, y: out.mean(), config)
    after = [_scores(r.task, program) for r, program in zip(earlier, programs)]
    scores = tuple(EarlierScore(r.task.name, r.task.metric, b[0], a[0], b[1], a[1], b[2],
                                a[2]) for r, b, a in zip(earlier, before, after))
    keep = any(s.improved for s in scores) and not any(
        _error_rose(s.metric, s.val_before, s.val_after, tolerance) for s in scores)
    stored = None
    if keep:
        entry = library.get(name, version)
        stored = library.save(name, entry.source, entry.type, function, Provenance(
            task=f"reverse transfer from {task.name} (replaying "
                 f"{', '.join(r.task.name for r in earlier)})",
            seed=config.seed, data_size=len(task.train), parents=(entry.ref,),
            metrics={f"val_{s.metric}_{s.task}": s.val_after for s in scores}))
    return ReverseResult(f"{name}@{version}", scores, stored, result.epochs)
