"""Source text -> checked program, with every error located in its file."""

from __future__ import annotations

from pathlib import Path

from neurosym.lang.checker import Checked, LibraryTypes, check_program
from neurosym.lang.errors import DSLTypeError, NeurosymError
from neurosym.lang.parser import parse_program


def check_source(text: str, filename: str = "<input>",
                 library: LibraryTypes | None = None) -> Checked:
    """Parse and type-check; errors carry `filename` and the text for caret display."""
    program = parse_program(text, filename)
    try:
        return check_program(program, library)
    except NeurosymError as err:
        raise err.located(text, filename) from None
    except RecursionError:
        raise DSLTypeError("the program is nested too deeply to check; split it into "
                           "definitions").located(text, filename) from None


def check_file(path: str | Path, library: LibraryTypes | None = None) -> Checked:
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise NeurosymError(f"cannot read {path}: {err}") from None
    return check_source(text, str(path), library)
