"""Scores of predictions, in plain torch so that scoring needs no scikit-learn at run time.

Macro-F1 follows scikit-learn's convention (the mean over the classes that occur in the
labels or the predictions; a class with no true or predicted example scores 0), so our
numbers compare with published ones. Every reported score should sit beside
`majority_baseline`: on imbalanced labels the always-majority predictor can look
respectable, and a search can converge to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray | Sequence[float]


def _tensor(a: ArrayLike) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu()
    return torch.as_tensor(np.asarray(a))


def _pair(pred: ArrayLike, y: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    p, t = _tensor(pred).flatten(), _tensor(y).flatten()
    if p.shape != t.shape:
        raise ValueError(f"{p.numel()} predictions for {t.numel()} targets")
    if p.numel() == 0:
        raise ValueError("cannot score zero examples")
    return p, t


def accuracy(pred: ArrayLike, y: ArrayLike) -> float:
    """The share right, as an exact fraction (357/370, not its float32 0.96486485)."""
    p, t = _pair(pred, y)
    return int((p.long() == t.long()).sum()) / p.numel()


def per_class_f1(pred: ArrayLike, y: ArrayLike, num_classes: int | None = None) -> list[float]:
    """F1 of each class 0..C-1 (index 1 of a binary task is the positive-class F1)."""
    p, t = _pair(pred, y)
    p, t = p.long(), t.long()
    c = max(num_classes or 0, int(max(p.max(), t.max())) + 1)
    tp = torch.bincount(t[p == t], minlength=c).double()
    pred_count = torch.bincount(p, minlength=c).double()
    true_count = torch.bincount(t, minlength=c).double()
    denom = pred_count + true_count
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))
    return [float(v) for v in f1]


def macro_f1(pred: ArrayLike, y: ArrayLike) -> float:
    p, t = _pair(pred, y)
    p, t = p.long(), t.long()
    present = torch.unique(torch.cat([p, t]))
    f1 = torch.tensor(per_class_f1(p, t), dtype=torch.float64)
    return float(f1[present].mean())


def mse(pred: ArrayLike, y: ArrayLike) -> float:
    p, t = _pair(pred, y)
    return float(((p.double() - t.double()) ** 2).mean())


def exact_order(pred: ArrayLike, y: ArrayLike) -> float:
    """The share of lists (rows of [n, L] scores) put in the targets' order: every pair
    of elements whose targets differ is ordered as they are (pairs of equal targets do
    not count, so ties need no convention)."""
    p, t = _tensor(pred).double(), _tensor(y).double()
    if p.shape != t.shape or p.dim() != 2:
        raise ValueError(f"an order needs [lists, length] scores and targets, got "
                         f"{tuple(p.shape)} and {tuple(t.shape)}")
    if len(p) == 0:
        raise ValueError("cannot score zero examples")
    apart = t[:, :, None] < t[:, None, :]
    right = p[:, :, None] < p[:, None, :]
    return int((right | ~apart).all(2).all(1).sum()) / len(p)


METRICS: dict[str, Callable[[ArrayLike, ArrayLike], float]] = {
    "accuracy": accuracy,
    "macro_f1": macro_f1,
    "mse": mse,
    "exact_order": exact_order,
}
MEAN_BASELINE = ("mse", "exact_order")  # metrics whose baseline predicts the training mean


def higher_is_better(metric: str) -> bool:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {sorted(METRICS)}")
    return metric != "mse"


def predictions(outputs: ArrayLike, loss: str) -> torch.Tensor:
    """Model outputs to predictions: argmax of Vec logits (cross_entropy), logit > 0 for a
    Bool (bce), the raw value for a Float (mse)."""
    out = _tensor(outputs)
    if loss == "cross_entropy":
        return out.argmax(-1)
    if loss == "bce":
        return (out > 0).long()
    if loss == "mse":
        return out.double()
    raise ValueError(f"unknown loss {loss!r}")


def score(task_or_metric: Any, outputs: ArrayLike, y: ArrayLike) -> float:
    """The task's metric of raw model outputs. Given a metric name instead of a task, the
    loss is read from the outputs: 2-D floats are class logits, 1-D floats Bool logits,
    integers or booleans are predictions already (and mse takes values as they are)."""
    if isinstance(task_or_metric, str):
        metric, loss = task_or_metric, _loss_from_outputs(task_or_metric, _tensor(outputs))
    else:
        metric, loss = task_or_metric.metric, task_or_metric.loss
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {sorted(METRICS)}")
    preds = _tensor(outputs) if loss is None else predictions(outputs, loss)
    return METRICS[metric](preds, y)


def _loss_from_outputs(metric: str, out: torch.Tensor) -> str | None:
    if metric in MEAN_BASELINE:
        return "mse"
    if not out.is_floating_point():
        return None
    return "cross_entropy" if out.dim() == 2 else "bce"


def baseline_name(metric: str) -> str:
    """What the baseline predicts, in words: the majority class, or for mse (and an
    order) the mean."""
    return "mean" if metric in MEAN_BASELINE else "majority"


def trivial_words(metric: str) -> str:
    what = "the training mean" if metric in MEAN_BASELINE else "the majority class"
    return f"no better than always predicting {what} (within noise)"


def majority_baseline(y_train: ArrayLike, y_test: ArrayLike, metric: str) -> float:
    """The score on `y_test` of always predicting the most frequent training class (ties:
    the lowest index), for mse the training mean, for an order each position's training
    mean: the floor any result must beat."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {sorted(METRICS)}")
    if _tensor(y_train).numel() == 0:
        raise ValueError("majority baseline of an empty training set")
    if metric == "exact_order":  # each position's training mean, for every list
        train, test = _tensor(y_train).double(), _tensor(y_test)
        return exact_order(train.mean(0).expand(test.shape), test)
    train, test = _tensor(y_train).flatten(), _tensor(y_test).flatten()
    if metric == "mse":
        constant = torch.full(test.shape, float(train.double().mean()))
    else:
        constant = torch.full(test.shape, int(torch.bincount(train.long()).argmax()))
    return METRICS[metric](constant, test)


def no_better_than_majority(metric: str, score_: float, baseline: float, n: int) -> bool:
    """Whether a test score is within noise of always predicting the majority (or the
    mean): for a score in [0, 1], within two binomial standard errors of the baseline on
    `n` examples (at least 0.01); for mse, less than 2% below the baseline's."""
    if not higher_is_better(metric):
        return score_ >= 0.98 * baseline
    p = min(max(baseline, 0.0), 1.0)
    margin = max(2 * math.sqrt(p * (1 - p) / max(n, 1)), 0.01)
    return score_ < baseline + margin
