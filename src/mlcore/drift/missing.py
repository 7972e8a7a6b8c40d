"""The missing-value-rate check: a column whose only change is more missing values still drifts.

Distribution tests drop missing values, so they cannot see a column going from
2% to 10% missing. This check compares the shares directly: it flags an
increase of more than ``threshold`` (absolute). Infinite values count as
missing here because the distribution tests drop them too.
"""

from __future__ import annotations

from mlcore.drift.results import MissingRateResult
from mlcore.drift.summaries import ColumnSummary


def missing_rate_check(
    reference: ColumnSummary, current: ColumnSummary, *, threshold: float
) -> MissingRateResult:
    increase = current.invalid_rate - reference.invalid_rate
    return MissingRateResult(
        reference_rate=reference.invalid_rate,
        current_rate=current.invalid_rate,
        threshold=threshold,
        drifted=increase > threshold,
    )
