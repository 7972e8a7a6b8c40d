"""What a table looks like before anyone has declared it: id-like and datetime columns, labels.

``mlcore init`` profiles a sample of a team's data with these functions to propose its
settings, and spec resolution uses :func:`looks_like_id` to warn when an id would
otherwise become a model feature.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlcore.data.spec import Task, infer_task

# Fewer distinct rows than this say nothing about uniqueness.
_MIN_ROWS_FOR_ID = 20
# A text column is a datetime column when this share of its non-null values parses as one.
_DATETIME_PARSE_SHARE = 0.95
# Labels that name the interesting outcome of a binary target, checked case-insensitively.
_POSITIVE_WORDS = ("1", "true", "yes", "y", "positive", "pos")
# Categorical columns with this many values at most make useful slices for slice metrics.
_MAX_SLICE_VALUES = 12


def looks_like_id(series: pd.Series) -> bool:
    """True when every non-null value is distinct and the values are codes, not measurements.

    Integers and strings that never repeat are row identifiers (customer ids, order
    numbers, UUIDs). Continuous floats are distinct without being ids; booleans and
    datetimes never count.
    """
    values = series.dropna()
    if len(values) < _MIN_ROWS_FOR_ID:
        return False
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return False
    if pd.api.types.is_float_dtype(dtype) and not (values == values.round()).all():
        return False
    return bool(values.nunique() == len(values))


# A calendar date written with any common separator and field order: 2012-01-31, 2012/01/31,
# 31/01/2012, 01/31/2012, 31.01.2012, optionally followed by a time.
_DATE_TEXT = r"^\s*(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})(?:$|[ T])"


def looks_like_datetime(series: pd.Series) -> bool:
    """True for datetime columns and for text columns of dates (as CSV files hold them).

    ISO 8601 dates and the other common layouts count (``2012/01/31``, ``31/01/2012``,
    ``01/31/2012``, ``31.01.2012``, with or without a time), when nearly every value parses
    with the one format pandas infers for the column, as every later reader parses it.
    """
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return True
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return False
    values = series.dropna().astype(str)
    if values.empty or not values.str.contains(_DATE_TEXT, regex=True).all():
        return False
    with warnings.catch_warnings():
        # Mixed time zones and day-first guesses warn; an unparsable value is counted below.
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(values, errors="coerce", utc=True)
    return bool(parsed.notna().mean() >= _DATETIME_PARSE_SHARE)


def suggest_positive_label(labels: pd.Series) -> Any | None:
    """For a binary target, the label that names the outcome of interest; None otherwise.

    A label that reads like "yes" (1, true, yes, positive, ...) wins; otherwise the rarer
    class, since models usually exist to find the rare outcome.
    """
    counts = labels.dropna().value_counts()
    if len(counts) != 2:
        return None
    for label in counts.index:
        if str(label).strip().lower() in _POSITIVE_WORDS:
            return _plain(label)
    return _plain(counts.idxmin())


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    kind: str  # "numeric", "categorical", "datetime", "boolean"
    missing_share: float
    distinct: int


@dataclass(frozen=True)
class DataProfile:
    """What a sample of the data says about its columns and its target."""

    rows: int
    columns: tuple[ColumnProfile, ...]
    target: str
    task: Task
    id_like: tuple[str, ...]
    datetime_columns: tuple[str, ...]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    class_balance: dict[str, float] = field(default_factory=dict)
    positive_label: Any | None = None
    slice_candidates: tuple[str, ...] = ()
    # Integer columns with few values: numeric here, but perhaps codes to declare categorical.
    coded_integers: tuple[str, ...] = ()

    @property
    def n_classes(self) -> int:
        return len(self.class_balance)


def profile_frame(frame: pd.DataFrame, *, target: str, task: Task | None = None) -> DataProfile:
    """Profile ``frame`` for ``target``: feature kinds, ids, datetimes, class balance."""
    if target not in frame.columns:
        raise KeyError(target)
    columns: list[ColumnProfile] = []
    id_like: list[str] = []
    datetimes: list[str] = []
    numeric: list[str] = []
    categorical: list[str] = []
    coded: list[str] = []
    slices: list[str] = []
    for name in frame.columns:
        series = frame[name]
        kind = _kind(series)
        columns.append(
            ColumnProfile(
                name=str(name),
                kind=kind,
                missing_share=float(series.isna().mean()) if len(series) else 0.0,
                distinct=int(series.nunique(dropna=True)),
            )
        )
        if name == target:
            continue
        if kind == "datetime":
            datetimes.append(str(name))
        elif looks_like_id(series):
            id_like.append(str(name))
        elif kind == "numeric":
            numeric.append(str(name))
            if pd.api.types.is_integer_dtype(series.dtype) and series.nunique() <= 10:
                coded.append(str(name))
        else:
            categorical.append(str(name))
            if 2 <= series.nunique(dropna=True) <= _MAX_SLICE_VALUES:
                slices.append(str(name))
    resolved_task: Task = task or infer_task(frame[target])
    balance: dict[str, float] = {}
    positive = None
    if resolved_task == "classification":
        shares = frame[target].dropna().value_counts(normalize=True)
        balance = {str(label): float(share) for label, share in shares.items()}
        positive = suggest_positive_label(frame[target])
    return DataProfile(
        rows=len(frame),
        columns=tuple(columns),
        target=target,
        task=resolved_task,
        id_like=tuple(id_like),
        datetime_columns=tuple(datetimes),
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        class_balance=balance,
        positive_label=positive,
        slice_candidates=tuple(slices),
        coded_integers=tuple(coded),
    )


def id_like_features(frame: pd.DataFrame, features: Sequence[str]) -> list[str]:
    """The ``features`` of ``frame`` whose values never repeat: ids about to be fitted on."""
    return [c for c in features if c in frame.columns and looks_like_id(frame[c])]


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series.dtype):
        return "boolean"
    if looks_like_datetime(series):
        return "datetime"
    if pd.api.types.is_numeric_dtype(series.dtype):
        return "numeric"
    return "categorical"


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
