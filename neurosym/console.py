"""What every command shares: a console that follows the terminal, and errors reported as
one clear message (exit code 1) instead of a traceback."""

from __future__ import annotations

import functools
import json
import math
import sys
from typing import Any

import click
from rich.console import Console

from neurosym.lang.errors import NeurosymError


def out() -> Console:
    """A console made per call, so it follows the current terminal (and COLUMNS)."""
    return Console(highlight=False)


def report(err: NeurosymError) -> None:
    """Errors go out as plain text: rich would re-wrap the caret line."""
    click.echo(err.format(), err=True)


def friendly_errors(fn):
    """Turn neurosym's errors into `file:line:col: error: ...`, and a file that cannot be
    read or written into one line: both are the user's to fix. Exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NeurosymError as err:
            report(err)
        except OSError as err:
            click.echo(f"error: {err}", err=True)
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
