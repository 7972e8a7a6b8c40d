"""Typed results: one per statistical test, one per column, one per report. JSON at the edges only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from mlcore.drift.profiles import ColumnProfile
from mlcore.drift.summaries import Kind

Role = Literal["feature", "prediction"]
ParameterValue = str | int | float | bool | None | tuple[Any, ...]


def _frozen_mapping(values: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True)
class TestResult:
    """The outcome of one statistical test on one column.

    ``statistic`` and ``p_value`` are None when the test could not run (for
    example a column with no non-missing values); ``note`` then says why.
    ``parameters`` records every choice that shapes the number: bins and their
    edges, smoothing, log base, normalisation, sample sizes.
    """

    __test__ = False  # not a pytest test class despite the name

    method: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool
    parameters: Mapping[str, Any] = field(default_factory=dict)
    note: str | None = None
    p_value_adjusted: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", _frozen_mapping(self.parameters))

    def explanation(self) -> str:
        """One sentence: the numbers behind ``drifted`` and the rule applied to them."""
        if self.statistic is None:
            return f"{self.method}: {self.note}"
        if self.p_value is None:
            relation = ">=" if self.drifted else "<"
            return f"{self.method} {self.statistic:.4g} {relation} threshold {self.threshold:g}"
        adjusted = self.parameters.get("correction", "none") != "none"
        p_value = (
            self.p_value_adjusted
            if adjusted and self.p_value_adjusted is not None
            else (self.p_value)
        )
        label = f"{self.parameters['correction']}-adjusted p-value" if adjusted else "p-value"
        text = (
            f"{self.method} {label} {p_value:.3g} {'<' if p_value < self.threshold else '>='} "
            f"{self.threshold:g}"
        )
        if "min_effect_size" in self.parameters:
            floor = float(self.parameters["min_effect_size"])
            relation = ">=" if self.statistic >= floor else "<"
            text += f", statistic {self.statistic:.4g} {relation} minimum effect size {floor:g}"
        else:
            text += f" (statistic {self.statistic:.4g})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "p_value_adjusted": self.p_value_adjusted,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "parameters": _plain(self.parameters),
            "note": self.note,
        }


@dataclass(frozen=True)
class MissingRateResult:
    """The missing-value-rate check: drifts when the rate rises by more than ``threshold``."""

    reference_rate: float
    current_rate: float
    threshold: float
    drifted: bool

    @property
    def increase(self) -> float:
        return self.current_rate - self.reference_rate

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "missing_rate",
            "reference_rate": self.reference_rate,
            "current_rate": self.current_rate,
            "increase": self.increase,
            "threshold": self.threshold,
            "drifted": self.drifted,
        }


@dataclass(frozen=True)
class FeatureDrift:
    """Every test run on one column; ``primary`` (the configured method) and the missing-rate
    check decide ``drifted``."""

    name: str
    role: Role
    kind: Kind
    primary: TestResult
    tests: tuple[TestResult, ...]
    missing: MissingRateResult
    reference_count: int
    current_count: int
    reference_profile: ColumnProfile
    current_profile: ColumnProfile
    unseen_categories: tuple[str, ...] = ()
    unseen_share: float = 0.0

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
    def drifted(self) -> bool:
        return self.primary.drifted or self.missing.drifted

    @property
    def reasons(self) -> tuple[str, ...]:
        reasons = []
        if self.primary.drifted:
            reasons.append(self.primary.explanation())
        if self.missing.drifted:
            reasons.append(
                f"missing-value rate rose from {self.missing.reference_rate:.2%} "
                f"to {self.missing.current_rate:.2%}"
            )
        return tuple(reasons)

    def test(self, method: str) -> TestResult:
        for result in self.tests:
            if result.method == method:
                return result
        raise KeyError(
            f"no {method!r} test for {self.name!r}; have {[t.method for t in self.tests]}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "kind": self.kind,
            "method": self.primary.method,
            "statistic": self.primary.statistic,
            "p_value": self.primary.p_value,
            "p_value_adjusted": self.primary.p_value_adjusted,
            "threshold": self.primary.threshold,
            "drifted": self.drifted,
            "reasons": list(self.reasons),
            "parameters": _plain(self.primary.parameters),
            "missing": self.missing.to_dict(),
            "reference_count": self.reference_count,
            "current_count": self.current_count,
            "unseen_categories": list(self.unseen_categories),
            "unseen_share": self.unseen_share,
            "tests": [t.to_dict() for t in self.tests],
        }


@dataclass(frozen=True)
class DriftReport:
    """Drift of one current dataset against a reference.

    ``dataset_drift`` is True when ``share_drifted`` (drifted features / features,
    prediction columns excluded) reaches ``settings.dataset_drift_share``.
    """

    features: tuple[FeatureDrift, ...]
    predictions: tuple[FeatureDrift, ...]
    share_drifted: float
    dataset_drift: bool
    dataset_drift_share: float
    reference_rows: int
    current_rows: int
    settings: Mapping[str, Any]
    mode: Literal["exact", "streaming"] = "exact"
    ks_error_bound: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", _frozen_mapping(self.settings))

    @property
    def drifted_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.drifted)

    @property
    def prediction_drift(self) -> bool | None:
        """None when no prediction column was checked."""
        if not self.predictions:
            return None
        return any(p.drifted for p in self.predictions)

    @property
    def columns(self) -> tuple[FeatureDrift, ...]:
        return self.features + self.predictions

    def feature(self, name: str) -> FeatureDrift:
        for result in self.columns:
            if result.name == name:
                return result
        raise KeyError(
            f"no drift result for {name!r}; columns are {[c.name for c in self.columns]}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The drift_report.json document (schema: drift_report.schema.json beside this module)."""
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "dataset_drift": self.dataset_drift,
            "share_drifted": self.share_drifted,
            "dataset_drift_share": self.dataset_drift_share,
            "number_of_features": len(self.features),
            "number_of_drifted_features": len(self.drifted_features),
            "drifted_features": list(self.drifted_features),
            "prediction_drift": self.prediction_drift,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "mode": self.mode,
            "ks_error_bound": self.ks_error_bound,
            "settings": _plain(self.settings),
            "features": [f.to_dict() for f in self.features],
            "predictions": [p.to_dict() for p in self.predictions],
        }


REPORT_SCHEMA_VERSION = "1.0"


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
