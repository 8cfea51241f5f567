"""Transfer from the library on the HOUDINI-style digit tasks: the last task of a bundled
sequence, learned without and with the functions its earlier tasks leave in a library, at
several training-data sizes.

    python bench/transfer.py                          # count 3s, reusing lib.is_three
    python bench/transfer.py --sequence sum_digits    # sum digits, reusing lib.digit
    python bench/transfer.py --method fixed           # two fixed programs, no search

The earlier steps run first into a fresh library (or `--library PATH`, kept), then
`neurosym.library.transfer.measure_transfer` does what `neurosym transfer` does. The last
line checks the claim: at 10% of the training data the error with the library is at most
half the error without it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from neurosym.library.lifelong import SearchLibrary, load_sequence, run_step
from neurosym.library.lifelong_commands import print_transfer
from neurosym.library.transfer import measure_transfer, parse_fractions

FIXED = {  # (without, with) for --method fixed: the same program, nn against the library
    "count_digits": (r"\xs -> count nn xs", r"\xs -> count lib.is_three xs"),
    "sum_digits": (r"\xs -> sum (map (\x -> softargmax (nn x)) xs)",
                   r"\xs -> sum (map (\x -> softargmax (lib.digit x)) xs)"),
}


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequence", default="count_digits", choices=sorted(FIXED))
    p.add_argument("--library", type=Path, default=None,
                   help="library to fill (and keep); default: a temporary one")
    p.add_argument("--fractions", default="0.02,0.1,0.5,1.0")
    p.add_argument("--time-limit", type=float, default=60.0, help="search seconds per arm")
    p.add_argument("--max-nodes", type=int, default=None, help="nodes trained per search")
    p.add_argument("--method", choices=("search", "fixed"), default="search")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p.parse_args()


def build_library(sequence: str, path: Path) -> str:
    """Run every step but the last into the library; the last step's task is measured."""
    seq = load_sequence(sequence)
    lib = SearchLibrary(path)
    for step in seq.steps[:-1]:
        start = time.perf_counter()
        r = run_step(step, lib)
        print(f"library: {step.task} -> {r.program}   test {r.evaluation.metric} "
              f"{r.evaluation.test:.4f}   saved {', '.join(e.ref for e in r.saved)}   "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    return seq.steps[-1].task


def main() -> int:
    args = arguments()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.library or Path(tmp) / "library"
        task = build_library(args.sequence, path)
        programs = FIXED[args.sequence] if args.method == "fixed" else None
        start = time.perf_counter()
        result = measure_transfer(task, SearchLibrary(path), parse_fractions(args.fractions),
                                  time_limit=args.time_limit, max_nodes=args.max_nodes,
                                  programs=programs, seed=args.seed)
        print_transfer(result)
        print(f"measured in {time.perf_counter() - start:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(result.as_dict(), indent=2))
    at_tenth = [r for r in result.rows if abs(r.fraction - 0.1) < 1e-9]
    if not at_tenth:
        return 0
    ratio = at_tenth[0].error_ratio(result.metric)
    verdict = "PASS" if ratio <= 0.5 else "FAIL"
    print(f"{verdict}: at 10% of the training data, error with the library / without = "
          f"{ratio:.2f} (claim: <= 0.5)")
    return 0 if ratio <= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
