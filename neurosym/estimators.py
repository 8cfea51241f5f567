"""scikit-learn estimators around the search: `ProgramClassifier` and `ProgramRegressor`
fit a program to `X, y` (feature rows; a 3-D array or a list of arrays is a set of series)
and predict with it, inside a `Pipeline`, `cross_val_score` or a grid search.

A SciPy sparse matrix (what `OneHotEncoder` hands a `Pipeline` by default) is taken as
scikit-learn's linear models take it, and densified for the program: up to `MAX_DENSE`
bytes, refused beyond with its size. A DataFrame column of text or categories is refused
with how to code it. A search stopped by its time limit trains as many nodes as the
machine allows, so two fits agree only when `max_nodes` is what stops it. Errors in the
data are `ValueError`s, as scikit-learn expects."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from neurosym.lang.errors import NeurosymError
from neurosym.models import from_trained

MAX_DENSE = 2**31  # bytes a sparse X may take once densified (float64)
_SPARSE = ("csr", "csc", "coo")
_SEARCH = ("search", "max_nodes", "top_k", "epochs_per_node", "final_epochs", "cv_folds")


class _ProgramEstimator(BaseEstimator):
    """Shared fitting: the data becomes a `Task` (standardized on the fitted split, with
    a stratified validation share carved from it), the search runs, and the best program
    is kept as `model_` (a `models.Model`, which predicts in the data's units), its text
    as `program_` (with what it learned written in) and `structure_` (as the search found
    it). `missing="mean"` takes NaN in `X` for a missing value, filled with its column's
    mean over the fitted rows (in new data too); by default NaN is refused, as
    scikit-learn's linear models refuse it."""

    _regression = False

    def __init__(self, time_limit: float = 60.0, search: str = "astar",
                 productions: str | None = None, max_nodes: int | None = None,
                 top_k: int | None = None, epochs_per_node: int | None = None,
                 final_epochs: int | None = None, cv_folds: int | None = None,
                 val_fraction: float = 0.2, random_state: int = 0,
                 missing: str = "error") -> None:
        self.time_limit = time_limit
        self.search = search
        self.productions = productions
        self.max_nodes = max_nodes
        self.top_k = top_k
        self.epochs_per_node = epochs_per_node
        self.final_epochs = final_epochs
        self.cv_folds = cv_folds
        self.val_fraction = val_fraction
        self.random_state = random_state
        self.missing = missing

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "mean"
        tags.input_tags.sparse = True
        return tags

    def _finite(self) -> bool | str:
        if self.missing not in ("error", "mean"):
            raise ValueError(f"missing must be 'error' or 'mean', got {self.missing!r}")
        return "allow-nan" if self.missing == "mean" else True

    def fit(self, X: Any, y: Any) -> _ProgramEstimator:
        from neurosym.search import synthesize
        from neurosym.tasks.arrays import task_from_arrays

        _numeric_columns(X)
        X, y = validate_data(self, X, y, y_numeric=self._regression, accept_sparse=_SPARSE,
                             ensure_all_finite=self._finite())
        X = _dense(X)
        if not self._regression:
            check_classification_targets(y)
            self.classes_ = np.unique(y)
            if len(self.classes_) < 2:
                raise ValueError(f"a classifier needs at least 2 classes, got 1 class "
                                 f"({self.classes_[0]!r})")
            targets = np.searchsorted(self.classes_, y)
        else:
            targets = y.astype(np.float64)
        # too few to carve a validation split: the fitted data validates itself
        held_out = {} if len(X) >= 10 else {"x_val": X, "y_val": targets}
        try:
            names = getattr(self, "feature_names_in_", None)
            task = task_from_arrays(X, targets, X, targets, regression=self._regression,
                                    seed=self.random_state, val_fraction=self.val_fraction,
                                    name=type(self).__name__, **held_out,
                                    input_names=None if names is None else list(names),
                                    missing=self.missing)
            options = {k: getattr(self, k) for k in _SEARCH if getattr(self, k) is not None}
            options["algorithm"] = options.pop("search")
            result = synthesize(task, time_limit=self.time_limit, seed=self.random_state,
                                productions=self.productions, **options)
        except NeurosymError as err:
            raise ValueError(err.message) from err
        if result.best is None:
            raise ValueError("the search found no program within its budget; raise "
                             "time_limit")
        self.model_ = from_trained(result.best.model, task, result.best.evaluation)
        self.program_ = result.best.printed
        self.structure_ = result.best.text
        self.search_result_ = result
        return self

    def __getstate__(self) -> dict:
        """The search's record is not pickled (the model is: see `models.Model`)."""
        state = dict(super().__getstate__())  # a copy: sklearn may hand back __dict__
        state.pop("search_result_", None)
        return state

    def _checked(self, X: Any) -> np.ndarray:
        """New data as the fitted data was taken."""
        check_is_fitted(self)
        _numeric_columns(X)
        return _dense(validate_data(self, X, reset=False, accept_sparse=_SPARSE,
                                    ensure_all_finite=self._finite()))

    def _outputs(self, X: Any) -> torch.Tensor:
        X = self._checked(X)
        return self.model_.outputs(X)


def _dense(X: Any) -> Any:
    """A sparse matrix as the dense array a program reads; refused past `MAX_DENSE`."""
    if not sparse.issparse(X):
        return X
    size = X.shape[0] * X.shape[1] * 8
    if size > MAX_DENSE:
        raise ValueError(
            f"a sparse X of {X.shape[0]:,} x {X.shape[1]:,} takes {size / 2**30:.1f} GiB "
            f"once dense (at most {MAX_DENSE / 2**30:g} GiB): programs read dense inputs; "
            "fewer columns first (TruncatedSVD, or OneHotEncoder(min_frequency=...))")
    return X.toarray()


def _numeric_columns(X: Any) -> None:
    """Refuse a DataFrame with text or category columns, saying how to code them."""
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(dtypes, "items"):
        return
    text = [str(c) for c, d in dtypes.items() if getattr(d, "kind", "O") not in "biuf"]
    if text:
        raise ValueError(
            f"column{'s' * (len(text) > 1)} {', '.join(map(repr, text))} of X hold"
            f"{'s' * (len(text) == 1)} text or categories, and programs read numbers: "
            f"code {'them' if len(text) > 1 else 'it'} first, e.g. make_pipeline("
            f"make_column_transformer((OneHotEncoder(), {text!r}), "
            "remainder='passthrough'), ProgramClassifier())")


class ProgramClassifier(ClassifierMixin, _ProgramEstimator):
    """A program that classifies feature rows; `program_` is its text."""

    def predict_proba(self, X: Any) -> np.ndarray:
        return torch.softmax(self._outputs(X), 1).double().numpy()

    def predict(self, X: Any) -> np.ndarray:
        best = self._outputs(X).argmax(1).numpy()
        return self.classes_[best]


class ProgramRegressor(RegressorMixin, _ProgramEstimator):
    """A program that predicts a real value from feature rows; `program_` is its text."""

    _regression = True

    def predict(self, X: Any) -> np.ndarray:
        X = self._checked(X)
        return self.model_.predict(X)
