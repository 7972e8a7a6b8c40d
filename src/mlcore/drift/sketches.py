"""Mergeable summaries of current data on a reference grid: what the streaming engine keeps.

The reference side stays exact (it comes from the baseline). Each chunk of
current data is reduced to summaries that combine by addition, so the same
code can run per partition on a distributed engine and be merged on one
machine:

* numeric columns: counts on a fixed grid of cut points (the reference's
  1/4096 quantiles, the PSI bin edges and the robust effect's cut points,
  ``scales``), counts below the reference's
  minimum and above its maximum, missing, infinite and not-a-number counts,
  min/max, and count/mean/M2 moments (Chan et al.'s pairwise update);
* categorical columns: a bounded sketch (``categorical_sketch``);
* a sample of rows for the domain classifier (``RowSample``: the rows with the
  smallest hash of their content, which merge exactly and do not depend on how
  the data was split into chunks or partitions).

This module holds data structures only; the tests that read them live in
their own modules (``ks``, ``wasserstein``, ...) beside their exact versions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlcore.data import DatasetSpec
from mlcore.drift.pairs import (
    BinnedCounts,
    bin_labels,
    counts_in_bins,
    quantile_edges,
    sorted_quantiles,
)
from mlcore.drift.profiles import ColumnProfile, profile
from mlcore.drift.scales import RobustScale, robust_scale
from mlcore.drift.summaries import (
    FloatArray,
    IntArray,
    NumericSummary,
    category_labels,
    merge_examples,
    parse_numeric,
)

GRID_BINS = 4096


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
    n_total: int
    invalid_rate: float
    low: float
    high: float
    reference_profile: ColumnProfile
    cuts: RobustScale

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
                n_total=summary.n_total,
                invalid_rate=summary.invalid_rate,
                low=math.nan,
                high=math.nan,
                reference_profile=profile(summary),
                cuts=robust_scale(summary),
            )
        psi_edges = quantile_edges(values, psi_bins)
        levels = np.arange(1, GRID_BINS) / GRID_BINS
        cuts = robust_scale(summary)
        edges = np.union1d(
            np.unique(sorted_quantiles(values, levels)),
            np.union1d(psi_edges, [c for c in (cuts.low, cuts.high) if math.isfinite(c)]),
        )
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
            n_total=summary.n_total,
            invalid_rate=summary.invalid_rate,
            low=float(values[0]),
            high=float(values[-1]),
            reference_profile=profile(summary),
            cuts=cuts,
        )


@dataclass(frozen=True, eq=False)
class NumericSketch:
    """Mergeable summary of current numeric values on a reference grid."""

    counts: IntArray
    at_edges: IntArray  # values exactly equal to each grid edge
    n_missing: int = 0
    n_posinf: int = 0
    n_neginf: int = 0
    n_not_numeric: int = 0
    not_numeric_examples: tuple[str, ...] = ()
    below: int = 0  # finite values under the reference's minimum
    above: int = 0  # and over its maximum
    n_fractional: int = 0  # finite values with a fractional part
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
        return self.count + self.n_missing + self.n_posinf + self.n_neginf + self.n_not_numeric

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
        parsed = parse_numeric(values, name=name)
        array = parsed.values
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
            n_missing=nan - parsed.n_not_numeric,
            n_posinf=posinf,
            n_neginf=int(array.shape[0] - n - nan - posinf),
            n_not_numeric=parsed.n_not_numeric,
            not_numeric_examples=parsed.examples,
            below=int(np.count_nonzero(finite < grid.low)) if n and grid.n_valid else 0,
            above=int(np.count_nonzero(finite > grid.high)) if n and grid.n_valid else 0,
            n_fractional=int(np.count_nonzero(finite != np.floor(finite))),
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
            n_not_numeric=self.n_not_numeric + other.n_not_numeric,
            not_numeric_examples=merge_examples(
                self.not_numeric_examples, other.not_numeric_examples
            ),
            below=self.below + other.below,
            above=self.above + other.above,
            n_fractional=self.n_fractional + other.n_fractional,
            count=n,
            mean=mean,
            m2=m2,
            low=min(self.low, other.low),
            high=max(self.high, other.high),
        )


@dataclass(frozen=True, eq=False)
class StreamingNumericPair:
    """A reference grid beside a current sketch: what the streaming numeric tests read."""

    reference: ReferenceGrid
    current: NumericSketch

    @property
    def testable(self) -> bool:
        return self.reference.n_valid > 0 and self.current.n_valid > 0

    @property
    def out_of_range(self) -> tuple[int, int]:
        """Current values (below the reference minimum, above its maximum)."""
        return self.current.below, self.current.above

    @property
    def reference_std(self) -> float:
        return self.reference.std

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


def sketch_profile(grid: ReferenceGrid, sketch: NumericSketch) -> ColumnProfile:
    """The current side's descriptive statistics, from its sketch (histogram on the PSI bins)."""
    missing = sketch.n_total - sketch.count
    if sketch.count == 0:
        return ColumnProfile(inferred_type="Fractional", num_present=0, num_missing=missing)
    binned = StreamingNumericPair(grid, sketch).binned(grid.psi_bins)
    bounds = [sketch.low, *binned.edges, sketch.high]
    buckets = tuple(
        (float(min(lo, hi)), float(hi), int(c))
        for lo, hi, c in zip(bounds[:-1], bounds[1:], binned.current, strict=True)
    )
    return ColumnProfile(
        inferred_type="Fractional" if sketch.n_fractional else "Integral",
        num_present=sketch.count,
        num_missing=missing,
        mean=sketch.mean,
        sum=sketch.mean * sketch.count,
        std_dev=math.sqrt(sketch.m2 / sketch.count),
        min=sketch.low,
        max=sketch.high,
        buckets=buckets,
    )


@dataclass(frozen=True, eq=False)
class RowSample:
    """At most ``size`` feature rows: those with the smallest hash of their content.

    The key of a row is a hash of its feature values as the drift tests read them
    (numbers as floats, categories as their text labels; pandas' seeded hash), so
    which rows are kept depends on the rows alone: the same data split into any
    chunks or partitions, in any order, gives the same sample, and the exact
    engine picks the same rows from a whole frame. Keeping the smallest ``size``
    keys of any parts equals keeping the smallest of all, so samples merge
    exactly; rows are held in key order. Rows with equal content have equal keys,
    so ties never change the sample's content. Only the kept rows are converted.
    """

    size: int
    keys: npt.NDArray[np.uint64]
    rows: pd.DataFrame

    @classmethod
    def empty(cls, size: int, columns: list[str]) -> RowSample:
        return cls(size=size, keys=np.empty(0, dtype=np.uint64), rows=pd.DataFrame(columns=columns))

    @classmethod
    def of_rows(cls, frame: pd.DataFrame, spec: DatasetSpec, *, size: int) -> RowSample:
        keys = row_keys(frame, spec)
        keep = _smallest(keys, size)
        rows = typed_features(frame.iloc[keep], spec)
        return cls(size=size, keys=keys[keep], rows=rows)

    def merge(self, other: RowSample) -> RowSample:
        if self.rows.shape[0] == 0:
            return other
        if other.rows.shape[0] == 0:
            return self
        keys = np.concatenate([self.keys, other.keys])
        rows = pd.concat([self.rows, other.rows], ignore_index=True)
        keep = _smallest(keys, self.size)
        return RowSample(
            size=self.size, keys=keys[keep], rows=rows.iloc[keep].reset_index(drop=True)
        )


def _smallest(keys: npt.NDArray[np.uint64], size: int) -> npt.NDArray[np.int64]:
    """Positions of the ``size`` smallest keys, in key order (ties by position)."""
    if keys.shape[0] > size:
        candidates = np.argpartition(keys, size - 1)[:size]
    else:
        candidates = np.arange(keys.shape[0])
    order = np.lexsort((candidates, keys[candidates]))
    return np.asarray(candidates[order], dtype=np.int64)


_MISSING_HASH = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(1_000_003)


def row_keys(frame: pd.DataFrame, spec: DatasetSpec) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of each row's features as the drift tests read them (see ``RowSample``).

    Categories are hashed once per distinct value (factorised), so a million rows of a
    few categories cost a few hashes; numbers are hashed as parsed floats.
    """
    key = np.zeros(frame.shape[0], dtype=np.uint64)
    for name in (c for c in spec.features if c in frame.columns):
        values = frame[name]
        if name in spec.numeric:
            hashed = pd.util.hash_array(parse_numeric(values, name=name).values)
        else:
            codes, uniques = pd.factorize(values)
            labels = category_labels(pd.Series(uniques)).to_numpy(dtype=object)
            per_value = pd.util.hash_array(labels) if labels.size else np.empty(0, np.uint64)
            hashed = np.where(codes >= 0, per_value[np.maximum(codes, 0)], _MISSING_HASH)
        key = (key * _MIX) ^ hashed.astype(np.uint64)
    return key


def typed_features(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The spec's features present in ``frame``, typed as the drift tests read them: floats for
    numeric features, text labels (or missing) for categorical ones."""
    present = [c for c in spec.features if c in frame.columns]
    out = pd.DataFrame(index=range(frame.shape[0]))
    for name in present:
        values = frame[name].reset_index(drop=True)
        if name in spec.numeric:
            out[name] = parse_numeric(values, name=name).values
        else:
            labels = category_labels(values.dropna())
            out[name] = pd.Series(labels, dtype=object).reindex(values.index)
    return out
