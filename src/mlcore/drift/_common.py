"""Small helpers the test modules share: coercing raw inputs and the "could not run" result."""

from __future__ import annotations

from typing import TypeAlias

import numpy.typing as npt
import pandas as pd

from mlcore.drift.pairs import BinnablePair, CategoricalPair, NumericPair
from mlcore.drift.results import TestResult
from mlcore.drift.summaries import CategoricalSummary, NumericSummary

NumericInput: TypeAlias = npt.ArrayLike | pd.Series | NumericSummary
CategoricalInput: TypeAlias = npt.ArrayLike | pd.Series | CategoricalSummary


def numeric_pair(reference: NumericInput, current: NumericInput) -> NumericPair:
    def summary(values: NumericInput, name: str) -> NumericSummary:
        if isinstance(values, NumericSummary):
            return values
        return NumericSummary.from_values(values, name=name)

    return NumericPair(summary(reference, "reference"), summary(current, "current"))


def categorical_pair(reference: CategoricalInput, current: CategoricalInput) -> CategoricalPair:
    def summary(values: CategoricalInput) -> CategoricalSummary:
        if isinstance(values, CategoricalSummary):
            return values
        return CategoricalSummary.from_values(values)

    return CategoricalPair(summary(reference), summary(current))


def untestable(method: str, threshold: float, pair: BinnablePair) -> TestResult:
    """The defined result when one side has no non-missing value: no statistic, no drift claim.

    The missing-value-rate check still runs and flags such a column.
    """
    empty = [
        side
        for side, summary in (("reference", pair.reference), ("current", pair.current))
        if summary.n_valid == 0
    ]
    return TestResult(
        method=method,
        statistic=None,
        p_value=None,
        threshold=threshold,
        drifted=False,
        parameters={
            "reference_size": pair.reference.n_valid,
            "current_size": pair.current.n_valid,
        },
        note=f"not computed: no non-missing values in the {' and '.join(empty)} data",
    )
