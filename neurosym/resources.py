"""Where the bundled `tasks/` and `dsl/` folders live.

In a checkout they sit at the repository root beside `neurosym/`; in an installed wheel
pyproject force-includes them as `neurosym/_data/tasks` and `neurosym/_data/dsl`. The
checkout copy is only trusted when a `pyproject.toml` sits beside it, so an unrelated
`site-packages/tasks` folder is never picked up by mistake.
"""

from __future__ import annotations

import sys
from pathlib import Path

from neurosym.lang.errors import NeurosymError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_PACKAGE = Path(__file__).resolve().parent


def _resource_dir(name: str) -> Path:
    root = _PACKAGE.parent
    checkout = root / name
    if checkout.is_dir() and (root / "pyproject.toml").is_file():
        return checkout
    return _PACKAGE / "_data" / name


def tasks_dir() -> Path:
    """Folder of the bundled task specs (`NAME.toml`)."""
    return _resource_dir("tasks")


def dsl_dir() -> Path:
    """Folder of the bundled DSL sources (`*.ns`)."""
    return _resource_dir("dsl")


def read_toml(path: Path, error: type[NeurosymError], what: str) -> dict:
    """A TOML file of ours (task, sequence, production set), or `error` naming the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise error(f"{path}: cannot read the {what}: {err}") from None
    except RecursionError:
        raise error(f"{path}: cannot read the {what}: arrays or tables nested too "
                    "deeply") from None
