"""Side by side with the peer (issue 5): our NEAR search and neurosym-lib 0.0.80's on the
same train/validation/test splits, with the same time budget, each in its own process.

    bash bench/peer_setup.sh     # once: the peer in its own venv (bench/.peer/)
    python bench/peer_near.py --time-limit 120 --seeds 0 1 2 --before 13c6cdf

For each task (BasicMotions, JapaneseVowels, planted_compare by default) and seed it prints
best test accuracy, the wall time at which the search first scored the program it finally
returned, nodes trained (and per second) and peak memory: ours with 1 and 2 worker
processes, the peer's, and the ratios ours/peer. Then, per task over the seeds, the time
to a target accuracy: each system's incumbents (its best complete program, each time that
changed) are trained as its final program would be, and the time is when the first
program reaching the target was scored (an incumbent, or the program it returned); the
target is the worse of the two final accuracies. `--summary FILE` prints that again from
a saved run.
`--before REF` also times node training as of git REF (checked out in a worktree under
bench/out/) and now, on one fixed workload: the first nodes of the first task's
derivation graph. Settings that could not be made
equal are printed at the end (the peer runner lists them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEER_PYTHON = HERE / ".peer" / "venv" / "bin" / "python"
OUT = HERE / "out"
TASKS = ["basic_motions", "japanese_vowels", "planted_compare"]



def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries that
    across exec, so a child started by a large parent reports the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")

def export_split(task_name: str, path: Path) -> None:
    """The task's splits as dense arrays for the peer: sequences padded to one length by
    repeating their last step (the peer has no padding masks, so this keeps `last` right
    and disturbs mean and spread least), labels as class indices."""
    from neurosym.tasks.spec import load_task

    task = load_task(task_name)
    length = max(s.x.data.shape[1] for s in (task.train, task.val, task.test))
    arrays = {}
    for name, split in (("train", task.train), ("val", task.val), ("test", task.test)):
        last = split.x.last_index().numpy()
        take = np.minimum(np.arange(length)[None, :], last[:, None])  # [n, length]
        padded = np.take_along_axis(split.x.data.numpy(), take[:, :, None], axis=1)
        arrays[f"x_{name}"] = padded.astype(np.float32)
        arrays[f"y_{name}"] = split.y.numpy().astype(np.int64)
    np.savez(path, **arrays)


def ours(task_name: str, time_limit: float, seed: int, workers: int) -> dict:
    """Our search in this process (run as a child, so peak memory is its own; with
    workers, the peak of the search process, not of its workers). `incumbents` are the
    programs the search would have returned had it stopped then (its best complete
    program by f), with when each became best and its test accuracy after the final
    training, for the time to a target accuracy."""
    from neurosym.search import synthesize

    trace: list[tuple[float, str]] = []

    def progress(p) -> None:
        if p.best_text is not None and (not trace or trace[-1][1] != p.best_text):
            trace.append((p.elapsed, p.best_text))

    start = time.perf_counter()
    result = synthesize(task_name, algorithm="astar", time_limit=time_limit, top_k=1,
                        seed=seed, workers=workers, on_progress=progress)
    total = time.perf_counter() - start
    best = result.best
    found_at = best.found_at
    peak = peak_rss_mb()  # before the incumbents are retrained
    incumbents = [{"at_s": at, "program": text,
                   "test_accuracy": best.evaluation.test if text == best.text
                   else final_accuracy(result, text)} for at, text in trace]
    return {
        "system": "ours", "program": best.text, "test_accuracy": best.evaluation.test,
        "val_accuracy": best.evaluation.val,
        "time_to_best_s": result.stats.seconds if found_at is None else found_at,
        "search_s": result.stats.seconds, "total_s": total,
        "nodes_trained": result.stats.trained,
        "peak_rss_mb": peak, "incumbents": incumbents,
    }


def final_accuracy(result, text: str) -> float:
    """Test accuracy of `text` after the training the search gives its finalists (with
    cross-validation and refit where the search would use them)."""
    from neurosym.lang.checker import check_term
    from neurosym.lang.parser import parse_term
    from neurosym.lang.types import Arrow
    from neurosym.search.final import finalists
    from neurosym.search.graph import Node

    class Plain:  # f is h: only the accuracy is read
        def f(self, node, h):
            return h

    term = parse_term(text)
    task = result.task
    node = Node(term, text, 0.0, 0, 0, (), check_term(term, Arrow(task.input_type,
                                                                   task.output_type)))
    config = result.config
    kept, _ = finalists(task, [(None, node)], Plain(), config, None, {})
    return kept[0].evaluation.test if kept else 0.0


def workload(task_name: str, count: int) -> list[list[str]]:
    """The first `count` nodes of the task's derivation graph, breadth-first, as sibling
    groups (the children of one expansion, which the search scores together): a fixed
    set of partial and complete programs to time node training on, before and after."""
    from neurosym.search.graph import ProgramGraph
    from neurosym.search.synthesis import production_set
    from neurosym.tasks.spec import load_task

    task = load_task(task_name)
    graph = ProgramGraph(task.input_type, task.output_type, production_set(task), 6)
    queue, groups, count_so_far = [graph.root()], [[graph.root().text]], 1
    while queue and count_so_far < count:
        children = graph.children(queue.pop(0))
        groups.append([c.text for c in children][: count - count_so_far])
        count_so_far += len(groups[-1])
        queue.extend(children)
    return groups


def replay(task_name: str, groups: list[list[str]], seed: int,
           relaxation: str = "trained") -> dict:
    """Train each node as this version's search would (run as a child, with PYTHONPATH at
    the version to time): a sibling group at a time where the version trains nodes
    together, else one by one. Returns the rate and every node's h."""
    from neurosym.search import scoring, synthesis
    from neurosym.tasks.spec import load_task

    task = load_task(task_name)
    config = synthesis.resolve_config(task, seed=seed)
    if hasattr(synthesis, "node_training"):
        train = synthesis.node_training(task, config)
    else:  # before the speed work
        train = synthesis.train_config(task, epochs=config.epochs_per_node, lr=config.lr,
                                       seed=config.seed)
    settings = scoring.NodeSettings(train, config.heuristic, config.hidden, config.seed)
    if relaxation != "trained":  # only versions that have relaxations other than trained
        settings = dataclasses.replace(settings, relaxation=relaxation)
    together = getattr(scoring, "train_nodes", None)
    scoring.train_node(task, groups[0][0], settings)  # warm-up: first-call costs
    h: dict[str, float] = {}
    start = time.perf_counter()
    for group in groups:
        if together is not None:
            scores = together(task, [(t, None) for t in group], settings)
        else:
            scores = [scoring.train_node(task, t, settings) for t in group]
        h.update((t, s.h) for t, s in zip(group, scores))
    seconds = time.perf_counter() - start
    return {"nodes": len(h), "seconds": seconds, "nodes_per_s": len(h) / seconds, "h": h}


def child(command: list[str], env: dict | None = None) -> dict:
    """Run one system; its last stdout line is its JSON result."""
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=HERE)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        sys.exit(f"{command[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def ours_child(source: Path, *args: str) -> dict:
    """This script in child mode, importing our package from `source` (a checkout)."""
    return child([sys.executable, __file__, "--ours", *args],
                 {**os.environ, "PYTHONPATH": str(source)})


def run_ours(task: str, limit: float, seed: int, workers: int = 1) -> dict:
    return ours_child(ROOT, task, "--time-limit", str(limit), "--seed", str(seed),
                      "--workers", str(workers))


def run_peer(npz: Path, limit: float, seed: int) -> dict:
    return child([str(PEER_PYTHON), str(HERE / "peer_runner.py"), str(npz),
                  "--time-limit", str(limit), "--seed", str(seed)])


def worktree(ref: str) -> Path:
    path = OUT / f"before-{ref}"
    if not path.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref],
                       check=True, capture_output=True)
    return path


def speed(task: str, ref: str, count: int, seed: int, relaxation: str = "trained") -> dict:
    """Node training speed before (git `ref`) and now, on the same fixed workload."""
    texts = OUT / f"{task}-workload.json"
    texts.write_text(json.dumps(workload(task, count)))
    times = {}
    for name, source in (("before", worktree(ref)), ("now", ROOT)):
        times[name] = ours_child(source, task, "--texts", str(texts), "--seed", str(seed),
                                 "--relaxation", relaxation)
    before, now = times["before"]["nodes_per_s"], times["now"]["nodes_per_s"]
    h_before, h_now = times["before"].get("h", {}), times["now"]["h"]
    gaps = [abs(h_now[t] - h_before[t]) for t in h_now
            if t in h_before and math.isfinite(h_now[t]) and math.isfinite(h_before[t])]
    changed = sum(math.isfinite(h_now[t]) != math.isfinite(h_before[t])
                  for t in h_now if t in h_before)
    print(f"-- node training speed ({relaxation} relaxations) on {task}, its first {count} "
          "derivation-graph nodes "
          f"(breadth-first, by sibling group): before ({ref}) {before:.2f} nodes/s, now "
          f"{now:.2f} nodes/s ({now / before:.2f}x); largest |h now - h before| "
          f"{max(gaps, default=math.nan):.2g} over {len(gaps)} nodes, {changed} changed "
          "between finite and failed")
    return {"ref": ref, "task": task, **times}


def row(name: str, r: dict) -> str:
    rate = r["nodes_trained"] / max(r["search_s"], 1e-9)
    return (f"{name:22} {r['test_accuracy']:9.4f} {r['time_to_best_s']:9.1f} "
            f"{r['nodes_trained']:7d} {rate:8.2f} {r['peak_rss_mb']:8.0f}")


def side_by_side(runs: dict[int, dict], peer: dict, limit: float) -> None:
    for n, us in runs.items():
        print(row(f"ours, {n} worker{'s' * (n > 1)}", us))
    print(row(peer["system"], peer))
    for n, us in runs.items():
        ratio = us["time_to_best_s"] / max(peer["time_to_best_s"] or limit, 1e-9)
        print(f"{f'ours ({n}) / peer':22} {us['test_accuracy'] - peer['test_accuracy']:+9.4f} "
              f"{ratio:8.2f}x {us['nodes_trained'] / max(peer['nodes_trained'], 1):6.2f}x "
              f"{'':8} {us['peak_rss_mb'] / peer['peak_rss_mb']:7.2f}x")
    for n, us in runs.items():
        print(f"   ours ({n}): {us['program']}")
    print(f"   peer: {peer['program']}", flush=True)


def time_to(run: dict, target: float) -> float | None:
    """When the search first scored a program whose final test accuracy reaches `target`
    (issue 12's definition), among the programs whose final accuracy is known: its
    incumbents (its best program by f, each when it became best) and the program it
    returned, when that was first scored. None if none of them reaches it. Our search
    returns the program cross-validation ranks first among its finalists, often not an
    incumbent by f: counting incumbents only, with the end of the search for the returned
    program, read JapaneseVowels as 4.53x the peer when ours returned a program reaching
    the target that it had scored at 0.5 s."""
    times = [inc["at_s"] for inc in run.get("incumbents", [])
             if inc["test_accuracy"] >= target - 1e-6]
    if run["test_accuracy"] >= target - 1e-6:
        times.append(run["time_to_best_s"])
    return min(times, default=None)


def print_time_to_target(results: dict, tasks: list[str], seeds: list[int],
                         workers: list[int]) -> None:
    print("\ntime to the target accuracy (the worse of the two final test accuracies, per "
          "seed): seconds until the search first scored a program that reaches it after "
          "its final training")
    for task in tasks:
        for n in workers:
            print(time_to_target_row(task, [results[f"{task}/{seed}"] for seed in seeds],
                                     f"ours_{n}"))


def time_to_target_row(task: str, per_seed: list[dict], ours_key: str) -> str:
    """Mean ± std over seeds of the target, ours' and the peer's time to it, and the
    ratio of the mean times."""
    targets, mine, theirs, gaps = [], [], [], []
    for r in per_seed:
        us, peer = r[ours_key], r["peer"]
        target = min(us["test_accuracy"], peer["test_accuracy"])
        targets.append(target)
        mine.append(time_to(us, target))
        theirs.append(time_to(peer, target))
        gaps.append(us["test_accuracy"] - peer["test_accuracy"])

    def ms(xs: list[float | None], fmt: str) -> str:
        xs = [x for x in xs if x is not None]
        if not xs:
            return "-"
        std = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return f"{statistics.mean(xs):{fmt}} ± {std:{fmt}}"

    ok = [(a, b) for a, b in zip(mine, theirs) if a is not None and b is not None]
    ratio = (statistics.mean(a for a, _ in ok) / max(statistics.mean(b for _, b in ok), 1e-9)
             if ok else math.nan)
    return (f"{task:18} {ours_key:7} target {ms(targets, '.3f')}: ours {ms(mine, '.1f')} s, "
            f"peer {ms(theirs, '.1f')} s, ratio {ratio:.2f}; accuracy ours - peer "
            f"{ms(gaps, '+.3f')}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=TASKS)
    parser.add_argument("--time-limit", type=float, default=120.0, help="search seconds each")
    parser.add_argument("--seed", type=int, default=0, help="for --speed-only")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0],
                        help="searches per task and system (time to accuracy: mean ± std)")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2],
                        help="our worker processes: one row per value (the peer's search "
                             "trains one node at a time)")
    parser.add_argument("--before", default=None, help="git ref of our code before the speed "
                        "work: its nodes/s on the first task, same budget")
    parser.add_argument("--replay", type=int, default=60,
                        help="with --before: nodes in the fixed workload")
    parser.add_argument("--speed-only", action="store_true",
                        help="with --before: only the fixed-workload replay (no peer needed)")
    parser.add_argument("--relaxation", default="trained", choices=("trained", "features"),
                        help="with --before: what fills the holes of the replayed nodes")
    parser.add_argument("--ours", default=None, help=argparse.SUPPRESS)  # child modes
    parser.add_argument("--texts", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=OUT / "peer_near.json")
    parser.add_argument("--summary", type=Path, default=None,
                        help="only print the time to the target accuracy of a saved run "
                             "(its --json file)")
    args = parser.parse_args(argv)
    if args.summary:
        saved = json.loads(args.summary.read_text())
        runs = [key for key in saved if "/" in key]
        tasks = list(dict.fromkeys(key.split("/")[0] for key in runs))
        seeds = sorted({int(key.split("/")[1]) for key in runs})
        workers = sorted(int(k.removeprefix("ours_")) for k in saved[runs[0]]
                         if k.startswith("ours_"))
        print_time_to_target(saved, tasks, seeds, workers)
        return
    if args.ours and args.texts:
        print(json.dumps(replay(args.ours, json.loads(args.texts.read_text()), args.seed,
                                args.relaxation)))
        return
    if args.ours:
        print(json.dumps(ours(args.ours, args.time_limit, args.seed, args.workers[0])))
        return
    if args.speed_only:
        if not args.before:
            sys.exit("--speed-only needs --before REF")
        OUT.mkdir(exist_ok=True)
        speed(args.tasks[0], args.before, args.replay, args.seed, args.relaxation)
        return
    if not PEER_PYTHON.exists():
        sys.exit("the peer is not installed: run `bash bench/peer_setup.sh` first")
    OUT.mkdir(exist_ok=True)
    started, results = time.perf_counter(), {}
    header = (f"{'':22} {'test acc':>9} {'to best s':>9} {'nodes':>7} {'nodes/s':>8} "
              f"{'peak MB':>8}")
    print(f"time limit {args.time_limit:.0f} s per search, seeds {args.seeds}\n{header}")
    for task in args.tasks:
        npz = OUT / f"{task}.npz"
        export_split(task, npz)
        for seed in args.seeds:
            runs = {n: run_ours(task, args.time_limit, seed, n) for n in args.workers}
            peer = run_peer(npz, args.time_limit, seed)
            results[f"{task}/{seed}"] = {"peer": peer, **{f"ours_{n}": r for n, r in runs.items()}}
            print(f"-- {task}, seed {seed}")
            side_by_side(runs, peer, args.time_limit)
    print_time_to_target(results, args.tasks, args.seeds, args.workers)
    if args.before:
        results["speed"] = speed(args.tasks[0], args.before, args.replay, args.seed,
                                 args.relaxation)
    print("\nsettings not made equal:")
    for line in next(iter(results.values()))["peer"]["settings_not_equal"]:
        print(f" - {line}")
    print(f"\nbenchmark wall time {time.perf_counter() - started:.0f} s")
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
