"""Parsing, printing and syntax errors."""

from pathlib import Path

import pytest
from hypothesis import given, settings

from neurosym.lang import ast
from neurosym.lang.errors import DSLSyntaxError
from neurosym.lang.parser import parse_program, parse_term, parse_type
from neurosym.lang.printer import show, show_program
from neurosym.lang.types import FLOAT, Arrow, DimVar, Image, ListT, TVar, Vec
from tests.strategies import terms, types

DSL = Path(__file__).parents[1] / "dsl"


@settings(max_examples=300, deadline=None)
@given(terms)
def test_print_parse_round_trip(term):
    assert parse_term(show(term)) == term


@settings(max_examples=200, deadline=None)
@given(types)
def test_type_round_trip(t):
    assert parse_type(str(t)) == t


@pytest.mark.parametrize("path", sorted(DSL.rglob("*.ns")), ids=lambda p: p.name)
def test_shipped_programs_round_trip(path):
    program = parse_program(path.read_text(), str(path))
    assert parse_program(show_program(program)) == program


def test_types_parse():
    assert parse_type("List[Vec[6]] -> Vec[n]") == Arrow(ListT(Vec(6)), Vec(DimVar("n")))
    assert parse_type("(a -> Float) -> Image[8,8]") == Arrow(Arrow(TVar("a"), FLOAT),
                                                             Image(8, 8))


def test_terms_parse():
    term = parse_term(r"\xs y -> map (?? : Vec[6] -> Float) (select[0:3] xs) lib.f@2 -1.5")
    assert term == ast.Lam("xs", ast.Lam("y", ast.App(ast.Var("map"), (
        ast.Hole(Arrow(Vec(6), FLOAT)),
        ast.App(ast.Var("select", (ast.Slice(0, 3),)), (ast.Var("xs"),)),
        ast.LibRef("f", 2), ast.Num(-1.5)))))
    # application is curried: (f a) b and f a b are one and the same program
    assert parse_term("(f a) b") == parse_term("f a b")
    assert parse_term("let index = f x in index # comment") == ast.Let(
        "index", ast.App(ast.Var("f"), (ast.Var("x"),)), ast.Var("index"))


def test_positions_are_recorded():
    program = parse_program("def f : Float =\n  add 1.0 y\n")
    body = program.defs[0].body
    assert (body.span.line, body.span.column) == (2, 3)
    assert (body.args[1].span.line, body.args[1].span.column) == (2, 11)


def _error(text: str) -> DSLSyntaxError:
    with pytest.raises(DSLSyntaxError) as info:
        parse_program(text, "bad.ns")
    return info.value


def test_unbalanced_brackets_error_has_position_line_and_caret():
    err = _error("def f : Float =\n  add (mul 1.0 2.0 3.0\n")
    text = err.format()
    assert text.startswith("bad.ns:2:")
    assert "expected ')'" in text
    assert "  add (mul 1.0 2.0 3.0" in text and "^" in text
    err = _error("def f : Float = add 1.0 2.0)")
    assert (err.span.line, err.span.column) == (1, 28)
    assert err.format().splitlines()[2] == " " * 29 + "^"


def test_empty_file_is_an_error():
    assert "no definitions" in _error("").format()
    assert "no definitions" in _error("# only a comment\n").format()


def test_unknown_characters_and_types():
    assert "unexpected character '$'" in _error("def f : Float = x $ y").message
    assert "unknown type Flot" in _error("def f : Flot = 1").message
    assert "Vec takes 1 argument" in _error("def f : Vec[1,2] = 1").message
    assert "takes a type" in _error("def f : List[3] = 1").message


def test_keywords_are_not_names():
    assert _error("def let : Float = 1").span.column == 5
    assert parse_term("index") == ast.Var("index")  # a name that starts with a keyword
