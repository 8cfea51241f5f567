"""The persistent library of learned functions, reused by later programs as `lib.NAME`.
Names are imported on first use: the store needs torch, the command line does not."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"Entry": "entry", "Problem": "entry", "Provenance": "entry", "UnknownEntry": "entry",
          "parse_ref": "entry", "Library": "store", "default_library_path": "location"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"neurosym.library.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'neurosym.library' has no attribute {name!r}")


__all__ = sorted(_WHERE)
