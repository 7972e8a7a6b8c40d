"""Population Stability Index on reference quantile bins (numeric) or categories (categorical).

PSI = sum((cur_i - ref_i) * ln(cur_i / ref_i)) over bin proportions. The
seed's reading (below 0.1 stable, 0.1 to 0.2 moderate, 0.2 or more major)
gives the bands, and assumes about ten equal-mass reference bins, the default
here. Every bin gets ``PSEUDO_COUNT`` added on both sides so an empty bin gives
a finite value; the bins, their edges and the smoothing are recorded in the
result. Categorical bins are the reference's categories with enough pooled
values (``pairs.MIN_EXPECTED_COUNT``), plus one "other" bin for rare and new
values (``pairs``), so a long-tailed column has a PSI too. The graded
statistic is PSI net of the PSI chance gives at these sizes (``chance``:
plug-in minus its mean over same-distribution tables), recorded beside the
plug-in (``plug_in``) as other tools compute it. The significance test is the
column's (``significance``): KS for numeric columns, chi-squared homogeneity
for categorical ones.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mlcore.drift._common import DriftTest, NumericInput, numeric_pair, untestable
from mlcore.drift.chance import net_of_chance, null_mean
from mlcore.drift.pairs import (
    MIN_EXPECTED_COUNT,
    PSEUDO_COUNT,
    BinnablePair,
    CategoricalComparison,
)
from mlcore.drift.results import TestResult
from mlcore.drift.significance import significance_of
from mlcore.drift.summaries import FloatArray
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
    import numpy.typing as npt
        >>> values = np.arange(1000.0)
        >>> psi_drift(values, values).parameters["plug_in"]
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
    plug_in = float(psi_of(counts.reference, counts.current)[()])
    chance = null_mean(pair, bins, psi_of)
    significance = significance_of(pair)
    return TestResult.graded(
        METHOD,
        statistic=net_of_chance(plug_in, chance, form="linear"),
        p_value=significance.p_value,
        bands=bands,
        alpha=alpha,
        significance_test=significance.test,
        parameters={
            **binning_parameters(pair, bins),
            **significance.parameters,
            "effect_size": "PSI net of chance: plug_in - chance",
            "plug_in": plug_in,
            "chance": chance,
            "log_base": "e",
            "reference_counts": tuple(int(c) for c in counts.reference),
            "current_counts": tuple(int(c) for c in counts.current),
        },
    )


def psi_of(reference: npt.ArrayLike, current: npt.ArrayLike) -> FloatArray:
    """PSI of count tables (last axis: bins), smoothed as recorded; vectorised over tables."""
    ref = np.asarray(reference, dtype=np.float64) + PSEUDO_COUNT
    cur = np.asarray(current, dtype=np.float64) + PSEUDO_COUNT
    ref = ref / ref.sum(axis=-1, keepdims=True)
    cur = cur / cur.sum(axis=-1, keepdims=True)
    return np.asarray(np.sum((cur - ref) * np.log(cur / ref), axis=-1), dtype=np.float64)


def binning_parameters(pair: BinnablePair, bins: int) -> dict[str, object]:
    """How the bins were made, recorded beside every binned statistic."""
    counts = pair.binned(bins)
    smoothing = {"method": "additive", "pseudo_count_per_bin": PSEUDO_COUNT, "sides": "both"}
    if isinstance(pair, CategoricalComparison):
        return {
            "bins": "categories",
            "labels": counts.labels,
            "category_rule": (
                "reference categories whose pooled count gives at least "
                f"{MIN_EXPECTED_COUNT} expected values in the smaller sample, then one bin for "
                "every other value (rare, or new)"
            ),
            "smoothing": smoothing,
        }
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
