"""The scikit-learn pipelines mlcore trains: preprocessing plus one estimator, seeded.

The estimator is a built-in ``training.algorithm`` (scikit-learn's, or XGBoost and
LightGBM from the optional extras of the same names) or the team's own
``training.estimator: "package.module:factory"``: any callable returning a
scikit-learn-compatible estimator or pipeline. Either way the result is one fitted
``Pipeline`` that training, the gate, serving and the drift baselines treat alike.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler

from mlcore.data import DatasetSpec
from mlcore.errors import ConfigError
from mlcore.settings import TrainingSettings

# algorithm -> ("module:Class" classifier, "module:Class" regressor); None where there is none.
# Imported only when used, so the optional libraries stay optional.
ESTIMATORS: dict[str, tuple[str | None, str | None]] = {
    "hist_gradient_boosting": (
        "sklearn.ensemble:HistGradientBoostingClassifier",
        "sklearn.ensemble:HistGradientBoostingRegressor",
    ),
    "random_forest": (
        "sklearn.ensemble:RandomForestClassifier",
        "sklearn.ensemble:RandomForestRegressor",
    ),
    "logistic_regression": ("sklearn.linear_model:LogisticRegression", None),
    "ridge": (None, "sklearn.linear_model:Ridge"),
    "xgboost": ("xgboost:XGBClassifier", "xgboost:XGBRegressor"),
    "lightgbm": ("lightgbm:LGBMClassifier", "lightgbm:LGBMRegressor"),
}
# Algorithms whose library is an optional extra of mlcore (pip install "mlcore[<extra>]").
OPTIONAL_EXTRAS = {"xgboost": "xgboost", "lightgbm": "lightgbm"}
# Linear models need scaled inputs; trees do not care.
_SCALED = {"logistic_regression", "ridge"}
# XGBoost only accepts class labels 0..n-1: its classifier is fitted on encoded labels.
_ENCODE_LABELS = {"xgboost"}
# Quiet by default: LightGBM prints a warning per tree to stdout otherwise.
_LIBRARY_DEFAULTS: dict[str, dict[str, Any]] = {"lightgbm": {"verbose": -1}}


def estimator_class(algorithm: str, task: str) -> type[BaseEstimator]:
    """The estimator class of a built-in algorithm for ``task``, importing its library."""
    if algorithm not in ESTIMATORS:
        raise ConfigError(f"unknown algorithm {algorithm!r}; choose one of {sorted(ESTIMATORS)}")
    classifier, regressor = ESTIMATORS[algorithm]
    chosen = classifier if task == "classification" else regressor
    if chosen is None:
        usable = [
            name for name, pair in ESTIMATORS.items() if pair[0 if task == "classification" else 1]
        ]
        raise ConfigError(f"algorithm {algorithm!r} does not support {task}; use one of {usable}")
    module_name, class_name = chosen.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        extra = OPTIONAL_EXTRAS.get(algorithm, algorithm)
        raise ConfigError(
            f"training.algorithm {algorithm!r} needs the {module_name} package, which is not "
            f'installed: pip install "mlcore[{extra}]" (image and environment builds install '
            "the extras the settings name)"
        ) from exc
    cls: type[BaseEstimator] = getattr(module, class_name)
    return cls


def load_factory(reference: str) -> Callable[..., Any]:
    """The callable ``"package.module:factory"`` names, imported from the Python path.

    A team's estimator lives in its repository: a package under ``src/`` is importable
    locally (the editable install), inside the SageMaker image (``pip install .`` installs
    every package under ``src/``) and in Azure ML jobs (their code snapshot is ``src/``).
    """
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"training.estimator must be 'package.module:factory', got {reference!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"training.estimator {reference!r}: cannot import module {module_name!r} ({exc}). "
            "Put the package under src/ (the editable install, the SageMaker image and the "
            "Azure ML code snapshot all include it) or add its folder to PYTHONPATH."
        ) from exc
    factory = getattr(module, attribute, None)
    if factory is None or not callable(factory):
        public = sorted(
            name for name, value in vars(module).items() if callable(value) and name[:1] != "_"
        )
        raise ConfigError(
            f"training.estimator {reference!r}: module {module_name!r} has no callable "
            f"{attribute!r}; its callables are {public}"
        )
    return factory  # type: ignore[no-any-return]


def _parameters(factory: Callable[..., Any]) -> tuple[dict[str, Any], bool]:
    """The factory's keyword parameters with their defaults, and whether it takes **kwargs."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return {}, True
    named: dict[str, Any] = {}
    open_ended = False
    for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            open_ended = True
        elif parameter.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        ):
            named[name] = (
                None if parameter.default is inspect.Parameter.empty else parameter.default
            )
    return named, open_ended


def _valid_parameters(factory: Callable[..., Any], *, builtin: bool) -> tuple[dict[str, Any], bool]:
    named, open_ended = _parameters(factory)
    if builtin and isinstance(factory, type) and hasattr(factory, "get_params"):
        # XGBoost declares its parameters through **kwargs; get_params() lists them all.
        defaults = factory().get_params(deep=False)
        named = {**defaults, **named}
        open_ended = False
    return named, open_ended


def _coerce(
    factory: Callable[..., Any], name: str, hyperparameters: Mapping[str, Any], *, builtin: bool
) -> dict[str, Any]:
    valid, open_ended = _valid_parameters(factory, builtin=builtin)
    unknown = sorted(set(hyperparameters) - set(valid))
    if unknown and not open_ended:
        raise ConfigError(
            f"unknown hyperparameters {unknown} for {name}; valid names: {sorted(valid)}"
        )
    return {key: _convert(key, value, valid.get(key)) for key, value in hyperparameters.items()}


def _convert(name: str, value: Any, default: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() in ("none", "null"):
        return None
    if isinstance(default, str) and text.lower() in ("true", "false"):
        # A parameter that takes a word or a flag (HistGradientBoosting's early_stopping:
        # "auto", True or False): SageMaker hands every hyperparameter over as a string.
        return text.lower() == "true"
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
        if default is None:
            return text  # a string-valued parameter without a default, e.g. a solver name
        raise ConfigError(
            f"hyperparameter {name}={value!r} cannot be read as {type(default).__name__}"
        ) from exc
    return text


class LabelEncodedClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Fits ``estimator`` on labels encoded as 0..n-1 and answers in the original labels.

    XGBoost's classifier accepts only such labels; with this wrapper any labels work
    (strings, {1, 2}, booleans) and ``classes_`` holds them as they are.
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any) -> LabelEncodedClassifier:
        self.encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.encoder_.classes_
        self.estimator_ = clone(self.estimator).fit(X, self.encoder_.transform(y))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        proba: np.ndarray = self.estimator_.predict_proba(X)
        return proba

    def predict(self, X: Any) -> np.ndarray:
        decoded: np.ndarray = self.classes_[np.argmax(self.predict_proba(X), axis=1)]
        return decoded


def build_pipeline(
    spec: DatasetSpec,
    *,
    training: TrainingSettings,
    hyperparameters: Mapping[str, Any] | None = None,
) -> tuple[Pipeline, dict[str, Any]]:
    """The unfitted pipeline ``training`` describes, and the hyperparameters it was given.

    Preprocessing (impute, one-hot encode, scale for linear models) runs before the
    estimator unless ``training.preprocess`` is false (custom estimators only).
    ``hyperparameters`` (default ``training.hyperparameters``) are validated against the
    estimator's signature and, for values given as strings, converted to its types.
    """
    raw = dict(training.hyperparameters if hyperparameters is None else hyperparameters)
    if training.estimator is not None:
        factory = load_factory(training.estimator)
        params = _coerce(factory, training.estimator, raw, builtin=False)
        accepted, _ = _parameters(factory)
        if "random_state" in accepted:
            params.setdefault("random_state", training.seed)
        model = _call_factory(factory, training.estimator, params)
        scaled = False
    else:
        cls = estimator_class(training.algorithm, spec.task)
        params = _coerce(cls, cls.__name__, raw, builtin=True)
        kwargs = {**_LIBRARY_DEFAULTS.get(training.algorithm, {}), **params}
        valid, _ = _valid_parameters(cls, builtin=True)
        if "random_state" in valid:
            kwargs.setdefault("random_state", training.seed)
        model = cls(**kwargs)
        if spec.task == "classification" and training.algorithm in _ENCODE_LABELS:
            model = LabelEncodedClassifier(model)
        scaled = training.algorithm in _SCALED
    if spec.task == "classification" and not hasattr(model, "predict_proba"):
        raise ConfigError(
            f"{training.model_name} gives {type(model).__name__}, which has no predict_proba: "
            "mlcore needs class probabilities for AUC, the gate and the score that drift "
            "monitoring watches. Wrap it, e.g. in sklearn.calibration.CalibratedClassifierCV."
        )
    steps: list[tuple[str, Any]] = []
    if training.preprocess:
        steps.append(("preprocess", _preprocessing(spec, scaled=scaled)))
    steps.append(("model", model))
    return Pipeline(steps), params


def _call_factory(factory: Callable[..., Any], reference: str, params: dict[str, Any]) -> Any:
    try:
        model = factory(**params)
    except TypeError as exc:
        raise ConfigError(
            f"training.estimator {reference!r} rejected the hyperparameters {sorted(params)}: {exc}"
        ) from exc
    missing = [method for method in ("fit", "predict") if not hasattr(model, method)]
    if missing:
        raise ConfigError(
            f"training.estimator {reference!r} returned {type(model).__name__}, which lacks "
            f"{missing}: return a scikit-learn-compatible estimator or pipeline"
        )
    return model


def _preprocessing(spec: DatasetSpec, *, scaled: bool) -> ColumnTransformer:
    numeric_steps: list[Any] = [SimpleImputer(strategy="median")]
    if scaled:
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
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
