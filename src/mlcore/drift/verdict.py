"""From graded columns to the report: the correction across columns and the dataset verdict.

The dataset grades ``major`` when at least ``dataset_drift_share`` of the
features that could be graded count as major at the dataset's level (below),
or the domain classifier grades major; ``moderate`` likewise for
moderate-or-major; ``insufficient_data`` when the current window is smaller
than ``min_window`` rows or no feature could be graded. Prediction and label
columns are reported beside the features and never count in the share.

A bounded false-alarm rate for the dataset grade. Two decisions can raise it,
the share rule and the domain classifier, and together they hold
``p_value_threshold`` (alpha) whatever the number of features and however the
features move together: the classifier is tested at alpha / 2, and the share
rule at alpha / 2 by Rüger's bound (Rüger 1978, Metrika 25: a rule "at least k
of m tests reject, each at level a" rejects with probability at most m a / k
under any dependence), so a feature counts toward the share when its checks
reject at a = (alpha / 2) k / m, k = ceil(share x m). Each feature's own grade
(``grade``) stays at alpha: what an alert on that column reads; the grade it
counts with is ``dataset_grade``. Without the classifier the share rule has
the whole alpha.

Multiple-testing correction (``drift.correction``): every test that grades a
column is corrected across the columns of the report (features, predictions
and labels), one family per kind of test: the deciding distribution tests, and
each data-quality check (missing rate, out-of-range values, unseen values).
The domain classifier is one test of the data, not corrected across columns.
A test whose p-value cannot reach the level it is held to (a Monte Carlo
p-value's floor) is named in ``warnings``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Literal

from mlcore.drift.columns import with_primary
from mlcore.drift.correction import adjust_p_values
from mlcore.drift.grading import Grade, at_least
from mlcore.drift.results import DriftReport, Engine, FeatureDrift, ReferenceInfo, TestResult
from mlcore.settings import DriftSettings


def assemble_report(
    *,
    reference_rows: int,
    current_rows: int,
    settings: DriftSettings,
    results: Mapping[str, FeatureDrift],
    mode: Engine = "exact",
    ks_error_bound: float | None = None,
    domain_classifier: TestResult | None = None,
    missing_columns: Sequence[str] = (),
    extra_columns: Sequence[str] = (),
    reference: ReferenceInfo | None = None,
) -> DriftReport:
    """Correct the p-values across columns, then grade the dataset."""
    corrected = _apply_correction(list(results.values()), settings)
    graded_count = sum(
        1 for r in corrected if r.role == "feature" and r.grade != "insufficient_data"
    )
    levels = dataset_levels(settings, graded_count, with_classifier=domain_classifier is not None)
    corrected = [
        dataclasses.replace(r, dataset_grade=r.grade_at(levels["feature_alpha"]))
        if r.role == "feature"
        else r
        for r in corrected
    ]
    features = tuple(r for r in corrected if r.role == "feature")
    graded = [f for f in features if f.grade != "insufficient_data"]
    share_major = _share(graded, "major")
    share_alerting = _share(graded, "moderate")
    if domain_classifier is not None:
        domain_classifier = domain_classifier.regraded(alpha=levels["domain_classifier_alpha"])
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
        warnings=tuple(_warnings(corrected, domain_classifier, levels)),
        dataset_levels=levels,
    )


def dataset_levels(
    settings: DriftSettings, graded_features: int, *, with_classifier: bool
) -> dict[str, float]:
    """The levels of the dataset's two decisions (see the module docstring)."""
    alpha = settings.p_value_threshold
    share_alpha = alpha / 2 if with_classifier else alpha
    m = max(1, graded_features)
    needed = max(1, math.ceil(settings.dataset_drift_share * m - 1e-9))
    return {
        "share_rule_alpha": share_alpha,
        "features_needed": float(needed),
        "feature_alpha": min(alpha, share_alpha * needed / m),
        "domain_classifier_alpha": alpha / 2 if with_classifier else alpha,
    }


def _share(features: Sequence[FeatureDrift], floor: Literal["moderate", "major"]) -> float:
    if not features:
        return 0.0
    return sum(
        1 for f in features if f.dataset_grade is not None and at_least(f.dataset_grade, floor)
    ) / len(features)


def _more_severe(grade: Grade, other: Grade) -> Grade:
    levels: tuple[Grade, ...] = ("major", "moderate")
    for level in levels:
        if level in (grade, other):
            return level
    return grade


def _apply_correction(results: list[FeatureDrift], settings: DriftSettings) -> list[FeatureDrift]:
    """Adjust every grading test's p-value across columns, one family per kind of test, and
    re-grade the columns."""
    if settings.correction == "none":
        return results
    corrected = list(results)
    # The deciding distribution tests form one family, each data-quality check another.
    families: dict[str, list[tuple[int, int, TestResult]]] = {}
    for index, column in enumerate(results):
        for position, test in enumerate((column.primary, *column.checks)):
            if test.p_value is None or test.grade == "insufficient_data":
                continue
            family = "distribution" if position == 0 else test.method
            families.setdefault(family, []).append((index, position, test))
    for members in families.values():
        adjusted = adjust_p_values(
            [t.p_value for _, _, t in members if t.p_value is not None], settings.correction
        )
        for (index, position, test), p_adjusted in zip(members, adjusted, strict=True):
            regraded = test.regraded(p_value_adjusted=p_adjusted)
            column = corrected[index]
            if position == 0:
                corrected[index] = with_primary(column, regraded)
            else:
                checks = list(column.checks)
                checks[position - 1] = regraded
                corrected[index] = dataclasses.replace(column, checks=tuple(checks))
    return corrected


def _warnings(
    columns: Sequence[FeatureDrift],
    classifier: TestResult | None,
    levels: Mapping[str, float],
) -> list[str]:
    found = []
    for column in columns:
        for test in (column.primary, *column.checks):
            if test.grade != "insufficient_data" and test.cannot_reach(test.alpha):
                found.append(_cannot_reach(f"{column.name}: {test.method}", test, test.alpha))
    if classifier is not None and classifier.cannot_reach(classifier.alpha):
        found.append(_cannot_reach("domain classifier", classifier, classifier.alpha))
    return found


def _cannot_reach(what: str, test: TestResult, level: float) -> str:
    return (
        f"{what} cannot flag drift: its p-value cannot go below {test.p_value_floor:.3g} "
        f"({test.significance_test}), and it is held to the level {level:.3g}; lower the "
        "number of corrected columns or raise drift.p_value_threshold"
    )
