"""Population Stability Index on reference quantile bins (numeric) or categories (categorical).

PSI = sum((cur_i - ref_i) * ln(cur_i / ref_i)) over bin proportions. The common
reading (< 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant shift) assumes
about ten equal-mass reference bins, which is the default here. Every bin gets
``PSEUDO_COUNT`` added on both sides so an empty bin gives a finite value; the
bins, their edges and the smoothing are recorded in the result.
"""

from __future__ import annotations

import numpy as np

from mlcore.drift._common import NumericInput, numeric_pair, untestable
from mlcore.drift.pairs import PSEUDO_COUNT, BinnablePair, CategoricalPair
from mlcore.drift.results import TestResult
from mlcore.settings import DriftSettings

METHOD = "psi"
BANDS = {"stable": "< 0.1", "moderate": "0.1 to 0.2", "significant": ">= 0.2"}


def psi_drift(
    reference: NumericInput, current: NumericInput, *, threshold: float = 0.2, bins: int = 10
) -> TestResult:
    """PSI of numeric ``current`` against ``reference`` on the reference's quantile bins.

    Examples
    --------
    >>> import numpy as np
    >>> values = np.arange(1000.0)
    >>> psi_drift(values, values).statistic
    0.0
    """
    return psi_test_pair(numeric_pair(reference, current), threshold=threshold, bins=bins)


def psi_test(pair: BinnablePair, settings: DriftSettings) -> TestResult:
    return psi_test_pair(pair, threshold=settings.psi_threshold, bins=settings.psi_bins)


def psi_test_pair(pair: BinnablePair, *, threshold: float, bins: int) -> TestResult:
    if not pair.testable:
        return untestable(METHOD, threshold, pair)
    counts = pair.binned(bins)
    ref, cur = counts.proportions(pseudo_count=PSEUDO_COUNT)
    statistic = float(np.sum((cur - ref) * np.log(cur / ref)))
    return TestResult(
        method=METHOD,
        statistic=statistic,
        p_value=None,
        threshold=threshold,
        drifted=statistic >= threshold,
        parameters={
            **binning_parameters(pair, bins),
            "log_base": "e",
            "band": psi_band(statistic),
            "bands": BANDS,
            "reference_counts": tuple(int(c) for c in counts.reference),
            "current_counts": tuple(int(c) for c in counts.current),
        },
    )


def psi_band(value: float) -> str:
    if value < 0.1:
        return "stable"
    return "moderate" if value < 0.2 else "significant"


def binning_parameters(pair: BinnablePair, bins: int) -> dict[str, object]:
    """How the bins were made, recorded beside every binned statistic."""
    counts = pair.binned(bins)
    smoothing = {"method": "additive", "pseudo_count_per_bin": PSEUDO_COUNT, "sides": "both"}
    if isinstance(pair, CategoricalPair):
        return {"bins": "categories", "labels": counts.labels, "smoothing": smoothing}
    return {
        "bins": "reference_quantiles",
        "requested_bins": bins,
        "bin_count": len(counts.labels),
        "edges": counts.edges,
        "edge_rule": "right-closed (lo, hi]; outer bins open to -inf and +inf",
        "smoothing": smoothing,
    }
