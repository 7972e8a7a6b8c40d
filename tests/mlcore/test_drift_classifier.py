"""Classifier-based (domain-classifier) drift: a dataset-level check of how features move
together, with a calibrated threshold and the features that separate the windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcore.data import DatasetSpec
from mlcore.drift import detect_drift
from mlcore.drift.classifier import auc_permutation_test, domain_classifier_drift
from mlcore.settings import DriftSettings

SPEC = DatasetSpec(target="y", numeric=("a", "b", "noise"), categorical=("c",))


def _rows(rng: np.random.Generator, n: int, rho: float) -> pd.DataFrame:
    a = rng.normal(size=n)
    return pd.DataFrame(
        {
            "a": a,
            "b": rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n),
            "noise": rng.normal(size=n),
            "c": rng.choice(["x", "y", "z"], n),
            "y": 0,
        }
    )


@pytest.fixture(scope="module")
def reversed_correlation() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    return _rows(rng, 3000, 0.8), _rows(rng, 3000, -0.8)


def test_a_change_no_single_column_shows_is_found_by_the_domain_classifier(
    reversed_correlation: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, current = reversed_correlation
    report = detect_drift(reference, current, spec=SPEC)
    assert report.alerting_features == ()  # every column keeps its own distribution
    classifier = report.domain_classifier
    assert classifier is not None and classifier.grade == "major"
    assert report.grade == "major" and report.dataset_drift
    assert classifier.statistic is not None and classifier.statistic > 0.8  # the AUC
    separating = [name for name, _ in classifier.parameters["separating_features"]]
    assert set(separating[:2]) == {"a", "b"} and "noise" not in separating[:2]
    assert report.to_dict()["domain_classifier"]["method"] == "domain_classifier"


def test_the_threshold_is_calibrated_to_the_sample_size() -> None:
    rng = np.random.default_rng(1)
    small = domain_classifier_drift(
        _rows(rng, 200, 0.8), _rows(rng, 200, 0.8), spec=SPEC, settings=DriftSettings()
    )
    large = domain_classifier_drift(
        _rows(rng, 4000, 0.8), _rows(rng, 4000, 0.8), spec=SPEC, settings=DriftSettings()
    )
    assert small.parameters["null_threshold"] > large.parameters["null_threshold"] > 0.5
    assert small.grade == "none" and large.grade == "none"


def test_same_distribution_rarely_looks_separable() -> None:
    rng = np.random.default_rng(2)
    grades = [
        domain_classifier_drift(
            _rows(rng, 150, 0.8),
            _rows(rng, 150, 0.8),
            spec=SPEC,
            settings=DriftSettings(),
            explain=False,
        ).grade
        for _ in range(20)
    ]
    # 5% of 20 is 1; `make calibrate` measures the rate over many more windows.
    assert sum(g != "none" for g in grades) <= 3


def test_the_auc_permutation_p_value_is_exact_under_ties() -> None:
    rng = np.random.default_rng(3)
    hits = 0
    for seed in range(300):
        scores = rng.integers(0, 3, 60).astype(float)  # heavily tied scores
        labels = rng.permutation(np.r_[np.ones(30, bool), np.zeros(30, bool)])
        hits += auc_permutation_test(scores, labels, seed=seed)[1] < 0.05
    assert hits / 300 <= 0.07


def test_below_the_minimum_window_the_classifier_is_insufficient_data() -> None:
    rng = np.random.default_rng(4)
    result = domain_classifier_drift(
        _rows(rng, 20, 0.8), _rows(rng, 20, -0.8), spec=SPEC, settings=DriftSettings()
    )
    assert result.grade == "insufficient_data" and "minimum window" in (result.note or "")


def test_the_classifier_can_be_switched_off_in_the_settings() -> None:
    rng = np.random.default_rng(5)
    report = detect_drift(
        _rows(rng, 300, 0.8),
        _rows(rng, 300, -0.8),
        spec=SPEC,
        settings=DriftSettings(domain_classifier={"enabled": False}),
    )
    assert report.domain_classifier is None and report.to_dict()["domain_classifier"] is None


def _wide_rows(rng: np.random.Generator, n: int, rho: float) -> pd.DataFrame:
    """Two correlated features among 40 noise columns and 6 categorical ones."""
    a = rng.normal(size=n)
    columns: dict[str, object] = {"a": a, "b": rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)}
    columns.update({f"n{i}": rng.normal(size=n) for i in range(40)})
    columns.update({f"c{i}": rng.choice(["p", "q", "r", "s"], n) for i in range(6)})
    return pd.DataFrame(columns)


WIDE = DatasetSpec(
    target="y",
    numeric=("a", "b", *(f"n{i}" for i in range(40))),
    categorical=tuple(f"c{i}" for i in range(6)),
)


def test_among_many_features_a_correlation_flip_ranks_its_two_features_top_every_time() -> None:
    rng = np.random.default_rng(6)
    reference, current = _wide_rows(rng, 4000, 0.6), _wide_rows(rng, 4000, -0.6)
    runs = [
        domain_classifier_drift(reference, current, spec=WIDE, settings=DriftSettings())
        for _ in range(2)
    ]
    first = runs[0]
    assert first.grade != "none" and first.p_value is not None and first.p_value < 0.025
    ranked = first.parameters["separating_features"]
    assert {name for name, _ in ranked[:2]} == {"a", "b"}
    assert all(importance > 0 and isinstance(importance, float) for _, importance in ranked)
    assert ranked[1][1] > 5 * ranked[2][1]  # the noise columns separate far less
    assert runs[1].statistic == first.statistic and runs[1].parameters == first.parameters


def test_the_float_array_encoding_fits_the_same_model_as_pandas_categoricals() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mlcore.drift.classifier import _encode

    rng = np.random.default_rng(7)
    rows = _wide_rows(rng, 3000, 0.6)
    rows.loc[rng.random(3000) < 0.05, "c0"] = None  # missing categories
    rows.loc[rng.random(3000) < 0.05, "n0"] = np.nan
    rows["c1"] = rng.choice([f"level{k:03d}" for k in range(300)], 3000)  # more than 254 kept
    y = (rows["a"] * rows["b"] + (rows["c2"] == "p") + rng.normal(size=3000) > 0.5).to_numpy()
    names, x, is_categorical = _encode(rows, WIDE)
    options = {"max_iter": 30, "max_leaf_nodes": 15, "early_stopping": False, "random_state": 0}
    ours = HistGradientBoostingClassifier(categorical_features=is_categorical, **options)
    ours.fit(x[:2000], y[:2000])
    # The former input: a frame in the original column order, categories as pandas categoricals
    # of their text (the 254 most frequent kept, in order of frequency).
    frame = rows.copy()
    for name in WIDE.categorical:
        text = rows[name].astype(object).where(rows[name].notna(), None)
        frequent = text.value_counts().index[:254]
        frame[name] = pd.Categorical(text.where(text.isin(frequent), None), categories=frequent)
    pandas_path = HistGradientBoostingClassifier(categorical_features="from_dtype", **options)
    pandas_path.fit(frame.iloc[:2000], y[:2000])
    np.testing.assert_array_equal(
        ours.predict_proba(x[2000:]), pandas_path.predict_proba(frame.iloc[2000:])
    )
    assert names[:6] == [f"c{i}" for i in range(6)] and is_categorical.sum() == 6
    assert np.nanmax(x[:, names.index("c1")]) == 253  # the 254 most frequent levels kept
