"""Convex fits solved exactly (`neurosym.convex`), folds for tiny classes, and fits that no
clock changes."""

from dataclasses import replace

import numpy as np
import torch
from sklearn.datasets import load_diabetes, load_digits, load_wine
from sklearn.linear_model import LogisticRegression, Ridge

from neurosym import Task, convex
from neurosym.convex import ClassBlocks, design
from neurosym.evaluate import train_config, train_on_task
from neurosym.lang.parser import parse_term
from neurosym.search.scoring import build
from neurosym.tasks.splits import stratified_folds, stratified_partition
from neurosym.train import first_batch, predict, set_up


def _table(loader, **options) -> Task:
    x, y = loader(return_X_y=True)
    n = len(y) * 3 // 4
    return Task.from_arrays(x[:n], y[:n], x[n:], y[n:], **options)


def _fitted(task: Task, text: str, **config):
    torch.manual_seed(0)
    model = build(task, parse_term(text), 32)
    # one mini-batch of the whole training split: the maps standardize by all of it
    result = train_on_task(model, task, replace(train_config(task), batch_size=10**6, **config))
    return model, result


def _standardized(model, x: torch.Tensor) -> np.ndarray:
    from neurosym.interp.primitives import Affine

    (affine,) = [m for m in model.modules() if isinstance(m, Affine)]
    return ((x - affine.standardize.shift) / affine.standardize.scale).numpy()


def test_a_linear_classifier_is_solved_to_scikit_learns_optimum():
    task = _table(load_wine)
    model, result = _fitted(task, "affine")
    assert result.solved
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(
        _standardized(model, task.train.x), task.train.y.numpy())
    ours = torch.softmax(predict(model, task.test.x), 1).numpy()
    theirs = reference.predict_proba(_standardized(model, task.test.x))
    assert np.abs(ours - theirs).max() < 2e-3


def test_a_linear_regression_is_solved_to_ridges_optimum():
    task = _table(load_diabetes)
    model, result = _fitted(task, "affine")
    assert result.solved
    reference = Ridge(alpha=1.0).fit(_standardized(model, task.train.x), task.train.y.numpy())
    ours = predict(model, task.test.x).numpy()
    assert np.abs(ours - reference.predict(_standardized(model, task.test.x))).max() < 1e-3


def test_programs_not_linear_in_their_weights_are_not_solved():
    task = _table(load_wine)
    for text in (r"\x -> mul (affine x) (affine x)", r"\x -> relu (affine x)",
                 r"\x -> ite (above (select[0] x)) (affine x) (affine x)"):
        model = build(task, parse_term(text), 32)
        set_up(model, [task.train.x], first_batch(len(task.train.y), 0, 64))
        assert design(model, [task.train.x], len(task.train.y)) is None, text
    assert not _fitted(task, r"\x -> mul (affine x) (affine x)", epochs=2)[1].solved


def test_a_map_per_class_is_solved_by_blocks_to_the_dense_designs_optimum(monkeypatch):
    """Output k reads row k of every map, by the same features: the design is X ⊗ I
    (`ClassBlocks`, 1/classes of the dense matrix), and it solves to the optimum of the
    dense design measured weight by weight: by Newton's method on its row space (fewer
    examples than features) and by L-BFGS (650 weights)."""
    for examples, text in ((30, r"\x -> add (affine x) (affine (select[0:6] x))"),
                           (None, "affine")):
        task = _table(load_digits)
        task = replace(task, train=task.train.subset(torch.arange(examples or len(task.train))))
        torch.manual_seed(0)
        model = build(task, parse_term(text), 32)
        rows = len(task.train.y)
        set_up(model, [task.train.x], first_batch(rows, 0, 10**6))
        blocks = design(model, [task.train.x], rows)
        assert isinstance(blocks.matrix, ClassBlocks)
        with monkeypatch.context() as patch:
            patch.setattr(convex, "_class_blocks", lambda *args: None)
            dense = design(model, [task.train.x], rows)
        assert torch.allclose(blocks.matrix.dense(), dense.matrix, atol=1e-9)
        solved = [convex.solve(d, task.train.y, "cross_entropy", None, rows, 1e-9, 2000)[0]
                  for d in (blocks, dense)]
        assert torch.allclose(*solved, atol=1e-5), text


def test_sums_of_maps_are_solved_and_no_clock_changes_the_fit():
    task = _table(load_wine)
    text = r"\x -> add (affine (select[0:6] x)) (affine (select[6:13] x))"
    idle, result = _fitted(task, text)
    busy, _ = _fitted(task, text, max_seconds=1e-9)  # as if the machine were very busy
    assert result.solved
    for a, b in zip(idle.parameters(), busy.parameters()):
        assert torch.equal(a, b)


def test_folds_spread_classes_of_two_over_every_fold():
    labels = torch.arange(52).repeat_interleave(2)
    folds = stratified_folds(labels, len(labels), 5, seed=0)
    assert sorted(map(len, folds)) == [20, 21, 21, 21, 21]
    assert torch.equal(torch.cat(folds).sort().values, torch.arange(104))


def test_a_validation_split_of_tiny_classes_takes_its_share_not_half():
    labels = torch.arange(52).repeat_interleave(2)
    fit, val = stratified_partition(labels, len(labels), (0.8, 0.2), seed=0)
    assert len(val) == 21 and len(fit) == 83
    assert len(torch.unique(labels[fit])) == 52  # every class keeps a training example


def test_a_search_over_classes_of_two_returns_a_cross_validated_program():
    from neurosym import synthesize

    gen = np.random.default_rng(0)
    centres = gen.normal(size=(12, 5)) * 3
    x = np.concatenate([centres + gen.normal(size=centres.shape) * 0.3 for _ in range(3)])
    y = np.tile(np.arange(12), 3)
    task = Task.from_arrays(x[:24], y[:24], x[24:], y[24:])
    result = synthesize(task, max_nodes=8, time_limit=60)
    assert result.best is not None and result.best.cv is not None
    assert result.best.evaluation.test > 0.5


def test_class_weighted_binary_programs_are_solved_and_beat_a_short_descent():
    from neurosym.tasks.spec import load_task

    task = load_task("digit_recognize_3")  # bce, balanced class weights, Image[8,8]
    solved, result = _fitted(task, "affine")
    descended, other = _fitted(task, "affine", solve=False, epochs=3)
    assert result.solved and not other.solved
    assert result.val_loss < other.val_loss


def test_feature_relaxations_rewrite_holes_into_cached_features_and_maps():
    from neurosym.lang.printer import show
    from neurosym.lang.types import Arrow
    from neurosym.relax.features import relax_holes
    from neurosym.search.scoring import NodeSettings, train_nodes
    from neurosym.search.skeleton import FeatureCache
    from neurosym.tasks.spec import load_task

    task = load_task("basic_motions")
    task_type = Arrow(task.input_type, task.output_type)
    relaxed = relax_holes(parse_term(r"\xs -> add (?? (mean xs)) (mean (map ?? xs))"),
                          task_type, 8, 0)
    assert show(relaxed) == (r"\xs -> add (affine (features[14, 0] (mean xs))) "
                             r"(mean (map (\$r0 -> affine (features[14, 0] $r0)) xs))")
    # a fold whose step has a hole stands in as a whole for a hole over its list
    folded = relax_holes(parse_term(r"\xs -> mul (fold ?? (?? (mean xs)) xs) (?? (std xs))"),
                         task_type, 8, 0)
    assert show(folded) == (r"\xs -> mul (affine (features[224, 0] xs)) "
                            r"(affine (features[14, 0] (std xs)))")
    closed = r"\xs -> fold (\acc x -> add (affine acc) (affine x)) (?? (mean xs)) xs"
    assert "fold" in show(relax_holes(parse_term(closed), task_type, 8, 0))
    settings = NodeSettings(train_config(task), relaxation="features", hidden=8)
    cache = FeatureCache(task)
    (score,) = train_nodes(task, [(r"\xs -> ?? xs", None)], settings, features=cache)
    assert r"\xs -> features[224, 0] xs" in cache.values  # 14 features x 16 statistics
    assert score.h < 0.2 and score.val_metric > 0.9  # solved: a linear map of them
    again = train_nodes(task, [(r"\xs -> ?? xs", None)], settings, features=cache)[0]
    assert again.h == score.h  # deterministic


def test_the_one_standard_error_rule_picks_the_cheapest_program_the_folds_cannot_separate():
    from types import SimpleNamespace

    from neurosym.search.final import CrossValidation, one_standard_error

    def program(name, cost, folds):
        cv = CrossValidation(tuple(folds), tuple(folds))
        return SimpleNamespace(text=name, cost=cost, cv=cv, final_f=cv.mean_f)

    best = program("deep", 4.0, [0.10, 0.30, 0.20, 0.10, 0.30])  # mean 0.2, SE 0.045
    close = program("shallow", 2.0, [0.24, 0.24, 0.24, 0.24, 0.24])
    far = program("tiny", 1.0, [0.40, 0.40, 0.40, 0.40, 0.40])
    assert [p.text for p in one_standard_error([best, close, far])] == \
        ["shallow", "deep", "tiny"]
    assert one_standard_error([best, far])[0] is best


def test_the_newton_hessian_is_autograds_for_every_loss():
    """Checked in double precision against autograd, class weights included."""
    from neurosym.convex import loss_hessian
    from neurosym.train import losses_per_model

    gen = torch.Generator().manual_seed(0)
    rows, width, size = 7, 3, 5
    matrix = torch.randn(rows * width, size, generator=gen, dtype=torch.float64)
    offset = torch.randn(rows * width, generator=gen, dtype=torch.float64)
    cases = [("cross_entropy", torch.randint(0, width, (rows,), generator=gen), width),
             ("bce", torch.randint(0, 2, (rows,), generator=gen).double(), 1),
             ("mse", torch.randn(rows, width, generator=gen, dtype=torch.float64), width)]
    for kind, y, w in cases:
        m, c = matrix[: rows * w], offset[: rows * w]
        for weights in (None, torch.tensor([0.5, 2.0, 1.0][:max(w, 2)], dtype=torch.float64)):

            def loss(theta, kind=kind, y=y, m=m, c=c, weights=weights, w=w):
                out = (c + m @ theta).reshape(rows, -1) if kind != "bce" else c + m @ theta
                return losses_per_model(kind, out.unsqueeze(0), y.unsqueeze(0), weights)[0]

            theta = torch.randn(size, generator=gen, dtype=torch.float64)
            expected = torch.autograd.functional.hessian(loss, theta)
            out = (c + m @ theta).reshape(rows, -1)
            assert torch.allclose(loss_hessian(m, out, kind, y, weights), expected,
                                  atol=1e-10), (kind, weights)


def test_more_weights_than_outputs_are_solved_in_the_row_space_to_the_same_optimum():
    """The reduction to the design's row space (wide features, few examples) gives the
    optimum of the full problem, for each loss, biases barely penalized."""
    from neurosym.convex import Design, _penalized, solve

    gen = torch.Generator().manual_seed(3)
    rows, size = 6, 40
    for kind, width in (("cross_entropy", 3), ("bce", 1), ("mse", 2)):
        matrix = torch.randn(rows * width, size, generator=gen, dtype=torch.float64)
        offset = torch.randn(rows * width, generator=gen, dtype=torch.float64)
        biases = torch.zeros(size, dtype=torch.bool)
        biases[-width:] = True
        y = {"cross_entropy": torch.tensor([0, 1, 2, 0, 1, 2]),
             "bce": torch.tensor([0.0, 1, 0, 1, 1, 0]).reshape(rows, 1),
             "mse": torch.randn(rows, width, generator=gen)}[kind]
        d = Design(offset, matrix, ("w",), (torch.Size([size]),), biases)
        reduced, _ = solve(d, y, kind, None, rows)
        lam = (2.0 if kind == "mse" else 1.0) / rows
        penalty = torch.where(biases, lam * 1e-6, lam)
        full, _ = _penalized(offset, matrix, penalty, y, kind, None, rows, 1e-10, 10_000)
        assert torch.allclose(offset + matrix @ reduced, offset + matrix @ full, atol=1e-5)
        assert torch.allclose(reduced, full, rtol=1e-4, atol=1e-4)
