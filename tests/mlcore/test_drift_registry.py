"""One registry for both engines: a check is one module with its exact and streaming versions
side by side, and the drift package has no import cycles (issue 11, finding 7)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcore.data import DatasetSpec
from mlcore.drift import build_baseline, detect_drift, registry
from mlcore.drift._common import DriftTest
from mlcore.drift.results import TestResult
from mlcore.drift.streaming import detect_drift_streaming
from mlcore.settings import Bands, DriftSettings

DRIFT = Path(__file__).resolve().parents[2] / "src" / "mlcore" / "drift"
QUICK = DriftSettings(domain_classifier={"enabled": False})
SPEC = DatasetSpec(target="y", numeric=("x",), categorical=("c",))


def test_every_check_has_an_exact_and_a_streaming_implementation() -> None:
    for check in (*registry.TESTS, *registry.CHECKS):
        assert set(check.implementations) >= {"exact", "streaming"}, check.name


def test_an_engine_a_check_lacks_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="'ks' has no 'spark' implementation; it has"):
        registry.tests_for("numeric")["ks"].implementation("spark")


def _mean_gap(pair: object, settings: DriftSettings) -> TestResult:
    """A toy check on what both engines' numeric pairs offer: the out-of-range counts."""
    below, above = pair.out_of_range  # type: ignore[attr-defined]
    return TestResult.graded(
        "mean_gap",
        statistic=float(below + above),
        p_value=0.0,
        bands=Bands(moderate=1e9, major=2e9),
        alpha=settings.p_value_threshold,
        significance_test="none",
        parameters={},
    )


def test_a_new_check_registered_once_reaches_both_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    new = DriftTest(
        name="mean_gap",
        kinds=("numeric",),
        implementations={"exact": _mean_gap, "streaming": _mean_gap},
    )
    monkeypatch.setattr(registry, "TESTS", (*registry.TESTS, new))
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(size=500), "c": "a", "y": 0})
    current = reference.assign(x=reference["x"] * 3)
    baseline = build_baseline(reference, SPEC, QUICK)
    exact = detect_drift(baseline, current, settings=QUICK).feature("x").test("mean_gap")
    streamed = detect_drift_streaming(baseline, [current], settings=QUICK)
    assert streamed.feature("x").test("mean_gap").statistic == exact.statistic > 0


def _imports(path: Path) -> set[str]:
    """Modules a file imports anywhere (lazy imports inside functions too), except type-only
    imports under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text())
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only |= {id(child) for child in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("mlcore.drift")
        ):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mlcore.drift")}
    modules = {f"mlcore.drift.{p.stem}" for p in DRIFT.glob("*.py")}
    return found & modules


def test_the_drift_modules_import_each_other_without_cycles() -> None:
    # Finding 7: drift/cli.py <-> streaming.py and baseline.py <-> outputs.py imported each other.
    graph = {
        f"mlcore.drift.{p.stem}": _imports(p) for p in DRIFT.glob("*.py") if p.stem != "__init__"
    }
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, " -> ".join([*visiting[visiting.index(module) :], module])
        visiting.append(module)
        for imported in graph.get(module, set()):
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in graph:
        visit(module)
    assert "mlcore.drift.cli" not in graph["mlcore.drift.streaming"]
    assert "mlcore.drift.outputs" not in graph["mlcore.drift.baseline"]
