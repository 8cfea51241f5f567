"""A saved model as one readable Python file that needs torch (and safetensors) only: a
plain `nn.Module` whose `forward` is the program, written as nested calls of the
primitives it uses, whose code is copied from neurosym itself (the same functions the
interpreter runs, so the two cannot drift apart).

What it cannot carry yet, it says: neural holes and `nn` (their networks), library
functions, and programs of several definitions.
"""

from __future__ import annotations

import builtins
import inspect
import keyword
import re
import textwrap
from pathlib import Path

from neurosym.interp import primitives, rules, series, values
from neurosym.interp.registry import implementation
from neurosym.lang import ast
from neurosym.lang.errors import NeurosymError
from neurosym.models import Model

_MODULES = (values, primitives, series, rules)
_SKIP_METHODS = ("__init__", "explain", "learned_params", "_seed_from", "values", "bounds")


class PythonExportError(NeurosymError):
    """A program the Python export cannot write yet."""


def export_python(model: Model, out: Path, weights_name: str | None = None) -> Path:
    """Write `out` (the program as Python) and its weights beside it (`OUT.safetensors`
    unless named)."""
    weights_name = weights_name or f"{out.stem}.safetensors"
    from safetensors.torch import save_file

    term = model.module.term
    _refuse_what_cannot_be_carried(model)
    gen = _Generator(model)
    body = gen.program(term)
    sequence = str(model.input_type).startswith("List[")
    code = _HEADER.format(program=model.program, type=f"{model.input_type} -> "
                          f"{model.output_type}", weights=weights_name,
                          call="model(data, weights)" if sequence else "model(x)",
                          inputs=("data (batch, steps, ...) and weights (batch, steps; 1 "
                                  "present, 0 padding)") if sequence else "x (batch, ...)")
    code += "\n\n" + _runtime(gen.used, gen.classes) + "\n\n"
    code += _program_class(gen, body, sequence)
    out.write_text(code)
    weights = {k: v.detach().contiguous().clone() for k, v in model.module.state_dict().items()}
    save_file(weights, str(out.parent / weights_name))
    return out


def _refuse_what_cannot_be_carried(model: Model) -> None:
    for node in ast.walk(model.module.term):
        if isinstance(node, ast.Hole):
            raise PythonExportError("a program with neural holes (??) cannot be exported as "
                                    "Python yet; use --format onnx or torch")
        if isinstance(node, ast.LibRef):
            raise PythonExportError("a program that uses the library cannot be exported as "
                                    "Python yet")
        if isinstance(node, ast.Var) and node.name == "nn":
            raise PythonExportError("a program with `nn` parts cannot be exported as Python "
                                    "yet; use --format onnx or torch")
    if model.module.defs:
        raise PythonExportError("a program of several definitions cannot be exported as "
                                "Python yet; use --format onnx or torch")


class _Generator:
    """DSL term -> Python expression, as `CompiledTerm.evaluate` would run it."""

    def __init__(self, model: Model) -> None:
        self.module = model.module
        self.used: set[str] = set()  # primitives (implementation function names)
        self.classes: dict[str, type] = {}  # module classes of learnable parts
        self.parts: list[tuple[str, object]] = []

    def expression(self, t: ast.Term, env: dict[str, tuple[str, int]], depth: int = 0) -> str:
        """`env` maps a DSL variable to its Python name and the lambda depth that binds it;
        a variable captured from outside the innermost lambda is `align`ed to its rows."""
        match t:
            case ast.Num(value):
                return f"torch.full((rows,), {float(value)!r})"
            case ast.Var(name) if name in env:
                var, bound = env[name]
                return var if bound == depth else f"align({var}, rows)"
            case ast.Var():
                fn, site, arity = self._primitive(t)
                return f"curried({fn}, {site}, {arity})" if arity else f"{fn}({site})"
            case ast.Lam(param, body):
                var = _name(param, env)
                inner = self.expression(body, {**env, param: (var, depth + 1)}, depth + 1)
                return f"lam(lambda {var}, rows: {inner}, rows)"
            case ast.Let(name, value, body):
                var = _name(name, env)
                inner = self.expression(body, {**env, name: (var, depth)}, depth)
                return f"(lambda {var}: {inner})({self.expression(value, env, depth)})"
            case ast.App(ast.Var(name) as fn, args) if name not in env and \
                    len(args) == self._primitive(fn)[2]:
                f, site, _ = self._primitive(fn)  # fully applied: a plain call
                return f"{f}({site}, " + ", ".join(
                    self.expression(a, env, depth) for a in args) + ")"
            case ast.App(fn, args):
                return f"call({self.expression(fn, env, depth)}, " + ", ".join(
                    self.expression(a, env, depth) for a in args) + ")"
        raise PythonExportError(f"cannot export {type(t).__name__} terms as Python")

    def program(self, t: ast.Term) -> list[str]:
        """The body of `forward`: a top-level lambda binds the input directly."""
        if isinstance(t, ast.Lam):
            var = _name(t.param, {})
            return [f"{var} = x", "return " + self.expression(t.body, {t.param: (var, 0)})]
        return ["return call(" + self.expression(t, {}) + ", x)"]

    def _primitive(self, t: ast.Var) -> tuple[str, str, int]:
        site = self.module._sites[id(t)]
        prim = implementation(t.name)
        fn = prim.impl.__name__
        self.used.add(fn)
        module = ""
        if site.module is not None:
            key = next(k for k, m in self.module.parts.items() if m is site.module)
            self.classes[type(site.module).__name__] = type(site.module)
            if all(k != key for k, _ in self.parts):
                self.parts.append((key, site.module))
            module = f"self.parts[{key!r}]"
        params = repr(tuple(t.params)) if t.params else ""
        args = ", ".join(a for a in (params, module) if a)
        if module and not params:
            args = f"module={module}"
        return fn, f"Site({args})", prim.arity(t.params)


def _name(dsl: str, env: dict[str, tuple[str, int]]) -> str:
    """A Python name for a DSL variable (never a keyword or a name of the runtime)."""
    base = f"v_{dsl}"
    taken = {var for var, _ in env.values()}
    return base if base not in taken else f"{base}_{len(env)}"


def _program_class(gen: _Generator, body: str, sequence: bool) -> str:
    lines = ["class Program(nn.Module):",
             '    """The program; `load` reads its weights."""', "",
             "    def __init__(self) -> None:", "        super().__init__()",
             "        self.parts = nn.ModuleDict()"]
    for key, module in gen.parts:
        lines.append(f"        self.parts[{key!r}] = {_construct(module)}")
    args = "data: torch.Tensor, weights: torch.Tensor" if sequence else "x: torch.Tensor"
    value = "Seq(data, weights)" if sequence else "x"
    lines += ["", "    @classmethod", "    def load(cls, path: str) -> Program:",
              "        from safetensors.torch import load_file", "",
              "        model = cls()", "        model.load_state_dict(load_file(path))",
              "        return model.eval()", "",
              f"    def forward(self, {args}) -> torch.Tensor:",
              f"        x = {value}", "        rows = batch_size(x)",
              *(f"        {line}" for line in body), ""]
    return "\n".join(lines)


def _construct(module) -> str:
    """An expression that builds `module` with the same attributes and tensor shapes (its
    values come from the weights file)."""
    attrs = {k: v for k, v in vars(module).items() if not k.startswith("_")
             and k != "training" and isinstance(v, int | float | bool | tuple | str)}
    parts = [f"{k}={v!r}" for k, v in attrs.items()]
    for name, child in module._modules.items():
        if type(child).__name__ != "Linear":
            raise PythonExportError(f"cannot export a {type(child).__name__} part as Python")
        parts.append(f"{name}=nn.Linear({child.in_features}, {child.out_features})")
    for name, p in module._parameters.items():
        parts.append(f"{name}=nn.Parameter(torch.zeros{tuple(p.shape)!r})")
    buffers = ", ".join(f"{name!r}: torch.zeros({tuple(b.shape)!r}, dtype={b.dtype})"
                        for name, b in module._buffers.items())
    return f"built({type(module).__name__}, {{{buffers}}}, " + ", ".join(parts) + ")"


def _runtime(used: set[str], classes: dict[str, type]) -> str:
    """The source of what the program calls, with everything it needs, from neurosym's own
    modules (decorators and type hints dropped)."""
    defined = {name: obj for m in _MODULES for name, obj in vars(m).items()
               if (inspect.isfunction(obj) or inspect.isclass(obj))
               and obj.__module__ == m.__name__
               or name.isupper() and isinstance(obj, int | float) and not isinstance(obj, bool)}
    wanted = ["Seq", "batch_size", "align", *sorted(used), *classes]
    order, seen = [], {"_EPS", "MAX_PARAMETERS"}  # the prelude defines these

    def visit(name: str) -> None:
        if name in seen or name not in defined:
            return
        seen.add(name)
        obj = defined[name]
        if not callable(obj):  # a constant
            order.append(f"{name} = {obj!r}")
            return
        source = _source(obj)
        for ref in re.findall(r"\b[A-Za-z_]\w*\b", source):
            if ref != name and ref in defined and not hasattr(builtins, ref) \
                    and not keyword.iskeyword(ref):
                visit(ref)
        order.append(source)

    for name in wanted:
        visit(name)
    return "\n\n\n".join([_PRELUDE, *order])


def _source(obj) -> str:
    source = textwrap.dedent(inspect.getsource(obj))
    source = re.sub(r"^@implements\(.*?\)\n", "", source, flags=re.M)
    if inspect.isclass(obj):
        for method in _SKIP_METHODS:
            source = re.sub(rf"\n    def {method}\(.*?(?=\n    (?:def |@)|\Z)", "", source,
                            flags=re.S)
    return source.rstrip()


_HEADER = '''r"""A program found by neurosym, as plain PyTorch (torch and safetensors only).

    {type}
    {program}

    from program import Program
    model = Program.load("{weights}")
    outputs = {call}      # {inputs}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn'''

_PRELUDE = '''_EPS = 1e-6
MAX_PARAMETERS = 100_000_000


@dataclass(frozen=True)
class Site:
    """A primitive's [params] and, for a learnable one, its module."""

    params: tuple = ()
    module: Any = None


@dataclass(frozen=True)
class Slice:
    """A [start:stop] parameter."""

    start: float
    stop: float


class ast:  # noqa: N801  (the one name of neurosym.lang.ast the primitives read)
    Slice = Slice


def curried(fn, site, arity):
    """`fn(site, a1, ..., an)` as a function taking its arguments one at a time."""
    if arity == 0:
        return fn(site)

    def take(collected):
        return lambda a: fn(site, *collected, a) if len(collected) + 1 == arity \\
            else take((*collected, a))

    return take(())


def call(f, *args):
    for a in args:
        f = f(a)
    return f


def lam(body, rows):
    """A DSL lambda: its body sees the batch size of its argument (B*L inside `map`)."""
    return lambda a: body(a, batch_size(a) or rows)


def built(cls, buffers, **attrs):
    """A part of the program with the attributes and tensor shapes it was trained with."""
    module = cls.__new__(cls)
    nn.Module.__init__(module)
    for name, value in attrs.items():
        setattr(module, name, value)
    for name, value in buffers.items():
        module.register_buffer(name, value)
    return module'''
