"""``detect_drift``: the exact engine. Every check on every column, graded; then the data's grade."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from mlcore.data import DatasetSpec
from mlcore.drift.baseline import (
    Baseline,
    column_plan,
    feature_sample,
    summarise_column,
    worker_count,
)
from mlcore.drift.classifier import domain_classifier_drift
from mlcore.drift.columns import compare_column
from mlcore.drift.pairs import CategoricalPair, NumericPair
from mlcore.drift.profiles import profile
from mlcore.drift.results import DriftReport, FeatureDrift, ReferenceInfo, Role, TestResult
from mlcore.drift.summaries import CategoricalSummary, ColumnSummary, Kind, NumericSummary
from mlcore.drift.verdict import assemble_report
from mlcore.errors import DataError
from mlcore.settings import DriftSettings

logger = logging.getLogger(__name__)

ENGINE = "exact"


def detect_drift(
    reference: pd.DataFrame | Baseline,
    current: pd.DataFrame,
    *,
    spec: DatasetSpec | None = None,
    settings: DriftSettings | None = None,
    prediction_columns: Sequence[str] | None = None,
    workers: int | None = None,
    reference_info: ReferenceInfo | None = None,
    expected_columns: Sequence[str] = (),
) -> DriftReport:
    """Compare ``current`` with ``reference`` (a frame, or a saved ``Baseline``).

    Parameters
    ----------
    reference : the reference data, or its precomputed ``Baseline`` (faster: only
        the current side is summarised).
    current : the data to check; fewer rows than ``settings.min_window`` (none
        at all included) give an "insufficient_data" report. Feature columns it lacks are reported as
        missing (``missing_column_check``), columns the reference lacks as extra;
        neither stops the run.
    spec : which columns are numeric and categorical features. Taken from the
        baseline when ``reference`` is one. The target, when both sides hold it,
        is checked for label drift apart from the features.
    settings : methods, bands and windows; defaults to ``DriftSettings()``.
    prediction_columns : model outputs to check for prediction drift. With a
        baseline, defaults to the baseline's prediction columns that ``current``
        holds.
    workers : threads for the per-column work; defaults to the CPU count.
    reference_info : what the reference is (recorded in the report).
    expected_columns : current columns that are neither features nor extra (for
        example data capture's ``inference_id``).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from mlcore.data import DatasetSpec
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(size=2000), "y": 0})
    >>> cur = pd.DataFrame({"x": rng.normal(1.0, size=2000), "y": 0})
    >>> settings = DriftSettings(domain_classifier={"enabled": False})
    >>> report = detect_drift(ref, cur, spec=DatasetSpec(target="y", numeric=("x",)), settings=settings)
    >>> report.grade, report.drifted_features
    ('major', ('x',))
    """
    settings = settings or DriftSettings()
    if not isinstance(current, pd.DataFrame):
        raise DataError(f"current data must be a pandas DataFrame, got {type(current).__name__}")
    reference_side: Callable[[str], tuple[ColumnSummary, Kind, Role]]
    if isinstance(reference, Baseline):
        baseline = reference
        if spec is not None and spec.features != baseline.spec.features:
            raise DataError(
                f"the spec's features {list(spec.features)} differ from the baseline's "
                f"{list(baseline.spec.features)}; pass the baseline's spec or none"
            )
        spec, reference_rows = baseline.spec, baseline.rows
        if prediction_columns is None:
            prediction_columns = _available_predictions(baseline, current)
        checked = {
            c.name: (c.kind, c.role)
            for c in baseline.columns
            if c.role != "prediction" or c.name in prediction_columns
        }
        absent_predictions = set(prediction_columns) - set(checked)
        if absent_predictions:
            raise DataError(
                f"the baseline has no prediction column(s) {sorted(absent_predictions)}; it has "
                f"{list(baseline.prediction_columns)}"
            )
        known = {*baseline.reference_columns, *(c.name for c in baseline.columns)}
        reference_sample = baseline.sample

        def reference_side(name: str) -> tuple[ColumnSummary, Kind, Role]:
            column = baseline.column(name)
            return column.summary, column.kind, column.role

    elif isinstance(reference, pd.DataFrame):
        if spec is None:
            raise DataError("give spec= (the dataset spec) when the reference is a DataFrame")
        reference_frame, reference_rows = reference, int(reference.shape[0])
        checked = column_plan(reference_frame, spec, prediction_columns or (), side="reference")
        known = set(map(str, reference_frame.columns))
        reference_sample = None
        if settings.domain_classifier.enabled:
            reference_sample = feature_sample(
                reference_frame, spec, rows=settings.domain_classifier.max_rows
            )

        def reference_side(name: str) -> tuple[ColumnSummary, Kind, Role]:
            # Summarised inside the column's own task, so at most one reference column per
            # thread is held as a sorted copy.
            kind, role = checked[name]
            return summarise_column(reference_frame[name], kind, name=name), kind, role

    else:
        raise DataError(
            f"reference must be a DataFrame or a Baseline, got {type(reference).__name__}"
        )
    missing_columns = [c for c in spec.features if c not in current.columns]
    plan = [name for name in checked if name in current.columns]
    extra = _extra_columns(current, known | {spec.target, *spec.id_columns}, spec, expected_columns)

    def check(name: str) -> FeatureDrift:
        reference_summary, kind, role = reference_side(name)  # the reference decides the kind
        return compare_summaries(
            reference_summary,
            summarise_column(current[name], kind, name=name),
            name=name,
            role=role,
            settings=settings,
        )

    # One task per column does the whole job (summaries and every test) so threads share no
    # state; numpy's sorts and scans release the GIL, so columns really run in parallel.
    with ThreadPoolExecutor(max_workers=worker_count(workers, len(plan))) as pool:
        results = dict(zip(plan, pool.map(check, plan), strict=True))
    classifier = None
    if settings.domain_classifier.enabled:
        classifier = _domain_classifier(reference_sample, current, spec, settings)
    return assemble_report(
        reference_rows=reference_rows,
        current_rows=int(current.shape[0]),
        settings=settings,
        results=results,
        domain_classifier=classifier,
        missing_columns=missing_columns,
        extra_columns=extra,
        reference=reference_info,
    )


def compare_summaries(
    reference: ColumnSummary,
    current: ColumnSummary,
    *,
    name: str,
    role: Role,
    settings: DriftSettings,
) -> FeatureDrift:
    """Every registered test and check of the column's kind, on exact summaries."""
    pair: NumericPair | CategoricalPair
    kind: Kind
    if isinstance(reference, NumericSummary) and isinstance(current, NumericSummary):
        pair, kind = NumericPair(reference, current), "numeric"
    elif isinstance(reference, CategoricalSummary) and isinstance(current, CategoricalSummary):
        pair, kind = CategoricalPair(reference, current), "categorical"
    else:
        raise DataError(f"column {name!r} is summarised as different kinds on the two sides")
    return compare_column(
        pair,
        name=name,
        role=role,
        kind=kind,
        engine=ENGINE,
        settings=settings,
        reference_profile=profile(reference),
        current_profile=profile(current),
    )


def _domain_classifier(
    reference_sample: pd.DataFrame | None,
    current: pd.DataFrame,
    spec: DatasetSpec,
    settings: DriftSettings,
) -> TestResult:
    options = settings.domain_classifier
    if reference_sample is None:
        return TestResult.insufficient(
            "domain_classifier",
            bands=options.bands,
            alpha=settings.p_value_threshold,
            note="the baseline holds no sample of reference rows; rebuild it by retraining",
        )
    current_sample = feature_sample(current, spec, rows=options.max_rows)
    return domain_classifier_drift(reference_sample, current_sample, spec=spec, settings=settings)


def _extra_columns(
    current: pd.DataFrame, known: set[str], spec: DatasetSpec, expected: Sequence[str]
) -> list[str]:
    allowed = known | set(expected) | ({spec.timestamp} if spec.timestamp else set())
    return [str(c) for c in current.columns if str(c) not in allowed]


def _available_predictions(baseline: Baseline, current: pd.DataFrame) -> tuple[str, ...]:
    present = tuple(c for c in baseline.prediction_columns if c in current.columns)
    absent = [c for c in baseline.prediction_columns if c not in current.columns]
    if absent:
        logger.info(
            "prediction column(s) %s are in the baseline but not in the current data: "
            "prediction drift is not checked for them",
            absent,
        )
    return present
