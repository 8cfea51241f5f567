"""A user's own data: task files written by `neurosym task init` from CSV, NumPy and .ts
files (built here from bundled data), `Task.from_arrays`, and a clear error for each kind
of bad data."""

from __future__ import annotations

import csv
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.datasets import load_diabetes, load_wine

import neurosym
from neurosym import Task, load_task
from neurosym.cli import main
from neurosym.lang.errors import DataError, NeurosymError
from neurosym.lang.types import ListT, Vec
from neurosym.search import synthesize
from neurosym.tasks.sources import aeon_data_dir

SMALL = dict(time_limit=60, max_nodes=4, epochs_per_node=5, final_epochs=10, cv_folds=0)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _wine_csvs(folder: Path) -> tuple[Path, Path]:
    x, y = load_wine(return_X_y=True)
    names = np.array(["barolo", "grignolino", "barbera"])[y]
    header = [f"f{i}" for i in range(x.shape[1])] + ["cultivar"]
    rows = [[*map(float, x[i]), names[i]] for i in range(len(y))]
    order = np.random.default_rng(0).permutation(len(rows))
    train = [rows[i] for i in order[:120]]
    test = [rows[i] for i in order[120:]]
    return (_write_csv(folder / "train.csv", header, train),
            _write_csv(folder / "test.csv", header, test))


def _init(folder: Path, *args: str) -> object:
    return CliRunner().invoke(main, ["task", "init", *args], catch_exceptions=False)


def test_task_init_from_csv_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _wine_csvs(tmp_path)
    result = _init(tmp_path, "wine", "--train", "train.csv", "--test", "test.csv")
    assert result.exit_code == 0, result.output
    assert "Vec[13] -> Vec[3] (3 classes)" in result.output
    task = load_task("wine")  # found by name in ./tasks
    assert task.classes == ("barbera", "barolo", "grignolino")  # names kept, sorted
    assert (len(task.train), len(task.val), len(task.test)) == (96, 24, 58)
    # standardized with statistics of the fitted training split only
    assert torch.allclose(task.train.x.mean(0), torch.zeros(13), atol=1e-5)
    assert not torch.allclose(task.test.x.mean(0), torch.zeros(13), atol=1e-3)
    assert len(task.normalization.mean) == 13
    found = synthesize(task, **SMALL)
    assert found.best is not None and found.best.evaluation.test > 0.5
    listed = CliRunner().invoke(main, ["tasks"])
    assert "wine" in listed.output
    again = _init(tmp_path, "wine", "--train", "train.csv", "--test", "test.csv")
    assert again.exit_code != 0 and "--force" in again.output


def test_task_init_from_a_ts_file_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for split in ("TRAIN", "TEST"):
        shutil.copy(aeon_data_dir() / "UnitTest" / f"UnitTest_{split}.ts", tmp_path)
    result = _init(tmp_path, "mine", "--train", "UnitTest_TRAIN.ts",
                   "--test", "UnitTest_TEST.ts", "--out", "specs/mine.toml")
    assert result.exit_code == 0, result.output
    task = load_task("specs/mine.toml")  # data paths are relative to the task file
    bundled = load_task("unit_test")
    assert task.input_type == bundled.input_type and task.classes == bundled.classes
    assert torch.equal(task.test.y, bundled.test.y)
    assert torch.allclose(task.test.x.data, bundled.test.x.data)
    found = synthesize(task, **SMALL)
    assert found.best is not None and found.productions == "series"


def test_csv_long_format_reads_the_same_series(tmp_path):
    bundled = load_task("unit_test")
    raw = load_task("unit_test").test  # standardized; fine for a round trip
    rows = []
    for i in range(len(raw)):
        steps = raw.x.data[i][raw.x.weights[i] > 0, 0].tolist()
        order = list(range(len(steps)))[::-1]  # shuffled steps, ordered by the time column
        rows += [[f"s{i}", t, steps[t], int(raw.y[i])] for t in order]
    _write_csv(tmp_path / "long.csv", ["id", "t", "value", "label"], rows)
    (tmp_path / "t.toml").write_text(
        '[data]\nsource = "files"\ntrain = "long.csv"\ntest = "long.csv"\nlayout = "long"\n'
        'id_column = "id"\ntime_column = "t"\nnormalize = false\n'
        '[types]\ninput = "List[Vec[1]]"\noutput = "Vec[2]"\n')
    task = load_task(tmp_path / "t.toml")
    assert torch.allclose(task.test.x.data, raw.x.data, atol=1e-6)
    assert torch.equal(task.test.y, raw.y) and bundled.classes == ("1", "2")
    # predictions are named by the series' ids, in the order the file gives them
    program = tmp_path / "p.ns"
    program.write_text("def main : List[Vec[1]] -> Vec[2] = \\xs -> affine (mean xs)\n")
    neurosym.run_file(program, task, epochs=2).save(tmp_path / "m")
    _write_csv(tmp_path / "new.csv", ["id", "t", "value"],
               [[f"n{k}", t, v] for k, steps in ((7, [1, 2, 3]), (3, [0.5, 1])) for t, v in
                enumerate(steps)])
    out = CliRunner().invoke(main, ["predict", str(tmp_path / "m"), str(tmp_path / "new.csv")])
    assert out.exit_code == 0, out.output
    assert [line.split(",")[0] for line in out.output.split()] == ["id", "n7", "n3"]


def test_non_finite_arrays_say_where():
    x = np.ones((10, 3))
    x[7, 2] = np.inf
    with pytest.raises(DataError, match=r"x_train: example 7, position \(2,\): inf"):
        Task.from_arrays(x, [0, 1] * 5, np.ones((2, 3)), [0, 1])


def test_numpy_files_npz_and_npy_pairs(tmp_path):
    x, y = load_wine(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    np.savez(tmp_path / "train.npz", features=x[:120], label=y[:120])
    np.save(tmp_path / "x.npy", x[120:])
    np.save(tmp_path / "y.npy", y[120:])
    (tmp_path / "t.toml").write_text(
        '[data]\nsource = "files"\ntrain = "train.npz"\nx_key = "features"\ny_key = "label"\n'
        'test = {x = "x.npy", y = "y.npy"}\n[types]\ninput = "Vec[13]"\noutput = "Vec[3]"\n')
    task = load_task(tmp_path / "t.toml")
    assert len(task.test) == len(y) - 120 and task.classes == ("0", "1", "2")


def test_from_arrays_infers_types_and_regression():
    x, y = load_diabetes(return_X_y=True)
    task = Task.from_arrays(x[:300], y[:300], x[300:], y[300:])
    assert str(task.input_type) == "Vec[10]" and str(task.output_type) == "Float"
    assert task.loss == "mse" and task.classes is None
    series = [np.sin(np.arange(n) / 3.0) for n in (20, 25, 30, 22)] * 5
    labels = ["a", "b"] * 10
    task = Task.from_arrays(series, labels, series, labels)
    assert str(task.input_type) == "List[Vec[1]]" and task.classes == ("a", "b")
    channels = [np.ones((n, 3)) * n for n in (20, 25, 30, 22)] * 5
    assert str(Task.from_arrays(channels, labels, channels, labels).input_type) == \
        "List[Vec[3]]"
    images = np.random.default_rng(0).normal(size=(20, 8, 8))
    assert str(Task.from_arrays(images, labels, images, labels).input_type) == "Image[8,8]"


# ---- bad data: each names the file, and where ---------------------------------------------

def _task(folder: Path, train: str, test: str = "test.csv", extra: str = "",
          types: str = 'input = "Vec[2]"\noutput = "Vec[2]"') -> Path:
    path = folder / "t.toml"
    path.write_text(f'[data]\nsource = "files"\ntrain = "{train}"\ntest = "{test}"\n{extra}'
                    f"[types]\n{types}\n")
    return path


def _rows(folder: Path, name: str, rows: list[list], header=("a", "b", "y")) -> None:
    _write_csv(folder / name, list(header), rows)


GOOD = [[i * 0.1, 1 - i * 0.1, i % 2] for i in range(20)]


@pytest.mark.parametrize("train, test, types, match", [
    (None, GOOD, None, r"train\.csv not found"),
    ([*GOOD[:4], [0.1, "abc", 1], *GOOD[4:]], GOOD, None,
     r"train\.csv, row 6, column 'b': 'abc' is not a number"),
    ([*GOOD, [0.1, "", 1]], GOOD, None,
     r"train\.csv, row 22, column 'b': a missing value \(''\); to leave out"),
    ([*GOOD, [0.1, "nan", 1]], GOOD, None,
     r"train\.csv, row 22, column 'b': a missing value \('nan'\)"),
    ([*GOOD, [0.1, "-inf", 1]], GOOD, None,
     r"train\.csv, row 22, column 'b': '-inf' is not a finite number"),
    ([[*r[:2], 1] for r in GOOD], GOOD, None, r"train\.csv: the targets have one class"),
    (GOOD, [*GOOD, [0.0, 0.0, 7]], None, r"test\.csv: labels never seen in training: '7'"),
    (GOOD, GOOD, 'input = "Vec[3]"\noutput = "Vec[2]"',
     r"train\.csv: example 0 has shape \(2,\), but the input type Vec\[3\] needs \(3,\)"),
    (GOOD, GOOD, 'input = "Vec[2]"\noutput = "Vec[3]"', r"2 classes but the output type"),
])
def test_bad_csv_data_is_reported_with_where(tmp_path, train, test, types, match):
    if train is not None:
        _rows(tmp_path, "train.csv", train)
    _rows(tmp_path, "test.csv", test)
    path = _task(tmp_path, "train.csv", **({"types": types} if types else {}))
    with pytest.raises(NeurosymError, match=match):
        load_task(path)


def test_bad_numpy_data_is_reported(tmp_path):
    np.savez(tmp_path / "ragged.npz", x=np.ones((5, 2)), y=np.arange(4))
    np.savez(tmp_path / "good.npz", x=np.ones((6, 2)), y=np.arange(6) % 2)
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    for train, match in (("ragged.npz", "x has 5 examples but y has 4"),
                         ("bad.npz", "not a readable .npz file"),
                         ("data.parquet", "not found")):
        with pytest.raises(DataError, match=match):
            load_task(_task(tmp_path, train, "good.npz"))
    (tmp_path / "data.parquet").write_bytes(b"")
    with pytest.raises(DataError, match="unknown data format '.parquet'"):
        load_task(_task(tmp_path, "data.parquet", "good.npz"))
    with pytest.raises(DataError, match="needs shape|needs \\(4,\\)|input type"):
        Task.from_arrays([np.ones(2), np.ones(3)] * 4, [0, 1] * 4, np.ones((2, 2)), [0, 1],
                         input_type="Vec[2]")


def test_task_init_errors_name_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _rows(tmp_path, "train.csv", [*GOOD[:2], [0.1, "x", 1]])
    _rows(tmp_path, "test.csv", GOOD)
    result = CliRunner().invoke(main, ["task", "init", "t", "--train", "train.csv",
                                       "--test", "test.csv"])
    assert result.exit_code != 0 and "train.csv, row 4, column 'b'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "tasks" / "t.toml").exists()


@pytest.mark.parametrize("bad_file, cell, why", [
    ("train.csv", "nan", "a missing target ('nan')"),  # a missing label written as nan
    ("test.csv", "1e400", "'1e400' is not a finite number"),
    ("test.csv", "5e38", "'5e38' is beyond the range of 32-bit floats"),
])
def test_task_init_refuses_a_target_it_cannot_train_on_naming_the_file_as_given(
        tmp_path, monkeypatch, bad_file, cell, why):
    """Regression targets: before, 'nan' was read as a number and reported, after the
    targets were standardized, as '5 NaN values in the labels' of the unfinished task
    file `tasks/t.toml.partial`, split 'val'."""
    monkeypatch.chdir(tmp_path)
    rows = [[i * 0.1, 1 - i * 0.1, 0.37 * i] for i in range(20)]
    _rows(tmp_path, "train.csv", rows)
    _rows(tmp_path, "test.csv", rows)
    _rows(tmp_path, bad_file, [*rows[:2], [0.3, 0.7, cell], *rows[2:]])
    result = CliRunner().invoke(main, ["task", "init", "t", "--train", "train.csv",
                                       "--test", "test.csv"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"error: {bad_file}, row 4, column 'y': {why}" in result.output
    assert ".partial" not in result.output and not list((tmp_path / "tasks").glob("t.*"))


def test_arrays_refuse_nan_targets_complex_and_out_of_range_inputs():
    x, y = np.random.rand(30, 3), np.random.rand(30)
    with pytest.raises(DataError, match=r"x_train: target 4 \(nan\) is not a finite"):
        Task.from_arrays(x, np.where(np.arange(30) == 4, np.nan, y), x, y)
    with pytest.raises(DataError, match="real numbers, not complex"):
        Task.from_arrays(x + 1j, y, x, y)
    with pytest.raises(DataError, match=r"position \(1,\): 1e\+300 is beyond the range"):
        Task.from_arrays(np.where(x > 2, 0, x) + np.array([0, 1e300, 0]), y, x, y)
    big = Task.from_arrays(x * 1e37, y * 3e38, x, y)  # in range: standardized in float64
    assert torch.isfinite(big.train.x).all() and torch.isfinite(big.train.y).all()


def test_regression_targets_are_standardized_and_predictions_restored(tmp_path):
    """A bias of 150 takes Adam thousands of steps: targets are trained standardized, and a
    saved model or a fitted estimator predicts in the data's units."""
    from neurosym.estimators import ProgramRegressor

    x, y = load_diabetes(return_X_y=True)
    task = Task.from_arrays(x[:300], y[:300], x[300:], y[300:])
    assert abs(float(task.train.y.mean())) < 1e-4 and task.normalization.target[0] > 100
    program = tmp_path / "p.ns"
    program.write_text("def main : Vec[10] -> Float = affine\n")
    run = neurosym.run_file(program, task, epochs=30)
    model = run.save(tmp_path / "m")
    predicted = model.predict(x[300:])
    assert abs(predicted.mean() - y[300:].mean()) < 25  # in the data's units
    # the reported mse is on the standardized scale; its value in the data's units is
    # the saved model's error on the raw targets (what a user compares with another model)
    raw = float(((predicted.reshape(-1) - y[300:]) ** 2).mean())
    ev = run.evaluation
    assert ev.test * ev.units == pytest.approx(raw, rel=1e-3) and raw > 1000
    assert ev.in_units().startswith(f"mse in the target's units: test {ev.test * ev.units:.5g}")
    fitted = ProgramRegressor(time_limit=30, max_nodes=3).fit(x[:300], y[:300])
    assert fitted.score(x[300:], y[300:]) > 0.3


# ---- one file, columns that are not inputs ------------------------------------------------

def _one_file_wine(folder: Path) -> Path:
    """Wine as one CSV, as data often comes: a row number, a date, the features, the class."""
    x, y = load_wine(return_X_y=True)
    header = ["", "bottled", *(f"f{i}" for i in range(x.shape[1])), "cultivar"]
    rows = [[i, f"{1970 + i // 4} Q{1 + i % 4}", *map(float, x[i]), ["a", "b", "c"][y[i]]]
            for i in range(len(y))]
    return _write_csv(folder / "wine.csv", header, rows)


def test_one_csv_with_a_date_and_a_row_number_becomes_a_task(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _one_file_wine(tmp_path)
    refused = CliRunner().invoke(main, ["task", "init", "w", "--train", "wine.csv"])
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    assert ("wine.csv, row 2, column 'bottled': '1970 Q1' is not a number (if it is not an "
            "input, leave it out: [data] ignore = [\"bottled\"], or `task init --ignore "
            "bottled`; if it names categories, list them: [data.categorical] \"bottled\" = "
            "[...])") in refused.output
    typo = CliRunner().invoke(main, ["task", "init", "w", "--train", "wine.csv",
                                     "--ignore", "botled"])
    assert "no ignored column 'botled'; did you mean 'bottled'?" in typo.output
    result = _init(tmp_path, "w", "--train", "wine.csv", "--ignore", "bottled", "--ignore", "")
    assert result.exit_code == 0, result.output
    assert "Vec[13] -> Vec[3]" in result.output
    assert "inputs: 13 columns ('f0', 'f1'," in result.output
    text = (tmp_path / "tasks" / "w.toml").read_text()
    assert 'ignore = ["bottled", ""]' in text and "test_fraction = 0.2" in text
    task = load_task("w")
    # 178 examples: a fifth held out for testing, stratified (59/71/48 per class)
    assert len(task.test) == 36 and len(task.train) + len(task.val) == 142
    assert torch.bincount(task.test.y).tolist() == [12, 14, 10]
    # the held-out rows do not move with the search's seed
    reseeded_file = tmp_path / "w5.toml"
    reseeded_file.write_text(text.replace("seed = 0", "seed = 5").replace("../", ""))
    reseeded = load_task(reseeded_file)
    def raw(t, split):  # inputs are standardized with the fitted split's statistics
        norm = t.normalization
        return split.x * torch.tensor(norm.std) + torch.tensor(norm.mean)

    assert torch.allclose(raw(reseeded, reseeded.test), raw(task, task.test), atol=1e-4)
    assert raw(reseeded, reseeded.val).shape == raw(task, task.val).shape
    assert not torch.allclose(raw(reseeded, reseeded.val), raw(task, task.val), atol=1e-4)
    found = synthesize(task, **SMALL)
    found.save(tmp_path / "m")
    # new data: ignored columns skipped where present, and not needed where absent
    with (tmp_path / "wine.csv").open() as f:
        rows = list(csv.reader(f))
    _write_csv(tmp_path / "new.csv", rows[0][2:-1], [r[2:-1] for r in rows[1:6]])
    for new in ("wine.csv", "new.csv"):
        out = CliRunner().invoke(main, ["predict", str(tmp_path / "m"), new])
        assert out.exit_code == 0, out.output
        assert out.output.splitlines()[1:6] == _predictions(tmp_path / "m", "new.csv")


def _predictions(model: Path, data: str) -> list[str]:
    out = CliRunner().invoke(main, ["predict", str(model), data])
    return out.output.splitlines()[1:6]


@pytest.mark.parametrize("extra, match", [
    ('ignore = ["a", 1]\n', r"\[data\]: ignore must be a list of text"),
    ("ignore = \"a\"\n", r"\[data\]: ignore must be a list"),
    ("test_fraction = 0.95\n", r"\[data\]: test_fraction must be > 0 and <= 0.9"),
    ('test = "test.csv"\ntest_fraction = 0.2\n', "either 'test'"),
    ("", "either 'test' \\(a data file\\) or 'test_fraction'"),
])
def test_bad_ignore_and_test_fraction_settings_are_refused(tmp_path, extra, match):
    _rows(tmp_path, "train.csv", GOOD)
    _rows(tmp_path, "test.csv", GOOD)
    path = tmp_path / "t.toml"
    path.write_text(f'[data]\nsource = "files"\ntrain = "train.csv"\n{extra}'
                    '[types]\ninput = "Vec[2]"\noutput = "Vec[2]"\n')
    with pytest.raises(NeurosymError, match=match):
        load_task(path)


def test_too_few_examples_to_hold_out_a_test_share(tmp_path):
    _rows(tmp_path, "train.csv", GOOD[:2])
    path = tmp_path / "t.toml"
    path.write_text('[data]\nsource = "files"\ntrain = "train.csv"\ntest_fraction = 0.2\n'
                    '[types]\ninput = "Vec[2]"\noutput = "Vec[2]"\n')
    with pytest.raises(DataError, match="too few to hold out a test share of 0.2"):
        load_task(path)


def test_show_names_the_csv_columns_a_model_reads(tmp_path, monkeypatch):
    """Explanations read `'Savings' above -2.5`, not `feature 2 above -2.5`."""
    from neurosym.models.explain import describe

    monkeypatch.chdir(tmp_path)
    _one_file_wine(tmp_path)
    assert _init(tmp_path, "w", "--train", "wine.csv", "--ignore", "bottled",
                 "--ignore", "").exit_code == 0
    program = tmp_path / "p.ns"
    program.write_text("def main : Vec[13] -> Vec[3] = \\x -> add (affine x) (ite (above "
                       "(select[2] x)) (affine (select[0] x)) (affine (select[3:5] x)))\n")
    model = neurosym.run_file(program, "tasks/w.toml", epochs=2).save(tmp_path / "m")
    assert model.record["input_names"] == [f"f{i}" for i in range(13)]
    reads = {p["part"]: p["reads"] for p in describe(neurosym.load(tmp_path / "m"))}
    assert reads["affine (x)"].startswith("weighs most 'f")
    assert reads["affine (select[0] x)"].startswith("'f0' scaled per output")
    assert re.fullmatch(r"weighs most 'f[34]' \(\d+%\), 'f[34]' \(\d+%\)",
                        reads["affine (select[3:5] x)"])
    (above,) = [r for part, r in reads.items() if part.startswith("above")]
    assert "in the data's units: 'f2' above " in above
    # channels of a long-format CSV name what a per-channel summary reads
    rows = [[f"s{i}", t, math.sin(t + i), math.cos(t * i), i % 2] for i in range(12)
            for t in range(6)]
    _write_csv(tmp_path / "long.csv", ["id", "t", "accel", "gyro", "label"], rows)
    (tmp_path / "l.toml").write_text(
        '[data]\nsource = "files"\ntrain = "long.csv"\ntest = "long.csv"\nlayout = "long"\n'
        'id_column = "id"\ntime_column = "t"\n'
        '[types]\ninput = "List[Vec[2]]"\noutput = "Vec[2]"\n')
    program.write_text("def main : List[Vec[2]] -> Vec[2] = \\xs -> add (affine (mean xs)) "
                       "(affine (std (interval xs)))\n")
    model = neurosym.run_file(program, tmp_path / "l.toml", epochs=2).save(tmp_path / "s")
    reads = {p["part"]: p["reads"] for p in describe(model)}
    assert re.fullmatch(r"weighs most mean of '(accel|gyro)' \(\d+%\), mean of '(accel|gyro)'"
                        r" \(\d+%\)", reads["affine (mean xs)"]), reads
    (std,) = [r for part, r in reads.items() if part.startswith("affine (std")]
    assert "std of 'accel'" in std and "std of 'gyro'" in std
    # a series given as one row of time steps has no channel names
    _write_csv(tmp_path / "wide.csv", ["t0", "t1", "t2", "y"],
               [[i, i + 1, i * 2, i % 2] for i in range(12)])
    (tmp_path / "wide.toml").write_text(
        '[data]\nsource = "files"\ntrain = "wide.csv"\ntest = "wide.csv"\n'
        '[types]\ninput = "List[Vec[1]]"\noutput = "Vec[2]"\n')
    assert load_task(tmp_path / "wide.toml").input_names is None


def _penguins(folder: Path, n: int = 120) -> Path:
    """Penguin-like rows, as real tables come: two columns of category names, missing
    values written as NA, "?" or left empty, and a class that depends on all of it."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        island, sex = ["Biscoe", "Dream", "Torgersen"][i % 3], ["female", "male"][i % 2]
        bill = rng.normal(40 + 5 * (i % 3), 1.0)
        species = ["Adelie", "Chinstrap", "Gentoo"][(i % 3 + (bill > 45)) % 3]
        rows.append([island, f"{bill:.1f}", f"{rng.normal(200, 10):.0f}", sex, species])
    rows[3][1], rows[7][3], rows[11][2], rows[15][4] = "NA", "?", "", "NA"
    return _write_csv(folder / "penguins.csv",
                      ["island", "bill_length_mm", "flipper_mm", "sex", "species"], rows)


def test_category_names_and_missing_values_in_a_csv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _penguins(tmp_path)
    refused = CliRunner().invoke(main, ["task", "init", "p", "--train", "penguins.csv"])
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    assert ("penguins.csv, row 5, column 'bill_length_mm': a missing value ('NA'); to leave "
            'out the rows that have one: [data] missing = "drop"; to fill it with its '
            "column's mean: missing = \"mean\" (or `task init --missing drop|mean`)"
            ) in refused.output
    result = _init(tmp_path, "p", "--train", "penguins.csv", "--missing", "drop")
    assert result.exit_code == 0, result.output
    assert "penguins.csv: left out 4 rows with a missing value" in result.output
    assert "categories, one 0/1 feature per name: 'island' (3 names), 'sex' (2 names)" \
        in result.output
    text = (tmp_path / "tasks" / "p.toml").read_text()
    assert ('[data.categorical]\n"island" = ["Biscoe", "Dream", "Torgersen"]\n'
            '"sex" = ["female", "male"]') in text  # "?" and NA are not names
    task = load_task("p")
    assert str(task.input_type) == "Vec[7]" and len(task.train) + len(task.val) + len(
        task.test) == 116
    assert task.input_names == ("island=Biscoe", "island=Dream", "island=Torgersen",
                                "bill_length_mm", "flipper_mm", "sex=female", "sex=male")
    norm = task.normalization
    raw = task.train.x * torch.tensor(norm.std) + torch.tensor(norm.mean)
    assert torch.allclose(raw[:, :3].sum(1), torch.ones(len(raw)), atol=1e-4)  # one island
    found = synthesize(task, **SMALL)
    assert found.best.evaluation.test > 0.6
    found.save(tmp_path / "m")
    _write_csv(tmp_path / "new.csv", ["island", "bill_length_mm", "flipper_mm", "sex"],
               [["Dream", 44.0, 210, "male"], ["Biscoe", 39.5, 190, "female"]])
    ok = CliRunner().invoke(main, ["predict", str(tmp_path / "m"), "new.csv"])
    assert ok.exit_code == 0 and len(ok.output.splitlines()) == 3, ok.output
    for cells, message in (
            (["Atlantis", 44.0, 210, "male"], "row 2, column 'island': 'Atlantis' is not one "
             "of its categories ('Biscoe', 'Dream', 'Torgersen')"),
            (["Dream", "NA", 210, "male"], "row 2, column 'bill_length_mm': a missing value "
             "('NA'); a model cannot predict without it")):
        _write_csv(tmp_path / "bad.csv", ["island", "bill_length_mm", "flipper_mm", "sex"],
                   [cells])
        bad = CliRunner().invoke(main, ["predict", str(tmp_path / "m"), "bad.csv"])
        assert bad.exit_code != 0 and f"error: bad.csv, {message}" in bad.output, bad.output


@pytest.mark.parametrize("extra, match", [
    ('[data.categorical]\n"islnd" = ["Biscoe"]\n', "no categorical column 'islnd'; did you "
     "mean 'island'"),
    ('[data.categorical]\n"island" = ["Biscoe", "Biscoe"]\n', "categorical must be a table"),
    ('[data.categorical]\n"island" = "Biscoe"\n', "categorical must be a table"),
    ('missing = "impute"\n', r"missing must be one of error, drop, mean"),
    ('ignore = ["species"]\n', r"column 'species' is read as the target, id or time; it "
                                "cannot be ignored"),
])
def test_bad_categorical_and_missing_settings_are_refused(tmp_path, extra, match):
    _penguins(tmp_path)
    path = tmp_path / "t.toml"
    data, _, table = extra.partition("[data.categorical]\n")
    path.write_text('[data]\nsource = "files"\ntrain = "penguins.csv"\ntest_fraction = 0.2\n'
                    + ("" if "missing" in data else 'missing = "drop"\n') + data
                    + (f"[data.categorical]\n{table}" if table else "")
                    + '[types]\ninput = "Vec[5]"\noutput = "Vec[3]"\n')
    with pytest.raises(NeurosymError, match=match):
        load_task(path)


def test_a_file_whose_every_row_misses_a_value(tmp_path):
    _rows(tmp_path, "train.csv", [[0.1, "NA", 1], [0.2, "?", 0]])
    path = tmp_path / "t.toml"
    path.write_text('[data]\nsource = "files"\ntrain = "train.csv"\ntest_fraction = 0.5\n'
                    'missing = "drop"\n[types]\ninput = "Vec[2]"\noutput = "Vec[2]"\n')
    with pytest.raises(DataError, match=r"train\.csv: every row has a missing value \(2 left"):
        load_task(path)


def test_missing_values_filled_with_the_column_mean_in_training_and_new_data(tmp_path,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    _penguins(tmp_path)
    result = _init(tmp_path, "p", "--train", "penguins.csv", "--missing", "mean")
    assert result.exit_code == 0, result.output
    task = load_task("p")
    splits = (task.train, task.val, task.test)
    assert sum(len(s) for s in splits) == 119  # only the row whose target is NA is refused
    assert not any(bool(s.x.isnan().any()) for s in splits)
    # the NA bill length (row 5 of the file) is the fitted split's mean: 0 once standardized
    raw = _write_csv(tmp_path / "one.csv", ["island", "bill_length_mm", "flipper_mm", "sex"],
                     [["Torgersen", "NA", "?", ""], ["Torgersen", 40.0, 200, "female"]])
    program = tmp_path / "p.ns"
    program.write_text("def main : Vec[7] -> Vec[3] = affine\n")
    model = neurosym.run_file(program, "tasks/p.toml", epochs=2).save(tmp_path / "m")
    assert model.record["data"]["missing"] == "mean"
    inputs = model.inputs(str(raw))
    assert torch.equal(inputs[0, 3:], torch.zeros(4))  # every missing value: its mean
    assert torch.equal(inputs[0, :3], inputs[1, :3]) and not torch.equal(inputs[0], inputs[1])
    out = CliRunner().invoke(main, ["predict", str(tmp_path / "m"), "one.csv"])
    assert out.exit_code == 0 and len(out.output.splitlines()) == 3, out.output
    # the mean needs the statistics that standardization keeps
    text = (tmp_path / "tasks" / "p.toml").read_text()
    (tmp_path / "tasks" / "p.toml").write_text(text.replace("[data]\n",
                                                            "[data]\nnormalize = false\n"))
    with pytest.raises(DataError, match='missing = "mean" fills a missing value with its '
                                        "column's mean, which needs normalize = true"):
        load_task("p")


def test_tables_separated_by_semicolons_tabs_or_bars(tmp_path):
    """As spreadsheets export them: semicolons with decimal commas, tabs, bars; a comma
    file whose text cells hold semicolons is still read by commas."""
    x, y = load_wine(return_X_y=True)
    header = [f"f{i}" for i in range(4)] + ["cultivar"]
    rows = [[*(f"{v:.3f}" for v in x[i, :4]), f"c{y[i]}"] for i in range(len(y))]
    (tmp_path / "semi.csv").write_text("\n".join(";".join(r).replace(".", ",") if k else
                                                 ";".join(r) for k, r in
                                                 enumerate([header, *rows])) + "\n")
    (tmp_path / "tabs.tsv").write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n")
    (tmp_path / "bars.csv").write_text("\n".join("|".join(r) for r in [header, *rows]) + "\n")
    _write_csv(tmp_path / "commas.csv", header, [[*r[:4], f"{r[4]}; dry"] for r in rows])
    expected = torch.tensor(x[:, :4], dtype=torch.float32)
    for name in ("semi.csv", "tabs.tsv", "bars.csv", "commas.csv"):
        path = tmp_path / f"{name}.toml"
        path.write_text(f'[data]\nsource = "files"\ntrain = "{name}"\ntest_fraction = 0.2\n'
                        'normalize = false\n[types]\ninput = "Vec[4]"\noutput = "Vec[3]"\n')
        task = load_task(path)
        every = torch.cat([task.train.x, task.val.x, task.test.x])
        assert torch.allclose(every.sort(0).values, expected.sort(0).values, atol=1e-3), name


def test_a_text_channel_in_a_long_csv_is_refused_without_the_category_hint(tmp_path):
    """Categories are read from one-row-per-example tables only: the hint offers `ignore`."""
    _write_csv(tmp_path / "long.csv", ["id", "t", "v", "kind", "y"],
               [["a", 0, 1, "up", "x"], ["a", 1, 2, "up", "x"], ["b", 0, 3, "down", "z"]])
    (tmp_path / "t.toml").write_text(
        '[data]\nsource = "files"\ntrain = "long.csv"\ntest = "long.csv"\nlayout = "long"\n'
        'id_column = "id"\ntime_column = "t"\n[types]\ninput = "List[Vec[2]]"\n'
        'output = "Vec[2]"\n')
    with pytest.raises(DataError) as refused:
        load_task(tmp_path / "t.toml")
    assert refused.value.message.endswith(
        "long.csv, row 2, column 'kind': 'up' is not a number (if it is not an input, leave "
        "it out: [data] ignore = [\"kind\"], or `task init --ignore kind`)")


@pytest.mark.parametrize("missing, steps", [("drop", [2, 3]), ("mean", [3, 3])])
def test_a_long_csv_drops_or_fills_a_missing_step(tmp_path, missing, steps):
    _write_csv(tmp_path / "long.csv", ["id", "t", "v", "y"],
               [["a", 0, 1, "x"], ["a", 1, "NA", "x"], ["a", 2, 3, "x"],
                ["b", 0, 4, "z"], ["b", 1, 5, "z"], ["b", 2, 6, "NA"], ["b", 3, 7, "z"]])
    (tmp_path / "t.toml").write_text(
        '[data]\nsource = "files"\ntrain = "long.csv"\ntest = "long.csv"\nval = "long.csv"\n'
        f'layout = "long"\nid_column = "id"\ntime_column = "t"\nmissing = "{missing}"\n'
        '[types]\ninput = "List[Vec[1]]"\noutput = "Vec[2]"\n')
    task = load_task(tmp_path / "t.toml")
    assert task.train.x.weights.sum(1).tolist() == steps  # "b" loses its unlabelled step
    present = task.train.x.data[0, :, 0][task.train.x.weights[0] > 0]
    if missing == "mean":  # the mean of the 6 values present, 0 once standardized
        assert present[1].item() == 0.0


def test_show_plot_draws_a_regression_model_by_thirds_of_its_target(tmp_path, monkeypatch):
    """A regression model's plot crashed (its real targets were taken for class indices)."""
    from neurosym.models.plot import _thirds

    monkeypatch.chdir(tmp_path)
    x, y = load_diabetes(return_X_y=True)
    _write_csv(tmp_path / "d.csv", [f"x{i}" for i in range(10)] + ["y"],
               [[*map(float, x[i]), float(y[i])] for i in range(len(y))])
    assert _init(tmp_path, "d", "--train", "d.csv").exit_code == 0
    program = tmp_path / "p.ns"
    program.write_text("def main : Vec[10] -> Float = \\x -> add (affine x) "
                       "(ite (above (select[2] x)) (affine x) (affine x))\n")
    neurosym.run_file(program, "tasks/d.toml", epochs=2).save(tmp_path / "m")
    for extra in ([], ["--data", "d.csv"]):
        png = tmp_path / "m.png"
        result = CliRunner().invoke(main, ["show", "m", "--plot", str(png), *extra])
        assert result.exit_code == 0, result.output
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    groups = _thirds([float(v) for v in y])
    assert sorted({g.split()[0] for g in groups}) == ["high", "low", "middle"]
    assert all(abs(groups.count(g) - len(y) / 3) < 10 for g in set(groups))


def test_missing_values_in_arrays_and_npz_files(tmp_path):
    x, y = load_wine(return_X_y=True)
    x = x.copy()
    x[::7, 3] = np.nan  # 26 of 178 examples
    with pytest.raises(DataError, match=r'x_train: example 0, position \(3,\): nan is not a '
                                        r'finite number \(a missing value\? missing = "drop"'):
        Task.from_arrays(x[::2], y[::2], x[1::2], y[1::2])
    dropped = Task.from_arrays(x[::2], y[::2], x[1::2], y[1::2], missing="drop")
    filled = Task.from_arrays(x[::2], y[::2], x[1::2], y[1::2], missing="mean")
    assert len(dropped.train) + len(dropped.val) == 89 - 13 and len(dropped.test) == 89 - 13
    assert len(filled.train) + len(filled.val) == 89 and len(filled.test) == 89
    assert not filled.train.x.isnan().any() and not filled.test.x.isnan().any()
    program = tmp_path / "p.ns"
    program.write_text("def main : Vec[13] -> Vec[3] = affine\n")
    model = neurosym.run_file(program, filled, epochs=3).save(tmp_path / "m")
    assert len(neurosym.load(tmp_path / "m").predict(x[:8])) == 8  # NaN filled in new data
    strict = neurosym.run_file(program, dropped, epochs=3).save(tmp_path / "d")
    with pytest.raises(DataError, match="nan is not a finite number"):
        strict.predict(x[:8])
    assert model.record["data"]["missing"] == "mean"
    # the same policies in a task file over .npz data
    np.savez(tmp_path / "wine.npz", x=x, y=y)
    for policy, count in (("drop", 178 - 26), ("mean", 178)):
        path = tmp_path / f"{policy}.toml"
        path.write_text(f'[data]\nsource = "files"\ntrain = "wine.npz"\ntest_fraction = 0.2\n'
                        f'missing = "{policy}"\n[types]\ninput = "Vec[13]"\noutput = "Vec[3]"\n')
        task = load_task(path)
        assert len(task.train) + len(task.val) + len(task.test) == count


def test_two_columns_of_one_name_are_refused(tmp_path):
    """A column is chosen, ignored and explained by its name: two of one name are refused
    (empty names, as a wide series file may have, are not names)."""
    _rows(tmp_path, "train.csv", GOOD, header=("a", "a", "y"))
    _rows(tmp_path, "test.csv", GOOD)
    with pytest.raises(DataError, match=r"train\.csv: columns 1 and 2 are both named 'a'; "
                                        "rename one"):
        load_task(_task(tmp_path, "train.csv"))
    _rows(tmp_path, "train.csv", GOOD, header=("", "", "y"))
    _rows(tmp_path, "test.csv", GOOD, header=("", "", "y"))
    assert len(load_task(_task(tmp_path, "train.csv")).test) == 20


def test_a_separator_ending_every_line_is_not_a_column(tmp_path):
    (tmp_path / "train.csv").write_text("a,b,y,\n" + "".join(f"{r[0]},{r[1]},{r[2]},\n"
                                                            for r in GOOD))
    _rows(tmp_path, "test.csv", GOOD)
    task = load_task(_task(tmp_path, "train.csv"))
    assert task.input_names == ("a", "b") and len(task.train) + len(task.val) == 20
    (tmp_path / "train.csv").write_text("a,b,y,\n0.1,0.2,1,\n0.3,0.4,0,7\n")
    with pytest.raises(DataError, match=r"train\.csv, row 3: 4 cells but 3 columns"):
        load_task(_task(tmp_path, "train.csv"))


def test_a_csv_without_a_header_row_is_read_by_column_number(tmp_path):
    """Before, its first example became the column names and its last step the target.
    Told from its first row (numbers, and at most one word); its columns are numbered from
    1 and its target is the first, unless `target` names another."""
    def both(text: str) -> None:
        for name in ("train.csv", "test.csv"):
            (tmp_path / name).write_text(text)

    both("".join(f"{i % 2},{i * 0.1},{-i}\n" for i in range(20)))
    for extra in ("", "target = 1\n", 'target = "1"\n'):
        task = load_task(_task(tmp_path, "train.csv", extra=extra))
        assert task.classes == ("0", "1") and task.input_names == ("2", "3")
        assert len(task.train) + len(task.val) == 20  # the first row is an example
    both("".join(f"{i * 0.1},{-i},{i % 2}\n" for i in range(20)))
    task = load_task(_task(tmp_path, "train.csv", extra="target = 3\n"))
    assert task.classes == ("0", "1") and task.input_names == ("1", "2")
    # a word and 0, 1, 2, ... (the steps of a series) name columns; so do numbers when
    # `header = true` says so
    for first, extra in (("0,1,y\n", ''), ("5,7,9\n", 'header = true\n')):
        both(first + "".join(f"{i * 0.1},{-i},{i % 2}\n" for i in range(20)))
        task = load_task(_task(tmp_path, "train.csv", extra=extra))
        assert len(task.train) + len(task.val) == 20 and len(task.input_names) == 2


def test_ucr_layout_files_give_the_task_their_ts_files_give(tmp_path, monkeypatch):
    """GunPoint as aeon ships it (.ts), and written as the UCR archive's header-less files:
    the label, then the values, tab-separated (.tsv) or in runs of spaces (.txt)."""
    from aeon.datasets import load_from_ts_file

    monkeypatch.chdir(tmp_path)
    for split in ("TRAIN", "TEST"):
        source = aeon_data_dir() / "GunPoint" / f"GunPoint_{split}.ts"
        shutil.copy(source, tmp_path)
        x, y = load_from_ts_file(str(source))
        (tmp_path / f"g_{split}.tsv").write_text("".join(
            f"{label}\t" + "\t".join(repr(float(v)) for v in row) + "\n"
            for row, label in zip(x[:, 0], y)))
        (tmp_path / f"g_{split}.txt").write_text("".join(
            f"  {label}  " + "  ".join(f"{v:.17g}" for v in row) + "\n"
            for row, label in zip(x[:, 0], y)))
    tasks = {}
    for name, suffix in (("ts", "ts"), ("tsv", "tsv"), ("txt", "txt")):
        prefix = "GunPoint" if suffix == "ts" else "g"
        result = _init(tmp_path, name, "--train", f"{prefix}_TRAIN.{suffix}",
                       "--test", f"{prefix}_TEST.{suffix}")
        assert result.exit_code == 0, result.output
        tasks[name] = load_task(name)
    assert "no header row" in result.output and "steps of one series" in result.output
    ts = tasks["ts"]
    for other in (tasks["tsv"], tasks["txt"]):
        assert other.input_type == ts.input_type and other.classes == ts.classes
        for split in ("train", "val", "test"):
            a, b = getattr(ts, split), getattr(other, split)
            assert torch.equal(a.y, b.y)
            assert torch.allclose(a.x.data, b.x.data, atol=1e-6)
            assert torch.equal(a.x.weights, b.x.weights)


def test_ucr_layout_series_of_unequal_lengths_end_at_their_padding(tmp_path):
    lengths = [12 + i % 5 for i in range(20)]
    text = "".join(f"c{i % 2}\t" + "\t".join(
        [f"{np.sin(t + i):.4f}" for t in range(n)] + ["NaN"] * (16 - n)) + "\n"
        for i, n in enumerate(lengths))
    for name in ("train.tsv", "test.tsv"):
        (tmp_path / name).write_text(text)
    task = load_task(_task(tmp_path, "train.tsv", "test.tsv",
                           types='input = "List[Vec[1]]"\noutput = "Vec[2]"'))
    assert task.classes == ("c0", "c1")
    assert sorted(task.test.x.weights.sum(1).long().tolist()) == sorted(lengths)


def test_task_init_reads_numbered_columns_as_a_series_only_when_they_vary_as_one(
        tmp_path, monkeypatch):
    from aeon.datasets import load_from_ts_file
    from sklearn.datasets import load_breast_cancer, load_digits

    monkeypatch.chdir(tmp_path)
    x, y = load_from_ts_file(str(aeon_data_dir() / "GunPoint" / "GunPoint_TRAIN.ts"))
    _write_csv(tmp_path / "wide.csv", ["label", *(f"t{i}" for i in range(x.shape[2]))],
               [[f"c{label}", *map(float, row)] for row, label in zip(x[:, 0], y)])
    digits, breast = load_digits(), load_breast_cancer()
    _write_csv(tmp_path / "pixels.csv", [*(f"pixel{i}" for i in range(64)), "digit"],
               [[*map(int, r), t] for r, t in zip(digits.data, digits.target)])
    _write_csv(tmp_path / "breast.csv", [*(f"x{i + 1}" for i in range(30)), "y"],
               [[*map(float, r), t] for r, t in zip(breast.data, breast.target)])
    wide = _init(tmp_path, "wide", "--train", "wide.csv", "--target", "label")
    assert "List[Vec[1]] -> Vec[2]" in wide.output
    assert "150 columns 't0'..'t149' are the steps of one series" in wide.output
    assert "--input-type 'Vec[150]'" in wide.output
    for name, width in (("pixels", 64), ("breast", 30)):
        table = _init(tmp_path, name, "--train", f"{name}.csv")
        assert f"Vec[{width}] -> Vec[" in table.output and "are separate features" in table.output
        assert "--input-type 'List[Vec[1]]'" in table.output
    assert load_task("wide").input_type == ListT(Vec(1))


def test_integer_quantities_read_as_classes_say_how_to_regress():
    """15 integer weights are taken for classes (the documented rule); the test split's
    unseen values then say how to ask for regression instead."""
    from sklearn.datasets import load_linnerud

    x, y = load_linnerud(return_X_y=True)
    with pytest.raises(DataError, match=r"labels never seen in training: .*; if the target "
                                        r"is a quantity, not a class: `task init --regression`"):
        Task.from_arrays(x[:15], y[:15, 0], x[15:], y[15:, 0])
    assert Task.from_arrays(x[:15], y[:15, 0], x[15:], y[15:, 0], regression=True).loss == "mse"
