"""A bounded, mergeable summary of current categorical values: what the sketch engines keep.

Memory does not grow with the number of categories (an identifier column of ten
million values takes as little as a column of three). For one column it holds:

* the current count of each of the reference's tracked categories (at most
  ``pairs.MAX_TRACKED_CATEGORIES``), exact;
* the count of current values in the reference's other categories, exact;
* the count of values the reference never showed, exact, and for those values
  a frequent-items sketch (Misra and Gries 1982, merged as Agarwal et al., "Mergeable
  summaries", PODS 2012, show: counters added, then the (k+1)-th largest subtracted)
  of at most ``FREQUENT_ITEMS`` labels, whose counts are lower bounds within
  ``error`` of the truth, and a HyperLogLog distinct count (Flajolet, Fusy, Gandouet
  and Meunier 2007, with linear counting for small counts as in Heule, Nunkesser
  and Hall 2013) of 2^``HLL_PRECISION`` registers, relative standard error
  1.04 / sqrt(registers) (1.6%), reported with its upper bound at
  ``HLL_BOUND_SIGMAS`` standard errors;
* the missing count.

This is the layout whylogs (frequent items and an HLL per column, from Apache
DataSketches) and Deequ (HLL++ for distinct counts) use; it is written here with
numpy so a chunk updates the sketch in a few vectorised operations (DataSketches'
Python binding updates one value per call: ten million calls for an id column).
The binned tests (chi-squared, PSI, JS, KL) read only the tracked counts and the
rest, so they are exact from this sketch; the unseen-values check reads an upper
bound of its chance model (``pairs.UnseenProfile``), exact whenever no reference
category went untracked and the frequent-items sketch never had to drop a label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from mlcore.drift.pairs import (
    SHOWN_UNSEEN,
    CategoricalComparison,
    CategoricalReference,
    UnseenProfile,
)
from mlcore.drift.profiles import ColumnProfile
from mlcore.drift.summaries import IntArray, category_labels

FREQUENT_ITEMS = 256
HLL_PRECISION = 12
HLL_BOUND_SIGMAS = 3.0
_REGISTERS = 1 << HLL_PRECISION


@dataclass(frozen=True, eq=False)
class FrequentItems:
    """Misra-Gries counters: each kept count is at most ``error`` below the true one, and a label
    not kept occurs at most ``error`` times."""

    labels: tuple[str, ...] = ()
    counts: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    error: int = 0

    @classmethod
    def of_counts(cls, counts: pd.Series) -> FrequentItems:
        return cls(
            labels=tuple(map(str, counts.index)), counts=counts.to_numpy(dtype=np.int64)
        ).shrunk()

    def merge(self, other: FrequentItems) -> FrequentItems:
        combined = pd.concat(
            [
                pd.Series(self.counts, index=pd.Index(self.labels, dtype=object)),
                pd.Series(other.counts, index=pd.Index(other.labels, dtype=object)),
            ]
        )
        summed = combined.groupby(level=0, sort=True).sum()
        return FrequentItems(
            labels=tuple(map(str, summed.index)),
            counts=summed.to_numpy(dtype=np.int64),
            error=self.error + other.error,
        ).shrunk()

    def shrunk(self) -> FrequentItems:
        if len(self.labels) <= FREQUENT_ITEMS:
            return self
        # Subtract the (k+1)-th largest count from every counter and drop those left at 0.
        cut = int(np.partition(self.counts, -(FREQUENT_ITEMS + 1))[-(FREQUENT_ITEMS + 1)])
        left = self.counts - cut
        keep = np.flatnonzero(left > 0)
        return FrequentItems(
            labels=tuple(self.labels[i] for i in keep),
            counts=left[keep].astype(np.int64),
            error=self.error + cut,
        )


@dataclass(frozen=True, eq=False)
class DistinctCount:
    """HyperLogLog registers: the largest leading-zero run (plus one) of hashed values per bucket."""

    registers: np.ndarray = field(default_factory=lambda: np.zeros(_REGISTERS, dtype=np.uint8))

    @classmethod
    def of_labels(cls, labels: pd.Index) -> DistinctCount:
        registers = np.zeros(_REGISTERS, dtype=np.uint8)
        if len(labels):
            # pandas' hash is seeded with a fixed key: the same label hashes alike everywhere.
            hashed = pd.util.hash_array(np.asarray(labels, dtype=object))
            bucket = (hashed >> np.uint64(64 - HLL_PRECISION)).astype(np.int64)
            rest = (hashed << np.uint64(HLL_PRECISION)) | np.uint64((1 << HLL_PRECISION) - 1)
            # Leading zeros of the remaining bits plus one (the low bits set bound the run).
            rank = (64 - np.floor(np.log2(rest.astype(np.float64))).astype(np.int64)).astype(
                np.uint8
            )
            np.maximum.at(registers, bucket, rank)
        return cls(registers)

    def merge(self, other: DistinctCount) -> DistinctCount:
        return DistinctCount(np.maximum(self.registers, other.registers))

    @property
    def estimate(self) -> float:
        m = float(_REGISTERS)
        alpha = 0.7213 / (1 + 1.079 / m)
        raw = alpha * m * m / float(np.sum(np.exp2(-self.registers.astype(np.float64))))
        empty = int(np.count_nonzero(self.registers == 0))
        if raw <= 2.5 * m and empty:
            return m * math.log(m / empty)  # linear counting for small cardinalities
        return raw

    @property
    def relative_error(self) -> float:
        return 1.04 / math.sqrt(_REGISTERS)

    @property
    def upper_bound(self) -> float:
        return self.estimate * (1 + HLL_BOUND_SIGMAS * self.relative_error)


@dataclass(frozen=True, eq=False)
class CategoricalSketch:
    """Mergeable, bounded summary of current categorical values against one reference."""

    tracked: IntArray  # current counts of the reference's tracked categories
    other_known: int = 0  # current values in untracked reference categories
    unseen: int = 0  # current values in categories the reference lacks
    frequent_unseen: FrequentItems = field(default_factory=FrequentItems)
    distinct_unseen: DistinctCount = field(default_factory=DistinctCount)
    n_missing: int = 0

    @property
    def n_valid(self) -> int:
        return int(self.tracked.sum()) + self.other_known + self.unseen

    @property
    def n_total(self) -> int:
        return self.n_valid + self.n_missing

    @property
    def invalid_rate(self) -> float:
        return 0.0 if self.n_total == 0 else self.n_missing / self.n_total

    @classmethod
    def empty(cls, reference: CategoricalReference) -> CategoricalSketch:
        return cls(tracked=np.zeros(len(reference.tracked), dtype=np.int64))

    @classmethod
    def of_values(cls, values: pd.Series, reference: CategoricalReference) -> CategoricalSketch:
        n_missing = int(values.isna().sum())
        counts = category_labels(values.dropna()).value_counts(sort=False)
        labels = pd.Index(counts.index, dtype=object)
        numbers = counts.to_numpy(dtype=np.int64)
        tracked = np.zeros(len(reference.tracked), dtype=np.int64)
        position = pd.Index(reference.tracked, dtype=object).get_indexer(labels)
        hit = position >= 0
        np.add.at(tracked, position[hit], numbers[hit])
        known = labels[~hit].isin(reference.index)
        new = ~hit
        new[new] = ~known
        unseen_counts = pd.Series(numbers[new], index=labels[new])
        return cls(
            tracked=tracked,
            other_known=int(numbers[~hit][known].sum()),
            unseen=int(numbers[new].sum()),
            frequent_unseen=FrequentItems.of_counts(unseen_counts),
            distinct_unseen=DistinctCount.of_labels(labels[new]),
            n_missing=n_missing,
        )

    def merge(self, other: CategoricalSketch) -> CategoricalSketch:
        return CategoricalSketch(
            tracked=self.tracked + other.tracked,
            other_known=self.other_known + other.other_known,
            unseen=self.unseen + other.unseen,
            frequent_unseen=self.frequent_unseen.merge(other.frequent_unseen),
            distinct_unseen=self.distinct_unseen.merge(other.distinct_unseen),
            n_missing=self.n_missing + other.n_missing,
        )


@dataclass(frozen=True, eq=False)
class StreamingCategoricalPair(CategoricalComparison):
    """A categorical reference beside a current sketch: what the sketch engines grade."""

    reference: CategoricalReference
    current: CategoricalSketch

    @property
    def side(self) -> CategoricalReference:
        return self.reference

    @property
    def current_valid(self) -> int:
        return self.current.n_valid

    @property
    def tracked_current(self) -> IntArray:
        return self.current.tracked

    @cached_property
    def _lossless(self) -> bool:
        """Whether the sketch kept every unseen label with its exact count."""
        return self.current.frequent_unseen.error == 0

    @property
    def unseen_categories(self) -> tuple[str, ...]:
        frequent = self.current.frequent_unseen
        order = sorted(
            range(len(frequent.labels)), key=lambda i: (-frequent.counts[i], frequent.labels[i])
        )
        return tuple(frequent.labels[i] for i in order[:SHOWN_UNSEEN])

    @property
    def unseen_distinct(self) -> float:
        if self._lossless:
            return float(len(self.current.frequent_unseen.labels))
        return self.current.distinct_unseen.estimate

    @property
    def unseen_count(self) -> int:
        return self.current.unseen

    @property
    def unseen_share(self) -> float:
        n = self.current.n_valid
        return 0.0 if n == 0 else self.current.unseen / n

    def unseen_profile(self) -> UnseenProfile:
        reference, current = self.reference, self.current
        frequent = current.frequent_unseen
        kept = int(frequent.counts.sum())
        tail = current.unseen - kept  # values of labels dropped or of counts' shortfall
        pooled = np.concatenate(
            [
                reference.tracked_counts + current.tracked,
                reference.untracked_counts,  # no current value assumed: a larger chance
                frequent.counts,  # lower bounds of the true counts: a larger chance
            ]
        )
        values, categories = np.unique(pooled[pooled > 0], return_counts=True)
        categories = categories.astype(np.int64)
        if tail > 0:  # one-value categories: the largest chance any value can have
            at = np.searchsorted(values, 1)
            if at < values.size and values[at] == 1:
                categories[at] += tail
            else:
                values = np.insert(values, at, 1)
                categories = np.insert(categories, at, tail)
        exact = self._lossless and reference.untracked_counts.size == 0
        distinct_tail = max(0.0, current.distinct_unseen.upper_bound - len(frequent.labels))
        return UnseenProfile(
            observed=current.unseen,
            pooled_counts=values.astype(np.int64),
            categories=categories,
            exact=exact,
            tail_values=tail,
            tail_categories_at_most=distinct_tail,
            # Recorded where the sketch is not exact (an exact one reads as the exact engine).
            sketch_errors=()
            if exact
            else (
                ("frequent_items_kept", float(len(frequent.labels))),
                ("frequent_items_count_error_at_most", float(frequent.error)),
                ("distinct_unseen_estimate", current.distinct_unseen.estimate),
                ("distinct_unseen_upper_bound", current.distinct_unseen.upper_bound),
                ("distinct_relative_standard_error", current.distinct_unseen.relative_error),
            ),
        )


def categorical_sketch_profile(
    reference: CategoricalReference, sketch: CategoricalSketch
) -> ColumnProfile:
    """The current side's descriptive statistics from its sketch: tracked categories with their
    counts, then the frequent unseen labels (counts are lower bounds when the sketch dropped any)."""
    pairs = [
        (label, int(c)) for label, c in zip(reference.tracked, sketch.tracked, strict=True) if c
    ]
    frequent = sketch.frequent_unseen
    pairs += [(label, int(c)) for label, c in zip(frequent.labels, frequent.counts, strict=True)]
    pairs.sort(key=lambda lc: (-lc[1], lc[0]))
    return ColumnProfile(
        inferred_type="String",
        num_present=sketch.n_valid,
        num_missing=sketch.n_missing,
        categories=tuple(pairs),
    )
