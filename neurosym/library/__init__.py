"""The persistent library of learned functions, reused by later programs as `lib.NAME`."""

from neurosym.library.entry import Entry, Problem, Provenance, UnknownEntry, parse_ref
from neurosym.library.store import Library, default_library_path

__all__ = ["Entry", "Library", "Problem", "Provenance", "UnknownEntry", "default_library_path",
           "parse_ref"]
