"""Multiclass models end to end (issue 11, finding 8): the probability matrix, one-vs-rest AUC
and log loss equal to scikit-learn's, SageMaker's multiclass section, slices that stay
multiclass, a default gate that can pass, and strict JSON on stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris, load_wine
from sklearn.metrics import confusion_matrix, f1_score, log_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from mlcore.cli import main
from mlcore.data import Split, infer_spec, split_frame
from mlcore.evaluate import slice_metrics
from mlcore.evaluation_job import run_evaluation
from mlcore.model import ModelBundle
from mlcore.settings import MlopsSettings, TrainingSettings
from mlcore.train import save_trained_model, train_model

FAST = TrainingSettings(hyperparameters={"max_iter": 40, "learning_rate": 0.1}, seed=7)
CULTIVARS = np.array(["barolo", "grignolino", "barbera"])

# Settings for the wine data: its own project and target, no slices of the example dataset.
# 178 wines leave 27 test rows, below the default gate.min_evaluation_rows: lowered knowingly.
WINE_SETTINGS = MlopsSettings.model_validate(
    {"project": "wine", "dataset": {"target": "cultivar"}, "gate": {"min_evaluation_rows": 20}}
)


def _strict_json(text: str) -> Any:
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def wine() -> tuple[pd.DataFrame, Split]:
    bunch = load_wine(as_frame=True)
    frame = bunch.data.assign(cultivar=CULTIVARS[bunch.target])
    spec = infer_spec(frame, target="cultivar")
    return frame, split_frame(frame, spec, seed=3)


@pytest.fixture(scope="module")
def wine_model(
    wine: tuple[pd.DataFrame, Split], tmp_path_factory: pytest.TempPathFactory
) -> tuple[ModelBundle, Path, Path]:
    """A saved wine model and its test split as Parquet."""
    frame, split = wine
    spec = infer_spec(frame, target="cultivar")
    # One OpenMP thread: HistGradientBoosting's threads spin on an oversubscribed machine.
    with threadpool_limits(limits=1):
        bundle = train_model(split.train, spec, FAST, validation=split.validation)
    root = tmp_path_factory.mktemp("wine")
    model_dir = save_trained_model(bundle, root / "model", reference=split.validation)
    split.test.to_parquet(root / "test.parquet")
    return bundle, model_dir, root / "test.parquet"


def test_predict_proba_is_the_full_matrix_in_class_order(
    wine_model: tuple[ModelBundle, Path, Path], wine: tuple[pd.DataFrame, Split]
) -> None:
    bundle, _, _ = wine_model
    test = wine[1].test
    proba = bundle.predict_proba(test)
    assert list(proba.columns) == bundle.classes == sorted(CULTIVARS)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    predictions = bundle.predict(test)
    # predict keeps its serving contract: the most probable class and its probability.
    assert (predictions["prediction"] == proba.idxmax(axis=1)).all()
    np.testing.assert_allclose(predictions["score"], proba.max(axis=1))


def test_multiclass_evaluation_json_has_ovr_auc_and_log_loss_equal_to_scikit_learn(
    wine_model: tuple[ModelBundle, Path, Path], wine: tuple[pd.DataFrame, Split], tmp_path: Path
) -> None:
    bundle, model_dir, test_path = wine_model
    run_evaluation(model_dir=model_dir, data=test_path, output_dir=tmp_path, settings=WINE_SETTINGS)
    document = json.loads((tmp_path / "evaluation.json").read_text())
    # SageMaker's multiclass layout (model-monitor-model-quality-metrics, "Multiclass Metrics").
    assert "binary_classification_metrics" not in document
    section = document["multiclass_classification_metrics"]
    test = wine[1].test
    proba = bundle.pipeline.predict_proba(test[list(bundle.spec.features)])
    pred = bundle.pipeline.classes_[proba.argmax(axis=1)]
    assert section["auc"]["value"] == pytest.approx(
        roc_auc_score(test["cultivar"], proba, multi_class="ovr")
    )
    assert section["log_loss"]["value"] == pytest.approx(log_loss(test["cultivar"], proba))
    assert section["weighted_f1"]["value"] == pytest.approx(
        f1_score(test["cultivar"], pred, average="weighted")
    )
    labels = list(bundle.pipeline.classes_)
    counts = confusion_matrix(test["cultivar"], pred, labels=labels)
    assert section["confusion_matrix"] == {
        a: {p: int(counts[i, j]) for j, p in enumerate(labels)} for i, a in enumerate(labels)
    }
    assert document["problem"] == {
        "problem_type": "multiclass_classification",
        "classes": labels,
    }


def test_the_default_gate_passes_a_good_multiclass_model(
    wine_model: tuple[ModelBundle, Path, Path], tmp_path: Path
) -> None:
    _, model_dir, test_path = wine_model
    result = run_evaluation(
        model_dir=model_dir, data=test_path, output_dir=tmp_path, settings=WINE_SETTINGS
    )
    assert result.gate.passed, result.gate.reasons
    assert any(r.startswith("auc") and "meets the minimum 0.7" in r for r in result.gate.reasons)


def test_evaluate_prints_multiclass_metrics_as_strict_json(
    wine_model: tuple[ModelBundle, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Before: {"auc": NaN, "log_loss": NaN} on stdout, which strict JSON parsers reject.
    bundle, model_dir, test_path = wine_model
    # The default gate on the wine data's own settings, not the repo's mlops.yaml.
    (tmp_path / "defaults.yaml").write_text(
        "project: wine\ndataset: {target: cultivar}\ngate: {min_evaluation_rows: 20}\n"
    )
    code = main(
        [
            "evaluate",
            "--model-dir",
            str(model_dir),
            "--data",
            str(test_path),
            "--output",
            str(tmp_path / "out"),
            "--settings",
            str(tmp_path / "defaults.yaml"),
        ]
    )
    assert code == 0
    printed = _strict_json(capsys.readouterr().out)
    test = pd.read_parquet(test_path)
    proba = bundle.predict_proba(test).to_numpy()
    assert printed["gate_passed"] is True
    assert printed["metrics"]["auc"] == pytest.approx(
        roc_auc_score(test["cultivar"], proba, multi_class="ovr")
    )
    for name in ("evaluation.json", "gate.json", "model_card.json", "slice_metrics.json"):
        _strict_json((tmp_path / "out" / name).read_text())


@pytest.fixture(scope="module")
def iris_model() -> tuple[ModelBundle, pd.DataFrame]:
    bunch = load_iris(as_frame=True)
    frame = bunch.data.assign(species=np.array(["setosa", "versicolor", "virginica"])[bunch.target])
    spec = infer_spec(frame, target="species")
    split = split_frame(frame, spec, seed=3)
    with threadpool_limits(limits=1):
        bundle = train_model(split.train, spec, FAST)
    # A slice column that separates setosa from the two classes a model confuses.
    frame["petals"] = np.where(frame["petal length (cm)"] > 2.5, "long", "short")
    return bundle, frame


def test_an_iris_slice_with_two_classes_is_scored_as_multiclass_not_binary(
    iris_model: tuple[ModelBundle, pd.DataFrame],
) -> None:
    bundle, frame = iris_model
    proba = bundle.predict_proba(frame)
    scored = frame.join(bundle.predict(frame))
    slices = slice_metrics(
        scored,
        slice_columns=["petals"],
        target="species",
        problem=bundle.problem,
        probabilities=proba,
    )
    long = frame["petals"] == "long"
    assert set(frame.loc[long, "species"]) == {"versicolor", "virginica"}
    # One-vs-rest AUC of the classes the slice holds, from their own probability columns.
    truth, matrix = frame.loc[long, "species"], proba[long]
    expected = np.mean([roc_auc_score(truth == c, matrix[c]) for c in ("versicolor", "virginica")])
    assert slices["petals"]["long"]["auc"] == pytest.approx(expected)
    # What the old code computed: a binary AUC from the predicted class's probability.
    binary_from_max = roc_auc_score(truth == "virginica", scored.loc[long, "score"])
    assert abs(slices["petals"]["long"]["auc"] - binary_from_max) > 0.05
    assert "weighted_f1" in slices["petals"]["long"] and "f1" not in slices["petals"]["long"]
    assert slices["petals"]["long"]["log_loss"] == pytest.approx(
        log_loss(truth, matrix, labels=list(proba.columns))
    )


def test_a_slice_holding_every_class_gets_scikit_learns_ovr_auc(
    iris_model: tuple[ModelBundle, pd.DataFrame],
) -> None:
    bundle, frame = iris_model
    frame = frame.assign(everything="all")
    proba = bundle.predict_proba(frame)
    slices = slice_metrics(
        frame.join(bundle.predict(frame)),
        slice_columns=["everything"],
        target="species",
        problem=bundle.problem,
        probabilities=proba,
    )
    assert slices["everything"]["all"]["auc"] == pytest.approx(
        roc_auc_score(frame["species"], proba.to_numpy(), multi_class="ovr")
    )


def test_multiclass_slices_without_probabilities_have_no_auc_rather_than_a_binary_one(
    iris_model: tuple[ModelBundle, pd.DataFrame],
) -> None:
    # Live windows carry only the predicted class's probability (the `score` column).
    bundle, frame = iris_model
    slices = slice_metrics(
        frame.join(bundle.predict(frame)),
        slice_columns=["petals"],
        target="species",
        problem=bundle.problem,
    )
    assert np.isnan(slices["petals"]["long"]["auc"])
    assert slices["petals"]["long"]["accuracy"] > 0.8
