"""Run-time values of DSL programs, always batched over examples.

| DSL type        | value                                                        |
|-----------------|--------------------------------------------------------------|
| Float/Int/Bool  | tensor (B,)  (a Bool is a logit: its probability is sigmoid) |
| Vec[n]          | tensor (B, n)                                                |
| Image[h,w]      | tensor (B, h, w)                                             |
| List[T]         | `Seq`: data (B, L, *T) and weights (B, L) in [0, 1]          |
| T -> U          | a Python callable from batched T to batched U                |

List weights are 1 for present elements and 0 for padding; a soft `filter` makes them
fractional, which keeps it differentiable. Functions applied inside `map` see B*L rows,
row-major; captured values are repeated to match with `align`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from neurosym.lang.types import Arrow, Base, Image, ListT, Type, Vec


@dataclass(frozen=True, slots=True)
class Seq:
    data: torch.Tensor
    weights: torch.Tensor

    @property
    def length(self) -> int:
        return self.data.shape[1]

    def flat(self) -> torch.Tensor:
        """All elements as one batch of B*L rows."""
        return self.data.flatten(0, 1)

    def with_data(self, flat: Any) -> Seq:
        """Rebuild a list from B*L rows produced from `flat()`."""
        b, n = self.data.shape[0], self.length
        if isinstance(flat, Seq):
            raise TypeError("lists of lists are not supported")
        return Seq(flat.reshape(b, n, *flat.shape[1:]), self.weights)

    def per_element(self, t: torch.Tensor) -> torch.Tensor:
        """A (B, L) tensor (weights, positions) shaped to broadcast against the data."""
        return t.reshape(*t.shape, *([1] * (self.data.dim() - 2)))

    def last_index(self) -> torch.Tensor:
        """Per example, the position of the last present element (padding skipped)."""
        pos = torch.arange(self.length, device=self.weights.device).expand_as(self.weights)
        return torch.where(self.weights > 0, pos, torch.zeros_like(pos)).amax(1)

    def index(self, idx: torch.Tensor) -> Seq:
        idx = idx.to(self.data.device)
        return Seq(self.data[idx], self.weights[idx])


Value = torch.Tensor | Seq | Callable[..., Any]


def flatten_values(values: list[Value]) -> list[torch.Tensor]:
    """Values as plain tensors (a list as its data and weights), for `vmap`."""
    out: list[torch.Tensor] = []
    for v in values:
        out.extend((v.data, v.weights) if isinstance(v, Seq) else (v,))
    return out


def unflatten_values(tensors: tuple[torch.Tensor, ...], like: list[Value]) -> list[Value]:
    out, i = [], 0
    for v in like:
        if isinstance(v, Seq):
            out.append(Seq(tensors[i], tensors[i + 1]))
            i += 2
        else:
            out.append(tensors[i])
            i += 1
    return out


def batch_size(v: Value) -> int | None:
    if isinstance(v, Seq):
        return v.data.shape[0]
    if isinstance(v, torch.Tensor):
        return v.shape[0]
    return None


def device_of(v: Value, default: torch.device) -> torch.device:
    """The device a batched value lives on (`default` for a function)."""
    if isinstance(v, Seq):
        return v.data.device
    return v.device if isinstance(v, torch.Tensor) else default


def to_device(v: Value, device: torch.device | str) -> Value:
    """A batched value on `device` (itself if it is there already)."""
    if isinstance(v, Seq):
        return Seq(v.data.to(device), v.weights.to(device))
    return v.to(device)


def align(v: Value, rows: int) -> Value:
    """Repeat a value captured at batch b to `rows` = b*k rows (row-major, as `map` lays them)."""
    b = batch_size(v)
    if b is None or b == rows:
        return v
    if rows % b:
        raise ValueError(f"cannot align batch of {b} to {rows} rows")
    k = rows // b
    if isinstance(v, Seq):
        return Seq(v.data.repeat_interleave(k, 0), v.weights.repeat_interleave(k, 0))
    return v.repeat_interleave(k, 0)


def index(v: Value, idx: torch.Tensor) -> Value:
    """Select examples (rows) of a batched value: for splits and mini-batches."""
    if isinstance(v, Seq):
        return v.index(idx)
    return v[idx.to(v.device)]


def concat(a: Value, b: Value) -> Value:
    """The examples of `a`, then those of `b` (lists padded to the longer of the two)."""
    if isinstance(a, Seq) and isinstance(b, Seq):
        n = max(a.length, b.length)
        grow = lambda t: torch.nn.functional.pad(  # noqa: E731  (pad dim 1 at its end)
            t, (0, 0) * (t.dim() - 2) + (0, n - t.shape[1]))
        return Seq(torch.cat([grow(a.data), grow(b.data)]),
                   torch.cat([grow(a.weights), grow(b.weights)]))
    return torch.cat([a, b])


def shape_of(t: Type) -> tuple[int, ...]:
    """Per-example tensor shape of a concrete tensor type."""
    match t:
        case Base():
            return ()
        case Vec(n):
            return (int(n),)
        case Image(h, w):
            return (int(h), int(w))
    raise TypeError(f"{t} is not a tensor type")


def check_value(v: Value, t: Type, rows: int | None = None) -> None:
    """Raise ValueError if `v` does not have the layout of type `t` (data validation)."""
    if isinstance(t, ListT):
        if not isinstance(v, Seq):
            raise ValueError(f"expected a list value for {t}")
        check_value(v.flat(), t.elem)
        if v.weights.shape != v.data.shape[:2]:
            raise ValueError("list weights must have shape (batch, length)")
    elif isinstance(t, Arrow):
        raise ValueError("data cannot be a function")
    else:
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"expected a tensor for {t}")
        if tuple(v.shape[1:]) != shape_of(t):
            raise ValueError(
                f"expected per-example shape {shape_of(t)} for {t}, got {tuple(v.shape[1:])}"
            )
    if rows is not None and batch_size(v) != rows:
        raise ValueError(f"expected {rows} examples, got {batch_size(v)}")


def pad_sequences(seqs: list[torch.Tensor]) -> Seq:
    """Pad variable-length sequences (each (L_i, *shape)) into one `Seq`."""
    longest = max(s.shape[0] for s in seqs)
    data = torch.zeros(len(seqs), longest, *seqs[0].shape[1:], dtype=torch.float32)
    weights = torch.zeros(len(seqs), longest)
    for i, s in enumerate(seqs):
        data[i, : s.shape[0]] = s
        weights[i, : s.shape[0]] = 1.0
    return Seq(data, weights)
