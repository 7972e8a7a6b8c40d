"""Which test functions exist for which column kind. A new test is one module and one line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mlcore.drift.chi2 import chi2_test
from mlcore.drift.divergence import jensenshannon_test, kl_test
from mlcore.drift.ks import ks_test
from mlcore.drift.psi import psi_test
from mlcore.drift.results import TestResult
from mlcore.drift.summaries import Kind
from mlcore.drift.wasserstein import wasserstein_test
from mlcore.settings import DriftSettings

TestFunction = Callable[[Any, DriftSettings], TestResult]

NUMERIC_TESTS: Mapping[str, TestFunction] = {
    "ks": ks_test,
    "psi": psi_test,
    "wasserstein": wasserstein_test,
    "jensenshannon": jensenshannon_test,
    "kl": kl_test,
}

CATEGORICAL_TESTS: Mapping[str, TestFunction] = {
    "chi2": chi2_test,
    "psi": psi_test,
    "jensenshannon": jensenshannon_test,
    "kl": kl_test,
}


# Tests that need a full merge of both samples (about 3x the cost of all the others together
# on a large column) run only when they are the configured method.
ON_DEMAND = frozenset({"wasserstein"})


def tests_for(kind: Kind) -> Mapping[str, TestFunction]:
    return NUMERIC_TESTS if kind == "numeric" else CATEGORICAL_TESTS


def tests_to_run(kind: Kind, settings: DriftSettings) -> dict[str, TestFunction]:
    """Every test of the kind except the on-demand ones, which run only when configured."""
    primary = primary_method(kind, settings)
    return {
        name: test
        for name, test in tests_for(kind).items()
        if name not in ON_DEMAND or name == primary
    }


def primary_method(kind: Kind, settings: DriftSettings) -> str:
    """The configured test that decides whether a column of this kind drifts."""
    method = settings.numeric_method if kind == "numeric" else settings.categorical_method
    available = tests_for(kind)
    if method not in available:
        raise ValueError(f"no {kind} drift test {method!r}; choose one of {sorted(available)}")
    return method
