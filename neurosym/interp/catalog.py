"""The types of the built-in primitives, apart from their torch implementations (in
primitives.py, series.py and rules.py), so that type-checking a program (`neurosym
check`) does not import torch. Each entry: the type (DSL syntax, or a function of the
`[params]`), a check run on the resolved type, the structural cost, and whether the
primitive learns something (its type must then be concrete)."""

from __future__ import annotations

from neurosym.lang import ast
from neurosym.lang.parser import parse_type
from neurosym.lang.types import ListT, Type, Vec, encodable, is_tensor, uncurry

# ---- checks run on a primitive's resolved type ---------------------------------------------

def result_tensor(arity: int):
    """The value after the primitive's own `arity` arguments must be a tensor (read after
    uncurrying everything, `add f g` on two functions would pass)."""

    def check(t: Type, params) -> str | None:
        for _ in range(arity):
            t = t.result
        return None if is_tensor(t) else f"works on Float, Bool, Int, Vec and Image, not {t}"

    return check


def all_tensors(t: Type, params) -> str | None:
    """One tensor argument to a tensor (`a -> b` must not stand for a two-argument function)."""
    bad = [x for x in (t.arg, t.result) if not is_tensor(x)]
    return f"works on Float, Bool, Int, Vec and Image, not {bad[0]}" if bad else None


def map_result(t: Type, params) -> str | None:
    result = uncurry(t)[1]
    if isinstance(result, ListT) and isinstance(result.elem, ListT):
        return "lists of lists are not supported"
    return None


def tensor_elems(t: Type, params) -> str | None:
    (arg,), _ = uncurry(t)
    elem = getattr(arg, "elem", None)
    return None if elem is not None and is_tensor(elem) else f"works on lists of tensors, not {arg}"


def select_bounds(t: Type, params) -> str | None:
    (arg,), _ = uncurry(t)
    p = params[0]
    stop = p.stop if isinstance(p, ast.Slice) else p + 1
    if isinstance(arg, Vec) and isinstance(arg.n, int) and stop > arg.n:
        return f"index {stop - 1} is out of range for {arg}"
    return None


def encodable_function(t: Type, params) -> str | None:
    arg, result = t.arg, t.result  # one argument: `a -> b` is not `a -> c -> d`
    if not encodable(arg) or not is_tensor(result):
        return f"needs a tensor or list input and a tensor output, not {t}"
    return None


# ---- types of primitives that take [params] ------------------------------------------------

def window_signature(params: tuple[ast.Param, ...]) -> Type:
    if len(params) != 1 or not isinstance(params[0], int) or params[0] < 1:
        raise ValueError("takes one window size, e.g. window[5]")
    return parse_type("(List[a] -> b) -> List[a] -> List[b]")


def select_signature(params: tuple[ast.Param, ...]) -> Type:
    if len(params) != 1:
        raise ValueError("takes one index or slice, e.g. select[2] or select[0:3]")
    p = params[0]
    bounds = (p.start, p.stop) if isinstance(p, ast.Slice) else (p,)
    if not all(isinstance(b, int) and b >= 0 for b in bounds):
        raise ValueError("takes integer feature indices from 0, e.g. select[2] or select[0:3]")
    if isinstance(p, ast.Slice):
        if p.stop <= p.start:
            raise ValueError(f"empty slice {p.start}:{p.stop}")
        return parse_type(f"Vec[n] -> Vec[{p.stop - p.start}]")
    return parse_type("Vec[n] -> Float")


def interval_signature(params: tuple[ast.Param, ...]) -> Type:
    p = params[0] if len(params) == 1 else None
    if params and (not isinstance(p, ast.Slice) or not 0 <= p.start < p.stop <= 1):
        raise ValueError("takes one interval of fractions of the series, e.g. "
                         "interval[0.25:0.5] (0 <= start < stop <= 1), or none to learn it")
    return parse_type("List[a] -> List[a]")


def shapelet_signature(params: tuple[ast.Param, ...]) -> Type:
    ok = 1 <= len(params) <= 2 and all(isinstance(p, int) for p in params)
    if not ok or params[0] < 2 or (len(params) == 2 and params[1] < 1):
        raise ValueError("takes a pattern length of at least 2 steps and, optionally, how "
                         "many patterns: shapelet[20] or shapelet[20, 8]")
    return parse_type("List[Vec[n]] -> Float" if len(params) == 1
                      else f"List[Vec[n]] -> Vec[{params[1]}]")


def parts_signature(what: str, example: str):
    """`List[Vec[1]] -> Vec[k]` for `name[k]`, k from 1 to 4096 (paa, spectrum)."""
    def signature(params: tuple[ast.Param, ...]) -> Type:
        if len(params) != 1 or not isinstance(params[0], int) or not 1 <= params[0] <= 4096:
            raise ValueError(f"takes how many {what} (1 to 4096), e.g. {example}")
        return parse_type(f"List[Vec[1]] -> Vec[{params[0]}]")
    return signature


def prototypes_signature(elastic: bool):
    """`List[Vec[n]] -> Vec[k]` for `name[k, m]` (and, if `elastic`, an optional band)."""
    def signature(params: tuple[ast.Param, ...]) -> Type:
        sizes = len(params) >= 2 and all(isinstance(p, int) for p in params[:2]) \
            and 1 <= params[0] <= 256 and 2 <= params[1] <= 1024
        band = len(params) == 2 or (elastic and len(params) == 3 and isinstance(
            params[2], int | float) and 0 <= params[2] <= 1)
        if not (sizes and band):
            more = " and, optionally, a band as a fraction of m (0 to 1, default 0.1), e.g. " \
                "prototypes_dtw[8, 32, 0.1]" if elastic else ", e.g. prototypes[8, 32]"
            raise ValueError("takes how many prototypes (1 to 256) and their length in steps "
                             f"(2 to 1024){more}")
        return parse_type(f"List[Vec[n]] -> Vec[{params[0]}]")
    return signature


def known_channels(t: Type, params) -> str | None:
    (arg,), _ = uncurry(t)
    elem = getattr(arg, "elem", None)
    ok = isinstance(elem, Vec) and isinstance(elem.n, int)
    return None if ok else f"needs series with a known number of channels, not {arg}"


def above_signature(params: tuple[ast.Param, ...]) -> Type:
    ok = len(params) <= 2 and all(isinstance(p, int | float) for p in params)
    if not ok or (len(params) == 2 and params[1] <= 0):
        raise ValueError("takes a threshold and, optionally, a positive sharpness: "
                         "above[0.5] or above[0.5, 4]; bare `above` learns both")
    return parse_type("Float -> Bool")


def features_signature(params: tuple[ast.Param, ...]) -> Type:
    if len(params) != 2 or not all(isinstance(p, int) for p in params) or params[0] < 2 \
            or params[1] < 0:
        raise ValueError("takes a width and a seed, e.g. features[36, 0]")
    return parse_type(f"a -> Vec[{params[0]}]")


def optional_positive(what: str, type_text: str, default: str, extra: str = ""):
    """`name` or `name[v]` (v > 0; `extra`: a second, whole number of at least 1)."""
    def signature(params: tuple[ast.Param, ...]) -> Type:
        numbers = all(isinstance(p, int | float) for p in params)
        ok = numbers and len(params) <= (2 if extra else 1) and all(p > 0 for p in params)
        if not ok or (len(params) == 2 and not isinstance(params[1], int)):
            more = f" and, optionally, {extra}" if extra else ""
            raise ValueError(f"takes an optional positive {what}{more} (default {default})")
        return parse_type(type_text)
    return signature


def grid_signature(params: tuple[ast.Param, ...]) -> Type:
    if len(params) != 2 or not all(isinstance(p, int) and 1 <= p <= 1024 for p in params):
        raise ValueError("takes the grid's height and width, e.g. grid[3, 3]")
    return parse_type(f"List[Float] -> Image[{params[0]},{params[1]}]")


def encodable_input(t: Type, params) -> str | None:
    (arg,), _ = uncurry(t)
    ok = is_tensor(arg) or (isinstance(arg, ListT) and is_tensor(arg.elem))
    return None if ok else f"works on tensors and lists of tensors, not {arg}"


# name: (type, check, cost, learnable)
SUMMARY = ("List[a] -> a", result_tensor(1), 1.0, False)
SERIES_SUMMARY = ("List[a] -> a", tensor_elems, 1.0, False)
BUILTINS = {
    "map": ("(a -> b) -> List[a] -> List[b]", map_result, 1.0, False),
    "filter": ("(a -> Bool) -> List[a] -> List[a]", None, 1.0, False),
    "fold": ("(b -> a -> b) -> b -> List[a] -> b", result_tensor(3), 1.5, False),
    "window": (window_signature, map_result, 1.5, False),
    "mean": SUMMARY, "sum": SUMMARY, "std": SUMMARY, "last": SUMMARY,
    "length": ("List[a] -> Float", None, 1.0, False),
    "count": ("(a -> Bool) -> List[a] -> Float", None, 1.0, False),
    "compose": ("(b -> c) -> (a -> b) -> a -> c", None, 1.0, False),
    "ite": ("Bool -> a -> a -> a", result_tensor(3), 1.5, False),
    "add": ("a -> a -> a", result_tensor(2), 1.0, False),
    "sub": ("a -> a -> a", result_tensor(2), 1.0, False),
    "mul": ("a -> a -> a", result_tensor(2), 1.0, False),
    "relu": ("a -> a", result_tensor(1), 1.0, False),
    "gt": ("Float -> Float -> Bool", None, 1.0, False),
    "not": ("Bool -> Bool", None, 1.0, False),
    "prob": ("Bool -> Float", None, 1.0, False),
    "softargmax": ("Vec[n] -> Float", None, 1.0, False),
    "affine": ("a -> b", all_tensors, 1.0, True),
    "select": (select_signature, select_bounds, 0.5, False),
    "nn": ("a -> b", encodable_function, 2.0, True),
    "interval": (interval_signature, tensor_elems, 0.5, True),
    "diff": ("List[a] -> List[a]", tensor_elems, 1.0, False),
    "slope": SERIES_SUMMARY, "max": SERIES_SUMMARY, "min": SERIES_SUMMARY,
    "argmax": SERIES_SUMMARY,
    "shapelet": (shapelet_signature, None, 1.0, True),
    "paa": (parts_signature("parts", "paa[8]"), None, 1.0, False),
    "spectrum": (parts_signature("frequency bands", "spectrum[16]"), None, 1.0, False),
    "above": (above_signature, None, 0.5, True),
    "features": (features_signature, encodable_input, 1.0, False),
    # prototype series (prototypes.py): fixed once fitted, so not `learnable` (cached)
    "prototypes": (prototypes_signature(False), known_channels, 1.0, False),
    "prototypes_dtw": (prototypes_signature(True), known_channels, 1.0, False),
    "prototypes_dtw_i": (prototypes_signature(True), known_channels, 1.0, False),
    "znorm": ("List[a] -> List[a]", tensor_elems, 1.0, False),
    "softmin": (optional_positive("temperature", "Vec[n] -> Vec[n]", "0.3"), None, 1.0, False),
    # differentiable algorithms (algorithms.py)
    "and": ("Bool -> Bool -> Bool", None, 1.0, False),
    "or": ("Bool -> Bool -> Bool", None, 1.0, False),
    "all": ("(a -> Bool) -> List[a] -> Bool", None, 1.0, False),
    "any": ("(a -> Bool) -> List[a] -> Bool", None, 1.0, False),
    "sort": (optional_positive("steepness", "List[Float] -> List[Float]", "10"), None, 1.0,
             False),
    "rank": (optional_positive("steepness", "List[Float] -> List[Float]", "10"), None, 1.0,
             False),
    "grid": (grid_signature, None, 0.5, False),
    "shortest_path": (optional_positive("temperature", "Image[h,w] -> Float", "0.1",
                                        "a number of sweeps"), None, 1.5, False),
    "path": (optional_positive("temperature", "Image[h,w] -> Image[h,w]", "0.1",
                               "a number of sweeps"), None, 1.5, False),
}
