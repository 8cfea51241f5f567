"""One training loop for hand-written programs, search nodes, finalists, relaxations and
lifelong steps alike: mini-batch Adam, early stopping on validation loss (best weights
restored), seeded shuffling, and a guard that stops on a non-finite loss instead of
training on NaN. `Stack` is the loop: K models of one structure trained as one stacked
model (`torch.func.vmap` over their stacked weights), each with its own seed, loss, early
stopping and best weights, so that each ends as it would alone; `fit` trains one model
with it (a stack of one), after solving the fit exactly where it is convex."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from neurosym.convex import affine_weights, fit_exactly
from neurosym.interp.values import Seq, Value, batch_size, flatten_values, index, unflatten_values
from neurosym.lang.errors import TrainingError


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    lr: float = 1e-2
    batch_size: int = 64
    patience: int = 15
    weight_decay: float = 0.0
    seed: int = 0
    max_seconds: float | None = None
    threads: int = 1  # small networks train fastest on one thread; parallelism is per process
    eval_every: int = 1  # epochs between validations (patience counts validations)
    solve: bool = True  # a program whose fit is convex is solved to optimum (`convex`)


class Adam:
    """Adam (Kingma & Ba 2015) with L2 weight decay, computed as `torch.optim.Adam(...,
    foreach=True)` computes it, for the thousands of tiny runs of a search: one vectorised
    update over all parameters, without the optimizer's per-step bookkeeping, and without
    the import of `torch._dynamo` that `torch.optim` does on first use (2.2 s per process
    on this machine, paid by every `neurosym run` and search)."""

    def __init__(self, params: list[torch.Tensor], lr: float, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = list(params)
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.first = [torch.zeros_like(p) for p in self.params]
        self.second = [torch.zeros_like(p) for p in self.params]
        self.steps = [0] * len(self.params)  # per parameter, as torch counts them

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        params = [self.params[i] for i in live]
        first, second = [self.first[i] for i in live], [self.second[i] for i in live]
        grads = [p.grad for p in params]
        if self.weight_decay:
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        for i in live:
            self.steps[i] += 1
        beta1, beta2 = self.betas
        torch._foreach_lerp_(first, grads, 1 - beta1)
        torch._foreach_mul_(second, beta2)
        torch._foreach_addcmul_(second, grads, grads, 1 - beta2)
        denom = torch._foreach_sqrt(second)
        torch._foreach_div_(denom, [math.sqrt(1 - beta2 ** self.steps[i]) for i in live])
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, first, denom,
                                [-self.lr / (1 - beta1 ** self.steps[i]) for i in live])


def set_training(model: nn.Module, on: bool) -> None:
    """`model.train(on)` unless it is in that mode already: the call walks every submodule
    (a quarter of a millisecond for a relaxation), and training switches at every
    validation."""
    if model.training != on:
        model.train(on)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with `n` intra-op threads. For the small networks of a search, extra threads
    cost more in synchronisation than they win (measured: 10-70x slower per node with 2
    threads on a busy 2-core machine), so training uses one unless told otherwise."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class TrainResult:
    val_loss: float
    epochs: int
    seconds: float
    best_epoch: int = 0  # the epoch whose weights were kept
    history: list[tuple[float, float]] = field(default_factory=list, repr=False)
    solved: bool = False  # fitted to optimum by `convex.fit_exactly` (epochs: its iterations)


def loss_function(kind: str, class_weights: torch.Tensor | None = None):
    """`(out, y) -> loss` of one model: cross-entropy (class-weighted as PyTorch weighs
    it), binary cross-entropy (positives weighted by the ratio of the class weights) or
    mean squared error."""
    if kind not in ("cross_entropy", "bce", "mse"):
        raise ValueError(f"unknown loss {kind!r} (cross_entropy, bce or mse)")
    return lambda out, y: losses_per_model(kind, out.unsqueeze(0), y.unsqueeze(0),
                                           class_weights)[0]


def losses_per_model(kind: str, out: torch.Tensor, y: torch.Tensor,
                     class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """The loss of each of K models trained together (outputs and targets stacked on
    dim 0): one value per model, [K]."""
    k = out.shape[0]
    if kind == "cross_entropy":
        each = F.cross_entropy(out.flatten(0, 1), y.flatten(), weight=class_weights,
                               reduction="none").reshape(k, -1)
        if class_weights is None:
            return each.mean(1)
        return each.sum(1) / class_weights[y].reshape(k, -1).sum(1)
    if kind == "bce":
        pos = None if class_weights is None else class_weights[1] / class_weights[0]
        each = F.binary_cross_entropy_with_logits(out, y, pos_weight=pos, reduction="none")
        return each.reshape(k, -1).mean(1)
    return ((out - y) ** 2).reshape(k, -1).mean(1)


def example_losses(kind: str, out: torch.Tensor, y: torch.Tensor,
                   class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Each example's loss ([B]), weighted so that their mean is `loss_function`'s loss
    of the batch (a class weight divided by the batch's mean weight)."""
    if kind == "cross_entropy":
        each = F.cross_entropy(out, y.long(), reduction="none")
        if class_weights is None:
            return each
        w = class_weights[y.long()]
        return each * w / w.mean()
    if kind == "bce":
        pos = None if class_weights is None else class_weights[1] / class_weights[0]
        each = F.binary_cross_entropy_with_logits(out, y.float(), pos_weight=pos,
                                                  reduction="none")
        return each.reshape(len(out), -1).mean(1)
    return ((out - y) ** 2).reshape(len(out), -1).mean(1)


def predict(model: nn.Module, x: Value, chunk: int = 1024) -> torch.Tensor:
    """Model outputs for all examples, in chunks, without gradients."""
    set_training(model, False)
    n = batch_size(x)
    with torch.no_grad(), torch_threads(1):
        outs = [model(index(x, torch.arange(i, min(i + chunk, n), device="cpu")))
                for i in range(0, n, chunk)]
    return torch.cat(outs)


def evaluate_loss(model: nn.Module, x: Value, y: torch.Tensor, loss) -> float:
    with torch.no_grad():
        return float(loss(predict(model, x), y))


def fit(model: nn.Module, train: tuple[Value, torch.Tensor], val: tuple[Value, torch.Tensor],
        loss_kind: str, config: TrainConfig = TrainConfig(),
        class_weights: torch.Tensor | None = None) -> TrainResult:
    """Train `model` in place; returns the best validation loss seen (its weights kept).
    A model whose fit is convex is solved to optimum instead (no epochs, no clock)."""
    loss = loss_function(loss_kind, class_weights)
    with torch_threads(config.threads):
        if config.solve and affine_weights(model) is not None:
            start = time.perf_counter()
            set_up(model, [train[0]],
                   first_batch(len(train[1]), config.seed, config.batch_size), train[1])
            iterations = fit_exactly(model, [train[0]], train[1], loss_kind, class_weights)
            if iterations is not None:
                _check_finite(evaluate_loss(model, *train, loss), "after solving")
                return TrainResult(evaluate_loss(model, *val, loss), iterations,
                                   time.perf_counter() - start, iterations, solved=True)
        return descend(model, train, val, loss, config)


def descend(model: nn.Module, train: tuple[Value, torch.Tensor],
            val: tuple[Value, torch.Tensor],
            loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], config: TrainConfig
            ) -> TrainResult:
    """Descend `loss(outputs, targets)` (a scalar) by the one loop, a stack of one model,
    after setting the model up on its first mini-batch. Raises `TrainingError` on a
    non-finite loss."""
    start = time.perf_counter()
    if not any(p.requires_grad for p in model.parameters()):
        return TrainResult(evaluate_loss(model, *val, loss), 0, time.perf_counter() - start)
    set_up(model, [train[0]], first_batch(len(train[1]), config.seed, config.batch_size),
           train[1])
    member = Member(config.seed, model, [train[0]], [val[0]])
    (result,) = Stack([member], (train[1], val[1]),
                      lambda out, y: loss(out[0], y[0]).reshape(1), config).descend()
    if result.diverged:
        raise TrainingError(f"non-finite loss by epoch {result.epochs}: the program produced "
                            "NaN or inf; check the data scale or lower the learning rate")
    return TrainResult(result.val_loss, result.epochs, time.perf_counter() - start,
                       result.best_epoch, result.history)


# ---- the loop: K models of one structure, trained together -----------------------------------

_VAL_CHUNK = 2048  # validation rows per vectorised forward


@dataclass
class Member:
    """One model of a stack: its seed (which also orders its mini-batches), the model
    (set up; all members share its structure) and its inputs, one value per argument."""

    seed: int
    model: nn.Module
    train: list[Value]
    val: list[Value]
    text: str = ""  # what it is, for messages (a search node's program)


@dataclass(frozen=True)
class MemberResult:
    val_loss: float  # inf if it failed
    val_out: torch.Tensor | None  # outputs on the validation set at the best weights
    error: str | None = None
    epochs: int = 0  # trained before it stopped
    best_epoch: int = 0  # whose weights were kept
    diverged: bool = False  # a training loss was not finite
    history: list[tuple[float, float]] = field(default_factory=list, repr=False)


Losses = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # [K, B, ...] x2 -> [K]


class Stack:
    """Members with one structure, trained as one stacked model (`vmap` over their
    stacked weights); a stack of one trains its own model directly, with the same
    arithmetic. `targets` are the training and validation targets, `losses(out, y)` the
    loss of each member ([K]) from outputs and targets stacked on dim 0. The loop checks
    for non-finite losses only when it validates, so no step waits on the host."""

    def __init__(self, members: list[Member], targets: tuple[torch.Tensor, torch.Tensor],
                 losses: Losses, config: TrainConfig) -> None:
        self.members, self.config, self.losses = members, config, losses
        self.y_train, self.y_val = targets
        self.base = members[0].model
        self.device = targets[0].device
        self.stacked = len(members) > 1
        named = [(n, p) for n, p in self.base.named_parameters() if p.requires_grad]
        self.params = {n: torch.stack([m.model.get_parameter(n).detach() for m in members])
                       .requires_grad_() for n, _ in named} if self.stacked else dict(named)
        # what each member set up from its own data (the statistics that standardize an
        # affine map's inputs) travels with its weights; flags stay the structure's
        self.buffers = {n: torch.stack([m.model.get_buffer(n) for m in members])
                        for n, b in self.base.named_buffers() if b.is_floating_point()
                        } if self.stacked else {}
        # an input equal for every member is passed once, unstacked; the others are
        # stacked once here, [K, N, ...], not at every step
        self.shared = [all(m.train[i] is members[0].train[i] for m in members)
                       for i in range(len(members[0].train))]
        self.inputs = {split: [getattr(members[0], split)[i] if shared else
                               _stack([getattr(m, split)[i] for m in members])
                               for i, shared in enumerate(self.shared)]
                       for split in ("train", "val")}

    def _inputs(self, split: str, rows: torch.Tensor | None) -> tuple[list, list]:
        """The inputs of every member (`rows`: [K, B] indices per member, or all rows):
        flat tensors and their vmap dims."""
        values: list[Value] = []
        dims: list[int | None] = []
        for v, shared in zip(self.inputs[split], self.shared):
            if rows is not None:
                values.append(index(v, rows) if shared else _rows_of_each(v, rows))
                dims.append(0)
            else:
                values.append(v)
                dims.append(None if shared else 0)
        flat_dims = [d for v, d in zip(values, dims)
                     for _ in range(2 if isinstance(v, Seq) else 1)]
        return flatten_values(values), flat_dims

    def forward(self, params: dict, split: str, rows: torch.Tensor | None) -> torch.Tensor:
        """Outputs of every member, [K, B, ...]."""
        flat, dims = self._inputs(split, rows)
        like = self.members[0].train
        if not self.stacked:  # the model's own parameters are `params`
            one_each = tuple(x if d is None else x[0] for x, d in zip(flat, dims))
            return self.base(*unflatten_values(one_each, like)).unsqueeze(0)

        def one(p: dict, *tensors: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, p, tuple(unflatten_values(tensors, like)))

        return vmap(one, in_dims=(0, *dims))({**params, **self.buffers}, *flat)

    def _per_member(self, mask: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """A [K] mask shaped to select whole members of parameter `p`."""
        return mask.reshape((-1,) + (1,) * (p.dim() - 1)) if self.stacked else mask[0]

    def validate(self, params: dict) -> torch.Tensor:
        n = len(self.y_val)
        with torch.no_grad():
            set_training(self.base, False)
            if n <= _VAL_CHUNK:
                return self.forward(params, "val", None)
            chunks = [torch.arange(i, min(i + _VAL_CHUNK, n), device=self.device)
                      for i in range(0, n, _VAL_CHUNK)]
            k = len(self.members)
            return torch.cat([self.forward(params, "val", c.expand(k, -1)) for c in chunks], 1)

    def _batches(self, gens: list[torch.Generator]) -> list[torch.Tensor | None]:
        """An epoch's mini-batches, [K, B] row indices each, shuffled per member; one
        batch of all rows in order (None: no gather) where they fit in one, since the
        order of the rows in a batch does not change its loss."""
        n, size = len(self.y_train), self.config.batch_size
        if n <= size:
            return [None]
        order = torch.stack([torch.randperm(n, generator=g, device="cpu")
                             for g in gens]).to(self.device)  # [K, N]
        return [order[:, i:i + size] for i in range(0, n, size)]

    def descend(self) -> list[MemberResult]:
        """Train every member by mini-batch Adam with early stopping; each member's best
        weights are written back into its model."""
        config = self.config
        k, n = len(self.members), len(self.y_train)
        y_val = self.y_val.expand(k, *self.y_val.shape)
        start = time.perf_counter()
        deadline = math.inf if config.max_seconds is None else start + config.max_seconds * k
        gens = [torch.Generator().manual_seed(m.seed) for m in self.members]
        if not self.params:
            out = self.validate({})
            return [MemberResult(float(v), out[i]) for i, v in
                    enumerate(self.losses(out, y_val))]
        opt = Adam(list(self.params.values()), lr=config.lr, weight_decay=config.weight_decay)
        device = self.device
        best = torch.full((k,), math.nan, device=device)
        best_params = {name: p.detach().clone() for name, p in self.params.items()}
        best_out: torch.Tensor | None = None
        waited = torch.zeros(k, dtype=torch.long, device=device)
        active = torch.ones(k, dtype=torch.bool, device=device)
        finite = torch.ones(k, dtype=torch.bool, device=device)
        stopped_at = torch.zeros(k, dtype=torch.long, device=device)
        best_epoch = torch.zeros(k, dtype=torch.long, device=device)
        seen_once = torch.zeros(k, dtype=torch.bool, device=device)
        history: list[tuple[torch.Tensor, torch.Tensor]] = []
        epoch = 0
        y_train = self.y_train.expand(k, *self.y_train.shape)
        for epoch in range(1, config.epochs + 1):
            set_training(self.base, True)
            total = torch.zeros(k, device=device)
            for rows in self._batches(gens):
                out = self.forward(self.params, "train", rows)
                losses = self.losses(out, y_train if rows is None else self.y_train[rows])
                finite &= torch.isfinite(losses.detach())
                total += losses.detach() * (n if rows is None else rows.shape[1])
                opt.zero_grad()
                torch.where(finite, losses, 0.0).sum().backward()
                opt.step()
                if time.perf_counter() > deadline:
                    break
            timed_out = time.perf_counter() > deadline
            if epoch % config.eval_every and epoch < config.epochs and not timed_out:
                continue
            out = self.validate(self.params)
            val = self.losses(out, y_val)
            history.append((total / n, val))
            ok = active & finite & torch.isfinite(val)
            better = ok & (~seen_once | (val < best - 1e-6) | torch.isnan(best))
            best = torch.where(better, val, best)
            best_epoch = torch.where(better, epoch, best_epoch)
            for name, p in self.params.items():
                best_params[name] = torch.where(self._per_member(better, p), p.detach(),
                                                best_params[name])
            best_out = out if best_out is None else torch.where(
                better.reshape((k,) + (1,) * (out.dim() - 1)), out, best_out)
            seen_once |= better
            waited = torch.where(better, 0, waited + 1)
            stop = active & ((waited >= config.patience) | ~finite | timed_out)
            stopped_at = torch.where(stop, epoch, stopped_at)
            active &= ~stop
            if not bool(active.any()):
                break
        stopped_at = torch.where(stopped_at == 0, epoch, stopped_at)
        with torch.no_grad():
            for m_index, m in enumerate(self.members):
                for name, p in best_params.items():
                    m.model.get_parameter(name).copy_(p[m_index] if self.stacked else p)
        # [validations][2][K] -> each member's (train, validation) losses, read at once
        curves = torch.stack([torch.stack([t.double(), v.double()]) for t, v in history]
                             ).tolist() if history else []
        results = []
        for i in range(k):
            common = dict(epochs=int(stopped_at[i]), best_epoch=int(best_epoch[i]),
                          diverged=not bool(finite[i]),
                          history=[(t[i], v[i]) for t, v in curves])
            if not bool(finite[i]) and not bool(seen_once[i]):
                results.append(MemberResult(math.inf, None, error=(
                    f"non-finite loss by epoch {int(stopped_at[i])}: the program produced "
                    "NaN or inf; check the data scale or lower the learning rate"), **common))
            else:
                results.append(MemberResult(float(best[i]), best_out[i], **common))
        return results


def _rows_of_each(v: Value, rows: torch.Tensor) -> Value:
    """From a stacked value [K, N, ...], member k's rows `rows[k]`: [K, B, ...]."""
    members = torch.arange(len(rows), device=rows.device).unsqueeze(1)
    if isinstance(v, Seq):
        return Seq(v.data[members, rows], v.weights[members, rows])
    return v[members, rows]


def _stack(values: list[Value]) -> Value:
    if isinstance(values[0], Seq):
        return Seq(torch.stack([v.data for v in values]), torch.stack([v.weights for v in values]))
    return torch.stack(values)


def _check_finite(loss: float, when: str) -> None:
    if not math.isfinite(loss):
        raise TrainingError(f"non-finite loss ({loss}) {when}: the program produced NaN or "
                            "inf; check the data scale or lower the learning rate")


def set_up(model: nn.Module, inputs: list[Value], rows: torch.Tensor,
           targets: torch.Tensor | None = None) -> None:
    """One forward in training mode on `rows` of the training inputs (the first
    mini-batch, `first_batch`): parts that set themselves up from data do it now (affine
    maps take the statistics that standardize their inputs, shapelets seed their patterns
    from windows; before, prototypes are taken per class of `targets`), outside any `vmap`.
    Gradients are on (nothing steps), so that a part can tell an input computed by
    learned parts."""
    from neurosym.interp.prototypes import seed_prototypes

    seed_prototypes(model, inputs, targets)
    model.train()
    with torch.enable_grad():
        model(*[index(v, rows) for v in inputs])


def first_batch(n: int, seed: int, size: int) -> torch.Tensor:
    """The rows of the first mini-batch a run seeded `seed` trains on."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed), device="cpu")[:size]


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the weights (cheaper than deepcopy, which a search node paid
    for at every improving epoch)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
