"""The persistent library: exact round trips, versions, concurrent writers, crashes mid-save,
damaged and foreign files."""

from __future__ import annotations

import multiprocessing
import pickle
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from neurosym.interp.compiler import compile_term
from neurosym.interp.values import pad_sequences
from neurosym.lang.checker import check_term
from neurosym.lang.errors import DSLTypeError, LibraryError
from neurosym.lang.parser import parse_term, parse_type
from neurosym.library import store as store_mod
from neurosym.library.entry import Provenance, parse_ref
from neurosym.library.store import Library, default_library_path

VEC3 = "Vec[3] -> Float"
CASES = [
    ("??", VEC3),
    ("\\x -> affine (select[0:2] x)", VEC3),
    ("\\xs -> mean (map (\\x -> ?? x) xs)", "List[Vec[3]] -> Vec[2]"),
    ("?? : Image[8,8] -> Vec[4]", "Image[8,8] -> Vec[4]"),
]


def compiled(source: str, type_text: str, lib: Library | None = None, seed: int = 0):
    """A compiled term whose parameters are random (not the initialisation a rebuild gives)."""
    torch.manual_seed(seed)
    term = parse_term(source)
    module = compile_term(term, check_term(term, parse_type(type_text), library=lib), library=lib)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.normal_()
    return module.eval()  # in training mode, a first call would set up input statistics


def example(type_text: str, rows: int = 6):
    torch.manual_seed(123)
    arg = parse_type(type_text).arg
    text = str(arg)
    if text.startswith("List"):
        return pad_sequences([torch.randn(n, 3) for n in (1, 4, 2, 3, 4, 2)[:rows]])
    if text.startswith("Image"):
        return torch.randn(rows, 8, 8)
    return torch.randn(rows, 3)


def out(module, x) -> torch.Tensor:
    y = module(x)
    return y.data if hasattr(y, "data") and not isinstance(y, torch.Tensor) else y


@pytest.fixture
def lib(tmp_path: Path) -> Library:
    return Library(tmp_path / "store")


# ---- round trips ---------------------------------------------------------------------------

@pytest.mark.parametrize("source,type_text", CASES)
def test_save_load_is_bit_identical(lib: Library, source: str, type_text: str) -> None:
    module = compiled(source, type_text)
    x = example(type_text)
    opt = torch.optim.SGD(module.parameters(), lr=0.1)  # one training step, as after search
    out(module, x).float().pow(2).mean().backward()
    opt.step()
    entry = lib.save("f", source, type_text, module, Provenance(task="t", seed=3))
    loaded, typ = Library(lib.path).module("f")
    assert typ == parse_type(type_text)
    assert torch.equal(out(module, x), out(loaded, x))
    assert entry.parameters == sum(p.numel() for p in module.parameters())
    assert all(not p.requires_grad for p in loaded.parameters())


def test_library_function_inside_a_program(lib: Library) -> None:
    module = compiled("??", VEC3)
    lib.save("feature", "??", VEC3, module)
    term = parse_term("\\x -> add (lib.feature x) (affine (select[0] x))")
    program = compile_term(term, check_term(term, parse_type(VEC3), library=lib), library=lib)
    program.eval()
    x = example(VEC3)
    affine = program.parts["n0_2_0"](x[:, 0])
    assert torch.equal(program(x), module(x) + affine)
    trainable = [n for n, p in program.named_parameters() if p.requires_grad]
    assert trainable and all("linear" in n for n in trainable)  # library part frozen
    tuned, _ = lib.module("feature", finetune=True)
    assert all(p.requires_grad for p in tuned.parameters())


def test_entry_records_type_source_and_provenance(lib: Library) -> None:
    prov = Provenance(task="digits", seed=7, metrics={"accuracy": 0.91}, data_size=300)
    entry = lib.save("f", "\\x  ->  affine (select[0:2] x)", parse_type(VEC3), compiled(
        "\\x -> affine (select[0:2] x)", VEC3), prov)
    again = Library(lib.path).get("f", 1)
    assert again == entry
    assert again.source == "\\x -> affine (select[0:2] x)"  # canonical DSL text
    assert again.type == VEC3 and again.provenance.metrics == {"accuracy": 0.91}
    assert again.provenance.date.startswith("20") and again.provenance.data_size == 300
    assert again.spec["kind"] == "term" and again.format == 1


def test_versions_grow_and_are_never_reused(lib: Library) -> None:
    for seed in range(3):
        lib.save("f", "??", VEC3, compiled("??", VEC3, seed=seed))
    assert [e.version for e in lib.entries()] == [1, 2, 3]
    assert lib.get("f").version == 3
    lib.remove("f", 3)
    assert lib.save("f", "??", VEC3, compiled("??", VEC3)).version == 4
    x = example(VEC3)
    assert torch.equal(lib.module("f", 1)[0](x), compiled("??", VEC3, seed=0)(x))


def test_references_are_pinned_and_dependents_protected(lib: Library) -> None:
    lib.save("base", "??", VEC3, compiled("??", VEC3))
    source = "\\x -> relu (lib.base x)"
    entry = lib.save("top", source, VEC3, compiled(source, VEC3, lib))
    assert entry.source == "\\x -> relu (lib.base@1 x)"
    assert entry.spec["depends"] == ["base@1"]
    lib.save("base", "??", VEC3, compiled("??", VEC3, seed=5))  # base@2 does not change top
    x = example(VEC3)
    assert torch.equal(lib.module("top")[0](x), torch.relu(lib.module("base", 1)[0](x)))
    with pytest.raises(LibraryError, match="top@1 use"):
        lib.remove("base", 1)
    assert [e.ref for e in lib.remove("base", 1, force=True)] == ["base@1"]
    with pytest.raises(LibraryError, match="top@1"):
        lib.module("top")


def test_unknown_names_are_key_errors_with_a_hint(lib: Library) -> None:
    with pytest.raises(KeyError, match="empty"):
        lib.signature("nope", None)
    lib.save("f", "??", VEC3, compiled("??", VEC3))
    with pytest.raises(KeyError, match="versions: 1"):
        lib.signature("f", 9)
    with pytest.raises(DSLTypeError, match="lib.g: no entry named 'g'.*it has f"):
        check_term(parse_term("lib.g"), parse_type(VEC3), library=lib)
    assert not lib.path.joinpath("nothing").exists()


def test_save_rejects_what_could_not_be_rebuilt(lib: Library) -> None:
    module = compiled("??", VEC3)
    with pytest.raises(LibraryError, match="not the one its source"):
        lib.save("f", "\\x -> affine x", VEC3, module)
    with pytest.raises(LibraryError, match="invalid library name"):
        lib.save("Bad-Name", "??", VEC3, module)
    with pytest.raises(LibraryError, match="concrete"):
        lib.save("f", "??", "a -> Float", module)
    with pytest.raises(LibraryError, match="cannot rebuild"):
        lib.save("f", "\\x -> nosuch x", VEC3, module)
    assert lib.entries() == []


def test_default_path_env_and_pickling(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NEUROSYM_LIBRARY", raising=False)
    assert default_library_path() == Path("library_store")
    monkeypatch.setenv("NEUROSYM_LIBRARY", str(tmp_path / "x"))
    assert Library().path == tmp_path / "x"
    assert pickle.loads(pickle.dumps(Library(tmp_path, finetune=True))).finetune
    assert parse_ref("lib.f@3") == ("f", 3) and parse_ref("g") == ("g", None)
    with pytest.raises(LibraryError):
        parse_ref("f@x")


# ---- concurrency and crashes -----------------------------------------------------------------

def _writer(path: str, name: str, count: int, barrier) -> None:
    lib = Library(path)
    barrier.wait(60)  # both processes start writing at the same moment
    for seed in range(count):
        lib.save(name, "??", VEC3, compiled("??", VEC3, seed=seed))
        lib.save("shared", "??", VEC3, compiled("??", VEC3, seed=seed))


def test_two_processes_writing_at_once(lib: Library) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(lib.path), n, 4, barrier)) for n in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    versions = {n: [e.version for e in lib.entries(n)] for n in ("a", "b", "shared")}
    assert versions == {"a": [1, 2, 3, 4], "b": [1, 2, 3, 4], "shared": list(range(1, 9))}
    assert lib.verify() == []


def test_failure_between_weights_and_index_leaves_store_valid(lib: Library, monkeypatch) -> None:
    first = compiled("??", VEC3)
    lib.save("f", "??", VEC3, first)

    def crash(conn, entry):
        raise RuntimeError("power cut")

    monkeypatch.setattr(store_mod, "_insert", crash)
    with pytest.raises(RuntimeError):
        lib.save("f", "??", VEC3, compiled("??", VEC3, seed=1))
    assert [e.ref for e in lib.entries()] == ["f@1"]
    problems = lib.verify()
    assert len(problems) == 1 and "f@2.safetensors" in problems[0].path
    monkeypatch.undo()
    assert lib.save("f", "??", VEC3, compiled("??", VEC3, seed=2)).version == 2
    assert lib.verify() == []
    x = example(VEC3)
    assert torch.equal(lib.module("f", 1)[0](x), first(x))


KILLED_WRITER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    from test_library import compiled, VEC3
    from neurosym.library import store
    real = store._insert
    def die(conn, entry):
        real(conn, entry)   # the row is written but never committed
        os._exit(9)
    store._insert = die
    store.Library({path!r}).save("f", "??", VEC3, compiled("??", VEC3, seed=1))
""")


def test_process_killed_mid_save(lib: Library) -> None:
    first = compiled("??", VEC3)
    lib.save("f", "??", VEC3, first)
    script = KILLED_WRITER.format(tests=str(Path(__file__).parent), path=str(lib.path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == 9, proc.stderr.decode()
    assert (lib.weights_dir / "f@2.safetensors").exists()  # weights landed, index did not
    assert [e.ref for e in lib.entries()] == ["f@1"]
    x = example(VEC3)
    assert torch.equal(lib.module("f")[0](x), first(x))
    assert [Path(p.path).name for p in lib.verify()] == ["f@2.safetensors"]
    assert lib.save("f", "??", VEC3, compiled("??", VEC3, seed=3)).version == 2
    assert lib.verify() == []


# ---- damage -------------------------------------------------------------------------------

def _two_entries(lib: Library):
    a, b = compiled("??", VEC3, seed=1), compiled("??", VEC3, seed=2)
    return lib.save("a", "??", VEC3, a), lib.save("b", "??", VEC3, b), b


def test_truncated_weights_are_reported_and_isolated(lib: Library) -> None:
    bad, good, module = _two_entries(lib)
    path = lib.weights_path(bad)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(LibraryError, match="a@1.*damaged"):
        lib.module("a")
    x = example(VEC3)
    assert torch.equal(lib.module("b")[0](x), module(x))
    assert [e.ref for e in lib.entries()] == ["a@1", "b@1"]
    problems = lib.verify()
    assert [p.entry for p in problems] == ["a@1"] and "truncated" in problems[0].message
    path.unlink()
    with pytest.raises(LibraryError, match="a@1.*missing"):
        lib.module("a")


def test_foreign_files_are_reported_and_ignored(lib: Library) -> None:
    _, _, module = _two_entries(lib)
    (lib.weights_dir / "evil.pkl").write_bytes(b"\x80\x04not ours")
    (lib.weights_dir / "z@1.safetensors").write_bytes(b"junk")
    (lib.path / "notes.txt").write_text("hello")
    x = example(VEC3)
    assert torch.equal(lib.module("b")[0](x), module(x))
    found = sorted(Path(p.path).name for p in lib.verify())
    assert found == ["evil.pkl", "notes.txt", "z@1.safetensors"]


def test_newer_formats_are_refused_by_name(lib: Library) -> None:
    _, _, module = _two_entries(lib)
    with sqlite3.connect(lib.index_path) as conn:
        conn.execute("UPDATE entries SET format = 99 WHERE name = 'a'")
    with pytest.raises(LibraryError, match="a@1 was written by a newer neurosym"):
        lib.module("a")
    assert torch.equal(lib.module("b")[0](example(VEC3)), module(example(VEC3)))
    assert [p.entry for p in lib.verify()] == ["a@1"]
    with sqlite3.connect(lib.index_path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'format'")
    with pytest.raises(LibraryError, match="newer neurosym"):
        lib.entries()


def test_damaged_index_is_a_clear_error(lib: Library) -> None:
    lib.path.mkdir()
    lib.index_path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(LibraryError, match="damaged or not a neurosym index"):
        lib.entries()
    assert "damaged" in lib.verify()[0].message
