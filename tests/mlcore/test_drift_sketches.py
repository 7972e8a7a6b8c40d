"""Sketches a platform team can trust (issue 28, items 1, 2 and 4): a sketch never grades above
the exact engine for lack of precision, its memory does not grow with a column's cardinality,
its errors are stated and hold, and the domain classifier's sample does not depend on how the
data was cut into chunks. The Spark engine grades these same sketches (test_drift_spark.py).
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from mlcore.data import DatasetSpec
from mlcore.drift import build_baseline, detect_drift
from mlcore.drift.categorical_sketch import FREQUENT_ITEMS, DistinctCount, FrequentItems
from mlcore.drift.pairs import MAX_TRACKED_CATEGORIES, CategoricalReference
from mlcore.drift.streaming import StreamingPlan, detect_drift_streaming
from mlcore.drift.summaries import CategoricalSummary
from mlcore.settings import DriftSettings

QUICK = DriftSettings(domain_classifier={"enabled": False})
HEAVY = DatasetSpec(target="y", numeric=("pareto", "t15", "lognormal", "outliers"))


def heavy_tails(rng: np.random.Generator, n: int) -> pd.DataFrame:
    outliers = rng.normal(size=n)
    outliers[rng.random(n) < 0.001] = 1e6
    return pd.DataFrame(
        {
            "pareto": rng.pareto(1.0, n) + 1,
            "t15": rng.standard_t(1.5, n),
            "lognormal": rng.lognormal(0, 2, n),
            "outliers": outliers,
            "y": 0,
        }
    )


@pytest.fixture(scope="module")
def heavy_baseline() -> tuple[object, pd.DataFrame]:
    rng = np.random.default_rng(7)
    return build_baseline(heavy_tails(rng, 200_000), HEAVY, QUICK), heavy_tails(rng, 200_000)


def test_nothing_that_matters_planted_on_heavy_tails_grades_none_on_every_engine(
    heavy_baseline: tuple[object, pd.DataFrame],
) -> None:
    # The sketch graded the midpoint of its Wasserstein bounds, inflated 10-70x on heavy tails
    # by grid bins stretching to the extremes: a 0.3% pile at a Pareto column's minimum (real,
    # far too small to matter; exact grades none) graded major from the sketch.
    baseline, current = heavy_baseline
    rng = np.random.default_rng(8)
    current = current.assign(t15=current["t15"] + 0.02)
    current.loc[rng.random(len(current)) < 0.003, "pareto"] = 1.0
    exact = detect_drift(baseline, current, settings=QUICK)  # type: ignore[arg-type]
    chunks = [current.iloc[i : i + 50_000] for i in range(0, len(current), 50_000)]
    streamed = detect_drift_streaming(baseline, chunks, settings=QUICK)  # type: ignore[arg-type]
    for name in HEAVY.numeric:
        assert exact.feature(name).grade == "none", name
        assert streamed.feature(name).grade == "none", name
        sketch, truth = streamed.feature(name).primary, exact.feature(name).primary
        assert sketch.statistic <= truth.statistic + 1e-12  # graded on the lower bound
        assert sketch.parameters["plug_in_lower"] <= truth.parameters["plug_in"] + 1e-12
        assert truth.parameters["plug_in"] <= sketch.parameters["plug_in_upper"] + 1e-12


def test_planted_changes_on_heavy_tails_are_still_found_by_the_sketch(
    heavy_baseline: tuple[object, pd.DataFrame],
) -> None:
    baseline, current = heavy_baseline
    planted = current.assign(pareto=current["pareto"] * 1.3, t15=current["t15"] + 0.3)
    streamed = detect_drift_streaming(baseline, [planted], settings=QUICK)  # type: ignore[arg-type]
    assert streamed.feature("pareto").grade == "major"
    assert streamed.feature("t15").grade == "major"


def _ids(start: int, n: int) -> pd.Series:
    return pd.Series(np.char.add("session-", np.arange(start, start + n).astype(str)))


def test_a_partial_sketch_of_an_id_column_stays_small_whatever_the_rows() -> None:
    # Category counts were exact Python dicts: a session-id column made a partial 51 MB at
    # 10M rows. The bounded sketch's size does not grow with the rows or the cardinality.
    spec = DatasetSpec(target="y", categorical=("session",))
    reference = pd.DataFrame({"session": _ids(0, 20_000), "y": 0})
    plan = StreamingPlan.from_baseline(build_baseline(reference, spec, QUICK), QUICK)
    sizes = {}
    for rows in (50_000, 400_000):
        total = plan.empty_sketch()
        for start in range(0, rows, 50_000):
            total = total.merge(plan.sketch(pd.DataFrame({"session": _ids(10**8 + start, 50_000)})))
        sizes[rows] = len(pickle.dumps(total))
        assert total.columns["session"].n_valid == rows
    assert sizes[400_000] <= sizes[50_000] * 1.1
    assert sizes[400_000] < 200_000  # bytes: tracked counts, 256 labels, 4,096 registers


def test_the_frequent_items_and_distinct_count_errors_hold_as_stated() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate(
        [np.repeat([f"hot{i}" for i in range(10)], 5_000), [f"cold{i}" for i in range(150_000)]]
    )
    rng.shuffle(values)
    parts = np.array_split(values, 7)
    frequent, distinct = FrequentItems(), DistinctCount()
    for part in parts:
        counts = pd.Series(part).value_counts(sort=False)
        frequent = frequent.merge(FrequentItems.of_counts(counts))
        distinct = distinct.merge(DistinctCount.of_labels(pd.Index(pd.unique(part))))
    true = pd.Series(values).value_counts()
    assert len(frequent.labels) <= FREQUENT_ITEMS and frequent.error > 0
    for label, kept in zip(frequent.labels, frequent.counts, strict=True):
        assert true[label] - frequent.error <= kept <= true[label]  # Misra-Gries' guarantee
    assert {f"hot{i}" for i in range(10)} <= set(frequent.labels)  # more than n / (k+1) each
    relative = abs(distinct.estimate - true.size) / true.size
    assert relative <= 3 * distinct.relative_error
    assert distinct.upper_bound >= true.size


def test_an_id_column_grades_no_higher_from_the_sketch_than_exactly() -> None:
    # Fresh identifiers are expected; an id column turning into one value is not. Where the
    # sketch had to drop labels, its unseen-values check is an upper bound of chance: never a
    # higher grade than the exact engine's.
    spec = DatasetSpec(target="y", categorical=("session",))
    reference = pd.DataFrame({"session": _ids(0, 5_000), "y": 0})
    baseline = build_baseline(reference, spec, QUICK)
    fresh = pd.DataFrame({"session": _ids(10**6, 5_000)})
    stuck = pd.DataFrame({"session": np.r_[_ids(10**6, 2_500), np.full(2_500, "UNKNOWN")]})
    assert MAX_TRACKED_CATEGORIES < 5_000  # the reference's ids are mostly untracked
    for current, expected in ((fresh, "none"), (stuck, "major")):
        exact = detect_drift(baseline, current, settings=QUICK).feature("session")
        sketch = detect_drift_streaming(baseline, [current], settings=QUICK).feature("session")
        assert exact.grade == sketch.grade == expected
        found = sketch.check("unseen_values")
        assert (
            found.parameters["from_sketch"]
            and not exact.check("unseen_values").parameters["from_sketch"]
        )
        assert (
            found.parameters["distinct_unseen_upper_bound"]
            >= found.parameters["distinct_unseen_estimate"]
        )
        assert found.statistic <= exact.check("unseen_values").statistic


def test_a_low_cardinality_sketch_is_exact() -> None:
    rng = np.random.default_rng(4)
    summary = CategoricalSummary.from_values(rng.choice(["a", "b", "c"], 3000))
    reference = CategoricalReference.from_summary(summary)
    assert reference.untracked_counts.size == 0
    spec = DatasetSpec(target="y", categorical=("c",))
    frame = pd.DataFrame({"c": rng.choice(["a", "b", "c"], 3000), "y": 0})
    current = pd.DataFrame({"c": np.r_[rng.choice(["a", "b"], 2700), np.full(300, "new")]})
    baseline = build_baseline(frame, spec, QUICK)
    exact = detect_drift(baseline, current, settings=QUICK).feature("c")
    sketch = detect_drift_streaming(baseline, [current[:1000], current[1000:]], settings=QUICK)
    assert sketch.feature("c").checks == exact.checks
    assert sketch.feature("c").tests == exact.tests


def test_the_domain_classifier_sees_the_same_rows_whatever_the_chunks_or_their_order() -> None:
    # Each chunk's sample used to be seeded by its position: the AUC, and near the bands the
    # grade, moved with the layout. The sample is now the rows with the smallest content hash.
    rng = np.random.default_rng(5)
    spec = DatasetSpec(target="y", numeric=("a", "b"), categorical=("c",))

    def frame(n: int, shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "a": rng.normal(shift, size=n),
                "b": rng.normal(size=n),
                "c": rng.choice(["x", "y", "z"], n),
                "y": 0,
            }
        )

    settings = DriftSettings(domain_classifier={"max_rows": 1000})
    baseline = build_baseline(frame(4000, 0.0), spec, settings)
    current = frame(4000, 0.15).drop(columns="y")
    layouts = {
        "whole": [current],
        "chunks of 700": [current.iloc[i : i + 700] for i in range(0, 4000, 700)],
        "reversed chunks": [current.iloc[i : i + 999] for i in range(0, 4000, 999)][::-1],
        "shuffled rows": [current.sample(frac=1.0, random_state=1)],
    }
    aucs = {
        name: detect_drift_streaming(baseline, chunks, settings=settings).domain_classifier
        for name, chunks in layouts.items()
    }
    exact = detect_drift(baseline, current, settings=settings).domain_classifier
    assert exact is not None
    values = {name: result.statistic for name, result in aucs.items() if result is not None}
    assert len(values) == len(layouts)
    assert set(values.values()) == {exact.statistic}
