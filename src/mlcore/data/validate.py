"""Validation of a table against its dataset spec, reporting every problem at once."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mlcore.data.spec import DatasetSpec
from mlcore.errors import DataError


class DataValidationError(DataError):
    """The data does not match its spec. ``problems`` lists each mismatch."""

    def __init__(
        self, problems: list[str], *, heading: str = "the data does not match the dataset spec"
    ) -> None:
        self.problems = problems
        super().__init__(f"{heading}:\n  - " + "\n  - ".join(problems))


def check_declared_columns(frame: pd.DataFrame, declared: Mapping[str, Sequence[str]]) -> None:
    """Every column a setting names must be in ``frame``; raise one error naming each that is not.

    ``declared`` maps a setting (``"dataset.id_columns"``) to the columns it names. A
    misspelt name would otherwise be dropped silently (an id fitted as a feature, a slice
    never reported), so each is listed with the closest existing column names.
    """
    columns = [str(c) for c in frame.columns]
    problems = []
    for setting, names in declared.items():
        for name in names:
            if name in frame.columns:
                continue
            close = difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            problems.append(f"{setting} names column {name!r}, which is not in the data{hint}")
    if problems:
        raise DataValidationError(
            [*problems, f"the data has columns {columns}: fix the names in the settings file"],
            heading="the settings name columns that are not in the data",
        )


def validate_frame(frame: pd.DataFrame, spec: DatasetSpec, *, require_target: bool = True) -> None:
    """Check columns, types and content against ``spec``.

    Collects every problem (missing column, non-numeric values in a numeric column,
    empty data, absent or empty target, all-null column) and raises one
    :class:`DataValidationError` naming all of them, so a user fixes their data in one go.
    """
    problems: list[str] = []
    if len(frame) == 0:
        problems.append("the data has no rows")

    required = list(spec.features)
    if require_target:
        required.append(spec.target)
    if spec.timestamp:
        required.append(spec.timestamp)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        problems.append(
            f"missing columns {missing}; the data has {list(frame.columns)}"
            + (
                " (the target is required for training and evaluation)"
                if spec.target in missing
                else ""
            )
        )

    for column in spec.numeric:
        if column not in frame.columns:
            continue
        series = frame[column]
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            bad = _first_non_numeric(series)
            problems.append(
                f"numeric column {column!r} has non-numeric values (dtype {series.dtype}"
                + (f", e.g. {bad!r}" if bad is not None else "")
                + "); clean it or declare it categorical"
            )
    if len(frame):
        for column in [c for c in required if c in frame.columns]:
            if frame[column].isna().all():
                what = "target" if column == spec.target else "column"
                problems.append(f"{what} {column!r} is entirely null")
        if require_target and spec.target in frame.columns:
            unlabelled = int(frame[spec.target].isna().sum())
            if 0 < unlabelled < len(frame):
                problems.append(
                    f"target {spec.target!r} has no label in {unlabelled} of {len(frame)} rows; "
                    "`mlcore prep` drops such rows and reports how many (the rule: a row "
                    "without a label never trains or scores a model); drop them from this data"
                )

    if spec.timestamp and spec.timestamp in frame.columns and len(frame):
        parsed = pd.to_datetime(frame[spec.timestamp], errors="coerce", utc=True)
        unparsable = int(parsed.isna().sum() - frame[spec.timestamp].isna().sum())
        if unparsable:
            problems.append(
                f"timestamp column {spec.timestamp!r} has {unparsable} unparsable values"
            )

    if (
        require_target
        and spec.task == "regression"
        and spec.target in frame.columns
        and not pd.api.types.is_numeric_dtype(frame[spec.target])
    ):
        problems.append(
            f"regression target {spec.target!r} must be numeric, got dtype {frame[spec.target].dtype}"
        )
    if (
        require_target
        and spec.task == "classification"
        and spec.target in frame.columns
        and len(frame)
    ):
        n_classes = frame[spec.target].nunique(dropna=True)
        if n_classes == 1:
            problems.append(
                f"classification target {spec.target!r} has a single class; a model needs at least two"
            )
    if problems:
        raise DataValidationError(problems)


class TooFewEvaluationRows(DataError):
    """Fewer rows than ``gate.min_evaluation_rows`` to evaluate on."""


def require_evaluation_rows(rows: int, minimum: int, *, what: str) -> None:
    """Refuse to let a gate decide on fewer than ``minimum`` rows (``gate.min_evaluation_rows``).

    ``what`` names the rows (``"the test split (15% of 200 rows)"``) in the error.
    """
    if rows < minimum:
        raise TooFewEvaluationRows(
            f"{what} holds {rows} rows, fewer than gate.min_evaluation_rows ({minimum}): a "
            "gate decided on so few rows cannot tell a good model from a lucky one. Use more "
            "data, or lower gate.min_evaluation_rows knowingly"
        )


def drop_unlabelled(frame: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame, int]:
    """``frame`` without the rows whose target is missing, and how many were dropped.

    The one rule for missing labels: a row without a label never trains or scores a model.
    Prep drops such rows and records the count (``lineage.json``, its output, the demo's
    summary); later steps, which read prep's output, refuse any that remain
    (:func:`validate_frame`). A target missing in every row is an error, not a drop.
    """
    if spec.target not in frame.columns:
        return frame, 0
    labelled = frame[spec.target].notna()
    dropped = int((~labelled).sum())
    if dropped == 0 or dropped == len(frame):
        return frame, 0
    return frame.loc[labelled].reset_index(drop=True), dropped


def _first_non_numeric(series: pd.Series) -> object | None:
    coerced = pd.to_numeric(series, errors="coerce")
    bad = series[coerced.isna() & series.notna()]
    return None if bad.empty else bad.iloc[0]


def coerce_features(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Return the feature columns with canonical dtypes: float64 numerics, string categoricals.

    Categorical values become strings so that 1 and "1" are the same category
    whether the data came from CSV, Parquet or a JSON request. Missing stays missing.
    """
    out = pd.DataFrame(index=frame.index)
    for column in spec.numeric:
        out[column] = frame[column].astype("float64")
    for column in spec.categorical:
        values = frame[column]
        out[column] = (
            values.astype(object)
            .where(values.notna(), np.nan)
            .map(lambda v: v if isinstance(v, float) and np.isnan(v) else str(v))
        )
    return out
