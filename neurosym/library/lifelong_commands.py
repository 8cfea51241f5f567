"""`neurosym lifelong SEQUENCE` and `neurosym transfer TASK`: grow the library over a
sequence of tasks, and measure what it is worth. Errors a user can act on print as one
message and exit 1 (see `neurosym.console.friendly_errors`), never as a traceback."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from neurosym.console import echo_json, friendly_errors, out
from neurosym.library.location import ENV_VAR, default_library_path

_LIBRARY_HELP = "Library directory (default: $NEUROSYM_LIBRARY, else ./library_store)."


def _console() -> Console:
    console = out()
    if not console.is_terminal:
        console.width = max(console.width, 160)  # piped output keeps programs on one line
    return console


@click.command()
@click.argument("sequence")
@click.option("--library", "library_path", type=click.Path(file_okay=False, path_type=Path),
              envvar=ENV_VAR, default=None, help=_LIBRARY_HELP)
@click.option("--time-limit", type=float, default=None,
              help="Search budget per task in seconds (default: each step's own).")
@click.option("--finetune-library", is_flag=True,
              help="Let later tasks train the library functions they use (default: frozen).")
@click.option("--reverse-transfer", is_flag=True,
              help="After each step, train the library functions it reused on it together "
              "with a replay of the earlier steps that use them; keep a new version if "
              "an earlier task improves and none gets worse (on validation).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable results.")
@friendly_errors
def lifelong(sequence: str, library_path: Path | None, time_limit: float | None,
             finetune_library: bool, reverse_transfer: bool, as_json: bool) -> None:
    """Solve the tasks of SEQUENCE (a name in tasks/sequences/ or a TOML file) in order,
    each search reusing the functions the earlier tasks stored in the library."""
    from neurosym.library.lifelong import SearchLibrary, load_sequence, run_step
    from neurosym.search.display import SearchDisplay

    seq = load_sequence(sequence)
    lib = SearchLibrary(library_path or default_library_path(), finetune_library)
    console = _console()
    if not as_json:
        mode = "fine-tuned" if finetune_library else "frozen"
        console.print(f"[bold]{escape(seq.name)}[/]: {len(seq.steps)} tasks, library "
                      f"{escape(str(lib.path))} ({mode})")
    results = []
    for i, step in enumerate(seq.steps, 1):
        if not as_json:
            console.print(f"\n[bold]step {i}/{len(seq.steps)}[/]  {escape(step.task)}  "
                          f"(data {step.data_fraction:.0%})")
        with SearchDisplay(console, enabled=not as_json) as display:
            results.append(run_step(step, lib, time_limit, display.update,
                                    tuple(results) if reverse_transfer else None))
        if not as_json:
            _print_step(results[-1], console)
    if as_json:
        echo_json({"sequence": seq.name, "library": str(lib.path),
                   "steps": [_step_json(r) for r in results]})
    else:
        _print_summary(results, console)


def _print_step(r, console: Console) -> None:
    from neurosym.search.display import highlight

    ev = r.evaluation
    console.print(Text.assemble("  program   ", highlight(Text(r.program))))
    console.print(f"  reuses    {escape(', '.join('lib.' + ref for ref in r.reused) or '-')}")
    console.print(f"  {ev.metric:<9} test {ev.test:.4f}   (majority/mean baseline "
                  f"{ev.baseline:.4f}; {r.train_size} training examples)")
    saved = ", ".join(f"lib.{e.ref} : {e.type}" for e in r.saved)
    console.print(f"  saved     {escape(saved)}   [dim]{r.seconds:.0f} s[/]")
    for rev in r.reverse:
        verdict = f"kept as lib.{rev.stored.ref}" if rev.stored else "not kept"
        console.print(f"  reverse transfer of lib.{escape(rev.function)}: {verdict}")
        for s in rev.earlier:
            console.print(f"    {escape(s.task):<28} {s.metric} val {s.val_before:.4f} -> "
                          f"{s.val_after:.4f}   test {s.test_before:.4f} -> {s.test_after:.4f}")


def _print_summary(results: list, console: Console) -> None:
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, title="lifelong run")
    for col in ("step", "task", "program", "reuses", "metric", "test", "baseline", "saved"):
        table.add_column(col, justify="right" if col in ("step", "test", "baseline") else
                         "left", overflow="fold")
    for i, r in enumerate(results, 1):
        ev = r.evaluation
        table.add_row(str(i), r.step.task, Text(r.program), Text(", ".join(r.reused) or "-"),
                      ev.metric, f"{ev.test:.4f}", f"{ev.baseline:.4f}",
                      Text(", ".join(e.ref for e in r.saved)))
    console.print(table)


def _step_json(r) -> dict:
    return {"task": r.step.task, "data_fraction": r.step.data_fraction,
            "train_size": r.train_size, "program": r.program, "reused": list(r.reused),
            "saved": [{"ref": e.ref, "type": e.type, "source": e.source} for e in r.saved],
            "seconds": r.seconds, **r.evaluation.as_dict(),
            "reverse_transfer": [{"function": rev.function, "kept": rev.stored.ref
                                  if rev.stored else None,
                                  "earlier": [dataclasses.asdict(s) for s in rev.earlier]}
                                 for rev in r.reverse]}


@click.command()
@click.argument("task_name", metavar="TASK")
@click.option("--with-library", "library_path", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="The library whose functions the 'with' arm may reuse.")
@click.option("--fractions", default="0.02,0.1,0.5,1.0", show_default=True,
              help="Training-data fractions, comma-separated.")
@click.option("--time-limit", type=float, default=60.0, show_default=True,
              help="Search budget per arm and fraction, in seconds.")
@click.option("--max-nodes", type=int, default=None, help="Most nodes trained per search.")
@click.option("--epochs", type=int, default=None,
              help="Final training epochs at full data (default: the task's; scaled up for "
              "smaller fractions).")
@click.option("--without", "program_without", default=None, metavar="PROGRAM",
              help="Train this fixed program instead of searching (needs --with).")
@click.option("--with", "program_with", default=None, metavar="PROGRAM",
              help="Fixed program for the library arm, e.g. '\\xs -> count lib.is_three xs'.")
@click.option("--finetune-library", is_flag=True, help="Train the library functions too.")
@click.option("--use", "only", multiple=True, metavar="NAME",
              help="Offer only these library functions to the search (repeatable; default: "
              "all). Leave out any entry learned from this task's own data.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw the curves into this PNG (needs matplotlib).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable results.")
@friendly_errors
def transfer(task_name: str, library_path: Path, fractions: str, time_limit: float,
             max_nodes: int | None, epochs: int | None, program_without: str | None,
             program_with: str | None, finetune_library: bool, only: tuple[str, ...],
             seed: int, plot: Path | None, as_json: bool) -> None:
    """Learn TASK without and with a library at several training-data sizes and print
    the test metric of each, with the ratio of their errors (below 1: the library helps)."""
    from neurosym.lang.errors import TaskError
    from neurosym.library.lifelong import SearchLibrary
    from neurosym.library.transfer import (
        measure_transfer,
        parse_fractions,
        plot_transfer,
        require_matplotlib,
    )

    if (program_without is None) != (program_with is None):
        raise TaskError("--without and --with go together: two fixed programs to compare")
    if plot is not None:
        require_matplotlib()
    console = _console()
    programs = (program_without, program_with) if program_with is not None else None
    with console.status("training…", spinner="dots") as status:
        result = measure_transfer(
            task_name, SearchLibrary(library_path, finetune_library, only or None),
            parse_fractions(fractions),
            time_limit=time_limit, programs=programs, seed=seed, max_nodes=max_nodes,
            epochs=epochs, on_arm=lambda f, which: status.update(
                f"fraction {f:g}: training {which} the library…"))
    if as_json:
        echo_json(result.as_dict())
    else:
        print_transfer(result, console)
    if plot is not None:
        written = plot_transfer(result, plot)
        if not as_json:
            console.print(f"plot written to {escape(str(written))}")


def print_transfer(result, console: Console | None = None) -> None:
    """The table of a transfer measurement, then the programs each arm used."""
    from neurosym.search.display import highlight

    console = console or _console()
    m = result.metric
    table = Table(header_style="bold", box=box.SIMPLE_HEAD,
                  title=f"{result.task}: test {m} without and with the library "
                        f"({result.method})")
    for col in ("fraction", "train size", f"{m} without library", f"{m} with library",
                "error ratio"):
        table.add_column(col, justify="right")
    for r in result.rows:
        ratio = r.error_ratio(m)
        style = "green" if ratio < 1 else "red"
        table.add_row(f"{r.fraction:g}", str(r.train_size), f"{r.without.evaluation.test:.4f}",
                      f"{r.with_library.evaluation.test:.4f}", f"[{style}]{ratio:.2f}[/]")
    console.print(table)
    console.print(f"[dim]majority/mean baseline (test): {result.baseline:.4f}; error ratio = "
                  f"error with / error without ({'1 - ' if m != 'mse' else ''}{m})[/]")
    for r in result.rows:
        for label, arm in (("without", r.without), ("with", r.with_library)):
            console.print(Text.assemble(f"  {r.fraction:<5g} {label:<8} ",
                                        highlight(Text(arm.program))))
