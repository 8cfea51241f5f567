"""A saved model as one readable Python file that needs torch (and safetensors) only: a
plain `nn.Module` whose `forward` is the program, written as nested calls of the
primitives it uses, whose code is copied from neurosym itself (the same functions the
interpreter runs, so the two cannot drift apart).

Neural parts (holes, `nn`) are copied the same way: their classes' `forward`, rebuilt
with the shapes they were trained with. Each definition is a class with a `value` method.
A definition used in several places is one module per use in the file (loaded with the
same weights). Library functions a model uses are definitions of it (see `artifact`).
"""

from __future__ import annotations

import builtins
import inspect
import keyword
import re
import textwrap
from pathlib import Path

from torch import nn

from neurosym.interp import (
    algorithms,
    dtw,
    primitives,
    prototypes,
    rules,
    series,
    standardize,
    values,
)
from neurosym.interp.compiler import CompiledTerm
from neurosym.interp.registry import implementation
from neurosym.lang import ast
from neurosym.lang.errors import NeurosymError
from neurosym.lang.types import Arrow, ListT, encodable
from neurosym.models import Model
from neurosym.relax import networks

_MODULES = (values, standardize, primitives, series, dtw, prototypes, rules, algorithms,
            networks)
_SKIP_METHODS = ("__init__", "explain", "learned_params", "_seed_from", "values", "bounds",
                 "effective", "_load_from_state_dict", "_seed", "_chunked", "_recalled",
                 "_pairs")


class PythonExportError(NeurosymError):
    """A program the Python export cannot write yet."""


def export_python(model: Model, out: Path, weights_name: str | None = None) -> Path:
    """Write `out` (the program as Python) and its weights beside it (`OUT.safetensors`
    unless named)."""
    weights_name = weights_name or f"{out.stem}.safetensors"
    from safetensors.torch import save_file

    runtime = _Runtime()
    classes = [_module_class(f"Def_{name}", f"def {name} : {compiled.type}",
                             _Generator(compiled, runtime))
               for name, compiled in _definitions(model.module)]
    sequence = str(model.input_type).startswith("List[")
    main = _Generator(model.module, runtime)
    classes.append(_module_class("Program", "The program; `load` reads its weights.", main,
                                 _program_methods(main, sequence)))
    code = _HEADER.format(program=model.program, type=f"{model.input_type} -> "
                          f"{model.output_type}", weights=weights_name,
                          call="model(data, weights)" if sequence else "model(x)",
                          inputs=("data (batch, steps, ...) and weights (batch, steps; 1 "
                                  "present, 0 padding)") if sequence else "x (batch, ...)")
    code += "\n\n" + _runtime(runtime) + "\n\n\n" + "\n\n".join(classes)
    out.write_text(code)
    weights = {k: v.detach().contiguous().clone() for k, v in model.module.state_dict().items()}
    save_file(weights, str(out.parent / weights_name))
    return out


def _definitions(module: CompiledTerm) -> list[tuple[str, CompiledTerm]]:
    """The definitions a program uses, each before those that use it."""
    found: dict[str, CompiledTerm] = {}

    def visit(compiled: CompiledTerm) -> None:
        for name, d in compiled.defs.items():
            if name not in found:
                visit(d)
                found[name] = d

    visit(module)
    return list(found.items())


class _Runtime:
    """What the generated file must define: primitives (by implementation function name)
    and the classes of learnable parts."""

    def __init__(self) -> None:
        self.functions: set[str] = set()
        self.classes: dict[str, type] = {}


class _Generator:
    """A compiled term -> Python expressions, as `CompiledTerm.evaluate` would run them."""

    def __init__(self, compiled: CompiledTerm, runtime: _Runtime) -> None:
        self.compiled, self.runtime = compiled, runtime
        self.parts: list[tuple[str, str]] = []  # (key, expression building the part)

    def expression(self, t: ast.Term, env: dict[str, tuple[str, int]], depth: int = 0) -> str:
        """`env` maps a DSL variable to its Python name and the lambda depth that binds it;
        a variable captured from outside the innermost lambda is `align`ed to its rows."""
        match t:
            case ast.Num(value):
                return f"torch.full((rows,), {float(value)!r})"
            case ast.Var(name) if name in env:
                var, bound = env[name]
                return var if bound == depth else f"align({var}, rows)"
            case ast.Var(name) if name in self.compiled.defs:
                return f"{self._part(t)}.value(rows)"
            case ast.Var():
                fn, site, arity = self._primitive(t)
                return f"curried({fn}, {site}, {arity})" if arity else f"{fn}({site})"
            case ast.Hole():
                context = [env[name][0] for name, ty in self.compiled.checked.scopes[id(t)]
                           if encodable(ty)]
                net = self._part(t)
                return f"hole({net}, [{', '.join(context)}], rows, {net}.arity)"
            case ast.Lam(param, body):
                var = _name(param, env)
                inner = self.expression(body, {**env, param: (var, depth + 1)}, depth + 1)
                return f"lam(lambda {var}, rows: {inner}, rows)"
            case ast.Let(name, value, body):
                var = _name(name, env)
                inner = self.expression(body, {**env, name: (var, depth)}, depth)
                return f"(lambda {var}: {inner})({self.expression(value, env, depth)})"
            case ast.App(ast.Var(name) as fn, args) if name not in env and \
                    name not in self.compiled.defs and len(args) == self._primitive(fn)[2]:
                f, site, _ = self._primitive(fn)  # fully applied: a plain call
                return f"{f}({site}, " + ", ".join(
                    self.expression(a, env, depth) for a in args) + ")"
            case ast.App(fn, args):
                return f"call({self.expression(fn, env, depth)}, " + ", ".join(
                    self.expression(a, env, depth) for a in args) + ")"
        raise PythonExportError(f"cannot export {type(t).__name__} terms as Python")

    def _part(self, t: ast.Term) -> str:
        """`self.parts[KEY]`, the module of `t` (a hole, a definition or a learnable
        primitive), built in `__init__`."""
        key = self.compiled._keys[id(t)]
        if all(k != key for k, _ in self.parts):
            module = self.compiled.parts[key]
            self.parts.append((key, f"Def_{t.name}()" if isinstance(module, CompiledTerm)
                               else _construct(module, self.runtime)))
        return f"self.parts[{key!r}]"

    def _primitive(self, t: ast.Var) -> tuple[str, str, int]:
        site = self.compiled._sites[id(t)]
        prim = implementation(t.name)
        fn = prim.impl.__name__
        self.runtime.functions.add(fn)
        module = self._part(t) if site.module is not None else ""
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


def _module_class(name: str, doc: str, gen: _Generator, methods: list[str] | None = None
                  ) -> str:
    """A class for one compiled term: its parts, and `value(rows)` (a definition) or the
    given methods (the program)."""
    if methods is None:
        methods = ["def value(self, rows: int):", "    return " +
                   gen.expression(gen.compiled.term, {})]
    lines = [f"class {name}(nn.Module):", f'    """{doc}"""', "",
             "    def __init__(self) -> None:", "        super().__init__()",
             "        self.parts = nn.ModuleDict()"]
    lines += [f"        self.parts[{key!r}] = {build}" for key, build in gen.parts]
    return "\n".join([*lines, "", *(f"    {line}" if line else "" for line in methods), ""])


def _program_methods(gen: _Generator, sequence: bool) -> list[str]:
    """`load`, and `forward` whose body is the program (a top-level lambda binds the
    input directly). A list output is returned as its values [batch, length], as the
    model returns it (`CompiledTerm.task_program`)."""
    t = gen.compiled.term
    if isinstance(t, ast.Lam):
        var = _name(t.param, {})
        body = [f"{var} = x", "out = " + gen.expression(t.body, {t.param: (var, 0)})]
    else:
        body = ["out = call(" + gen.expression(t, {}) + ", x)"]
    listed = isinstance(gen.compiled.type, Arrow) and isinstance(gen.compiled.type.result, ListT)
    body.append("return out.data" if listed else "return out")
    args = "data: torch.Tensor, weights: torch.Tensor" if sequence else "x: torch.Tensor"
    value = "Seq(data, weights)" if sequence else "x"
    return ["@classmethod", "def load(cls, path: str) -> Program:",
            "    from safetensors.torch import load_file", "",
            "    model = cls()", "    model.load_state_dict(load_file(path))",
            "    return model.eval()", "",
            f"def forward(self, {args}) -> torch.Tensor:", f"    x = {value}",
            "    rows = batch_size(x)", *(f"    {line}" for line in body)]


def _construct(module: nn.Module, runtime: _Runtime, indent: int = 8) -> str:
    """An expression that builds `module` with the same attributes and tensor shapes (its
    values come from the weights file), laid out over lines when long."""
    cls = type(module)
    inner = indent + 4
    if cls.__module__.startswith("torch.nn."):
        if isinstance(module, nn.Sequential | nn.ModuleList):
            children = [_construct(m, runtime, inner) for m in module]
            if isinstance(module, nn.ModuleList):
                return _call("nn.ModuleList", ["[" + ", ".join(children) + "]"], indent)
            return _call("nn.Sequential", children, indent)
        if module._modules:
            raise PythonExportError(f"cannot export a {cls.__name__} part as Python")
        return f"nn.{module!r}"  # torch's own repr of a leaf layer is its constructor call
    runtime.classes[cls.__name__] = cls
    attrs = {k: v for k, v in vars(module).items() if not k.startswith("_")
             and k != "training" and (v is None or isinstance(v, int | float | bool | tuple | str))}
    args = ["{" + ", ".join(f"{name!r}: torch.zeros({tuple(b.shape)!r}, dtype={b.dtype})"
                            for name, b in module._buffers.items()) + "}"]
    args += [f"{k}={v!r}" for k, v in attrs.items()]
    args += [f"{name}={_construct(child, runtime, inner)}"
             for name, child in module._modules.items() if child is not None]
    args += [f"{name}=nn.Parameter(torch.zeros{tuple(p.shape)!r})"
             for name, p in module._parameters.items() if p is not None]
    return _call("built", [cls.__name__, *args], indent)


def _call(fn: str, args: list[str], indent: int) -> str:
    """`fn(args)` on one line if it fits in 88 columns, else one argument per line."""
    line = f"{fn}(" + ", ".join(args) + ")"
    if indent + len(line) <= 88 and "\n" not in line:
        return line
    pad = " " * (indent + 4)
    return f"{fn}(\n" + "".join(f"{pad}{a},\n" for a in args) + " " * indent + ")"


def _runtime(runtime: _Runtime) -> str:
    """The source of what the program calls, with everything it needs, from neurosym's own
    modules (decorators and type hints dropped)."""
    defined = {name: obj for m in _MODULES for name, obj in vars(m).items()
               if (inspect.isfunction(obj) or inspect.isclass(obj))
               and obj.__module__ == m.__name__
               or name.isupper() and isinstance(obj, int | float) and not isinstance(obj, bool)}
    wanted = ["Seq", "batch_size", "align", "call", *sorted(runtime.functions),
              *runtime.classes]
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


def hole(net, context, rows, arity):
    """A neural hole: its network applied to the scope values it reads and its arguments."""
    return curried(lambda _, *args: net(context + list(args), (batch_size(args[0]) if args
                                                               else None) or rows),
                   None, arity)


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
