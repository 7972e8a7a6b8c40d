"""The model-performance signal: collected traffic + late labels -> mlcore's live metric -> breach tag."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from mlops_azure.jobs import performance
from mlops_azure.jobs.breach import BREACH_TAG, BREACH_WORDING
from mlops_azure.jobs.reference import azure_outputs

from mlcore.errors import DataError
from mlcore.settings import MlopsSettings

FIXTURE_SETTINGS = Path(__file__).parent / "fixtures" / "mlops.yaml"


def _collect(folder: Path, day: str, frames: list[pd.DataFrame]) -> None:
    """Write what the data collector writes: one JSON line per request, rows in `data`."""
    hour = folder.joinpath(*day.split("/"), "10")
    hour.mkdir(parents=True, exist_ok=True)
    with (hour / "instance-0.jsonl").open("a") as handle:
        for frame in frames:
            record = {
                "specversion": "1.0",
                "correlationid": "req",
                "data": json.loads(frame.to_json(orient="records")),
            }
            handle.write(json.dumps(record) + "\n")


@pytest.fixture
def served(any_model: Any, tmp_path: Path) -> dict[str, Any]:
    """The any-dataset model, its held-out rows served and collected, and the model folder."""
    bundle, held_out = any_model
    model_dir = bundle.save(tmp_path / "model")
    ids = [f"r_{i}" for i in range(len(held_out))]
    features = held_out[list(bundle.spec.features)].assign(inference_id=ids)
    outputs = azure_outputs(bundle.predict(held_out), bundle.spec.target).assign(inference_id=ids)
    _collect(tmp_path / "inputs", "2025/06/01", [features.iloc[:20], features.iloc[20:]])
    _collect(tmp_path / "outputs", "2025/06/01", [outputs.iloc[:20], outputs.iloc[20:]])
    return {
        "bundle": bundle,
        "held_out": held_out,
        "ids": ids,
        "model_dir": model_dir,
        "root": tmp_path,
    }


def _labels(served: dict[str, Any], truth: pd.Series) -> Path:
    folder = served["root"] / "labels"
    folder.mkdir(exist_ok=True)
    target = served["bundle"].spec.target
    pd.DataFrame({"inference_id": served["ids"], target: truth}).to_csv(
        folder / "labels.csv", index=False
    )
    return folder


def _settings(served: dict[str, Any], **monitoring: float) -> MlopsSettings:
    task = served["bundle"].spec.task
    metric = "auc" if task == "classification" else "r2"
    if served["bundle"].spec.target == "cultivar":
        metric = "accuracy"  # multiclass: a metric every class mix computes
    # The gate is replaced, not merged: the fixture's auc floor is no regression metric.
    data = yaml.safe_load(FIXTURE_SETTINGS.read_text())
    data["gate"] = {"primary_metric": metric, "min_metrics": {}}
    data["dataset"].update(slice_columns=["band"], task=task)
    data["monitoring"].update(monitoring)
    return MlopsSettings.model_validate(data)


def _run(served: dict[str, Any], labels: Path, settings: MlopsSettings) -> Any:
    root = served["root"]
    return performance.run(
        inputs=root / "inputs",
        outputs=root / "outputs",
        labels=labels,
        model_dir=served["model_dir"],
        settings=settings,
        output=root / "report",
        lookback_days=7,
        now=datetime(2025, 6, 3, tzinfo=UTC),
    )


def test_good_predictions_pass_and_write_mlcores_quality_report(served: dict[str, Any]) -> None:
    target = served["bundle"].spec.target
    labels = _labels(served, served["held_out"][target])
    report = _run(served, labels, _settings(served, min_live_metric=0.1))
    assert report.rows == len(served["ids"])
    assert report.below_threshold is False
    assert set(report.slices) == {"band"}
    assert (served["root"] / "report" / "quality_report.json").is_file()


def test_wrong_labels_breach_the_floor(served: dict[str, Any]) -> None:
    target = served["bundle"].spec.target
    truth = served["held_out"][target]
    if served["bundle"].spec.task == "classification":
        wrong = truth.map(
            lambda v: (
                sorted(truth.unique())[0]
                if v != sorted(truth.unique())[0]
                else sorted(truth.unique())[-1]
            )
        )
    else:
        wrong = truth.sample(frac=1.0, random_state=0).reset_index(drop=True)
    report = _run(served, _labels(served, wrong), _settings(served, min_live_metric=0.6))
    assert report.below_threshold is True
    message = performance.breach_message(report)
    # The same wording as Azure's own breached signals, which the retrain filter matches.
    assert BREACH_WORDING in message and "model_performance" in message


def test_no_labels_yet_is_skipped_not_a_breach(served: dict[str, Any]) -> None:
    folder = served["root"] / "labels"
    folder.mkdir()
    target = served["bundle"].spec.target
    pd.DataFrame({"inference_id": ["other"], target: [1]}).to_csv(folder / "l.csv", index=False)
    assert _run(served, folder, _settings(served)) is None
    skipped = json.loads((served["root"] / "report" / performance.SKIPPED_FILE).read_text())
    assert skipped["collected_rows"] == len(served["ids"])


def test_traffic_older_than_the_lookback_is_not_scored(
    served: dict[str, Any], tmp_path: Path
) -> None:
    files = performance.collected_files(
        served["root"] / "outputs", since=datetime(2025, 6, 2).date()
    )
    assert files == []


def test_rows_collected_without_inference_ids_are_named(tmp_path: Path) -> None:
    _collect(tmp_path, "2025/06/01", [pd.DataFrame({"x": [1]})])
    with pytest.raises(DataError, match=r"carry no 'inference_id'.*older scoring script"):
        performance.read_collection(tmp_path)


def test_a_record_stored_by_reference_is_refused_clearly(tmp_path: Path) -> None:
    tmp_path.joinpath("a.jsonl").write_text(json.dumps({"dataref": "https://blob/x"}) + "\n")
    with pytest.raises(DataError, match="by reference"):
        performance.read_collection(tmp_path)


def test_a_breach_tags_the_jobs_mlflow_run(
    served: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = pytest.importorskip("mlflow")
    # A local file store stands in for the workspace's tracking server (the sqlite store
    # trips sqlalchemy deprecation warnings, which this suite treats as errors).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run = mlflow.MlflowClient().create_run(mlflow.MlflowClient().create_experiment("perf"))
    monkeypatch.setenv("MLFLOW_RUN_ID", run.info.run_id)  # as Azure ML sets it in a job
    target = served["bundle"].spec.target
    truth = served["held_out"][target].sample(frac=1.0, random_state=1).reset_index(drop=True)
    report = _run(served, _labels(served, truth), _settings(served, min_live_metric=0.99))
    performance.log_to_mlflow(report)
    logged = mlflow.MlflowClient().get_run(run.info.run_id)
    assert BREACH_WORDING in logged.data.tags[BREACH_TAG]
    assert logged.data.metrics["labelled_rows"] == report.rows
