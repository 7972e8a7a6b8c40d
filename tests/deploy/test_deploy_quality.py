"""mlcore.quality: late ground truth joined by inference id, live metrics, slices, threshold."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcore.data import DatasetSpec
from mlcore.errors import ConfigError, DataError
from mlcore.problem import Problem
from mlcore.quality import (
    evaluate_quality,
    join_ground_truth,
    problem_from_model_dir,
    read_ground_truth,
    spec_from_model_dir,
    write_quality_outputs,
)
from mlcore.settings import load_settings

SPEC = DatasetSpec(
    target="churned", numeric=("age",), categorical=("region",), task="classification"
)
PROBLEM = Problem(task="classification", classes=(0, 1), positive_label=1, decision_threshold=0.5)


def _predictions(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score = rng.uniform(size=n)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, size=n).astype(float),
            "region": np.where(np.arange(n) % 4 == 0, "north", "south"),
            "prediction": (score >= 0.5).astype(int),
            "score": score,
            "inference_id": [f"id-{i}" for i in range(n)],
        }
    )


def _labels_agreeing(predictions: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {"inference_id": predictions["inference_id"], "churned": predictions["prediction"]}
    )


def _settings(floor: float = 0.65, primary: str = "auc"):  # type: ignore[no-untyped-def]
    return load_settings(
        None,
        overrides={
            "monitoring": {"min_live_metric": floor},
            "gate": {"primary_metric": primary},
            "dataset": {"slice_columns": ["region"]},
        },
    )


def test_labels_join_their_predictions_by_inference_id() -> None:
    predictions = _predictions(10)
    predictions.loc[9, "inference_id"] = None  # sent without an id: can never be labelled
    labels = pd.DataFrame({"inference_id": ["id-3", "id-1", "id-unknown"], "churned": [1, 0, 1]})
    joined = join_ground_truth(predictions, labels, target="churned")
    assert sorted(joined.frame["inference_id"]) == ["id-1", "id-3"]
    by_id = joined.frame.set_index("inference_id")
    assert by_id.loc["id-3", "churned"] == 1 and by_id.loc["id-1", "churned"] == 0
    assert by_id.loc["id-3", "age"] == predictions.loc[3, "age"]
    assert (joined.labelled, joined.unlabelled_predictions, joined.unmatched_labels) == (2, 8, 1)


def test_a_label_given_twice_is_an_error() -> None:
    labels = pd.DataFrame({"inference_id": ["id-1", "id-1"], "churned": [1, 0]})
    with pytest.raises(DataError, match="more than once"):
        join_ground_truth(_predictions(5), labels, target="churned")


def test_agreeing_labels_give_perfect_metrics_and_no_breach() -> None:
    predictions = _predictions()
    joined = join_ground_truth(predictions, _labels_agreeing(predictions), target="churned")
    report = evaluate_quality(joined, spec=SPEC, problem=PROBLEM, settings=_settings())
    assert report.metrics["accuracy"] == 1.0 and report.primary_value == 1.0
    assert not report.below_threshold
    assert set(report.slices["region"]) == {"north", "south"}
    assert report.slices["region"]["north"]["rows"] == 50


def test_reversed_labels_breach_the_floor() -> None:
    predictions = _predictions()
    labels = _labels_agreeing(predictions).assign(churned=lambda f: 1 - f["churned"])
    report = evaluate_quality(
        join_ground_truth(predictions, labels, target="churned"),
        spec=SPEC,
        problem=PROBLEM,
        settings=_settings(),
    )
    assert report.primary_value < 0.1 and report.below_threshold


def test_one_class_traffic_gives_nan_auc_not_a_false_alarm() -> None:
    predictions = _predictions()
    labels = _labels_agreeing(predictions).assign(churned=0)
    report = evaluate_quality(
        join_ground_truth(predictions, labels, target="churned"),
        spec=SPEC,
        problem=PROBLEM,
        settings=_settings(),
    )
    assert np.isnan(report.primary_value) and not report.below_threshold


def test_lower_is_better_primary_metric_is_refused() -> None:
    predictions = _predictions()
    joined = join_ground_truth(predictions, _labels_agreeing(predictions), target="churned")
    with pytest.raises(ConfigError, match="lower is better"):
        evaluate_quality(joined, spec=SPEC, problem=PROBLEM, settings=_settings(primary="log_loss"))


def test_no_labelled_rows_says_how_to_fix_it() -> None:
    labels = pd.DataFrame({"inference_id": ["other"], "churned": [1]})
    joined = join_ground_truth(_predictions(5), labels, target="churned")
    with pytest.raises(DataError, match="inference id"):
        evaluate_quality(joined, spec=SPEC, problem=PROBLEM, settings=_settings())


def test_unknown_slice_column_is_an_error() -> None:
    predictions = _predictions()
    joined = join_ground_truth(predictions, _labels_agreeing(predictions), target="churned")
    settings = load_settings(None, overrides={"dataset": {"slice_columns": ["plan"]}})
    with pytest.raises(DataError, match="slice_columns"):
        evaluate_quality(joined, spec=SPEC, problem=PROBLEM, settings=settings)


def test_sagemaker_ground_truth_jsonl_is_read_with_numeric_labels(tmp_path: Path) -> None:
    folder = tmp_path / "2026" / "03" / "02" / "10"
    folder.mkdir(parents=True)
    lines = [
        {
            "groundTruthData": {"data": "1", "encoding": "CSV"},
            "eventMetadata": {"eventId": "a"},
            "eventVersion": "0",
        },
        {
            "groundTruthData": {"data": "0", "encoding": "CSV"},
            "eventMetadata": {"eventId": "b"},
            "eventVersion": "0",
        },
    ]
    (folder / "x.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    labels = read_ground_truth(tmp_path, target="churned")
    assert labels.to_dict("list") == {"inference_id": ["a", "b"], "churned": [1, 0]}


def test_broken_ground_truth_record_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text('{"eventMetadata": {"eventId": "a"}}\n')
    with pytest.raises(DataError, match=r"x\.jsonl:1"):
        read_ground_truth(tmp_path, target="churned")


def test_csv_ground_truth_needs_inference_id_and_target(tmp_path: Path) -> None:
    pd.DataFrame({"id": ["a"], "churned": [1]}).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match="inference_id"):
        read_ground_truth(tmp_path / "labels.csv", target="churned")


def test_spec_is_read_from_a_model_folder_or_its_archive(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "metadata.json").write_text(json.dumps({"spec": SPEC.to_dict()}))
    assert spec_from_model_dir(tmp_path / "model") == SPEC
    (tmp_path / "archived").mkdir()
    with tarfile.open(tmp_path / "archived" / "model.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "model" / "metadata.json", arcname="metadata.json")
    assert spec_from_model_dir(tmp_path / "archived") == SPEC
    with pytest.raises(ConfigError, match="neither"):
        spec_from_model_dir(tmp_path)


def test_outputs_are_valid_json_in_sagemaker_layout(tmp_path: Path) -> None:
    predictions = _predictions()
    labels = _labels_agreeing(predictions).assign(churned=0)
    report = evaluate_quality(
        join_ground_truth(predictions, labels, target="churned"),
        spec=SPEC,
        problem=PROBLEM,
        settings=_settings(),
    )
    paths = write_quality_outputs(report, tmp_path)
    evaluation = json.loads(paths["evaluation"].read_text())
    assert evaluation["binary_classification_metrics"]["auc"]["value"] is None
    assert json.loads(paths["quality_report"].read_text())["rows"] == 200


SPECIES = ("setosa", "versicolor", "virginica")
MULTICLASS = Problem(task="classification", classes=SPECIES)
IRIS_SPEC = DatasetSpec(
    target="species", numeric=("petal",), categorical=("region",), task="classification"
)


def _multiclass_window(n: int = 200, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Captured predictions of a 3-class model in a window where only two classes occur."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(["versicolor", "virginica"], size=n)
    wrong = rng.uniform(size=n) < 0.1
    prediction = np.where(wrong, np.where(truth == "virginica", "versicolor", "virginica"), truth)
    predictions = pd.DataFrame(
        {
            "petal": rng.uniform(3, 7, size=n),
            "region": np.where(np.arange(n) % 2 == 0, "north", "south"),
            "prediction": prediction,
            "score": rng.uniform(0.5, 1.0, size=n),  # the predicted class's probability
            "inference_id": [f"id-{i}" for i in range(n)],
        }
    )
    labels = pd.DataFrame({"inference_id": predictions["inference_id"], "species": truth})
    return predictions, labels


def _multiclass_settings(primary: str):  # type: ignore[no-untyped-def]
    return load_settings(
        None,
        overrides={"gate": {"primary_metric": primary}, "dataset": {"slice_columns": ["region"]}},
    )


def test_live_multiclass_metrics_never_fall_back_to_a_binary_computation() -> None:
    predictions, labels = _multiclass_window()
    report = evaluate_quality(
        join_ground_truth(predictions, labels, target="species"),
        spec=IRIS_SPEC,
        problem=MULTICLASS,
        settings=_multiclass_settings("accuracy"),
    )
    # Two classes in the window, but the model has three: still multiclass, and no AUC
    # from the predicted class's probability.
    assert report.problem["problem_type"] == "multiclass_classification"
    assert np.isnan(report.metrics["auc"]) and "f1" not in report.metrics
    assert report.metrics["accuracy"] == pytest.approx(0.9, abs=0.05)
    assert np.isnan(report.slices["region"]["north"]["auc"])
    assert any("auc and log_loss are null" in note for note in report.notes)
    assert set(report.confusion_matrix or {}) == set(SPECIES)


def test_live_multiclass_outputs_use_the_multiclass_section(tmp_path: Path) -> None:
    predictions, labels = _multiclass_window()
    report = evaluate_quality(
        join_ground_truth(predictions, labels, target="species"),
        spec=IRIS_SPEC,
        problem=MULTICLASS,
        settings=_multiclass_settings("weighted_f1"),
    )
    evaluation = json.loads(write_quality_outputs(report, tmp_path)["evaluation"].read_text())
    assert "binary_classification_metrics" not in evaluation
    assert evaluation["multiclass_classification_metrics"]["auc"]["value"] is None


def test_a_multiclass_primary_metric_that_needs_probabilities_is_refused() -> None:
    predictions, labels = _multiclass_window()
    joined = join_ground_truth(predictions, labels, target="species")
    with pytest.raises(ConfigError, match="accuracy or weighted_f1"):
        evaluate_quality(
            joined, spec=IRIS_SPEC, problem=MULTICLASS, settings=_multiclass_settings("auc")
        )


def test_a_binary_window_scores_the_recorded_positive_label(tmp_path: Path) -> None:
    # The positive label is "stay" here, recorded in the model's metadata: the captured
    # score is P("stay") and recall is about finding "stay".
    (tmp_path / "metadata.json").write_text(
        json.dumps(
            {
                "spec": SPEC.to_dict(),
                "classes": ["leave", "stay"],
                "positive_label": "stay",
                "positive_label_rule": "declared in dataset.positive_label",
                "decision_threshold": 0.5,
            }
        )
    )
    problem = problem_from_model_dir(tmp_path)
    assert problem.positive_label == "stay" and problem.decision_threshold == 0.5
    predictions = _predictions()
    predictions["prediction"] = np.where(predictions["score"] >= 0.5, "stay", "leave")
    labels = pd.DataFrame(
        {"inference_id": predictions["inference_id"], "churned": predictions["prediction"]}
    )
    report = evaluate_quality(
        join_ground_truth(predictions, labels, target="churned"),
        spec=SPEC,
        problem=problem,
        settings=_settings(),
    )
    assert report.metrics["auc"] == 1.0 and report.metrics["recall"] == 1.0
    assert report.problem["positive_label"] == "stay"
