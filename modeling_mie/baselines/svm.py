"""The linear SVM of the hand-crafted baselines (LBP-TOP, Bi-WOOF), with standardisation fitted on training rows only.

Which SVM. The LBP-TOP baseline of MEGC 2019 and Bi-WOOF classify with a support vector machine
with a linear kernel. This wrapper uses scikit-learn's `SVC(kernel="linear")`: the LIBSVM solver,
the standard soft-margin SVM (hinge loss, intercept not regularised) with one-vs-one multiclass
voting, the usual meaning of "SVM with a linear kernel" (LIBSVM's `-t 0`). `LinearSVC`
(LIBLINEAR) is a different classifier: squared hinge loss by default, a regularised intercept and
one-vs-rest multiclass. LIBSVM's cost grows with the square of the
number of rows, which is negligible here (at most 442 clips, about 435 per LOSO fold).

Standardisation. Each feature is shifted and scaled by the mean and standard deviation of the
training rows (scikit-learn's `StandardScaler`, fitted inside `fit` only), and the same transform
is applied to the rows predicted, so nothing of a held-out subject enters the fit. Features that
are constant on the training rows are only shifted. It can be turned off (`standardize=False`).

Class weights. `class_weight="balanced"` weighs each class's errors by n_rows / (n_classes *
n_rows_of_class), scikit-learn's rule; MEGC 2019 is imbalanced (250 / 109 / 83), and UF1 / UAR
average over classes. None (the default) gives every row the same weight: the plain SVM.
"""

from __future__ import annotations

import numpy as np

from ..errors import MieInputError

#: Penalty of the soft margin: LIBSVM's default; the baselines' papers give none.
DEFAULT_C = 1.0


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "The SVM baselines need scikit-learn: pip install 'modeling_mie[baselines]' (or scikit-learn>=1.4)."
        ) from err


def _rows(features, name: str) -> np.ndarray:
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] == 0 or features.shape[1] == 0:
        raise MieInputError(f"{name} must be a non-empty (rows, features) array; got shape {features.shape}.")
    if not np.isfinite(features).all():
        raise MieInputError(f"{name} holds NaN or infinite values; every feature must be a finite number.")
    return features


class LinearSVM:
    """A linear-kernel SVM on feature rows, standardised on the training rows.

    Args:
        C: soft-margin penalty (default 1.0, LIBSVM's).
        class_weight: "balanced" (inverse class frequency) or None (every row alike).
        standardize: fit a per-feature standardisation on the training rows and apply it
            before the SVM.
    """

    def __init__(self, C: float = DEFAULT_C, class_weight: str | None = None, standardize: bool = True):
        if class_weight not in (None, "balanced"):
            raise MieInputError(f"class_weight must be None or 'balanced'; got {class_weight!r}.")
        if isinstance(C, bool) or not isinstance(C, (int, float)) or not C > 0:
            raise MieInputError(f"C must be a positive number; got {C!r}.")
        self.C = float(C)
        self.class_weight = class_weight
        self.standardize = bool(standardize)
        self.pipeline = None
        self.num_features: int | None = None

    def fit(self, features, labels) -> "LinearSVM":
        """Fit on (rows, features) float features and (rows,) integer labels (two classes or more)."""
        _sklearn()
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        features = _rows(features, "features")
        labels = np.asarray(labels)
        if labels.shape != (features.shape[0],):
            raise MieInputError(
                f"labels must be one per row, shape ({features.shape[0]},); got shape {labels.shape}."
            )
        if len(np.unique(labels)) < 2:
            raise MieInputError(
                f"An SVM needs at least two classes among the training rows; got only {np.unique(labels).tolist()}."
            )
        steps = [StandardScaler()] if self.standardize else []
        self.pipeline = make_pipeline(*steps, SVC(kernel="linear", C=self.C, class_weight=self.class_weight))
        self.pipeline.fit(features, labels)
        self.num_features = features.shape[1]
        return self

    def _ready(self, features) -> np.ndarray:
        if self.pipeline is None:
            raise RuntimeError("LinearSVM.fit must be called before predicting.")
        features = _rows(features, "features")
        if features.shape[1] != self.num_features:
            raise MieInputError(
                f"The SVM was fitted on {self.num_features} features per row; got {features.shape[1]}."
            )
        return features

    @property
    def classes_(self) -> np.ndarray:
        """The labels seen in training, sorted."""
        if self.pipeline is None:
            raise RuntimeError("LinearSVM.fit must be called first.")
        return self.pipeline.classes_

    def predict(self, features) -> np.ndarray:
        """(rows,) predicted labels of (rows, features) features."""
        return self.pipeline.predict(self._ready(features))

    def decision_function(self, features) -> np.ndarray:
        """(rows, classes) one-vs-rest shaped scores (scikit-learn's `decision_function_shape="ovr"`,
        built from the one-vs-one votes); (rows,) for two classes."""
        return self.pipeline.decision_function(self._ready(features))


def fit_predict(train_features, train_labels, test_features, **kwargs) -> np.ndarray:
    """Fit a `LinearSVM` (keyword arguments as its constructor) on the training rows and return
    its predictions for the test rows: one LOSO fold."""
    return LinearSVM(**kwargs).fit(train_features, train_labels).predict(test_features)


__all__ = ["DEFAULT_C", "LinearSVM", "fit_predict"]
