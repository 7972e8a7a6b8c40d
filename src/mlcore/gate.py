"""The quality gate: absolute thresholds, then challenger against champion on the same rows.

Thresholds (``gate.min_metrics``, ``gate.max_metrics``) apply to the challenger's point
values. The champion comparison is paired: both models are scored on the same evaluation
rows and resampled alike (see :mod:`mlcore.uncertainty`), so each bootstrap resample gives
one value of the challenger's shortfall on the primary metric (how much worse it is than
the champion there; negative when it is better). The challenger is refused only when the
data show it is worse by more than ``gate.champion_tolerance``: when the one-sided lower
confidence bound of the shortfall, at ``gate.champion_confidence``, is above the tolerance.
A point shortfall that the resamples cannot tell from noise is not a refusal; it is stated
in the reasons with its bound. When too few resamples define the metric to bound the
shortfall (a handful of rows of one class, say), the gate fails and says so rather than
deciding on the point values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlcore.errors import ModelError
from mlcore.evaluate import LOWER_IS_BETTER, MetricReport
from mlcore.settings import GateSettings
from mlcore.uncertainty import MIN_DEFINED_SHARE

COMPARISON_METHOD = "paired bootstrap of the metric difference on the same rows"


@dataclass(frozen=True)
class ChampionComparison:
    """The challenger against the champion on one metric, both scored on the same rows.

    ``shortfall`` is how much worse the challenger is (positive: worse, whichever way the
    metric runs); ``lower_bound`` the one-sided lower confidence bound of the shortfall at
    ``confidence``; ``standard_error`` the bootstrap standard error of the difference.
    """

    metric: str
    challenger: float
    champion: float
    shortfall: float
    lower_bound: float
    standard_error: float
    confidence: float
    tolerance: float
    resamples: int
    defined_resamples: int
    method: str = COMPARISON_METHOD

    @property
    def decidable(self) -> bool:
        return not math.isnan(self.lower_bound)

    @property
    def clearly_worse(self) -> bool:
        """Worse than the champion by more than the tolerance, at the stated confidence."""
        return self.decidable and self.lower_bound > self.tolerance

    def reason(self) -> str:
        """One sentence: the numbers and the rule that decided."""
        metric, new, old = self.metric, self.challenger, self.champion
        if not self.decidable:
            return (
                f"cannot compare {metric} with the champion: it is defined on only "
                f"{self.defined_resamples} of {self.resamples} paired resamples (challenger "
                f"{new:.4f}, champion {old:.4f}); evaluate on more rows"
            )
        bound = (
            f"at {self.confidence:.0%} confidence the shortfall is at least {self.lower_bound:.4f} "
            f"({self.method}, {self.resamples} resamples)"
        )
        if self.clearly_worse:
            return (
                f"{metric} {new:.4f} is worse than the champion's {old:.4f} by "
                f"{self.shortfall:.4f}: {bound}, above the tolerance {self.tolerance}"
            )
        if self.shortfall > 0:
            return (
                f"{metric} {new:.4f} vs champion {old:.4f}: a shortfall of {self.shortfall:.4f} "
                f"within noise; {bound}, not above the tolerance {self.tolerance}"
            )
        return f"{metric} {new:.4f} is at least as good as the champion's {old:.4f}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["clearly_worse"] = self.clearly_worse
        return data


def compare_with_champion(
    challenger: MetricReport, champion: MetricReport, settings: GateSettings
) -> ChampionComparison:
    """The paired comparison on ``settings.primary_metric`` (see the module docstring).

    Raises
    ------
    ModelError
        When the two reports were not scored on the same rows with the same resamples,
        so no pairing exists.
    """
    pairing = ("rows", "seed", "resamples")
    mismatched = [
        f"{name} {getattr(challenger, name)} vs {getattr(champion, name)}"
        for name in pairing
        if getattr(challenger, name) != getattr(champion, name)
    ]
    if mismatched:
        raise ModelError(
            "the champion and challenger were not scored on the same rows with the same "
            f"resamples ({', '.join(mismatched)}): score both on one evaluation set with one seed"
        )
    metric = settings.primary_metric
    new = challenger.metrics.get(metric, math.nan)
    old = champion.metrics.get(metric, math.nan)
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    shortfall = sign * (new - old)
    replicates = sign * (
        challenger.replicates.get(metric, np.array([]))
        - champion.replicates.get(metric, np.array([]))
    )
    defined = replicates[np.isfinite(replicates)]
    enough = not math.isnan(shortfall) and len(defined) >= MIN_DEFINED_SHARE * challenger.resamples
    confidence = settings.champion_confidence
    return ChampionComparison(
        metric=metric,
        challenger=new,
        champion=old,
        shortfall=shortfall,
        lower_bound=float(np.quantile(defined, 1 - confidence)) if enough else math.nan,
        standard_error=float(np.std(defined, ddof=1)) if enough else math.nan,
        confidence=confidence,
        tolerance=settings.champion_tolerance,
        resamples=challenger.resamples,
        defined_resamples=len(defined),
    )


@dataclass(frozen=True)
class GateDecision:
    """Whether a challenger may be registered, and every reason behind the decision."""

    passed: bool
    reasons: tuple[str, ...]
    primary_metric: str
    challenger: dict[str, float] = field(default_factory=dict)
    champion: dict[str, float] | None = None
    comparison: ChampionComparison | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "primary_metric": self.primary_metric,
            "challenger": dict(self.challenger),
            "champion": None if self.champion is None else dict(self.champion),
            "champion_comparison": None if self.comparison is None else self.comparison.to_dict(),
        }


def evaluate_gate(
    challenger: MetricReport,
    champion: MetricReport | None,
    settings: GateSettings,
) -> GateDecision:
    """Decide whether ``challenger`` passes.

    It fails when any floor in ``settings.min_metrics`` is not reached, any ceiling in
    ``settings.max_metrics`` is exceeded, a gated metric is missing or NaN, or (when a
    champion exists) the paired comparison shows the challenger clearly worse on the
    primary metric, or cannot be made (see the module docstring). Both reports must come
    from the same rows and seed; :func:`compare_with_champion` checks it.

    Examples
    --------
    >>> from mlcore.evaluate import score_predictions
    >>> from mlcore.problem import Problem
    >>> from mlcore.settings import GateSettings
    >>> report = score_predictions([1.0, 2.0, 3.0], [1.1, 2.1, 2.8],
    ...                            problem=Problem(task="regression"))
    >>> evaluate_gate(report, None, GateSettings(primary_metric="rmse", min_metrics={},
    ...                                         max_metrics={"rmse": 0.1})).passed
    False
    """
    values = challenger.metrics
    reasons: list[str] = []
    failed = False
    for name, floor in sorted(settings.min_metrics.items()):
        value = values.get(name)
        if value is None or math.isnan(value):
            failed = True
            reasons.append(f"{name} is missing or NaN; the gate requires {name} >= {floor}")
        elif value < floor:
            failed = True
            reasons.append(f"{name} {value:.4f} is below the minimum {floor}")
        else:
            reasons.append(f"{name} {value:.4f} meets the minimum {floor}")
    for name, ceiling in sorted(settings.max_metrics.items()):
        value = values.get(name)
        if value is None or math.isnan(value):
            failed = True
            reasons.append(f"{name} is missing or NaN; the gate requires {name} <= {ceiling}")
        elif value > ceiling:
            failed = True
            reasons.append(f"{name} {value:.4f} is above the maximum {ceiling}")
        else:
            reasons.append(f"{name} {value:.4f} is within the maximum {ceiling}")

    metric = settings.primary_metric
    comparison = None
    if champion is None:
        reasons.append("no champion: the challenger is judged on thresholds alone")
    else:
        comparison = compare_with_champion(challenger, champion, settings)
        if math.isnan(comparison.challenger) or math.isnan(comparison.champion):
            failed = True
            reasons.append(
                f"cannot compare {metric}: challenger {comparison.challenger}, "
                f"champion {comparison.champion}"
            )
        else:
            failed = failed or comparison.clearly_worse or not comparison.decidable
            reasons.append(comparison.reason())
    return GateDecision(
        passed=not failed,
        reasons=tuple(reasons),
        primary_metric=metric,
        challenger=dict(values),
        champion=None if champion is None else dict(champion.metrics),
        comparison=comparison,
    )
