"""`above`, the learned-threshold comparison of the tabular production set."""

from __future__ import annotations

import torch

from neurosym.interp.compiler import compile_term
from neurosym.lang.checker import check_term
from neurosym.lang.parser import parse_term, parse_type
from neurosym.lang.printer import show
from neurosym.train import fit

TYPE = parse_type("Vec[2] -> Bool")


def model(text: str):
    term = parse_term(text)
    return compile_term(term, check_term(term, TYPE))


def test_a_fixed_threshold_is_a_logit_of_the_given_sharpness():
    x = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    out = model(r"\x -> above[0.5] (select[0] x)").eval()(x)
    assert torch.allclose(out, torch.tensor([-2.0, 6.0]))  # sharpness 4 by default
    out = model(r"\x -> above[-0.5, 10] (select[1] x)").eval()(x)
    assert torch.allclose(out, torch.tensor([15.0, -5.0]))
    assert show(parse_term(r"above[-0.5, 10]")) == "above[-0.5, 10]"


def test_a_learned_threshold_is_printed_and_means_the_same_written_back():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 2, generator=gen)
    y = (x[:, 1] > 0.7).float()
    learned = model(r"\x -> above (select[1] x)")
    fit(learned, (x, y), (x, y), "bce")
    text = show(learned.learned_term())
    threshold = float(text.split("above[")[1].split(",")[0])
    assert abs(threshold - 0.7) < 0.15, text  # it found the planted cut
    written = model(text).eval()
    assert torch.allclose(written(x), learned.eval()(x), atol=1e-6)


def test_gradient_reaches_the_threshold_and_sharpness():
    m = model(r"\x -> above (select[0] x)").train()
    m(torch.randn(8, 2)).sum().backward()
    grads = [p.grad for p in m.parameters()]
    assert len(grads) == 2 and all(g is not None and torch.isfinite(g).all() for g in grads)
