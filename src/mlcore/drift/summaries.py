"""Per-column summaries that every drift test reads: one pass over a column, shared by all tests.

A numeric column becomes its sorted finite values plus counts of NaN and of
+/-infinity; a categorical column becomes its category labels and counts. The
reference side is summarised once (at training time, see ``baseline``) so a
monitoring run only summarises the current data.

Missing-value policy (the same for every test): null and NaN are missing;
+/-infinity is counted separately and also left out of the distribution tests,
because no distance between distributions is defined for it. A value of a
numeric column that is not a number (one "N/A" string among numbers) is a data
type problem, not a reason to stop: it is counted (with a few examples) for
Model Monitor's ``data_type_check`` and treated as missing. Every such count
feeds the missing-value-rate check, so a column that starts producing
infinities or text is still flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlcore.errors import DataError

Kind = Literal["numeric", "categorical"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class NumericSummary:
    """A numeric column: its sorted finite values and how many values were missing, infinite
    or not numbers at all."""

    sorted_values: FloatArray
    n_missing: int = 0
    n_posinf: int = 0
    n_neginf: int = 0
    n_not_numeric: int = 0
    not_numeric_examples: tuple[str, ...] = ()

    @property
    def n_valid(self) -> int:
        return int(self.sorted_values.shape[0])

    @property
    def n_total(self) -> int:
        return self.n_valid + self.n_missing + self.n_posinf + self.n_neginf + self.n_not_numeric

    @property
    def invalid_rate(self) -> float:
        """Share of values that are missing, infinite or not numbers (0.0 for an empty column)."""
        if self.n_total == 0:
            return 0.0
        return (self.n_total - self.n_valid) / self.n_total

    @property
    def n_fractional(self) -> int:
        """Finite values with a fractional part (an "Integral" reference expects none)."""
        values = self.sorted_values
        return int(np.count_nonzero(values != np.floor(values)))

    @classmethod
    def from_values(
        cls, values: npt.ArrayLike | pd.Series, *, name: str = "column"
    ) -> NumericSummary:
        """Summarise raw values; values that are not numbers are counted, never fatal."""
        parsed = parse_numeric(values, name=name)
        array = parsed.values
        if np.isfinite(array).all():  # the common case: one check, no masks
            return cls(sorted_values=np.sort(array))
        missing = np.isnan(array)
        posinf = np.isposinf(array)
        neginf = np.isneginf(array)
        finite = array[~(missing | posinf | neginf)]
        return cls(
            sorted_values=np.sort(finite),
            n_missing=int(missing.sum()) - parsed.n_not_numeric,
            n_posinf=int(posinf.sum()),
            n_neginf=int(neginf.sum()),
            n_not_numeric=parsed.n_not_numeric,
            not_numeric_examples=parsed.examples,
        )

    def merge(self, other: NumericSummary) -> NumericSummary:
        """The summary of both samples together (the same as summarising their concatenation)."""
        merged = np.concatenate([self.sorted_values, other.sorted_values])
        merged.sort(kind="stable")  # two sorted runs: a linear-time merge
        return NumericSummary(
            sorted_values=merged,
            n_missing=self.n_missing + other.n_missing,
            n_posinf=self.n_posinf + other.n_posinf,
            n_neginf=self.n_neginf + other.n_neginf,
            n_not_numeric=self.n_not_numeric + other.n_not_numeric,
            not_numeric_examples=merge_examples(
                self.not_numeric_examples, other.not_numeric_examples
            ),
        )


@dataclass(frozen=True, eq=False)
class CategoricalSummary:
    """A categorical column: category labels (as strings, sorted) with their counts, and missing."""

    labels: tuple[str, ...]
    counts: IntArray
    n_missing: int = 0

    def __post_init__(self) -> None:
        if len(self.labels) != self.counts.shape[0]:
            raise ValueError("labels and counts must have the same length")

    @property
    def n_valid(self) -> int:
        return int(self.counts.sum())

    @property
    def n_total(self) -> int:
        return self.n_valid + self.n_missing

    @property
    def invalid_rate(self) -> float:
        return 0.0 if self.n_total == 0 else self.n_missing / self.n_total

    def count_map(self) -> dict[str, int]:
        return {label: int(c) for label, c in zip(self.labels, self.counts, strict=True)}

    @classmethod
    def from_values(cls, values: npt.ArrayLike | pd.Series) -> CategoricalSummary:
        series = values if isinstance(values, pd.Series) else pd.Series(values)
        n_missing = int(series.isna().sum())
        labels = category_labels(series.dropna())
        counts = labels.value_counts(sort=False)
        order = np.argsort(counts.index.to_numpy(dtype=object).astype(str), kind="stable")
        return cls(
            labels=tuple(str(v) for v in counts.index.to_numpy()[order]),
            counts=counts.to_numpy(dtype=np.int64)[order],
            n_missing=n_missing,
        )

    @classmethod
    def from_counts(cls, counts: dict[str, int], *, n_missing: int = 0) -> CategoricalSummary:
        labels = tuple(sorted(counts))
        return cls(
            labels=labels,
            counts=np.array([counts[k] for k in labels], dtype=np.int64),
            n_missing=n_missing,
        )

    def merge(self, other: CategoricalSummary) -> CategoricalSummary:
        combined = self.count_map()
        for label, count in other.count_map().items():
            combined[label] = combined.get(label, 0) + count
        return CategoricalSummary.from_counts(combined, n_missing=self.n_missing + other.n_missing)


ColumnSummary = NumericSummary | CategoricalSummary


def category_labels(series: pd.Series) -> pd.Series:
    """Category values as strings that compare equal across file formats.

    A CSV column of integer codes with a gap reads as floats (1.0), while the
    same codes in Parquet stay integers (1): whole floats are written without
    the ``.0`` so both give the label "1".
    """
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype(str)
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64)
        if values.size and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
            return pd.Series(values.astype(np.int64), index=series.index).astype(str)
    return series.astype(str)


# How many distinct offending values a summary keeps to show in a data_type_check violation.
MAX_EXAMPLES = 5


@dataclass(frozen=True, eq=False)
class ParsedNumbers:
    """Raw values as float64, NaN where a value was missing or not a number."""

    values: FloatArray
    # Values that are neither null, blank nor numbers: NaN in ``values``, but type errors.
    n_not_numeric: int = 0
    examples: tuple[str, ...] = ()


def parse_numeric(values: npt.ArrayLike | pd.Series, *, name: str) -> ParsedNumbers:
    """Values of a numeric column as floats, counting (never raising on) values that are not
    numbers: a monitor reports them as a data type violation and keeps going. Blank strings
    are missing values, not type errors."""
    if not isinstance(values, pd.Series):
        array = np.asarray(values)
        if array.ndim != 1:
            raise DataError(f"column {name!r} must be one-dimensional, got shape {array.shape}")
        if array.dtype.kind in "biuf":
            return ParsedNumbers(np.asarray(array, dtype=np.float64))
        values = pd.Series(array)
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        if values.dtype == np.float64:  # plain float64 column: a view, no copy
            return ParsedNumbers(np.asarray(values.to_numpy(), dtype=np.float64))
        return ParsedNumbers(
            np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
        )
    converted = pd.to_numeric(values, errors="coerce")
    unparsed = values[converted.isna() & values.notna()].astype(str)
    offending = unparsed[unparsed.str.strip() != ""]
    return ParsedNumbers(
        np.asarray(converted.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64),
        n_not_numeric=int(offending.shape[0]),
        examples=tuple(str(v) for v in pd.unique(offending)[:MAX_EXAMPLES]),
    )


def merge_examples(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*first, *second)))[:MAX_EXAMPLES]
