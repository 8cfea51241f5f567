"""The scikit-learn estimators: scikit-learn's own estimator checks, and use inside its
model-selection tools."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.datasets import load_iris, load_wine
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from neurosym import Task
from neurosym.estimators import ProgramClassifier, ProgramRegressor
from neurosym.lang.errors import DataError

# a search small enough for the checks' many fits; max_nodes, not time, ends it, so that
# two fits agree (check_fit_idempotent). Three nodes: the root's cheapest completion (one
# feature), the root, and the first of its children, `affine` on every feature
TINY = dict(time_limit=60, max_nodes=3, epochs_per_node=10, final_epochs=20, cv_folds=0,
            top_k=1)


@parametrize_with_checks([ProgramClassifier(**TINY), ProgramRegressor(**TINY)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_cross_val_score_in_a_pipeline_and_string_labels():
    x, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = make_pipeline(FunctionTransformer(),
                          ProgramClassifier(time_limit=20, max_nodes=6, cv_folds=0, top_k=2))
    scores = cross_val_score(model, x, names, cv=3)
    assert len(scores) == 3 and scores.mean() > 0.8
    fitted = ProgramClassifier(time_limit=20, max_nodes=6).fit(x, names)
    assert set(fitted.predict(x)) <= set(names) and isinstance(fitted.program_, str)
    proba = fitted.predict_proba(x)
    assert proba.shape == (150, 3) and np.allclose(proba.sum(1), 1)


def test_a_fitted_program_pickles_and_predicts_the_same():
    x, y = load_iris(return_X_y=True)
    fitted = ProgramClassifier(**TINY).fit(x, y)
    again = pickle.loads(pickle.dumps(fitted))
    assert again.program_ == fitted.program_
    np.testing.assert_array_equal(again.predict_proba(x), fitted.predict_proba(x))


def test_bad_data_is_a_value_error():
    with pytest.raises(ValueError, match="class"):
        ProgramClassifier(**TINY).fit(np.ones((20, 3)), np.zeros(20))
    with pytest.raises(ValueError):
        ProgramClassifier(**TINY).fit(np.full((20, 3), np.nan), np.arange(20) % 2)


def test_a_dataframe_s_column_names_explain_the_fitted_program():
    from neurosym.models.explain import describe

    x, y = load_wine(return_X_y=True, as_frame=True)
    fitted = ProgramClassifier(**TINY).fit(x, y)
    assert list(fitted.feature_names_in_) == list(x.columns)
    assert fitted.model_.record["input_names"] == list(x.columns)
    reads = " ".join(part["reads"] for part in describe(fitted.model_))
    assert any(f"'{name}'" in reads for name in x.columns), reads
    # arrays have no names; a DataFrame's are taken, or the ones given, checked
    assert Task.from_arrays(x.values, y, x.values, y).input_names is None
    assert Task.from_arrays(x, y, x, y).input_names == tuple(x.columns)
    with pytest.raises(DataError, match=r"input_names: 2 names, but the input type Vec\[13\]"):
        Task.from_arrays(x.values, y, x.values, y, input_names=["a", "b"])


def test_missing_mean_fills_nan_in_fitting_and_predicting():
    x, y = load_iris(return_X_y=True)
    x = x.copy()
    x[::5, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ProgramClassifier(**TINY).fit(x, y)
    fitted = ProgramClassifier(**TINY, missing="mean").fit(x, y)
    assert fitted.__sklearn_tags__().input_tags.allow_nan
    assert fitted.model_.record["data"]["missing"] == "mean"
    assert fitted.score(x, y) > 0.6  # a fifth of the petal lengths are missing
    assert fitted.predict(x[:5]).shape == (5,)
    with pytest.raises(ValueError, match="missing must be 'error' or 'mean'"):
        ProgramClassifier(**TINY, missing="zero").fit(x, y)


def _with_categories(x: np.ndarray, numeric: list[int], binned: list[int]):
    """A DataFrame of a few numeric columns and text categories (8 quantile bins of
    others): one-hot coded, mostly zeros."""
    import pandas as pd

    frame = pd.DataFrame({f"n{i}": x[:, i] for i in numeric})
    for i in binned:
        bins = np.quantile(x[:, i], np.linspace(0, 1, 9)[1:-1])
        frame[f"c{i}"] = [f"q{b}" for b in np.searchsorted(bins, x[:, i])]
    return frame, [f"c{i}" for i in binned]


@pytest.mark.parametrize("regression", [False, True])
def test_a_pipeline_with_a_default_one_hot_encoder_fits_predicts_and_cross_validates(
        regression):
    from scipy import sparse
    from sklearn.compose import make_column_transformer
    from sklearn.datasets import load_diabetes
    from sklearn.preprocessing import OneHotEncoder

    x, y = (load_diabetes if regression else load_wine)(return_X_y=True)
    frame, categorical = _with_categories(x, [2, 3] if regression else [0, 6], [8, 9]
                                          if regression else [9, 12])
    coder = make_column_transformer((OneHotEncoder(), categorical), remainder="passthrough")
    assert sparse.issparse(coder.fit_transform(frame))  # what the program is handed
    estimator = (ProgramRegressor if regression else ProgramClassifier)(
        time_limit=30, max_nodes=4, cv_folds=0, top_k=1)
    model = make_pipeline(coder, estimator)
    model.fit(frame, y)
    predicted = model.predict(frame)
    assert predicted.shape == y.shape
    scores = cross_val_score(model, frame, y, cv=3)
    # a linear model over these columns: R² well above 0, accuracy well above chance
    assert np.all(np.isfinite(scores)) and scores.mean() > (0.2 if regression else 0.6)


def test_text_columns_and_huge_sparse_inputs_are_refused_with_what_to_do():
    from scipy import sparse

    frame, _ = _with_categories(load_wine().data, [0], [9])
    with pytest.raises(ValueError, match=r"'c9' of X holds text.*OneHotEncoder\(\), \['c9'\]"):
        ProgramClassifier(**TINY).fit(frame, load_wine().target)
    rows = np.arange(0, 10**6, 1000)
    huge = sparse.csr_matrix((np.ones(len(rows)), (rows, rows % 10**5)), shape=(10**6, 10**5))
    with pytest.raises(ValueError, match=r"1,000,000 x 100,000 takes 745\.1 GiB"):
        ProgramRegressor(**TINY).fit(huge, np.zeros(10**6))
