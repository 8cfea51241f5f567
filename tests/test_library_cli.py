"""Moving entries between libraries (export/import) and the `neurosym library` commands."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from neurosym.interp.compiler import compile_term
from neurosym.lang.checker import check_term
from neurosym.lang.errors import LibraryError
from neurosym.lang.parser import parse_term, parse_type
from neurosym.library.commands import library
from neurosym.library.entry import Provenance
from neurosym.library.store import Library

VEC3 = "Vec[3] -> Float"
TOP = "\\x -> add (lib.base x) (affine (select[1:3] x))"


def compiled(source: str, lib: Library | None = None, seed: int = 0):
    torch.manual_seed(seed)
    term = parse_term(source)
    module = compile_term(term, check_term(term, parse_type(VEC3), library=lib), library=lib)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
    return module


@pytest.fixture
def lib(tmp_path: Path) -> Library:
    lib = Library(tmp_path / "src")
    lib.save("base", "??", VEC3, compiled("??"), Provenance(task="digits",
                                                              metrics={"accuracy": 0.875}))
    lib.save("top", TOP, VEC3, compiled(TOP, lib, seed=1), Provenance(task="sum", seed=4))
    return lib


X = torch.randn(5, 3)


# ---- export / import -----------------------------------------------------------------------

def test_export_import_carries_dependencies_and_repins(lib: Library, tmp_path: Path) -> None:
    archive = tmp_path / "top.nslib"
    assert [e.ref for e in lib.export("top", archive)] == ["base@1", "top@1"]
    other = Library(tmp_path / "dst")
    other.save("base", "??", VEC3, compiled("??", seed=9))  # an unrelated base@1 exists there
    imported = other.import_(archive)
    assert [e.ref for e in imported] == ["base@2", "top@1"]
    assert imported[1].source == TOP.replace("lib.base", "lib.base@2")
    assert imported[1].provenance.task == "sum"
    assert torch.equal(other.module("top")[0](X), lib.module("top")[0](X))
    assert [e.ref for e in other.import_(archive)] == ["base@2", "top@1"]  # reused, not copied
    assert len(other.entries()) == 3 and other.verify() == []


def _zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_import_rejects_files_that_are_not_ours(lib: Library, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    cases = {
        text: "not a neurosym library archive",
        _zip(tmp_path / "a.zip", {"readme": "x"}): "no manifest.json",
        _zip(tmp_path / "b.zip", {"manifest.json": '{"format": "other"}'}): "someone else's",
        _zip(tmp_path / "c.zip", {"manifest.json": "{not json"}): "bad manifest.json",
        tmp_path / "missing.zip": "no such file",
    }
    for path, message in cases.items():
        with pytest.raises(LibraryError, match=message):
            lib.import_(path)
    assert len(lib.entries()) == 2


def test_import_rejects_tampered_and_newer_archives(lib: Library, tmp_path: Path) -> None:
    archive = tmp_path / "base.zip"
    lib.export("base", archive)
    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        weights = zf.read("weights/base@1.safetensors")
    tampered = _zip(tmp_path / "t.zip", {"manifest.json": json.dumps(manifest),
                                          "weights/base@1.safetensors": weights[:-4] + b"\0" * 4})
    newer = _zip(tmp_path / "n.zip", {"manifest.json": json.dumps({**manifest,
                                                                   "format_version": 7})})
    target = Library(tmp_path / "dst")
    with pytest.raises(LibraryError, match="damaged"):
        target.import_(tampered)
    with pytest.raises(LibraryError, match="newer neurosym"):
        target.import_(newer)
    assert target.entries() == []


# ---- the commands ----------------------------------------------------------------------------

def cli(lib: Library, *args: str):
    return CliRunner().invoke(library, ["--library", str(lib.path), *args])


def test_list_and_show(lib: Library) -> None:
    result = cli(lib, "list")
    assert result.exit_code == 0, result.output
    for text in ("base", "top", "Vec[3] -> Float", "digits", "accuracy=0.875"):
        assert text in result.output
    shown = cli(lib, "show", "top@1")
    assert shown.exit_code == 0
    assert "lib.base@1" in shown.output and "seed:" in shown.output and "sum" in shown.output
    as_json = json.loads(cli(lib, "show", "base", "--json").output)
    assert as_json["provenance"]["metrics"] == {"accuracy": 0.875}
    assert len(json.loads(cli(lib, "list", "--json").output)) == 2
    # --library is accepted after the subcommand too, on every subcommand
    after = CliRunner().invoke(library, ["list", "--library", str(lib.path), "--json"])
    assert after.exit_code == 0 and len(json.loads(after.output)) == 2
    for sub in library.commands.values():
        assert "--library" in sub.get_help(click.Context(sub)), sub.name


def test_errors_are_one_message_and_exit_1(lib: Library, tmp_path: Path) -> None:
    foreign = tmp_path / "model.pt"
    foreign.write_bytes(b"\x80\x04pickled things")
    for args, message in ((("show", "nope"), "no entry named 'nope'"),
                          (("show", "top@5"), "no version 5"),
                          (("rm", "base"), "use(s) base@1"),
                          (("import", str(foreign)), "not a neurosym library archive"),
                          (("show", "Bad!"), "invalid library name")):
        result = cli(lib, *args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
        assert isinstance(result.exception, SystemExit)


def test_rm_export_import_verify(lib: Library, tmp_path: Path) -> None:
    archive = tmp_path / "top.zip"
    assert cli(lib, "export", "top", str(archive)).exit_code == 0
    other = Library(tmp_path / "dst")
    result = cli(other, "import", str(archive))
    assert result.exit_code == 0 and "base@1, top@1" in result.output
    assert cli(other, "rm", "top@1").exit_code == 0
    assert cli(other, "rm", "base").output.strip() == "removed base@1"
    assert "empty" in cli(other, "list").output
    ok = cli(lib, "verify")
    assert ok.exit_code == 0 and "2 entries OK" in ok.output
    path = lib.weights_path(lib.get("base"))
    path.write_bytes(path.read_bytes()[:50])
    bad = cli(lib, "verify")
    assert bad.exit_code == 1 and "base@1" in bad.output and "damaged" in bad.output


def test_library_option_defaults_to_env(lib: Library, monkeypatch) -> None:
    monkeypatch.setenv("NEUROSYM_LIBRARY", str(lib.path))
    result = CliRunner().invoke(library, ["list"])
    assert result.exit_code == 0 and "top" in result.output
