"""Lifelong runs and transfer: a solved task's program is stored with its provenance, a
later search reuses it as `lib.NAME`, frozen library weights stay put, and the transfer
command prints its table. Tiny data fractions and budgets keep this fast."""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner

from neurosym.evaluate import train_and_evaluate, train_config
from neurosym.interp.compiler import CompiledTerm, compile_term
from neurosym.lang.checker import check_term
from neurosym.lang.errors import TaskError
from neurosym.lang.parser import parse_term, parse_type
from neurosym.lang.types import Arrow
from neurosym.library.lifelong import (
    SearchLibrary,
    library_refs,
    list_sequences,
    load_sequence,
    reuse_productions,
    run_sequence,
    save_found,
)
from neurosym.library.lifelong_commands import lifelong, transfer
from neurosym.library.store import Library
from neurosym.search import load_productions
from neurosym.tasks.spec import load_task

COUNT_ONLY = """\
name = "count_only"
[[production]]
term = '\\xs -> count ?? xs'
"""


def sequence_file(tmp: Path) -> Path:
    """Recognise a 3 (5% of the images), then count 3s with a production set whose only
    leaf for `Image -> Bool` is the library: the second program must reuse the first."""
    (tmp / "count_only.toml").write_text(COUNT_ONLY)
    path = tmp / "two_steps.toml"
    path.write_text(textwrap.dedent(f"""\
        name = "two_steps"
        description = "recognise, then count"
        [[step]]
        task = "digit_recognize_3"
        save_as = "is_three"
        data_fraction = 0.05
        max_nodes = 2
        final_epochs = 3
        top_k = 1
        seed = 7
        [[step]]
        task = "digit_count_3"
        data_fraction = 0.05
        max_nodes = 3
        final_epochs = 2
        top_k = 1
        productions = "{tmp / 'count_only.toml'}"
        """))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("lifelong")
    lib = Library(tmp / "lib")
    results = run_sequence(load_sequence(sequence_file(tmp)), lib, time_limit=60)
    return SimpleNamespace(lib=lib, results=results, tmp=tmp)


def compiled(source: str, task, lib) -> torch.nn.Module:
    term = parse_term(source)
    checked = check_term(term, Arrow(task.input_type, task.output_type), library=lib)
    torch.manual_seed(0)
    return compile_term(term, checked, lib)


# ---- a two-step sequence -----------------------------------------------------------------------

def test_second_step_reuses_the_first(run) -> None:
    first, second = run.results
    assert [e.ref for e in first.saved] == ["is_three@1"]
    assert "lib.is_three" in second.program
    assert second.reused == ("is_three@1",)
    assert second.saved[0].name == "digit_count_3"  # no save_as: named after the task
    assert second.saved[0].spec["depends"] == ["is_three@1"]
    assert "lib.is_three@1" in second.saved[0].source  # stored sources are pinned


def test_provenance_is_recorded(run) -> None:
    entry = run.lib.get("is_three")
    p = entry.provenance
    task = load_task("digit_recognize_3", data_fraction=0.05)
    assert (p.task, p.seed, p.data_size) == ("digit_recognize_3", 7, len(task.train))
    assert p.date and set(p.metrics) >= {"test_macro_f1", "val_macro_f1", "baseline_macro_f1"}
    assert p.metrics["test_macro_f1"] == pytest.approx(run.results[0].evaluation.test)
    assert run.lib.get("digit_count_3").provenance.parents == ("is_three@1",)


def test_stored_program_reproduces_the_found_one(run) -> None:
    task = load_task("digit_count_3", data_fraction=0.05)
    found = run.results[1].found.model
    stored, _ = run.lib.module("digit_count_3")
    x = task.test.x
    assert torch.equal(found(x), stored(x))


def test_frozen_library_weights_do_not_change(run) -> None:
    task = load_task("digit_count_3", data_fraction=0.05)
    before = {k: v.clone() for k, v in run.lib.module("is_three")[0].state_dict().items()}
    frozen = compiled(r"\xs -> count lib.is_three xs", task, run.lib)
    train_and_evaluate(frozen, task, train_config(task, epochs=2))
    tuned_lib = Library(run.lib.path, finetune=True)
    tuned = compiled(r"\xs -> count lib.is_three xs", task, tuned_lib)
    train_and_evaluate(tuned, task, train_config(task, epochs=2, lr=0.05))

    def lib_state(model) -> dict[str, torch.Tensor]:
        (part,) = [m for m in model.parts.values() if isinstance(m, CompiledTerm)]
        return part.state_dict()  # the library function is the one compiled sub-term

    assert all(torch.equal(before[k], v) for k, v in lib_state(frozen).items())
    assert any(not torch.equal(before[k], v) for k, v in lib_state(tuned).items())
    # the search's program too: its library part is the stored function, untouched
    assert all(torch.equal(before[k], v)
               for k, v in lib_state(run.results[1].found.model).items())


def test_parts_are_saved_and_rebuild_exactly(run) -> None:
    task = load_task("digit_count_3", data_fraction=0.05)
    model = compiled(r"\xs -> count nn xs", task, None)
    evaluation = train_and_evaluate(model, task, train_config(task, epochs=1))
    found = SimpleNamespace(model=model, evaluation=evaluation)
    lib = Library(run.tmp / "parts")
    entries = save_found(lib, found, task, "counter", SimpleNamespace(seed=1, hidden=32),
                         parts=True)
    assert [(e.ref, e.type, e.source) for e in entries] == [
        ("counter@1", "List[Image[8,8]] -> Float", r"\xs -> count nn xs"),
        ("counter_part1@1", "Image[8,8] -> Bool", "nn")]
    rebuilt = compiled(r"\xs -> count lib.counter_part1 xs", task, lib)
    assert torch.equal(rebuilt(task.test.x), model(task.test.x))


def test_library_functions_join_the_productions(run) -> None:
    pset = reuse_productions(load_productions("digits"), SearchLibrary(run.lib.path))
    costs = {p.text: p.cost for p in pset.productions}
    assert costs["lib.is_three"] == 1.0
    assert costs[r"\xs -> count lib.is_three xs"] == 1.0  # the template's cost: reuse is free
    assert r"\xs -> sum (map (\x -> prob (lib.is_three x)) xs)" in costs
    assert r"\x -> ?? (lib.is_three x)" not in costs  # a Bool: no calibration on top
    assert not any("shortest_path" in text for text in costs)  # the task names no grid
    assert library_refs(r"\xs -> count lib.a@2 (map lib.b xs)") == [("a", 2), ("b", None)]


def test_a_score_in_the_library_is_offered_with_a_learned_calibration(tmp_path) -> None:
    """A function to a Float (a score learned through a sorting network is right only up
    to a monotone map) comes with a learned part on top, also inside the templates: in
    a sum, and, for a task whose lists are 3x3 grids, in a shortest path."""
    lib = Library(tmp_path / "lib")
    term, typ = parse_term("affine"), parse_type("Image[8,8] -> Float")
    lib.save("score", "affine", str(typ), compile_term(term, check_term(term, typ)))
    pset = reuse_productions(load_productions("digits", values={"grid": ["3, 3"]}),
                             SearchLibrary(lib.path))
    texts = {p.text for p in pset.productions}
    assert {r"\x -> ?? (lib.score x)", r"\xs -> sum (map (\x -> ?? (lib.score x)) xs)",
            r"\xs -> shortest_path (grid[3, 3] (map (\x -> ?? (lib.score x)) xs))",
            r"\xs -> rank[30] (map lib.score xs)"} <= texts


# ---- sequence files and the commands -----------------------------------------------------------

def test_bundled_sequences_load() -> None:
    names = dict(list_sequences())
    assert {"count_digits", "sum_digits", "houdini_digits"} <= set(names)
    for name in names:
        for step in load_sequence(name).steps:
            load_task(step.task)  # every step names a real task


def test_bad_sequence_files_are_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[step]]\ntask = "digits"\nbudget = 3\n')
    with pytest.raises(TaskError, match="unknown key 'budget'"):
        load_sequence(bad)
    bad.write_text('[[step]]\ntask = "digits"\nmax_nodes = 0\nrelaxation = "features"\n')
    with pytest.raises(TaskError, match="step 1: max_nodes must be >= 1"):
        load_sequence(bad)  # a search setting, checked as everywhere else
    bad.write_text('[[step]]\ntask = "digits"\nrelaxation = "trained"\ntime_limit = 9\n')
    assert load_sequence(bad).steps[0].search == {"relaxation": "trained", "time_limit": 9}
    with pytest.raises(TaskError, match="count_digits"):
        load_sequence("no_such_sequence")
    result = CliRunner().invoke(lifelong, ["no_such_sequence", "--library", str(tmp_path)])
    assert result.exit_code == 1
    assert "unknown task sequence" in result.output and "Traceback" not in result.output


def test_transfer_prints_a_table(run) -> None:
    args = ["digit_count_3", "--with-library", str(run.lib.path), "--fractions", "0.02,0.05",
            "--without", r"\xs -> count nn xs", "--with", r"\xs -> count lib.is_three xs",
            "--epochs", "1", "--use", "is_three"]
    result = CliRunner().invoke(transfer, args)
    assert result.exit_code == 0, result.output
    for text in ("fraction", "train size", "without library", "with library", "error ratio",
                 "0.02", "0.05", "lib.is_three"):
        assert text in result.output


def test_transfer_by_search_runs(run) -> None:
    args = ["digit_count_3", "--with-library", str(run.lib.path), "--fractions", "0.02",
            "--max-nodes", "2", "--time-limit", "20", "--epochs", "1", "--json"]
    result = CliRunner().invoke(transfer, args)
    assert result.exit_code == 0, result.output
    assert '"method": "search"' in result.output and '"error_ratio"' in result.output


def test_plot_without_matplotlib_says_so(run, tmp_path: Path, monkeypatch) -> None:
    from neurosym.library import transfer as measure

    monkeypatch.setattr(measure, "has_matplotlib", lambda: False)
    args = ["digit_count_3", "--with-library", str(run.lib.path), "--plot",
            str(tmp_path / "t.png")]
    result = CliRunner().invoke(transfer, args)
    assert result.exit_code == 1
    assert "matplotlib" in result.output and "Traceback" not in result.output


def test_transfer_errors_are_one_line(run) -> None:
    base = ["digit_count_3", "--with-library", str(run.lib.path)]
    for extra, message in ((["--use", "nothing_here"], "has none of nothing_here"),
                           (["--fractions", "0,2"], "fractions must be in (0, 1]"),
                           (["--without", "nn"], "--without and --with go together")):
        result = CliRunner().invoke(transfer, base + extra)
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output


# ---- reverse transfer -------------------------------------------------------------------------

def test_reverse_transfer_improves_the_function_for_the_earlier_task_or_keeps_it(
        tmp_path: Path) -> None:
    """The second step's copy of lib.is_three trains on counting together with a replay of
    recognising; the earlier task is scored before (the stored function: its own
    validation score) and after, and a new version is kept only if it is not worse."""
    from neurosym.library.reverse import Replayed, data_hash, reverse_transfer

    lib = Library(tmp_path / "lib")
    first, second = run_sequence(load_sequence(sequence_file(tmp_path)), lib, time_limit=60,
                                 reverse=True)
    (result,) = second.reverse
    (score,) = result.earlier
    assert result.function == "is_three@1" and score.task == "digit_recognize_3"
    assert score.val_before == pytest.approx(first.evaluation.val)  # the stored function
    assert score.test_before == pytest.approx(first.evaluation.test)
    stored = lib.entries("is_three")
    if result.accepted:
        assert score.improved and not score.worse and [e.version for e in stored] == [1, 2]
        assert stored[1].provenance.parents == ("is_three@1",)
        task = load_task("digit_recognize_3", data_fraction=0.05)
        from neurosym import metrics
        from neurosym.train import predict

        again = metrics.score(task, predict(lib.module("is_three", 2)[0], task.val.x),
                              task.val.y)
        assert again == pytest.approx(score.val_after)
    else:
        assert (score.worse or not score.improved) and [e.version for e in stored] == [1]
    task = load_task("digit_count_3", data_fraction=0.05)
    stale = Replayed(load_task("digit_recognize_3", data_fraction=0.05), None, "0" * 16)
    assert data_hash(stale.task) == first.data_hash
    with pytest.raises(TaskError, match="hash differs"):
        reverse_transfer(lib, "is_three", 1, (task, second.found.model), [stale],
                         train_config(task, epochs=1))


def test_the_lifelong_command_prints_reverse_transfer(tmp_path: Path) -> None:
    result = CliRunner().invoke(lifelong, [str(sequence_file(tmp_path)), "--library",
                                           str(tmp_path / "lib"), "--reverse-transfer",
                                           "--json"])
    assert result.exit_code == 0, result.output
    import json

    steps = json.loads(result.output)["steps"]
    assert steps[0]["reverse_transfer"] == []
    (rev,) = steps[1]["reverse_transfer"]
    assert rev["function"] == "is_three@1" and rev["earlier"][0]["task"] == "digit_recognize_3"
