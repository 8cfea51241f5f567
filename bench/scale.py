"""Scaling out (issue 13): one A* search on BasicMotions under a fixed node budget, run
in-process, on a local pool of 2 processes, on Ray with 1 and 2 workers (a local
cluster), and on a two-node Ray cluster on the loopback address (`ray start --head`, then
a second `ray start --address`, one CPU each). Prints nodes trained per second and the
best program of every row, which must be the same.

    python bench/scale.py                      # basic_motions, 120 nodes
    python bench/scale.py --task gunpoint --nodes 200

Each row runs in its own process, one after the other; search time only (not start-up,
not the finalists' retraining).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(task: str, nodes: int, executor: str, workers: int, address: str | None,
        expansions: int) -> dict:
    from neurosym.search import synthesize

    start, cpu = time.perf_counter(), time.process_time()
    result = synthesize(task, time_limit=3600, max_nodes=nodes, top_k=1, cv_folds=0,
                        final_epochs=1, executor=executor, workers=workers,
                        ray_address=address, expansions=expansions)
    return {"program": result.best.text, "f": result.programs[0].f,
            "trained": result.stats.trained, "search_s": result.stats.seconds,
            "nodes_per_s": result.stats.trained / result.stats.seconds,
            "total_s": time.perf_counter() - start,
            # the search process's own CPU per node: with workers, the coordinator's cost
            "coordinator_ms": 1000 * (time.process_time() - cpu) / result.stats.trained}


def child(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        sys.exit(f"{args} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def loopback_cluster(port: int) -> str:
    """A head and a second node on 127.0.0.1, one CPU each. Token authentication (on by
    default in recent Ray) is turned off for this loopback-only cluster; a real one
    shares the head's token (~/.ray/auth_token) with its nodes instead."""
    ray = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    subprocess.run([ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port",
                    str(port), "--include-dashboard", "false", *common], check=True,
                   capture_output=True)
    subprocess.run([ray, "start", "--address", address, "--node-ip-address", "127.0.0.1",
                    *common], check=True, capture_output=True)
    return address


os.environ["RAY_AUTH_MODE"] = "disabled"  # see loopback_cluster; children inherit it


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="basic_motions")
    parser.add_argument("--nodes", type=int, default=120)
    parser.add_argument("--port", type=int, default=6399)
    parser.add_argument("--expansions", type=int, default=4,
                        help="A* nodes expanded together (the same in every row)")
    parser.add_argument("--child", nargs=4, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        executor, workers, address, task = args.child
        print(json.dumps(one(task, args.nodes, executor, int(workers),
                             None if address == "-" else address, args.expansions)))
        return
    rows = [("in-process", "local", 1, "-"), ("pool, 2 workers", "pool", 2, "-"),
            ("Ray, 1 worker", "ray", 1, "-"), ("Ray, 2 workers", "ray", 2, "-")]
    results = {}
    for name, executor, workers, address in rows:
        results[name] = child([executor, str(workers), address, args.task, "--nodes",
                               str(args.nodes), "--expansions", str(args.expansions)])
    ray = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    try:
        address = loopback_cluster(args.port)
        results["Ray, 2 nodes (loopback)"] = child(
            ["ray", "2", address, args.task, "--nodes", str(args.nodes), "--expansions",
             str(args.expansions)])
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True)
    base = results["in-process"]["nodes_per_s"]
    print(f"{args.task}, A* expanding {args.expansions} nodes at a time, {args.nodes} "
          "nodes, the task's seed\n")
    print("| executor | nodes | search s | nodes/s | vs in-process | search process CPU "
          "ms/node | best program |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['trained']} | {r['search_s']:.1f} | {r['nodes_per_s']:.2f} | "
              f"{r['nodes_per_s'] / base:.2f}x | {r['coordinator_ms']:.1f} | "
              f"`{r['program']}` |")
    same = len({(r["program"], None if r["f"] is None else round(r["f"], 9))
                for r in results.values()}) == 1
    print(f"\nsame best program (and f) in every row: {same}")


if __name__ == "__main__":
    main(sys.argv[1:])
