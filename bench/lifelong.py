"""The library over whole sequences (issue 30): every later task of each lifelong sequence
learned with and without the functions the earlier tasks leave in a library, at several
data fractions, over several seeds, at equal node budgets; beside them, the recogniser
trained through sorting alone (`bench/sorting.py`).

    python bench/lifelong.py                               # every sequence, 3 seeds
    python bench/lifelong.py --sequences houdini_digits --seeds 0 --json out.json

For each sequence and seed, the earlier steps run into a fresh library under that seed;
each later task is then measured by `neurosym.library.transfer.measure_transfer` (what
`neurosym transfer` does): one search per arm with the same node budget (the step's
`max_nodes`, else `--max-nodes`; the time limit is only a ceiling, so a busy machine
changes nothing), and a task's
error with the library over its error without. Printed as mean ± std over the seeds; the
JSON file (`--json`) has `sorting_exact_match`, `sorting_spearman` (each [mean, std]) and,
under `transfer`, for every sequence, task and fraction, `error_with`, `error_without` and
`ratio`, each [mean, std], with every seed's runs.

A ratio above 1 beyond the seeds' spread is negative transfer: the line `negative
transfer` names each such row.

Reverse transfer (unless `--no-reverse`): each sequence runs once more per seed into a
fresh library, later steps fine-tuning what they reuse and then training it together
with a replay of the earlier steps that use it (`neurosym lifelong --finetune-library
--reverse-transfer`); every earlier task's validation and test score before and after is
printed (mean ± std over seeds) with how often the new version was kept; in the JSON
under `reverse`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neurosym.library.lifelong import (
    SearchLibrary,
    Step,
    load_sequence,
    run_sequence,
    run_step,
)
from neurosym.library.transfer import error_of, measure_transfer, parse_fractions

sys.path.insert(0, str(Path(__file__).parent))
import sorting  # noqa: E402

SEQUENCES = ("count_digits", "sum_digits", "sort_sum_paths")


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequences", nargs="+", default=list(SEQUENCES))
    p.add_argument("--fractions", default="0.1,0.5,1.0")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-nodes", type=int, default=30, help="nodes trained per search "
                   "where the sequence's step names none (both arms alike)")
    p.add_argument("--time-limit", type=float, default=3600.0,
                   help="ceiling per search, seconds (the node budget should end it)")
    p.add_argument("--sorting-lists", type=int, default=5000,
                   help="training lists of five for the sorting recogniser (0: skip)")
    p.add_argument("--sorting-epochs", type=int, default=200)
    p.add_argument("--no-reverse", dest="reverse", action="store_false")
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args()


def sequence_runs(name: str, fractions: tuple[float, ...], seed: int, max_nodes: int,
                  time_limit: float, folder: Path) -> list[dict]:
    """Each later task of the sequence, with and without the library its earlier steps
    leave (built under `seed`), at every fraction: one dict per (task, fraction)."""
    seq = load_sequence(name)
    library = SearchLibrary(folder / f"{name}-{seed}")
    rows = []
    for i, step in enumerate(seq.steps):
        if i > 0:
            start = time.perf_counter()
            nodes = step.search.get("max_nodes", max_nodes)
            result = measure_transfer(step.task, library, fractions, time_limit=time_limit,
                                      max_nodes=nodes, seed=seed)
            for row in result.rows:
                errors = {arm: error_of(result.metric, getattr(row, key).evaluation.test)
                          for arm, key in (("with", "with_library"), ("without", "without"))}
                rows.append({"sequence": name, "task": step.task, "fraction": row.fraction,
                             "seed": seed, "metric": result.metric,
                             "error_with": errors["with"], "error_without": errors["without"],
                             "ratio": row.error_ratio(result.metric),
                             "program_with": row.with_library.program,
                             "program_without": row.without.program,
                             "reused": list(row.with_library.reused)})
                print(f"  {name} seed {seed} {step.task} at {row.fraction:.0%}: error with "
                      f"{errors['with']:.4f}  without {errors['without']:.4f}  "
                      f"({row.with_library.program}  |  {row.without.program})", flush=True)
            print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)
        if i < len(seq.steps) - 1:  # into the library for the steps after it
            run_step(seeded(step, seed), library)
    return rows


def seeded(step: Step, seed: int) -> Step:
    return dataclasses.replace(step, search={**step.search, "seed": seed})


def reverse_runs(name: str, seed: int, folder: Path) -> list[dict]:
    """The sequence again, fine-tuning and with reverse transfer: one dict per earlier
    task scored by a later step."""
    seq = load_sequence(name)
    seq = dataclasses.replace(seq, steps=tuple(seeded(s, seed) for s in seq.steps))
    library = SearchLibrary(folder / f"{name}-{seed}-reverse", finetune=True)
    rows = []
    for result in run_sequence(seq, library, reverse=True):
        for rev in result.reverse:
            for s in rev.earlier:
                rows.append({"sequence": name, "seed": seed, "step": result.step.task,
                             "function": rev.function, "kept": rev.stored is not None,
                             **dataclasses.asdict(s)})
                print(f"  reverse {name} seed {seed}: {result.step.task} -> lib."
                      f"{rev.function} ({'kept' if rev.stored else 'not kept'}): {s.task} "
                      f"val {s.val_before:.4f} -> {s.val_after:.4f}, test "
                      f"{s.test_before:.4f} -> {s.test_after:.4f}", flush=True)
    return rows


def summarize_reverse(rows: list[dict]) -> dict:
    """sequence -> "step: function -> earlier task" -> scores [mean, std] and times kept."""
    groups: dict = {}
    for row in rows:
        key = f"{row['step']}: lib.{row['function'].split('@')[0]} -> {row['task']}"
        groups.setdefault(row["sequence"], {}).setdefault(key, []).append(row)
    return {seq: {key: {k: mean_std([r[k] for r in runs]) for k in (
        "val_before", "val_after", "test_before", "test_after")} | {
        "kept": sum(r["kept"] for r in runs), "runs": len(runs)}
        for key, runs in keys.items()} for seq, keys in groups.items()}


def mean_std(values: list[float]) -> list[float]:
    a = np.array(values, dtype=float)
    return [float(a.mean()), float(a.std())]


def summarize(rows: list[dict]) -> dict:
    """sequence -> task -> fraction -> {error_with, error_without, ratio: [mean, std]}."""
    out: dict = {}
    for row in rows:
        key = (row["sequence"], row["task"], f"{row['fraction']:g}")
        out.setdefault(key, []).append(row)
    table: dict = {}
    for (seq, task, fraction), runs in out.items():
        table.setdefault(seq, {}).setdefault(task, {})[fraction] = {
            k: mean_std([r[k] for r in runs]) for k in ("error_with", "error_without", "ratio")
        } | {"seeds": [r["seed"] for r in runs]}
    return table


def print_table(table: dict) -> list[str]:
    """The table, and the rows where the library hurts beyond the seeds' spread."""
    negative = []
    print(f"\n{'sequence':<16}{'task':<30}{'data':>6}{'error with':>20}{'error without':>20}"
          f"{'ratio':>18}")
    for seq, tasks in table.items():
        for task, fractions in tasks.items():
            for fraction, f in fractions.items():
                (w, ws), (wo, wos), (r, rs) = f["error_with"], f["error_without"], f["ratio"]
                print(f"{seq:<16}{task:<30}{float(fraction):>6.0%}{w:>12.4f} ± {ws:<6.4f}"
                      f"{wo:>12.4f} ± {wos:<6.4f}{r:>10.2f} ± {rs:<6.2f}")
                if w - wo > max(ws, wos):
                    negative.append(f"{seq}/{task} at {float(fraction):.0%}")
    return negative


def main() -> int:
    args = arguments()
    fractions = parse_fractions(args.fractions)
    figures: dict = {"seeds": args.seeds, "max_nodes": args.max_nodes}
    if args.sorting_lists:
        found = [sorting.through_sorting(seed, args.sorting_lists, args.sorting_epochs)[0]
                 for seed in args.seeds]
        figures["sorting_exact_match"] = mean_std([f["exact_match"] for f in found])
        figures["sorting_spearman"] = mean_std([f["spearman"] for f in found])
        print("recogniser trained through sorting alone: exact match {:.3f} ± {:.3f}, "
              "Spearman {:.3f} ± {:.3f}".format(*figures["sorting_exact_match"],
                                                 *figures["sorting_spearman"]), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sequences:
            for seed in args.seeds:
                rows += sequence_runs(name, fractions, seed, args.max_nodes, args.time_limit,
                                      Path(tmp))
        reverse = [row for name in args.sequences for seed in args.seeds
                   for row in reverse_runs(name, seed, Path(tmp))] if args.reverse else []
    figures["transfer"] = summarize(rows)
    figures["runs"] = rows
    if reverse:
        figures["reverse"] = summarize_reverse(reverse)
        print("\nreverse transfer: earlier tasks before -> after (mean ± std over seeds)")
        for seq, keys in figures["reverse"].items():
            for key, f in keys.items():
                print(f"{seq:<16}{key:<60} val {f['val_before'][0]:.4f} -> "
                      f"{f['val_after'][0]:.4f} ± {f['val_after'][1]:.4f}   test "
                      f"{f['test_before'][0]:.4f} -> {f['test_after'][0]:.4f} ± "
                      f"{f['test_after'][1]:.4f}   kept {f['kept']}/{f['runs']}")
    negative = print_table(figures["transfer"])
    print("negative transfer (error with the library above without, beyond the seeds' "
          "spread): " + (", ".join(negative) if negative else "none"))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 1 if negative else 0


if __name__ == "__main__":
    sys.exit(main())
