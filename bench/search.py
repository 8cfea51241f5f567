"""Search benchmark: NEAR with A*, IDDFS branch-and-bound and size-ordered enumeration on
planted-program tasks and on real UEA/UCR data, over several seeds, with an end-to-end GRU
on the same split printed beside each task.

    python bench/search.py                       # everything (long: see README)
    python bench/search.py --tasks planted_ite --algorithms astar --seeds 0 1 2 --time-limit 300

For each run it prints the best program, its held-out (test) score, the search time, the
nodes trained, and when the search first reached its final best score; then, per task and
algorithm, the mean ± std of the test score over the seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from neurosym.search import synthesize
from neurosym.tasks.spec import load_task

sys.path.insert(0, str(Path(__file__).parent))
from baselines import gru_baseline  # noqa: E402

PLANTED = ["planted_compare", "planted_ite", "planted_ite_mean", "planted_window"]
REAL = ["basic_motions", "japanese_vowels", "gunpoint", "arrow_head"]


def run_one(task_name: str, algorithm: str, time_limit: float, seed: int) -> dict:
    task = load_task(task_name)
    trace: list[tuple[float, int, float]] = []

    def progress(p) -> None:
        if not trace or p.best_f < trace[-1][2]:
            trace.append((p.elapsed, p.trained, p.best_f))

    start = time.perf_counter()
    result = synthesize(task, algorithm=algorithm, time_limit=time_limit, top_k=1, seed=seed,
                        on_progress=progress)
    best = result.best
    return {
        "task": task_name, "algorithm": algorithm, "time_limit": time_limit, "seed": seed,
        "program": best.printed if best else None,
        "val": best.evaluation.val if best else None,
        "test": best.evaluation.test if best else None,
        "baseline": best.evaluation.baseline if best else None,
        "search_seconds": result.stats.seconds, "total_seconds": time.perf_counter() - start,
        "trained": result.stats.trained, "expanded": result.stats.expanded,
        "best_found_at": trace[-1][:2] if trace else None,
    }


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {std:.3f}"


def summary(rows: list[dict]) -> None:
    print(f"\n{'task':18} {'algorithm':10} {'seeds':>5} {'test (mean ± std)':>18} "
          f"{'wall s':>7} {'nodes':>6} {'GRU':>6}")
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["algorithm"]), []).append(row)
    for (task, algorithm), runs in groups.items():
        tests = [r["test"] for r in runs if r["test"] is not None]
        wall = statistics.mean(r["total_seconds"] for r in runs)
        nodes = statistics.mean(r["trained"] for r in runs)
        gru = runs[0].get("gru_test")
        print(f"{task:18} {algorithm:10} {len(runs):5d} {mean_std(tests):>18} {wall:7.0f} "
              f"{nodes:6.0f} {'' if gru is None else f'{gru:.3f}':>6}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=PLANTED + REAL)
    parser.add_argument("--algorithms", nargs="*", default=["astar", "iddfs", "enumerate"])
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds per search")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--no-gru", action="store_true", help="skip the GRU baseline")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    rows = []
    for name in args.tasks:
        gru = None if args.no_gru else gru_baseline(load_task(name)).test
        print(f"\n== {name}" + ("" if gru is None else f": end-to-end GRU test {gru:.4f}"),
              flush=True)
        for algorithm in args.algorithms:
            for seed in args.seeds:
                row = run_one(name, algorithm, args.time_limit, seed)
                row["gru_test"] = gru
                rows.append(row)
                at = row["best_found_at"] or (float("nan"), 0)
                test = float("nan") if row["test"] is None else row["test"]
                print(f"{algorithm:10} seed {seed}  test {test:.4f}  "
                      f"{row['total_seconds']:6.1f} s  {row['trained']:4d} nodes  "
                      f"best found at {at[0]:.0f} s (node {at[1]})", flush=True)
                print(f"           {row['program']}", flush=True)
                if args.json:
                    args.json.write_text(json.dumps(rows, indent=2))
    summary(rows)


if __name__ == "__main__":
    main(sys.argv[1:])
