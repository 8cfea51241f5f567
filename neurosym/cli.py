"""The `neurosym` command. Every NeurosymError becomes one clear message and exit code 1;
a Python traceback reaching a user is a bug."""

from __future__ import annotations

import os
import sys
from dataclasses import fields
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from neurosym.console import DEBUG_VAR, echo_json, friendly_errors, out, report
from neurosym.lang.errors import NeurosymError, SearchError
from neurosym.settings import MISSING_POLICIES, SearchConfig

DEVICE = click.option("--device", default="cpu", show_default=True,
                      help="Where programs train: cpu, cuda, cuda:N or mps.")


def search_options(command):
    """An option for every search setting that has a flag, made from its declaration
    (`settings.SearchConfig`), so the command line, Python and task files agree. Left
    out, a setting comes from the task's [search] table, then the default."""
    for setting in reversed(fields(SearchConfig)):
        flag, key = setting.metadata["flag"], setting.metadata["key"]
        if flag is not None:
            kind = click.Choice(key.choices) if key.choices else key.kind
            command = click.option(
                flag, setting.name, type=kind, default=None,
                help=f"{setting.metadata['help']} (default: the task's [search] "
                f"{setting.name}, else {setting.metadata['shown']}).")(command)
    return command


@click.group()
@click.version_option(package_name="neurosym-synth")
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error.")
def main(debug: bool) -> None:
    """neurosym: learn readable typed programs with neural parts."""
    if debug:
        os.environ[DEBUG_VAR] = "1"


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--library", "library_path", type=click.Path(file_okay=False), default=None,
              help="Library for lib.NAME references "
              "(default: $NEUROSYM_LIBRARY or ./library_store).")
def check(files: tuple[str, ...], library_path: str | None) -> None:
    """Parse and type-check DSL files; print every definition's type."""
    from neurosym.lang.load import check_file

    library = _open_library(library_path)
    failed = 0
    for path in files:
        try:
            checked = check_file(path, library)
        except NeurosymError as err:
            report(err)
            failed += 1
            continue
        for name, t in checked.def_types.items():
            click.echo(f"{path}: {name} : {t}")
    if failed:
        click.echo(f"{failed} of {len(files)} file(s) failed", err=True)
        sys.exit(1)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--task", "task_name", required=True, help="Bundled task name or TOML path.")
@click.option("--entry", default=None, help="Definition to train (default: main, else the last).")
@click.option("--epochs", type=int, default=None, help="Training epochs (default: the task's).")
@click.option("--lr", type=float, default=None, help="Learning rate (default: the task's).")
@click.option("--seed", type=int, default=None, help="Random seed (default: the task's).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable results.")
@click.option("--library", "library_path", type=click.Path(file_okay=False), default=None)
@click.option("--save", "save_dir", type=click.Path(file_okay=False), default=None,
              help="Save the trained program as a model directory (see `neurosym predict`).")
@DEVICE
@friendly_errors
def run(file: str, task_name: str, entry: str | None, epochs: int | None, lr: float | None,
        seed: int | None, as_json: bool, library_path: str | None,
        save_dir: str | None, device: str) -> None:
    """Train a hand-written program's learnable parts on a task and print its scores."""
    from neurosym.api import run_file

    console = out()
    with console.status("training…", spinner="dots"):
        result = run_file(file, task_name, entry=entry, epochs=epochs, lr=lr, seed=seed,
                          library=_open_library(library_path), device=device)
    if save_dir:
        result.save(save_dir)
        click.echo(f"saved the model in {save_dir}", err=True)
    if as_json:
        echo_json(result.as_dict())
        return
    console.print(f"[bold]{result.entry}[/] : {escape(result.type)}   "
                  f"({result.parameters} parameters)")
    print_evaluation(result.evaluation, console)


def print_evaluation(ev, console: Console | None = None) -> None:
    from neurosym.metrics import baseline_name, trivial_words

    console = console or out()
    table = Table(show_header=True, header_style="bold")
    for col in ("split", ev.metric):
        table.add_column(col, justify="right")
    for split in ("train", "val", "test"):
        table.add_row(split, f"{getattr(ev, split):.4f}")
    table.add_row(f"[dim]{baseline_name(ev.metric)} baseline (test)[/]",
                  f"[dim]{ev.baseline:.4f}[/]")
    console.print(table)
    if units := ev.in_units():
        console.print(units)
    if ev.trivial:
        console.print(trivial_words(ev.metric),
                      style="bold yellow")
    if ev.per_class_f1:
        f1 = "  ".join(f"{v:.2f}" for v in ev.per_class_f1)
        console.print(f"per-class F1 (test): {f1}")
    console.print(f"[dim]{ev.epochs} epochs, {ev.seconds:.1f} s[/]")


@main.command()
@click.argument("task_name", metavar="TASK")
@search_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable results.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Save the best program as a .ns file (check/run accept it).")
@click.option("--library", "library_path", type=click.Path(file_okay=False), default=None,
              help="Library whose functions join the search as primitives "
              "(default: $NEUROSYM_LIBRARY or ./library_store, if it exists).")
@click.option("--finetune-library", is_flag=True,
              help="Fine-tune library functions instead of keeping them frozen.")
@click.option("--save-as", default=None,
              help="Store the best program in the library under this name.")
@click.option("--save", "save_dir", type=click.Path(file_okay=False), default=None,
              help="Save the best program as a model directory (see `neurosym predict`).")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False), default=None,
              help="Save the A* search state here every minute and when it stops (Ctrl-C too).")
@click.option("--resume", "resume_file", type=click.Path(dir_okay=False), default=None,
              help="Continue the search saved in this checkpoint (same task and settings).")
@click.option("--executor", type=click.Choice(["local", "pool", "ray"]), default=None,
              help="Where nodes train: this process, --workers local processes (the default "
              "with workers > 1), or Ray (pip install \"neurosym-synth[ray]\").")
@click.option("--ray-address", default=None,
              help="With --executor ray: the cluster to join (`ray start --head` prints it; "
              "default: start a local one).")
@friendly_errors
def synthesize(task_name: str, as_json: bool, out_file: str | None, library_path: str | None,
               finetune_library: bool, save_as: str | None, save_dir: str | None,
               checkpoint_file: str | None, resume_file: str | None, executor: str | None,
               ray_address: str | None, **settings) -> None:
    """Search for programs that solve TASK (NEAR: A* or branch-and-bound guided by neural
    relaxations) and print the best ones in DSL syntax."""
    from neurosym.library.lifelong import SearchLibrary, save_found, search_productions
    from neurosym.search import synthesize as run_search
    from neurosym.search.display import (
        SearchDisplay,
        no_program,
        print_result,
        result_json,
        save_program,
    )
    from neurosym.tasks.spec import load_task

    task = load_task(task_name)
    found = _open_library(library_path)
    library = SearchLibrary(found.path, finetune_library) if found else None
    with SearchDisplay(out(), enabled=not as_json) as display:
        result = run_search(task, library=library, on_progress=display.update,
                            productions=search_productions(task, library),
                            checkpoint=checkpoint_file, resume=resume_file,
                            executor=executor, ray_address=ray_address, **settings)
    if out_file and result.best is not None:
        save_program(result.best, task, out_file)
    if save_dir and result.best is not None:
        result.save(save_dir)
        click.echo(f"saved the model in {save_dir}", err=True)
    if save_as and result.best is not None:
        store = library or SearchLibrary(Path(library_path) if library_path else
                                         _default_library())
        for entry in save_found(store, result.best, task, save_as, result.config):
            click.echo(f"saved lib.{entry.name}@{entry.version} in {store.path}", err=True)
    if as_json:
        echo_json(result_json(result, task))
    else:
        print_result(result, task, out())
    if result.best is None:
        raise SearchError(no_program(result))


@main.group("task")
def task_group() -> None:
    """Tasks over your own data."""


@task_group.command("init")
@click.argument("name")
@click.option("--train", "train_file", required=True, type=click.Path(dir_okay=False),
              help="Training data: .csv (or .tsv, .txt), .npz, .ts or .arff.")
@click.option("--test", "test_file", default=None, type=click.Path(dir_okay=False),
              help="Test data, in the same format (default: a share of the training data "
                   "held out, see --test-fraction).")
@click.option("--test-fraction", default=None,
              type=click.FloatRange(0, 0.9, min_open=True),
              help="Without --test: the share of the training data held out for testing, "
                   "stratified and the same in every run (default 0.2).")
@click.option("--val", "val_file", default=None, type=click.Path(dir_okay=False),
              help="Validation data (default: a stratified share of the training data).")
@click.option("--target", default=None,
              help="CSV: the target column, by name, or by number from 1 in a file without "
                   "a header row (default: the last column; the first without a header).")
@click.option("--header/--no-header", default=None,
              help="CSV: whether the first row names the columns (default: told from it).")
@click.option("--id-column", default=None,
              help="CSV with one row per time step: the column that names each series.")
@click.option("--time-column", default=None, help="CSV long format: orders each series.")
@click.option("--missing", type=click.Choice(MISSING_POLICIES), default=None,
              help="What a missing value (NaN; in a CSV also an empty cell, NA, ?) does: stop with "
                   "its place (the default), leave its row out, or take its column's mean "
                   "(in new data too).")
@click.option("--ignore", multiple=True, metavar="COLUMN",
              help="CSV: a column that is not an input (a date, a name, a row number); "
                   "repeat for several.")
@click.option("--input-type", default=None,
              help="The input's DSL type, if not the inferred one (e.g. 'List[Vec[3]]').")
@click.option("--regression/--classification", default=None,
              help="Real-valued targets or classes (default: inferred from the targets).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Where to write the task file (default: tasks/NAME.toml).")
@click.option("--force", is_flag=True, help="Replace an existing task file.")
@friendly_errors
def task_init(name: str, train_file: str, test_file: str | None, test_fraction: float | None,
              val_file: str | None, target: str | None, header: bool | None,
              id_column: str | None, time_column: str | None, missing: str | None,
              ignore: tuple[str, ...],
              input_type: str | None, regression: bool | None, out_file: str | None,
              force: bool) -> None:
    """Write tasks/NAME.toml for your data files, its types inferred from the data."""
    from neurosym.tasks.examples import with_missing
    from neurosym.tasks.files import read_examples
    from neurosym.tasks.init import DataFiles, init_task
    from neurosym.tasks.tables import input_columns
    from neurosym.tasks.wide import numbered

    if test_file is not None and test_fraction is not None:
        raise click.UsageError("give --test or --test-fraction, not both")
    if test_file is None and test_fraction is None:
        test_fraction = 0.2
    path = Path(out_file) if out_file else Path("tasks") / f"{name}.toml"
    files = DataFiles(train_file, test_file, val_file, target, id_column, time_column,
                      ignore, test_fraction, missing, header)
    task = init_task(name, files, path, input_type, regression, force)
    what = (f"{len(task.classes)} classes" if task.classes else "a real-valued target")
    click.echo(f"wrote {path}: {task.input_type} -> {task.output_type} ({what}); "
               f"{len(task.train)} train, {len(task.val)} val, {len(task.test)} test examples")
    layout = task.options["data_layout"]
    columns = input_columns(train_file, Path(), layout)
    if columns is not None:
        shown = ", ".join(repr(c) for c in columns[:8]) + (", ..." if len(columns) > 8 else "")
        click.echo(f"inputs: {len(columns)} columns ({shown}); target {layout['target']!r}"
                   + ("" if layout.get("header", True) else " (no header row: columns by "
                      "number; --header if the first row names them)"))
        if input_type is None and numbered(columns):
            click.echo(_wide_layout(columns, task.input_type))
    for given in (train_file, test_file, val_file) if missing in ("drop", "mean") else ():
        left_out = given and with_missing(read_examples(given, Path(), layout), missing).dropped
        if left_out:
            click.echo(f"{given}: left out {left_out} rows with a missing value")
    if categorical := layout.get("categorical"):
        click.echo("categories, one 0/1 feature per name: " + ", ".join(
            f"{column!r} ({len(names)} names)" for column, names in categorical.items()))
    click.echo(f"next: neurosym synthesize {path}")


def _wide_layout(columns: list[str], input_type) -> str:
    """Which way `task init` read numbered columns, and how to choose the other."""
    from neurosym.lang.types import ListT

    span = f"{len(columns)} columns {columns[0]!r}..{columns[-1]!r}"
    if isinstance(input_type, ListT):
        return (f"layout: each row's {span} are the steps of one series ({input_type}); "
                f"to read them as separate features: --input-type 'Vec[{len(columns)}]'")
    return (f"layout: the {span} are separate features (their values do not vary as a "
            "series' steps do); to read each row as one series: --input-type "
            "'List[Vec[1]]'")


@main.command("tasks")
@friendly_errors
def tasks_command() -> None:
    """List the tasks: yours in ./tasks, and the bundled ones."""
    from neurosym.tasks.spec import list_tasks

    table = Table("task", "description", header_style="bold")
    for name, description in list_tasks():
        table.add_row(name, escape(description))
    out().print(table)


@main.command()
@friendly_errors
def primitives() -> None:
    """List the DSL's primitives and their types."""
    from neurosym.interp.registry import PRIMITIVES, implementation

    implementation("map")  # loads the base set, with the docstrings
    table = Table("primitive", "type", "what it does", header_style="bold")
    for name, prim in sorted(PRIMITIVES.items()):
        try:
            shown = str(prim.type_of(()))
        except ValueError as err:
            shown = str(err)
        doc = prim.doc.splitlines()[0] if prim.doc else ""
        table.add_row(name, escape(shown), escape(doc))
    out().print(table)


def _open_library(path: str | None):
    """The library for lib.NAME references: the one named, else the default one if it
    exists (a missing default is no error: most programs use no library, and then the
    store, which needs torch, is not imported)."""
    location = Path(path) if path else _default_library()
    if not path and not (location / "index.sqlite").exists():
        return None
    from neurosym.library.store import Library

    return Library(location)


def _default_library() -> Path:
    from neurosym.library.location import default_library_path

    return default_library_path()


def _attach_subcommands() -> None:
    from neurosym.library.commands import library
    from neurosym.library.lifelong_commands import lifelong, transfer
    from neurosym.models.commands import export_command, predict, show

    for command in (library, lifelong, transfer, predict, show, export_command):
        main.add_command(command)


_attach_subcommands()
