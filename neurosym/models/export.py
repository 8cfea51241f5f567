"""A saved model as a file that runs without neurosym: ONNX (through `torch.onnx`, checked
with onnxruntime) or a `torch.export` program (`.pt2`, run with torch alone).

Inputs are plain tensors: `x` (batch, ...) for a vector or an image, and for a list or a
series `data` (batch, steps, ...) with `weights` (batch, steps), 1 for a present element and
0 for padding, so variable-length series keep working. The batch size and the number of
steps are dynamic; the exporter records the range of steps the program can read (at least
its longest shapelet).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neurosym.interp.compiler import CompiledTerm
from neurosym.interp.values import Seq, shape_of
from neurosym.lang import ast
from neurosym.lang.errors import NeurosymError
from neurosym.lang.types import ListT, Type
from neurosym.models import Model

FORMATS = ("onnx", "torch")
# primitives whose computation's shapes depend on the data, which torch.export cannot trace
UNTRACEABLE = {"spectrum": "transforms each series at its own length",
               "sort": "unrolls its sorting network to each list's length",
               "rank": "unrolls its sorting network to each list's length",
               "path": "is the gradient of a path's cost, computed by autograd"}


class ExportError(NeurosymError):
    """A model that cannot be exported in the format asked for."""


class _TensorEntry(nn.Module):
    """A program over vectors or images, as a function of one tensor."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.program = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


class _SeqEntry(_TensorEntry):
    """A program over lists or series, as a function of the padded data and its weights."""

    def forward(self, data: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.program(Seq(data, weights))


def example_inputs(t: Type, steps: int, rows: int = 3) -> tuple[torch.Tensor, ...]:
    """Inputs of type `t` to trace with: `steps` time steps, the first series shorter."""
    gen = torch.Generator().manual_seed(0)
    if isinstance(t, ListT):
        data = torch.randn(rows, steps, *_shape(t.elem), generator=gen)
        weights = torch.ones(rows, steps)
        weights[0, steps - steps // 4:] = 0.0
        return data * weights.reshape(rows, steps, *[1] * (data.dim() - 2)), weights
    return (torch.randn(rows, *_shape(t), generator=gen),)


def _shape(t: Type) -> tuple[int, ...]:
    try:
        return shape_of(t)
    except (TypeError, ValueError):
        raise ExportError(f"cannot export a program whose input is {t}") from None


def export(model: Model, fmt: str, out: Path) -> float:
    """Write `out` in format `fmt`; returns the largest difference between the exported
    program's outputs and the model's own on example inputs (checked with onnxruntime for
    ONNX)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)} "
                          "(a Python file: `neurosym export --format python`)")
    terms = [m.term for m in model.module.modules() if isinstance(m, CompiledTerm)]
    for node in (n for term in terms for n in ast.walk(term)):  # main and what it calls
        if isinstance(node, ast.Var) and node.name in UNTRACEABLE:
            raise ExportError(f"cannot export the program to {fmt}: `{node.name}` "
                              f"{UNTRACEABLE[node.name]}, which torch.export cannot trace; "
                              "`--format python` writes a file that runs with torch alone")
    t = model.input_type
    entry = (_SeqEntry if isinstance(t, ListT) else _TensorEntry)(model.module).eval()
    inputs = example_inputs(t, max(int(model.record.get("series_length") or 0), 32))
    names = ["data", "weights"] if isinstance(t, ListT) else ["x"]
    auto = torch.export.Dim.AUTO
    dims = {name: {0: auto, 1: auto} if name != "x" else {0: auto} for name in names}
    with torch.no_grad():
        expected = entry(*inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _quiet():
            if fmt == "torch":
                program = torch.export.export(entry, inputs, dynamic_shapes=dims)
                torch.export.save(program, str(out))
                got = torch.export.load(str(out)).module()(*inputs)
            else:
                onnx_program = torch.onnx.export(entry, inputs, input_names=names,
                                                 output_names=["output"],
                                                 dynamic_shapes=dims,
                                                 dynamo=True, verbose=False)
                onnx_program.save(str(out))
                got = torch.from_numpy(run_onnx(out, inputs, names))
    except ExportError:
        raise
    except Exception as err:  # the exporters raise many kinds  # noqa: BLE001
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"cannot export the program to {fmt}: {first}") from None
    return float((got.detach() - expected).abs().max())


@contextlib.contextmanager
def _quiet():
    """The exporters print progress, warn and log about optional packages: not the user's
    business when the export works (and an error is reported anyway)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def run_onnx(path: Path, inputs: tuple[torch.Tensor, ...], names: list[str]) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {n: x.numpy() for n, x in zip(names, inputs, strict=True)}
    return session.run(None, feed)[0]
