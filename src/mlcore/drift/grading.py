"""Graded verdicts: none, moderate or major, or insufficient data. One rule for every check.

A check (a drift method on a column, the missing-value rate, out-of-range
values, unseen categories, the domain classifier) measures an *effect size*
and a *p-value*. Its grade is

* ``insufficient_data`` when either side has fewer than ``min_window`` values
  (or the effect could not be computed);
* ``none`` unless the p-value is below the check's significance level: a
  change that chance explains is never drift, whatever its size, which holds
  the false-alarm rate at or below that level at every sample size;
* otherwise ``major`` when the effect reaches its ``major`` band, ``moderate``
  when it reaches ``moderate``, else ``none``: a change too small to matter is
  never drift, however many rows show it.

A fixed change at least as large as its band is therefore flagged with a
probability that only grows with the sample size (the significance test's
power grows, the effect's estimate converges), and a change below the band is
not drift at any size. Alerts act on moderate; the dataset verdict and the
retrain trigger act on major.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Literal

from mlcore.settings import Bands

Grade = Literal["none", "moderate", "major", "insufficient_data"]
GRADES: tuple[Grade, ...] = ("none", "moderate", "major", "insufficient_data")
# The one grade-to-number map: the order of severity among the grades that are verdicts, and
# the value published for a grade (CloudWatch's DriftGrade, Azure ML's drift_grade metric).
# insufficient_data has no number: it is no verdict, so an alarm on the grade never sees it.
GRADE_LEVELS: Mapping[Grade, int] = MappingProxyType({"none": 0, "moderate": 1, "major": 2})


def grade_effect(
    effect: float | None, p_value: float | None, *, bands: Bands, alpha: float
) -> Grade:
    """The grade of one measured effect (see the module docstring)."""
    if effect is None or p_value is None:
        return "insufficient_data"
    if not p_value < alpha:
        return "none"
    if effect >= bands.major:
        return "major"
    return "moderate" if effect >= bands.moderate else "none"


def worst(grades: Iterable[Grade], *, decisive: Grade | None = None) -> Grade:
    """Combine the grades of one column's checks.

    The most severe verdict wins. When no check reached moderate, the column is
    ``insufficient_data`` if its ``decisive`` check (the distribution test) was,
    and ``none`` otherwise: a column is never called stable on checks that could
    not run.
    """
    verdicts = [g for g in grades if g != "insufficient_data"]
    top: Grade = max(verdicts, key=GRADE_LEVELS.__getitem__, default="none")
    if top != "none":
        return top
    if decisive == "insufficient_data" or not verdicts:
        return "insufficient_data"
    return "none"


def at_least(grade: Grade, floor: Literal["moderate", "major"]) -> bool:
    return grade in GRADE_LEVELS and GRADE_LEVELS[grade] >= GRADE_LEVELS[floor]
