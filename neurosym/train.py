"""One training loop for hand-written programs, search nodes and relaxations alike:
mini-batch Adam, early stopping on validation loss (best weights restored), seeded
shuffling, and a guard that stops on a non-finite loss instead of training on NaN."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from neurosym.convex import affine_weights, fit_exactly
from neurosym.interp.values import Value, batch_size, index
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
        return _fit(model, train, val, loss, config)


def _fit(model: nn.Module, train: tuple[Value, torch.Tensor], val: tuple[Value, torch.Tensor],
         loss, config: TrainConfig) -> TrainResult:
    """Early stopping counts from the first trained validation, not from the untrained
    weights (a model that never beat its random start would keep it). `max_seconds` is
    checked after every optimizer step; a run that times out still validates once."""
    start = time.perf_counter()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return TrainResult(evaluate_loss(model, *val, loss), 0, time.perf_counter() - start)
    set_up(model, [train[0]], first_batch(len(train[1]), config.seed, config.batch_size),
           train[1])
    opt = Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    deadline = math.inf if config.max_seconds is None else start + config.max_seconds
    best, best_state, waited, history, epoch, best_epoch = math.nan, None, 0, [], 0, 0
    for epoch in range(1, config.epochs + 1):
        total, seen = _epoch(model, train, loss, opt, config, gen, epoch, deadline)
        timed_out = time.perf_counter() > deadline
        if epoch % config.eval_every and epoch < config.epochs and not timed_out:
            continue
        val_loss = evaluate_loss(model, *val, loss)
        history.append((total / max(seen, 1), val_loss))
        if best_state is None or val_loss < best - 1e-6 or math.isnan(best):
            best, waited, best_state, best_epoch = val_loss, 0, snapshot(model), epoch
        else:
            waited += 1
        if waited >= config.patience or timed_out:
            break
    model.load_state_dict(best_state)
    return TrainResult(best, epoch, time.perf_counter() - start, best_epoch, history)


def _epoch(model: nn.Module, train: tuple[Value, torch.Tensor], loss, opt, config: TrainConfig,
           gen: torch.Generator, epoch: int, deadline: float) -> tuple[float, int]:
    """One pass over shuffled mini-batches (cut short at `deadline`); the summed loss and
    the number of examples seen."""
    set_training(model, True)
    x, y = train
    total, seen = 0.0, 0
    order = torch.randperm(len(y), generator=gen, device="cpu")
    for i in range(0, len(y), config.batch_size):
        idx = order[i:i + config.batch_size]
        batch_loss = loss(model(index(x, idx)), index(y, idx))
        _check_finite(batch_loss.item(), f"at epoch {epoch}")
        opt.zero_grad()
        batch_loss.backward()
        opt.step()
        total, seen = total + batch_loss.item() * len(idx), seen + len(idx)
        if time.perf_counter() > deadline:
            break
    return total, seen


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
