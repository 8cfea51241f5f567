"""Search benchmark (issue 3): NEAR with A*, IDDFS branch-and-bound and size-ordered
enumeration on planted-program tasks and on real UEA data, with an end-to-end GRU on the
same split printed beside each task.

    python bench/search.py                       # everything (long: see README)
    python bench/search.py --tasks planted_ite --algorithms astar enumerate --time-limit 120

For each run it prints the best program, its held-out (test) score, the search time, the
nodes trained, and when the search first reached its final best validation score.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from neurosym.search import synthesize
from neurosym.tasks.spec import load_task

sys.path.insert(0, str(Path(__file__).parent))
from baselines import gru_baseline  # noqa: E402

PLANTED = ["planted_compare", "planted_ite", "planted_window"]
REAL = {"basic_motions": 600, "japanese_vowels": 900}


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
        "task": task_name, "algorithm": algorithm, "time_limit": time_limit,
        "program": best.text if best else None,
        "val": best.evaluation.val if best else None,
        "test": best.evaluation.test if best else None,
        "baseline": best.evaluation.baseline if best else None,
        "search_seconds": result.stats.seconds, "total_seconds": time.perf_counter() - start,
        "trained": result.stats.trained, "expanded": result.stats.expanded,
        "best_found_at": trace[-1][:2] if trace else None,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=PLANTED + list(REAL))
    parser.add_argument("--algorithms", nargs="*", default=["astar", "iddfs", "enumerate"])
    parser.add_argument("--time-limit", type=float, default=None,
                        help="seconds per search (default: 300 planted, 600/900 real)")
    parser.add_argument("--limits", default="",
                        help="per-algorithm seconds, e.g. astar=240,enumerate=120")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    limits = dict(item.split("=") for item in args.limits.split(",") if item)
    rows = []
    for name in args.tasks:
        gru = gru_baseline(load_task(name))
        print(f"\n== {name}: end-to-end GRU test {gru.test:.4f} "
              f"(majority {gru.baseline:.4f})", flush=True)
        for algorithm in args.algorithms:
            limit = float(limits.get(algorithm) or args.time_limit or REAL.get(name, 300))
            row = run_one(name, algorithm, limit, args.seed)
            row["gru_test"] = gru.test
            rows.append(row)
            at = row["best_found_at"] or (float("nan"), 0)
            print(f"{algorithm:10} test {row['test']:.4f}  val {row['val']:.4f}  "
                  f"{row['search_seconds']:6.1f} s  {row['trained']:4d} nodes trained  "
                  f"best found at {at[0]:.0f} s (node {at[1]})", flush=True)
            print(f"           {row['program']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
