"""Planted-program tasks: labels come from a known DSL program, so a search can be checked
against the truth. Inputs are random sequences whose per-sequence level and spread vary by
feature (so that means, spreads and comparisons of features carry signal); the label is
the planted program's Bool output, thresholded at its median for balanced classes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from neurosym.interp.compiler import compile_term
from neurosym.interp.values import Seq
from neurosym.lang.checker import check_term
from neurosym.lang.errors import TaskError
from neurosym.lang.parser import parse_term
from neurosym.lang.types import BOOL, Arrow, ListT, Vec
from neurosym.tasks.spec import Split


def random_sequences(n: int, features: int, min_len: int, max_len: int,
                     gen: torch.Generator) -> Seq:
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=gen)
    level = torch.randn(n, 1, features, generator=gen)
    spread = 0.5 + torch.rand(n, 1, features, generator=gen)
    data = level + spread * torch.randn(n, max_len, features, generator=gen)
    weights = (torch.arange(max_len) < lengths[:, None]).float()
    return Seq(data * weights[:, :, None], weights)


def planted_labels(program: str, features: int, xs: Seq) -> torch.Tensor:
    """The planted program's raw output (a logit) on `xs`; it must have no learnable parts."""
    term = parse_term(program, "<planted program>")
    model = compile_term(term, check_term(term, Arrow(ListT(Vec(features)), BOOL)))
    if any(True for _ in model.parameters()):
        raise TaskError("a planted program must not have learnable parts")
    with torch.no_grad():
        return model(xs)


MAX_VALUES = 50_000_000  # about 200 MB of float32


def planted_source(params: Mapping[str, Any], seed: int, val_fraction: float):
    from neurosym.tasks.sources import SourceData

    try:
        program = str(params["program"])
        features = int(params.get("features", 4))
        sizes = [int(params.get(k, d)) for k, d in
                 (("n_train", 400), ("n_val", 200), ("n_test", 400))]
        min_len, max_len = int(params.get("min_len", 10)), int(params.get("max_len", 30))
    except (KeyError, TypeError, ValueError) as err:
        raise TaskError(f"[data] of a planted task: {err}") from None
    if min_len > max_len:
        raise TaskError(f"[data] needs min_len <= max_len, got {min_len} > {max_len}")
    if sum(sizes) * max_len * features > MAX_VALUES:
        raise TaskError(f"[data] asks for {sum(sizes)} sequences of up to {max_len} steps of "
                        f"{features} features: more than {MAX_VALUES:,} values; a planted "
                        "task is a small check, make it smaller")
    gen = torch.Generator().manual_seed(int(params.get("data_seed", seed)))
    xs = random_sequences(sum(sizes), features, min_len, max_len, gen)
    logits = planted_labels(program, features, xs)
    y = (logits > logits.median()).float()
    splits, start = [], 0
    for size in sizes:
        idx = torch.arange(start, start + size)
        splits.append(Split(xs.index(idx), y[idx]))
        start += size
    return SourceData(*splits, classes=("false", "true"))
