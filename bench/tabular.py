"""Tabular benchmark (issue 11): programs over feature vectors on scikit-learn's bundled
data sets, beside logistic regression (ridge for regression), a depth-3 decision tree and
gradient boosting, on the same splits, over several seeds.

    python bench/tabular.py                                   # every set, 120 s, seeds 0 1 2
    python bench/tabular.py --sets iris wine --seeds 0 --time-limit 60
    python bench/tabular.py --sets penguins                   # needs `pip install palmerpenguins`

`penguins` is a table as people have them (the `palmerpenguins` wheel's CSV, 344 rows):
two columns of names and missing values, read as `neurosym task init` reads them
(categories as 0/1 columns; missing values filled with the column's mean of the training
part, for the program and the baselines alike).

Each seed draws its own stratified 70/30 train/test split; the search sees the training
part only (it carves its validation share from it), as the baselines do. Programs read
standardized features (z-scores of the training part): the legend under each program
names its features and gives its thresholds in the data's own units.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn import datasets
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils import Bunch

from neurosym import Task
from neurosym.search import synthesize
from neurosym.train import predict

sys.path.insert(0, str(Path(__file__).parent))
from baselines import FINALISTS, selection_regret  # noqa: E402


def load_penguins():
    try:
        import palmerpenguins
    except ImportError:
        sys.exit("the penguins set needs the palmerpenguins wheel: pip install palmerpenguins")
    from neurosym.tasks.files import read_examples
    from neurosym.tasks.tables import find_categories

    path = str(Path(palmerpenguins.__file__).parent / "data" / "penguins.csv")
    params = {"target": "species", "missing": "mean"}
    params["categorical"] = find_categories(path, Path(), params)
    found = read_examples(path, Path(), params, series=False)
    return Bunch(data=np.stack(found.x), target=found.y, feature_names=list(found.columns))


SETS = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine,
        "iris": datasets.load_iris, "diabetes": datasets.load_diabetes,
        "penguins": load_penguins}
REGRESSION = {"diabetes"}


def baselines(regression: bool, seed: int) -> dict:
    """Each behind a mean imputer (a no-op on sets without missing values), as the program
    reads missing values."""
    if regression:
        models = {"linear": make_pipeline(StandardScaler(), Ridge()),
                  "tree3": DecisionTreeRegressor(max_depth=3, random_state=seed),
                  "boosting": HistGradientBoostingRegressor(random_state=seed)}
    else:
        models = {"linear": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
                  "tree3": DecisionTreeClassifier(max_depth=3, random_state=seed),
                  "boosting": HistGradientBoostingClassifier(random_state=seed)}
    return {name: make_pipeline(SimpleImputer(), model) for name, model in models.items()}


def run(name: str, seed: int, time_limit: float) -> dict:
    bunch = SETS[name]()
    x, y = bunch.data, bunch.target
    regression = name in REGRESSION
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=seed, stratify=None if regression else y)
    row = {"seed": seed}
    for label, model in baselines(regression, seed).items():
        model.fit(x_train, y_train)
        row[label] = model.score(x_test, y_test)  # accuracy, or R² for regression
    task = Task.from_arrays(x_train, y_train, x_test, y_test, name=name, seed=seed,
                            regression=regression, missing="mean")
    start = time.perf_counter()
    result = synthesize(task, algorithm="astar", time_limit=time_limit, seed=seed,
                        top_k=FINALISTS)
    best = result.best
    tests = [r2_score(task.test.y.numpy(), predict(p.model, task.test.x).numpy())
             if regression else p.evaluation.test for p in result.programs]
    row["program"] = tests[0]
    row["regret"], row["random_pick_regret"] = selection_regret(tests)
    row.update(text=best.printed, size=best.size, trained=result.stats.trained,
               seconds=time.perf_counter() - start,
               legend=legend(best.printed, list(bunch.feature_names), task.normalization))
    return row


def legend(program: str, names: list[str], norm) -> list[str]:
    """What each `select[i]` reads, and each learned threshold in the feature's units."""
    lines = []
    for i in sorted({int(i) for i in re.findall(r"select\[(\d+)\]", program)}):
        lines.append(f"select[{i}] = {names[i]}")
    for t, i in re.findall(r"above\[(-?[\d.]+), [\d.]+\] \(select\[(\d+)\] x\)", program):
        raw = float(t) * norm.std[int(i)] + norm.mean[int(i)]
        lines.append(f"above[{t}, ...] on {names[int(i)]}: {names[int(i)]} > {raw:.4g}")
    return lines


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=list(SETS), choices=list(SETS))
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--time-limit", type=float, default=120.0)
    args = parser.parse_args(argv)
    table = []
    for name in args.sets:
        rows = []
        for seed in args.seeds:
            row = run(name, seed, args.time_limit)
            rows.append(row)
            print(f"{name} seed {seed}: program {row['program']:.3f} (size {row['size']}, "
                  f"{row['trained']} nodes, {row['seconds']:.0f} s)  linear "
                  f"{row['linear']:.3f}  tree3 {row['tree3']:.3f}  boosting "
                  f"{row['boosting']:.3f}  regret {row['regret']:.3f} (random pick "
                  f"{row['random_pick_regret']:.3f})\n    {row['text']}", flush=True)
            for line in row["legend"]:
                print(f"      {line}")
        table.append((name, rows))
    metric = {True: "R²", False: "accuracy"}
    print(f"\n{'set':14} {'metric':8} {'program':>15} {'size':>5} {'linear':>15} "
          f"{'tree3':>15} {'boosting':>15} {'regret':>7} {'random':>7}")
    for name, rows in table:
        cells = [_mean_std([r[k] for r in rows]) for k in ("program", "linear", "tree3",
                                                           "boosting")]
        size = statistics.fmean(r["size"] for r in rows)
        regrets = [statistics.fmean(r[k] for r in rows) for k in ("regret",
                                                                   "random_pick_regret")]
        print(f"{name:14} {metric[name in REGRESSION]:8} {cells[0]:>15} {size:5.1f} "
              f"{cells[1]:>15} {cells[2]:>15} {cells[3]:>15} {regrets[0]:7.3f} "
              f"{regrets[1]:7.3f}")


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {std:.3f}"


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main(sys.argv[1:])
