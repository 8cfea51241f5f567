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


MAX_KEY_PARTS = 64  # dotted keys deeper than this are refused (the parser is quadratic in it)


def read_toml(path: Path, error: type[NeurosymError], what: str) -> dict:
    """A TOML file of ours (task, sequence, production set), or `error` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
        _check_key_depth(text, path, error)
        return tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as err:
        # ValueError: an integer of more than 4,300 digits
        raise error(f"{path}: cannot read the {what}: {str(err)[:200]}") from None
    except RecursionError:  # arrays nested thousands deep
        raise error(f"{path}: cannot read the {what}: arrays or tables nested too "
                    "deeply") from None


def _check_key_depth(text: str, path: Path, error: type[NeurosymError]) -> None:
    for number, line in enumerate(text.splitlines(), 1):
        key = line.split("=", 1)[0] if "=" in line else line
        if key.count(".") > MAX_KEY_PARTS and '"' not in key and "'" not in key:
            raise error(f"{path}:{number}: a key of more than {MAX_KEY_PARTS} dotted parts")
