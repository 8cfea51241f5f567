"""AST -> text in the syntax the parser reads: `parse(show(p)) == p` for every program."""

from __future__ import annotations

from neurosym.lang import ast
from neurosym.lang.types import Type


def show_type(t: Type) -> str:
    return str(t)


def _param(p: ast.Param) -> str:
    return f"{_bound(p.start)}:{_bound(p.stop)}" if isinstance(p, ast.Slice) else _bound(p)


def _bound(x: int | float) -> str:
    """An index as itself, a fraction with a point and at most 6 decimals (never in
    exponent form, which the grammar does not read)."""
    if isinstance(x, int):
        return str(x)
    text = f"{x:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _num(n: ast.Num) -> str:
    if n.is_int:
        return str(int(n.value))
    text = repr(float(n.value))
    return text if any(c in text for c in ".eE") else text + ".0"


def show(t: ast.Term) -> str:
    """Print a term; the outermost level needs no parentheses."""
    match t:
        case ast.Lam():
            params, body = [], t
            while isinstance(body, ast.Lam):
                params.append(body.param)
                body = body.body
            return f"\\{' '.join(params)} -> {show(body)}"
        case ast.Let(name, value, body):
            return f"let {name} = {show(value)} in {show(body)}"
        case ast.Hole(typ) if typ is not None:
            return f"?? : {typ}"
        case ast.App(fn, args):
            return " ".join([_atom(fn), *(_atom(a) for a in args)])
    return _atom(t)


def _atom(t: ast.Term) -> str:
    match t:
        case ast.Var(name, params):
            return f"{name}[{', '.join(map(_param, params))}]" if params else name
        case ast.Num():
            return _num(t)
        case ast.Hole(None):
            return "??"
        case ast.LibRef(name, version):
            return f"lib.{name}" + (f"@{version}" if version is not None else "")
    return f"({show(t)})"


def show_def(d: ast.Def, width: int = 88) -> str:
    head = f"def {d.name} : {d.type} ="
    body = show(d.body)
    if len(head) + 1 + len(body) <= width:
        return f"{head} {body}"
    return f"{head}\n  {body}"


def show_program(p: ast.Program) -> str:
    return "\n\n".join(show_def(d) for d in p.defs) + "\n"
