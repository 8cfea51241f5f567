"""Text -> AST. The grammar lives in grammar.lark; a Lark Transformer builds the frozen
dataclasses of ast.py, and Lark's errors become `DSLSyntaxError`s with positions."""

from __future__ import annotations

import math
from functools import cache, lru_cache
from importlib import resources

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from neurosym.lang import ast
from neurosym.lang.errors import DSLSyntaxError, NeurosymError, Span
from neurosym.lang.types import BASE_TYPES, Arrow, DimVar, Image, ListT, TVar, Type, Vec

_TOKEN_NAMES = {
    "NAME": "a name", "TYPE_NAME": "a type", "INT": "an integer", "NUMBER": "a number",
    "PARAM": "a parameter (2, 0.25 or -1.5)",
    "HOLE": "'??'", "LIBREF": "'lib.NAME'", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['",
    "RSQB": "']'", "COLON": "':'", "COMMA": "','", "EQUAL": "'='", "__ANON_0": "'->'",
    "BACKSLASH": "'\\'", "DEF": "'def'", "LET": "'let'", "IN": "'in'", "$END": "end of input",
}


@cache
def _parser(start: str) -> Lark:
    grammar = resources.files("neurosym.lang").joinpath("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", start=start, propagate_positions=True,
                maybe_placeholders=False)


def _span(meta) -> Span | None:
    if getattr(meta, "empty", True):
        return None
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _tok_span(tok: Token) -> Span:
    return Span(tok.line, tok.column, tok.end_line, tok.end_column)


MAX_SIZE = 1_000_000  # the largest dimension or integer parameter: far beyond any real data


def _param_number(tok: Token) -> int | float:
    """`2` is an index, `0.25` a fraction (an interval's bound); the primitive checks."""
    text = str(tok)
    _check_size(tok, "parameter")
    return float(text) if "." in text else int(text)


def _check_size(tok: Token, what: str) -> None:
    """Before converting: a 5,000-digit integer is too large for Python's int() too."""
    text = str(tok)
    if len(text) > 16 or abs(float(text)) > MAX_SIZE:
        span = Span(tok.line, tok.column, tok.end_line, tok.end_column)
        raise DSLSyntaxError(f"the {what} {str(tok)[:24]} is too large (at most "
                             f"{MAX_SIZE:,})", span)


@v_args(meta=True)
class _ToAst(Transformer):
    """Lark tree -> ast.Program / ast.Term / Type."""

    def start(self, meta, defs):
        return ast.Program(tuple(defs))

    def definition(self, meta, c):
        return ast.Def(str(c[0]), c[1], c[2], _span(meta))

    # types
    def arrow_t(self, meta, c):
        return Arrow(c[0], c[1])

    def base_t(self, meta, c):
        name = str(c[0])
        if name not in BASE_TYPES:
            hint = " (Vec, Image and List take arguments in [...])" if name in _INDEXED else ""
            raise DSLSyntaxError(f"unknown type {name}{hint}", _tok_span(c[0]))
        return BASE_TYPES[name]

    def indexed_t(self, meta, c):
        name, args = str(c[0]), c[1:]
        if name not in _INDEXED:
            raise DSLSyntaxError(f"unknown type {name}[...]", _tok_span(c[0]))
        ctor, kinds = _INDEXED[name]
        if len(args) != len(kinds):
            raise DSLSyntaxError(f"{name} takes {len(kinds)} argument(s), got {len(args)}",
                                 _tok_span(c[0]))
        return ctor(*(_type_arg(a, k, name, c[0]) for a, k in zip(args, kinds)))

    def var_t(self, meta, c):
        return TVar(str(c[0]))

    def dim_int(self, meta, c):
        _check_size(c[0], "dimension")
        return int(c[0])

    # terms
    def lam(self, meta, c):
        body = c[-1]
        for name in reversed(c[:-1]):
            body = ast.Lam(str(name), body, _span(meta))
        return body

    def let(self, meta, c):
        return ast.Let(str(c[0]), c[1], c[2], _span(meta))

    def typed_hole(self, meta, c):
        return ast.Hole(c[1], _span(meta))

    def apply(self, meta, c):
        fn, arg = c  # `(f a) b` and `f a b` mean the same; the AST keeps one canonical form
        if isinstance(fn, ast.App):
            return ast.App(fn.fn, (*fn.args, arg), _span(meta))
        return ast.App(fn, (arg,), _span(meta))

    def var(self, meta, c):
        return ast.Var(str(c[0]), (), _span(meta))

    def prim_params(self, meta, c):
        return ast.Var(str(c[0]), tuple(c[1:]), _span(meta))

    def index_param(self, meta, c):
        return _param_number(c[0])

    def slice_param(self, meta, c):
        return ast.Slice(_param_number(c[0]), _param_number(c[1]))

    def number(self, meta, c):
        text = str(c[0])
        is_int = not any(ch in text for ch in ".eE")
        value = float(text)
        if not math.isfinite(value) or (is_int and abs(value) > 2**53):
            raise DSLSyntaxError(f"the number {text[:24]}{'...' if len(text) > 24 else ''} "
                                 "is too large", _span(meta))
        return ast.Num(value, is_int, _span(meta))

    def hole(self, meta, c):
        return ast.Hole(None, _span(meta))

    def libref(self, meta, c):
        name, _, version = str(c[0])[len("lib."):].partition("@")
        return ast.LibRef(name, int(version) if version else None, _span(meta))


_INDEXED = {"Vec": (Vec, ("dim",)), "Image": (Image, ("dim", "dim")), "List": (ListT, ("type",))}


def _type_arg(arg, kind: str, name: str, tok: Token):
    if kind == "dim":
        if isinstance(arg, int):
            return arg
        if isinstance(arg, TVar):
            return DimVar(arg.name)
        raise DSLSyntaxError(f"{name}[...] takes dimensions (integers or names), got {arg}",
                             _tok_span(tok))
    if isinstance(arg, int):
        raise DSLSyntaxError(f"{name}[...] takes a type, got {arg}", _tok_span(tok))
    return arg


def _describe(expected: set[str]) -> str:
    names = sorted({_TOKEN_NAMES.get(e, repr(e.lower())) for e in expected})
    return ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")


def _syntax_error(err: UnexpectedInput) -> DSLSyntaxError:
    if isinstance(err, UnexpectedCharacters):
        msg = f"unexpected character {err.char!r}"
        return DSLSyntaxError(msg, Span(err.line, err.column))
    if isinstance(err, UnexpectedEOF) or (
            isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        return DSLSyntaxError(f"unexpected end of input; expected {_describe(err.expected)}",
                              Span(max(err.line, 1), max(err.column, 1)) if err.line > 0 else None)
    assert isinstance(err, UnexpectedToken)
    tok = err.token
    expected = _describe(err.accepts or err.expected)
    return DSLSyntaxError(f"unexpected {str(tok)!r}; expected {expected}", _tok_span(tok))


MAX_NESTING = 200  # brackets deep; generated programs stay far below it


def _check_nesting(text: str) -> None:
    """Refuse text nested deeper than MAX_NESTING brackets, at the bracket that goes past
    it: the parser and checker recurse once per level."""
    depth, line, column = 0, 1, 1
    for ch in text:
        if ch in "([":
            depth += 1
            if depth > MAX_NESTING:
                raise DSLSyntaxError(f"nested more than {MAX_NESTING} brackets deep; "
                                     "split the program into definitions", Span(line, column))
        elif ch in ")]":
            depth = max(depth - 1, 0)
        line, column = (line + 1, 1) if ch == "\n" else (line, column + 1)


MAX_SOURCE = 200_000  # characters: far beyond any program written or found


def _parse(text: str, start: str, filename: str):
    if len(text) > MAX_SOURCE:
        raise DSLSyntaxError(f"{len(text):,} characters is too long for a program (at most "
                             f"{MAX_SOURCE:,})").located(text[:1000], filename)
    try:
        _check_nesting(text)
        tree = _parser(start).parse(text)
        return _ToAst().transform(tree)
    except RecursionError:  # a chain without brackets (f a a a ..., \a -> \b -> ...)
        raise DSLSyntaxError("the program is nested too deeply to read; split it into "
                             "definitions").located(text, filename) from None
    except UnexpectedInput as err:
        raise _syntax_error(err).located(text, filename) from None
    except NeurosymError as err:
        raise err.located(text, filename) from None
    except Exception as err:  # Transformer wraps our errors in VisitError
        inner = getattr(err, "orig_exc", None)
        if isinstance(inner, NeurosymError):
            raise inner.located(text, filename) from None
        raise


def parse_program(text: str, filename: str = "<input>") -> ast.Program:
    """Parse a file of `def` definitions. An empty file is an error: there is nothing to run."""
    program = _parse(text, "start", filename)
    if not program.defs:
        raise DSLSyntaxError("no definitions found (expected 'def NAME : TYPE = TERM')").located(
            text, filename)
    return program


def parse_term(text: str, filename: str = "<term>") -> ast.Term:
    return _parse(text, "term", filename)


@lru_cache(maxsize=4096)
def parse_type(text: str, filename: str = "<type>") -> Type:
    """Types are frozen, so one parse serves every caller (signatures with parameters,
    such as `paa[8]`'s, build theirs from text at every use)."""
    return _parse(text, "type", filename)
