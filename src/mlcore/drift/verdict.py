"""From graded columns to the report: the correction across columns and the dataset verdict.

The dataset grades ``major`` when at least ``dataset_drift_share`` of the
features that could be graded grade major (or the domain classifier grades
major), ``moderate`` likewise for moderate-or-major, and
``insufficient_data`` when the current window is smaller than
``min_window`` rows or no feature could be graded. Prediction and label
columns are reported beside the features and never count in the share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from mlcore.drift.columns import with_primary
from mlcore.drift.correction import adjust_p_values
from mlcore.drift.grading import Grade, at_least
from mlcore.drift.results import DriftReport, FeatureDrift, ReferenceInfo, TestResult
from mlcore.settings import DriftSettings


def assemble_report(
    *,
    reference_rows: int,
    current_rows: int,
    settings: DriftSettings,
    results: Mapping[str, FeatureDrift],
    mode: Literal["exact", "streaming"] = "exact",
    ks_error_bound: float | None = None,
    domain_classifier: TestResult | None = None,
    missing_columns: Sequence[str] = (),
    extra_columns: Sequence[str] = (),
    reference: ReferenceInfo | None = None,
) -> DriftReport:
    """Correct the deciding p-values across columns, then grade the dataset."""
    corrected = _apply_correction(list(results.values()), settings)
    features = tuple(r for r in corrected if r.role == "feature")
    graded = [f for f in features if f.grade != "insufficient_data"]
    share_major = _share(graded, "major")
    share_alerting = _share(graded, "moderate")
    note = None
    grade: Grade
    short = [
        f"the {side} data has {rows} rows"
        for side, rows in (("reference", reference_rows), ("current", current_rows))
        if rows < settings.min_window
    ]
    if short:
        grade = "insufficient_data"
        note = (
            f"{' and '.join(short)}, fewer than the minimum window of {settings.min_window} "
            "(drift.min_window): no verdict"
        )
    elif not graded:
        grade = "insufficient_data"
        note = "no feature could be graded (see each feature's note)"
    elif share_major >= settings.dataset_drift_share:
        grade = "major"
    elif share_alerting >= settings.dataset_drift_share:
        grade = "moderate"
    else:
        grade = "none"
    if domain_classifier is not None and grade != "insufficient_data":
        grade = _more_severe(grade, domain_classifier.grade)
    return DriftReport(
        features=features,
        predictions=tuple(r for r in corrected if r.role == "prediction"),
        labels=tuple(r for r in corrected if r.role == "label"),
        grade=grade,
        share_drifted=share_major,
        share_alerting=share_alerting,
        dataset_drift_share=settings.dataset_drift_share,
        reference_rows=reference_rows,
        current_rows=current_rows,
        settings=settings.model_dump(),
        mode=mode,
        ks_error_bound=ks_error_bound,
        domain_classifier=domain_classifier,
        missing_columns=tuple(missing_columns),
        extra_columns=tuple(extra_columns),
        reference=reference or ReferenceInfo(),
        note=note,
    )


def _share(features: Sequence[FeatureDrift], floor: Literal["moderate", "major"]) -> float:
    if not features:
        return 0.0
    return sum(1 for f in features if at_least(f.grade, floor)) / len(features)


def _more_severe(grade: Grade, other: Grade) -> Grade:
    levels: tuple[Grade, ...] = ("major", "moderate")
    for level in levels:
        if level in (grade, other):
            return level
    return grade


def _apply_correction(results: list[FeatureDrift], settings: DriftSettings) -> list[FeatureDrift]:
    """Adjust the deciding tests' p-values across columns and re-grade those columns."""
    if settings.correction == "none":
        return results
    indexed = [(i, r.primary) for i, r in enumerate(results) if r.primary.p_value is not None]
    adjusted = adjust_p_values(
        [t.p_value for _, t in indexed if t.p_value is not None], settings.correction
    )
    corrected = list(results)
    for (index, test), p_adjusted in zip(indexed, adjusted, strict=True):
        primary = test.regraded(p_value_adjusted=p_adjusted)
        corrected[index] = with_primary(results[index], primary)
    return corrected
