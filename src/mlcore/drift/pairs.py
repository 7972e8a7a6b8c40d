"""A reference summary beside a current summary, with the work the tests share computed once.

PSI, KL and Jensen-Shannon all read the same binned counts; KS reads both
sorted samples without merging them (``ks_statistic_by_grid``); Wasserstein,
run only when configured, reads the gap between the CDFs over the merged
sample. Each is computed on first use and cached on the pair, so running every
test on a column costs little more than running one.
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
import pandas as pd

from mlcore.drift.profiles import ColumnProfile, profile
from mlcore.drift.summaries import CategoricalSummary, FloatArray, IntArray, NumericSummary

# Added to every bin's count on both sides before PSI and KL, so an empty bin gives a
# finite value (Jeffreys' prior for a multinomial). Recorded in every result.
PSEUDO_COUNT = 0.5


@dataclass(frozen=True)
class BinnedCounts:
    """Counts of both samples in the same bins (numeric: reference quantile bins; categorical:
    the union of categories)."""

    reference: IntArray
    current: IntArray
    labels: tuple[str, ...]
    # Numeric only: the interior cut points; bin i holds values in (edges[i-1], edges[i]].
    edges: tuple[float, ...] = ()

    def proportions(self, *, pseudo_count: float = 0.0) -> tuple[FloatArray, FloatArray]:
        ref = self.reference.astype(np.float64) + pseudo_count
        cur = self.current.astype(np.float64) + pseudo_count
        return ref / ref.sum(), cur / cur.sum()


@dataclass(frozen=True, eq=False)
class NumericPair:
    reference: NumericSummary
    current: NumericSummary

    @property
    def testable(self) -> bool:
        return self.reference.n_valid > 0 and self.current.n_valid > 0

    @property
    def out_of_range(self) -> tuple[int, int]:
        """Current values (below the reference minimum, above its maximum)."""
        ref, cur = self.reference.sorted_values, self.current.sorted_values
        if ref.shape[0] == 0 or cur.shape[0] == 0:
            return 0, 0
        below = int(np.searchsorted(cur, ref[0], side="left"))
        above = int(cur.shape[0] - np.searchsorted(cur, ref[-1], side="right"))
        return below, above

    @property
    def reference_std(self) -> float:
        return profile(self.reference).std_dev or 0.0  # cached with the baseline

    @cached_property
    def ecdf_gap(self) -> tuple[FloatArray, FloatArray]:
        """(merged sorted values, reference CDF minus current CDF after each merged value).

        The CDFs are right-continuous, as in scipy's ``wasserstein_distance``;
        within a run of tied values only the last position holds the true gap,
        but ties are zero-width, so the Wasserstein integral is exact. One stable argsort of the two already-sorted samples
        merges them in linear time; a running count of reference values then
        gives both CDFs, with no binary search.
        """
        ref = self.reference.sorted_values
        cur = self.current.sorted_values
        n_ref, n_cur = ref.shape[0], cur.shape[0]
        both = np.concatenate([ref, cur])
        order = np.argsort(both, kind="stable")
        merged = both[order]
        refs_so_far = np.cumsum(order < n_ref)
        curs_so_far = np.arange(1, n_ref + n_cur + 1)
        curs_so_far -= refs_so_far
        # Same arithmetic as refs/n_ref - curs/n_cur, in place to spare two 2M-element temporaries.
        gap = refs_so_far / n_ref
        gap -= curs_so_far / n_cur
        return merged, gap

    @cached_property
    def ks_statistic(self) -> float:
        """The two-sample KS statistic, exactly as scipy's ks_2samp computes it."""
        return ks_statistic_by_grid(self.reference.sorted_values, self.current.sorted_values)

    def binned(self, n_bins: int) -> BinnedCounts:
        """Counts in ``n_bins`` quantile bins of the reference (deciles for 10).

        Cut points are the reference's k/n_bins quantiles (numpy's default linear
        interpolation), de-duplicated when the reference has ties, so a column
        with few distinct values gets fewer, never empty-by-construction, bins.
        The outer bins are open: current values beyond the reference's range fall
        into the first or last bin.
        """
        cached: dict[int, BinnedCounts] = self.__dict__.setdefault("_binned", {})
        if n_bins not in cached:
            edges = quantile_edges(self.reference.sorted_values, n_bins)
            cached[n_bins] = BinnedCounts(
                reference=counts_in_bins(self.reference.sorted_values, edges),
                current=counts_in_bins(self.current.sorted_values, edges),
                labels=bin_labels(edges),
                edges=tuple(float(e) for e in edges),
            )
        return cached[n_bins]


# A category gets its own bin in the binned tests (chi-squared, PSI, JS, KL) when its pooled
# count (reference plus current) gives at least this many expected values in the smaller sample
# (Cochran's rule); rarer ones and new values share one "other" bin. Chosen by pooled counts,
# never by the reference's alone: bins picked where the reference happened to be high would
# make every window look lower there (regression to the mean), a false alarm by construction.
MIN_EXPECTED_COUNT = 5
# Sketches count the current values of this many of the reference's most frequent categories one
# by one; the rest of the reference's categories are known (for the unseen-values check) only.
MAX_TRACKED_CATEGORIES = 1000
OTHER_LABEL = "(other: rare and new values)"
# How many unseen categories a result names (the most frequent first).
SHOWN_UNSEEN = 20


@dataclass(frozen=True, eq=False)
class CategoricalReference:
    """The reference side of a categorical column, arranged for both engines: its tracked
    categories (the most frequent ``MAX_TRACKED_CATEGORIES``), which of them are binned on their
    own (``MIN_EXPECTED_COUNT``), and the counts of every other reference category."""

    tracked: tuple[str, ...]  # most frequent first, ties by label
    tracked_counts: IntArray
    untracked_counts: IntArray  # counts of the reference categories not tracked
    labels: tuple[str, ...]  # every reference category, for the unseen-values check
    n_missing: int
    reference_profile: ColumnProfile

    @classmethod
    def from_summary(cls, summary: CategoricalSummary) -> CategoricalReference:
        cached: CategoricalReference | None = _REFERENCES.get(summary)
        if cached is not None:
            return cached
        order = np.argsort(-summary.counts, kind="stable")  # labels are sorted: ties by label
        top, rest = order[:MAX_TRACKED_CATEGORIES], order[MAX_TRACKED_CATEGORIES:]
        made = cls(
            tracked=tuple(summary.labels[i] for i in top),
            tracked_counts=summary.counts[top].astype(np.int64),
            untracked_counts=summary.counts[rest].astype(np.int64),
            labels=summary.labels,
            n_missing=summary.n_missing,
            reference_profile=profile(summary),
        )
        _REFERENCES[summary] = made
        return made

    @property
    def n_valid(self) -> int:
        return int(self.tracked_counts.sum() + self.untracked_counts.sum())

    @property
    def n_total(self) -> int:
        return self.n_valid + self.n_missing

    @cached_property
    def index(self) -> pd.Index:
        """Every reference category, hashed once for membership tests."""
        return pd.Index(self.labels, dtype=object)

    def __getstate__(self) -> dict[str, object]:
        # Shipped to Spark executors without the hash table, which they rebuild on first use.
        return {k: v for k, v in self.__dict__.items() if k != "index"}

    @cached_property
    def label_order(self) -> np.ndarray:
        """Positions in ``tracked`` sorted by label: the bins' order."""
        return np.argsort(np.asarray(self.tracked, dtype=object), kind="stable")


_REFERENCES: weakref.WeakKeyDictionary[CategoricalSummary, CategoricalReference] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class UnseenProfile:
    """What the unseen-values check needs: the observed unseen count and, grouped by pooled count
    (reference plus current values of a category), how many categories have each count.

    Exact from full counts. From a sketch it is an upper bound, category by category, on the
    chance of a category being entirely current: untracked reference categories are taken to
    have no current value, frequent-items counts are lower bounds, and the other unseen values
    are taken one category each; ``tail_values`` and ``tail_categories_at_most`` (a distinct-count
    sketch's upper bound) let the expected count use a tighter bound than one-value categories.
    """

    observed: int
    pooled_counts: IntArray
    categories: IntArray
    exact: bool = True
    tail_values: int = 0
    tail_categories_at_most: float = 0.0
    # A sketch's stated errors, recorded with the check.
    sketch_errors: tuple[tuple[str, float], ...] = ()


class CategoricalComparison:
    """A categorical reference beside a current side (exact summary or sketch): everything the
    categorical tests read, from a few primitives each engine provides."""

    @property
    def side(self) -> CategoricalReference:
        raise NotImplementedError

    @property
    def tracked_current(self) -> IntArray:
        """Current counts of the reference's tracked categories, in ``side.tracked`` order."""
        raise NotImplementedError

    @property
    def current_valid(self) -> int:
        raise NotImplementedError

    @property
    def unseen_categories(self) -> tuple[str, ...]:
        """The most frequent ``SHOWN_UNSEEN`` current categories the reference lacks."""
        raise NotImplementedError

    @property
    def unseen_distinct(self) -> float:
        """How many current categories the reference lacks (estimated from a sketch)."""
        raise NotImplementedError

    @property
    def unseen_share(self) -> float:
        raise NotImplementedError

    def unseen_profile(self) -> UnseenProfile:
        raise NotImplementedError

    @property
    def testable(self) -> bool:
        return self.side.n_valid > 0 and self.current_valid > 0

    @cached_property
    def table(self) -> BinnedCounts:
        """Counts of both samples in the bins: each tracked reference category with enough
        pooled values (``MIN_EXPECTED_COUNT``; label order), then one "other" bin for the rest.

        When the reference has more categories than are tracked, a tracked category also needs
        at least twice the reference count of the most frequent untracked one, so that which
        categories were tracked (chosen by the reference's counts) cannot pick it by chance.
        """
        side = self.side
        n_ref, n_cur = side.n_valid, self.current_valid
        share = min(n_ref, n_cur) / (n_ref + n_cur) if n_ref + n_cur else 0.0
        pooled = side.tracked_counts + self.tracked_current
        enough = pooled * share >= MIN_EXPECTED_COUNT
        if side.untracked_counts.size:
            enough &= side.tracked_counts >= 2 * int(side.untracked_counts.max())
        own = side.label_order[enough[side.label_order]]
        ref = self.side.tracked_counts[own]
        cur = self.tracked_current[own]
        labels = tuple(self.side.tracked[i] for i in own)
        ref_other = self.side.n_valid - int(ref.sum())
        cur_other = self.current_valid - int(cur.sum())
        if ref_other or cur_other or not labels:
            ref, cur = np.append(ref, ref_other), np.append(cur, cur_other)
            labels = (*labels, OTHER_LABEL)
        return BinnedCounts(
            reference=ref.astype(np.int64), current=cur.astype(np.int64), labels=labels
        )

    def binned(self, n_bins: int) -> BinnedCounts:
        """Categories are the bins: ``n_bins`` does not apply."""
        return self.table


@dataclass(frozen=True, eq=False)
class CategoricalPair(CategoricalComparison):
    """Exact summaries of both sides (the exact engine)."""

    reference: CategoricalSummary
    current: CategoricalSummary

    @property
    def side(self) -> CategoricalReference:
        return CategoricalReference.from_summary(self.reference)

    @property
    def current_valid(self) -> int:
        return self.current.n_valid

    @cached_property
    def tracked_current(self) -> IntArray:
        return _counts_of(self.current, self.side.tracked)

    @cached_property
    def _unseen_mask(self) -> np.ndarray:
        current = pd.Index(self.current.labels, dtype=object)
        return np.asarray(~current.isin(self.side.index), dtype=bool)

    @property
    def unseen_categories(self) -> tuple[str, ...]:
        """The most frequent ``SHOWN_UNSEEN`` current categories the reference lacks."""
        positions = np.flatnonzero(self._unseen_mask)
        order = positions[np.argsort(-self.current.counts[positions], kind="stable")]
        return tuple(self.current.labels[i] for i in order[:SHOWN_UNSEEN])

    @property
    def unseen_distinct(self) -> float:
        return float(np.count_nonzero(self._unseen_mask))

    @property
    def unseen_count(self) -> int:
        return int(self.current.counts[self._unseen_mask].sum())

    @property
    def unseen_share(self) -> float:
        n = self.current.n_valid
        return 0.0 if n == 0 else self.unseen_count / n

    def unseen_profile(self) -> UnseenProfile:
        reference = pd.Series(self.reference.counts, index=pd.Index(self.reference.labels))
        current = pd.Series(self.current.counts, index=pd.Index(self.current.labels))
        pooled = reference.add(current, fill_value=0).to_numpy(dtype=np.int64)
        values, categories = np.unique(pooled, return_counts=True)
        return UnseenProfile(self.unseen_count, values, categories.astype(np.int64))


def _counts_of(summary: CategoricalSummary, labels: tuple[str, ...]) -> IntArray:
    """Counts of ``labels`` in ``summary`` (0 for labels it lacks)."""
    if not labels:
        return np.zeros(0, dtype=np.int64)
    index = pd.Index(summary.labels)
    positions = index.get_indexer(pd.Index(labels)) if len(index) else np.full(len(labels), -1)
    found = np.where(positions >= 0, summary.counts[np.maximum(positions, 0)], 0)
    return np.asarray(found, dtype=np.int64)


Pair = NumericPair | CategoricalComparison


class _Counted(Protocol):
    @property
    def n_valid(self) -> int: ...


class BinnablePair(Protocol):
    """What the binned tests (PSI, KL, JS) need: exact or streaming pairs both provide it."""

    @property
    def reference(self) -> _Counted: ...

    @property
    def current(self) -> _Counted: ...

    @property
    def testable(self) -> bool: ...

    def binned(self, n_bins: int) -> BinnedCounts: ...


# Cut points of the coarse pass of ks_statistic_by_grid: the reference's 1/4096 quantiles.
KS_GRID_BINS = 4096


def ks_statistic_by_grid(
    reference: FloatArray, current: FloatArray, *, grid_bins: int = KS_GRID_BINS
) -> float:
    """The largest gap between the two empirical CDFs, without merging the samples.

    Both inputs are sorted. Coarse pass: both CDFs at the reference's quantile
    edges, by binary search (a few thousand lookups). Between two edges each
    CDF only rises, so the gap inside a bin is bounded by the CDF values at its
    ends; only bins whose bound beats the best gap found so far can hold the
    maximum, and only the values inside those bins are looked at. The gap is
    evaluated at data points and edges with the same counts-over-sizes
    arithmetic as scipy's ks_2samp, so the result is the same number; it costs
    a sort of the current data plus a small fraction of a full merge.
    """
    n_ref, n_cur = reference.shape[0], current.shape[0]
    edges = np.unique(sorted_quantiles(reference, np.arange(1, grid_bins) / grid_bins))
    ref_upto = np.searchsorted(reference, edges, side="right")
    cur_upto = np.searchsorted(current, edges, side="right")
    gaps = ref_upto / n_ref - cur_upto / n_cur
    best = float(np.max(np.abs(gaps))) if gaps.size else 0.0
    # Bin k is the open interval (edge k-1, edge k); outer bins reach the sample ends.
    ref_start = np.concatenate([[0], ref_upto])
    cur_start = np.concatenate([[0], cur_upto])
    ref_stop = np.append(np.searchsorted(reference, edges, side="left"), n_ref)
    cur_stop = np.append(np.searchsorted(current, edges, side="left"), n_cur)
    bound = np.maximum(ref_stop / n_ref - cur_start / n_cur, cur_stop / n_cur - ref_start / n_ref)
    candidates = np.flatnonzero(bound > best)
    if candidates.size:
        values = np.concatenate(
            [
                reference[a:b]
                for a, b in zip(ref_start[candidates], ref_stop[candidates], strict=True)
            ]
            + [
                current[a:b]
                for a, b in zip(cur_start[candidates], cur_stop[candidates], strict=True)
            ]
        )
        if values.size:
            inside = (
                np.searchsorted(reference, values, side="right") / n_ref
                - np.searchsorted(current, values, side="right") / n_cur
            )
            best = max(best, float(np.max(np.abs(inside))))
    return best


def quantile_edges(sorted_reference: FloatArray, n_bins: int) -> FloatArray:
    """Interior cut points at the reference's k/n_bins quantiles, ties removed."""
    levels = np.arange(1, n_bins) / n_bins
    return np.unique(sorted_quantiles(sorted_reference, levels))


def sorted_quantiles(sorted_values: FloatArray, levels: FloatArray) -> FloatArray:
    """``np.quantile(values, levels)`` (linear interpolation) for already-sorted values.

    Indexing the sorted array directly avoids the partition ``np.quantile``
    would do on every call; the interpolation is numpy's own formula.
    """
    position = levels * (sorted_values.shape[0] - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, sorted_values.shape[0] - 1)
    fraction = position - below
    low, high = sorted_values[below], sorted_values[above]
    diff = high - low
    # numpy's lerp: interpolate from the nearer end, so t = 1 returns the upper value exactly.
    interpolated = np.where(fraction >= 0.5, high - diff * (1 - fraction), low + diff * fraction)
    return np.asarray(interpolated, dtype=np.float64)


def counts_in_bins(sorted_values: FloatArray, edges: FloatArray) -> IntArray:
    """How many values fall in each right-closed bin; O(bins * log n) on sorted values."""
    upto = np.searchsorted(sorted_values, edges, side="right")
    bounds = np.concatenate([[0], upto, [sorted_values.shape[0]]])
    return np.diff(bounds).astype(np.int64)


def bin_labels(edges: FloatArray) -> tuple[str, ...]:
    bounds = ["-inf", *(f"{e:.6g}" for e in edges), "inf"]
    return tuple(f"({lo}, {hi}]" for lo, hi in itertools.pairwise(bounds))
