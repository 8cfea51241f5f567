"""Comparisons against learned thresholds, the test of a decision rule: with `select` and
`ite`, a program over feature vectors reads like a small decision list
(`ite (above[0.42, 6.1] (select[3] x)) ... ...`)."""

from __future__ import annotations

import math

import torch
from torch import nn

from neurosym.interp.registry import Site, implements
from neurosym.lang import ast
from neurosym.lang.types import Type

DEFAULT_SHARPNESS = 4.0


class LearnedThreshold(nn.Module):
    """A threshold and a sharpness learned by gradient (the sharpness through its log, so
    it stays positive; it starts at 4, soft enough for the threshold to move). The learned
    values are rounded to 2 decimals both when evaluated and when printed, so the program
    written back by hand (`above[0.42, 6.1]`) computes the same."""

    def __init__(self, t: Type, params) -> None:
        super().__init__()
        self.threshold = nn.Parameter(torch.zeros(()))
        self.log_sharpness = nn.Parameter(torch.tensor(math.log(DEFAULT_SHARPNESS)))

    def values(self) -> tuple[float, float]:
        sharpness = max(round(math.exp(self.log_sharpness.item()), 2), 0.01)
        return round(self.threshold.item(), 2), sharpness

    def learned_params(self) -> tuple[ast.Param, ...]:
        return self.values()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            threshold, sharpness = self.values()
            return sharpness * (x - threshold)
        return self.log_sharpness.exp() * (x - self.threshold)


def _above_module(t: Type, params) -> nn.Module | None:
    return None if params else LearnedThreshold(t, params)


@implements("above", module=_above_module)
def above(site: Site, x: torch.Tensor) -> torch.Tensor:
    """`x > threshold` as a logit, sharpness * (x - threshold): above[0.5] (sharpness 4)
    or above[0.5, 10]; a bare `above` learns both, and a found program prints them."""
    if site.module is not None:
        return site.module(x)
    threshold, sharpness = (list(site.params) + [DEFAULT_SHARPNESS])[:2]
    return sharpness * (x - threshold)
