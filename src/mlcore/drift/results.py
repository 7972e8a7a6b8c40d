"""Typed results: one per check, one per column, one per report. JSON at the edges only."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from mlcore.drift.grading import Grade, at_least, grade_effect, worst
from mlcore.drift.profiles import ColumnProfile
from mlcore.drift.summaries import Kind
from mlcore.settings import Bands

Role = Literal["feature", "prediction", "label"]
Engine = Literal["exact", "streaming", "spark"]
ParameterValue = str | int | float | bool | None | tuple[Any, ...]

# 2.1: mode "spark"; 2.2: warnings, dataset_levels, features' dataset_grade, tests' p_value_floor
REPORT_SCHEMA_VERSION = "2.2"


def _frozen_mapping(values: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True)
class TestResult:
    """The outcome of one check on one column (or, for the domain classifier, on the data).

    ``statistic`` is the check's effect size, graded on ``bands`` once
    ``p_value`` (from ``significance_test``) is below ``alpha``; see
    :mod:`mlcore.drift.grading`. ``statistic`` and ``p_value`` are None when the
    check could not run; ``note`` then says why. ``parameters`` records every
    choice that shapes the number: bins and their edges, smoothing, log base,
    normalisation, sample sizes.
    """

    __test__ = False  # not a pytest test class despite the name

    method: str
    statistic: float | None
    p_value: float | None
    bands: Bands
    alpha: float
    grade: Grade
    significance_test: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    note: str | None = None
    p_value_adjusted: float | None = None
    # The smallest p-value the test's method can give on this data (a Monte Carlo test's
    # 1 / (draws + 1)); 0 for tests whose p-value reaches any level.
    p_value_floor: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", _frozen_mapping(self.parameters))

    def cannot_reach(self, level: float, *, corrected: bool = True) -> bool:
        """Whether this test's p-value (after the correction, with ``corrected``) could never get
        below ``level``, whatever the data showed: a test that can never flag."""
        if self.p_value_floor <= 0 or self.p_value is None:
            return False
        factor = 1.0
        if corrected and self.p_value_adjusted is not None and self.p_value > 0:
            factor = self.p_value_adjusted / self.p_value
        return self.p_value_floor * factor >= level

    @classmethod
    def graded(
        cls,
        method: str,
        *,
        statistic: float | None,
        p_value: float | None,
        bands: Bands,
        alpha: float,
        significance_test: str | None,
        parameters: Mapping[str, Any],
        note: str | None = None,
        p_value_floor: float = 0.0,
    ) -> TestResult:
        return cls(
            method=method,
            statistic=statistic,
            p_value=p_value,
            bands=bands,
            alpha=alpha,
            grade=grade_effect(statistic, p_value, bands=bands, alpha=alpha),
            significance_test=significance_test,
            parameters=parameters,
            note=note,
            p_value_floor=p_value_floor,
        )

    @classmethod
    def insufficient(
        cls,
        method: str,
        *,
        bands: Bands,
        alpha: float,
        note: str,
        parameters: Mapping[str, Any] | None = None,
    ) -> TestResult:
        """A check that could not be computed: graded insufficient data, ``note`` says why."""
        return cls(
            method=method,
            statistic=None,
            p_value=None,
            bands=bands,
            alpha=alpha,
            grade="insufficient_data",
            parameters=parameters or {},
            note=note,
        )

    @property
    def threshold(self) -> float:
        """The major band: at or above it (and significant) the check grades major."""
        return self.bands.major

    @property
    def drifted(self) -> bool:
        return self.grade == "major"

    @property
    def deciding_p_value(self) -> float | None:
        return self.p_value if self.p_value_adjusted is None else self.p_value_adjusted

    def regraded(
        self,
        *,
        alpha: float | None = None,
        p_value_adjusted: float | None = None,
        insufficient: str | None = None,
    ) -> TestResult:
        """The same measurement graded at another level, after a correction, or as
        insufficient data (``insufficient`` says why)."""
        if insufficient is not None:
            return dataclasses.replace(
                self,
                grade="insufficient_data",
                note=insufficient if self.note is None else f"{self.note}; {insufficient}",
            )
        level = self.alpha if alpha is None else alpha
        adjusted = self.p_value_adjusted if p_value_adjusted is None else p_value_adjusted
        p_value = self.p_value if adjusted is None else adjusted
        return dataclasses.replace(
            self,
            alpha=level,
            p_value_adjusted=adjusted,
            grade=grade_effect(self.statistic, p_value, bands=self.bands, alpha=level)
            if self.grade != "insufficient_data"
            else "insufficient_data",
        )

    def explanation(self) -> str:
        """One sentence: the numbers behind ``grade`` and the rule applied to them."""
        if self.grade == "insufficient_data" or self.statistic is None:
            return f"{self.method}: insufficient data ({self.note or 'not computed'})"
        p_value = self.deciding_p_value
        label = "adjusted p-value" if self.p_value_adjusted is not None else "p-value"
        significance = (
            f"{self.significance_test} {label} {p_value:.3g} "
            f"{'<' if p_value is not None and p_value < self.alpha else '>='} {self.alpha:.3g}"
        )
        if self.grade in ("major", "moderate"):
            band = self.bands.major if self.grade == "major" else self.bands.moderate
            return (
                f"{self.method} {self.statistic:.4g} >= {self.grade} threshold {band:g} "
                f"({significance})"
            )
        if p_value is not None and not p_value < self.alpha:
            return f"{self.method} {self.statistic:.4g}, not significant ({significance})"
        return (
            f"{self.method} {self.statistic:.4g} < moderate threshold {self.bands.moderate:g} "
            f"({significance})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "p_value_adjusted": self.p_value_adjusted,
            "significance_test": self.significance_test,
            "alpha": self.alpha,
            "moderate_threshold": self.bands.moderate,
            "threshold": self.bands.major,
            "grade": self.grade,
            "drifted": self.drifted,
            "parameters": _plain(self.parameters),
            "note": self.note,
            "p_value_floor": self.p_value_floor,
        }

    def grade_at(self, alpha: float) -> Grade:
        """The grade this measurement would get at level ``alpha`` on its raw p-value."""
        if self.grade == "insufficient_data":
            return "insufficient_data"
        return grade_effect(self.statistic, self.p_value, bands=self.bands, alpha=alpha)


@dataclass(frozen=True)
class DataTypeCheck:
    """Model Monitor's data_type_check: the share of values of the baseline's inferred type."""

    expected: str  # "Integral", "Fractional" or "String"
    conforming: int
    total: int  # non-missing values examined
    examples: tuple[str, ...] = ()

    @property
    def observed_share(self) -> float:
        return 1.0 if self.total == 0 else self.conforming / self.total

    @property
    def violated(self) -> bool:
        return self.conforming < self.total

    def to_dict(self) -> dict[str, Any]:
        return {
            "expected_type": self.expected,
            "observed_share": self.observed_share,
            "nonconforming": self.total - self.conforming,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class FeatureDrift:
    """Every check of one column; the configured method (``primary``) and the data-quality
    checks (``checks``: missing rate, out-of-range or unseen values) decide ``grade``."""

    name: str
    role: Role
    kind: Kind
    primary: TestResult
    tests: tuple[TestResult, ...]
    checks: tuple[TestResult, ...]
    reference_count: int
    current_count: int
    reference_profile: ColumnProfile
    current_profile: ColumnProfile
    data_type: DataTypeCheck
    unseen_categories: tuple[str, ...] = ()
    unseen_share: float = 0.0
    # The grade at the dataset's level (what counts toward the dataset's share), once a report
    # has set it: see ``verdict``.
    dataset_grade: Grade | None = None

    @property
    def grade(self) -> Grade:
        return worst(
            [self.primary.grade, *(c.grade for c in self.checks)], decisive=self.primary.grade
        )

    @property
    def drifted(self) -> bool:
        return self.grade == "major"

    @property
    def alerting(self) -> bool:
        return at_least(self.grade, "moderate")

    def grade_at(self, alpha: float) -> Grade:
        """The column's grade if its checks shared the level ``alpha`` (raw p-values)."""
        level = alpha / (1 + len(self.checks))
        return worst(
            [self.primary.grade_at(level), *(c.grade_at(level) for c in self.checks)],
            decisive=self.primary.grade_at(level),
        )

    @property
    def method(self) -> str:
        return self.primary.method

    @property
    def statistic(self) -> float | None:
        return self.primary.statistic

    @property
    def p_value(self) -> float | None:
        return self.primary.p_value

    @property
    def threshold(self) -> float:
        return self.primary.threshold

    @property
    def missing(self) -> TestResult:
        return self.check("missing_rate")

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(
            result.explanation()
            for result in (self.primary, *self.checks)
            if at_least(result.grade, "moderate")
        )

    def check(self, method: str) -> TestResult:
        for result in self.checks:
            if result.method == method:
                return result
        raise KeyError(
            f"no {method!r} check for {self.name!r}; have {[c.method for c in self.checks]}"
        )

    def test(self, method: str) -> TestResult:
        for result in self.tests:
            if result.method == method:
                return result
        raise KeyError(
            f"no {method!r} test for {self.name!r}; have {[t.method for t in self.tests]}"
        )

    def to_dict(self) -> dict[str, Any]:
        missing = self.missing
        return {
            "name": self.name,
            "role": self.role,
            "kind": self.kind,
            "grade": self.grade,
            "drifted": self.drifted,
            "method": self.primary.method,
            "statistic": self.primary.statistic,
            "p_value": self.primary.p_value,
            "p_value_adjusted": self.primary.p_value_adjusted,
            "moderate_threshold": self.primary.bands.moderate,
            "threshold": self.primary.threshold,
            "reasons": list(self.reasons),
            "parameters": _plain(self.primary.parameters),
            "missing": {
                "method": "missing_rate",
                "reference_rate": missing.parameters["reference_rate"],
                "current_rate": missing.parameters["current_rate"],
                "increase": missing.statistic,
                "threshold": missing.threshold,
                "grade": missing.grade,
                "drifted": missing.drifted,
            },
            "checks": [c.to_dict() for c in self.checks],
            "data_type": self.data_type.to_dict(),
            "reference_count": self.reference_count,
            "current_count": self.current_count,
            "unseen_categories": list(self.unseen_categories),
            "unseen_share": self.unseen_share,
            "dataset_grade": self.dataset_grade,
            "tests": [t.to_dict() for t in self.tests],
        }


@dataclass(frozen=True)
class ReferenceInfo:
    """What the current data was compared with, recorded in every report."""

    mode: Literal["training", "same_period_last_year", "previous_window", "data"] = "training"
    source: str | None = None
    window_start: str | None = None
    window_end: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DriftReport:
    """Drift of one current dataset against a reference.

    ``grade`` is "major" when at least ``dataset_drift_share`` of the graded
    features grade major, or the domain classifier does; "moderate" likewise for
    moderate-or-major; "insufficient_data" when the current window is below the
    minimum or no feature could be graded. ``dataset_drift`` is ``grade == "major"``.
    """

    features: tuple[FeatureDrift, ...]
    predictions: tuple[FeatureDrift, ...]
    labels: tuple[FeatureDrift, ...]
    grade: Grade
    share_drifted: float
    share_alerting: float
    dataset_drift_share: float
    reference_rows: int
    current_rows: int
    settings: Mapping[str, Any]
    mode: Engine = "exact"
    ks_error_bound: float | None = None
    domain_classifier: TestResult | None = None
    missing_columns: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()
    reference: ReferenceInfo = field(default_factory=ReferenceInfo)
    note: str | None = None
    # Tests that cannot reach the level they are held to, in words.
    warnings: tuple[str, ...] = ()
    # The levels of the dataset's decisions (``verdict``): the share rule, each feature's level
    # within it, the domain classifier.
    dataset_levels: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", _frozen_mapping(self.settings))
        object.__setattr__(self, "dataset_levels", _frozen_mapping(self.dataset_levels))

    @property
    def dataset_drift(self) -> bool:
        return self.grade == "major"

    @property
    def drifted_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.drifted)

    @property
    def alerting_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.alerting)

    @property
    def prediction_grade(self) -> Grade | None:
        """None when no prediction column was checked."""
        return _group_grade(self.predictions)

    @property
    def prediction_drift(self) -> bool | None:
        grade = self.prediction_grade
        return None if grade is None else grade == "major"

    @property
    def label_grade(self) -> Grade | None:
        return _group_grade(self.labels)

    @property
    def columns(self) -> tuple[FeatureDrift, ...]:
        return self.features + self.predictions + self.labels

    def feature(self, name: str) -> FeatureDrift:
        for result in self.columns:
            if result.name == name:
                return result
        raise KeyError(
            f"no drift result for {name!r}; columns are {[c.name for c in self.columns]}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The drift_report.json document (schema: drift_report.schema.json beside this module)."""
        counts = {g: sum(1 for f in self.features if f.grade == g) for g in _GRADE_ORDER}
        label_grade = self.label_grade
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "grade": self.grade,
            "dataset_drift": self.dataset_drift,
            "share_drifted": self.share_drifted,
            "share_alerting": self.share_alerting,
            "dataset_drift_share": self.dataset_drift_share,
            "number_of_features": len(self.features),
            "number_of_drifted_features": len(self.drifted_features),
            "feature_grades": counts,
            "drifted_features": list(self.drifted_features),
            "alerting_features": list(self.alerting_features),
            "prediction_grade": self.prediction_grade,
            "prediction_drift": self.prediction_drift,
            "label_grade": label_grade,
            "label_drift": None if label_grade is None else label_grade == "major",
            "domain_classifier": None
            if self.domain_classifier is None
            else self.domain_classifier.to_dict(),
            "missing_columns": list(self.missing_columns),
            "extra_columns": list(self.extra_columns),
            "reference": self.reference.to_dict(),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "mode": self.mode,
            "ks_error_bound": self.ks_error_bound,
            "note": self.note,
            "warnings": list(self.warnings),
            "dataset_levels": dict(self.dataset_levels),
            "settings": _plain(self.settings),
            "features": [f.to_dict() for f in self.features],
            "predictions": [p.to_dict() for p in self.predictions],
            "labels": [label.to_dict() for label in self.labels],
        }


_GRADE_ORDER: tuple[Grade, ...] = ("none", "moderate", "major", "insufficient_data")


def _group_grade(columns: tuple[FeatureDrift, ...]) -> Grade | None:
    if not columns:
        return None
    return worst([c.grade for c in columns])


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
