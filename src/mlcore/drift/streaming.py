"""The streaming engine: current data read in chunks, memory bounded whatever its row count.

Each chunk is reduced to the mergeable summaries of :mod:`mlcore.drift.sketches`
and the sums are graded by the same registry and rules as the exact engine
(:func:`mlcore.drift.columns.compare_column` with engine ``"streaming"``).
What stays exact: PSI, KL and Jensen-Shannon (their bin edges are grid
edges; categorical bins are the reference's categories, counted one by one),
chi-squared, the missing-value rate and out-of-range values. KS and
Wasserstein are graded on a lower bound and report how far above it the exact
value can lie (``ks``, ``wasserstein``); the unseen-values check is exact
until a column holds more new labels than its frequent-items sketch keeps, and
an upper bound of its chance model after that (``unseen``). Each is graded on
the side of its bound that can only lower the grade: a sketch never grades a
column above what the exact engine would.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from mlcore.data import DatasetSpec
from mlcore.drift.baseline import Baseline, worker_count
from mlcore.drift.categorical_sketch import (
    CategoricalSketch,
    StreamingCategoricalPair,
    categorical_sketch_profile,
)
from mlcore.drift.classifier import domain_classifier_drift
from mlcore.drift.columns import compare_column
from mlcore.drift.pairs import CategoricalReference
from mlcore.drift.results import DriftReport, FeatureDrift, ReferenceInfo, Role, TestResult
from mlcore.drift.sketches import (
    NumericSketch,
    ReferenceGrid,
    RowSample,
    StreamingNumericPair,
    sketch_profile,
)
from mlcore.drift.sources import (
    CAPTURE_METADATA_COLUMNS,
    columns_of,
    data_files,
    is_capture,
    iter_chunks,
)
from mlcore.drift.summaries import NumericSummary
from mlcore.drift.verdict import assemble_report
from mlcore.errors import DataError
from mlcore.settings import DriftSettings

logger = logging.getLogger(__name__)

ENGINE = "streaming"
DEFAULT_CHUNK_ROWS = 100_000

ColumnSketch = NumericSketch | CategoricalSketch
ReferenceSide = ReferenceGrid | CategoricalReference


@dataclass(frozen=True)
class CurrentSketch:
    """Summaries of some current rows. ``a.merge(b)`` equals the summary of both sets of rows.

    ``absent`` holds the planned columns some chunk lacked (reported missing,
    never graded on part of the data); ``seen`` every column name met, for the
    extra-column check; ``sample`` the feature rows with the smallest content hash.
    """

    rows: int
    columns: Mapping[str, ColumnSketch] = field(default_factory=dict)
    absent: frozenset[str] = frozenset()
    seen: frozenset[str] = frozenset()
    sample: RowSample | None = None

    def merge(self, other: CurrentSketch) -> CurrentSketch:
        if set(self.columns) != set(other.columns):
            raise ValueError("sketches of different column sets cannot be merged")
        merged = {
            name: _merge_column(name, mine, other.columns[name])
            for name, mine in self.columns.items()
        }
        sample = self.sample
        if other.sample is not None:
            sample = other.sample if sample is None else sample.merge(other.sample)
        return CurrentSketch(
            rows=self.rows + other.rows,
            columns=merged,
            absent=self.absent | other.absent,
            seen=self.seen | other.seen,
            sample=sample,
        )


def _merge_column(name: str, mine: ColumnSketch, theirs: ColumnSketch) -> ColumnSketch:
    if isinstance(mine, NumericSketch) and isinstance(theirs, NumericSketch):
        return mine.merge(theirs)
    if isinstance(mine, CategoricalSketch) and isinstance(theirs, CategoricalSketch):
        return mine.merge(theirs)
    raise ValueError(f"column {name!r} has sketches of different kinds")


@dataclass(frozen=True)
class StreamingPlan:
    """The reference side of every checked column, ready for streaming (no raw reference kept)."""

    columns: Mapping[str, tuple[Role, ReferenceSide]]
    spec: DatasetSpec
    rows: int
    settings: DriftSettings
    known_columns: frozenset[str] = frozenset()
    reference_sample: pd.DataFrame | None = None

    @classmethod
    def from_baseline(
        cls,
        baseline: Baseline,
        settings: DriftSettings | None = None,
        *,
        prediction_columns: Sequence[str] | None = None,
    ) -> StreamingPlan:
        settings = settings or DriftSettings()
        predictions = set(
            baseline.prediction_columns if prediction_columns is None else prediction_columns
        )
        unknown = predictions - set(baseline.prediction_columns)
        if unknown:
            raise DataError(
                f"the baseline has no prediction column(s) {sorted(unknown)}; it has "
                f"{list(baseline.prediction_columns)}"
            )
        columns: dict[str, tuple[Role, ReferenceSide]] = {}
        for column in baseline.columns:
            if column.role == "prediction" and column.name not in predictions:
                continue
            side: ReferenceSide
            if isinstance(column.summary, NumericSummary):
                side = ReferenceGrid.from_summary(column.summary, psi_bins=settings.psi_bins)
            else:
                side = CategoricalReference.from_summary(column.summary)
            columns[column.name] = (column.role, side)
        spec = baseline.spec
        known = {*baseline.reference_columns, *columns, spec.target, *spec.id_columns}
        if spec.timestamp:
            known.add(spec.timestamp)
        return cls(
            columns=columns,
            spec=spec,
            rows=baseline.rows,
            settings=settings,
            known_columns=frozenset(known),
            reference_sample=baseline.sample,
        )

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(n for n, (role, _) in self.columns.items() if role == "feature")

    def empty_sketch(self) -> CurrentSketch:
        sketches: dict[str, ColumnSketch] = {}
        for name, (_, side) in self.columns.items():
            if isinstance(side, ReferenceGrid):
                sketches[name] = NumericSketch.empty(side)
            else:
                sketches[name] = CategoricalSketch.empty(side)
        return CurrentSketch(rows=0, columns=sketches)

    def sketch(self, chunk: pd.DataFrame, *, workers: int | None = None) -> CurrentSketch:
        """Summarise one chunk of current data (the columns it holds)."""
        present = [c for c in self.columns if c in chunk.columns]
        with ThreadPoolExecutor(max_workers=worker_count(workers, len(present))) as pool:
            sketched = dict(
                zip(
                    present,
                    pool.map(lambda name: self.sketch_column(name, chunk[name]), present),
                    strict=True,
                )
            )
        return self._chunk_sketch(chunk.shape[0], sketched, set(map(str, chunk.columns)), chunk)

    def _chunk_sketch(
        self,
        rows: int,
        sketched: dict[str, ColumnSketch],
        seen: set[str],
        frame: pd.DataFrame | None,
    ) -> CurrentSketch:
        empty = self.empty_sketch().columns
        sample = None
        if frame is not None and self.settings.domain_classifier.enabled:
            sample = RowSample.of_rows(
                frame, self.spec, size=self.settings.domain_classifier.max_rows
            )
        return CurrentSketch(
            rows=int(rows),
            columns={name: sketched.get(name, empty[name]) for name in self.columns},
            absent=frozenset(c for c in self.columns if c not in sketched),
            seen=frozenset(seen),
            sample=sample,
        )

    def sketch_column(self, name: str, values: pd.Series) -> ColumnSketch:
        side = self.columns[name][1]
        if isinstance(side, ReferenceGrid):
            return NumericSketch.of_values(values, side, name=name)
        return CategoricalSketch.of_values(values, side)

    def sketch_parquet(self, path: str | Path, *, workers: int | None = None) -> CurrentSketch:
        """Summarise Parquet data (a file or a folder of files) one column chunk at a time.

        Reading a whole row group of every column can take gigabytes; reading one
        column of one row group at a time bounds memory by the row-group size,
        whatever the number of rows or files.
        """
        import pyarrow.parquet as pq

        total = self.empty_sketch()
        for file in data_files(Path(path), (".parquet", ".pq")):
            metadata = pq.ParquetFile(file).metadata
            names = set(metadata.schema.names)
            present = [c for c in self.columns if c in names]
            features = [c for c in self.features if c in names]
            for group in range(metadata.num_row_groups):

                def one(name: str, group: int = group, file: Path = file) -> ColumnSketch:
                    table = pq.ParquetFile(file).read_row_group(group, columns=[name])
                    return self.sketch_column(name, table.column(0).to_pandas())

                with ThreadPoolExecutor(worker_count(workers, len(present))) as pool:
                    sketched = dict(zip(present, pool.map(one, present), strict=True))
                sample_rows = None
                if self.settings.domain_classifier.enabled and features:
                    sample_rows = (
                        pq.ParquetFile(file).read_row_group(group, columns=features).to_pandas()
                    )
                chunk = self._chunk_sketch(
                    metadata.row_group(group).num_rows,
                    sketched,
                    names,
                    sample_rows,
                )
                total = total.merge(chunk)
        return total

    def report(
        self,
        current: CurrentSketch,
        *,
        expected_columns: Sequence[str] = (),
        reference_info: ReferenceInfo | None = None,
        mode: Literal["streaming", "spark"] = "streaming",
    ) -> DriftReport:
        """The drift report of everything summarised into ``current`` (``mode`` names the engine
        that summarised it: both grade the same sketches with the streaming implementations)."""
        graded = {
            name: _compare(name, role, side, current.columns[name], self.settings)
            for name, (role, side) in self.columns.items()
            if name not in current.absent
        }
        bounds = [
            float(r.test("ks").parameters["error_bound"])
            for r in graded.values()
            if r.kind == "numeric" and r.test("ks").statistic is not None
        ]
        classifier = None
        if self.settings.domain_classifier.enabled:
            classifier = self._domain_classifier(current)
        allowed = self.known_columns | set(expected_columns)
        return assemble_report(
            reference_rows=self.rows,
            current_rows=current.rows,
            settings=self.settings,
            results=graded,
            mode=mode,
            ks_error_bound=max(bounds) if bounds else None,
            domain_classifier=classifier,
            missing_columns=[c for c in self.features if c in current.absent],
            extra_columns=sorted(c for c in current.seen if c not in allowed),
            reference=reference_info,
        )

    def _domain_classifier(self, current: CurrentSketch) -> TestResult:
        options = self.settings.domain_classifier
        if self.reference_sample is None or current.sample is None:
            return TestResult.insufficient(
                "domain_classifier",
                bands=options.bands,
                alpha=self.settings.p_value_threshold,
                note="no sample of reference rows in the baseline, or no current rows",
            )
        return domain_classifier_drift(
            self.reference_sample, current.sample.rows, spec=self.spec, settings=self.settings
        )


def detect_drift_streaming(
    baseline: Baseline,
    chunks: Iterable[pd.DataFrame],
    *,
    settings: DriftSettings | None = None,
    prediction_columns: Sequence[str] | None = None,
    workers: int | None = None,
    reference_info: ReferenceInfo | None = None,
) -> DriftReport:
    """Drift of data arriving in chunks against ``baseline``; memory bounded by one chunk."""
    plan = StreamingPlan.from_baseline(baseline, settings, prediction_columns=prediction_columns)
    total = plan.empty_sketch()
    for chunk in chunks:
        total = total.merge(plan.sketch(chunk, workers=workers))
    logger.info("streamed %d current rows", total.rows)
    return plan.report(total, reference_info=reference_info)


@dataclass(frozen=True)
class WindowSummary:
    """A window's current rows summarised for a plan: gradable now, or saved as a profile and
    merged with others later (:mod:`mlcore.drift.saved_profiles`)."""

    plan: StreamingPlan
    sketch: CurrentSketch
    expected_columns: tuple[str, ...] = ()
    mode: Literal["streaming", "spark"] = "streaming"

    def report(self, reference_info: ReferenceInfo | None = None) -> DriftReport:
        return self.plan.report(
            self.sketch,
            expected_columns=self.expected_columns,
            reference_info=reference_info,
            mode=self.mode,
        )


def detect_drift_streaming_path(
    baseline: Baseline,
    path: str | Path,
    *,
    settings: DriftSettings | None = None,
    prediction_columns: Sequence[str] | None = None,
    workers: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    reference_info: ReferenceInfo | None = None,
) -> DriftReport:
    """Streaming drift of the data at ``path``: Parquet column chunk by column chunk, CSV and
    data capture ``chunk_rows`` rows at a time. Prediction columns default to the baseline's
    that the data holds."""
    summary = summarise_streaming_path(
        baseline,
        path,
        settings=settings,
        prediction_columns=prediction_columns,
        workers=workers,
        chunk_rows=chunk_rows,
    )
    return summary.report(reference_info)


def summarise_streaming_path(
    baseline: Baseline,
    path: str | Path,
    *,
    settings: DriftSettings | None = None,
    prediction_columns: Sequence[str] | None = None,
    workers: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> WindowSummary:
    """The summary :func:`detect_drift_streaming_path` grades, before grading."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data path does not exist: {path}")
    capture = is_capture(path)
    if prediction_columns is None:
        available = None if capture else set(columns_of(path))
        prediction_columns = tuple(
            c for c in baseline.prediction_columns if available is None or c in available
        )
    plan = StreamingPlan.from_baseline(baseline, settings, prediction_columns=prediction_columns)
    parquet = not capture and all(p.suffix.lower() in (".parquet", ".pq") for p in data_files(path))
    if parquet:
        total = plan.sketch_parquet(path, workers=workers)
    else:
        total = plan.empty_sketch()
        columns = [*plan.columns, *plan.known_columns, *_all_columns(path, capture)]
        chunks = iter_chunks(path, baseline.spec, columns=columns, chunk_rows=chunk_rows)
        for chunk in chunks:
            total = total.merge(plan.sketch(chunk, workers=workers))
    logger.info("streamed %d current rows from %s", total.rows, path)
    expected = CAPTURE_METADATA_COLUMNS if capture else ()
    return WindowSummary(plan, total, expected_columns=tuple(expected))


def _all_columns(path: Path, capture: bool) -> list[str]:
    # CSV chunks read every column, so extra columns are seen; capture has a fixed layout.
    return [] if capture else columns_of(path)


def _compare(
    name: str, role: Role, side: ReferenceSide, sketch: ColumnSketch, settings: DriftSettings
) -> FeatureDrift:
    if isinstance(side, ReferenceGrid) and isinstance(sketch, NumericSketch):
        return compare_column(
            StreamingNumericPair(side, sketch),
            name=name,
            role=role,
            kind="numeric",
            engine=ENGINE,
            settings=settings,
            reference_profile=side.reference_profile,
            current_profile=sketch_profile(side, sketch),
        )
    if isinstance(side, CategoricalReference) and isinstance(sketch, CategoricalSketch):
        return compare_column(
            StreamingCategoricalPair(side, sketch),
            name=name,
            role=role,
            kind="categorical",
            engine=ENGINE,
            settings=settings,
            reference_profile=side.reference_profile,
            current_profile=categorical_sketch_profile(side, sketch),
        )
    raise DataError(f"column {name!r} has a different type in the current data")


__all__ = [
    "CurrentSketch",
    "NumericSketch",
    "ReferenceGrid",
    "StreamingPlan",
    "WindowSummary",
    "detect_drift_streaming",
    "detect_drift_streaming_path",
    "iter_chunks",
    "summarise_streaming_path",
]
