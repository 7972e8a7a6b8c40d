"""Multiple-testing correction across the columns of one report.

With 60 columns tested at 5%, about three drift by chance alone. Bonferroni
controls the chance of any false alarm; Benjamini-Hochberg ("fdr_bh") controls
the expected share of false alarms among the flagged columns and keeps more
power. Only tests with a p-value (KS, chi-squared) are adjusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import stats

Correction = Literal["none", "bonferroni", "fdr_bh"]
CORRECTIONS: tuple[Correction, ...] = ("none", "bonferroni", "fdr_bh")


def adjust_p_values(p_values: Sequence[float], method: Correction) -> list[float]:
    """Adjusted p-values, in the input order.

    Examples
    --------
    >>> adjust_p_values([0.01, 0.04], "bonferroni")
    [0.02, 0.08]
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; choose one of {CORRECTIONS}")
    values = np.asarray(p_values, dtype=np.float64)
    if values.size == 0 or method == "none":
        return [float(p) for p in values]
    if method == "bonferroni":
        return [float(p) for p in np.minimum(values * values.size, 1.0)]
    return [float(p) for p in stats.false_discovery_control(values, method="bh")]
