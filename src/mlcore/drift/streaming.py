"""Streaming drift detection: current data read in chunks, memory bounded whatever its row count.

The reference side stays exact (it comes from the baseline). Each chunk of
current data is reduced to mergeable summaries, and summaries of any chunks or
partitions combine by addition, so the same code can run per partition on a
distributed engine and be merged on one machine:

* numeric columns: counts on a fixed grid of cut points (the reference's
  1/4096 quantiles plus the PSI bin edges), missing and infinite counts,
  min/max, and count/mean/M2 moments (Chan et al.'s pairwise update);
* categorical columns: category counts.

What stays exact: PSI, KL and Jensen-Shannon (their bin edges are grid
edges), chi-squared, the missing-value rate and unseen categories. What is
bounded instead:

* KS: both empirical CDFs are known exactly at every grid edge, so the
  reported statistic (the largest gap at an edge) is a true lower bound of the
  exact statistic. Between two edges each CDF rises by at most its mass in that
  bin, which bounds the gap there too. The exact statistic therefore lies in
  ``[statistic, statistic + error_bound]``; ``error_bound`` is recorded per
  column and is at most the largest single-bin mass of either sample (about
  1/4096 of the reference per bin, plus whatever the current data piles into
  one bin). The p-value is computed from the reported statistic.
* Wasserstein: the integral of the CDF gap over each bin is bounded the same
  way; the midpoint of the bounds is reported with the half-width as
  ``error_bound``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlcore.data import DatasetSpec
from mlcore.drift.baseline import Baseline, worker_count
from mlcore.drift.chi2 import chi2_test
from mlcore.drift.detect import assemble_report
from mlcore.drift.divergence import jensenshannon_test, kl_test
from mlcore.drift.ks import ks_asymptotic_p_value, ks_drifted
from mlcore.drift.pairs import (
    BinnedCounts,
    CategoricalPair,
    bin_labels,
    counts_in_bins,
    quantile_edges,
    sorted_quantiles,
)
from mlcore.drift.profiles import ColumnProfile, profile
from mlcore.drift.psi import psi_test
from mlcore.drift.registry import primary_method
from mlcore.drift.results import DriftReport, FeatureDrift, MissingRateResult, Role, TestResult
from mlcore.drift.summaries import (
    CategoricalSummary,
    FloatArray,
    IntArray,
    NumericSummary,
    _as_float_array,
)
from mlcore.errors import DataError
from mlcore.settings import DriftSettings

logger = logging.getLogger(__name__)

GRID_BINS = 4096
DEFAULT_CHUNK_ROWS = 100_000


@dataclass(frozen=True, eq=False)
class ReferenceGrid:
    """Everything the streaming tests need from one numeric reference column, precomputed once."""

    edges: FloatArray  # grid cut points; bin k holds values in (edges[k-1], edges[k]]
    counts: IntArray  # reference counts per grid bin (len(edges) + 1)
    at_edges: IntArray  # reference values exactly equal to each edge (ties, discrete data)
    psi_bins: int
    psi_edges: FloatArray
    psi_counts: IntArray
    std: float
    n_valid: int
    invalid_rate: float
    low: float
    high: float
    reference_profile: ColumnProfile

    @classmethod
    def from_summary(cls, summary: NumericSummary, *, psi_bins: int) -> ReferenceGrid:
        values = summary.sorted_values
        if values.shape[0] == 0:
            empty = np.empty(0, dtype=np.float64)
            return cls(
                edges=empty,
                counts=np.zeros(1, dtype=np.int64),
                at_edges=np.zeros(0, dtype=np.int64),
                psi_bins=psi_bins,
                psi_edges=empty,
                psi_counts=np.zeros(1, dtype=np.int64),
                std=0.0,
                n_valid=0,
                invalid_rate=summary.invalid_rate,
                low=math.nan,
                high=math.nan,
                reference_profile=profile(summary),
            )
        psi_edges = quantile_edges(values, psi_bins)
        levels = np.arange(1, GRID_BINS) / GRID_BINS
        edges = np.union1d(np.unique(sorted_quantiles(values, levels)), psi_edges)
        at_edges = np.searchsorted(values, edges, side="right") - np.searchsorted(
            values, edges, side="left"
        )
        return cls(
            edges=edges,
            counts=counts_in_bins(values, edges),
            at_edges=at_edges.astype(np.int64),
            psi_bins=psi_bins,
            psi_edges=psi_edges,
            psi_counts=counts_in_bins(values, psi_edges),
            std=float(np.std(values)),
            n_valid=int(values.shape[0]),
            invalid_rate=summary.invalid_rate,
            low=float(values[0]),
            high=float(values[-1]),
            reference_profile=profile(summary),
        )


@dataclass(frozen=True, eq=False)
class NumericSketch:
    """Mergeable summary of current numeric values on a reference grid."""

    counts: IntArray
    at_edges: IntArray  # values exactly equal to each grid edge
    n_missing: int = 0
    n_posinf: int = 0
    n_neginf: int = 0
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean
    low: float = math.inf
    high: float = -math.inf

    @property
    def n_valid(self) -> int:
        return self.count

    @property
    def n_total(self) -> int:
        return self.count + self.n_missing + self.n_posinf + self.n_neginf

    @property
    def invalid_rate(self) -> float:
        return 0.0 if self.n_total == 0 else (self.n_total - self.count) / self.n_total

    @classmethod
    def empty(cls, grid: ReferenceGrid) -> NumericSketch:
        return cls(
            counts=np.zeros(grid.edges.shape[0] + 1, dtype=np.int64),
            at_edges=np.zeros(grid.edges.shape[0], dtype=np.int64),
        )

    @classmethod
    def of_values(cls, values: pd.Series, grid: ReferenceGrid, *, name: str) -> NumericSketch:
        array = _as_float_array(values, name=name)
        finite_mask = np.isfinite(array)
        if finite_mask.all():  # the common case: no masks to build
            finite, nan, posinf = array, 0, 0
        else:
            finite = array[finite_mask]
            nan, posinf = int(np.isnan(array).sum()), int(np.isposinf(array).sum())
        bins = np.searchsorted(grid.edges, finite, side="left")
        counts = np.bincount(bins, minlength=grid.edges.shape[0] + 1).astype(np.int64)
        n_edges = grid.edges.shape[0]
        on_edge = bins < n_edges
        on_edge[on_edge] = grid.edges[bins[on_edge]] == finite[on_edge]
        at_edges = np.bincount(bins[on_edge], minlength=n_edges).astype(np.int64)
        n = int(finite.shape[0])
        mean = float(finite.mean()) if n else 0.0
        return cls(
            counts=counts,
            at_edges=at_edges,
            n_missing=nan,
            n_posinf=posinf,
            n_neginf=int(array.shape[0] - n - nan - posinf),
            count=n,
            mean=mean,
            m2=float(np.sum((finite - mean) ** 2)) if n else 0.0,
            low=float(finite.min()) if n else math.inf,
            high=float(finite.max()) if n else -math.inf,
        )

    def merge(self, other: NumericSketch) -> NumericSketch:
        n = self.count + other.count
        if n == 0:
            mean, m2 = 0.0, 0.0
        else:
            delta = other.mean - self.mean
            mean = self.mean + delta * other.count / n
            m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / n
        return NumericSketch(
            counts=self.counts + other.counts,
            at_edges=self.at_edges + other.at_edges,
            n_missing=self.n_missing + other.n_missing,
            n_posinf=self.n_posinf + other.n_posinf,
            n_neginf=self.n_neginf + other.n_neginf,
            count=n,
            mean=mean,
            m2=m2,
            low=min(self.low, other.low),
            high=max(self.high, other.high),
        )


ColumnSketch = NumericSketch | CategoricalSummary
ReferenceSide = ReferenceGrid | CategoricalSummary


@dataclass(frozen=True)
class StreamingPlan:
    """The reference side of every checked column, ready for streaming (no raw reference kept)."""

    columns: Mapping[str, tuple[Role, ReferenceSide]]
    spec: DatasetSpec
    rows: int
    settings: DriftSettings

    @classmethod
    def from_baseline(
        cls,
        baseline: Baseline,
        settings: DriftSettings | None = None,
        *,
        prediction_columns: Sequence[str] | None = None,
    ) -> StreamingPlan:
        settings = settings or DriftSettings()
        wanted = set(baseline.spec.features) | set(
            baseline.prediction_columns if prediction_columns is None else prediction_columns
        )
        columns: dict[str, tuple[Role, ReferenceSide]] = {}
        for column in baseline.columns:
            if column.name not in wanted:
                continue
            side: ReferenceSide
            if isinstance(column.summary, NumericSummary):
                side = ReferenceGrid.from_summary(column.summary, psi_bins=settings.psi_bins)
            else:
                side = column.summary
            columns[column.name] = (column.role, side)
        missing = wanted - set(columns)
        if missing:
            raise DataError(f"the baseline has no column(s) {sorted(missing)}")
        return cls(columns=columns, spec=baseline.spec, rows=baseline.rows, settings=settings)

    def empty_sketch(self) -> CurrentSketch:
        sketches: dict[str, ColumnSketch] = {}
        for name, (_, side) in self.columns.items():
            if isinstance(side, ReferenceGrid):
                sketches[name] = NumericSketch.empty(side)
            else:
                sketches[name] = CategoricalSummary.from_counts({})
        return CurrentSketch(rows=0, columns=sketches)

    def sketch(self, chunk: pd.DataFrame, *, workers: int | None = None) -> CurrentSketch:
        """Summarise one chunk of current data."""
        absent = [c for c in self.columns if c not in chunk.columns]
        if absent:
            raise DataError(
                f"the current data lacks column(s) {absent}; it has {list(chunk.columns)}"
            )

        with ThreadPoolExecutor(max_workers=worker_count(workers, len(self.columns))) as pool:
            sketches = pool.map(lambda name: self.sketch_column(name, chunk[name]), self.columns)
            return CurrentSketch(
                rows=int(chunk.shape[0]), columns=dict(zip(self.columns, sketches, strict=True))
            )

    def sketch_column(self, name: str, values: pd.Series) -> ColumnSketch:
        side = self.columns[name][1]
        if isinstance(side, ReferenceGrid):
            return NumericSketch.of_values(values, side, name=name)
        return CategoricalSummary.from_values(values)

    def sketch_parquet(self, path: str | Path, *, workers: int | None = None) -> CurrentSketch:
        """Summarise Parquet data (a file or a folder of files) one column chunk at a time.

        Reading a whole row group of every column can take gigabytes; reading one
        column of one row group at a time bounds memory by the row-group size,
        whatever the number of rows or files.
        """
        import pyarrow.parquet as pq

        total = self.empty_sketch()
        for file in _data_files(Path(path), (".parquet", ".pq")):
            metadata = pq.ParquetFile(file).metadata
            absent = [c for c in self.columns if c not in metadata.schema.names]
            if absent:
                raise DataError(f"{file} lacks column(s) {absent}; it has {metadata.schema.names}")
            for group in range(metadata.num_row_groups):

                def one(name: str, group: int = group, file: Path = file) -> ColumnSketch:
                    table = pq.ParquetFile(file).read_row_group(group, columns=[name])
                    return self.sketch_column(name, table.column(0).to_pandas())

                with ThreadPoolExecutor(worker_count(workers, len(self.columns))) as pool:
                    sketches = dict(zip(self.columns, pool.map(one, self.columns), strict=True))
                rows = metadata.row_group(group).num_rows
                total = total.merge(CurrentSketch(rows=rows, columns=sketches))
        return total

    def report(self, current: CurrentSketch) -> DriftReport:
        """The drift report of everything summarised into ``current``."""
        if current.rows == 0:
            raise DataError("the current data has no rows; there is nothing to check for drift")
        results = {
            name: _compare(name, role, side, current.columns[name], self.settings)
            for name, (role, side) in self.columns.items()
        }
        bounds = [
            float(r.test("ks").parameters["error_bound"])
            for r in results.values()
            if r.kind == "numeric" and r.test("ks").statistic is not None
        ]
        return assemble_report(
            reference_rows=self.rows,
            current_rows=current.rows,
            settings=self.settings,
            results=results,
            mode="streaming",
            ks_error_bound=max(bounds) if bounds else None,
        )


@dataclass(frozen=True)
class CurrentSketch:
    """Summaries of some current rows. ``a.merge(b)`` equals the summary of both sets of rows."""

    rows: int
    columns: Mapping[str, ColumnSketch] = field(default_factory=dict)

    def merge(self, other: CurrentSketch) -> CurrentSketch:
        if set(self.columns) != set(other.columns):
            raise ValueError("sketches of different column sets cannot be merged")
        merged: dict[str, ColumnSketch] = {}
        for name, mine in self.columns.items():
            merged[name] = _merge_column(name, mine, other.columns[name])
        return CurrentSketch(rows=self.rows + other.rows, columns=merged)


def _merge_column(name: str, mine: ColumnSketch, theirs: ColumnSketch) -> ColumnSketch:
    if isinstance(mine, NumericSketch) and isinstance(theirs, NumericSketch):
        return mine.merge(theirs)
    if isinstance(mine, CategoricalSummary) and isinstance(theirs, CategoricalSummary):
        return mine.merge(theirs)
    raise ValueError(f"column {name!r} has sketches of different kinds")


def detect_drift_streaming(
    baseline: Baseline,
    chunks: Iterable[pd.DataFrame],
    *,
    settings: DriftSettings | None = None,
    prediction_columns: Sequence[str] | None = None,
    workers: int | None = None,
) -> DriftReport:
    """Drift of data arriving in chunks against ``baseline``; memory bounded by one chunk."""
    plan = StreamingPlan.from_baseline(baseline, settings, prediction_columns=prediction_columns)
    total = plan.empty_sketch()
    for chunk in chunks:
        total = total.merge(plan.sketch(chunk, workers=workers))
    logger.info("streamed %d current rows", total.rows)
    return plan.report(total)


def detect_drift_streaming_path(
    baseline: Baseline,
    path: str | Path,
    *,
    settings: DriftSettings | None = None,
    prediction_columns: Sequence[str] | None = None,
    workers: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> DriftReport:
    """Streaming drift of the data at ``path``: Parquet column chunk by column chunk, CSV and
    data capture ``chunk_rows`` rows at a time."""
    plan = StreamingPlan.from_baseline(baseline, settings, prediction_columns=prediction_columns)
    path = Path(path)
    if not path.exists():
        raise DataError(f"data path does not exist: {path}")
    from mlcore.drift.cli import is_capture

    parquet = not is_capture(path) and all(
        p.suffix.lower() in (".parquet", ".pq") for p in _data_files(path, _TABLE_SUFFIXES)
    )
    if parquet:
        total = plan.sketch_parquet(path, workers=workers)
    else:
        total = plan.empty_sketch()
        chunks = iter_chunks(path, baseline.spec, columns=list(plan.columns), chunk_rows=chunk_rows)
        for chunk in chunks:
            total = total.merge(plan.sketch(chunk, workers=workers))
    logger.info("streamed %d current rows from %s", total.rows, path)
    return plan.report(total)


_TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def _data_files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    readable = [p for p in files if p.suffix.lower() in suffixes]
    if not readable:
        raise DataError(f"no {'/'.join(suffixes)} files at {path}")
    return readable


def iter_chunks(
    path: str | Path,
    spec: DatasetSpec,
    *,
    columns: Sequence[str],
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """Chunks of ``columns`` from CSV, Parquet (a file or a folder of files) or data capture."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    path = Path(path)
    if not path.exists():
        raise DataError(f"data path does not exist: {path}")
    from mlcore.drift.cli import is_capture

    if is_capture(path):
        from mlcore.capture import iter_capture

        yield from iter_capture(path, spec, chunk_rows=chunk_rows)
        return
    for file in _data_files(path, _TABLE_SUFFIXES):
        if file.suffix.lower() == ".csv":
            yield from pd.read_csv(file, chunksize=chunk_rows, usecols=list(columns))
        else:
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(file).iter_batches(
                batch_size=chunk_rows, columns=list(columns)
            ):
                yield batch.to_pandas()


def _compare(
    name: str, role: Role, side: ReferenceSide, sketch: ColumnSketch, settings: DriftSettings
) -> FeatureDrift:
    tests: tuple[TestResult, ...]
    if isinstance(side, ReferenceGrid) and isinstance(sketch, NumericSketch):
        pair = StreamingNumericPair(side, sketch)
        tests = (
            streaming_ks_test(pair, settings),
            psi_test(pair, settings),
            jensenshannon_test(pair, settings),
            kl_test(pair, settings),
        )
        if settings.numeric_method == "wasserstein":  # on demand, as in exact mode
            tests += (streaming_wasserstein_test(pair, settings),)
        kind = "numeric"
        reference_rate, reference_total = side.invalid_rate, side.reference_profile
        current_profile = _sketch_profile(side, sketch)
        unseen: tuple[str, ...] = ()
        unseen_share = 0.0
        reference_count = reference_total.num_present + reference_total.num_missing
    elif isinstance(side, CategoricalSummary) and isinstance(sketch, CategoricalSummary):
        categorical = CategoricalPair(side, sketch)
        tests = (
            chi2_test(categorical, settings),
            psi_test(categorical, settings),
            jensenshannon_test(categorical, settings),
            kl_test(categorical, settings),
        )
        kind = "categorical"
        reference_rate = side.invalid_rate
        current_profile = profile(sketch)
        unseen, unseen_share = categorical.unseen_categories, categorical.unseen_share
        reference_count = side.n_total
    else:
        raise DataError(f"column {name!r} has a different type in the current data")
    primary = primary_method(kind, settings)  # type: ignore[arg-type]
    increase = sketch.invalid_rate - reference_rate
    return FeatureDrift(
        name=name,
        role=role,
        kind=kind,  # type: ignore[arg-type]
        primary=next(t for t in tests if t.method == primary),
        tests=tests,
        missing=MissingRateResult(
            reference_rate=reference_rate,
            current_rate=sketch.invalid_rate,
            threshold=settings.missing_rate_threshold,
            drifted=increase > settings.missing_rate_threshold,
        ),
        reference_count=reference_count,
        current_count=sketch.n_total,
        reference_profile=side.reference_profile
        if isinstance(side, ReferenceGrid)
        else profile(side),
        current_profile=current_profile,
        unseen_categories=unseen,
        unseen_share=unseen_share,
    )


@dataclass(frozen=True, eq=False)
class StreamingNumericPair:
    reference: ReferenceGrid
    current: NumericSketch

    @property
    def testable(self) -> bool:
        return self.reference.n_valid > 0 and self.current.n_valid > 0

    def binned(self, n_bins: int) -> BinnedCounts:
        if n_bins != self.reference.psi_bins:
            raise ValueError(
                f"this streaming plan was built for {self.reference.psi_bins} PSI bins, not {n_bins}"
            )
        # Every PSI edge is a grid edge, so PSI-bin counts are sums of whole grid bins.
        upper = np.append(self.reference.edges, np.inf)
        psi_bin = np.searchsorted(self.reference.psi_edges, upper, side="left")
        current = np.bincount(
            psi_bin, weights=self.current.counts, minlength=self.reference.psi_edges.shape[0] + 1
        )
        return BinnedCounts(
            reference=self.reference.psi_counts,
            current=np.rint(current).astype(np.int64),
            labels=bin_labels(self.reference.psi_edges),
            edges=tuple(float(e) for e in self.reference.psi_edges),
        )

    def cdf_bounds(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """Both CDFs around every grid bin (e_{k-1}, e_k].

        Returns (reference at e_{k-1}, reference just below e_k, current at
        e_{k-1}, current just below e_k, |gap| at e_k). Inside the open interval
        each CDF lies between its two end values; at the edge itself both are
        known exactly, atoms included, so discrete data gives an exact result.
        """
        n_ref, n_cur = self.reference.n_valid, self.current.n_valid
        ref = np.concatenate([[0], np.cumsum(self.reference.counts)]) / n_ref
        cur = np.concatenate([[0], np.cumsum(self.current.counts)]) / n_cur
        atoms_ref = np.append(self.reference.at_edges, 0) / n_ref
        atoms_cur = np.append(self.current.at_edges, 0) / n_cur
        at_edge = np.abs(ref[1:] - cur[1:])
        return ref[:-1], ref[1:] - atoms_ref, cur[:-1], cur[1:] - atoms_cur, at_edge


def streaming_ks_test(pair: StreamingNumericPair, settings: DriftSettings) -> TestResult:
    threshold = settings.p_value_threshold
    if not pair.testable:
        return _untestable("ks", threshold, pair)
    ref_lo, ref_hi, cur_lo, cur_hi, gap_at_edge = pair.cdf_bounds()
    at_edges = float(np.max(gap_at_edge))
    within = float(np.max(np.maximum(ref_hi - cur_lo, cur_hi - ref_lo)))
    upper = max(at_edges, within)
    p_value = ks_asymptotic_p_value(at_edges, pair.reference.n_valid, pair.current.n_valid)
    return TestResult(
        method="ks",
        statistic=at_edges,
        p_value=p_value,
        threshold=threshold,
        drifted=ks_drifted(
            p_value, at_edges, threshold=threshold, min_effect_size=settings.min_effect_size
        ),
        parameters={
            "alternative": "two-sided",
            "p_value_method": "asymp (from the statistic's lower bound)",
            "min_effect_size": settings.min_effect_size,
            "effect_size": at_edges,
            "statistic_upper_bound": upper,
            "error_bound": upper - at_edges,
            "grid_bins": int(pair.reference.edges.shape[0] + 1),
            "reference_size": pair.reference.n_valid,
            "current_size": pair.current.n_valid,
        },
    )


def streaming_wasserstein_test(pair: StreamingNumericPair, settings: DriftSettings) -> TestResult:
    threshold = settings.distance_threshold
    if not pair.testable:
        return _untestable("wasserstein", threshold, pair)
    ref_lo, ref_hi, cur_lo, cur_hi, _ = pair.cdf_bounds()
    low = min(pair.reference.low, pair.current.low)
    high = max(pair.reference.high, pair.current.high)
    edges = pair.reference.edges
    left = np.concatenate([[low], edges])
    right = np.concatenate([edges, [high]])
    width = np.clip(np.minimum(right, high) - np.maximum(left, low), 0.0, None)
    largest_gap = np.maximum(ref_hi - cur_lo, cur_hi - ref_lo)
    smallest_gap = np.clip(np.maximum(ref_lo - cur_hi, cur_lo - ref_hi), 0.0, None)
    upper, lower = float(np.sum(width * largest_gap)), float(np.sum(width * smallest_gap))
    distance = (upper + lower) / 2
    if pair.reference.std > 0:
        scale, scale_source = pair.reference.std, "reference standard deviation (ddof=0)"
    else:
        scale, scale_source = 1.0, "1 (the reference is constant, so it has no spread)"
    statistic = distance / scale
    return TestResult(
        method="wasserstein",
        statistic=statistic,
        p_value=None,
        threshold=threshold,
        drifted=statistic >= threshold,
        parameters={
            "distance": distance,
            "normalised_by": scale_source,
            "scale": scale,
            "error_bound": (upper - lower) / 2 / scale,
            "reference_size": pair.reference.n_valid,
            "current_size": pair.current.n_valid,
        },
    )


def _untestable(method: str, threshold: float, pair: StreamingNumericPair) -> TestResult:
    empty = [
        side
        for side, n in (("reference", pair.reference.n_valid), ("current", pair.current.n_valid))
        if n == 0
    ]
    return TestResult(
        method=method,
        statistic=None,
        p_value=None,
        threshold=threshold,
        drifted=False,
        parameters={
            "reference_size": pair.reference.n_valid,
            "current_size": pair.current.n_valid,
            "error_bound": 0.0,
        },
        note=f"not computed: no non-missing values in the {' and '.join(empty)} data",
    )


def _sketch_profile(grid: ReferenceGrid, sketch: NumericSketch) -> ColumnProfile:
    missing = sketch.n_missing + sketch.n_posinf + sketch.n_neginf
    if sketch.count == 0:
        return ColumnProfile(inferred_type="Fractional", num_present=0, num_missing=missing)
    binned = StreamingNumericPair(grid, sketch).binned(grid.psi_bins)
    bounds = [sketch.low, *binned.edges, sketch.high]
    buckets = tuple(
        (float(min(lo, hi)), float(hi), int(c))
        for lo, hi, c in zip(bounds[:-1], bounds[1:], binned.current, strict=True)
    )
    return ColumnProfile(
        inferred_type=grid.reference_profile.inferred_type,
        num_present=sketch.count,
        num_missing=missing,
        mean=sketch.mean,
        sum=sketch.mean * sketch.count,
        std_dev=math.sqrt(sketch.m2 / sketch.count),
        min=sketch.low,
        max=sketch.high,
        buckets=buckets,
    )


__all__ = [
    "CurrentSketch",
    "NumericSketch",
    "ReferenceGrid",
    "StreamingPlan",
    "detect_drift_streaming",
    "detect_drift_streaming_path",
    "iter_chunks",
]
