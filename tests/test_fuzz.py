"""Property tests of every input surface: a mutated input loads, or is refused with a
`NeurosymError` that names the file, within a time bound, and a failed load changes nothing
stored. (The long campaign is `bench/fuzz.py`.)"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurosym
from neurosym.lang.errors import NeurosymError

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ["-1", "0", "inf", "nan", "1e309", "99999999999999999999", '""', "[]", "{}",
           "((((((((", "??", "\\", "->", "\x00", "[0:0]", "-0.5", "true", "=", "\n"]
FAST = settings(max_examples=40, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@st.composite
def mutants(draw, seeds: list[str]) -> str:
    """A seed text with one to three edits: a span deleted, repeated or replaced by a
    hostile token."""
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 40)))
        op = draw(st.integers(0, 2))
        if op == 0:
            text = text[:i] + text[j:]
        elif op == 1:
            text = text[:j] + text[i:j] * draw(st.integers(2, 30)) + text[j:]
        else:
            text = text[:i] + draw(st.sampled_from(HOSTILE)) * draw(st.integers(1, 50)) + \
                text[j:]
    return text


def loads_or_names(path: Path, load) -> None:
    try:
        load(path)
    except NeurosymError as err:
        assert str(path.name) in err.format(), err.format()


DSL = [p.read_text() for p in sorted((ROOT / "dsl").glob("*.ns"))]
TASKS = [p.read_text() for p in sorted((ROOT / "tasks").glob("planted_*.toml"))]
SETS = [p.read_text() for p in sorted((ROOT / "dsl/search").glob("*.toml"))]


@FAST
@given(text=mutants(DSL))
def test_dsl_source(tmp_path, text):
    path = tmp_path / "fuzz.ns"
    path.write_text(text)
    loads_or_names(path, neurosym.check_file)


@FAST
@given(text=mutants(TASKS))
def test_task_files(tmp_path, text):
    path = tmp_path / "fuzz_task.toml"
    path.write_text(text)
    loads_or_names(path, neurosym.load_task)


@FAST
@given(text=mutants(SETS))
def test_production_sets(tmp_path, text):
    from neurosym.search.productions import load_productions

    path = tmp_path / "fuzz_set.toml"
    path.write_text(text)
    loads_or_names(path, lambda p: load_productions(str(p), [(0, 1), (1, 2)], series_length=40))


CSV = "a,b,label\n" + "".join(f"{i / 10},{i % 4},{'xy'[i % 2]}\n" for i in range(24))


@FAST
@given(text=mutants([CSV]))
def test_csv_files(tmp_path, text):
    (tmp_path / "train.csv").write_text(text)
    (tmp_path / "test.csv").write_text(CSV)
    task = tmp_path / "t.toml"
    task.write_text('[data]\nsource = "files"\ntrain = "train.csv"\ntest = "test.csv"\n'
                    '[types]\ninput = "Vec[2]"\noutput = "Vec[2]"\n')
    try:
        neurosym.load_task(task)
    except NeurosymError as err:
        assert "train.csv" in err.format() or "t.toml" in err.format(), err.format()


@FAST
@given(cut=st.integers(0, 400), flips=st.lists(st.tuples(st.integers(0, 10**6),
                                                         st.integers(0, 255)), max_size=4))
def test_npz_files(tmp_path, cut, flips):
    good = tmp_path / "good.npz"
    np.savez(good, x=np.ones((10, 2)), y=np.arange(10) % 2)
    data = bytearray(good.read_bytes())
    for at, value in flips:
        data[at % len(data)] = value
    (tmp_path / "train.npz").write_bytes(bytes(data[: len(data) - cut]))
    task = tmp_path / "t.toml"
    task.write_text('[data]\nsource = "files"\ntrain = "train.npz"\ntest = "good.npz"\n'
                    '[types]\ninput = "Vec[2]"\noutput = "Vec[2]"\n')
    loads_or_names(tmp_path / "train.npz", lambda p: neurosym.load_task(task))


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m"
    neurosym.run_file(ROOT / "dsl/basic_motions.ns", "basic_motions", epochs=1).save(path)
    return path


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@pytest.mark.parametrize("part", ["model.json", "program.ns"])
def test_saved_models(saved_model, tmp_path, part):
    seed = (saved_model / part).read_text()

    @FAST
    @given(text=mutants([seed]))
    def check(text):
        copy = tmp_path / "m"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(saved_model, copy)
        (copy / part).write_text(text)
        before = _digest(copy)
        try:
            neurosym.load(copy).predict(np.zeros((2, 10, 6)))
        except NeurosymError as err:
            assert str(copy) in err.format(), err.format()
        assert _digest(copy) == before  # a load never writes

    check()


@FAST
@given(cut=st.integers(0, 3000), text=st.sampled_from(HOSTILE), at=st.integers(0, 3000))
def test_ts_files(tmp_path, cut, text, at):
    from neurosym.tasks.sources import aeon_data_dir

    source = (aeon_data_dir() / "UnitTest" / "UnitTest_TRAIN.ts").read_text()
    mutant = source[:at] + text + source[at + cut % 50:]
    (tmp_path / "train.ts").write_text(mutant[: len(mutant) - cut])
    shutil.copy(aeon_data_dir() / "UnitTest" / "UnitTest_TEST.ts", tmp_path / "test.ts")
    task = tmp_path / "t.toml"
    task.write_text('[data]\nsource = "files"\ntrain = "train.ts"\ntest = "test.ts"\n'
                    '[types]\ninput = "List[Vec[1]]"\noutput = "Vec[2]"\n')
    try:
        neurosym.load_task(task)
    except NeurosymError as err:
        assert "train.ts" in err.format() or "test.ts" in err.format(), err.format()


def test_a_damaged_library_index_is_reported_with_its_path(tmp_path):
    from neurosym.interp.compiler import compile_term
    from neurosym.lang.checker import check_term
    from neurosym.lang.parser import parse_term, parse_type
    from neurosym.library.store import Library

    lib = Library(tmp_path / "lib")
    term = parse_term("??")
    lib.save("base", "??", "Vec[3] -> Float",
             compile_term(term, check_term(term, parse_type("Vec[3] -> Float"))))
    index = tmp_path / "lib" / "index.sqlite"
    data = bytearray(index.read_bytes())
    for at in range(100, len(data), 97):
        data[at] = 0xB7  # invalid UTF-8 in the stored text, or a broken page
    index.write_bytes(bytes(data))
    try:
        for entry in Library(tmp_path / "lib").entries():
            Library(tmp_path / "lib").module(entry.name)
    except NeurosymError as err:
        assert "lib" in err.format()


TABLE = "when,island,mass,sex,species\n" + "".join(
    f"{2000 + i},{['Biscoe', 'Dream'][i % 2]},{'NA' if i == 5 else 3000 + 37 * i},"
    f"{['female', 'male', '?'][i % 3]},{'ab'[i % 3 == 1]}\n" for i in range(30))


@FAST
@given(text=mutants([TABLE]), missing=st.sampled_from(["drop", "mean"]))
def test_tables_as_task_init_reads_them(tmp_path, text, missing):
    """A column to ignore, columns of names, missing values: `task init` writes a task that
    loads, or names the file."""
    from neurosym.tasks.init import DataFiles, init_task

    path = tmp_path / "table.csv"
    path.write_text(text)
    files = DataFiles(str(path), None, ignore=("when",), test_fraction=0.25, missing=missing)
    loads_or_names(path, lambda p: init_task("t", files, tmp_path / "t.toml", force=True))
