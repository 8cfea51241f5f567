"""Moving entries between libraries: one zip archive holding `manifest.json` (the entries'
index rows) and their safetensors weights. An archive carries the entries its function uses
(`lib.X@V` in its source), so it can be rebuilt wherever it is imported. Nothing in an
archive is trusted: the manifest is validated, member paths are derived from entry names
(never taken from the file), weights are checked against their checksums and against the
module their source rebuilds before anything is stored."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from neurosym.lang import ast
from neurosym.lang.errors import LibraryError, NeurosymError
from neurosym.lang.parser import parse_term
from neurosym.lang.printer import show
from neurosym.library import files
from neurosym.library.entry import FORMAT, Entry, Provenance

if TYPE_CHECKING:
    from neurosym.library.store import Library

MAGIC = "neurosym-library-archive"
ARCHIVE_FORMAT = 1
MANIFEST = "manifest.json"


def export_entries(library: Library, entry: Entry, file: Path) -> list[Entry]:
    """Write `entry` and everything it depends on (dependencies first) to `file`."""
    entries = _closure(library, entry)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        manifest = {"format": MAGIC, "format_version": ARCHIVE_FORMAT,
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "entries": [e.to_dict() for e in entries]}
        zf.writestr(MANIFEST, json.dumps(manifest, indent=2))
        for e in entries:
            data = files.read_checked(library.weights_path(e), e.sha256, e.ref)
            zf.writestr(f"weights/{e.weights_file}", data)
    files.write_atomic(file.absolute(), buffer.getvalue())
    return entries


def _closure(library: Library, entry: Entry) -> list[Entry]:
    order: list[Entry] = []

    def visit(e: Entry, path: tuple[str, ...]) -> None:
        if any(o.ref == e.ref for o in order):
            return
        if e.ref in path:
            raise LibraryError(f"{e.ref} depends on itself ({' -> '.join(path)})")
        for dep in e.spec.get("depends", ()):
            name, _, version = str(dep).partition("@")
            visit(library.get(name, int(version)), (*path, e.ref))
        order.append(e)

    visit(entry, ())
    return order


def import_entries(library: Library, file: Path) -> list[Entry]:
    """Store the archive's entries; ones already here (same source, type and weights) are
    reused, others get the next free version, and sources are re-pinned to match."""
    with _open(file) as zf:
        manifest = _manifest(zf, file)
        mapping: dict[str, str] = {}
        result: list[Entry] = []
        for raw in manifest["entries"]:
            entry = Entry.from_dict(raw) if isinstance(raw, dict) else _bad(file, "an entry")
            if entry.format > FORMAT:
                raise LibraryError(f"{file}: {entry.ref} was written by a newer neurosym (entry "
                                   f"format {entry.format}; this version reads up to {FORMAT})")
            data = _member(zf, file, f"weights/{entry.weights_file}")
            data_file = f"{file}!weights/{entry.weights_file}"
            if hashlib.sha256(data).hexdigest() != entry.sha256:
                raise LibraryError(f"{data_file} is damaged: the checksum does not match")
            state = files.parse_weights(data, data_file)
            spec = _repin(entry, mapping, file)
            stored = _existing(library, entry, spec, state) or library.store(
                entry.name, spec, state, entry.parameters, _remap(entry.provenance, mapping))
            mapping[entry.ref] = stored.ref
            result.append(stored)
    return result


def _open(file: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(file)
    except FileNotFoundError:
        raise LibraryError(f"{file}: no such file") from None
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise LibraryError(f"{file} is not a neurosym library archive ({err})") from None


def _bad(file: Path, what: str):
    raise LibraryError(f"{file} is not a valid neurosym library archive: bad {what}")


def _member(zf: zipfile.ZipFile, file: Path, name: str) -> bytes:
    try:
        return zf.read(name)
    except KeyError:
        raise LibraryError(f"{file} is not a valid neurosym library archive: {name} is "
                           "missing") from None
    except (zipfile.BadZipFile, OSError, ValueError) as err:  # includes CRC errors
        raise LibraryError(f"{file}: cannot read {name}: {err}") from None


def _manifest(zf: zipfile.ZipFile, file: Path) -> dict:
    if MANIFEST not in zf.namelist():
        raise LibraryError(f"{file} is not a neurosym library archive (it has no {MANIFEST})")
    try:
        manifest = json.loads(_member(zf, file, MANIFEST))
    except ValueError:
        _bad(file, MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != MAGIC:
        raise LibraryError(f"{file} is not a neurosym library archive (its {MANIFEST} is "
                           "someone else's)")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        _bad(file, "format_version")
    if version > ARCHIVE_FORMAT:
        raise LibraryError(f"{file} was written by a newer neurosym (archive format {version}; "
                           f"this version reads up to {ARCHIVE_FORMAT})")
    if not isinstance(manifest.get("entries"), list) or not manifest["entries"]:
        _bad(file, "entry list")
    return manifest


def _repin(entry: Entry, mapping: dict[str, str], file: Path) -> dict:
    """The entry's spec with its `lib.X@V` references renamed to the versions they got here."""
    from neurosym.library.store import map_term

    if entry.spec.get("kind") != "term":
        raise LibraryError(f"{file}: {entry.ref} has an unknown module kind "
                           f"{entry.spec.get('kind')!r}")

    def rename(node: ast.Term) -> ast.Term:
        if not isinstance(node, ast.LibRef):
            return node
        ref = f"{node.name}@{node.version}"
        if ref not in mapping:
            raise LibraryError(f"{file}: {entry.ref} uses lib.{ref}, which the archive does not "
                               "contain before it")
        name, _, version = mapping[ref].partition("@")
        return replace(node, name=name, version=int(version))

    try:
        term = map_term(parse_term(str(entry.spec.get("source"))), rename)
    except NeurosymError as err:
        raise LibraryError(f"{file}: {entry.ref} has an unreadable source: {err.message}") from None
    depends = sorted({mapping[d] for d in entry.spec.get("depends", ()) if d in mapping})
    return {**entry.spec, "source": show(term), "depends": depends}


def _existing(library: Library, entry: Entry, spec: dict, state: dict) -> Entry | None:
    """A version already here with the same type, source, build and weights, if any."""
    for have in library.entries(entry.name):
        if have.type != entry.type or have.spec != spec:
            continue
        try:
            mine = files.read_weights(library.weights_path(have), have.sha256, have.ref)
        except LibraryError:
            continue
        if mine.keys() == state.keys() and all(_same(mine[k], state[k]) for k in state):
            return have
    return None


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


def _remap(provenance: Provenance, mapping: dict[str, str]) -> Provenance:
    return replace(provenance, parents=tuple(mapping.get(p, p) for p in provenance.parents))
