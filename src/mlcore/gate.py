"""The quality gate: absolute thresholds, then challenger against champion."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mlcore.evaluate import LOWER_IS_BETTER
from mlcore.settings import GateSettings


@dataclass(frozen=True)
class GateDecision:
    """Whether a challenger may be registered, and every reason behind the decision."""

    passed: bool
    reasons: tuple[str, ...]
    primary_metric: str
    challenger: dict[str, float] = field(default_factory=dict)
    champion: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        return data


def evaluate_gate(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    settings: GateSettings,
) -> GateDecision:
    """Decide whether ``challenger`` passes.

    It fails when any floor in ``settings.min_metrics`` is not reached, any ceiling
    in ``settings.max_metrics`` is exceeded, a gated metric is missing or NaN, or
    (when a champion exists) its primary metric is worse than the champion's by more
    than ``settings.champion_tolerance``. Both models must be scored on the same
    data for the comparison to mean anything; the caller guarantees that.

    Examples
    --------
    >>> from mlcore.settings import GateSettings
    >>> evaluate_gate({"auc": 0.8}, {"auc": 0.9}, GateSettings(min_metrics={"auc": 0.7})).passed
    False
    """
    reasons: list[str] = []
    failed = False
    for name, floor in sorted(settings.min_metrics.items()):
        value = challenger.get(name)
        if value is None or math.isnan(value):
            failed = True
            reasons.append(f"{name} is missing or NaN; the gate requires {name} >= {floor}")
        elif value < floor:
            failed = True
            reasons.append(f"{name} {value:.4f} is below the minimum {floor}")
        else:
            reasons.append(f"{name} {value:.4f} meets the minimum {floor}")
    for name, ceiling in sorted(settings.max_metrics.items()):
        value = challenger.get(name)
        if value is None or math.isnan(value):
            failed = True
            reasons.append(f"{name} is missing or NaN; the gate requires {name} <= {ceiling}")
        elif value > ceiling:
            failed = True
            reasons.append(f"{name} {value:.4f} is above the maximum {ceiling}")
        else:
            reasons.append(f"{name} {value:.4f} is within the maximum {ceiling}")

    metric = settings.primary_metric
    if champion is None:
        reasons.append("no champion: the challenger is judged on thresholds alone")
    else:
        new, old = challenger.get(metric, math.nan), champion.get(metric, math.nan)
        if math.isnan(new) or math.isnan(old):
            failed = True
            reasons.append(f"cannot compare {metric}: challenger {new}, champion {old}")
        else:
            # Positive when the challenger is worse, whichever direction the metric runs.
            shortfall = (new - old) if metric in LOWER_IS_BETTER else (old - new)
            if shortfall > settings.champion_tolerance:
                failed = True
                reasons.append(
                    f"{metric} {new:.4f} is worse than the champion's {old:.4f} "
                    f"by {shortfall:.4f} (tolerance {settings.champion_tolerance})"
                )
            else:
                reasons.append(
                    f"{metric} {new:.4f} vs champion {old:.4f}: within tolerance {settings.champion_tolerance}"
                    if shortfall > 0
                    else f"{metric} {new:.4f} is at least as good as the champion's {old:.4f}"
                )
    return GateDecision(
        passed=not failed,
        reasons=tuple(reasons),
        primary_metric=metric,
        challenger=dict(challenger),
        champion=dict(champion) if champion is not None else None,
    )
