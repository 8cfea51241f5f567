"""The command line: clear errors (no tracebacks), checks of the shipped programs, and a
real training run on BasicMotions."""

import json
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from neurosym.cli import main

ROOT = Path(__file__).parents[1]
DSL_FILES = sorted(str(p) for p in (ROOT / "dsl").glob("*.ns"))


def invoke(*args):
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "200"})


def test_check_accepts_every_shipped_program():
    result = invoke("check", *DSL_FILES)
    assert result.exit_code == 0, result.output
    assert "main : List[Vec[6]] -> Vec[4]" in result.output


def test_syntax_error_is_located_with_caret_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.ns"
    bad.write_text("def main : List[Vec[6]] -> Vec[4] =\n  \\xs -> affine (mean xs\n")
    result = invoke("check", str(bad))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{bad}:2:") and "expected ')'" in lines[0]
    assert lines[1] == "    \\xs -> affine (mean xs" and lines[2].strip() == "^"
    assert "Traceback" not in result.output


def test_type_error_names_both_types(tmp_path):
    bad = tmp_path / "bad.ns"
    bad.write_text("def main : List[Vec[6]] -> Vec[4] = \\xs -> affine (map mean xs)\n")
    result = invoke("check", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:1:" in result.output and "expected List[" in result.output
    assert "found List[Vec[6]]" in result.output and "Traceback" not in result.output


def test_missing_file_and_empty_file(tmp_path):
    empty = tmp_path / "empty.ns"
    empty.write_text("")
    result = invoke("check", str(empty), str(tmp_path / "missing.ns"))
    assert result.exit_code == 1
    assert "no definitions" in result.output and "cannot read" in result.output


def test_run_on_basic_motions_reaches_high_accuracy():
    result = invoke("run", str(ROOT / "dsl/basic_motions.ns"), "--task", "basic_motions",
                    "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert scores["test"] >= 0.85
    assert scores["baseline"] == pytest.approx(0.25)


def test_synthesize_ends_within_its_time_limit_on_basic_motions():
    """The limit ends the search; the finalists are then fitted to the end (never cut by
    the clock), which on BasicMotions takes seconds, not minutes."""
    start = time.perf_counter()
    result = invoke("synthesize", "basic_motions", "--time-limit", "8", "--json")
    wall = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["stats"]["seconds"] <= 8 and wall < 120
    best = out["programs"][0]
    assert best["test"] > best["baseline"] and "??" not in best["program"]
    floats = [float(x) for x in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", result.output)]
    assert all(float(f"{x:.6g}") == x for x in floats), "float32 noise in the JSON"


def test_run_rejects_a_program_of_the_wrong_type():
    result = invoke("run", str(ROOT / "dsl/digits.ns"), "--task", "basic_motions")
    assert result.exit_code == 1
    assert "needs List[Vec[6]] -> Vec[4]" in result.output and "Traceback" not in result.output
    # located in the user's file, at the definition, with the line shown
    assert f"{ROOT / 'dsl/digits.ns'}:" in result.output and "<input>" not in result.output
    assert "def " in result.output and "^" in result.output


def test_run_unknown_task():
    result = invoke("run", str(ROOT / "dsl/basic_motions.ns"), "--task", "no_such_task")
    assert result.exit_code == 1 and "basic_motions" in result.output


def test_run_on_non_finite_data_fails_before_training(tmp_path):
    data = tmp_path / "nan.csv"
    data.write_text("")
    task = tmp_path / "nan.toml"
    task.write_text(
        'name = "nan"\ndescription = "d"\n[data]\nsource = "aeon"\ndataset = "BasicMotions"\n'
        'normalize = false\n[types]\ninput = "List[Vec[6]]"\noutput = "Vec[4]"\n')
    import neurosym.tasks.sources as sources

    original = sources.SOURCES["aeon"]

    def poisoned(*args, **kwargs):
        data = original(*args, **kwargs)
        data.train.x.data[0, 3, 1] = float("nan")
        return data

    sources.SOURCES["aeon"] = poisoned
    try:
        result = invoke("run", str(ROOT / "dsl/basic_motions.ns"), "--task", str(task))
    finally:
        sources.SOURCES["aeon"] = original
    assert result.exit_code == 1
    assert "NaN" in result.output and "Traceback" not in result.output


def test_tasks_and_primitives_list():
    assert "japanese_vowels" in invoke("tasks").output
    out = invoke("primitives").output
    assert "map" in out and "(a -> b) -> List[a] -> List[b]" in out


def test_an_internal_error_is_one_line_with_exit_2_and_debug_shows_it(monkeypatch):
    from neurosym.tasks import spec

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(spec, "list_tasks", broken)
    monkeypatch.delenv("NEUROSYM_DEBUG", raising=False)
    result = invoke("tasks")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "internal error (a bug in neurosym" in result.output
    assert "ZeroDivisionError: division by zero" in result.output and "--debug" in result.output
    shown = CliRunner().invoke(main, ["--debug", "tasks"])
    assert isinstance(shown.exception, ZeroDivisionError)  # re-raised: the traceback shows
    monkeypatch.delenv("NEUROSYM_DEBUG", raising=False)


def test_help_and_check_do_not_import_torch():
    """They answer in a fraction of a second: importing torch alone takes about 2 s."""
    import subprocess
    import sys

    code = ("import sys\nfrom click.testing import CliRunner\nfrom neurosym.cli import main\n"
            "r = CliRunner().invoke(main, ['check', sys.argv[1]])\n"
            "assert r.exit_code == 0, r.output\n"
            "CliRunner().invoke(main, ['--help'])\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "dsl/gunpoint.ns")],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_a_search_that_returns_no_program_says_why_and_fails(monkeypatch):
    import neurosym.search
    from neurosym.search.algorithms import SearchStats
    from neurosym.search.synthesis import SearchResult

    def nothing(task, **options):
        stats = SearchStats("astar", 0, 3, 0.5, 4, False, False, "time")
        return SearchResult([], stats, "series",
                            dropped=((r"\xs -> affine (mean xs)", "non-finite loss"),))

    monkeypatch.setattr(neurosym.search, "synthesize", nothing)
    result = invoke("synthesize", "unit_test", "--time-limit", "1")
    assert result.exit_code == 1
    assert "found no program: all 1 finalist(s) failed to train" in result.output
    assert "non-finite loss" in result.output


def test_search_flags_resolve_as_python_options_do(monkeypatch):
    import neurosym.search
    from neurosym.lang.errors import SearchError
    from neurosym.search.synthesis import resolve_config
    from neurosym.settings import SearchConfig
    from neurosym.tasks.spec import load_task

    seen = {}

    def record(task, **options):
        seen["config"] = resolve_config(task, **{k: v for k, v in options.items()
                                                 if k in SearchConfig.__dataclass_fields__})
        raise SearchError("recorded")

    monkeypatch.setattr(neurosym.search, "synthesize", record)
    result = invoke("synthesize", "unit_test", "--relaxation", "trained", "--cv-folds", "0",
                    "--max-nodes", "7", "--search", "iddfs", "--final-epochs", "9")
    assert result.exit_code == 1 and "recorded" in result.output
    config = seen["config"]
    assert (config.relaxation, config.cv_folds, config.max_nodes, config.algorithm,
            config.final_epochs) == ("trained", 0, 7, "iddfs", 9)
    assert config == resolve_config(load_task("unit_test"), relaxation="trained", cv_folds=0,
                                    max_nodes=7, algorithm="iddfs", final_epochs=9)
    bad = invoke("synthesize", "unit_test", "--relaxation", "vibes")
    assert bad.exit_code == 2 and "features" in bad.output  # the choices, from the schema


def test_output_to_a_pipe_keeps_each_phrase_on_one_line(monkeypatch):
    import io

    from neurosym.console import out

    piped = io.StringIO()
    monkeypatch.setattr("sys.stdout", piped)
    monkeypatch.delenv("COLUMNS", raising=False)
    line = "accuracy: 5-fold CV 0.9000 ± 0.0500  test 0.8800   (majority baseline 0.2500)   " * 2
    out().print(line)
    assert piped.getvalue() == line + "\n"
