"""Black-box baselines on the same splits as the search: an end-to-end GRU and a 1-NN on
flattened (padded) series. They show what readability costs in accuracy.

    python bench/baselines.py basic_motions japanese_vowels
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from torch import nn

from neurosym import metrics
from neurosym.evaluate import Evaluation, evaluate, train_config, train_on_task
from neurosym.interp.values import Seq
from neurosym.lang.types import Arrow
from neurosym.relax.networks import Relaxation
from neurosym.tasks.spec import Task, load_task

FINALISTS = 5  # programs kept to the end of a benchmark search, for the selection regret


def selection_regret(tests: list[float]) -> tuple[float, float]:
    """How much test score the pick lost among finalists fixed before it (a report: the
    search never sees test data). `tests[0]` is the returned program's test score, the
    rest the other finalists' (higher is better). Returns (best - returned, best - the
    mean of them all: what a random pick among them loses on average)."""
    best = max(tests)
    return best - tests[0], best - sum(tests) / len(tests)


class _Net(nn.Module):
    """A relaxation network used as a whole model: GRU over the list, MLP head."""

    def __init__(self, task: Task, hidden: int) -> None:
        super().__init__()
        self.net = Relaxation([], Arrow(task.input_type, task.output_type), hidden, "gru")

    def forward(self, x):
        return self.net([x], x.data.shape[0] if isinstance(x, Seq) else x.shape[0])


def gru_baseline(task: Task, epochs: int = 200, hidden: int = 64, seed: int = 0) -> Evaluation:
    torch.manual_seed(seed)
    model = _Net(task, hidden)
    config = train_config(task, epochs=epochs, patience=30, seed=seed)
    return evaluate(model, task, train_on_task(model, task, config))


def _flat(x) -> np.ndarray:
    data = x.data * x.weights.reshape(*x.weights.shape, *([1] * (x.data.dim() - 2))) \
        if isinstance(x, Seq) else x
    return data.reshape(data.shape[0], -1).numpy()


def knn_baseline(task: Task) -> float:
    """1-NN (Euclidean) on flattened series padded to a common length; test metric."""
    from sklearn.neighbors import KNeighborsClassifier

    train, test = _flat(task.train.x), _flat(task.test.x)
    width = max(train.shape[1], test.shape[1])
    pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1])))  # noqa: E731
    knn = KNeighborsClassifier(n_neighbors=1).fit(pad(train), task.train.y.numpy())
    pred = torch.as_tensor(knn.predict(pad(test)))
    return metrics.score(task.metric, pred, task.test.y) if task.metric != "accuracy" \
        else metrics.accuracy(pred, task.test.y)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", default=["basic_motions", "japanese_vowels"])
    args = parser.parse_args(argv)
    print(f"{'task':18} {'GRU test':>9} {'GRU s':>7} {'1-NN test':>9} {'majority':>9}")
    for name in args.tasks:
        task = load_task(name)
        start = time.perf_counter()
        gru = gru_baseline(task)
        seconds = time.perf_counter() - start
        print(f"{name:18} {gru.test:9.4f} {seconds:7.1f} {knn_baseline(task):9.4f} "
              f"{gru.baseline:9.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
