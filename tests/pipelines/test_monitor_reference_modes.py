"""The scheduled drift monitor end to end, for each drift reference mode (issue 11).

The starter (``pipelines.monitoring.jobs.start_monitor_run``) runs against moto; the
processing job it requests is then run here as SageMaker would run it: every input is
copied under an emulated ``/opt/ml/processing`` (manifests key by key, prefixes object by
object), the request's own ContainerEntrypoint runs (``mlcore ...``), and the output
folder is uploaded to the request's S3 output. The data is scikit-learn's diabetes table
(a regression model) with fixture settings, never the shipped example.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
import yaml
from botocore.validate import validate_parameters
from moto import mock_aws
from sklearn.datasets import load_diabetes

from mlcore.capture import CaptureWriter
from mlcore.cli import main as mlcore_main
from mlcore.data import DatasetSpec
from mlcore.serve.payload import encode_response
from mlcore.settings import load_settings
from mlcore.train import save_trained_model, train_model
from pipelines.monitoring import jobs, metrics

REGION = "eu-west-1"
BUCKET = "acme-artifacts"
ENDPOINT = "acme-staging"
TABLE = "acme-monitor-state"
PARAMETER = "/mlops/acme/staging/model-package-arn"
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1111"
FIXTURE_SETTINGS = Path(__file__).resolve().parents[1] / "fixtures" / "aws_settings.yaml"
# The run at 10:05 covers 09:00-10:00 (one schedule period: the first window).
SCHEDULED = datetime(2026, 3, 2, 10, 5, tzinfo=UTC)
WINDOW_START = datetime(2026, 3, 2, 9, tzinfo=UTC)
SPEC = DatasetSpec(
    target="progression",
    numeric=("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"),
    categorical=(),
    task="regression",
)


@pytest.fixture(scope="module")
def diabetes() -> pd.DataFrame:
    data = load_diabetes(as_frame=True)
    frame = data.data.copy()
    frame["progression"] = data.target
    return frame


@pytest.fixture(scope="module")
def model(diabetes: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = load_settings(FIXTURE_SETTINGS)
    bundle = train_model(diabetes.iloc[::2], SPEC, settings.training)
    folder = save_trained_model(
        bundle,
        tmp_path_factory.mktemp("model"),
        reference=diabetes.iloc[1::2],
        drift_settings=settings.drift,
    )
    archive = tmp_path_factory.mktemp("archive") / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for item in folder.iterdir():
            tar.add(item, arcname=item.name)
    return bundle, archive


def _traffic(diabetes: pd.DataFrame, *, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """150 requests' rows; ``shift`` moves bmi and bp by that many standard deviations."""
    rows = diabetes[list(SPEC.features)].sample(150, replace=True, random_state=seed)
    for column in ("bmi", "bp"):
        rows[column] = rows[column] + shift * diabetes[column].std()
    return rows.reset_index(drop=True)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, model: Any) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        clients = {n: boto3.client(n, region_name=REGION) for n in ("s3", "sagemaker", "ssm")}
        clients["dynamodb"] = boto3.client("dynamodb", region_name=REGION)
        clients["s3"].create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        clients["dynamodb"].create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        clients["s3"].upload_file(str(model[1]), BUCKET, "models/v1/model.tar.gz")
        clients["sagemaker"].create_model_package_group(ModelPackageGroupName="acme-models")
        package = clients["sagemaker"].create_model_package(
            ModelPackageGroupName="acme-models",
            InferenceSpecification={
                "Containers": [
                    {"Image": "img", "ModelDataUrl": f"s3://{BUCKET}/models/v1/model.tar.gz"}
                ],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelApprovalStatus="Approved",
        )["ModelPackageArn"]
        clients["ssm"].put_parameter(Name=PARAMETER, Value=package, Type="String")
        # Every CreateProcessingJob request the starter sends, as sent.
        requests: list[dict[str, Any]] = []
        clients["sagemaker"].meta.events.register(
            "provide-client-params.sagemaker.CreateProcessingJob",
            lambda params, **_: requests.append(json.loads(json.dumps(params))),
        )
        clients["requests"] = requests  # type: ignore[assignment]
        yield clients


def _capture(
    aws: dict[str, Any], model: Any, rows: pd.DataFrame, hour: datetime, tmp: Path
) -> None:
    """Serve ``rows`` in ``hour`` (ten records per request) into the bucket's capture layout."""
    bundle = model[0]
    folder = tmp / f"capture-{hour:%Y%m%d%H}"
    writer = CaptureWriter(folder, endpoint_name=ENDPOINT, seed=0)
    for number, start in enumerate(range(0, len(rows), 10)):
        batch = rows.iloc[start : start + 10]
        writer.capture(
            request_body=json.dumps(
                {"instances": json.loads(batch.to_json(orient="records"))}
            ).encode(),
            request_content_type="application/json",
            response_body=encode_response(bundle.predict(batch), "application/json").encode(),
            response_content_type="application/json",
            inference_time=hour + timedelta(minutes=number % 60),
        )
    for path in folder.rglob("*.jsonl"):
        key = f"data-capture/{path.relative_to(folder).as_posix()}"
        aws["s3"].upload_file(str(path), BUCKET, key)


def _settings(aws: dict[str, Any], tmp: Path, **reference: Any) -> jobs.MonitorJobConfig:
    """Fixture settings with ``drift.reference`` set, as the settings artifact; the starter's
    config takes the mode from that very file (as the monitoring construct does at synth)."""
    document = yaml.safe_load(FIXTURE_SETTINGS.read_text())
    document["drift"]["reference"] = reference
    path = tmp / "settings.yaml"
    path.write_text(yaml.safe_dump(document))
    aws["s3"].upload_file(str(path), BUCKET, "assets/0f1e2d.yaml")
    drift = load_settings(path).drift
    return jobs.MonitorJobConfig(
        endpoint_name=ENDPOINT,
        capture_s3_uri=f"s3://{BUCKET}/data-capture",
        reports_s3_uri=f"s3://{BUCKET}/monitoring/{ENDPOINT}",
        model_package_parameter=PARAMETER,
        settings_s3_uri=f"s3://{BUCKET}/assets/0f1e2d.yaml",
        image_uri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlcore:1",
        role_arn="arn:aws:iam::123456789012:role/monitor-job",
        state_table=TABLE,
        kms_key_arn=KEY_ARN,
        reference_mode=drift.reference.mode,
        seasonal_offset_days=drift.reference.seasonal_offset_days,
    )


def _run_job(aws: dict[str, Any], request: dict[str, Any], root: Path) -> dict[str, Any]:
    """Run a CreateProcessingJob request as SageMaker would; return its drift report."""
    s3 = aws["s3"]

    def local(path: str) -> Path:
        return root / path.removeprefix("/opt/ml/processing/")

    for item in request["ProcessingInputs"]:
        source = item["S3Input"]
        bucket, key = jobs.split_s3_uri(source["S3Uri"])
        target = local(source["LocalPath"])
        if source["S3DataType"] == "ManifestFile":
            manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            prefix_bucket, prefix = jobs.split_s3_uri(manifest[0]["prefix"])
            keys = [(prefix_bucket, prefix + relative) for relative in manifest[1:]]
            names = manifest[1:]
        else:
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
            keys = [(bucket, o["Key"]) for o in listed]
            base = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
            names = [o["Key"].removeprefix(base) for o in listed]
        assert keys, f"SageMaker fails a job whose input {item['InputName']} has no object"
        for (object_bucket, object_key), name in zip(keys, names, strict=True):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(object_bucket, object_key, str(target / name))
    command = request["AppSpecification"]["ContainerEntrypoint"]
    assert command[0] == "mlcore"
    argv = [str(local(a)) if a.startswith("/opt/ml/processing/") else a for a in command[1:]]
    assert mlcore_main(argv) == 0
    output = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]
    bucket, prefix = jobs.split_s3_uri(output["S3Uri"])
    for path in local(output["LocalPath"]).iterdir():
        s3.upload_file(str(path), bucket, f"{prefix}/{path.name}")
    report: dict[str, Any] = json.loads(
        s3.get_object(Bucket=bucket, Key=f"{prefix}/drift_report.json")["Body"].read()
    )
    return report


def _monitor(aws: dict[str, Any], config: jobs.MonitorJobConfig, tmp: Path) -> tuple[Any, Any]:
    run = jobs.start_monitor_run(
        config,
        monitor="drift",
        scheduled_time=SCHEDULED,
        s3=aws["s3"],
        sagemaker=aws["sagemaker"],
        ssm=aws["ssm"],
        dynamodb=aws["dynamodb"],
    )
    assert run.status == "started"
    (request,) = aws["requests"]
    # botocore's service model of CreateProcessingJob: what SageMaker itself accepts.
    shape = aws["sagemaker"].meta.service_model.operation_model("CreateProcessingJob").input_shape
    validate_parameters(request, shape)
    return run, _run_job(aws, request, tmp / "processing")


def test_the_training_reference_compares_the_window_with_the_baseline(
    aws: dict[str, Any], model: Any, diabetes: pd.DataFrame, tmp_path: Path
) -> None:
    _capture(aws, model, _traffic(diabetes, seed=1, shift=1.5), WINDOW_START, tmp_path)
    run, report = _monitor(aws, _settings(aws, tmp_path, mode="training"), tmp_path)
    assert run.engine == "streaming" and run.reference.mode == "training"
    assert report["reference"]["mode"] == "training"
    assert report["grade"] == "major"
    assert {"bmi", "bp"} <= set(report["drifted_features"])


def test_the_previous_window_is_the_reference_not_the_baseline(
    aws: dict[str, Any], model: Any, diabetes: pd.DataFrame, tmp_path: Path
) -> None:
    # Traffic moved away from training two hours ago and stayed there: against the previous
    # hour nothing changed (against the baseline it would be major, as above).
    shifted = _traffic(diabetes, seed=2, shift=1.5)
    _capture(aws, model, shifted, WINDOW_START - timedelta(hours=1), tmp_path)
    _capture(aws, model, shifted, WINDOW_START, tmp_path)
    _capture(aws, model, _traffic(diabetes, seed=3), WINDOW_START - timedelta(hours=2), tmp_path)
    run, report = _monitor(aws, _settings(aws, tmp_path, mode="previous_window"), tmp_path)
    assert run.reference.captured_files == 1 and run.engine == "streaming"
    assert report["reference"] == {
        "mode": "previous_window",
        "source": "/opt/ml/processing/input/reference".replace(
            "/opt/ml/processing", str(tmp_path / "processing")
        ),
        "window_start": "2026-03-02T08:00:00+00:00",
        "window_end": "2026-03-02T08:59:59.999999999+00:00",
    }
    assert report["reference_rows"] == report["current_rows"] == 150
    assert report["grade"] == "none"


def test_a_change_since_the_previous_window_is_drift(
    aws: dict[str, Any], model: Any, diabetes: pd.DataFrame, tmp_path: Path
) -> None:
    _capture(aws, model, _traffic(diabetes, seed=4), WINDOW_START - timedelta(hours=1), tmp_path)
    _capture(aws, model, _traffic(diabetes, seed=5, shift=1.5), WINDOW_START, tmp_path)
    _, report = _monitor(aws, _settings(aws, tmp_path, mode="previous_window"), tmp_path)
    assert report["grade"] == "major" and {"bmi", "bp"} <= set(report["drifted_features"])


def test_the_same_period_last_year_is_the_seasonal_reference(
    aws: dict[str, Any], model: Any, diabetes: pd.DataFrame, tmp_path: Path
) -> None:
    # Warm coats in winter: last year's same hour (seasonal_offset_days earlier) looked like
    # today, yesterday did not. Only the seasonal window may be the reference.
    winter = _traffic(diabetes, seed=6, shift=1.5)
    _capture(aws, model, winter, WINDOW_START - timedelta(days=7), tmp_path)
    _capture(aws, model, winter, WINDOW_START, tmp_path)
    _capture(aws, model, _traffic(diabetes, seed=7), WINDOW_START - timedelta(hours=1), tmp_path)
    config = _settings(aws, tmp_path, mode="same_period_last_year", seasonal_offset_days=7)
    run, report = _monitor(aws, config, tmp_path)
    assert run.reference.window_start == WINDOW_START - timedelta(days=7)
    assert report["reference"]["mode"] == "same_period_last_year"
    assert report["reference"]["window_start"] == "2026-02-23T09:00:00+00:00"
    assert report["reference_rows"] == 150
    assert report["grade"] == "none"
    window = json.loads(
        aws["s3"]
        .get_object(Bucket=BUCKET, Key=f"monitoring/{ENDPOINT}/drift/2026/03/02/10/window.json")[
            "Body"
        ]
        .read()
    )
    assert window["reference"]["mode"] == "same_period_last_year"
    assert window["reference"]["captured_files"] == 1


def test_a_reference_window_without_capture_grades_insufficient_data(
    aws: dict[str, Any], model: Any, diabetes: pd.DataFrame, tmp_path: Path
) -> None:
    # The first year of a seasonal reference (or after an outage): nothing to compare with.
    # The job must run and say so, never fail and never report drift.
    _capture(aws, model, _traffic(diabetes, seed=8, shift=3.0), WINDOW_START, tmp_path)
    config = _settings(aws, tmp_path, mode="same_period_last_year")
    run, report = _monitor(aws, config, tmp_path)
    assert run.reference.captured_files == 0
    assert run.engine == "exact" and "holds no capture" in str(run.engine_reason)
    assert report["grade"] == "insufficient_data" and report["dataset_drift"] is False
    assert report["reference_rows"] == 0 and report["current_rows"] == 150
    data = metrics.drift_metric_data(report, endpoint_name=ENDPOINT, timestamp=SCHEDULED)
    published = {d["MetricName"]: d["Value"] for d in data if len(d["Dimensions"]) == 1}
    assert published[metrics.DRIFT_INSUFFICIENT_DATA] == 1.0
    assert published[metrics.DATASET_DRIFT] == 0.0 and metrics.DRIFT_GRADE not in published


def test_the_reference_window_of_each_mode() -> None:
    start, end = WINDOW_START, WINDOW_START + timedelta(hours=6)
    assert jobs.reference_window("previous_window", start, end, seasonal_offset_days=364) == (
        start - timedelta(hours=6),
        start,
    )
    assert jobs.reference_window("same_period_last_year", start, end, seasonal_offset_days=364) == (
        start - timedelta(days=364),
        end - timedelta(days=364),
    )
    with pytest.raises(ValueError, match="training baseline"):
        jobs.reference_window("training", start, end, seasonal_offset_days=364)


def test_an_unknown_reference_mode_or_engine_is_refused() -> None:
    env = {
        "ENDPOINT_NAME": ENDPOINT,
        "CAPTURE_S3_URI": "s3://b/c",
        "REPORTS_S3_URI": "s3://b/r",
        "MODEL_PACKAGE_PARAMETER": PARAMETER,
        "SETTINGS_S3_URI": "s3://b/s.yaml",
        "IMAGE_URI": "i",
        "ROLE_ARN": "r",
        "STATE_TABLE": TABLE,
        "KMS_KEY_ARN": KEY_ARN,
    }
    with pytest.raises(ValueError, match="REFERENCE_MODE must be one of"):
        jobs.MonitorJobConfig.from_environment({**env, "REFERENCE_MODE": "last_week"})
    with pytest.raises(ValueError, match="needs SPARK_IMAGE_URI"):
        jobs.MonitorJobConfig.from_environment({**env, "DRIFT_ENGINE": "spark"})
