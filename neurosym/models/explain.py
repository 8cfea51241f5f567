"""What each learned part of a saved model reads, in plain terms: the inputs an affine map
weighs most, the part of the series an interval keeps, a threshold in the data's own
units, a shapelet's pattern."""

from __future__ import annotations

from typing import Any

from neurosym.lang import ast
from neurosym.lang.printer import show


def describe(model) -> list[dict[str, Any]]:
    """One entry per learned or parameterised part of the program's entry, in reading order:
    `part` (the primitive as printed), `reads` (a sentence), and for shapelets `sketch`."""
    module = model.module
    norm = model.record.get("normalization")
    inputs = _Inputs(model.record.get("input_names"), module.term)
    applied = applications(module.term)
    found = []
    for node in ast.walk(module.term):
        site = module._sites.get(id(node))
        if site is None:
            continue
        args = applied.get(id(node), ())
        arg = show(args[0]) if args else "the input"
        name = node.name
        if name == "affine" and site.module is not None:
            parts = (_part_names(args[0]) if args else None) or inputs.named(args)
            found.append({"part": f"affine ({arg})",
                          "reads": _weights(site.module, arg, names=parts)})
        elif name == "above":
            found.append({"part": show(node), "reads": _threshold(site, args, norm, inputs)})
        elif name == "interval" and site.params:
            p = site.params[0]
            found.append({"part": show(node), "reads": f"the part of each series from "
                          f"{p.start:.0%} to {p.stop:.0%} of its length"})
        elif name.startswith("prototypes") and site.module is not None:
            told = site.module.explain(list(model.classes or []) or None)
            found.append({"part": told["part"], "reads": "distance to each prototype, the "
                          "series resampled to its length (distinct ones, by the class "
                          "they were taken from)", "sketch": told["sketch"],
                          "prototypes": told["pattern"], "classes": told["classes"]})
        elif name == "shapelet" and site.module is not None:
            told = site.module.explain()
            found.append({"part": told["part"], "reads": "distance to the nearest match of "
                          "each pattern (sparklines, low to high)", "sketch": told["sketch"]})
    return found


def _weights(affine, arg: str, top: int = 3, names: list[str] | None = None) -> str:
    """The inputs with the largest weights (summed over outputs, by magnitude, on inputs
    standardized as the map reads them, so that they compare), by index or by `names`;
    one input's scale per output is given in its own units."""
    if names is not None and len(names) != affine.linear.weight.shape[1]:
        names = None
    if affine.linear.weight.shape[1] == 1:
        scales = affine.effective()[0][:, 0].tolist()
        return f"{names[0] if names else arg} scaled per output: " + ", ".join(
            f"{w:+.3g}" for w in scales)
    strength = affine.linear.weight.detach().abs().sum(0)
    order = strength.argsort(descending=True)[:top].tolist()
    share = strength / strength.sum().clamp_min(1e-12)
    if names:
        return "weighs most " + ", ".join(f"{names[i]} ({share[i]:.0%})" for i in order)
    return f"weighs most inputs {', '.join(f'{i} ({share[i]:.0%})' for i in order)} of {arg}"


def _part_names(arg, short: bool = False) -> list[str] | None:
    """For `paa[k] xs`, each input named by the part of the series it averages; for
    `spectrum[k] xs`, by the frequency band it measures (`short`: the part or band alone,
    for an axis)."""
    if not (isinstance(arg, ast.App) and isinstance(arg.fn, ast.Var)
            and arg.fn.name in ("paa", "spectrum") and arg.fn.params):
        return None  # other parameters (`select[0:3]`) are not counts
    k = int(arg.fn.params[0])
    if arg.fn.name == "paa":
        parts = [f"{i / k:.0%}-{(i + 1) / k:.0%}" for i in range(k)]
        return parts if short else [f"the mean over {p} of the series" for p in parts]
    bands = [f"{i / (2 * k):.3g}-{(i + 1) / (2 * k):.3g}" for i in range(k)]
    return bands if short else [f"the share of variance at {b} cycles per step" for b in bands]


class _Inputs:
    """The names of the input's features (a CSV's columns) or of a series' channels, and
    which arguments read them one to one: the input itself, `select[...]` of it, and, for
    series, a per-channel summary (`mean xs`, `std (interval[0.2:0.5] xs)`)."""

    SUMMARIES = frozenset({"argmax", "last", "max", "mean", "min", "slope", "std", "sum"})
    KEEP_CHANNELS = frozenset({"interval", "diff"})

    def __init__(self, names: list[str] | None, term: ast.Term) -> None:
        self.names = names
        self.var = term.param if isinstance(term, ast.Lam) else None

    def named(self, args: tuple) -> list[str] | None:
        if not self.names:
            return None
        if not args or self._is_input(args[0]):  # (no args: the entry is `affine`)
            return [repr(n) for n in self.names]
        arg = args[0]
        if not (isinstance(arg, ast.App) and isinstance(arg.fn, ast.Var) and arg.args):
            return None
        name, params, inner = arg.fn.name, arg.fn.params, arg.args[-1]
        if name == "select" and params and self._is_input(inner):
            p = params[0]
            picked = self.names[p.start:p.stop] if isinstance(p, ast.Slice) else [
                self.names[p]] if isinstance(p, int) and p < len(self.names) else None
            return [repr(n) for n in picked] if picked else None
        if name in self.SUMMARIES and self._channels(inner):
            return [f"{name} of {n!r}" for n in self.names]
        return None

    def _is_input(self, t: ast.Term) -> bool:
        return isinstance(t, ast.Var) and t.name == self.var and self.var is not None

    def _channels(self, t: ast.Term) -> bool:
        """Whether `t` is the input series, or a part or difference of it."""
        while (isinstance(t, ast.App) and isinstance(t.fn, ast.Var)
               and t.fn.name in self.KEEP_CHANNELS and len(t.args) == 1):
            t = t.args[0]
        return self._is_input(t)

    def feature(self, i: int) -> str:
        return feature_name(self.names, i)


def feature_name(names: list[str] | None, i: int) -> str:
    """Input feature `i` by its name (a CSV's column), else by its index."""
    return repr(names[i]) if names and i < len(names) else f"feature {i}"


def _threshold(site, args: tuple, norm: dict | None, inputs: _Inputs) -> str:
    threshold, sharpness = (list(site.params) + [4.0])[:2] if site.params else \
        site.module.values()
    text = f"true when the value is above {threshold:g} (sharpness {sharpness:g})"
    arg = args[0] if args else None
    feature = selected_feature(arg)
    if feature is not None and norm and feature < len(norm["mean"]):
        raw = threshold * norm["std"][feature] + norm["mean"][feature]
        text += f"; in the data's units: {inputs.feature(feature)} above {raw:.4g}"
    return text


def applications(term: ast.Term) -> dict[int, tuple[ast.Term, ...]]:
    """The arguments each function sub-term is applied to, by the function's id."""
    return {id(n.fn): n.args for n in ast.walk(term) if isinstance(n, ast.App)}


def selected_feature(arg) -> int | None:
    """i, when the argument is `select[i] x`."""
    if isinstance(arg, ast.App) and isinstance(arg.fn, ast.Var) and arg.fn.name == "select":
        p = arg.fn.params[0] if arg.fn.params else None
        return p if isinstance(p, int) else None
    return None
