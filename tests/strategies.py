"""Hypothesis strategies for random types and programs (for round-trip properties)."""

from __future__ import annotations

from hypothesis import strategies as st

from neurosym.lang import ast
from neurosym.lang.types import BASE_TYPES, Arrow, DimVar, Image, ListT, TVar, Vec

KEYWORDS = {"def", "let", "in", "lib"}
names = st.from_regex(r"[a-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: s not in KEYWORDS)
dims = st.one_of(st.integers(1, 64), names.map(DimVar))

types = st.recursive(
    st.one_of(st.sampled_from(list(BASE_TYPES.values())), dims.map(Vec),
              st.builds(Image, dims, dims), names.map(TVar)),
    lambda inner: st.one_of(inner.map(ListT), st.builds(Arrow, inner, inner)),
    max_leaves=6,
)

fractions = st.integers(0, 1000).map(lambda i: i / 1000)
params = st.one_of(st.integers(0, 20), fractions,
                   st.tuples(st.integers(0, 10), st.integers(11, 20)).map(
                       lambda p: ast.Slice(*p)),
                   st.tuples(fractions, fractions).map(lambda p: ast.Slice(*p)))
numbers = st.one_of(
    st.integers(-1000, 1000).map(lambda i: ast.Num(float(i), True)),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(
        lambda f: ast.Num(float(f), False)),
)
leaves = st.one_of(
    names.map(ast.Var),
    st.builds(ast.Var, names, st.lists(params, min_size=1, max_size=2).map(tuple)),
    numbers,
    st.just(ast.Hole()),
    types.map(ast.Hole),
    st.builds(ast.LibRef, names, st.none() | st.integers(1, 99)),
)


def _extend(inner):
    fn = inner.filter(lambda t: not isinstance(t, ast.App))
    return st.one_of(
        st.builds(ast.Lam, names, inner),
        st.builds(ast.Let, names, inner, inner),
        st.builds(ast.App, fn, st.lists(inner, min_size=1, max_size=3).map(tuple)),
    )


terms = st.recursive(leaves, _extend, max_leaves=12)
