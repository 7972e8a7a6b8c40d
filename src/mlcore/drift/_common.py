"""What the check modules share: the registry entry type, input coercion, "could not run"."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy.typing as npt
import pandas as pd

from mlcore.drift.pairs import CategoricalPair, NumericPair
from mlcore.drift.results import TestResult
from mlcore.drift.summaries import CategoricalSummary, Kind, NumericSummary
from mlcore.settings import Bands, DriftSettings

NumericInput: TypeAlias = npt.ArrayLike | pd.Series | NumericSummary
CategoricalInput: TypeAlias = npt.ArrayLike | pd.Series | CategoricalSummary
TestFunction = Callable[[Any, DriftSettings], TestResult]


@dataclass(frozen=True)
class DriftTest:
    """One check: its name, the column kinds it applies to and its implementation per engine.

    ``implementations`` maps an engine name (``"exact"``, ``"streaming"``) to a
    function ``(pair, settings) -> TestResult`` reading that engine's pair (the Spark
    engine grades with the ``"streaming"`` ones: it builds the same pairs).
    ``on_demand`` checks are costly (a full merge of both samples) and run only
    when they are the configured method.
    """

    name: str
    kinds: tuple[Kind, ...]
    implementations: Mapping[str, TestFunction]
    on_demand: bool = False

    def implementation(self, engine: str) -> TestFunction:
        try:
            return self.implementations[engine]
        except KeyError:
            raise ValueError(
                f"drift check {self.name!r} has no {engine!r} implementation; it has "
                f"{sorted(self.implementations)}"
            ) from None


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


def untestable(method: str, bands: Bands, alpha: float, pair: Any) -> TestResult:
    """The defined result when one side has no non-missing value: insufficient data.

    The missing-value-rate check still runs and flags such a column.
    """
    empty = [
        side
        for side, summary in (("reference", pair.reference), ("current", pair.current))
        if summary.n_valid == 0
    ]
    return TestResult.insufficient(
        method,
        bands=bands,
        alpha=alpha,
        parameters={
            "reference_size": pair.reference.n_valid,
            "current_size": pair.current.n_valid,
        },
        note=f"not computed: no non-missing values in the {' and '.join(empty)} data",
    )
