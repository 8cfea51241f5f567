"""Task specs, data sources and metrics."""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import pytest
import torch

from neurosym import metrics
from neurosym.interp.values import Seq, check_value
from neurosym.lang.errors import DataError, TaskError
from neurosym.lang.types import BOOL, FLOAT, ListT, Vec
from neurosym.resources import tasks_dir
from neurosym.tasks import sources
from neurosym.tasks.sources import SOURCES, SourceData, digit_pools
from neurosym.tasks.spec import Split, list_tasks, load_task
from neurosym.tasks.splits import stratified_partition

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = {
    "basic_motions": ("List[Vec[6]]", "Vec[4]"),
    "japanese_vowels": ("List[Vec[12]]", "Vec[9]"),
    "gunpoint": ("List[Vec[1]]", "Vec[2]"),
    "italy_power": ("List[Vec[1]]", "Vec[2]"),
    "arrow_head": ("List[Vec[1]]", "Vec[3]"),
    "acsf1": ("List[Vec[1]]", "Vec[10]"),
    "covid3month_disc": ("List[Vec[1]]", "Vec[3]"),
    "osu_leaf": ("List[Vec[1]]", "Vec[6]"),
    "pickup_gesture_wiimote_z": ("List[Vec[1]]", "Vec[10]"),
    "unit_test": ("List[Vec[1]]", "Vec[2]"),
    "digits": ("Image[8,8]", "Vec[10]"),
    "digit_recognize_3": ("Image[8,8]", "Bool"),
    "digit_count_3": ("List[Image[8,8]]", "Float"),
    "digit_sum": ("List[Image[8,8]]", "Float"),
}


@functools.cache
def task(name: str, fraction: float = 1.0):
    return load_task(name, fraction)


def write_task(tmp_path: Path, body: str, name: str = "t") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


# ------------------------------------------------------------------ bundled tasks


def test_list_tasks_has_every_bundled_task():
    listed = dict(list_tasks())
    assert set(BUNDLED) <= set(listed)
    assert all(listed[name] for name in BUNDLED), "every task has a description"
    assert (tasks_dir() / "digits.toml").is_file()


def test_every_classification_set_bundled_with_aeon_is_a_task():
    from neurosym.resources import read_toml
    from neurosym.tasks.sources import bundled_aeon_sets

    sets = {read_toml(p, Exception, "task").get("data", {}).get("dataset")
            for p in tasks_dir().glob("*.toml")}
    assert len(bundled_aeon_sets()) >= 10
    assert set(bundled_aeon_sets()) <= sets


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_task_is_consistent(name):
    t = task(name)
    assert (str(t.input_type), str(t.output_type)) == BUNDLED[name]
    assert t.name == name and t.description
    for split_name, split in t.splits().items():
        assert len(split) > 0, split_name
        check_value(split.x, t.input_type, rows=len(split))
        data = split.x.data if isinstance(split.x, Seq) else split.x
        assert data.dtype == torch.float32 and torch.isfinite(data).all()
        if t.loss == "cross_entropy":
            assert split.y.dtype == torch.long
            assert 0 <= int(split.y.min()) and int(split.y.max()) < t.output_type.n
        else:
            assert split.y.dtype == torch.float32
    if t.loss == "cross_entropy":
        assert isinstance(t.output_type, Vec) and len(t.classes) == t.output_type.n
        assert set(t.train.y.tolist()) == set(range(t.output_type.n)), "train sees all classes"
    assert t.output_type == {"bce": BOOL, "mse": FLOAT}.get(t.loss, t.output_type)
    assert t.options["epochs"] > 0 and t.options["lr"] > 0 and t.options["batch_size"] > 0


def test_japanese_vowels_is_padded_with_zero_weights():
    t = task("japanese_vowels")
    seq = t.train.x
    assert isinstance(t.input_type, ListT) and isinstance(seq, Seq)
    lengths = seq.weights.sum(1)
    assert lengths.min() < lengths.max() == seq.length, "variable lengths"
    assert set(seq.weights.unique().tolist()) == {0.0, 1.0}
    # weights are a prefix of ones, and padded steps hold zeros
    assert (seq.weights[:, 1:] <= seq.weights[:, :-1]).all()
    assert (seq.data[seq.weights == 0] == 0).all()


def test_aeon_standardises_with_training_statistics():
    t = task("basic_motions")
    steps = t.train.x.data.flatten(0, 1)
    assert torch.allclose(steps.mean(0), torch.zeros(6), atol=1e-4)
    assert torch.allclose(steps.std(0, unbiased=False), torch.ones(6), atol=1e-3)
    assert len(t.test) == 40 and len(t.train) + len(t.val) == 40
    assert t.classes == ("badminton", "running", "standing", "walking")


def test_digit_pools_are_disjoint_and_stratified():
    train, val, test = digit_pools()
    together = torch.cat([train, val, test])
    assert len(together) == 1797 and len(together.unique()) == 1797
    labels = sources._digits()[1]
    for pool in (train, val, test):
        assert set(labels[pool].tolist()) == set(range(10))


def test_digit_list_tasks():
    count, total = task("digit_count_3"), task("digit_sum")
    for t in (count, total):
        lengths = t.train.x.weights.sum(1)
        assert lengths.min() >= 2 and lengths.max() <= 6
        assert (t.train.y == t.train.y.round()).all()
        assert (t.train.y <= 9 * lengths).all()
    assert (count.train.y <= count.train.x.weights.sum(1)).all()
    assert 0 < count.train.y.mean() < 2
    again = load_task("digit_count_3")
    assert torch.equal(again.test.x.data, count.test.x.data), "deterministic under the seed"


def test_recognize_is_binary_with_balanced_weights():
    t = task("digit_recognize_3")
    assert t.classes == ("not_3", "3") and set(t.train.y.unique().tolist()) == {0.0, 1.0}
    assert t.class_weights.shape == (2,) and t.class_weights[1] > 3 * t.class_weights[0]


# ------------------------------------------------------------------- data fraction


def test_data_fraction_subsamples_train_only_and_deterministically():
    full, small = task("digits"), task("digits", 0.1)
    again = load_task("digits", 0.1)
    assert len(small.train) < len(full.train) // 5
    assert torch.equal(small.train.x, again.train.x) and torch.equal(small.train.y, again.train.y)
    assert set(small.train.y.tolist()) == set(range(10))
    assert len(small.val) == len(full.val) and len(small.test) == len(full.test)
    assert small.options["data_fraction"] == 0.1


def test_data_fraction_keeps_one_example_per_class():
    t = task("basic_motions", 0.01)
    assert sorted(t.train.y.tolist()) == [0, 1, 2, 3]


def test_stratified_partition_nests_and_balances():
    labels = torch.tensor([0] * 90 + [1] * 10)
    small = stratified_partition(labels, 100, (0.1, 0.9), seed=3)[0]
    large = stratified_partition(labels, 100, (0.5, 0.5), seed=3)[0]
    assert set(small.tolist()) <= set(large.tolist())
    assert labels[small].tolist().count(1) == 1 and len(small) == 10
    parts = stratified_partition(None, 7, (0.6, 0.2, 0.2), seed=0)
    assert sorted(torch.cat(parts).tolist()) == list(range(7)) and all(len(p) for p in parts)


def test_split_subset():
    s = Split(Seq(torch.arange(12.0).reshape(3, 2, 2), torch.ones(3, 2)), torch.tensor([0, 1, 2]))
    sub = s.subset([2, 0])
    assert len(sub) == 2 and sub.y.tolist() == [2, 0] and sub.x.data[0, 0, 0] == 8


# ------------------------------------------------------------------------- errors


def _fake_source(x_train: torch.Tensor, y_train: torch.Tensor):
    def source(params, context):
        ok = Split(torch.zeros(4, 3), torch.tensor([0, 1, 0, 1]))
        return SourceData(Split(x_train, y_train), ok, ok, ("a", "b"))

    return source


FAKE_TASK = """
    name = "fake"
    description = "test data"
    [data]
    source = "fake"
    [types]
    input = "Vec[3]"
    output = "Vec[2]"
    [train]
    epochs = 1
"""


def test_nan_data_is_refused(tmp_path, monkeypatch):
    x = torch.zeros(5, 3)
    x[0, 0], x[2, 1], x[3, 2] = float("nan"), float("nan"), float("inf")
    monkeypatch.setitem(SOURCES, "fake", _fake_source(x, torch.tensor([0, 1, 0, 1, 0])))
    with pytest.raises(DataError) as info:
        load_task(str(write_task(tmp_path, FAKE_TASK)))
    message = str(info.value)
    assert "'fake'" in message and "'train'" in message
    assert "2 NaN and 1 infinite" in message


def test_bad_labels_and_empty_splits_are_refused(tmp_path, monkeypatch):
    path = str(write_task(tmp_path, FAKE_TASK))
    monkeypatch.setitem(SOURCES, "fake", _fake_source(torch.zeros(2, 3), torch.tensor([0, 2])))
    with pytest.raises(DataError, match="outside 0..1"):
        load_task(path)
    empty = _fake_source(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    monkeypatch.setitem(SOURCES, "fake", empty)
    with pytest.raises(DataError, match="empty"):
        load_task(path)
    monkeypatch.setitem(SOURCES, "fake", _fake_source(torch.zeros(2, 4), torch.tensor([0, 1])))
    with pytest.raises(DataError, match="Vec"):
        load_task(path)


def test_unknown_task_name_lists_known_ones():
    with pytest.raises(TaskError, match="digits") as info:
        load_task("no_such_task")
    assert "unknown task" in str(info.value)
    with pytest.raises(TaskError, match="not found"):
        load_task("missing/file.toml")


@pytest.mark.parametrize(
    "edit, match",
    [
        (('input = "Vec[3]"', 'input = "Vec[3"'), "bad input type"),
        (('name = "fake"', 'name = "fake"\nversion = 3'), "t.toml: unknown key 'version'"),
        (("epochs = 1", 'loss = "bce"'), "needs output type Bool"),
        (("epochs = 1", 'loss = "mse"'), "needs output type Float"),
        (("epochs = 1", 'metric = "mse"'), "does not fit"),
        (("epochs = 1", "seed = 1.5"), r"\[train\]: seed must be a whole number, got 1.5"),
        (("epochs = 1", "seed = 99999999999999999999"), r"seed must be >= 0 and <= 9\.22"),
        (("epochs = 1", "seed = -1"), r"\[train\]: seed must be >= 0"),
        (("epochs = 1", "val_fraction = 1.5"), "val_fraction must be > 0 and <= 1"),
        (("epochs = 1", "epochs = 0"), r"\[train\]: epochs must be >= 1"),
        (("epochs = 1", 'epochs = "ten"'), r"\[train\]: epochs must be a whole number"),
        (("epochs = 1", "lr = inf"), r"\[train\]: lr must be a finite number"),
        (("epochs = 1", "lr = [0.1]"), r"\[train\]: lr must be a number"),
        (("epochs = 1", "epoch = 3"), "unknown key 'epoch'; did you mean 'epochs'"),
        (("epochs = 1", 'loss = "crossentropy"'), "did you mean 'cross_entropy'"),
        (("[types]", "[search]\ntime_limit = -5\n[types]"), r"\[search\]: time_limit must be > 0"),
        (("[types]", "[search]\nalgorithm = \"a*\"\n[types]"), "algorithm must be one of"),
        (('source = "fake"', 'source = "nope"'), "source must be one of"),
        (("[types]", "[typez]"), "unknown key 'typez'; did you mean 'types'"),
        (("epochs = 1", "epochs = " + "9" * 5000), "cannot read the task: Exceeds the limit"),
        (("epochs = 1", "a" + ".b" * 5000 + " = 1"), "a key of more than 64 dotted parts"),
        (("epochs = 1", "x" * 20000 + " = 1"), r"unknown key 'xxxx.*\.\.\. \(known"),
        (('input = "Vec[3]"', 'input = "a"'), "concrete"),
    ],
)
def test_bad_task_files(tmp_path, monkeypatch, edit, match):
    monkeypatch.setitem(SOURCES, "fake", _fake_source(torch.zeros(2, 3), torch.tensor([0, 1])))
    with pytest.raises(TaskError, match=match):
        load_task(str(write_task(tmp_path, FAKE_TASK.replace(*edit))))


@pytest.mark.parametrize("value, match", [
    ("features = -1", r"\[data\]: features must be >= 1"),
    ("features = inf", "features must be a whole number, got inf"),
    ('features = "4"', "features must be a whole number"),
    ("features = 4\nn_train = 0", "n_train must be >= 1"),
    ("features = 4\ndata_seed = 99999999999999999999", "data_seed must be"),
    ("features = 4\nmin_len = 0", "min_len must be >= 1"),
    ("features = 4\nfeaturez = 2", "did you mean 'features'"),
])
def test_out_of_range_data_values_name_file_table_and_key(tmp_path, value, match):
    text = (ROOT / "tasks" / "planted_compare.toml").read_text().replace("features = 4", value)
    path = tmp_path / "planted.toml"
    path.write_text(text)
    with pytest.raises(TaskError, match=match) as info:
        load_task(path)
    assert str(path) in str(info.value)


def test_bad_source_parameters(tmp_path):
    body = FAKE_TASK.replace('source = "fake"', 'source = "aeon"\ndataset = "Nope"')
    with pytest.raises(DataError, match="unknown aeon data set"):
        load_task(str(write_task(tmp_path, body)))
    with pytest.raises(TaskError, match="data_fraction"):
        load_task("digits", 0.0)


# ------------------------------------------------------------------------ metrics


def test_metrics_on_hand_computed_cases():
    y, pred = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    assert metrics.accuracy(pred, y) == pytest.approx(0.6)
    assert metrics.per_class_f1(pred, y) == pytest.approx([0.5, 0.8, 0.0])
    assert metrics.macro_f1(pred, y) == pytest.approx(1.3 / 3)
    assert metrics.mse([1.0, 2.0], [0.0, 0.0]) == pytest.approx(2.5)
    assert metrics.higher_is_better("macro_f1") and not metrics.higher_is_better("mse")


def test_scores_are_exact_fractions_not_float32():
    """357 right of 370 is 357/370, so a score compares equal to the same share computed
    elsewhere (the peer benchmark's target) and prints without float32 noise."""
    y = torch.zeros(370, dtype=torch.long)
    pred = torch.cat([torch.zeros(357), torch.ones(13)]).long()
    assert metrics.accuracy(pred, y) == 357 / 370
    assert metrics.macro_f1(torch.zeros(3), torch.tensor([0, 0, 1])) == (0.8 + 0.0) / 2
    assert str(metrics.accuracy([1, 1, 0], [1, 1, 1])) == str(2 / 3)


def test_majority_predictor_on_imbalanced_labels():
    y = torch.tensor([0] * 8 + [1] * 2)
    # F1 of class 0 is 2*8 / (10 + 8); class 1 is never predicted, so 0
    assert metrics.macro_f1(torch.zeros(10), y) == pytest.approx(8 / 18)
    assert metrics.majority_baseline(y, y, "accuracy") == pytest.approx(0.8)
    assert metrics.majority_baseline(y, y, "macro_f1") == pytest.approx(8 / 18)
    assert metrics.majority_baseline([1.0, 3.0], [0.0, 2.0], "mse") == pytest.approx(2.0)


def test_macro_f1_agrees_with_sklearn():
    f1_score = pytest.importorskip("sklearn.metrics").f1_score
    gen = torch.Generator().manual_seed(0)
    y, pred = torch.randint(0, 5, (200,), generator=gen), torch.randint(0, 4, (200,), generator=gen)
    assert metrics.macro_f1(pred, y) == pytest.approx(f1_score(y, pred, average="macro"))


def test_score_turns_outputs_into_predictions():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert metrics.score("accuracy", logits, [0, 1, 1]) == pytest.approx(2 / 3)
    assert metrics.score("accuracy", torch.tensor([-1.0, 2.0]), [0.0, 1.0]) == 1.0
    assert metrics.score("accuracy", torch.tensor([1, 1]), [0, 1]) == 0.5
    assert metrics.score("mse", torch.tensor([1.0, 1.0]), [0.0, 1.0]) == 0.5
    t = task("digit_recognize_3")
    assert metrics.score(t, torch.full((len(t.test),), -5.0), t.test.y) == pytest.approx(
        metrics.majority_baseline(t.train.y, t.test.y, "macro_f1")
    )
