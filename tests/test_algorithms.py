"""Differentiable algorithms (issue 30): gradients checked in double precision, the sorting
network sorts exactly as its steepness grows, the soft shortest path is Dijkstra's at low
temperature, soft logic is exact at large logits and stable beyond them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from neurosym.interp.algorithms import (
    all_true,
    and_,
    cheapest_paths,
    logit_of_log_prob,
    or_,
    soft_shortest_path,
    sorting_network,
)
from neurosym.interp.compiler import compile_term
from neurosym.interp.values import pad_sequences
from neurosym.lang.checker import check_term
from neurosym.lang.errors import DSLTypeError
from neurosym.lang.parser import parse_term, parse_type
from neurosym.train import predict


def _run(source: str, type_text: str, x):
    term = parse_term(source)
    return compile_term(term, check_term(term, parse_type(type_text)))(x)


def test_soft_logic_is_the_product_t_norm_exact_at_large_logits():
    a = torch.tensor([50.0, -50.0, 0.0, 2.0, 30.0])
    b = torch.tensor([50.0, 50.0, 0.0, -1.0, -30.0])
    pa, pb = torch.sigmoid(a.double()), torch.sigmoid(b.double())
    site = None
    assert torch.allclose(torch.sigmoid(and_(site, a, b)).double(), pa * pb, rtol=1e-5)
    assert torch.allclose(torch.sigmoid(or_(site, a, b)).double(), 1 - (1 - pa) * (1 - pb),
                          rtol=1e-5)
    assert and_(site, a, b)[0].item() == pytest.approx(50 - np.log(2), abs=1e-3)
    assert or_(site, a, b)[1].item() == pytest.approx(50, abs=1e-3)  # 1 - tiny, not 1
    huge = torch.tensor([1e4, -1e4])
    for out in (and_(site, huge, huge), or_(site, huge, -huge)):
        assert torch.isfinite(out).all()


def test_all_and_any_over_present_elements():
    xs = pad_sequences([torch.tensor([5.0, 6.0, 7.0]), torch.tensor([5.0, -6.0]),
                        torch.tensor([-5.0])])
    all_out = _run("\\xs -> all (\\x -> gt x 0) xs", "List[Float] -> Bool", xs)
    any_out = _run("\\xs -> any (\\x -> gt x 0) xs", "List[Float] -> Bool", xs)
    assert (all_out > 0).tolist() == [True, False, False]  # padding does not count
    assert (any_out > 0).tolist() == [True, True, False]
    probs = torch.sigmoid(torch.tensor([5.0, 6.0, 7.0]).double())
    assert torch.sigmoid(all_out[0]).double().item() == pytest.approx(probs.prod().item(),
                                                                      rel=1e-5)
    empty = all_true(torch.zeros(1, 3), torch.zeros(1, 3))
    assert torch.sigmoid(empty).item() == 1.0 and torch.isfinite(empty).all()


def test_soft_logic_gradients_in_double_precision():
    a = torch.randn(6, dtype=torch.float64, requires_grad=True) * 4
    b = torch.randn(6, dtype=torch.float64, requires_grad=True) * 4
    a, b = a.detach().requires_grad_(), b.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: and_(None, a, b), (a, b))
    assert torch.autograd.gradcheck(lambda a, b: or_(None, a, b), (a, b))
    logits = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    weights = torch.tensor([[1.0] * 5, [1.0] * 3 + [0.0] * 2, [0.5] * 5], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: all_true(x, weights), (logits,))
    near_certain = torch.tensor([-1e-4, -1e-2, -5.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(logit_of_log_prob, (near_certain,))


def test_the_sorting_network_sorts_exactly_as_its_steepness_grows():
    gen = torch.Generator().manual_seed(0)
    for n in (2, 3, 5, 8):
        x = torch.randn(50, n, generator=gen, dtype=torch.float64)
        x = x + torch.arange(n) * 1e-3  # distinct
        hard = torch.nn.functional.one_hot(x.argsort(1), n).double()
        gaps = []
        for steepness in (1.0, 100.0, 1e4, 1e7):
            perm = sorting_network(x, torch.ones_like(x, dtype=torch.bool), steepness)
            assert torch.allclose(perm.sum(1), torch.ones(50, n, dtype=torch.float64))
            assert torch.allclose(perm.sum(2), torch.ones(50, n, dtype=torch.float64))
            gaps.append((perm - hard).abs().max().item())
        assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3, gaps
        sorted_x = (perm @ x.unsqueeze(-1)).squeeze(-1)
        assert torch.allclose(sorted_x, x.sort(1).values, atol=1e-3)


def test_sort_and_rank_keep_padding_last():
    xs = pad_sequences([torch.tensor([3.0, 1.0, 2.0, 0.0]), torch.tensor([2.0, -1.0])])
    out = _run("\\xs -> sort[1000] xs", "List[Float] -> List[Float]", xs)
    assert torch.allclose(out.data[0], torch.tensor([0.0, 1.0, 2.0, 3.0]), atol=1e-2)
    assert torch.allclose(out.data[1, :2], torch.tensor([-1.0, 2.0]), atol=1e-2)
    assert torch.allclose(out.weights, xs.weights)
    ranks = _run("\\xs -> rank[1000] xs", "List[Float] -> List[Float]", xs)
    assert torch.allclose(ranks.data[0], torch.tensor([3.0, 1.0, 2.0, 0.0]), atol=1e-2)
    assert torch.allclose(ranks.data[1, :2], torch.tensor([1.0, 0.0]), atol=1e-2)


def test_sorting_network_gradients_in_double_precision():
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    present = torch.tensor([[True] * 5, [True] * 3 + [False] * 2] * 2)
    assert torch.autograd.gradcheck(lambda x: sorting_network(x, present, 2.0), (x,))


def test_soft_shortest_path_is_dijkstras_at_low_temperature():
    rng = np.random.default_rng(0)
    for h, w in ((2, 2), (3, 4), (5, 5), (6, 3)):
        costs = rng.integers(1, 11, size=(20, h, w)).astype(np.float64)
        want = cheapest_paths(costs)
        for t in (1.0, 0.01):
            got = soft_shortest_path(torch.from_numpy(costs), t).numpy()
            assert (got <= want + 1e-9).all()  # a soft minimum is below the minimum
        assert np.abs(got - want).max() < 0.1, (h, w)


def test_soft_path_visits_the_shortest_path():
    costs = torch.tensor([[[1.0, 9.0, 9.0], [1.0, 1.0, 9.0], [9.0, 1.0, 1.0]]])
    visits = _run("\\c -> path[0.01] c", "Image[3,3] -> Image[3,3]", costs)
    assert torch.allclose(visits, (costs == 1).float(), atol=1e-3)
    with torch.no_grad():  # a gradient inside, also when predicting
        again = _run("\\c -> path[0.01] c", "Image[3,3] -> Image[3,3]", costs)
    assert torch.equal(visits, again)


def test_shortest_path_gradients_in_double_precision():
    costs = torch.rand(2, 3, 3, dtype=torch.float64) * 5 + 1
    costs.requires_grad_()
    assert torch.autograd.gradcheck(lambda c: soft_shortest_path(c, 0.5), (costs,))
    assert torch.autograd.gradgradcheck(lambda c: soft_shortest_path(c, 0.5), (costs,))


def test_a_grid_of_recognised_digits_type_checks_and_bad_parameters_are_named():
    source = "\\xs -> shortest_path (grid[2, 2] (map (\\x -> prob (?? x)) xs))"
    term = parse_term(source)
    check_term(term, parse_type("List[Image[8,8]] -> Float"))
    for bad, message in (("\\xs -> sort[-1] xs", "positive steepness"),
                         ("\\xs -> shortest_path[0.1, 2.5] (grid[2, 2] xs)", "sweeps"),
                         ("\\xs -> shortest_path (grid[2] xs)", "height and width")):
        with pytest.raises(DSLTypeError, match=message):
            term = parse_term(bad)
            check_term(term, parse_type("List[Float] -> " + (
                "List[Float]" if "sort" in bad else "Float")))


def test_programs_with_algorithms_export_as_python_and_sort_names_why_not_onnx(tmp_path):
    from test_model import _python_outputs

    import neurosym
    from neurosym.models.export import ExportError, export

    rng = np.random.default_rng(0)
    series = [rng.normal(size=(rng.integers(4, 9), 1)) for _ in range(40)]
    y = np.array([int(s[:, 0].max() > 1) for s in series])
    task = neurosym.Task.from_arrays(series[:30], y[:30], series[30:], y[30:])
    values = "(map (\\x -> select[0] x) xs)"
    (tmp_path / "p.ns").write_text(
        f"def main : {task.input_type} -> Vec[2] = \\xs -> affine (add (last (sort {values}))"
        f" (add (shortest_path (grid[2, 2] {values})) (prob (any (\\x -> gt (select[0] x) 1) "
        "xs))))\n")
    model = neurosym.run_file(tmp_path / "p.ns", task, epochs=2).save(tmp_path / "m")
    x = task.test.x
    assert (_python_outputs(model, tmp_path, x) - predict(model.module, x)).abs().max() <= 1e-5
    with pytest.raises(ExportError, match="`sort` unrolls its sorting network"):
        export(model, "onnx", tmp_path / "m.onnx")


def test_digit_path_grids_are_labelled_by_the_cheapest_path():
    from neurosym.tasks.sources import _image_grids

    labels = torch.arange(10).repeat(5)
    images = labels.float()[:, None, None].expand(50, 8, 8) / 10  # each image shows its digit
    split = _image_grids(images, labels, torch.arange(50), 40, (3, 4), [0, 1])
    assert split.x.data.shape == (40, 12, 8, 8)
    costs = (split.x.data[:, :, 0, 0] * 10).round().reshape(40, 3, 4) + 1
    got = soft_shortest_path(costs.double(), 1e-3)
    assert torch.allclose(got.float(), split.y, atol=0.01)


def test_the_digit_paths_task_loads_and_its_grid_size_is_checked(tmp_path):
    from neurosym.lang.errors import TaskError
    from neurosym.tasks.spec import load_task

    task = load_task("digit_paths", data_fraction=0.1)
    assert str(task.input_type) == "List[Image[8,8]]" and task.loss == "mse"
    assert len(task.train) == 100 and bool((task.train.y >= 5).all())  # 5 cells, cost >= 1
    bad = tmp_path / "bad.toml"
    text = (Path(__file__).parents[1] / "tasks" / "digit_paths.toml").read_text()
    bad.write_text(text.replace("height = 3", "height = 0"))
    with pytest.raises(TaskError, match=r"bad.toml \[data\].*height"):
        load_task(str(bad))
    huge = text.replace("height = 3", "height = 64").replace("width = 3", "width = 64")
    bad.write_text(huge.replace("n_train = 1000", "n_train = 2000"))
    with pytest.raises(TaskError, match="2600 grids of 4096 images: more than 5,000,000"):
        load_task(str(bad))


def test_the_digit_order_task_is_labelled_by_positions_alone(tmp_path):
    """Lists of distinct digits whose targets are each image's position when sorted, one
    per element; its metric counts lists put in that order, ties aside; a task file whose
    targets cannot be one per element is refused with what it needs."""
    from neurosym import metrics
    from neurosym.lang.errors import TaskError
    from neurosym.tasks.sources import _digits
    from neurosym.tasks.spec import load_task

    task = load_task("digit_order", data_fraction=0.05)
    assert str(task.output_type) == "List[Float]" and task.metric == "exact_order"
    images, labels = _digits()
    assert task.train.x.data.shape[1:] == (5, 8, 8) and task.train.y.shape == (100, 5)
    assert bool((task.train.y.sort(1).values == torch.arange(5.0)).all())  # positions
    flat = task.test.x.data.flatten(0, 1).reshape(-1, 64)
    digit = labels[(flat[:, None] == images.reshape(-1, 64)[None]).all(2).float().argmax(1)]
    digits = digit.reshape(-1, 5)
    assert bool((digits.sort(1).values.diff(dim=1) > 0).all())  # distinct
    assert torch.equal(digits.argsort(1).argsort(1).float(), task.test.y)
    assert metrics.exact_order(digits.float(), task.test.y) == 1.0  # the digits sort them
    assert metrics.exact_order(-digits.float(), task.test.y) == 0.0
    assert metrics.exact_order(torch.tensor([[0.0, 1.0, 1.0]]), torch.tensor([[0, 1, 1]])) == 1
    assert metrics.majority_baseline(task.train.y, task.test.y, "exact_order") < 0.05
    text = (Path(__file__).parents[1] / "tasks" / "digit_order.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('output = "List[Float]"', 'output = "List[Bool]"'))
    with pytest.raises(TaskError, match="needs output type Float or List"):
        load_task(str(bad))


def test_an_order_is_learned_through_rank_and_exports_as_its_values(tmp_path):
    """A task program with a list output returns its values [lists, length] in memory and
    from the exported Python file alike; a few epochs through `rank` already sort far
    above the mean-position baseline."""
    from test_model import _python_outputs

    import neurosym

    program = tmp_path / "sort.ns"
    program.write_text("def main : List[Image[8,8]] -> List[Float] = "
                       "\\xs -> rank[30] (map nn xs)\n")
    task = neurosym.load_task("digit_order", data_fraction=0.25)
    run = neurosym.run_file(program, task, epochs=3, seed=0)
    assert run.evaluation.test > 10 * run.evaluation.baseline
    model = run.save(tmp_path / "model")
    x = task.test.x
    ours = predict(model.module, x)
    assert ours.shape == (len(task.test), 5)
    assert (_python_outputs(model, tmp_path, x) - ours).abs().max() <= 1e-5
