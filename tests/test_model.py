"""Saved models: what is loaded and what is exported computes what was trained, damaged
model directories are reported by name, and the commands that use them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import neurosym
from neurosym.cli import main
from neurosym.interp.values import Seq, batch_size, index
from neurosym.models import ModelError, load
from neurosym.models.export import export, run_onnx
from neurosym.models.python import export_python
from neurosym.train import predict

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = {"basic_motions.ns": "basic_motions", "digit_count.ns": "digit_count_3",
            "digit_sum.ns": "digit_sum", "digits.ns": "digits", "gunpoint.ns": "gunpoint",
            "japanese_vowels.ns": "japanese_vowels"}


def test_every_hand_written_program_is_listed():
    assert set(PROGRAMS) == {p.name for p in (ROOT / "dsl").glob("*.ns")}


def _exported_outputs(model, fmt: str, path: Path, x) -> torch.Tensor:
    export(model, fmt, path)
    tensors = (x.data, x.weights) if isinstance(x, Seq) else (x,)
    if fmt == "onnx":
        names = ["data", "weights"] if isinstance(x, Seq) else ["x"]
        return torch.from_numpy(run_onnx(path, tensors, names))
    return torch.export.load(str(path)).module()(*tensors)


@pytest.mark.parametrize("body", [
    "def main : Vec[4] -> Vec[3] = nn",
    "def main : Vec[4] -> Vec[3] = \\x -> add (affine x) (?? x)",
    "def h : Vec[4] -> Vec[8] = \\x -> relu (affine x)\n"
    "def main : Vec[4] -> Vec[3] = \\x -> let y = h x in ite (?? y x) (nn y) (affine (h x))"])
def test_neural_parts_export_as_python(tmp_path, body):
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    task = neurosym.Task.from_arrays(x[::2], y[::2], x[1::2], y[1::2])
    program = tmp_path / "p.ns"
    program.write_text(body + "\n")
    model = neurosym.run_file(program, task, epochs=3).save(tmp_path / "m")
    x = task.test.x
    assert (_python_outputs(model, tmp_path, x) - predict(model.module, x)).abs().max() <= 1e-5


def _python_outputs(model, folder: Path, x) -> torch.Tensor:
    """The exported file run in a fresh interpreter where neurosym cannot be imported."""
    export_python(model, folder / "program.py")
    tensors = (x.data, x.weights) if isinstance(x, Seq) else (x,)
    torch.save(tensors, folder / "inputs.pt")
    code = ("import sys\nsys.modules['neurosym'] = None\nsys.path.insert(0, sys.argv[1])\n"
            "import torch\ntorch.set_num_threads(1)  # as neurosym's predict\n"
            "from program import Program\n"
            "model = Program.load(sys.argv[1] + '/program.safetensors')\n"
            "with torch.no_grad():\n"
            "    out = model(*torch.load(sys.argv[1] + '/inputs.pt'))\n"
            "torch.save(out, sys.argv[1] + '/out.pt')\n")
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True, cwd=folder)
    return torch.load(folder / "out.pt")


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_saved_loaded_and_exported_programs_compute_the_same(program, tmp_path):
    result = neurosym.run_file(ROOT / "dsl" / program, PROGRAMS[program], epochs=2)
    result.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    x = result.task.test.x
    x = index(x, torch.arange(min(batch_size(x), 200)))
    expected = predict(result.model, x)
    assert (predict(loaded.module, x) - expected).abs().max() <= 1e-5
    # the ONNX exporter traces through torch.export, so the .pt2 file is checked on one
    # series and one image program only
    both = program in ("gunpoint.ns", "digits.ns")
    for fmt, suffix in (("onnx", ".onnx"), ("torch", ".pt2")) if both else (("onnx", ".onnx"),):
        got = _exported_outputs(loaded, fmt, tmp_path / f"model{suffix}", x)
        assert (got - expected).abs().max() <= 1e-5, fmt
    assert (_python_outputs(loaded, tmp_path, x) - expected).abs().max() <= 1e-5


def test_a_synthesized_program_saves_with_its_learned_values(tmp_path):
    found = neurosym.synthesize("gunpoint", time_limit=60, max_nodes=6, epochs_per_node=3,
                                final_epochs=5, cv_folds=0)
    model = found.save(tmp_path / "gp")
    text = (tmp_path / "gp" / "program.ns").read_text()
    assert "def main : List[Vec[1]] -> Vec[2]" in text and "??" not in text
    assert found.best.printed in text  # learned values written in, as printed
    again = load(tmp_path / "gp")
    x = found.task.test.x
    assert (predict(again.module, x) - predict(found.best.model, x)).abs().max() <= 1e-5
    record = json.loads((tmp_path / "gp" / "model.json").read_text())
    assert record["classes"] == ["1", "2"] and record["search"]["max_nodes"] == 6
    assert record["series_length"] == 150 and model.classes == ("1", "2")
    x = index(x, torch.arange(40))
    got = _python_outputs(again, tmp_path, x)
    assert (got - predict(found.best.model, x)).abs().max() <= 1e-5
    assert found.best.printed.split("->", 1)[0].strip() in (tmp_path / "program.py").read_text()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("m") / "model"
    neurosym.run_file(ROOT / "dsl/basic_motions.ns", "basic_motions", epochs=3).save(path)
    return path


def _damaged(saved: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(saved, copy)
    return copy


def _edit_record(path: Path, **changes) -> None:
    record = json.loads((path / "model.json").read_text())
    record.update(changes)
    (path / "model.json").write_text(json.dumps(record))


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "weights.safetensors").unlink(), "weights are missing"),
    (lambda p: (p / "weights.safetensors").write_bytes(
        (p / "weights.safetensors").read_bytes()[:100]), "truncated or replaced"),
    (lambda p: (p / "model.json").write_text("{not json"), "not valid JSON"),
    (lambda p: _edit_record(p, format_version=99), "newer neurosym"),
    (lambda p: _edit_record(p, entry=7), "'entry' has the wrong type"),
    (lambda p: _edit_record(p, input_type="List[Vec[3]]"), "record says List\\[Vec\\[3\\]\\]"),
    (lambda p: (p / "program.ns").write_text(
        "def main : List[Vec[6]] -> Vec[4] =\n  \\xs -> affine (mean xs) xs\n"),
     "program.ns:2"),
    (lambda p: (p / "program.ns").write_text(
        "def main : List[Vec[6]] -> Vec[4] =\n  \\xs -> affine (mean xs)\n"),
     "do not fit the program"),
    (lambda p: (p / "model.json").unlink(), "model.json: cannot read it"),
    (lambda p: (p / "model.json").write_text('{"format_version": ' + "9" * 5000 + "}"),
     "not valid JSON"),
    (lambda p: (p / "program.ns").write_text(
        "def main : List[Vec[" + "6" * 5000 + "]] -> Vec[4] =\n  \\xs -> affine (mean xs)\n"),
     "dimension 6666.* is too large"),
    (lambda p: (p / "program.ns").write_text("# " + "x" * 300_000 + "\n"), "too long"),
])
def test_a_damaged_model_is_reported_by_name(saved, tmp_path, damage, message):
    path = _damaged(saved, tmp_path)
    damage(path)
    with pytest.raises(neurosym.NeurosymError, match=message):  # a ModelError, or a
        load(path)  # located DSL error for a program that no longer type-checks
    result = CliRunner().invoke(main, ["show", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert str(path) in result.output


def test_saving_over_a_model_replaces_it_whole_and_refuses_other_folders(saved, tmp_path):
    model = load(saved)
    model.save(tmp_path / "again")
    model.save(tmp_path / "again")  # replaced, not mixed
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == [
        "model.json", "program.ns", "weights.safetensors"]
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ModelError, match="not a neurosym model"):
        model.save(other)
    assert (other / "notes.txt").read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_predict_show_and_export_commands(saved, tmp_path):
    from neurosym.tasks.sources import aeon_data_dir

    data = aeon_data_dir() / "BasicMotions" / "BasicMotions_TEST.ts"
    runner = CliRunner()
    result = runner.invoke(main, ["predict", str(saved), str(data), "--proba"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("row,prediction,p_") and len(lines) == 41
    model = load(saved)
    assert set(model.predict(str(data))) <= set(model.classes)
    out = tmp_path / "p.json"
    runner.invoke(main, ["predict", str(saved), str(data), "--out", str(out)])
    assert len(json.loads(out.read_text())) == 40
    shown = runner.invoke(main, ["show", str(saved)])
    assert shown.exit_code == 0 and "affine (mean xs)" in shown.output
    assert "weighs most inputs" in shown.output
    exported = runner.invoke(main, ["export", str(saved), "--format", "onnx"])
    assert exported.exit_code == 0 and (saved / "model.onnx").is_file()
    assert "Traceback" not in exported.output


def test_data_that_does_not_fit_names_both_types(saved, tmp_path):
    from neurosym.tasks.sources import aeon_data_dir

    wrong = aeon_data_dir() / "GunPoint" / "GunPoint_TEST.ts"
    result = CliRunner().invoke(main, ["predict", str(saved), str(wrong)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "List[Vec[6]]" in result.output and "(150, 1)" in result.output
    with pytest.raises(neurosym.NeurosymError, match="Vec\\[6\\]"):
        load(saved).predict(np.ones((2, 100, 3)))


def test_a_bad_cell_in_new_data_is_named_in_the_file_as_given(saved, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "new.csv").write_text("a,b,c,d,e,f\n" + "1,2,3,4,5,6\n" * 3 + "1,2,nan,4,5,6\n")
    result = CliRunner().invoke(main, ["predict", str(saved), "new.csv"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert ("error: new.csv, row 5, column 'c': a missing value ('nan'); a model cannot "
            "predict without it") in result.output


def test_show_plot_draws_series_and_feature_programs(saved, tmp_path):
    from sklearn.datasets import load_wine

    png = tmp_path / "series.png"
    result = CliRunner().invoke(main, ["show", str(saved), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    x, y = load_wine(return_X_y=True)
    task = neurosym.Task.from_arrays(x[::2], y[::2], x[1::2], y[1::2])
    program = tmp_path / "rule.ns"
    program.write_text("def main : Vec[13] -> Vec[3] =\n"
                       "  \\x -> ite (above (select[6] x)) (affine x) (affine (select[9] x))\n")
    neurosym.run_file(program, task, epochs=20).save(tmp_path / "rule")
    csv = tmp_path / "wine.csv"
    csv.write_text("\n".join(",".join(map(str, [*row, label]))
                             for row, label in zip(x, y, strict=True)))
    csv.write_text(",".join(f"f{i}" for i in range(13)) + ",label\n" + csv.read_text())
    png = tmp_path / "rule.png"
    result = CliRunner().invoke(main, ["show", str(tmp_path / "rule"), "--plot", str(png),
                                       "--data", str(csv)])
    assert result.exit_code == 0, result.output
    assert png.stat().st_size > 10_000
    assert "above[" in (tmp_path / "rule" / "program.ns").read_text()


def test_a_decision_rule_exports_as_python(tmp_path):
    """ite, above with a default sharpness, and select (whose code reads `ast.Slice`)."""
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    task = neurosym.Task.from_arrays(x[::2], y[::2], x[1::2], y[1::2])
    program = tmp_path / "rule.ns"
    program.write_text("def main : Vec[4] -> Vec[3] =\n  \\x -> ite (above[0.5] (select[2] x)) "
                       "(affine (select[0:2] x)) (affine (select[3] x))\n")
    model = neurosym.run_file(program, task, epochs=5).save(tmp_path / "m")
    got = _python_outputs(model, tmp_path, task.test.x)
    assert (got - predict(model.module, task.test.x)).abs().max() <= 1e-5


def test_show_names_the_parts_of_the_series_a_paa_leaf_weighs(tmp_path):
    from neurosym.models.explain import describe

    program = tmp_path / "p.ns"
    program.write_text("def main : List[Vec[1]] -> Vec[2] = \\xs -> affine (paa[4] xs)\n")
    model = neurosym.run_file(program, "italy_power", epochs=2).save(tmp_path / "m")
    (part,) = describe(model)
    assert part["part"] == "affine (paa[4] xs)"
    assert part["reads"].startswith("weighs most the mean over ")
    assert part["reads"].count("of the series") == 3
    selected = tmp_path / "s.ns"  # a parameter that is not a count names nothing
    selected.write_text("def main : List[Vec[6]] -> Vec[4] =\n"
                        "  \\xs -> affine (select[0:3] (std xs))\n")
    (part,) = describe(neurosym.run_file(selected, "basic_motions", epochs=2).save(tmp_path / "s"))
    assert part["reads"].startswith("weighs most inputs ")


def test_a_spectrum_leaf_is_shown_by_band_and_exports_as_python_only(tmp_path):
    from neurosym.models.explain import describe
    from neurosym.models.export import ExportError
    from neurosym.tasks.spec import load_task

    program = tmp_path / "p.ns"
    program.write_text("def main : List[Vec[1]] -> Vec[2] = \\xs -> affine (spectrum[4] xs)\n")
    task = load_task("italy_power")
    model = neurosym.run_file(program, task, epochs=2).save(tmp_path / "m")
    (part,) = describe(model)
    assert part["reads"].count("cycles per step") == 3 and "0.125-0.25" in part["reads"]
    got = _python_outputs(model, tmp_path, task.test.x)
    assert (got - predict(model.module, task.test.x)).abs().max() <= 1e-5
    with pytest.raises(ExportError, match="spectrum.*--format python"):
        export(model, "onnx", tmp_path / "m.onnx")
    called = tmp_path / "q.ns"  # the same, inside a definition that main calls
    called.write_text("def bands : List[Vec[1]] -> Vec[4] = \\xs -> spectrum[4] xs\n"
                      "def main : List[Vec[1]] -> Vec[2] = \\xs -> affine (bands xs)\n")
    model = neurosym.run_file(called, task, epochs=2).save(tmp_path / "q")
    with pytest.raises(ExportError, match="spectrum.*--format python"):
        export(model, "torch", tmp_path / "q.pt2")


def _library_with_entries(path: Path):
    """A library with a function, a neural part, and a function that calls the first."""
    from neurosym.interp.compiler import compile_term
    from neurosym.lang.checker import check_term
    from neurosym.lang.parser import parse_term, parse_type
    from neurosym.library.store import Library

    lib = Library(path)
    torch.manual_seed(0)
    for name, source, typ in (("f", "\\x -> relu (affine x)", "Vec[4] -> Vec[8]"),
                              ("g", "??", "Vec[4] -> Vec[8]"),
                              ("h", "\\x -> affine (lib.f x)", "Vec[4] -> Vec[8]")):
        term = parse_term(source)
        module = compile_term(term, check_term(term, parse_type(typ), library=lib), library=lib)
        with torch.no_grad():
            for p in module.parameters():
                p.normal_()
        lib.save(name, source, typ, module.eval())
    return lib


def test_a_model_that_uses_the_library_runs_without_it(tmp_path):
    """Issue 30: the model carries the library functions it calls, pinned by entry and
    hash; a fresh process with an empty library loads it, predicts the same, exports (as
    Python here: the carried functions are plain definitions, which every export takes,
    see the tests above)."""
    from sklearn.datasets import load_iris

    from neurosym.library.location import ENV_VAR

    lib = _library_with_entries(tmp_path / "lib")
    x, y = load_iris(return_X_y=True)
    task = neurosym.Task.from_arrays(x[::2], y[::2], x[1::2], y[1::2])
    program = tmp_path / "p.ns"
    program.write_text("def main : Vec[4] -> Vec[3] =\n"
                       "  \\x -> add (affine (lib.h x)) (affine (add (lib.g x) (lib.f@1 x)))\n")
    result = neurosym.run_file(program, task, epochs=3, library=lib)
    model = result.save(tmp_path / "m")
    text = (tmp_path / "m" / "program.ns").read_text()
    assert "lib." not in text and "def lib_h_v1 " in text and "lib_f_v1 x" in text
    carried = {c["entry"]: c["sha256"] for c in model.record["library"]}
    assert carried == {e.ref: e.sha256 for e in lib.entries()}  # unchanged: frozen
    x_test = task.test.x
    expected = predict(result.model, x_test)
    torch.save(x_test, tmp_path / "x.pt")
    code = ("import sys, torch\nfrom neurosym.models import load\nfrom neurosym.train import "
            "predict\nm = load(sys.argv[1])\n"
            "torch.save(predict(m.module, torch.load(sys.argv[2])), sys.argv[3])\n")
    empty = tmp_path / "empty_library"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "m"), str(tmp_path / "x.pt"),
                    str(tmp_path / "out.pt")], check=True,
                   env={**os.environ, ENV_VAR: str(empty)})
    assert (torch.load(tmp_path / "out.pt") - expected).abs().max() <= 1e-5
    assert not empty.exists()
    loaded = load(tmp_path / "m")
    assert (_python_outputs(loaded, tmp_path, x_test) - expected).abs().max() <= 1e-5
    shown = CliRunner().invoke(main, ["show", str(tmp_path / "m")])
    assert shown.exit_code == 0 and "lib_h_v1 is lib.h@1" in shown.output
