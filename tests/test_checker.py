"""Type checking: inference through polymorphic primitives, and errors naming both types."""

import pytest

from neurosym.lang import ast
from neurosym.lang.checker import check_term
from neurosym.lang.errors import DSLTypeError
from neurosym.lang.load import check_source
from neurosym.lang.parser import parse_term, parse_type
from neurosym.lang.types import FLOAT, Arrow, Vec


def _type_error(text: str) -> DSLTypeError:
    with pytest.raises(DSLTypeError) as info:
        check_source(text, "t.ns")
    return info.value


def test_inference_through_polymorphic_primitives():
    term = parse_term(r"\xs -> affine (mean (map (select[0:3]) xs))")
    checked = check_term(term, parse_type("List[Vec[6]] -> Vec[4]"))
    affine = term.body.fn
    assert checked.type_of(affine) == Arrow(Vec(3), Vec(4))  # sizes come from the context


def test_hole_types_and_scopes_are_inferred():
    term = parse_term(r"\xs -> mean (map ?? xs)")
    checked = check_term(term, parse_type("List[Vec[6]] -> Float"))
    hole = term.body.args[0].args[0]
    assert isinstance(hole, ast.Hole)
    assert checked.type_of(hole) == Arrow(Vec(6), FLOAT)
    assert dict(checked.scopes[id(hole)]) == {"xs": parse_type("List[Vec[6]]")}


def test_definitions_are_usable_later():
    checked = check_source("def f : Vec[3] -> Float = select[0]\n"
                           "def g : List[Vec[3]] -> Float = \\xs -> mean (map f xs)\n")
    assert str(checked.def_types["g"]) == "List[Vec[3]] -> Float"


def test_mismatch_names_both_types_and_position():
    err = _type_error("def f : List[Vec[6]] -> Float =\n  \\xs -> add (mean xs) 1.0")
    assert "argument 2 of 'add'" in err.message
    assert "expected Vec[6], found Float" in err.message
    text = err.format()
    assert text.startswith("t.ns:2:") and "^" in text


def test_a_number_applied_as_a_function_is_a_located_type_error():
    err = _type_error("def main : List[Vec[6]] -> Vec[4] =\n"
                      "  \\xs -> add (affine (0 xs)) (affine (std xs))")
    assert "the number 0 is used as List[Vec[6]] -> a" in err.message
    assert "not a function" in err.message and err.format().startswith("t.ns:2:23:")
    err = _type_error("def f : Float -> Float = \\x -> 2.5 x")
    assert "'2.5' is applied to 1 argument(s)" in err.message


def test_declared_type_mismatch():
    err = _type_error("def f : List[Vec[6]] -> Float = \\xs -> mean xs")
    assert err.message == "the body of 'f': expected Float, found Vec[6]"


def test_unknown_primitive():
    err = _type_error("def f : Float -> Float = \\x -> frobnicate x")
    assert "unknown name 'frobnicate'" in err.message
    assert (err.span.line, err.span.column) == (1, 32)


def test_wrong_arity():
    assert "'mean' takes 1 argument(s), but is given 2" in _type_error(
        "def f : List[Float] -> Float = \\xs -> mean xs xs").message
    assert "'x' is applied to 2 argument(s), but its type Float takes 0" in _type_error(
        "def f : Float -> Float = \\x -> x x x").message


def test_out_of_range_feature_selection():
    err = _type_error("def f : Vec[6] -> Vec[2] = \\x -> affine (select[4:8] x)")
    assert "out of range for Vec[6]" in err.message


def test_uninferable_sizes_ask_for_an_annotation():
    err = _type_error("def f : List[Vec[6]] -> Float = \\xs -> mean (map (\\x -> softargmax"
                      " (?? x)) xs)")
    assert "annotate it" in err.message


def test_definition_types_must_be_concrete_and_unique():
    assert "must be concrete" in _type_error("def f : a -> a = \\x -> x").message
    assert "defined twice" in _type_error(
        "def f : Float = 1.0\ndef f : Float = 2.0").message


def test_integer_literals_adapt_to_float_but_not_to_vectors():
    check_source("def f : Float -> Float = \\x -> add x 1")
    assert "expected Vec[2], found" in _type_error(
        "def f : Vec[2] -> Vec[2] = \\x -> add x 1.0").message


def test_instantiating_a_scheme_whose_variables_look_fresh():
    from neurosym.lang.types import ListT, Subst, TVar, arrows

    subst = Subst()
    scheme = arrows(TVar("'t1"), TVar("'t0"), ListT(TVar("'t1")))
    t = subst.instantiate(scheme)
    assert t.arg != t.result.arg and t.result.result == ListT(t.arg)


@pytest.mark.parametrize("source, message", [
    ("def main : Float -> Float =\n  \\x -> " + "add x (" * 1000 + "x" + ")" * 1000,
     "t.ns:2:1415: error: nested more than 200 brackets deep"),
    ("def main : " + "List[" * 5000 + "Float" + "]" * 5000 + " -> Float = ??",
     "t.ns:1:1016: error: nested more than 200 brackets deep"),
    ("def main : Float -> Float =\n  \\x -> f" + " x" * 20000, "nested too deeply"),
    ("def main : Float -> Float =\n  " + "".join(f"\\a{i} -> " for i in range(5000)) + "x",
     "nested too deeply"),
])
def test_deep_nesting_is_a_clear_error(source, message):
    from neurosym.lang.errors import NeurosymError

    with pytest.raises(NeurosymError) as info:
        check_source(source, "t.ns")
    assert message in info.value.format()
    shallow = "def main : Float -> Float =\n  \\x -> " + "add x (" * 150 + "x" + ")" * 150
    check_source(shallow, "t.ns")
