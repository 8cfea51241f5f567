"""UCR/UEA benchmark (issue 10): for every classification set bundled with aeon, NEAR with
A* over several seeds (mean ± std of test accuracy), beside 1-NN Euclidean, 1-NN DTW
(aeon's KNeighborsTimeSeriesClassifier), the end-to-end GRU, the majority class, and the
InceptionTime / HC2 means over 30 resamples from the results files aeon ships.

    python bench/ucr.py                                  # every set, 300 s, seeds 0 1 2
    python bench/ucr.py --tasks gunpoint arrow_head --seeds 0 --time-limit 120

The 1-NN baselines use the whole official training split (train + validation), as the
published figures do; the search sees the same examples, split into train and validation.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from neurosym.interp.values import Seq, concat
from neurosym.resources import read_toml, tasks_dir
from neurosym.search import synthesize
from neurosym.tasks.sources import aeon_data_dir
from neurosym.tasks.spec import load_task

sys.path.insert(0, str(Path(__file__).parent))
from baselines import FINALISTS, gru_baseline, selection_regret  # noqa: E402


def aeon_tasks() -> dict[str, str]:
    """Bundled task name -> aeon data set, for every task read from aeon."""
    found = {}
    for path in sorted(tasks_dir().glob("*.toml")):
        data = read_toml(path, ValueError, "task").get("data", {})
        if data.get("source") == "aeon":
            found[path.stem] = data["dataset"]
    return found


def published(dataset: str) -> dict[str, float]:
    """Mean accuracy over 30 resamples, from the results files aeon ships (univariate)."""
    folder = aeon_data_dir().parent.parent / "testing" / "example_results_files" / \
        "classification" / "accuracy"
    means = {}
    for name in ("InceptionTime", "HC2"):
        path = folder / f"{name}_accuracy.csv"
        if not path.is_file():
            continue
        with path.open() as f:
            for row in csv.reader(f):
                if row and row[0] == dataset:
                    means[name] = statistics.fmean(float(v) for v in row[1:] if v)
    return means


def _series(x: Seq) -> list[np.ndarray]:
    """Each series as (channels, its own length)."""
    lengths = (x.weights > 0).sum(1).tolist()
    return [x.data[i, :n].T.numpy().astype(np.float64) for i, n in enumerate(lengths)]


def one_nn(task, distance: str) -> float:
    from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier

    train_x = _series(concat(task.train.x, task.val.x))
    train_y = np.concatenate([task.train.y.numpy(), task.val.y.numpy()])
    test_x = _series(task.test.x)
    if len({s.shape[1] for s in train_x + test_x}) == 1:  # equal length: a 3-D array
        train_x, test_x = np.stack(train_x), np.stack(test_x)
    elif distance == "euclidean":  # unequal length: pad with zeros to the longest
        width = max(s.shape[1] for s in train_x + test_x)
        pad = lambda xs: np.stack([np.pad(s, ((0, 0), (0, width - s.shape[1])))  # noqa: E731
                                   for s in xs])
        train_x, test_x = pad(train_x), pad(test_x)
    knn = KNeighborsTimeSeriesClassifier(n_neighbors=1, distance=distance)
    knn.fit(train_x, train_y)
    return float((knn.predict(test_x) == task.test.y.numpy()).mean())


def search(name: str, seed: int, time_limit: float, options: dict) -> dict:
    start = time.perf_counter()
    options = {"top_k": FINALISTS, **options}
    result = synthesize(name, algorithm="astar", time_limit=time_limit, seed=seed, **options)
    best = result.best
    regret, random_pick = selection_regret([p.evaluation.test for p in result.programs]) \
        if best else (None, None)
    return {"seed": seed, "program": best.printed if best else None,
            "regret": regret, "random_pick_regret": random_pick,
            "test": best.evaluation.test if best else None,
            "trivial": best.evaluation.trivial if best else None,
            "cv": None if best is None or best.cv is None else [best.cv.mean, best.cv.std],
            "seconds": time.perf_counter() - start, "trained": result.stats.trained,
            "dropped": [list(pair) for pair in result.dropped]}  # finalists not fitted, why


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=None, help="default: every aeon set")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--time-limit", type=float, default=300.0)
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--no-gru", action="store_true",
                        help="skip the GRU baseline (200 epochs: minutes on long series)")
    parser.add_argument("--set", dest="options", action="append", default=[],
                        metavar="NAME=VALUE", help="a search option, e.g. cv_folds=10 (repeatable)")
    args = parser.parse_args(argv)
    options = dict(option.split("=", 1) for option in args.options)
    options = {name: json.loads(value) for name, value in options.items()}
    sets = aeon_tasks()
    rows = []
    for name in args.tasks or list(sets):
        task = load_task(name)
        row = {"task": name, "dataset": sets[name], "ed": one_nn(task, "euclidean"),
               "dtw": one_nn(task, "dtw"),
               "gru": None if args.no_gru else gru_baseline(task).test,
               **published(sets[name]), "runs": []}
        print(f"\n== {name}: 1-NN ED {row['ed']:.3f}  DTW {row['dtw']:.3f}  "
              f"GRU {_figure(row['gru'])}", flush=True)
        for seed in args.seeds:
            run = search(name, seed, args.time_limit, options)
            row["runs"].append(run)
            print(f"seed {seed}: test {run['test']:.3f}  {run['seconds']:.0f} s  "
                  f"{run['trained']} nodes  regret {run['regret']:.3f} (random pick "
                  f"{run['random_pick_regret']:.3f})  {run['program']}"
                  + (f"  ({len(run['dropped'])} finalists not fitted)" if run["dropped"] else ""),
                  flush=True)
        row["majority"] = load_task(name).test.y.bincount().max().item() / len(task.test)
        rows.append(row)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
    table(rows)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(rows: list[dict]) -> None:
    print(f"\n{'task':26} {'program':>15} {'1-NN ED':>8} {'1-NN DTW':>8} {'GRU':>6} "
          f"{'majority':>8} {'Incept.':>7} {'HC2':>6} {'regret':>7} {'random':>7}")
    for r in rows:
        tests = [run["test"] for run in r["runs"] if run["test"] is not None]
        std = statistics.stdev(tests) if len(tests) > 1 else 0.0
        prog = f"{statistics.fmean(tests):.3f} ± {std:.3f}" if tests else "-"
        pub = [f"{r[k]:.3f}" if k in r else "-" for k in ("InceptionTime", "HC2")]
        regrets = [statistics.fmean(run[k] for run in r["runs"] if run[k] is not None)
                   for k in ("regret", "random_pick_regret")]
        print(f"{r['task']:26} {prog:>15} {r['ed']:8.3f} {r['dtw']:8.3f} {_figure(r['gru']):>6} "
              f"{r['majority']:8.3f} {pub[0]:>7} {pub[1]:>6} {regrets[0]:7.3f} "
              f"{regrets[1]:7.3f}")
    runs = [run for r in rows for run in r["runs"] if run["regret"] is not None]
    if runs:
        print(f"selection regret over {len(runs)} runs: "
              f"{statistics.fmean(run['regret'] for run in runs):.3f} (random pick among the "
              f"same finalists: {statistics.fmean(run['random_pick_regret'] for run in runs):.3f})")


if __name__ == "__main__":
    main(sys.argv[1:])
