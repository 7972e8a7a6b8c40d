"""The scikit-learn pipelines mlcore trains: preprocessing plus one estimator, seeded."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlcore.data import DatasetSpec
from mlcore.errors import ConfigError

# algorithm name -> (classifier, regressor); None where the algorithm has no such variant.
ESTIMATORS: dict[str, tuple[type[BaseEstimator] | None, type[BaseEstimator] | None]] = {
    "hist_gradient_boosting": (HistGradientBoostingClassifier, HistGradientBoostingRegressor),
    "random_forest": (RandomForestClassifier, RandomForestRegressor),
    "logistic_regression": (LogisticRegression, None),
    "ridge": (None, Ridge),
}
# Linear models need scaled inputs; trees do not care.
_SCALED = {"logistic_regression", "ridge"}


def estimator_class(algorithm: str, task: str) -> type[BaseEstimator]:
    if algorithm not in ESTIMATORS:
        raise ConfigError(f"unknown algorithm {algorithm!r}; choose one of {sorted(ESTIMATORS)}")
    classifier, regressor = ESTIMATORS[algorithm]
    chosen = classifier if task == "classification" else regressor
    if chosen is None:
        usable = [
            name for name, pair in ESTIMATORS.items() if pair[0 if task == "classification" else 1]
        ]
        raise ConfigError(f"algorithm {algorithm!r} does not support {task}; use one of {usable}")
    return chosen


def coerce_hyperparameters(
    algorithm: str, task: str, hyperparameters: Mapping[str, Any]
) -> dict[str, Any]:
    """Check names against the estimator and convert string values (SageMaker passes strings).

    Each value takes the type of the estimator's default for that parameter, so
    ``{"max_iter": "200"}`` becomes ``{"max_iter": 200}``.
    """
    cls = estimator_class(algorithm, task)
    signature = inspect.signature(cls.__init__)
    valid = {name: p.default for name, p in signature.parameters.items() if name != "self"}
    unknown = sorted(set(hyperparameters) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown hyperparameters {unknown} for {cls.__name__}; valid names: {sorted(valid)}"
        )
    return {name: _convert(name, value, valid[name]) for name, value in hyperparameters.items()}


def _convert(name: str, value: Any, default: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() in ("none", "null"):
        return None
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float) or default is None:
            number = float(text)
            return (
                int(number)
                if default is None and number.is_integer() and "." not in text
                else number
            )
    except ValueError as exc:
        raise ConfigError(
            f"hyperparameter {name}={value!r} cannot be read as {type(default).__name__}"
        ) from exc
    return text


def build_pipeline(
    spec: DatasetSpec, *, algorithm: str, hyperparameters: Mapping[str, Any], seed: int
) -> Pipeline:
    """Preprocessing (impute, one-hot encode, scale for linear models) followed by the estimator."""
    cls = estimator_class(algorithm, spec.task)
    params = coerce_hyperparameters(algorithm, spec.task, hyperparameters)
    if "random_state" in inspect.signature(cls.__init__).parameters:
        params.setdefault("random_state", seed)
    numeric_steps: list[Any] = [SimpleImputer(strategy="median")]
    if algorithm in _SCALED:
        numeric_steps.append(StandardScaler())
    transformers: list[tuple[str, Any, list[str]]] = []
    if spec.numeric:
        transformers.append(("numeric", make_pipeline(*numeric_steps), list(spec.numeric)))
    if spec.categorical:
        categorical = make_pipeline(
            SimpleImputer(strategy="constant", fill_value="__missing__"),
            # Categories unseen in training are encoded as all zeros instead of failing at serve time.
            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
        )
        transformers.append(("categorical", categorical, list(spec.categorical)))
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("model", cls(**params))])
