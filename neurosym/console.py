"""What every command shares: a console that follows the terminal, and errors reported as
one clear message (exit code 1) instead of a traceback."""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from typing import Any

import click
from rich.console import Console

from neurosym.lang.errors import NeurosymError


def out() -> Console:
    """A console made per call, so it follows the current terminal (and COLUMNS). Written
    to a pipe or a file, lines are not wrapped: rich would cut them at 80 columns, mid
    phrase (`(majority baseline` on one line, `0.2500)` on the next)."""
    console = Console(highlight=False)
    console.soft_wrap = not console.is_terminal
    return console


def report(err: NeurosymError) -> None:
    """Errors go out as plain text: rich would re-wrap the caret line."""
    click.echo(err.format(), err=True)


DEBUG_VAR = "NEUROSYM_DEBUG"


def friendly_errors(fn):
    """Turn neurosym's errors into `file:line:col: error: ...`, and a file that cannot be
    read or written into one line: both are the user's to fix (exit code 1). Anything else
    is a bug: one line saying so and how to see the traceback (exit code 2), or the
    traceback itself with `--debug` / NEUROSYM_DEBUG=1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NeurosymError as err:
            report(err)
        except OSError as err:
            click.echo(f"error: {err}", err=True)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as err:  # noqa: BLE001  (reported, not swallowed)
            if os.environ.get(DEBUG_VAR):
                raise
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            click.echo(f"internal error (a bug in neurosym, please report it): "
                       f"{type(err).__name__}: {first}\nrun again with --debug "
                       f"(or {DEBUG_VAR}=1) to see the traceback", err=True)
            sys.exit(2)
        sys.exit(1)

    return wrapper


def clean(value: Any) -> Any:
    """JSON-ready: floats to 6 significant digits (no float32 noise such as 0.949999988),
    non-finite floats to None (JSON has no NaN or Infinity), containers recursively."""
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def echo_json(value: Any) -> None:
    click.echo(json.dumps(clean(value), indent=2))
