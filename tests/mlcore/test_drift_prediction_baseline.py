"""The prediction baseline (issue 11, finding 10; issue 21, finding 7): classifiers are watched on
the predicted-class mix as well as the score, multiclass ones on every class's probability; the
baseline is large enough to mean something; it is never built from in-sample predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris

from mlcore.data import DatasetSpec, infer_spec, split_frame
from mlcore.drift import Baseline, build_baseline, detect_drift
from mlcore.drift.streaming import detect_drift_streaming
from mlcore.model import BASELINE_DIR, ModelBundle, probability_column
from mlcore.settings import DriftSettings, TrainingSettings
from mlcore.train import (
    _out_of_fold_predictions,
    monitored_outputs,
    save_trained_model,
    train_model,
)

QUICK = DriftSettings(domain_classifier={"enabled": False})
FOREST = TrainingSettings(algorithm="random_forest", hyperparameters={"n_estimators": 30}, seed=3)


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, DatasetSpec]:
    frame = load_iris(as_frame=True).frame.rename(columns={"target": "species"})
    return frame, infer_spec(frame, target="species")


def _baseline(model_dir: Path) -> Baseline:
    return Baseline.load(model_dir / BASELINE_DIR)


def test_a_classifier_is_monitored_on_its_predicted_class_mix_and_its_score(
    tmp_path: Path, iris: tuple[pd.DataFrame, DatasetSpec]
) -> None:
    frame, spec = iris
    split = split_frame(frame, spec, seed=0)
    bundle = train_model(split.train, spec, FOREST, validation=split.validation)
    baseline = _baseline(
        save_trained_model(bundle, tmp_path, reference=split.validation, training=split.train)
    )
    kinds = {c.name: c.kind for c in baseline.columns if c.role == "prediction"}
    probabilities = {probability_column(c): "numeric" for c in bundle.classes}
    assert kinds == {"prediction": "categorical", "score": "numeric", **probabilities}
    # The class mix moves when a window sees one species only: prediction drift.
    one_species = frame[frame["species"] == 2]
    current = pd.concat([one_species] * 3, ignore_index=True)
    current = pd.concat([current, bundle.predict(current)], axis=1)
    report = detect_drift(baseline, current, settings=QUICK)
    assert report.feature("prediction").kind == "categorical"
    assert report.feature("prediction").grade == "major" and report.prediction_drift


def test_a_small_validation_split_is_completed_with_out_of_fold_predictions(
    tmp_path: Path, iris: tuple[pd.DataFrame, DatasetSpec]
) -> None:
    # Finding 10: the baseline was the validation split only (22 rows for iris).
    frame, spec = iris
    split = split_frame(frame, spec, seed=0)
    assert len(split.validation) < 30
    bundle = train_model(split.train, spec, FOREST, validation=split.validation)
    model_dir = save_trained_model(
        bundle, tmp_path, reference=split.validation, training=split.train
    )
    baseline = _baseline(model_dir)
    rows = len(split.train) + len(split.validation)
    assert baseline.column("prediction").summary.n_total == rows
    assert baseline.rows == rows  # features and labels: every row the model was built from
    assert "out-of-fold" in (baseline.prediction_source or "")
    assert ModelBundle.load(model_dir).metadata["drift_baseline"]["prediction_rows"] == rows


def test_without_validation_data_the_baseline_is_out_of_fold_never_in_sample(
    tmp_path: Path, iris: tuple[pd.DataFrame, DatasetSpec]
) -> None:
    # Finding 10: without --validation, in-sample scores became the baseline.
    frame, spec = iris
    noisy = frame.assign(
        **{c: frame[c] + np.random.default_rng(1).normal(0, 0.8, len(frame)) for c in spec.numeric}
    )
    bundle = train_model(noisy, spec, FOREST)
    baseline = _baseline(save_trained_model(bundle, tmp_path, training=noisy))
    assert baseline.prediction_source.startswith("out-of-fold predictions of 150 training rows")  # type: ignore[union-attr]
    in_sample = bundle.predict(noisy)
    out_of_fold = _out_of_fold_predictions(bundle, noisy)
    assert out_of_fold is not None
    # A forest fits its own rows almost perfectly; its honest accuracy is far lower.
    labels = noisy["species"].to_numpy()
    in_sample_accuracy = (in_sample["prediction"].to_numpy() == labels).mean()
    assert in_sample_accuracy > (out_of_fold["prediction"].to_numpy() == labels).mean() + 0.1
    stored = np.sort(np.asarray(baseline.column("score").summary.sorted_values))  # type: ignore[union-attr]
    assert np.allclose(stored, np.sort(out_of_fold["score"].to_numpy()))


def test_enough_held_out_rows_make_the_prediction_baseline_on_their_own(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.normal(size=4000), "c": rng.choice(["a", "b"], 4000)})
    frame["y"] = (frame["x"] + rng.normal(size=4000) > 0).astype(int)
    spec = DatasetSpec(target="y", numeric=("x",), categorical=("c",))
    train, held_out = frame.iloc[:2500], frame.iloc[2500:]
    bundle = train_model(
        train, spec, TrainingSettings(algorithm="logistic_regression", hyperparameters={})
    )
    baseline = _baseline(save_trained_model(bundle, tmp_path, reference=held_out, training=train))
    assert baseline.prediction_source == "held-out rows (1500)"
    assert baseline.column("score").summary.n_total == 1500
    assert baseline.column("x").summary.n_total == 4000


def test_a_regressor_is_monitored_on_its_numeric_prediction(tmp_path: Path) -> None:
    frame = load_diabetes(as_frame=True).frame
    spec = infer_spec(frame, target="target", task="regression")
    split = split_frame(frame, spec, seed=0)
    bundle = train_model(
        split.train,
        spec,
        TrainingSettings(algorithm="ridge", hyperparameters={}),
        validation=split.validation,
    )
    baseline = _baseline(
        save_trained_model(bundle, tmp_path, reference=split.validation, training=split.train)
    )
    assert [(c.name, c.kind) for c in baseline.columns if c.role == "prediction"] == [
        ("prediction", "numeric")
    ]
    assert baseline.column("target").role == "label"


def test_every_class_probability_of_a_multiclass_model_is_in_its_baseline(
    tmp_path: Path, iris: tuple[pd.DataFrame, DatasetSpec]
) -> None:
    # Issue 21, finding 7: train.py wrote only the class mix and the top-class score.
    frame, spec = iris
    split = split_frame(frame, spec, seed=0)
    bundle = train_model(split.train, spec, FOREST, validation=split.validation)
    model_dir = save_trained_model(
        bundle, tmp_path, reference=split.validation, training=split.train
    )
    baseline = _baseline(model_dir)
    names = [probability_column(c) for c in bundle.classes]
    assert ModelBundle.load(model_dir).metadata["drift_baseline"]["prediction_columns"] == [
        "prediction",
        "score",
        *names,
    ]
    outputs = monitored_outputs(bundle, split.validation)
    assert np.allclose(outputs[names].sum(axis=1), 1.0)
    # The same honest (out-of-fold and held-out) rows as the score: one probability per row.
    rows = baseline.column("score").summary.n_total
    assert all(baseline.column(n).summary.n_total == rows for n in names)


def _class_outputs(rng: np.random.Generator, n: int, beta: tuple[float, float]) -> pd.DataFrame:
    """A three-class model that always predicts "a" with the same score distribution; how the
    rest splits between "b" and "c" follows ``beta``."""
    top = rng.uniform(0.5, 0.9, n)
    split = rng.beta(*beta, n)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "prediction": "a",
            "score": top,
            "probability_a": top,
            "probability_b": (1 - top) * split,
            "probability_c": (1 - top) * (1 - split),
            "y": "a",
        }
    )


def test_a_shift_between_two_runner_up_classes_is_prediction_drift_on_every_engine() -> None:
    # Neither the class mix nor the top-class score moves; only the probabilities of "b" and
    # "c" do. Watching every class's probability finds it, in the exact and streaming engines
    # (the Spark engine: test_drift_spark.py).
    rng = np.random.default_rng(9)
    spec = DatasetSpec(target="y", numeric=("x",))
    outputs = ("prediction", "score", "probability_a", "probability_b", "probability_c")
    baseline = build_baseline(
        _class_outputs(rng, 3000, (2, 5)), spec, QUICK, prediction_columns=outputs
    )
    current = _class_outputs(rng, 3000, (5, 2)).drop(columns="y")
    for report in (
        detect_drift(baseline, current, settings=QUICK),
        detect_drift_streaming(
            baseline, [current.iloc[:1000], current.iloc[1000:]], settings=QUICK
        ),
    ):
        grades = {p.name: p.grade for p in report.predictions}
        assert grades["prediction"] == grades["score"] == grades["probability_a"] == "none"
        assert grades["probability_b"] == grades["probability_c"] == "major"
        assert report.prediction_grade == "major"
