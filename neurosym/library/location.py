"""Where the library lives by default (kept apart from the store, which needs torch, so
that the command line can name it without importing torch)."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "NEUROSYM_LIBRARY"


def default_library_path() -> Path:
    """`$NEUROSYM_LIBRARY`, else `library_store/` in the working directory."""
    return Path(os.environ.get(ENV_VAR) or "library_store")
