"""Property tests of every input surface: a mutated input loads, or is refused with a
`NeurosymError` that names the file, within a time bound, and a failed load changes nothing
stored. (The long campaign is `bench/fuzz.py`.)"""

from __future__ import annotations

import datetime
import hashlib
import json
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


# ---- every key of every settings table, given a value of every TOML kind -----------------

def _toml(value) -> str:
    """`value` as a TOML literal."""

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


SCALARS = st.one_of(  # text, integer, float, boolean, the four date-times
    st.text(max_size=12), st.integers(-2**63, 2**63 - 1), st.floats(), st.booleans(),
    st.datetimes(), st.datetimes(timezones=st.just(datetime.timezone.utc)), st.dates(),
    st.times())
TOML_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True),
                                                 inner, max_size=3)), max_leaves=5)


def _settings_tables() -> list[tuple[str, str, str]]:
    """(file, table header, key) for every key of the settings schema."""
    from neurosym import settings as schema

    task = [("", k) for k in schema.HEAD] + [
        ("[train]", k) for k in schema.TRAIN] + [("[search]", k) for k in schema.SEARCH] + [
        ("[types]", k) for k in ("input", "output")]
    files = [("[data]", k) for k in schema.DATA["files"]]
    planted = [("[data]", k) for k in schema.DATA["planted"]]
    sets = [("", k) for k in schema.PRODUCTION_SET] + [
        ("[[production]]", k) for k in schema.PRODUCTION]
    return ([("planted", *t) for t in task + planted] + [("files", *t) for t in files]
            + [("set", *t) for t in sets])


def _with_key(text: str, table: str, key: str, value: str) -> str:
    """`text` with `key = value` as the first line of `table` (replacing the key's line)."""
    lines = [line for line in text.splitlines()
             if line.partition("=")[0].strip() != key or "[" in line.partition("=")[0]]
    if table and table not in lines:
        lines += ["", table]
    at = lines.index(table) + 1 if table else 0
    return "\n".join(lines[:at] + [f"{key} = {value}"] + lines[at:]) + "\n"


@FAST
@given(where=st.sampled_from(_settings_tables()), value=TOML_VALUES)
def test_every_settings_key_of_any_toml_kind_loads_or_names_file_table_and_key(
        tmp_path, where, value):
    from neurosym import settings as schema
    from neurosym.search.productions import load_productions
    from neurosym.tasks.spec import load_task

    kind, table, key = where
    if kind == "set":
        base = (ROOT / "dsl" / "search" / "series.toml").read_text()
        base = base[:base.index("[[production]]", base.index("[[production]]") + 1)]
        path = tmp_path / "s.toml"
        load = lambda p: load_productions(str(p), [(0, 1)], series_length=50)  # noqa: E731
    else:
        base = (ROOT / "tasks" / "planted_ite.toml").read_text() if kind == "planted" else (
            '[data]\nsource = "files"\ntrain = "d.csv"\ntest = "d.csv"\n[types]\n'
            'input = "Vec[2]"\noutput = "Vec[2]"\n')
        (tmp_path / "d.csv").write_text("a,b,y\n" + "".join(
            f"{i * 0.1},{i % 3},{i % 2}\n" for i in range(30)))
        path = tmp_path / "t.toml"
        load = load_task
    path.write_text(_with_key(base, table, key, _toml(value)), encoding="utf-8")
    try:
        load(path)
    except NeurosymError as err:
        message = err.format()
        assert path.name in message, message
        spec = {"[train]": schema.TRAIN, "[search]": schema.SEARCH}.get(table)
        if spec is not None and spec[key].problem(value):  # the wrong kind: said where
            assert f"{table}: {key} " in message, message
