"""Train many search nodes in one vectorised pass.

A search node is a tiny training run whose cost is per-operation overhead, not arithmetic.
Two things remove most of it:

1. **Parameter-free parts are computed once.** The largest sub-terms of a node that read
   only the input and hold nothing learnable (`mean xs`, `window[5] std xs`, `xs` itself)
   are evaluated over the data once, cached for the search, and the node becomes a
   *skeleton* over them: `\\xs -> ?? (mean xs)` is `\\$0 -> ?? $0` applied to the means.
2. **Nodes with the same skeleton train together.** Siblings often differ only in their
   parameter-free parts (`?? (mean xs)`, `?? (std xs)`, `?? (max xs)`), so their skeletons
   and shapes are equal: their weights are stacked and trained in one `torch.func.vmap`
   over `functional_call` of one compiled skeleton.

Each node keeps what it had alone: its own seed (initial weights and mini-batch order),
its own loss, early stopping and best weights, so its score does not depend on what it
was trained with. A skeleton that cannot run under `vmap` trains its members one by one
with the same arithmetic. The loop checks for non-finite losses only when it validates,
so no step waits on the host.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch.func import functional_call, vmap

from neurosym.convex import affine_weights, fit_exactly
from neurosym.interp.compiler import CompiledTerm
from neurosym.interp.values import Seq, Value, flatten_values, index, unflatten_values
from neurosym.tasks.spec import Task
from neurosym.train import Adam, TrainConfig, losses_per_model, set_training

_VAL_CHUNK = 2048  # validation rows per vectorised forward


# ---- one group, trained together -------------------------------------------------------------

@dataclass
class Member:
    """One node of a group: its seed (which also orders its mini-batches), its model
    (the skeleton, built under that seed, warm-started), its features' values and its
    program's text (for messages)."""

    seed: int
    model: CompiledTerm
    train: list[Value]
    val: list[Value]
    text: str = ""


@dataclass(frozen=True)
class MemberResult:
    val_loss: float  # inf if it failed
    val_out: torch.Tensor | None  # outputs on the validation set at the best weights
    error: str | None = None


class Group:
    """Members with one skeleton, trained as one stacked model (`vmap`); a group of one
    trains its own model directly, with the same arithmetic."""

    def __init__(self, members: list[Member], task: Task, config: TrainConfig) -> None:
        self.members, self.task, self.config = members, task, config
        self.base = members[0].model
        self.device = task.device
        self.stacked = len(members) > 1
        named = [(n, p) for n, p in self.base.named_parameters() if p.requires_grad]
        self.params = {n: torch.stack([m.model.get_parameter(n).detach() for m in members])
                       .requires_grad_() for n, _ in named} if self.stacked else dict(named)
        # what each member set up from its own data (the statistics that standardize an
        # affine map's inputs) travels with its weights; flags stay the skeleton's
        self.buffers = {n: torch.stack([m.model.get_buffer(n) for m in members])
                        for n, b in self.base.named_buffers() if b.is_floating_point()
                        } if self.stacked else {}
        # a feature equal for every member is passed once, unstacked; the others are
        # stacked once here, [K, N, ...], not at every step
        self.shared = [all(m.train[i] is members[0].train[i] for m in members)
                       for i in range(len(members[0].train))]
        self.features = {split: [getattr(members[0], split)[i] if shared else
                                 _stack([getattr(m, split)[i] for m in members])
                                 for i, shared in enumerate(self.shared)]
                         for split in ("train", "val")}

    def _inputs(self, split: str, rows: torch.Tensor | None) -> tuple[list, list]:
        """The features of every member (`rows`: [K, B] indices per member, or all rows):
        flat tensors and their vmap dims."""
        values: list[Value] = []
        dims: list[int | None] = []
        for v, shared in zip(self.features[split], self.shared):
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
            values = unflatten_values(one_each, like)
            return self.base(*values).unsqueeze(0)

        def one(p: dict, *tensors: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, p, tuple(unflatten_values(tensors, like)))

        return vmap(one, in_dims=(0, *dims))({**params, **self.buffers}, *flat)

    def _per_member(self, mask: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """A [K] mask shaped to select whole members of parameter `p`."""
        return mask.reshape((-1,) + (1,) * (p.dim() - 1)) if self.stacked else mask[0]

    def validate(self, params: dict) -> torch.Tensor:
        n = len(self.task.val.y)
        with torch.no_grad():
            set_training(self.base, False)
            if n <= _VAL_CHUNK:
                return self.forward(params, "val", None)
            chunks = [torch.arange(i, min(i + _VAL_CHUNK, n), device=self.device)
                      for i in range(0, n, _VAL_CHUNK)]
            k = len(self.members)
            return torch.cat([self.forward(params, "val", c.expand(k, -1)) for c in chunks], 1)

    def solved(self) -> list[MemberResult] | None:
        """Every member fitted to optimum, if the skeleton's fit is convex (`convex`);
        None (nothing changed) if it is not."""
        task, results = self.task, []
        for m in self.members:
            if fit_exactly(m.model, m.train, task.train.y, task.loss,
                           task.class_weights) is None:
                return None  # the same skeleton: none of the others is convex either
            set_training(m.model, False)
            with torch.no_grad():
                out = m.model(*m.val).unsqueeze(0)
            loss = losses_per_model(task.loss, out, task.val.y.unsqueeze(0),
                                    task.class_weights)[0]
            results.append(MemberResult(float(loss), out[0]) if torch.isfinite(loss)
                           else MemberResult(math.inf, None, "non-finite validation loss"))
        return results

    def fit(self) -> list[MemberResult]:
        """`train.fit` for every member at once (`solved` where the fit is convex)."""
        config, task = self.config, self.task
        if config.solve and affine_weights(self.base) is not None:
            results = self.solved()
            if results is not None:
                return results
        k, n = len(self.members), len(task.train.y)
        y_train, y_val = task.train.y, task.val.y.expand(k, *task.val.y.shape)
        start = time.perf_counter()
        deadline = math.inf if config.max_seconds is None else start + config.max_seconds * k
        gens = [torch.Generator().manual_seed(m.seed) for m in self.members]
        if not self.params:
            out = self.validate({})
            losses = losses_per_model(task.loss, out, y_val, task.class_weights)
            return [MemberResult(float(v), out[i]) for i, v in enumerate(losses)]
        opt = Adam(list(self.params.values()), lr=config.lr, weight_decay=config.weight_decay)
        device = self.device
        best = torch.full((k,), math.nan, device=device)
        best_params = {name: p.detach().clone() for name, p in self.params.items()}
        best_out: torch.Tensor | None = None
        waited = torch.zeros(k, dtype=torch.long, device=device)
        active = torch.ones(k, dtype=torch.bool, device=device)
        finite = torch.ones(k, dtype=torch.bool, device=device)
        stopped_at = torch.zeros(k, dtype=torch.long, device=device)
        seen_once = torch.zeros(k, dtype=torch.bool, device=device)
        epoch = 0
        for epoch in range(1, config.epochs + 1):
            order = torch.stack([torch.randperm(n, generator=g, device="cpu")
                                 for g in gens]).to(device)  # [K, N]
            set_training(self.base, True)
            for i in range(0, n, config.batch_size):
                rows = order[:, i:i + config.batch_size]
                out = self.forward(self.params, "train", rows)
                losses = losses_per_model(task.loss, out, y_train[rows], task.class_weights)
                finite &= torch.isfinite(losses.detach())
                opt.zero_grad()
                torch.where(finite, losses, 0.0).sum().backward()
                opt.step()
                if time.perf_counter() > deadline:
                    break
            timed_out = time.perf_counter() > deadline
            if epoch % config.eval_every and epoch < config.epochs and not timed_out:
                continue
            out = self.validate(self.params)
            val = losses_per_model(task.loss, out, y_val, task.class_weights)
            ok = active & finite & torch.isfinite(val)
            better = ok & (~seen_once | (val < best - 1e-6) | torch.isnan(best))
            best = torch.where(better, val, best)
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
        results = []
        for i in range(k):
            if not bool(finite[i]) and not bool(seen_once[i]):
                results.append(MemberResult(math.inf, None, error=(
                    f"non-finite loss by epoch {int(stopped_at[i])}: the program produced "
                    "NaN or inf; check the data scale or lower the learning rate")))
            else:
                results.append(MemberResult(float(best[i]), best_out[i]))
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
