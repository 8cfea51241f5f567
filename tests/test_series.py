"""Series primitives on hand-made series with known answers, padding and variable length,
gradient checks in double precision, and extreme inputs (constant, very long, huge)."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from neurosym.interp.compiler import compile_term
from neurosym.interp.registry import Site, lookup
from neurosym.interp.series import Shapelet, positions
from neurosym.interp.values import Seq, pad_sequences
from neurosym.lang import ast
from neurosym.lang.checker import check_term
from neurosym.lang.errors import NeurosymError
from neurosym.lang.parser import parse_term, parse_type


def run(text: str, xs: Seq, type_text: str = "List[Vec[1]] -> Vec[1]") -> torch.Tensor:
    term = parse_term(text)
    model = compile_term(term, check_term(term, parse_type(type_text)))
    return model(xs)


def ramp(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float32).reshape(n, 1)


@pytest.fixture
def ragged() -> Seq:
    """Two series of different lengths: 0..9 and 0..4 (padded to 10)."""
    return pad_sequences([ramp(10), ramp(5)])


def test_positions_are_relative_to_each_series(ragged):
    pos = positions(ragged)
    assert pos[0, 0] == 0 and pos[0, 9] == 1 and pos[1, 4] == 1
    assert torch.allclose(pos[1, :5], torch.linspace(0, 1, 5))


def test_interval_mean_reads_the_right_part_of_each_series(ragged):
    out = run(r"\xs -> mean (interval[0.5:1.0] xs)", ragged)
    # series 0: positions 5/9.. -> elements 5..9 (mean 7); series 1: 2,3,4 (mean 3)
    assert out[:, 0].tolist() == pytest.approx([7.0, 3.0])
    narrow = run(r"\xs -> mean (interval[0.3:0.31] xs)", ragged)
    assert torch.isfinite(narrow).all()  # no element inside: the nearest one is kept


def test_slope_min_max_and_argmax(ragged):
    assert run(r"\xs -> slope xs", ragged)[:, 0].tolist() == pytest.approx([9.0, 4.0])
    assert run(r"\xs -> max xs", ragged)[:, 0].tolist() == [9.0, 4.0]
    assert run(r"\xs -> min xs", ragged)[:, 0].tolist() == [0.0, 0.0]
    bump = pad_sequences([torch.tensor([0.0, 0, 5, 0, 0]).reshape(5, 1)])
    assert run(r"\xs -> argmax xs", bump)[0, 0] == pytest.approx(0.5, abs=1e-3)


def test_diff_drops_the_first_element(ragged):
    d = lookup("diff").impl(Site((), None), ragged)
    assert d.weights[0].tolist() == [0.0] + [1.0] * 9
    assert d.weights[1].tolist() == [0.0] + [1.0] * 4 + [0.0] * 5
    assert run(r"\xs -> mean (diff xs)", ragged)[:, 0].tolist() == pytest.approx([1.0, 1.0])


def test_padding_does_not_change_any_summary():
    short = pad_sequences([torch.randn(7, 2)])
    padded = Seq(torch.cat([short.data, 100 * torch.randn(1, 5, 2)], 1),
                 torch.cat([short.weights, torch.zeros(1, 5)], 1))
    for prim in ("slope", "max", "min", "argmax", "mean (interval[0.2:0.6]", "mean (diff"):
        text = rf"\xs -> {prim} xs" + (")" if "(" in prim else "")
        a = run(text, short, "List[Vec[2]] -> Vec[2]")
        b = run(text, padded, "List[Vec[2]] -> Vec[2]")
        assert torch.allclose(a, b, atol=1e-5), prim


def test_shapelet_matches_exactly_at_one_place():
    torch.manual_seed(0)
    t = parse_type("List[Vec[1]] -> Float")
    shapelet = Shapelet(t, (4,))
    series = torch.randn(30, 1) * 3
    with torch.no_grad():
        shapelet.pattern.copy_(series[12:16])
    shapelet.eval()  # in training, an unseeded shapelet first copies a window it sees
    other = torch.randn(30, 1) * 3 + 10
    out = shapelet(pad_sequences([series, other])).tolist()
    assert out[0] == pytest.approx(0.0, abs=1e-3) and out[1] > 1.0
    short = shapelet(pad_sequences([series[:2]]))  # shorter than the pattern
    assert torch.isfinite(short).all()


def test_shapelet_starts_as_a_window_of_its_first_training_batch():
    torch.manual_seed(1)
    series = torch.randn(20, 1)
    shapelet = Shapelet(parse_type("List[Vec[1]] -> Float"), (5,))
    out = shapelet(pad_sequences([series]))
    assert out.item() == pytest.approx(0.0, abs=0.01)  # a soft minimum: a hair below 0
    windows = series.squeeze(1).unfold(0, 5, 1)
    assert any(torch.equal(w, shapelet.pattern.detach()[0, :, 0]) for w in windows)
    assert "seeded" in shapelet.state_dict()  # a saved shapelet is not seeded again


def test_several_shapelets_give_a_vector_of_distances():
    torch.manual_seed(0)
    xs = pad_sequences([torch.randn(30, 2), torch.randn(12, 2)])
    many = Shapelet(parse_type("List[Vec[2]] -> Vec[3]"), (5, 3))
    out = many(xs)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    assert out[0].min() < 0.01  # seeded from windows of the batch: one matches exactly
    single = Shapelet(parse_type("List[Vec[2]] -> Float"), (5,)).eval()
    with torch.no_grad():
        single.pattern.copy_(many.pattern[1:2])
    assert torch.allclose(single(xs), many.eval()(xs)[:, 1])
    term = parse_term(r"\xs -> affine (shapelet[5, 3] xs)")
    model = compile_term(term, check_term(term, parse_type("List[Vec[2]] -> Vec[4]")))
    assert model(xs).shape == (2, 4)


def test_gradients_are_exact_in_double_precision():
    torch.manual_seed(0)
    data = torch.randn(3, 9, 2, dtype=torch.float64, requires_grad=True)
    weights = torch.ones(3, 9, dtype=torch.float64)
    weights[1, 6:] = 0
    prims = {name: lookup(name).impl for name in ("slope", "argmax", "max", "min")}
    for name, impl in prims.items():
        assert torch.autograd.gradcheck(lambda d, f=impl: f(Site((), None), Seq(d, weights)),
                                        (data,)), name
    inter = lookup("interval").impl
    site = Site((ast.Slice(0.25, 0.75),), None)
    assert torch.autograd.gradcheck(
        lambda d: lookup("mean").impl(site, inter(site, Seq(d, weights))), (data,))
    shapelet = Shapelet(parse_type("List[Vec[2]] -> Float"), (3,)).double().eval()
    pattern = shapelet.pattern.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(  # through the series and the pattern alike
        lambda d, p: functional_call(shapelet, {"pattern": p}, (Seq(d, weights),)),
        (data, pattern))


def test_extreme_series_stay_finite():
    constant = pad_sequences([torch.ones(50, 1)])
    long = pad_sequences([torch.randn(20_000, 1)])
    huge = pad_sequences([torch.full((30, 1), 1e30)])
    for xs in (constant, long, huge):
        for prim in ("slope", "max", "min", "argmax", "mean (interval[0:0.5]", "std (diff"):
            text = rf"\xs -> {prim} xs" + (")" if "(" in prim else "")
            assert torch.isfinite(run(text, xs)).all(), (prim, xs.length)
    assert run(r"\xs -> slope xs", constant)[0, 0] == 0.0
    t = parse_type("List[Vec[1]] -> Float")
    assert torch.isfinite(Shapelet(t, (10,))(long)).all()


def test_bad_parameters_are_clear_errors():
    from neurosym.lang.load import check_source

    for text, message in [("interval[0.5:0.2]", "interval"), ("interval[2]", "interval"),
                          ("select[0.5:1.0]", "integer"), ("select[-1]", "from 0"),
                          ("shapelet[1]", "length"), ("shapelet[-3]", "length"),
                          ("paa[0]", "parts"), ("paa[0.5]", "parts"),
                          ("spectrum[0]", "bands"), ("spectrum[2, 3]", "bands")]:
        src = f"def main : List[Vec[1]] -> List[Vec[1]] =\n  \\xs -> {text} xs\n"
        with pytest.raises(NeurosymError, match=message):
            check_source(src, "<test>")


def test_a_learned_shapelet_is_shown_with_its_pattern():
    from neurosym.search.display import learned_parts

    term = parse_term(r"\xs -> affine (shapelet[4] xs)")
    model = compile_term(term, check_term(term, parse_type("List[Vec[1]] -> Vec[2]")))
    (part,) = learned_parts(model)
    assert part["part"] == "shapelet[4]" and len(part["pattern"][0]) == 4
    (line,) = part["sketch"]
    assert len(line) == 4 and set(line) <= set("▁▂▃▄▅▆▇█")


def test_a_learned_interval_prints_its_bounds_and_means_the_same_written_back():
    """Labels depend on the level of the series between 60% and 80% of its length; a
    bare `interval` learns bounds there, the program prints them, and the printed program
    with the trained affine weights computes exactly what the trained model does."""
    from neurosym.lang.printer import show
    from neurosym.train import TrainConfig, fit

    gen = torch.Generator().manual_seed(0)
    n, length = 256, 50
    data = torch.randn(n, length, 1, generator=gen) * 0.3
    y = (torch.rand(n, generator=gen) > 0.5).long()
    data[:, 30:40, 0] += (2 * y - 1).float().unsqueeze(1) * 1.0
    xs = Seq(data, torch.ones(n, length))
    want = parse_type("List[Vec[1]] -> Vec[2]")
    term = parse_term(r"\xs -> affine (mean (interval xs))")
    torch.manual_seed(0)
    model = compile_term(term, check_term(term, want))
    fit(model, (xs, y), (xs, y), "cross_entropy", TrainConfig(epochs=60, lr=0.05))
    printed = show(model.learned_term())
    (bounds,) = [v.params[0] for v in ast.subterms(model.learned_term())
                 if isinstance(v, ast.Var) and v.name == "interval"]
    assert 0.55 <= bounds.start < bounds.stop <= 0.85, printed  # inside the bump (0.61-0.8)
    model.eval()
    accuracy = float((model(xs).argmax(1) == y).float().mean())
    assert accuracy > 0.95
    again = parse_term(printed)
    by_hand = compile_term(again, check_term(again, want))
    by_hand.load_state_dict({k: v for k, v in model.state_dict().items() if "logits" not in k})
    assert torch.allclose(by_hand(xs), model(xs))


def wave(n: int, cycles: float, phase: float = 0.0) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64)
    return torch.cos(2 * torch.pi * cycles * t / n + phase).reshape(n, 1)


def test_spectrum_puts_a_wave_in_its_band_at_any_length_and_padding():
    """A cosine of 0.2 cycles per step lies in band 3 of 8 (0.1875-0.25), at 40 steps or
    75; alone, padded in a batch or inside an interval it reads the same."""
    share = lambda out: 10 ** out - 1e-4  # noqa: E731
    for n in (40, 75):
        alone = run(r"\xs -> spectrum[8] xs", pad_sequences([wave(n, 0.2 * n)]),
                    "List[Vec[1]] -> Vec[8]")
        assert share(alone)[0, 3] > 0.95 and share(alone)[0].sum() == pytest.approx(1.0)
    batch = pad_sequences([wave(40, 8, 1.0), wave(75, 3), torch.ones(10, 1, dtype=torch.float64)])
    out = run(r"\xs -> spectrum[8] xs", batch, "List[Vec[1]] -> Vec[8]")
    single = run(r"\xs -> spectrum[8] xs", pad_sequences([wave(40, 8, 1.0)]),
                 "List[Vec[1]] -> Vec[8]")
    assert torch.allclose(out[0], single[0])  # the padding of the batch is never read
    assert share(out[1]).argmax() == 0  # 3 cycles over 75 steps: the slowest band
    assert torch.allclose(out[2], torch.full((8,), -4.0, dtype=out.dtype))  # constant: none
    middle = pad_sequences([torch.cat([torch.zeros(20, 1, dtype=torch.float64), wave(40, 8),
                                       torch.zeros(20, 1, dtype=torch.float64)])])
    inside = run(r"\xs -> spectrum[8] (interval[0.25:0.75] xs)", middle,
                 "List[Vec[1]] -> Vec[8]")
    assert share(inside)[0].argmax() == 3


def test_spectrum_gradients_and_extremes():
    data = torch.randn(2, 9, 1, dtype=torch.float64, requires_grad=True)
    weights = torch.ones(2, 9, dtype=torch.float64)
    weights[1, 6:] = 0
    impl = lookup("spectrum").impl
    assert torch.autograd.gradcheck(lambda d: impl(Site((4,), None), Seq(d, weights)), (data,))
    for xs in (pad_sequences([torch.full((20_000, 1), 1e30)]), pad_sequences([torch.ones(1, 1)]),
               pad_sequences([torch.randn(20_000, 1) * 1e15])):
        assert torch.isfinite(run(r"\xs -> spectrum[16] xs", xs, "List[Vec[1]] -> Vec[16]")).all()


def test_paa_means_equal_parts_of_each_series(ragged):
    # 0..9 in 5 parts: (0,1) (2,3) ...; 0..4 in 5 parts: one element each
    out = run(r"\xs -> paa[5] xs", ragged, "List[Vec[1]] -> Vec[5]")
    assert out.tolist() == [[0.5, 2.5, 4.5, 6.5, 8.5], [0.0, 1.0, 2.0, 3.0, 4.0]]
    # a series shorter than the parts: an empty part takes the element nearest its middle
    short = run(r"\xs -> paa[4] xs", pad_sequences([ramp(2)]), "List[Vec[1]] -> Vec[4]")
    assert short.tolist() == [[0.0, 0.0, 1.0, 1.0]]
    padded = pad_sequences([ramp(5), ramp(30)])
    assert torch.equal(run(r"\xs -> paa[5] xs", padded, "List[Vec[1]] -> Vec[5]")[0],
                       out[1])  # padding is never read
    data = torch.randn(2, 7, 1, dtype=torch.float64, requires_grad=True)
    weights = torch.ones(2, 7, dtype=torch.float64)
    weights[1, 4:] = 0
    impl = lookup("paa").impl
    assert torch.autograd.gradcheck(lambda d: impl(Site((3,), None), Seq(d, weights)), (data,))
    for xs in (pad_sequences([torch.full((20_000, 1), 1e30)]), pad_sequences([torch.ones(1, 1)])):
        assert torch.isfinite(run(r"\xs -> paa[16] xs", xs, "List[Vec[1]] -> Vec[16]")).all()
