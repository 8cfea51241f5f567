"""Nodes trained together: skeletons over parameter-free parts, and scores that do not
depend on what a node was trained with, nor on the batching itself."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from neurosym import train as training
from neurosym.interp.values import Seq
from neurosym.lang.parser import parse_term, parse_type
from neurosym.lang.printer import show
from neurosym.lang.types import Arrow
from neurosym.search.scoring import NodeSettings, build, judge, node_seed, train_nodes
from neurosym.search.skeleton import skeleton
from neurosym.search.synthesis import node_training, resolve_config
from neurosym.tasks.spec import Split, Task
from neurosym.train import fit, predict


def _series_task() -> Task:
    gen = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        data = torch.randn(n, 12, 2, generator=gen)
        weights = torch.ones(n, 12)
        weights[::3, 9:] = 0  # some shorter series
        y = (data[:, 2:6, 0].mean(1) > data[:, :, 1].std(1) - 1).long()
        return Split(Seq(data, weights), y)

    return Task(name="toy_series", description="", input_type=TASK_TYPE.arg,
                output_type=TASK_TYPE.result, loss="cross_entropy", metric="accuracy",
                train=split(60), val=split(30), test=split(30), classes=None, seed=0,
                class_weights=None, options={"epochs": 5, "lr": 0.05, "batch_size": 16})


TASK_TYPE = Arrow(parse_type("List[Vec[2]]"), parse_type("Vec[2]"))


@pytest.mark.parametrize("text, body, features", [
    ("\\xs -> ?? (mean xs)", "\\$0 -> ?? $0", ["\\xs -> mean xs"]),
    ("\\xs -> add (affine (std xs)) (?? (mean xs))", "\\$0 $1 -> add (affine $0) (?? $1)",
     ["\\xs -> std xs", "\\xs -> mean xs"]),
    ("\\xs -> mean (map ?? xs)", "\\$0 -> mean (map ?? $0)", ["\\xs -> xs"]),
    ("\\xs -> affine (mean (interval xs))", "\\$0 -> affine (mean (interval $0))", ["\\xs -> xs"]),
    ("\\xs -> ??", "\\$0 -> ??", ["\\xs -> xs"]),  # still takes the input, for its rows
    ("?? ", "\\$0 -> ?? $0", ["\\$x -> $x"]),  # eta-expanded
    # the same part twice is one feature; a shadowing binder is not the input
    ("\\xs -> add (affine (mean xs)) (mean (map (\\xs -> ?? xs) xs))",
     "\\$0 $1 -> add (affine $0) (mean (map (\\xs -> ?? xs) $1))",
     ["\\xs -> mean xs", "\\xs -> xs"]),
])
def test_a_skeleton_takes_the_largest_parameter_free_parts(text, body, features):
    skel = skeleton(parse_term(text), TASK_TYPE)
    assert show(skel.term) == body
    assert [show(f) for f in skel.features] == features


FISSION = [
    # a loop's element read through one parameter-free part: the part leaves the loop
    (r"\xs -> mean (map (\x -> affine (select[0:1] x)) xs)",
     r"\$0 -> mean (map (\$e0 -> affine $e0) $0)", [r"\xs -> map (\x -> select[0:1] x) xs"]),
    (r"\xs -> mean (window[3] (\ys -> mul (affine (std ys)) (affine (std ys))) xs)",
     r"\$0 -> mean (map (\$e0 -> mul (affine $e0) (affine $e0)) $0)",
     [r"\xs -> window[3] (\ys -> std ys) xs"]),
    (r"\xs -> fold (\acc x -> add (affine acc) (affine (select[1:2] x))) (affine (mean xs)) xs",
     r"\$0 $1 -> fold (\acc $e0 -> add (affine acc) (affine $e0)) (affine $0) $1",
     [r"\xs -> mean xs", r"\xs -> map (\x -> select[1:2] x) xs"]),
    # two parts of the element: nothing moves
    (r"\xs -> mean (window[3] (\ys -> add (affine (std ys)) (affine (mean ys))) xs)",
     r"\$0 -> mean (window[3] (\ys -> add (affine (std ys)) (affine (mean ys))) $0)",
     [r"\xs -> xs"]),
]


@pytest.mark.parametrize("text, body, features", FISSION)
def test_map_fission_moves_a_loops_fixed_part_out(text, body, features):
    skel = skeleton(parse_term(text), TASK_TYPE)
    assert show(skel.term) == body
    assert [show(f) for f in skel.features] == features


def test_map_fission_scores_a_node_as_without_it(monkeypatch):
    """The moved part computes what it did inside the loop: the same seed gives the same
    trained node, part moved or not."""
    from neurosym.search import skeleton as skeleton_module

    task = _series_task()
    config = resolve_config(task, seed=0)
    settings = NodeSettings(node_training(task, config), config.heuristic, 8, 0,
                            relaxation="trained")
    items = [(text, None) for text, *_ in FISSION[:3]]
    moved = train_nodes(task, items, settings)
    monkeypatch.setattr(skeleton_module, "_move_one", lambda *args: None)
    kept = train_nodes(task, items, settings)
    for a, b in zip(moved, kept):
        assert math.isfinite(a.h) and a.h == pytest.approx(b.h, rel=1e-4, abs=1e-6)


def test_siblings_that_differ_in_parameter_free_parts_share_a_skeleton():
    keys = {skeleton(parse_term(f"\\xs -> ?? ({p} xs)"), TASK_TYPE).key
            for p in ("mean", "std", "last", "max")}
    assert len(keys) == 1


@pytest.fixture(scope="module")
def task_and_settings():
    task = _series_task()
    config = resolve_config(task, seed=3)
    # (trained relaxations: what is batched is their training; features are solved)
    return task, NodeSettings(node_training(task, config), config.heuristic, config.hidden, 3,
                              relaxation="trained")


NODES = ["\\xs -> ?? (mean xs)", "\\xs -> ?? (std xs)", "\\xs -> ?? (last xs)",
         "\\xs -> affine (mean xs)", "\\xs -> affine (max xs)", "\\xs -> mean (map ?? xs)",
         "\\xs -> add (affine (mean (interval xs))) (?? (std xs))",
         "\\xs -> affine (shapelet[3] xs)", "\\xs -> affine (shapelet[3] (diff xs))"]


def test_a_score_does_not_depend_on_what_it_was_trained_with(task_and_settings, monkeypatch):
    task, settings = task_and_settings
    sizes: list[int] = []
    stack = training.Stack

    def counting(members, *args):
        sizes.append(len(members))
        return stack(members, *args)

    monkeypatch.setattr("neurosym.search.scoring.Stack", counting)
    together = train_nodes(task, [(t, None) for t in NODES], settings)
    assert max(sizes) >= 3  # the first three (and the two affine) did train together
    for text, score in zip(NODES, together):
        alone = train_nodes(task, [(text, None)], settings)[0]
        assert score.error is None and math.isfinite(score.h)
        assert abs(score.h - alone.h) <= 1e-5 and abs(score.val_loss - alone.val_loss) <= 1e-5
        assert score.states is None or len(score.states) == len(alone.states)


def test_a_batched_score_is_the_score_of_the_whole_program_trained_alone(task_and_settings):
    """The skeleton over precomputed parts trains as `train.fit` trains the program."""
    task, settings = task_and_settings
    scores = train_nodes(task, [(t, None) for t in NODES], settings)
    for text, score in zip(NODES, scores):
        seed = node_seed(settings.seed, text)
        torch.manual_seed(seed)
        model = build(task, parse_term(text), settings.hidden)
        result = fit(model, (task.train.x, task.train.y), (task.val.x, task.val.y), task.loss,
                     replace(settings.train, seed=seed), task.class_weights)
        h, _ = judge(task, predict(model, task.val.x), settings.heuristic, result.val_loss)
        assert abs(score.h - h) <= 1e-4, text


def test_a_node_that_cannot_train_fails_alone(task_and_settings):
    task, settings = task_and_settings
    good, bad = train_nodes(task, [("\\xs -> ?? (mean xs)", None),
                                   ("\\xs -> ?? (mean 3)", None)], settings)
    assert math.isfinite(good.h) and bad.h == math.inf and bad.error
