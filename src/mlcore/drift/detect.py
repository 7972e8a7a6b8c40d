"""``detect_drift``: every configured test on every column, a verdict per column and for the data."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import pandas as pd

from mlcore.data import DatasetSpec
from mlcore.drift.baseline import (
    Baseline,
    column_plan,
    summarise_column,
    worker_count,
)
from mlcore.drift.correction import adjust_p_values
from mlcore.drift.ks import ks_drifted
from mlcore.drift.missing import missing_rate_check
from mlcore.drift.pairs import CategoricalPair, NumericPair
from mlcore.drift.profiles import profile
from mlcore.drift.registry import primary_method, tests_to_run
from mlcore.drift.results import DriftReport, FeatureDrift, Role, TestResult
from mlcore.drift.summaries import CategoricalSummary, ColumnSummary, Kind, NumericSummary
from mlcore.errors import DataError
from mlcore.settings import DriftSettings

logger = logging.getLogger(__name__)


def detect_drift(
    reference: pd.DataFrame | Baseline,
    current: pd.DataFrame,
    *,
    spec: DatasetSpec | None = None,
    settings: DriftSettings | None = None,
    prediction_columns: Sequence[str] | None = None,
    workers: int | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference`` (a frame, or a saved ``Baseline``).

    Parameters
    ----------
    reference : the training-time data, or its precomputed ``Baseline`` (faster:
        only the current side is summarised).
    current : the data to check; needs every feature column of the spec.
    spec : which columns are numeric and categorical features. Taken from the
        baseline when ``reference`` is one.
    settings : methods and thresholds; defaults to ``DriftSettings()``.
    prediction_columns : model outputs to check for prediction drift. With a
        baseline, defaults to the baseline's prediction columns that ``current``
        holds.
    workers : threads for the per-column work; defaults to the CPU count.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from mlcore.data import DatasetSpec
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(size=2000), "y": 0})
    >>> cur = pd.DataFrame({"x": rng.normal(1.0, size=2000), "y": 0})
    >>> report = detect_drift(ref, cur, spec=DatasetSpec(target="y", numeric=("x",)))
    >>> report.dataset_drift, report.drifted_features
    (True, ('x',))
    """
    settings = settings or DriftSettings()
    if not isinstance(current, pd.DataFrame):
        raise DataError(f"current data must be a pandas DataFrame, got {type(current).__name__}")
    if current.shape[0] == 0:
        raise DataError("the current data has no rows; there is nothing to check for drift")
    if isinstance(reference, Baseline):
        baseline = reference
        if spec is not None and spec.features != baseline.spec.features:
            raise DataError(
                f"the spec's features {list(spec.features)} differ from the baseline's "
                f"{list(baseline.spec.features)}; pass the baseline's spec or none"
            )
        if prediction_columns is None:
            prediction_columns = _available_predictions(baseline, current)
        spec, reference_rows = baseline.spec, baseline.rows

        def reference_side(name: str) -> tuple[ColumnSummary, Kind, Role]:
            column = baseline.column(name)
            return column.summary, column.kind, column.role

    elif isinstance(reference, pd.DataFrame):
        if spec is None:
            raise DataError("give spec= (the dataset spec) when the reference is a DataFrame")
        if reference.shape[0] == 0:
            raise DataError("the reference data has no rows; give reference data to compare with")
        reference_frame, reference_rows = reference, int(reference.shape[0])
        reference_plan = column_plan(
            reference_frame, spec, prediction_columns or (), side="reference"
        )

        def reference_side(name: str) -> tuple[ColumnSummary, Kind, Role]:
            # Summarised inside the column's own task, so at most one reference column per
            # thread is held as a sorted copy.
            kind, role = reference_plan[name]
            return summarise_column(reference_frame[name], kind, name=name), kind, role

    else:
        raise DataError(
            f"reference must be a DataFrame or a Baseline, got {type(reference).__name__}"
        )
    plan = column_plan(current, spec, prediction_columns or (), side="current")

    def check(name: str) -> FeatureDrift:
        reference_summary, kind, role = reference_side(name)  # the reference decides the kind
        summary = summarise_column(current[name], kind, name=name)
        return compare_column(reference_summary, summary, name=name, role=role, settings=settings)

    # One task per column does the whole job (summaries and every test) so threads share no
    # state; numpy's sorts and scans release the GIL, so columns really run in parallel.
    with ThreadPoolExecutor(max_workers=worker_count(workers, len(plan))) as pool:
        results = dict(zip(plan, pool.map(check, plan), strict=True))
    return assemble_report(
        reference_rows=reference_rows,
        current_rows=int(current.shape[0]),
        settings=settings,
        results=results,
    )


def assemble_report(
    *,
    reference_rows: int,
    current_rows: int,
    settings: DriftSettings,
    results: Mapping[str, FeatureDrift],
    mode: Literal["exact", "streaming"] = "exact",
    ks_error_bound: float | None = None,
) -> DriftReport:
    """Apply the multiple-testing correction to per-column results and give the dataset verdict."""
    corrected = _apply_correction(list(results.values()), settings)
    features = tuple(r for r in corrected if r.role == "feature")
    predictions = tuple(r for r in corrected if r.role == "prediction")
    drifted = sum(1 for f in features if f.drifted)
    share = drifted / len(features) if features else 0.0
    return DriftReport(
        features=features,
        predictions=predictions,
        share_drifted=share,
        dataset_drift=share >= settings.dataset_drift_share,
        dataset_drift_share=settings.dataset_drift_share,
        reference_rows=reference_rows,
        current_rows=current_rows,
        settings=settings.model_dump(),
        mode=mode,
        ks_error_bound=ks_error_bound,
    )


def compare_column(
    reference: ColumnSummary,
    current: ColumnSummary,
    *,
    name: str,
    role: Role,
    settings: DriftSettings,
) -> FeatureDrift:
    """Every registered test of the column's kind; the configured one decides."""
    pair: NumericPair | CategoricalPair
    kind: Kind
    if isinstance(reference, NumericSummary) and isinstance(current, NumericSummary):
        pair, kind = NumericPair(reference, current), "numeric"
    elif isinstance(reference, CategoricalSummary) and isinstance(current, CategoricalSummary):
        pair, kind = CategoricalPair(reference, current), "categorical"
    else:
        raise DataError(f"column {name!r} has a different type in the current data")
    primary = primary_method(kind, settings)
    tests = tuple(test(pair, settings) for test in tests_to_run(kind, settings).values())
    return FeatureDrift(
        name=name,
        role=role,
        kind=kind,
        primary=next(t for t in tests if t.method == primary),
        tests=tests,
        missing=missing_rate_check(reference, current, threshold=settings.missing_rate_threshold),
        reference_count=reference.n_total,
        current_count=current.n_total,
        reference_profile=profile(reference),
        current_profile=profile(current),
        unseen_categories=pair.unseen_categories if isinstance(pair, CategoricalPair) else (),
        unseen_share=pair.unseen_share if isinstance(pair, CategoricalPair) else 0.0,
    )


def _available_predictions(baseline: Baseline, current: pd.DataFrame) -> tuple[str, ...]:
    present = tuple(c for c in baseline.prediction_columns if c in current.columns)
    absent = [c for c in baseline.prediction_columns if c not in current.columns]
    if absent:
        logger.warning(
            "prediction column(s) %s are in the baseline but not in the current data: "
            "prediction drift is not checked for them",
            absent,
        )
    return present


def _apply_correction(results: list[FeatureDrift], settings: DriftSettings) -> list[FeatureDrift]:
    """Adjust the primary p-values across columns and re-decide those columns."""
    indexed = [(i, r.primary) for i, r in enumerate(results) if r.primary.p_value is not None]
    adjusted = adjust_p_values(
        [t.p_value for _, t in indexed if t.p_value is not None], settings.correction
    )
    corrected = list(results)
    for (index, test), p_adjusted in zip(indexed, adjusted, strict=True):
        primary = dataclasses.replace(
            test,
            p_value_adjusted=p_adjusted,
            drifted=_decide(test, p_adjusted),
            parameters={**test.parameters, "correction": settings.correction},
        )
        tests = tuple(primary if t.method == test.method else t for t in results[index].tests)
        corrected[index] = dataclasses.replace(results[index], primary=primary, tests=tests)
    return corrected


def _decide(test: TestResult, p_value: float) -> bool:
    if test.method == "ks" and test.statistic is not None:
        return ks_drifted(
            p_value,
            test.statistic,
            threshold=test.threshold,
            min_effect_size=float(test.parameters["min_effect_size"]),
        )
    return p_value < test.threshold
