"""Population Stability Index on reference quantile bins (numeric) or categories (categorical).

PSI = sum((cur_i - ref_i) * ln(cur_i / ref_i)) over bin proportions. The
seed's reading (below 0.1 stable, 0.1 to 0.2 moderate, 0.2 or more major)
gives the bands, and assumes about ten equal-mass reference bins, the default
here. Every bin gets ``PSEUDO_COUNT`` added on both sides so an empty bin gives
a finite value; the bins, their edges and the smoothing are recorded in the
result. The significance test is the column's (``significance``): KS for
numeric columns, chi-squared homogeneity for categorical ones.
"""

from __future__ import annotations

import numpy as np

from mlcore.drift._common import DriftTest, NumericInput, numeric_pair, untestable
from mlcore.drift.pairs import PSEUDO_COUNT, BinnablePair, CategoricalPair
from mlcore.drift.results import TestResult
from mlcore.drift.significance import significance_of
from mlcore.settings import Bands, DriftSettings

METHOD = "psi"
DEFAULT_BANDS = Bands(moderate=0.1, major=0.2)


def psi_drift(
    reference: NumericInput,
    current: NumericInput,
    *,
    alpha: float = 0.05,
    bands: Bands = DEFAULT_BANDS,
    bins: int = 10,
) -> TestResult:
    """PSI of numeric ``current`` against ``reference`` on the reference's quantile bins.

    Examples
    --------
    >>> import numpy as np
    >>> values = np.arange(1000.0)
    >>> psi_drift(values, values).statistic
    0.0
    """
    return psi_graded(numeric_pair(reference, current), alpha=alpha, bands=bands, bins=bins)


def psi_test(pair: BinnablePair, settings: DriftSettings) -> TestResult:
    return psi_graded(
        pair, alpha=settings.p_value_threshold, bands=settings.bands.psi, bins=settings.psi_bins
    )


def psi_graded(pair: BinnablePair, *, alpha: float, bands: Bands, bins: int) -> TestResult:
    if not pair.testable:
        return untestable(METHOD, bands, alpha, pair)
    counts = pair.binned(bins)
    ref, cur = counts.proportions(pseudo_count=PSEUDO_COUNT)
    statistic = float(np.sum((cur - ref) * np.log(cur / ref)))
    significance = significance_of(pair)
    return TestResult.graded(
        METHOD,
        statistic=statistic,
        p_value=significance.p_value,
        bands=bands,
        alpha=alpha,
        significance_test=significance.test,
        parameters={
            **binning_parameters(pair, bins),
            **significance.parameters,
            "log_base": "e",
            "reference_counts": tuple(int(c) for c in counts.reference),
            "current_counts": tuple(int(c) for c in counts.current),
        },
    )


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


TEST = DriftTest(
    name=METHOD,
    kinds=("numeric", "categorical"),
    implementations={"exact": psi_test, "streaming": psi_test},
)
