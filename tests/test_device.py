"""Programs, relaxations and node training make every tensor on the data's device.

This machine has no GPU, so the check is direct: inside `NoImplicitDevice`, a tensor
factory called without a device fails, which is the call that would put a tensor on the
CPU beside CUDA data. Models are built outside it (their parameters move with `.to`)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch.overrides import TorchFunctionMode

import neurosym
from neurosym.cli import main
from neurosym.interp.values import index
from neurosym.search import scoring
from neurosym.search.synthesis import node_training, resolve_config
from neurosym.tasks.spec import load_task

ROOT = Path(__file__).resolve().parents[1]
FACTORIES = {torch.arange, torch.full, torch.zeros, torch.ones, torch.empty, torch.rand,
             torch.randn, torch.randint, torch.randperm, torch.tensor, torch.linspace,
             torch.eye}


class NoImplicitDevice(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and kwargs.get("device") is None:
            raise AssertionError(f"torch.{func.__name__} called without a device")
        return func(*args, **kwargs)


@pytest.mark.parametrize("program,task", [("basic_motions.ns", "basic_motions"),
                                          ("gunpoint.ns", "gunpoint"),
                                          ("digit_sum.ns", "digit_sum")])
def test_hand_written_programs_run_on_the_data_device(program, task):
    result = neurosym.run_file(ROOT / "dsl" / program, task, epochs=1)
    data = load_task(task).train
    model = result.model.train()
    rows = torch.arange(8, device="cpu")
    with NoImplicitDevice():
        x = index(data.x, rows)
        out = model(x)
        out.float().sum().backward()
    assert torch.isfinite(out).all()


def test_nodes_train_on_the_data_device(monkeypatch):
    """Every kind of node part: relaxations of lists and vectors, windows, folds,
    constants, shapelets (seeded from the data), intervals, paa, learned thresholds."""
    fit, init = scoring._fit_members, scoring.set_up

    def fit_checked(*args):
        with NoImplicitDevice():
            return fit(*args)

    def init_checked(*args):
        with NoImplicitDevice():
            return init(*args)

    monkeypatch.setattr(scoring, "_fit_members", fit_checked)
    monkeypatch.setattr(scoring, "set_up", init_checked)
    nodes = {
        "basic_motions": [r"\xs -> ite (?? (mean xs)) (?? (last xs)) (?? xs)",
                          r"\xs -> mean (window[5] ?? xs)", r"\xs -> fold ?? (?? (mean xs)) xs",
                          r"\xs -> add (affine (std xs)) ??"],
        "gunpoint": [r"\xs -> affine (shapelet[15, 4] xs)", r"\xs -> affine (paa[8] xs)",
                     r"\xs -> affine (slope (interval xs))", r"\xs -> affine (argmax xs)"],
    }
    for name, texts in nodes.items():
        task = load_task(name)
        config = resolve_config(task, time_limit=60)
        for relaxation in ("trained", "features"):
            settings = scoring.NodeSettings(node_training(task, config), config.heuristic,
                                            config.hidden, 0, relaxation=relaxation)
            for text, score in zip(texts, scoring.train_nodes(
                    task, [(t, None) for t in texts], settings)):
                assert score.error is None and math.isfinite(score.h), (text, score.error)


def test_a_fault_of_the_machine_stops_the_search(monkeypatch):
    """A device mismatch is not a bad program: it is raised, naming the node; a fault of
    the program is still a failed score."""
    task = load_task("basic_motions")
    settings = scoring.NodeSettings(node_training(task, resolve_config(task)))
    text = r"\xs -> affine (mean xs)"

    def raising(message):
        def fit(*args):
            raise RuntimeError(message)
        return fit

    monkeypatch.setattr(scoring, "_fit_members", raising(
        "Expected all tensors to be on the same device, but found at least two devices, "
        "cuda:0 and cpu!"))
    with pytest.raises(scoring.MachineError, match=r"affine \(mean xs\).*same device"):
        scoring.train_nodes(task, [(text, None)], settings)
    monkeypatch.setattr(scoring, "_fit_members", raising("shape '[16, 4]' is invalid"))
    score = scoring.train_nodes(task, [(text, None)], settings)[0]
    assert score.h == math.inf and "invalid" in score.error


@pytest.mark.parametrize("device,words", [("cuda", "no CUDA GPU"), ("tpu9", "unknown device"),
                                          ("meta", "only cpu, cuda and mps")])
def test_a_device_this_machine_lacks_is_refused(device, words):
    for args in (["synthesize", "basic_motions", "--time-limit", "5"],
                 ["run", str(ROOT / "dsl/basic_motions.ns"), "--task", "basic_motions"]):
        result = CliRunner().invoke(main, [*args, "--device", device])
        assert result.exit_code == 1 and words in result.output, result.output
        assert "Traceback" not in result.output
