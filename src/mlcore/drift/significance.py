"""The significance test behind every distribution grade, computed once per column pair.

Effect sizes (PSI, Wasserstein, JS, ...) say how large a change is; none of
them says whether chance explains it, and at small windows chance produces
large values (PSI of two 100-row samples of one distribution is often above
0.2). Every distribution method is therefore graded only when a test of "same
distribution" rejects: the two-sample Kolmogorov-Smirnov test for numeric
columns and the chi-squared test of homogeneity for categorical ones. Both
are valid at every sample size (exact or permutation p-values where the
asymptotic ones are not to be trusted), so false alarms stay at or below the
significance level whatever the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlcore.drift.chi2 import homogeneity_test
from mlcore.drift.ks import (
    ks_exact_statistic_and_p,
    ks_measurement,
    ks_streaming_statistic_and_p,
)
from mlcore.drift.pairs import CategoricalComparison, NumericPair
from mlcore.drift.sketches import StreamingNumericPair


@dataclass(frozen=True)
class Significance:
    test: str
    p_value: float
    parameters: dict[str, Any]


def significance_of(pair: Any) -> Significance:
    """KS for numeric pairs (exact or streaming), chi-squared homogeneity for categorical."""
    cached: Significance | None = pair.__dict__.get("_significance")
    if cached is not None:
        return cached
    if isinstance(pair, CategoricalComparison):
        result = homogeneity_test(pair)
        found = Significance(
            "chi2",
            result.p_value,
            {"significance_method": result.method, "degrees_of_freedom": result.dof},
        )
    elif isinstance(pair, NumericPair):
        ks = ks_measurement(pair, ks_exact_statistic_and_p)
        found = Significance("ks", ks.p_value, {"significance_method": ks.method})
    elif isinstance(pair, StreamingNumericPair):
        ks = ks_measurement(pair, ks_streaming_statistic_and_p)
        found = Significance("ks", ks.p_value, {"significance_method": ks.method})
    else:
        raise TypeError(f"no significance test for {type(pair).__name__}")
    pair.__dict__["_significance"] = found
    return found
