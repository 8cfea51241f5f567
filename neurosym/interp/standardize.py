"""Inputs to a learned map, standardized from the data it is trained on."""

from __future__ import annotations

import torch
from torch import nn

FOLDABLE_SHIFT = 100.0  # see `Standardize.foldable`


class Standardize(nn.Module):
    """Each input feature shifted and scaled to zero mean and unit spread, by statistics
    taken once, from the first batch it sees in training (`train.set_up`), then fixed and
    saved with the weights. A linear map fitted by Adam on features of very different
    offsets and scales (log band powers near -3, means near 0) converges an order of
    magnitude slower: on OSULeaf, `affine (spectrum[32] xs)` tests 0.54 unstandardized
    and 0.75 standardized, what logistic regression reaches."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(n))
        self.register_buffer("scale", torch.ones(n))
        self.ready = False
        # whether a linear map after it may fold it into its weights: no shift is over
        # `FOLDABLE_SHIFT` spreads (beyond, the shift would cancel in the bias, in float32)
        self.foldable = False

    def calibrate(self, x: torch.Tensor) -> None:
        """Statistics over the finite values, computed on values divided by their largest
        magnitude (so 1e30 does not overflow, in any precision); a constant or non-finite
        feature keeps shift 0 and scale 1, and so does an input computed by learned parts
        (it requires grad in `train.set_up`): its statistics change as they learn, and on
        GunPoint standardizing a shapelet's initial distances cost 0.02 test accuracy."""
        if x.requires_grad:
            self._set_ready()
            return
        finite = torch.isfinite(x.detach())
        x = torch.where(finite, x.detach(), 0.0)
        top = x.abs().amax(0).clamp_min(torch.finfo(x.dtype).tiny)
        unit = x / top
        count = finite.sum(0).clamp_min(1)
        mean = unit.sum(0) / count
        spread = (torch.where(finite, unit - mean, 0.0) ** 2).sum(0).div(count).sqrt()
        usable = finite.any(0) & (spread > 1e-6 * mean.abs().clamp_min(1e-6))
        self.shift.copy_(torch.where(usable, mean * top, 0.0))
        self.scale.copy_(torch.where(usable, spread * top, 1.0))
        self._set_ready()

    def _set_ready(self) -> None:
        self.ready = True
        self.foldable = bool((self.shift.abs() <= FOLDABLE_SHIFT * self.scale).all())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self.ready:
            self.calibrate(x)
        return (x - self.shift) / self.scale

    def _load_from_state_dict(self, state, prefix, *args, **kwargs):
        if prefix + "shift" not in state:  # saved before inputs were standardized
            state[prefix + "shift"] = torch.zeros_like(self.shift)
            state[prefix + "scale"] = torch.ones_like(self.scale)
        super()._load_from_state_dict(state, prefix, *args, **kwargs)
        self._set_ready()
