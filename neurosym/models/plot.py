"""`neurosym show MODEL --plot FILE.png`: a picture of what a saved program reads.

- Series programs: the mean series of each class (one panel per channel, at most four),
  with the intervals the program reads shaded and, for each shapelet pattern, its best
  match on each class mean drawn over it, and each prototype in its class's colour.
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


def _series(plt, model: Model, x: Seq, labels: list[str]):
    channels = min(x.data.shape[2], 4)
    fig, axes = plt.subplots(channels, 1, figsize=(8, 2.6 * channels), squeeze=False)
    steps = x.data.shape[1]
    groups = _by_class(labels)
    means = {}
    for c, idx in groups.items():
        w = x.weights[idx].unsqueeze(2)
        means[c] = (x.data[idx] * w).sum(0) / w.sum(0).clamp_min(1e-9)  # (L, C)
    for ch in range(channels):
        ax = axes[ch][0]
        for c, mean in means.items():
            ax.plot(mean[:, ch].numpy(), label=c)
        for _, site in _parts(model, "interval"):
            if site.params:
                p = site.params[0]
                ax.axvspan(p.start * (steps - 1), p.stop * (steps - 1), alpha=0.15,
                           color="grey")
        names = model.record.get("input_names")
        ax.set_ylabel(names[ch] if names and ch < len(names) else f"channel {ch}")
    for _, site in _parts(model, "shapelet"):
        _shapelets(axes, site.module, means, channels)
    for name in ("prototypes", "prototypes_dtw", "prototypes_dtw_i"):
        for _, site in _parts(model, name):
            _prototypes(axes, site.module, list(means), model.classes, steps, channels)
    axes[0][0].legend(loc="upper right", fontsize="small")
    axes[0][0].set_title(f"{model.record.get('task')}: {model.program}"[:110], fontsize=9)
    axes[-1][0].set_xlabel("time step (shaded: intervals read; dashed: shapelets at their "
                           "best match; dotted: prototypes, by class)", fontsize="small")
    return fig


def _prototypes(axes, module, order: list[str], classes, steps: int, channels: int) -> None:
    """Each distinct prototype, stretched over the steps, in the colour of the class it
    was taken from (the class means are drawn in legend order)."""
    seen = set()
    for pattern, c in zip(module.pattern, module.origin.tolist()):
        if (key := tuple(pattern.flatten().tolist())) in seen:
            continue
        seen.add(key)
        label = f"class {classes[c]}" if classes and 0 <= c < len(classes) else None
        color = f"C{order.index(label)}" if label in order else "black"
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
