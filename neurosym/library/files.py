"""The library's file handling: the sqlite index connection, atomic writes, checked weight
reads, and the scan for files that belong to no entry. Every OS or sqlite failure becomes a
LibraryError that says which file, so the CLI never shows a traceback."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import safetensors.torch
import torch
from filelock import FileLock

from neurosym.lang.errors import LibraryError
from neurosym.library.entry import FORMAT, Problem

TEMP_PREFIX = ".tmp-"
KNOWN = {"index.sqlite", "index.sqlite-journal", "index.sqlite-wal", "index.sqlite-shm",
         ".lock", "weights", "README.md"}
_UMASK = os.umask(0o022)  # read the umask (there is no getter) and put it back at once
os.umask(_UMASK)
_CACHE: dict[tuple, dict[str, torch.Tensor]] = {}  # loaded weights, keyed by file identity
_CACHE_SIZE = 64


@contextmanager
def connect(index: Path) -> Iterator[sqlite3.Connection]:
    """An autocommit connection (transactions are explicit), closed afterwards."""
    try:
        conn = sqlite3.connect(index, timeout=60, isolation_level=None)
    except sqlite3.Error as err:
        raise LibraryError(f"cannot open the library index {index}: {err}") from None
    try:
        yield conn
    except sqlite3.OperationalError as err:
        raise LibraryError(f"cannot use the library index {index}: {err}") from None
    except (sqlite3.DatabaseError, UnicodeDecodeError) as err:
        raise LibraryError(f"the library index {index} is damaged or not a neurosym index: "
                           f"{err}") from None
    finally:
        conn.close()


@contextmanager
def locked(lock_path: Path, timeout: float = 600) -> Iterator[None]:
    """Hold the library's write lock (other processes wait for it, up to `timeout` s)."""
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=timeout)
    except OSError as err:  # includes filelock.Timeout
        raise LibraryError(f"cannot lock the library ({lock_path}): {err}") from None
    try:
        yield
    finally:
        lock.release()


def format_of(conn: sqlite3.Connection) -> int | None:
    """The index's format, None for an empty index; refuses one from a newer neurosym."""
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                            "name = 'meta'").fetchone()
    if not has_meta:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    fmt = int(row[0]) if row and str(row[0]).isdigit() else None
    if fmt is not None and fmt > FORMAT:
        raise LibraryError(f"this library was written by a newer neurosym (index format {fmt}; "
                           f"this version reads up to {FORMAT}): upgrade neurosym to use it")
    return fmt


def encode_weights(state: dict[str, torch.Tensor]) -> tuple[bytes, str]:
    """A module's weights as a safetensors file's bytes and their SHA-256: equal weights give
    equal bytes (one metadata key: safetensors writes several in hash order), so a model
    that carries a library function can name it by the hash its entry has."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    data = safetensors.torch.save(tensors, metadata={"neurosym.format": str(FORMAT)})
    return data, hashlib.sha256(data).hexdigest()


def write_atomic(target: Path, data: bytes, error: type[Exception] = LibraryError) -> None:
    """Write to a temp file beside `target`, flush it to disk, then rename over `target`:
    readers see the old file or the new one, never half of one. A failure is `error`."""
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX, suffix=".part")
    except OSError as err:
        raise error(f"cannot write {target}: {err}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; a library may be shared
        os.replace(tmp, target)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise error(f"cannot write {target}: {err}") from None
        raise


def read_weights(path: Path, sha256: str, ref: str) -> dict[str, torch.Tensor]:
    """The tensors of a weights file whose checksum matches the index. safetensors parses a
    header and raw bytes only: loading a file cannot execute code."""
    try:
        stat = path.stat()
    except OSError:
        stat = None
    key = (str(path), sha256, stat.st_size, stat.st_mtime_ns) if stat else None
    if key in _CACHE:
        return _CACHE[key]
    state = parse_weights(read_checked(path, sha256, ref), f"{ref}: its weights file {path}")
    if key is not None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = state
    return state


def read_checked(path: Path, sha256: str, ref: str) -> bytes:
    """The bytes of `ref`'s weights file, refused if they are not the ones the index recorded."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LibraryError(f"{ref}: its weights file {path} is missing (remove the entry with "
                           f"`neurosym library rm {ref}`)") from None
    except OSError as err:
        raise LibraryError(f"{ref}: cannot read its weights file {path}: {err}") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise LibraryError(f"{ref}: its weights file {path} is damaged (truncated or modified: "
                           f"the checksum does not match the index)")
    return data


def parse_weights(data: bytes, what: str) -> dict[str, torch.Tensor]:
    try:
        return safetensors.torch.load(data)
    except Exception as err:  # safetensors raises its own error types
        raise LibraryError(f"{what} is not valid safetensors: {err}") from None


def remove_temp_files(weights_dir: Path) -> None:
    """Delete temp files left by a crashed save. Call only while holding the write lock:
    then no live writer owns one."""
    for path in weights_dir.glob(TEMP_PREFIX + "*"):
        path.unlink(missing_ok=True)


def index_problems(index: Path) -> list[Problem]:
    if not index.exists():
        return []
    try:
        with connect(index) as conn:
            format_of(conn)
            result = conn.execute("PRAGMA integrity_check").fetchone()
    except LibraryError as err:
        return [Problem(None, str(index), err.message)]
    if result and result[0] != "ok":
        return [Problem(None, str(index), f"the index is damaged: {result[0]}")]
    return []


def stray_files(root: Path, referenced: set[str]) -> list[Problem]:
    """Files that no entry owns. They are ignored when loading; this reports them."""
    problems: list[Problem] = []
    if root.is_dir():
        for path in sorted(root.iterdir()):
            if path.name not in KNOWN:
                problems.append(Problem(None, str(path), "unexpected file in the library "
                                        "(not part of any entry; ignored)"))
    weights = root / "weights"
    if weights.is_dir():
        for path in sorted(weights.iterdir()):
            problems.extend(_stray_weight(path, referenced))
    return problems


def _stray_weight(path: Path, referenced: set[str]) -> list[Problem]:
    if path.name in referenced:
        return []
    if path.name.startswith(TEMP_PREFIX):
        why = "temp file left by an interrupted save (ignored; removed by the next save)"
    elif path.name.endswith(".safetensors"):
        why = "weights file with no index entry (an interrupted save or removal; ignored)"
    else:
        why = "unexpected file among the weights (not part of any entry; ignored)"
    return [Problem(None, str(path), why)]
