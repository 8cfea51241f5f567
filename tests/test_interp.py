"""The interpreter: batched semantics agree with a naive per-example reading, padding is
invisible, gradients flow through soft choices, and NaN training is refused."""

import math
import time

import pytest
import torch

from neurosym.interp.compiler import compile_program, compile_term
from neurosym.interp.primitives import Affine
from neurosym.interp.values import Seq, pad_sequences
from neurosym.lang.checker import check_term
from neurosym.lang.errors import TrainingError
from neurosym.lang.load import check_source
from neurosym.lang.parser import parse_term, parse_type
from neurosym.lang.printer import show
from neurosym.train import Adam, TrainConfig, first_batch, fit, predict, set_up


def run(text: str, type_text: str, *args):
    term = parse_term(text)
    model = compile_term(term, check_term(term, parse_type(type_text)))
    return model(*args)


@pytest.fixture
def ragged():
    torch.manual_seed(0)
    seqs = [torch.randn(n, 3) for n in (5, 2, 7, 1)]
    return seqs, pad_sequences(seqs)


def test_map_mean_std_ignore_padding(ragged):
    seqs, xs = ragged
    out = run(r"\xs -> mean (map (\x -> mul x x) xs)", "List[Vec[3]] -> Vec[3]", xs)
    assert torch.allclose(out, torch.stack([(s * s).mean(0) for s in seqs]), atol=1e-5)
    out = run("std", "List[Vec[3]] -> Vec[3]", xs)
    want = torch.stack([s.std(0, unbiased=False) for s in seqs])
    assert torch.allclose(out, want, atol=1e-3)


def test_fold_and_last_skip_padding(ragged):
    seqs, xs = ragged
    out = run(r"\xs -> fold (\acc x -> add acc (select[1] x)) 0.5 xs", "List[Vec[3]] -> Float",
              xs)
    assert torch.allclose(out, torch.stack([0.5 + s[:, 1].sum() for s in seqs]), atol=1e-5)
    out = run("last", "List[Vec[3]] -> Vec[3]", xs)
    assert torch.equal(out, torch.stack([s[-1] for s in seqs]))


def _compiled(text: str, type_text: str):
    term = parse_term(text)
    return compile_term(term, check_term(term, parse_type(type_text)))


def test_a_folds_element_only_parts_are_taken_out_of_its_loop(ragged):
    """A part of a fold's step that reads the element (and outer names) but not the
    accumulator is computed for every element before the loop: the same outputs and
    gradients as interpreting it at each position, with padding."""
    seqs, xs = ragged
    torch.manual_seed(0)
    model = _compiled(r"\xs -> fold (\acc x -> add (affine acc) (mul (affine x) "
                      r"(affine (mean xs)))) (affine (mean xs)) xs", "List[Vec[3]] -> Vec[2]")
    (plan,) = model._folds.values()
    assert [show(part) for _, part in plan.parts] == ["mul (affine x) (affine (mean xs))"]

    def outputs_and_gradients():
        model.zero_grad()
        out = model(xs)
        out.square().sum().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    hoisted = outputs_and_gradients()
    model._folds = {}  # interpreted at every position
    looped = outputs_and_gradients()
    assert torch.allclose(hoisted[0], looped[0], atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(hoisted[1], looped[1]))


@pytest.mark.parametrize("step", [
    r"\acc x -> affine (add acc x)",  # every part reads the accumulator
    r"\acc x -> add acc (?? x)",  # a relaxation reads every name in scope, acc too
    r"\acc x -> add acc (mean (map (\x -> select[0:3] acc) xs))",  # x rebound inside
])
def test_a_fold_keeps_in_its_loop_what_reads_the_accumulator(step):
    model = _compiled(rf"\xs -> fold ({step}) (mean xs) xs", "List[Vec[3]] -> Vec[3]")
    assert model._folds == {}


def test_window_is_a_causal_moving_average(ragged):
    seqs, xs = ragged
    out = run(r"\xs -> window[3] mean xs", "List[Vec[3]] -> List[Vec[3]]", xs)
    for i, s in enumerate(seqs):
        for t in range(len(s)):
            assert torch.allclose(out.data[i, t], s[max(0, t - 2):t + 1].mean(0), atol=1e-5)


def test_closures_capture_outer_values_inside_map(ragged):
    seqs, xs = ragged
    out = run(r"\xs -> map (\x -> sub x (mean xs)) xs", "List[Vec[3]] -> List[Vec[3]]", xs)
    for i, s in enumerate(seqs):
        assert torch.allclose(out.data[i, :len(s)], s - s.mean(0), atol=1e-5)


def test_padding_does_not_change_results(ragged):
    seqs, xs = ragged
    text, t = r"\xs -> mean (window[2] std xs)", "List[Vec[3]] -> Vec[3]"
    batched = run(text, t, xs)
    alone = torch.cat([run(text, t, pad_sequences([s])) for s in seqs])
    assert torch.allclose(batched, alone, atol=1e-5)


def test_soft_filter_count_and_ite():
    xs = Seq(torch.tensor([[[5.0], [-5.0], [20.0]]]), torch.tensor([[1.0, 1.0, 0.0]]))
    count = run(r"count (\x -> gt (mul (select[0] x) 10.0) 0.0)", "List[Vec[1]] -> Float", xs)
    assert count.item() == pytest.approx(1.0, abs=1e-4)  # padding is not counted
    kept = run(r"\xs -> sum (filter (\x -> gt (mul (select[0] x) 10.0) 0) xs)",
               "List[Vec[1]] -> Vec[1]", xs)
    assert kept.item() == pytest.approx(5.0, abs=1e-3)
    x = torch.tensor([[3.0, 1.0], [-3.0, 1.0]])
    out = run(r"\x -> ite (gt (mul (select[0] x) 100.0) 0) (select[1] x) 7.0", "Vec[2] -> Float", x)
    assert torch.allclose(out, torch.tensor([1.0, 7.0]))


def test_gradients_flow_through_soft_choices():
    term = parse_term(r"\xs -> ite (?? (mean xs)) (count ?? xs) (affine (std xs))")
    model = compile_term(term, check_term(term, parse_type("List[Vec[2]] -> Float")))
    xs = pad_sequences([torch.randn(4, 2), torch.randn(3, 2)])
    model(xs).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_definitions_share_parameters():
    checked = check_source("def f : Vec[2] -> Float = affine\n"
                           "def g : Vec[2] -> Float = \\x -> add (f x) (f x)\n")
    defs = compile_program(checked)
    assert sum(p.numel() for p in defs["g"].parameters()) == 3
    x = torch.randn(4, 2)
    assert torch.allclose(defs["g"](x), 2 * defs["f"](x))


def test_images_and_holes():
    out = run(r"\xs -> sum (map (compose softargmax (?? : Image[8,8] -> Vec[10])) xs)",
              "List[Image[8,8]] -> Float", pad_sequences([torch.rand(3, 8, 8),
                                                          torch.rand(1, 8, 8)]))
    assert out.shape == (2,) and torch.isfinite(out).all()


def test_non_finite_loss_stops_training():
    term = parse_term(r"\x -> mul (affine x) 1e30")
    model = compile_term(term, check_term(term, parse_type("Vec[2] -> Float")))
    x, y = torch.full((8, 2), 1e30), torch.zeros(8)
    with pytest.raises(TrainingError, match="non-finite loss"):  # descended: it overflows
        fit(model, (x, y), (x, y), "mse", TrainConfig(epochs=3, solve=False))
    # solved (the fit is convex), the optimum is all zeros, and finite
    assert fit(model, (x, y), (x, y), "mse", TrainConfig()).val_loss == 0.0


def test_validation_every_k_epochs_and_patience_in_checks():
    """A search node validates every `eval_every` epochs (and after the last one); patience
    counts those checks, and the best checked weights are the ones kept."""
    term = parse_term(r"\x -> affine x")
    model = compile_term(term, check_term(term, parse_type("Vec[2] -> Float")))
    x = torch.randn(64, 2)
    y = x @ torch.tensor([1.0, -2.0])
    result = fit(model, (x, y), (x, y), "mse", TrainConfig(epochs=10, eval_every=4, lr=0.05,
                                                               solve=False))
    assert len(result.history) == 3  # after epochs 4, 8 and 10
    assert result.val_loss == pytest.approx(min(v for _, v in result.history))
    stuck = compile_term(term, check_term(term, parse_type("Vec[2] -> Float")))
    flat = fit(stuck, (x, y), (x, y), "mse",
               TrainConfig(epochs=50, lr=0.0, eval_every=2, patience=3, solve=False))
    assert flat.epochs == 8  # the first check (epoch 2), then three (4, 6, 8) no better


def test_early_stopping_starts_from_the_first_trained_epoch():
    """Weights that start at the optimum and are knocked off it by a huge step: the model
    keeps the best *trained* weights and reports their loss, not the untrained ones."""
    term = parse_term(r"\x -> affine x")
    model = compile_term(term, check_term(term, parse_type("Vec[2] -> Float")))
    x = torch.randn(64, 2)
    with torch.no_grad():
        y = model(x) + 0.01 * torch.randn(64)
        untrained = float(((model(x) - y) ** 2).mean())
    result = fit(model, (x, y), (x, y), "mse", TrainConfig(epochs=5, lr=1.0, patience=2,
                                                              solve=False))
    assert result.val_loss == pytest.approx(min(v for _, v in result.history))
    assert result.val_loss > 10 * untrained  # the untrained weights were not kept
    with torch.no_grad():
        assert float(((model(x) - y) ** 2).mean()) == pytest.approx(result.val_loss, rel=1e-4)


def test_training_stops_at_its_time_bound():
    """`max_seconds` is checked after every step, not only between epochs, and a run cut
    short still validates once and keeps those weights."""
    term = parse_term(r"\x -> affine x")
    model = compile_term(term, check_term(term, parse_type("Vec[2] -> Float")))
    x = torch.randn(200_000, 2)
    y = x @ torch.tensor([1.0, -2.0])
    start = time.perf_counter()
    result = fit(model, (x, y), (x, y), "mse",
                 TrainConfig(epochs=1000, batch_size=8, max_seconds=0.3, solve=False))
    assert time.perf_counter() - start < 2.0
    assert result.epochs == 1 and len(result.history) == 1
    assert math.isfinite(result.val_loss)


def test_a_window_longer_than_the_series_reads_the_whole_series_cheaply():
    """window[k] past the longest series equals window[length] (only padding is added):
    a fuzzed `window[2005]` made 1 GB of copies of 30-step series."""
    from neurosym.interp.compiler import compile_term
    from neurosym.interp.values import Seq
    from neurosym.lang.checker import check_term
    from neurosym.lang.parser import parse_term, parse_type

    xs = Seq(torch.randn(4, 6, 2), torch.ones(4, 6))
    outs = []
    for k in (6, 100_000):
        term = parse_term(rf"\xs -> mean (window[{k}] mean xs)")
        model = compile_term(term, check_term(term, parse_type("List[Vec[2]] -> Vec[2]")))
        outs.append(model(xs))
    assert torch.allclose(outs[0], outs[1])


def _affine(input_type: str = "Vec[2]", output_type: str = "Float"):
    term = parse_term(r"\x -> affine x")
    return compile_term(term, check_term(term, parse_type(f"{input_type} -> {output_type}")))


def test_affine_learns_from_badly_scaled_inputs():
    """The class is in a feature near -1000 that varies by 0.01 (a log power, a raw sensor
    offset): standardized inputs make it a well-conditioned fit, found in a few epochs."""
    gen = torch.Generator().manual_seed(0)
    signal, noise = torch.randn(256, generator=gen), torch.randn(256, generator=gen)
    x = torch.stack([-1000 + 0.01 * signal, 50 * noise], 1)
    y = (signal > 0).long()
    model = _affine("Vec[2]", "Vec[2]")
    fit(model, (x, y), (x, y), "cross_entropy", TrainConfig(epochs=10, lr=0.05))
    accuracy = float((predict(model, x).argmax(1) == y).float().mean())
    assert accuracy >= 0.95
    affine = next(m for m in model.modules() if isinstance(m, Affine))
    first = x[first_batch(256, 0, TrainConfig.batch_size)]  # what it set up from
    assert torch.allclose(affine.standardize.shift, first.mean(0), rtol=1e-4)
    weight, bias = affine.effective()
    assert torch.allclose(x.double() @ weight.T + bias, predict(model, x).double(), atol=1e-3)


@pytest.mark.parametrize("offset, spread, folds", [(3.0, 1.0, True), (-1000.0, 0.01, False)])
def test_a_folded_standardization_computes_the_standardized_map(offset, spread, folds):
    """An affine map folds its inputs' statistics into its weights (a cost per weight, not
    per input value) unless a shift is so far off its spread that it would cancel in the
    bias; either way its outputs and gradients are those of the standardized map."""
    model = _affine("Vec[3]", "Vec[2]")
    x = offset + spread * torch.randn(64, 3)
    set_up(model, [x], torch.arange(64))
    affine = next(m for m in model.modules() if isinstance(m, Affine))
    assert affine.standardize.foldable == folds and affine._folds() == folds
    out = model(x)
    out.square().sum().backward()
    folded = [p.grad.clone() for p in affine.linear.parameters()]
    affine.zero_grad()
    reference = affine.linear(affine.standardize(x))
    reference.square().sum().backward()
    assert torch.allclose(out, reference, atol=1e-5)
    assert all(torch.allclose(a, p.grad, rtol=1e-4, atol=1e-4)
               for a, p in zip(folded, affine.linear.parameters()))


@pytest.mark.parametrize("column", [
    torch.full((32,), 3.0),  # constant
    torch.full((32,), 1e30).index_fill(0, torch.tensor([0]), 2e30),  # huge
    torch.tensor([math.nan, math.inf] * 16),  # nothing finite
])
def test_standardizing_extreme_features_stays_finite(column):
    model = _affine()
    x = torch.stack([column, torch.randn(32)], 1)
    model.train()
    with torch.no_grad():
        model(x)
    standardize = next(m for m in model.modules() if isinstance(m, Affine)).standardize
    assert torch.isfinite(standardize.shift).all() and torch.isfinite(standardize.scale).all()
    assert (standardize.scale > 0).all()
    model.eval()
    assert torch.isfinite(model(torch.stack([torch.full((4,), 3.0), torch.zeros(4)], 1))).all()


def test_weights_saved_before_inputs_were_standardized_still_load():
    """An affine map's weights from before standardization (no shift and scale) load as
    the identity standardization, so the map means what it meant."""
    model = _affine()
    old = {k: v for k, v in model.state_dict().items() if "standardize" not in k}
    with torch.no_grad():
        old = {k: torch.randn_like(v) for k, v in old.items()}
    fresh = _affine()
    fresh.load_state_dict(old)
    x = torch.randn(5, 2)
    weight, bias = old[next(k for k in old if k.endswith("weight"))], \
        old[next(k for k in old if k.endswith("bias"))]
    assert torch.allclose(fresh(x), (x @ weight.T + bias)[:, 0], atol=1e-6)
    fresh.train()
    assert torch.allclose(fresh(x), (x @ weight.T + bias)[:, 0], atol=1e-6)  # not recalibrated


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_steps_as_torch_adam_does(weight_decay):
    """The training loops' Adam against `torch.optim.Adam` on the same losses, including a
    parameter that gets no gradient on some steps (left as it is, as torch leaves it)."""
    torch.manual_seed(0)
    ours = [torch.randn(3, 4, requires_grad=True), torch.randn(4, requires_grad=True)]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    adam = Adam(ours, lr=0.05, weight_decay=weight_decay)
    reference = torch.optim.Adam(theirs, lr=0.05, weight_decay=weight_decay, foreach=True)
    x = torch.randn(8, 3)
    for step in range(20):
        for params, opt in ((ours, adam), (theirs, reference)):
            opt.zero_grad()
            used = params if step % 3 else params[:1]
            loss = ((x @ used[0]).sin().sum(1) - (used[1].sum() if len(used) > 1 else 0)) ** 2
            loss.mean().backward()
            opt.step()
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-6)


def test_training_does_not_import_torch_dynamo(tmp_path):
    """`torch.optim` imports torch._dynamo on first use (seconds per process); a search
    node and a hand-written program train without it."""
    import subprocess
    import sys

    code = ("import sys, torch\n"
            "import neurosym\n"
            "from neurosym.tasks.spec import load_task\n"
            "task = load_task('italy_power')\n"
            "source = 'def main : List[Vec[1]] -> Vec[2] = \\\\xs -> affine (mean xs)'\n"
            "open(sys.argv[1], 'w').write(source)\n"
            "neurosym.run_file(sys.argv[1], task, epochs=2)\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.ns")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_only_inputs_of_fixed_statistics_are_standardized():
    """`mean xs` is the same feature before and after training: standardized. A shapelet's
    distances move as its pattern learns: left as they are."""
    xs = Seq(5 + 3 * torch.randn(16, 10, 1), torch.ones(16, 10))
    for text, standardized in ((r"\xs -> affine (mean xs)", True),
                               (r"\xs -> affine (shapelet[3] xs)", False)):
        term = parse_term(text)
        model = compile_term(term, check_term(term, parse_type("List[Vec[1]] -> Vec[2]")))
        set_up(model, [xs], torch.arange(16))
        affine = next(m for m in model.modules() if isinstance(m, Affine))
        assert affine.standardize.ready
        assert bool((affine.standardize.shift != 0).all()) == standardized, text


def test_each_examples_loss_averages_to_the_batch_loss():
    """Per-example losses (a joint model over several tasks weighs each example by them)
    average to the task loss, class weights included."""
    from neurosym.train import example_losses, loss_function

    gen = torch.Generator().manual_seed(0)
    cases = [("cross_entropy", torch.randn(7, 3, generator=gen),
              torch.tensor([0, 1, 2, 0, 1, 2, 1]), torch.tensor([0.5, 2.0, 1.0])),
             ("bce", torch.randn(7, 1, generator=gen),
              torch.randint(0, 2, (7, 1), generator=gen).float(), torch.tensor([0.5, 2.0])),
             ("mse", torch.randn(7, 2, generator=gen), torch.randn(7, 2, generator=gen), None)]
    for kind, out, y, weights in cases:
        for w in (None, weights):
            each = example_losses(kind, out, y, w)
            assert each.shape == (7,)
            assert torch.allclose(each.mean(), loss_function(kind, w)(out, y), atol=1e-6)
