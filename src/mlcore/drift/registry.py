"""Which checks exist, for which column kind, on which engine. A new check is one module
(defining ``TEST`` with an implementation per engine) and one line in ``TESTS`` or ``CHECKS``.

Engines: ``exact`` reads full summaries (sorted values, category counts);
``streaming`` reads mergeable sketches on the reference grid (``sketches``).
A further engine (Spark, issue 14) adds its key to the ``implementations`` of
the checks it supports, module by module; the engines look implementations up
here and say which check lacks one.
"""

from __future__ import annotations

from mlcore.drift import chi2, divergence, ks, missing, out_of_range, psi, unseen, wasserstein
from mlcore.drift._common import DriftTest
from mlcore.drift.summaries import Kind
from mlcore.settings import DriftSettings

# Distribution tests: the configured one decides, every other one is reported beside it.
TESTS: tuple[DriftTest, ...] = (
    ks.TEST,
    chi2.TEST,
    psi.TEST,
    wasserstein.TEST,
    divergence.JENSENSHANNON_TEST,
    divergence.KL_TEST,
)
# Data-quality checks: each also grades the column.
CHECKS: tuple[DriftTest, ...] = (missing.TEST, out_of_range.TEST, unseen.TEST)


def tests_for(kind: Kind) -> dict[str, DriftTest]:
    return {test.name: test for test in TESTS if kind in test.kinds}


def checks_for(kind: Kind) -> tuple[DriftTest, ...]:
    return tuple(check for check in CHECKS if kind in check.kinds)


def tests_to_run(kind: Kind, settings: DriftSettings) -> dict[str, DriftTest]:
    """Every test of the kind except the on-demand ones, which run only when configured."""
    primary = primary_method(kind, settings)
    return {
        name: test
        for name, test in tests_for(kind).items()
        if not test.on_demand or name == primary
    }


def primary_method(kind: Kind, settings: DriftSettings) -> str:
    """The configured test that decides whether a column of this kind drifts."""
    method = settings.numeric_method if kind == "numeric" else settings.categorical_method
    available = tests_for(kind)
    if method not in available:
        raise ValueError(f"no {kind} drift test {method!r}; choose one of {sorted(available)}")
    return method
