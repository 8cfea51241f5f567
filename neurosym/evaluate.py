"""Train a program (or a partial program with relaxed holes) on a task and score it on every
split, with the majority-class baseline beside it so that a trivial answer is visible."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from neurosym import metrics
from neurosym.tasks.spec import Task
from neurosym.train import TrainConfig, TrainResult, fit, predict


@dataclass(frozen=True)
class Evaluation:
    metric: str
    train: float
    val: float
    test: float
    val_loss: float
    baseline: float  # the test score of always predicting the training majority (or mean)
    per_class_f1: list[float] = field(default_factory=list)
    epochs: int = 0
    seconds: float = 0.0
    trivial: bool = False  # the test score is within noise of the majority baseline
    # regression on standardized targets: the targets' variance, so that mse * units is in
    # the data's own units (what a user compares with another model's error)
    units: float | None = None

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def in_units(self) -> str | None:
        """The test score and baseline in the target's own units, if the task standardized
        its targets."""
        return None if self.units is None else in_units(self.metric, self.test,
                                                        self.baseline, self.units)


def in_units(metric: str, test: float, baseline: float, units: float) -> str:
    return (f"{metric} in the target's units: test {test * units:.5g} "
            f"({metrics.baseline_name(metric)} baseline {baseline * units:.5g})")


def train_config(task: Task, **overrides) -> TrainConfig:
    """The task's `[train]` budget, with explicit overrides (None means: keep)."""
    opts = task.options
    base = TrainConfig(
        epochs=int(opts.get("epochs", TrainConfig.epochs)),
        lr=float(opts.get("lr", TrainConfig.lr)),
        batch_size=int(opts.get("batch_size", TrainConfig.batch_size)),
        patience=int(opts.get("patience", TrainConfig.patience)),
        weight_decay=float(opts.get("weight_decay", TrainConfig.weight_decay)),
        seed=task.seed,
    )
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def train_on_task(model: nn.Module, task: Task, config: TrainConfig) -> TrainResult:
    return fit(model, (task.train.x, task.train.y), (task.val.x, task.val.y), task.loss, config,
               task.class_weights)


def evaluate(model: nn.Module, task: Task, result: TrainResult | None = None) -> Evaluation:
    scores = {name: metrics.score(task, predict(model, split.x), split.y)
              for name, split in task.splits().items()}
    per_class: list[float] = []
    baseline = metrics.majority_baseline(task.train.y, task.test.y, task.metric)
    if task.loss != "mse":
        test_pred = metrics.predictions(predict(model, task.test.x), task.loss)
        per_class = metrics.per_class_f1(test_pred, task.test.y, task.num_classes)
    norm = task.normalization
    target = None if norm is None else norm.target
    return Evaluation(
        units=target[1] ** 2 if target and task.metric == "mse" else None,
        metric=task.metric, train=scores["train"], val=scores["val"], test=scores["test"],
        val_loss=result.val_loss if result else float("nan"),
        baseline=baseline, per_class_f1=per_class, epochs=result.epochs if result else 0,
        seconds=result.seconds if result else 0.0,
        trivial=metrics.no_better_than_majority(task.metric, scores["test"], baseline,
                                                len(task.test)))


def train_and_evaluate(model: nn.Module, task: Task, config: TrainConfig) -> Evaluation:
    torch.manual_seed(config.seed)
    return evaluate(model, task, train_on_task(model, task, config))
