"""Prototype series and soft-DTW (issue 29): gradients in double precision, soft-DTW
approaching aeon's DTW as its temperature goes to 0, a divergence that is 0 for a series
and itself, prototypes taken per class from training series only, and programs that read
them trained, saved and exported."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from aeon.distances import dtw_distance

import neurosym
from neurosym.interp.dtw import soft_dtw, soft_dtw_divergence
from neurosym.interp.prototypes import allot, medoids, resample, seed_prototypes
from neurosym.interp.values import Seq, pad_sequences
from neurosym.lang.errors import DSLTypeError
from neurosym.train import predict


def _costs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a[:, None] - b[None, :]) ** 2


def test_soft_dtw_and_its_divergence_have_exact_gradients():
    gen = torch.Generator().manual_seed(0)
    cost = torch.rand(2, 6, 7, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: soft_dtw(c, 0.5), (cost,))
    square = torch.rand(2, 6, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: soft_dtw(c, 0.1, band=1), (square,))
    x = torch.randn(3, 6, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    p = torch.randn(2, 6, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    for independent in (False, True):
        assert torch.autograd.gradcheck(
            lambda a, b, i=independent: soft_dtw_divergence(a, b, 0.3, 2, i), (x, p))


def test_soft_dtw_approaches_aeons_dtw_as_the_temperature_goes_to_zero():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.normal(size=int(rng.integers(5, 30))), rng.normal(size=int(rng.integers(5, 30)))
        exact = dtw_distance(a, b)
        gaps = [abs(float(soft_dtw(_costs(torch.tensor(a), torch.tensor(b)), g)) - exact)
                for g in (1.0, 0.1, 0.01, 0.001)]
        assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3 * (1 + exact)
    a, b = rng.normal(size=40), rng.normal(size=40)  # a Sakoe-Chiba band of 4 steps
    banded = float(soft_dtw(_costs(torch.tensor(a), torch.tensor(b)), 0.001, band=4))
    assert banded == pytest.approx(dtw_distance(a, b, window=0.1), rel=1e-3)
    assert banded > dtw_distance(a, b)  # the band forbids the best alignment here


def test_the_divergence_is_zero_for_a_series_and_itself_and_positive_otherwise():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 20, 3, generator=gen)
    for independent in (False, True):
        d = soft_dtw_divergence(x, x, 0.1, 2, independent)
        assert d.diagonal().abs().max() < 1e-5
        off = d[~torch.eye(5, dtype=torch.bool)]
        assert (off > 0).all()
    shifted = torch.roll(x[:1], 1, dims=1)  # the same shape one step later
    assert soft_dtw_divergence(shifted, x[:1], 0.1, 2)[0, 0] < \
        soft_dtw_divergence(shifted, x[1:2], 0.1, 2)[0, 0]


def test_resampling_reads_each_series_at_its_own_length_whatever_the_padding():
    ramp = torch.arange(10.0).reshape(10, 1)
    alone = resample(Seq(ramp[None], torch.ones(1, 10)), 4)
    padded = resample(pad_sequences([ramp, torch.zeros(25, 1)]), 4)
    assert torch.allclose(alone[0, :, 0], torch.tensor([0.0, 3.0, 6.0, 9.0]))
    assert torch.allclose(padded[0], alone[0])
    same = resample(Seq(ramp[None], torch.ones(1, 10)), 10)
    assert torch.allclose(same[0], ramp)


def test_prototypes_are_medoids_of_each_class_capped_and_none_left_out():
    classes = torch.tensor([0] * 20 + [1] * 8 + [2] * 2)
    assert allot(classes, 9) == {0: 5, 1: 2, 2: 1}  # a quarter of each class, at least one
    assert allot(classes, 2) == {0: 1, 1: 1, 2: 0}  # fewer slots: the largest classes first
    assert allot(classes, 40) == {0: 5, 1: 2, 2: 1}
    points = torch.tensor([0.0, 1.0, 2.0, 10.0, 11.0])
    distance = (points[:, None] - points[None, :]).abs()
    assert medoids(distance, 1) == [2]  # the least total distance to the others
    assert medoids(distance, 2) == [1, 3]  # then k-medoids: one per group (ties: lowest)


def _shapes(n: int, seed: int) -> tuple[list[torch.Tensor], list[int]]:
    """Series of varying length with a bump (class 0) or a dip (class 1) at a moving place."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(n):
        length = int(rng.integers(40, 70))
        t = np.arange(length) / length
        where = rng.uniform(0.3, 0.7)
        sign = 1 if i % 2 == 0 else -1
        series = sign * np.exp(-((t - where) / 0.06) ** 2) + rng.normal(0, 0.1, length)
        xs.append(torch.tensor(series, dtype=torch.float32).reshape(-1, 1))
        ys.append(i % 2)
    return xs, ys


def _program(tmp_path, body: str):
    path = tmp_path / "p.ns"
    path.write_text(f"def main : List[Vec[1]] -> Vec[2] =\n  \\xs -> {body}\n")
    return path


def test_prototypes_come_from_the_training_series_of_each_class():
    from neurosym.interp.compiler import compile_term
    from neurosym.lang.checker import check_term
    from neurosym.lang.parser import parse_term, parse_type

    xs, ys = _shapes(40, 0)
    batch, labels = pad_sequences(xs), torch.tensor(ys)
    term = parse_term("\\xs -> prototypes_dtw[6, 16] xs")
    model = compile_term(term, check_term(term, parse_type("List[Vec[1]] -> Vec[6]")))
    seed_prototypes(model, [batch], labels)
    (module,) = [m for m in model.modules() if hasattr(m, "pattern")]
    assert sorted(module.origin.tolist()) == [0, 0, 0, 1, 1, 1]
    training = resample(batch, 16)
    for pattern, cls in zip(module.pattern, module.origin):
        match = (training - pattern).abs().amax((1, 2)).argmin()
        assert torch.allclose(training[match], pattern) and labels[match] == cls
    distances = model(batch)
    assert distances.shape == (40, 6) and (distances >= 0).all()
    # another fit on the same series (a finalist's next fold) measures no pair again
    again = compile_term(term, check_term(term, parse_type("List[Vec[1]] -> Vec[6]")))
    calls = []
    (other,) = [m for m in again.modules() if hasattr(m, "pattern")]
    measure = other.distances
    other.distances = lambda x, to: calls.append(len(x)) or measure(x, to)
    seed_prototypes(again, [batch], labels)
    assert torch.equal(again(batch), distances) and calls == []
    fresh = module.distances(training, module.pattern) / module.scale
    assert torch.allclose(distances, fresh, atol=1e-6)  # what the cache holds


def test_a_prototype_program_learns_moving_shapes_and_exports(tmp_path):
    from test_model import _exported_outputs, _python_outputs

    from neurosym.models.explain import describe
    from neurosym.models.plot import _nearest_panels, plot_model, readers_of

    xs, ys = _shapes(120, 1)
    task = neurosym.Task.from_arrays(xs[:80], ys[:80], xs[80:], ys[80:])
    x = task.test.x
    for body in ("affine (softmin (prototypes_dtw[4, 6, 0.4] xs))",  # 6 steps: exports in s
                 "affine (prototypes[4, 12] (znorm xs))"):
        result = neurosym.run_file(_program(tmp_path, body), task)
        assert result.evaluation.test >= 0.9, body
        model = result.save(tmp_path / "m")
        expected = predict(model.module, x)
        loaded = neurosym.load(tmp_path / "m")
        assert torch.allclose(predict(loaded.module, x), expected)  # not taken again
        for fmt, suffix in (("onnx", ".onnx"), ("torch", ".pt2")):
            got = _exported_outputs(loaded, fmt, tmp_path / f"m{suffix}", x)
            assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5), (body, fmt)
        got = _python_outputs(loaded, tmp_path, x)
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5), body
        shown = [p for p in describe(loaded) if p["part"].startswith("prototypes")]
        assert len(shown) == 1 and sorted(set(shown[0]["classes"])) == [0, 1]
        assert all(line.split()[0] in ("0", "1") for line in shown[0]["sketch"])  # class names
    plot = plot_model(loaded, x, [f"class {v}" for v in task.test.y.tolist()],
                      tmp_path / "p.png")
    assert plot.stat().st_size > 10_000
    ((text, entries, values),) = readers_of(loaded, x)  # what the map reads: 4 distances
    assert text == "prototypes[4, 12] (znorm xs)" and entries[0].startswith("prototype 0 (")
    assert values.shape == (len(task.test.y), 4) and (values >= 0).all()
    # the series drawn beside each prototype are those it is compared with: z-normalized
    panels = _nearest_panels(loaded, x, [f"class {v}" for v in task.test.y.tolist()], [])
    neighbours = [series for _, _, near in panels for series, _ in near]
    assert neighbours and all(abs(float(s.mean())) < 1e-4 and
                              abs(float(s.std(unbiased=False)) - 1) < 1e-3 for s in neighbours)


def test_the_plot_draws_every_channel_and_what_each_reader_passes_on(tmp_path):
    """`affine (std xs)` on five channels: a panel per channel, and the spread of each
    channel per class (what std passes on), equal to the spread computed directly."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neurosym.models.plot import _by_class, _series, readers_of

    rng = np.random.default_rng(0)
    xs = [torch.tensor(rng.normal(0, 1 + (i % 2) * np.arange(5), (30 + i % 4, 5)),
                       dtype=torch.float32) for i in range(60)]
    ys = [i % 2 for i in range(60)]
    task = neurosym.Task.from_arrays(xs[:40], ys[:40], xs[40:], ys[40:])
    path = tmp_path / "std.ns"
    path.write_text("def main : List[Vec[5]] -> Vec[2] =\n  \\xs -> affine (std xs)\n")
    model = neurosym.run_file(path, task).save(tmp_path / "m")
    x = task.test.x
    ((text, entries, values),) = readers_of(model, x)
    assert text == "std xs" and values.shape == (20, 5)
    first = x.data[0, : int(x.weights[0].sum())]
    assert torch.allclose(values[0], first.std(0, unbiased=False), atol=1e-4) or \
        torch.allclose(values[0], first.std(0), atol=1e-4)
    labels = [f"class {v}" for v in task.test.y.tolist()]
    fig = _series(plt, model, x, labels)
    assert len(fig.axes) == 5 + 1  # every channel, and the reader
    plt.close(fig)
    assert set(_by_class(labels)) == {"class 0", "class 1"}


def test_bad_prototype_parameters_are_clear_errors(tmp_path):
    for text, message in (("prototypes[4] xs", "their length in steps"),
                          ("prototypes[4, 16, 0.1] xs", "their length in steps"),
                          ("prototypes_dtw[4, 16, 2] xs", "fraction of m")):
        with pytest.raises(DSLTypeError, match=message):
            neurosym.check_source(f"def main : List[Vec[1]] -> Vec[4] = \\xs -> {text}\n")
    with pytest.raises(DSLTypeError, match="List\\[Float\\]"):  # series of Vec[n] only
        neurosym.check_source("def f : List[Float] -> Vec[4] = \\xs -> prototypes[4, 8] xs\n")
