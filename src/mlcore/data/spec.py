"""The dataset spec: which column is the target and what type each feature is."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from mlcore.errors import DataError

Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")

# A numeric target with at most this many distinct values is taken as class labels.
_MAX_CLASSES_FOR_INFERENCE = 20


@dataclass(frozen=True)
class DatasetSpec:
    """Declares a tabular dataset: target, feature types and an optional timestamp.

    Parameters
    ----------
    target : name of the label column.
    numeric : numeric feature columns.
    categorical : categorical feature columns (strings or small integer codes).
    timestamp : optional event-time column, used for time-ordered splits and drift windows.
    task : "classification" or "regression".
    positive_label : the class a binary classifier is built to find; None lets training
        choose it by the documented rule (:mod:`mlcore.problem`).
    decision_threshold : a binary classifier predicts the positive label when its
        probability reaches this; None means 0.5.

    Examples
    --------
    >>> spec = DatasetSpec(target="y", numeric=("a",), categorical=("c",))
    >>> spec.features
    ('a', 'c')
    """

    target: str
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    timestamp: str | None = None
    task: Task = "classification"
    id_columns: tuple[str, ...] = field(default=())
    positive_label: str | int | float | bool | None = None
    decision_threshold: float | None = None

    def __post_init__(self) -> None:
        # Accept lists from JSON/YAML but store tuples so the spec stays hashable.
        object.__setattr__(self, "numeric", tuple(self.numeric))
        object.__setattr__(self, "categorical", tuple(self.categorical))
        object.__setattr__(self, "id_columns", tuple(self.id_columns))
        problems = []
        if self.task not in TASKS:
            problems.append(f"task must be one of {TASKS}, got {self.task!r}")
        if not self.numeric and not self.categorical:
            problems.append(
                "the spec declares no features: give numeric and/or categorical columns"
            )
        overlap = set(self.numeric) & set(self.categorical)
        if overlap:
            problems.append(f"columns declared both numeric and categorical: {sorted(overlap)}")
        if self.target in self.features:
            problems.append(f"target {self.target!r} is also declared as a feature")
        if self.timestamp is not None and self.timestamp in self.features:
            problems.append(f"timestamp {self.timestamp!r} is also declared as a feature")
        if self.task == "regression" and (
            self.positive_label is not None or self.decision_threshold is not None
        ):
            problems.append(
                "positive_label and decision_threshold apply to classification, not regression"
            )
        if self.decision_threshold is not None and not 0 < self.decision_threshold < 1:
            problems.append(
                f"decision_threshold must be between 0 and 1, got {self.decision_threshold}"
            )
        if problems:
            raise DataError("invalid dataset spec: " + "; ".join(problems))

    @property
    def features(self) -> tuple[str, ...]:
        """Feature columns in model input order: numeric first, then categorical."""
        return self.numeric + self.categorical

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetSpec:
        allowed = {
            "target",
            "numeric",
            "categorical",
            "timestamp",
            "task",
            "id_columns",
            "positive_label",
            "decision_threshold",
        }
        unknown = set(data) - allowed
        if unknown:
            raise DataError(
                f"unknown keys in dataset spec: {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        if "target" not in data:
            raise DataError("dataset spec needs a 'target' column name")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> DatasetSpec:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError as exc:
            raise DataError(f"dataset spec file not found: {path}") from exc


def infer_spec(
    frame: pd.DataFrame,
    *,
    target: str,
    timestamp: str | None = None,
    task: Task | None = None,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    positive_label: str | int | float | bool | None = None,
    decision_threshold: float | None = None,
) -> DatasetSpec:
    """Infer feature types from column dtypes; declared lists take precedence.

    Numeric dtypes (except booleans) become numeric features; everything else
    becomes categorical. ``task`` is inferred from the target: non-numeric, boolean
    or numeric with few distinct values means classification.
    """
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} not found; the data has columns {list(frame.columns)}. "
            "Pass the right name with --target or dataset.target."
        )
    if timestamp is not None and timestamp not in frame.columns:
        raise DataError(
            f"timestamp column {timestamp!r} not found; columns are {list(frame.columns)}"
        )
    skip = [target, *exclude]
    if timestamp:
        skip.append(timestamp)
    inferred_numeric, inferred_categorical = infer_feature_columns(
        frame, exclude=skip, numeric=numeric, categorical=categorical
    )
    if task is None:
        task = infer_task(frame[target])
    return DatasetSpec(
        target=target,
        numeric=tuple(inferred_numeric),
        categorical=tuple(inferred_categorical),
        timestamp=timestamp,
        task=task,
        id_columns=tuple(exclude),
        positive_label=positive_label,
        decision_threshold=decision_threshold,
    )


def infer_feature_columns(
    frame: pd.DataFrame,
    *,
    exclude: Sequence[str] = (),
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature columns of ``frame``: declared ones first, the others by
    dtype. Numeric dtypes (except booleans) are numeric, everything else categorical, except
    datetime columns, which are never features: a datetime64 column (Parquet) and the same
    column read from CSV as ISO 8601 text are both left out, so both formats give one feature
    set."""
    skip = set(exclude)
    declared = set(numeric or ()) | set(categorical or ())
    inferred_numeric: list[str] = list(numeric or ())
    inferred_categorical: list[str] = list(categorical or ())
    for column in frame.columns:
        if column in skip or column in declared:
            continue
        values = frame[column]
        if pd.api.types.is_datetime64_any_dtype(values.dtype) or _is_iso_datetime_text(values):
            continue  # a second time column is not a model feature
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
            values.dtype
        ):
            inferred_numeric.append(str(column))
        else:
            inferred_categorical.append(str(column))
    return inferred_numeric, inferred_categorical


# What pandas writes for a datetime column in CSV ("2025-01-31 08:15:00+00:00") and ISO 8601
# with a "T": a date, optionally a time with seconds, fractions and an offset.
_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)


def _is_iso_datetime_text(values: pd.Series) -> bool:
    """A text column whose every non-missing value is an ISO 8601 date or date-time."""
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        return False
    present = values.dropna()
    if present.empty:
        return False
    # The first values settle it for almost every text column; only date-like ones are scanned.
    head = present.iloc[:1000].astype(str)
    if not head.str.fullmatch(_ISO_DATETIME).all():
        return False
    return bool(present.astype(str).str.fullmatch(_ISO_DATETIME).all())


def infer_task(target: pd.Series) -> Task:
    """Classification for text, boolean or few whole-number labels; regression otherwise."""
    values = target.dropna()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "classification"
    if values.nunique() <= _MAX_CLASSES_FOR_INFERENCE and (values == values.round()).all():
        return "classification"
    return "regression"
