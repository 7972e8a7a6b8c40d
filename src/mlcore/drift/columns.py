"""One column, any engine: run its registered tests and checks and grade them as one column.

The engines (``detect`` for exact summaries, ``streaming`` for sketches) build
a pair of the reference and current side and call :func:`compare_column`; the
registry gives each check's implementation for that engine. The column's
checks share its significance level: each tests at ``p_value_threshold``
divided by their number, so a column of unchanged data is flagged with a
probability of at most ``p_value_threshold`` whatever its number of checks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mlcore.drift.pairs import CategoricalComparison
from mlcore.drift.profiles import ColumnProfile
from mlcore.drift.registry import checks_for, primary_method, tests_to_run
from mlcore.drift.results import DataTypeCheck, FeatureDrift, Role, TestResult
from mlcore.drift.summaries import Kind
from mlcore.settings import DriftSettings

_VALUE_CHECKS = ("out_of_range", "unseen_values")


def compare_column(
    pair: Any,
    *,
    name: str,
    role: Role,
    kind: Kind,
    engine: str,
    settings: DriftSettings,
    reference_profile: ColumnProfile,
    current_profile: ColumnProfile,
) -> FeatureDrift:
    """Every registered test and check of the column's kind on ``pair``, graded together."""
    primary = primary_method(kind, settings)
    tests = [
        t.implementation(engine)(pair, settings) for t in tests_to_run(kind, settings).values()
    ]
    checks = [c.implementation(engine)(pair, settings) for c in checks_for(kind)]
    alpha = settings.p_value_threshold / (1 + len(checks))
    tests = [t.regraded(alpha=alpha) for t in tests]
    checks = [c.regraded(alpha=alpha) for c in checks]

    too_few = _too_few(pair.reference.n_valid, pair.current.n_valid, settings.min_window)
    if too_few is not None:
        tests = [t.regraded(insufficient=too_few) for t in tests]
        checks = [
            c.regraded(insufficient=too_few) if c.method in _VALUE_CHECKS else c for c in checks
        ]
    too_few_rows = _too_few(pair.reference.n_total, pair.current.n_total, settings.min_window)
    if too_few_rows is not None:
        checks = [c.regraded(insufficient=too_few_rows) for c in checks]

    categorical = isinstance(pair, CategoricalComparison)
    return FeatureDrift(
        name=name,
        role=role,
        kind=kind,
        primary=next(t for t in tests if t.method == primary),
        tests=tuple(tests),
        checks=tuple(checks),
        reference_count=pair.reference.n_total,
        current_count=pair.current.n_total,
        reference_profile=reference_profile,
        current_profile=current_profile,
        data_type=data_type_check(pair, kind, reference_profile),
        unseen_categories=pair.unseen_categories if categorical else (),
        unseen_share=pair.unseen_share if categorical else 0.0,
    )


def with_primary(column: FeatureDrift, primary: TestResult) -> FeatureDrift:
    """``column`` with its deciding test replaced (after a correction across columns)."""
    tests = tuple(primary if t.method == primary.method else t for t in column.tests)
    return dataclasses.replace(column, primary=primary, tests=tests)


def data_type_check(pair: Any, kind: Kind, reference_profile: ColumnProfile) -> DataTypeCheck:
    """Values of the baseline's inferred type: numbers for a numeric column, whole numbers for an
    Integral one; categorical columns take any value as text."""
    if kind == "categorical":
        return DataTypeCheck(
            expected="String", conforming=pair.current.n_valid, total=pair.current.n_valid
        )
    current = pair.current
    examined = current.n_valid + current.n_not_numeric
    wrong = current.n_not_numeric
    expected = reference_profile.inferred_type
    if expected == "Integral":
        wrong += current.n_fractional
    return DataTypeCheck(
        expected=expected,
        conforming=examined - wrong,
        total=examined,
        examples=current.not_numeric_examples,
    )


def _too_few(reference: int, current: int, minimum: int) -> str | None:
    short = [side for side, n in (("reference", reference), ("current", current)) if n < minimum]
    if not short:
        return None
    return (
        f"fewer than the minimum window of {minimum} values in the {' and '.join(short)} data "
        f"(reference {reference}, current {current}); drift.min_window sets it"
    )
