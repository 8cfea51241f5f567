"""The persistent library: learned functions with their DSL types, reused by later programs
as `lib.NAME` or `lib.NAME@VERSION`.

On disk (see library_store/README.md): `index.sqlite` (one row per entry) and
`weights/NAME@VERSION.safetensors`. Weights are safetensors, never pickle, so opening a
library someone shared cannot run their code. A save writes the weights to a temp file,
renames it into place, then commits the index row; all under a file lock, so concurrent
runs never corrupt the store and a crash in between only leaves an orphan file, which is
ignored (and reported by `verify`). A damaged entry raises a LibraryError naming it; the
others keep working.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from neurosym.lang import ast
from neurosym.lang.errors import LibraryError, NeurosymError
from neurosym.lang.parser import parse_term, parse_type
from neurosym.lang.printer import show
from neurosym.lang.types import Type, free_vars
from neurosym.library import files
from neurosym.library.entry import FORMAT, Entry, Problem, Provenance, UnknownEntry, check_name
from neurosym.library.location import ENV_VAR, default_library_path  # noqa: F401 (re-export)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS names (name TEXT PRIMARY KEY, last_version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    name TEXT NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL, source TEXT NOT NULL,
    spec TEXT NOT NULL, provenance TEXT NOT NULL, parameters INTEGER NOT NULL,
    format INTEGER NOT NULL, sha256 TEXT NOT NULL, PRIMARY KEY (name, version));
"""
_COLUMNS = "name, version, type, source, spec, provenance, parameters, format, sha256"
State = dict[str, torch.Tensor]


@dataclass(frozen=True, slots=True)
class Library:
    """A handle on a library directory. Cheap, picklable (for worker processes), and lazy:
    nothing is created on disk until the first save. `finetune` is the per-run choice
    `module` makes when not told: frozen (the default) or trainable library functions."""

    path: Path = field(default_factory=default_library_path)
    finetune: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).absolute())

    @property
    def index_path(self) -> Path:
        return self.path / "index.sqlite"

    @property
    def weights_dir(self) -> Path:
        return self.path / "weights"

    def weights_path(self, entry: Entry) -> Path:
        return self.weights_dir / entry.weights_file

    # -- reading ---------------------------------------------------------------------------
    def entries(self, name: str | None = None) -> list[Entry]:
        """Every entry (or every version of `name`), by name then version."""
        where, args = ("WHERE name = ?", (name,)) if name is not None else ("", ())
        with self._read() as conn:
            if conn is None:
                return []
            rows = conn.execute(f"SELECT {_COLUMNS} FROM entries {where} "
                                "ORDER BY name, version", args).fetchall()
        return [_entry(row) for row in rows]

    def get(self, name: str, version: int | None = None) -> Entry:
        """The entry `name@version`, or the newest version of `name`."""
        versions = self.entries(name)
        if not versions:
            known = sorted({e.name for e in self.entries()})
            hint = f"; it has {', '.join(known[:12])}" if known else " (it is empty)"
            raise UnknownEntry(f"no entry named '{name}' in the library at {self.path}{hint}")
        if version is None:
            return versions[-1]
        for entry in versions:
            if entry.version == version:
                return entry
        have = ", ".join(str(e.version) for e in versions)
        raise UnknownEntry(f"'{name}' has no version {version} (versions: {have})")

    def signature(self, name: str, version: int | None = None) -> Type:
        """The DSL type of `lib.name@version`, for the type checker."""
        return _type_of(self.get(name, version), self.path)

    def module(self, name: str, version: int | None = None,
               finetune: bool | None = None) -> tuple[nn.Module, Type]:
        """A fresh module computing `lib.name@version` (called with the function's batched
        arguments) and its type. Frozen (no gradients) unless fine-tuning."""
        entry = self.get(name, version)
        module = self._load(entry)
        module.origin = entry.ref  # a model carrying it names it so
        trainable = self.finetune if finetune is None else finetune
        for p in module.parameters():
            p.requires_grad_(trainable)
        return module, _type_of(entry, self.path)

    def _load(self, entry: Entry) -> nn.Module:
        if entry.format > FORMAT:
            raise LibraryError(f"{self.path}: {entry.ref} was written by a newer neurosym "
                               "(entry format "
                               f"{entry.format}; this version reads up to {FORMAT}): upgrade "
                               "neurosym to use it")
        state = files.read_weights(self.weights_path(entry), entry.sha256, entry.ref)
        module = self._rebuild(entry.ref, entry.spec)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise LibraryError(f"{self.path}: {entry.ref}: the stored weights do not fit the "
                               "module rebuilt "
                               f"from its source (was it saved by another neurosym version?): "
                               f"{_first_line(err)}") from None
        return module

    def _rebuild(self, ref: str, spec: dict) -> nn.Module:
        """The module a spec describes, with fresh parameters."""
        from neurosym.interp.compiler import compile_term
        from neurosym.lang.checker import check_term

        if spec.get("kind") != "term":
            raise LibraryError(f"{self.path}: {ref}: unknown module kind "
                               f"{spec.get('kind')!r} (written by a "
                               "newer neurosym?)")
        try:
            term = parse_term(str(spec["source"]))
            checked = check_term(term, parse_type(str(spec["type"])), library=self)
            return compile_term(term, checked, library=self, hidden=int(spec.get("hidden", 32)))
        except (NeurosymError, KeyError, TypeError, ValueError) as err:
            message = err.message if isinstance(err, NeurosymError) else repr(err)
            raise LibraryError(f"{self.path}: {ref}: cannot rebuild its module: "
                               f"{message}") from None

    # -- writing ---------------------------------------------------------------------------
    def save(self, name: str, term_source: str, type: Type | str, module: nn.Module,
             provenance: Provenance | None = None, hidden: int | None = None) -> Entry:
        """Store `module` (compiled from `term_source` checked against `type`) as the next
        version of `name`. The module's parameters must be those of that compiled term:
        this is checked now, so that every stored entry can be rebuilt later."""
        check_name(name)
        typ = parse_type(type) if isinstance(type, str) else type
        if free_vars(typ):
            raise LibraryError(f"cannot store '{name}': its type {typ} must be concrete")
        term = self._pin(parse_term(term_source))
        spec = {"kind": "term", "source": show(term), "type": str(typ),
                "hidden": hidden or _hidden_of(module),
                "depends": sorted({f"{n}@{v}" for n, v in _lib_refs(term)})}
        state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
        parameters = sum(p.numel() for p in module.parameters())
        return self.store(name, spec, state, parameters, provenance or Provenance())

    def store(self, name: str, spec: dict, state: State, parameters: int,
              provenance: Provenance) -> Entry:
        """Check `state` against the module `spec` rebuilds, then commit it as a new version.
        (`save` and `import_` both end here.)"""
        _fits(name, state, self._rebuild(name, spec).state_dict())
        data, sha = files.encode_weights(state)
        with self._write() as conn:
            version = _next_version(conn, name)
            entry = Entry(name, version, str(spec["type"]), str(spec["source"]), spec,
                          provenance.stamped(), parameters, FORMAT, sha)
            files.write_atomic(self.weights_path(entry), data)
            _insert(conn, entry)
        return entry

    def remove(self, name: str, version: int | None = None, force: bool = False) -> list[Entry]:
        """Remove one version (or all versions) of `name`. Versions are never reused, so a
        program pinned to `lib.name@v` cannot silently get a different function later.
        Refuses to break entries built on the removed ones unless `force`."""
        with self._write() as conn:
            doomed = [self.get(name, version)] if version is not None else self.entries(name)
            if not doomed:
                self.get(name)  # raises UnknownEntry with the names it has
            refs = {e.ref for e in doomed}
            users = [e.ref for e in self.entries() if e.ref not in refs
                     and refs & set(e.spec.get("depends", ()))]
            if users and not force:
                raise LibraryError(f"{', '.join(sorted(users))} use(s) "
                                   f"{', '.join(sorted(refs))}; remove those first or force")
            conn.executemany("DELETE FROM entries WHERE name = ? AND version = ?",
                             [(e.name, e.version) for e in doomed])
        for entry in doomed:  # after the commit: a crash here only leaves orphan files
            self.weights_path(entry).unlink(missing_ok=True)
        return doomed

    def _pin(self, term: ast.Term) -> ast.Term:
        """Resolve `lib.NAME` to `lib.NAME@VERSION` so the stored source means one thing."""
        def pin(node: ast.Term) -> ast.Term:
            if isinstance(node, ast.LibRef) and node.version is None:
                return replace(node, version=self.get(node.name).version)
            return node

        return map_term(term, pin)

    # -- checking and moving -----------------------------------------------------------------
    def verify(self) -> list[Problem]:
        """Everything wrong with the store: entries that do not load, stray files."""
        problems = files.index_problems(self.index_path)
        if problems:
            return problems
        entries = self.entries()
        for entry in entries:
            try:
                self._load(entry)
            except LibraryError as err:
                problems.append(Problem(entry.ref, str(self.weights_path(entry)), err.message))
        return problems + files.stray_files(self.path, {e.weights_file for e in entries})

    def export(self, name: str, file: str | Path, version: int | None = None) -> list[Entry]:
        """Write `name@version` and the entries it uses to one self-describing archive."""
        from neurosym.library.archive import export_entries

        return export_entries(self, self.get(name, version), Path(file))

    def import_(self, file: str | Path) -> list[Entry]:
        """Add the entries of an archive made by `export`; returns them as stored here."""
        from neurosym.library.archive import import_entries

        return import_entries(self, Path(file))

    # -- the index -------------------------------------------------------------------------
    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection | None]:
        if not self.index_path.exists():
            yield None
            return
        with files.connect(self.index_path) as conn:
            if files.format_of(conn) is None:
                yield None
            else:
                yield conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One locked transaction: commits if the block finishes, rolls back otherwise."""
        try:
            self.weights_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise LibraryError(f"cannot create the library at {self.path}: {err}") from None
        with files.locked(self.path / ".lock"):
            files.remove_temp_files(self.weights_dir)  # only a crashed writer leaves these
            with files.connect(self.index_path) as conn:
                conn.executescript(_SCHEMA)
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (str(FORMAT),))
                files.format_of(conn)  # refuses an index from a newer neurosym
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")


def map_term(term: ast.Term, fn) -> ast.Term:
    """Rebuild a term bottom-up, applying `fn` to every node."""
    match term:
        case ast.Lam(_, body):
            term = replace(term, body=map_term(body, fn))
        case ast.Let(_, value, body):
            term = replace(term, value=map_term(value, fn), body=map_term(body, fn))
        case ast.App(f, args):
            term = replace(term, fn=map_term(f, fn), args=tuple(map_term(a, fn) for a in args))
    return fn(term)


def _type_of(entry: Entry, library: Path) -> Type:
    try:
        return parse_type(entry.type)
    except NeurosymError as err:
        raise LibraryError(f"{library}: {entry.ref}: cannot read its type {entry.type!r}: "
                           f"{err.message}") from None


def _lib_refs(term: ast.Term) -> set[tuple[str, int | None]]:
    return {(t.name, t.version) for t in ast.subterms(term) if isinstance(t, ast.LibRef)}


def _hidden_of(module: nn.Module) -> int:
    """The hidden width the module's relaxations were built with (it shapes their weights)."""
    from neurosym.relax.networks import Relaxation

    for m in module.modules():
        if isinstance(m, Relaxation) and isinstance(m.head, nn.Sequential):
            return int(m.head[0].out_features)
    return 32


def _fits(name: str, state: State, expected: dict[str, torch.Tensor]) -> None:
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and (state[k].shape != expected[k].shape
                                                    or state[k].dtype != expected[k].dtype)]
    if missing or extra or wrong:
        detail = "; ".join(f"{what}: {', '.join(keys[:4])}" for what, keys in
                           (("missing", missing), ("unexpected", extra), ("wrong shape", wrong))
                           if keys)
        raise LibraryError(f"cannot store '{name}': the module is not the one its source and "
                           f"type compile to ({detail})")


def _next_version(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT last_version FROM names WHERE name = ?", (name,)).fetchone()
    top = conn.execute("SELECT MAX(version) FROM entries WHERE name = ?", (name,)).fetchone()
    version = max(row[0] if row else 0, top[0] or 0) + 1
    conn.execute("INSERT OR REPLACE INTO names VALUES (?, ?)", (name, version))
    return version


def _insert(conn: sqlite3.Connection, entry: Entry) -> None:
    conn.execute(f"INSERT INTO entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (entry.name, entry.version, entry.type, entry.source, json.dumps(entry.spec),
                  json.dumps(entry.provenance.to_dict()), entry.parameters, entry.format,
                  entry.sha256))


def _entry(row: tuple) -> Entry:
    name, version, typ, source, spec, prov, parameters, fmt, sha = row
    try:
        spec_dict, prov_dict = json.loads(spec), json.loads(prov)
        provenance = Provenance.from_dict(prov_dict if isinstance(prov_dict, dict) else {})
    except (ValueError, TypeError):
        spec_dict, provenance = {"kind": "unreadable"}, Provenance()
    return Entry(name, int(version), typ, source, spec_dict if isinstance(spec_dict, dict)
                 else {"kind": "unreadable"}, provenance, int(parameters), int(fmt), sha)


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return " ".join(lines[:3])
