"""`neurosym show MODEL --plot FILE.png`: a picture of what a saved program reads.

- Series programs: the mean series of each class (one panel per channel), with the
  intervals the program reads shaded and, for each shapelet pattern, its best match on
  each class mean drawn over it, and each prototype in its class's colour; then what each
  reader passes on to the map that weighs it (`std xs`: each channel's spread; `paa[8]
  xs`: the 8 part means; prototypes: the distance to each), by class (mean and spread);
  then each distinct prototype beside the series nearest to it, in their classes' colours
  (a prototype whose neighbours are of other classes is a weak vote).
- Programs over feature vectors: for each `above` test of one feature, that feature's
  distribution per class with the threshold; else the weights of the first affine map.
Needs matplotlib (`pip install "neurosym-synth[plot]"`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from neurosym.interp.values import Seq
from neurosym.lang import ast
from neurosym.lang.errors import NeurosymError
from neurosym.lang.printer import show
from neurosym.lang.types import ListT, Vec
from neurosym.models import Model
from neurosym.tasks.assemble import class_name


def plot_data(model: Model, data: str | None):
    """Labelled inputs to draw over: a data file's, else the training split of the task
    the model was trained on (when it can be found by name)."""
    if data is not None:
        from neurosym.tasks.files import read_examples

        found = read_examples(data, Path(), model.record.get("data", {}),
                              series=isinstance(model.input_type, ListT))
        if model.record["loss"] == "mse":
            return model.inputs(found), _thirds(found.y.astype(float).tolist())
        return model.inputs(found), [f"class {class_name(v)}" for v in found.y]
    from neurosym.tasks.spec import load_task

    try:
        task = load_task(str(model.record.get("task")))
    except NeurosymError as err:
        raise NeurosymError(f"--plot needs data to draw over: give --data FILE (the task "
                            f"{model.record.get('task')!r} cannot be loaded: {err.message})"
                            ) from None
    if task.classes is None:  # regression: targets back in the data's units
        norm = task.normalization
        y = norm.restore(task.train.y) if norm is not None else task.train.y
        return task.train.x, _thirds(y.tolist())
    names = task.classes
    return task.train.x, [f"class {names[i]}" for i in task.train.y.long().tolist()]


def _thirds(targets: list[float]) -> list[str]:
    """Real-valued targets as three groups of about equal size (low, middle, high), so
    that a regression model is drawn as a classifier is, group by group."""
    low, high = torch.tensor(targets, dtype=torch.float64).quantile(
        torch.tensor([1 / 3, 2 / 3], dtype=torch.float64)).tolist()
    return [f"low target (< {low:.4g})" if v < low else f"high target (> {high:.4g})"
            if v > high else f"middle target ({low:.4g} to {high:.4g})" for v in targets]


_THIRDS = {"low": 0, "middle": 1, "high": 2}  # legend order of the target groups


def plot_model(model: Model, x, labels: list[str], path: Path) -> Path:
    """Draw `model` over labelled inputs `x` (a batched value, normalized as the model's
    training data was) into `path`."""
    from neurosym.library.transfer import require_matplotlib

    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = model.input_type
    if isinstance(t, ListT) and isinstance(t.elem, Vec):
        fig = _series(plt, model, x, labels)
    elif isinstance(t, Vec):
        fig = _features(plt, model, x, labels)
    else:
        raise NeurosymError(f"--plot draws series and feature-vector programs, not {t} ones")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _by_class(labels: list[str]) -> dict[str, torch.Tensor]:
    names = sorted(set(labels), key=lambda c: (_THIRDS.get(c.split()[0], 3), c))
    return {c: torch.tensor([i for i, v in enumerate(labels) if v == c]) for c in names}


def _parts(model: Model, name: str) -> list:
    """(node, site) of every use of primitive `name`, in reading order."""
    sites = model.module._sites
    return [(n, sites[id(n)]) for n in ast.walk(model.module.term)
            if isinstance(n, ast.Var) and n.name == name and id(n) in sites]


MAX_READERS = 4  # reader panels drawn (the first in reading order)
MAX_NEAREST = 6  # prototypes drawn beside their nearest series
NEIGHBOURS = 5  # series drawn beside each prototype


def _series(plt, model: Model, x: Seq, labels: list[str]):
    channels = x.data.shape[2]
    readers = readers_of(model, x)[:MAX_READERS]
    groups = _by_class(labels)
    nearest = _nearest_panels(model, x, labels, list(groups))
    rows = channels + len(readers) + len(nearest)
    height = 2.6 if channels <= 4 else 1.7
    fig, axes = plt.subplots(rows, 1, figsize=(8, height * rows), squeeze=False)
    steps = x.data.shape[1]
    means = {}
    for c, idx in groups.items():
        w = x.weights[idx].unsqueeze(2)
        means[c] = (x.data[idx] * w).sum(0) / w.sum(0).clamp_min(1e-9)  # (L, C)
    names = model.record.get("input_names")
    for ch in range(channels):
        ax = axes[ch][0]
        for c, mean in means.items():
            ax.plot(mean[:, ch].numpy(), label=c)
        for _, site in _parts(model, "interval"):
            if site.params:
                p = site.params[0]
                ax.axvspan(p.start * (steps - 1), p.stop * (steps - 1), alpha=0.15,
                           color="grey")
        ax.set_ylabel(names[ch] if names and ch < len(names) else f"channel {ch}",
                      fontsize="small")
    for _, site in _parts(model, "shapelet"):
        _shapelets(axes, site.module, means, channels)
    for _, site in _prototype_parts(model):
        _prototypes(axes, site.module, list(means), model.classes, steps, channels)
    axes[0][0].legend(loc="upper right", fontsize="small")
    axes[0][0].set_title(f"{model.record.get('task')}: {model.program}"[:110], fontsize=9)
    axes[channels - 1][0].set_xlabel(
        "time step; class means (shaded: intervals read; dashed: shapelets at their best "
        "match; dotted: prototypes, by class)", fontsize="small")
    for i, (text, entries, values) in enumerate(readers):
        _reader(axes[channels + i][0], text, entries, values, groups)
    for i, (pattern, label, neighbours) in enumerate(nearest):
        ax = axes[channels + len(readers) + i][0]
        where = torch.linspace(0, steps - 1, pattern.shape[0]).numpy()
        for series, color in neighbours:
            for ch in range(channels):
                ax.plot(series[:, ch].numpy(), linewidth=0.8, color=color, alpha=0.6)
        for ch in range(channels):
            ax.plot(where, pattern[:, ch].numpy(), linestyle=":", linewidth=2,
                    color=_colour(label, list(groups)))
        ax.set_ylabel(f"a prototype of {label}", fontsize="x-small")
        ax.set_title(f"a prototype (dotted) and the {NEIGHBOURS} series nearest to it (in "
                     "their classes' colours)", fontsize=8)
    return fig


def readers_of(model: Model, x) -> list[tuple[str, list[str], torch.Tensor]]:
    """What each `affine` map of the program is given, evaluated on `x` by the model's
    own parts: (the argument as printed, a name for each entry, values [B, k]). Maps
    applied inside a function (`map affine xs`) or to something that reads more than the
    input are left out."""
    from neurosym.models.explain import _Inputs, _part_names, applications

    term = model.module.term
    if not isinstance(term, ast.Lam):
        return []
    applied = applications(term)
    inputs = _Inputs(model.record.get("input_names"), term)
    seen, out = set(), []
    rows = x.data.shape[0] if isinstance(x, Seq) else len(x)
    for node, _ in _parts(model, "affine"):
        arg = (applied.get(id(node)) or (None,))[0]
        if not _reads_input_alone(model, arg):
            continue
        text = show(arg)
        if text in seen:
            continue
        seen.add(text)
        with torch.no_grad():
            value = model.module.evaluate(arg, {term.param: x}, rows)
        if not isinstance(value, torch.Tensor):
            continue
        value = value.reshape(rows, -1).float()
        entries = _part_names(arg, short=True) or inputs.named((arg,)) \
            or _prototype_names(model, arg)
        if not entries or len(entries) != value.shape[1]:
            entries = [str(i) for i in range(value.shape[1])]
        out.append((text, entries, value))
    return out


def _reads_input_alone(model: Model, arg: ast.Term | None) -> bool:
    """Whether `arg` (a sub-term of the program `\\x -> ...`) reads no name but x and
    primitives: it can be evaluated on the input alone."""
    return arg is not None and not (ast.free_names(arg) - {model.module.term.param}
                                    - _primitive_names(model, arg))


def _primitive_names(model: Model, t: ast.Term) -> set[str]:
    sites = model.module._sites
    return {n.name for n in ast.walk(t) if isinstance(n, ast.Var) and id(n) in sites}


def _prototype_names(model: Model, arg: ast.Term) -> list[str] | None:
    """For distances to prototypes, each entry named by the class it was taken from."""
    found = [site for n, site in _prototype_parts(model) if any(n is m for m in ast.walk(arg))]
    if len(found) != 1:
        return None
    classes = model.classes or []
    return [f"prototype {i} ({classes[c] if 0 <= c < len(classes) else c})"
            for i, c in enumerate(found[0].module.origin.tolist())]


def _reader(ax, text: str, entries: list[str], values: torch.Tensor,
            groups: dict[str, torch.Tensor]) -> None:
    """Per class, the mean of each entry with its spread (one standard deviation)."""
    where = torch.arange(values.shape[1]).float()
    shift = 0.5 / (len(groups) + 1)
    for i, (c, idx) in enumerate(groups.items()):
        part = values[idx]
        mean = part.mean(0)
        spread = part.std(0) if len(idx) > 1 else torch.zeros_like(mean)
        ax.errorbar((where + (i - len(groups) / 2) * shift).numpy(), mean.numpy(),
                    yerr=spread.numpy(), fmt="o", markersize=3, capsize=2, color=f"C{i}",
                    label=c)
    short = [e if len(e) <= 24 else e[:23] + "…" for e in entries]
    ticks = range(0, len(short), max(1, len(short) // 16))
    ax.set_xticks(list(ticks), [short[t] for t in ticks], rotation=30, ha="right",
                  fontsize="x-small")
    ax.set_title(f"what the map reads: {text}"[:100] + " (per class: mean ± std)", fontsize=8)


def _prototype_parts(model: Model) -> list:
    return [part for name in ("prototypes", "prototypes_dtw", "prototypes_dtw_i")
            for part in _parts(model, name)]


def _nearest_panels(model: Model, x: Seq, labels: list[str], order: list[str]) -> list:
    """(prototype [m, n], its class, [(series [L, n], colour)]) for the first distinct
    prototypes of the program's first prototype part and the series nearest to each (not
    the series it was taken from), as that part reads them (z-normalized, if the program
    says `znorm`), coloured as their class's mean (`order`: the classes as the legend
    lists them)."""
    parts = _prototype_parts(model)
    if not parts:
        return []
    node, site = parts[0]
    module = site.module
    x = _read_by(model, node, x)
    with torch.no_grad():
        distance = module._distances(x)  # (B, k)
    out = []
    for j, pattern, c in _distinct(module)[:MAX_NEAREST]:
        column = distance[:, j]
        near = [i for i in column.argsort().tolist() if column[i] > 1e-6][:NEIGHBOURS]
        neighbours = [(x.data[i, :int(x.weights[i].sum())], _colour(labels[i], order))
                      for i in near]
        out.append((pattern, _class_label(model.classes, c) or f"class {c}", neighbours))
    return out


def _read_by(model: Model, node: ast.Var, x: Seq) -> Seq:
    """The series as the part at `node` reads them (`znorm xs`, one channel of it), where
    its argument reads the input alone; else the series as they are."""
    from neurosym.models.explain import applications

    term = model.module.term
    arg = (applications(term).get(id(node)) or (None,))[0]
    if not isinstance(term, ast.Lam) or not _reads_input_alone(model, arg):
        return x
    with torch.no_grad():
        seen = model.module.evaluate(arg, {term.param: x}, x.data.shape[0])
    return seen if isinstance(seen, Seq) else x


def _distinct(module) -> list[tuple[int, torch.Tensor, int]]:
    """(slot, pattern, class taken from) of each distinct prototype (slots beyond the
    caps repeat them)."""
    seen, out = set(), []
    for j, (pattern, c) in enumerate(zip(module.pattern, module.origin.tolist())):
        if (key := tuple(pattern.flatten().tolist())) not in seen:
            seen.add(key)
            out.append((j, pattern, c))
    return out


def _class_label(classes, c: int) -> str | None:
    """The legend's label of class index `c` (as `plot_data` names them), if it has one."""
    return f"class {classes[c]}" if classes and 0 <= c < len(classes) else None


def _colour(label: str | None, order: list[str]) -> str:
    return f"C{order.index(label)}" if label in order else "black"


def _prototypes(axes, module, order: list[str], classes, steps: int, channels: int) -> None:
    """Each distinct prototype, stretched over the steps, in the colour of the class it
    was taken from (the class means are drawn in legend order)."""
    for _, pattern, c in _distinct(module):
        color = _colour(_class_label(classes, c), order)
        where = torch.linspace(0, steps - 1, pattern.shape[0]).numpy()
        for ch in range(channels):
            axes[ch][0].plot(where, pattern[:, ch].numpy(), linestyle=":", linewidth=1.2,
                             color=color, alpha=0.9)


def _shapelets(axes, shapelet, means: dict, channels: int) -> None:
    """Each pattern at its best match on each class mean."""
    for mean in means.values():
        seq = Seq(mean.unsqueeze(0), torch.ones(1, mean.shape[0]))
        with torch.no_grad():
            best = shapelet.distances(seq)[0].argmin(1)  # (m,) window start per pattern
        for i, start in enumerate(best.tolist()):
            pattern = shapelet.pattern[i].detach()
            steps = range(start, start + pattern.shape[0])
            for ch in range(channels):
                axes[ch][0].plot(list(steps), pattern[:, ch].numpy(), linestyle="--",
                                 linewidth=1, color="black", alpha=0.5)


def _features(plt, model: Model, x: torch.Tensor, labels: list[str]):
    from neurosym.models.explain import applications, feature_name, selected_feature

    applied = applications(model.module.term)
    shown = []
    for node, site in _parts(model, "above"):
        feature = selected_feature(applied.get(id(node), (None,))[0])
        if feature is not None:
            shown.append((feature, site.params[0] if site.params else 0.0))
    if shown:
        fig, axes = plt.subplots(len(shown), 1, figsize=(7, 2.6 * len(shown)), squeeze=False)
        for ax, (feature, threshold) in zip((a[0] for a in axes), shown, strict=False):
            for c, idx in _by_class(labels).items():
                ax.hist(x[idx, feature].numpy(), bins=20, alpha=0.5, label=c)
            ax.axvline(threshold, color="black", linestyle="--", label="threshold")
            ax.set_xlabel(f"{feature_name(model.record.get('input_names'), feature)} "
                          "(standardized)")
        axes[0][0].legend(fontsize="small")
        return fig
    affine = next((s.module for _, s in _parts(model, "affine")), None)
    if affine is None:
        raise NeurosymError("nothing to draw: the program has no threshold and no affine map")
    fig, ax = plt.subplots(figsize=(8, 3))
    weights = affine.linear.weight.detach()
    classes = model.classes if model.classes and len(model.classes) == len(weights) else None
    for row, values in enumerate(weights):
        ax.bar([i + row / (len(weights) + 1) for i in range(len(values))], values.numpy(),
               width=1 / (len(weights) + 1),
               label=f"class {classes[row]}" if classes else
               "the prediction" if len(weights) == 1 else f"output {row}")
    names = model.record.get("input_names")
    if names and len(names) == weights.shape[1]:  # the affine map reads the input itself
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize="small")
    ax.set_xlabel("input feature (standardized)")
    ax.set_ylabel("weight")
    ax.legend(fontsize="small")
    return fig
