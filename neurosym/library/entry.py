"""What the library stores about a learned function: plain frozen data, kept apart from the
storage code so that the CLI, the archive format and the lifelong loop can share it."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from neurosym.lang.errors import LibraryError

FORMAT = 1  # entry and index format this code writes; it reads this and older ones
NAME_RE = re.compile(r"[a-z_][A-Za-z0-9_]{0,99}")  # what `lib.NAME` accepts in the grammar


class UnknownEntry(LibraryError, KeyError):
    """No such entry. A KeyError too, because the checker asks `signature` for names that
    may not exist and turns a KeyError into a located type error."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a learned function came from: enough to judge and to reproduce it."""

    task: str = ""
    date: str = ""  # ISO 8601; filled in at save time when empty
    seed: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    data_size: int | None = None
    parents: tuple[str, ...] = ()  # "NAME@VERSION" of the entries it was derived from

    def stamped(self) -> Provenance:
        if self.date:
            return self
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return Provenance(self.task, now, self.seed, dict(self.metrics), self.data_size,
                          self.parents)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["parents"] = list(self.parents)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        """Lenient: unknown keys (from a newer writer) are ignored, missing ones defaulted."""
        seed, size = data.get("seed"), data.get("data_size")
        return cls(task=str(data.get("task") or ""), date=str(data.get("date") or ""),
                   seed=int(seed) if seed is not None else None,
                   metrics={str(k): float(v) for k, v in dict(data.get("metrics") or {}).items()},
                   data_size=int(size) if size is not None else None,
                   parents=tuple(str(p) for p in data.get("parents") or ()))


@dataclass(frozen=True, slots=True)
class Entry:
    """One version of one library function, as recorded in the index."""

    name: str
    version: int
    type: str  # DSL type text; `neurosym.lang.parser.parse_type` reads it
    source: str  # DSL text of the function, library references pinned to versions
    spec: dict[str, Any]  # how to rebuild the module before loading the weights
    provenance: Provenance
    parameters: int
    format: int
    sha256: str  # of the weights file: a truncated or altered file is caught on load

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def weights_file(self) -> str:
        return f"{self.ref}.safetensors"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "type": self.type,
                "source": self.source, "spec": self.spec,
                "provenance": self.provenance.to_dict(), "parameters": self.parameters,
                "format": self.format, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        """Validate untrusted data (an archive's manifest) into an Entry."""
        try:
            entry = cls(name=str(data["name"]), version=int(data["version"]),
                        type=str(data["type"]), source=str(data["source"]),
                        spec=dict(data["spec"]),
                        provenance=Provenance.from_dict(dict(data.get("provenance") or {})),
                        parameters=int(data.get("parameters") or 0),
                        format=int(data.get("format") or FORMAT), sha256=str(data["sha256"]))
        except (KeyError, TypeError, ValueError) as err:
            raise LibraryError(f"malformed library entry {data!r:.80}: {err}") from None
        check_name(entry.name)
        if entry.version < 1:
            raise LibraryError(f"malformed library entry {entry.ref}: versions start at 1")
        return entry


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing `verify` found wrong; `entry` is None for files that belong to no entry."""

    entry: str | None
    path: str | None
    message: str

    def __str__(self) -> str:
        where = self.entry or self.path or "library"
        return f"{where}: {self.message}"


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise LibraryError(f"invalid library name {name!r}: use lower-case letters, digits and "
                           "underscores, starting with a letter or underscore (as in lib.NAME)")
    return name


def parse_ref(text: str) -> tuple[str, int | None]:
    """`NAME`, `NAME@VERSION` or `lib.NAME@VERSION` -> (name, version or None)."""
    body = text.removeprefix("lib.")
    name, at, version = body.partition("@")
    check_name(name)
    if not at:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise LibraryError(f"invalid version in {text!r}: expected NAME@N with N >= 1")
    return name, int(version)
