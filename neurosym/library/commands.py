"""`neurosym library ...`: look at and look after the persistent library. Every
NeurosymError (and every OS error) becomes one clear message and exit code 1."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from neurosym.console import echo_json, friendly_errors
from neurosym.library.entry import Entry, parse_ref
from neurosym.library.location import ENV_VAR, default_library_path

if TYPE_CHECKING:
    from neurosym.library.store import Library


@click.group()
@click.option("--library", "library_path", type=click.Path(file_okay=False, path_type=Path),
              envvar=ENV_VAR, default=None,
              help="Library directory (default: $NEUROSYM_LIBRARY, else ./library_store).")
@click.pass_context
def library(ctx: click.Context, library_path: Path | None) -> None:
    """The library of learned functions that programs reuse as lib.NAME."""
    from neurosym.library.store import Library

    ctx.obj = Library(library_path or default_library_path())


def _use_library(ctx: click.Context, param: click.Parameter, path: Path | None) -> None:
    if path is not None:
        from neurosym.library.store import Library

        ctx.obj = Library(path)


library_option = click.option(
    "--library", type=click.Path(file_okay=False, path_type=Path), default=None,
    expose_value=False, callback=_use_library, is_eager=True,
    help="Library directory (as before the subcommand).")


@library.command("list")
@library_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable entries.")
@click.pass_obj
@friendly_errors
def list_entries(lib: Library, as_json: bool) -> None:
    """List every entry: name, type, version, task, metric, date."""
    entries = lib.entries()
    if as_json:
        echo_json([e.to_dict() for e in entries])
        return
    if not entries:
        click.echo(f"the library at {lib.path} is empty")
        return
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, show_edge=False)
    for col in ("name", "type", "version", "task", "metric", "date"):
        # names, types and dates stay whole; task and metric fold when the terminal is narrow
        table.add_column(col, overflow="fold", no_wrap=col in ("name", "type", "version", "date"),
                         min_width=8 if col in ("task", "metric") else None,
                         justify="right" if col == "version" else "left")
    for e in entries:
        cells = (e.name, e.type, str(e.version), e.provenance.task or "-", _metric(e),
                 e.provenance.date[:10] or "-")
        table.add_row(*(Text(c) for c in cells))  # Text: `Vec[3]` is not markup
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 160)  # piped output is not cut at 80 columns
    console.print(table)


@library.command()
@library_option
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--json", "as_json", is_flag=True, help="Print the entry as JSON.")
@click.pass_obj
@friendly_errors
def show(lib: Library, ref: str, as_json: bool) -> None:
    """Show one entry (the newest version unless @VERSION is given)."""
    entry = lib.get(*parse_ref(ref))
    if as_json:
        echo_json(entry.to_dict())
        return
    p = entry.provenance
    versions = ", ".join(str(e.version) for e in lib.entries(entry.name))
    rows = [("type", entry.type), ("source", entry.source), ("versions", versions),
            ("parameters", str(entry.parameters)), ("task", p.task or "-"),
            ("date", p.date or "-"), ("seed", _or_dash(p.seed)),
            ("data size", _or_dash(p.data_size)),
            ("metrics", ", ".join(f"{k}={v:.4g}" for k, v in p.metrics.items()) or "-"),
            ("parents", ", ".join(p.parents) or "-"),
            ("uses", ", ".join(entry.spec.get("depends", ())) or "-"),
            ("weights", f"{lib.weights_path(entry)} (sha256 {entry.sha256[:16]}...)"),
            ("format", str(entry.format))]
    click.echo(f"lib.{entry.ref}")
    for key, value in rows:
        click.echo(f"  {key + ':':<12} {value}")


@library.command("rm")
@library_option
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--force", is_flag=True, help="Remove even if other entries use it.")
@click.pass_obj
@friendly_errors
def remove(lib: Library, ref: str, force: bool) -> None:
    """Remove one version, or every version of NAME. Versions are never reused."""
    removed = lib.remove(*parse_ref(ref), force=force)
    click.echo(f"removed {', '.join(e.ref for e in removed)}")


@library.command("export")
@library_option
@click.argument("ref", metavar="NAME[@VERSION]")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
@friendly_errors
def export(lib: Library, ref: str, file: Path) -> None:
    """Write an entry, and the entries it uses, to one archive FILE."""
    name, version = parse_ref(ref)
    entries = lib.export(name, file, version)
    used = f" (with {', '.join(e.ref for e in entries[:-1])})" if len(entries) > 1 else ""
    click.echo(f"exported {entries[-1].ref}{used} to {file}")


@library.command("import")
@library_option
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
@friendly_errors
def import_(lib: Library, file: Path) -> None:
    """Add the entries of an archive made by `export`."""
    entries = lib.import_(file)
    click.echo(f"imported {', '.join(e.ref for e in entries)} into {lib.path}")


@library.command()
@library_option
@click.pass_obj
@friendly_errors
def verify(lib: Library) -> None:
    """Check that every entry loads and no stray files lie around; exit 1 on problems."""
    problems = lib.verify()
    for problem in problems:
        click.echo(f"problem: {problem}")
    if problems:
        click.echo(f"{len(problems)} problem(s) in the library at {lib.path}", err=True)
        raise click.exceptions.Exit(1)
    count = len(lib.entries())
    click.echo(f"{count} entr{'y' if count == 1 else 'ies'} OK in {lib.path}")


def _metric(e: Entry) -> str:
    if not e.provenance.metrics:
        return "-"
    key, value = next(iter(e.provenance.metrics.items()))
    return f"{key}={value:.4g}"


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)
