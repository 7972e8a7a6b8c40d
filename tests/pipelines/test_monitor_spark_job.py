"""The Spark variant of the drift monitor job (issue 14): what the starter asks SageMaker for.

Checked against botocore's service model of CreateProcessingJob (the shapes SageMaker
itself accepts: types and required members through botocore's validator; patterns, enums
and ranges read from the same model), and against the SageMaker Spark container's
contract (aws/sagemaker-spark-container, ``smspark.cli``: ``smspark-submit [options] APP
[APP ARGS]``, run as ``spark-submit --master yarn --deploy-mode client``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.validate import validate_parameters
from moto import mock_aws

from pipelines.monitoring import jobs
from pipelines.monitoring.spark import SPARK_APP, SPARK_SUBMIT, drift_app

REGION = "eu-west-1"
BUCKET = "acme-artifacts"
ENDPOINT = "acme-prod"
TABLE = "acme-monitor-state"
PARAMETER = "/mlops/acme/prod/model-package-arn"
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1111"
SPARK_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/cdk-assets:spark-monitor"
SCHEDULED = datetime(2026, 3, 2, 10, 5, tzinfo=UTC)
REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        clients = {
            n: boto3.client(n, region_name=REGION) for n in ("s3", "sagemaker", "ssm", "dynamodb")
        }
        clients["s3"].create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        clients["dynamodb"].create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        clients["sagemaker"].create_model_package_group(ModelPackageGroupName="acme-models")
        package = clients["sagemaker"].create_model_package(
            ModelPackageGroupName="acme-models",
            InferenceSpecification={
                "Containers": [{"Image": "img", "ModelDataUrl": f"s3://{BUCKET}/m/model.tar.gz"}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelApprovalStatus="Approved",
        )["ModelPackageArn"]
        clients["ssm"].put_parameter(Name=PARAMETER, Value=package, Type="String")
        requests: list[dict[str, Any]] = []
        clients["sagemaker"].meta.events.register(
            "provide-client-params.sagemaker.CreateProcessingJob",
            lambda params, **_: requests.append(json.loads(json.dumps(params))),
        )
        clients["requests"] = requests  # type: ignore[assignment]
        yield clients


def _config(**overrides: Any) -> jobs.MonitorJobConfig:
    values: dict[str, Any] = {
        "endpoint_name": ENDPOINT,
        "capture_s3_uri": f"s3://{BUCKET}/data-capture",
        "reports_s3_uri": f"s3://{BUCKET}/monitoring/{ENDPOINT}",
        "model_package_parameter": PARAMETER,
        "settings_s3_uri": f"s3://{BUCKET}/assets/0f1e2d.yaml",
        "image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlcore:1",
        "role_arn": "arn:aws:iam::123456789012:role/monitor-job",
        "state_table": TABLE,
        "kms_key_arn": KEY_ARN,
        "drift_engine": "spark",
        "spark_image_uri": SPARK_IMAGE,
        "spark_instance_count": 4,
        "spark_instance_type": "ml.r5.2xlarge",
        "drift_period_minutes": 180,
    }
    values.update(overrides)
    return jobs.MonitorJobConfig(**values)


def _put_capture(s3: Any, hour: datetime, size: int = 10) -> str:
    key = f"data-capture/{ENDPOINT}/AllTraffic/{hour:%Y/%m/%d/%H}/part.jsonl"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}" + b" " * (size - 3) + b"\n")
    return key


def _start(aws: dict[str, Any], config: jobs.MonitorJobConfig) -> tuple[Any, dict[str, Any]]:
    run = jobs.start_monitor_run(
        config,
        monitor="drift",
        scheduled_time=SCHEDULED,
        s3=aws["s3"],
        sagemaker=aws["sagemaker"],
        ssm=aws["ssm"],
        dynamodb=aws["dynamodb"],
    )
    (request,) = aws["requests"]
    return run, request


def _check_against_the_service_model(request: dict[str, Any]) -> None:
    """botocore's CreateProcessingJob model: its validator (types, required, minimums), then
    the patterns, enums and maximums the validator leaves to the service."""
    model = boto3.client("sagemaker", region_name=REGION).meta.service_model
    shape = model.operation_model("CreateProcessingJob").input_shape
    validate_parameters(request, shape)
    members = shape.members
    assert re.fullmatch(
        members["ProcessingJobName"].metadata["pattern"], request["ProcessingJobName"]
    )
    app = members["AppSpecification"].members
    assert re.fullmatch(
        app["ImageUri"].metadata["pattern"], request["AppSpecification"]["ImageUri"]
    )
    entrypoint = request["AppSpecification"]["ContainerEntrypoint"]
    assert len(entrypoint) <= app["ContainerEntrypoint"].metadata["max"]
    item = app["ContainerEntrypoint"].member
    for part in entrypoint:
        assert len(part) <= item.metadata["max"] and re.fullmatch(item.metadata["pattern"], part)
    cluster = members["ProcessingResources"].members["ClusterConfig"].members
    resources = request["ProcessingResources"]["ClusterConfig"]
    assert resources["InstanceType"] in cluster["InstanceType"].enum
    assert resources["InstanceCount"] <= cluster["InstanceCount"].metadata["max"]
    inputs = members["ProcessingInputs"]
    assert len(request["ProcessingInputs"]) <= inputs.metadata["max"]
    s3_input = inputs.member.members["S3Input"].members
    for channel in request["ProcessingInputs"]:
        assert re.fullmatch(
            s3_input["LocalPath"].metadata["pattern"], channel["S3Input"]["LocalPath"]
        )
        assert channel["S3Input"]["S3InputMode"] in s3_input["S3InputMode"].enum
    environment = members["Environment"]
    for key, value in request["Environment"].items():
        assert re.fullmatch(environment.key.metadata["pattern"], key)
        assert len(value) <= environment.value.metadata["max"]


def test_the_spark_job_runs_the_app_on_the_spark_image_with_the_configured_cluster(
    aws: dict[str, Any],
) -> None:
    _put_capture(aws["s3"], datetime(2026, 3, 2, 9, tzinfo=UTC))
    run, request = _start(aws, _config())
    assert run.engine == "spark" and run.engine_reason == "monitoring.engine spark"
    _check_against_the_service_model(request)
    assert request["AppSpecification"]["ImageUri"] == SPARK_IMAGE
    assert request["ProcessingResources"]["ClusterConfig"] == {
        "InstanceCount": 4,
        "InstanceType": "ml.r5.2xlarge",
        "VolumeSizeInGB": 30,
        "VolumeKmsKeyId": KEY_ARN,
    }
    assert request["ProcessingOutputConfig"]["KmsKeyId"] == KEY_ARN
    entrypoint = request["AppSpecification"]["ContainerEntrypoint"]
    # smspark-submit APP [APP ARGS]: the app, then mlcore drift's own arguments.
    assert entrypoint[:2] == [SPARK_SUBMIT, SPARK_APP]
    assert entrypoint[entrypoint.index("--current") + 1] == (
        f"s3://{BUCKET}/data-capture/{ENDPOINT}/AllTraffic/2026/03/02/09/"
    )
    assert entrypoint[entrypoint.index("--output") + 1] == jobs.OUTPUT_DIR
    assert "--streaming" not in entrypoint


def test_spark_reads_the_capture_itself_and_gets_the_rest_as_inputs(aws: dict[str, Any]) -> None:
    _put_capture(aws["s3"], datetime(2026, 3, 2, 9, tzinfo=UTC))
    _, request = _start(aws, _config())
    assert {i["InputName"] for i in request["ProcessingInputs"]} == {"model", "settings"}
    # EMRFS reads S3 from every node, which network isolation would forbid; node-to-node
    # traffic (shuffles) is encrypted.
    assert request["NetworkConfig"] == {
        "EnableNetworkIsolation": False,
        "EnableInterContainerTrafficEncryption": True,
    }


def test_the_spark_job_publishes_as_the_streaming_job_does(aws: dict[str, Any]) -> None:
    # The publisher finds the monitor, the endpoint and the report by these, whatever the engine.
    _put_capture(aws["s3"], datetime(2026, 3, 2, 9, tzinfo=UTC))
    run, request = _start(aws, _config())
    assert request["ProcessingJobName"] == run.job_name
    assert run.job_name.startswith(jobs.job_name_prefix(ENDPOINT, "drift"))
    assert request["Environment"]["MLOPS_MONITOR"] == "drift"
    assert request["Environment"]["MLOPS_ENDPOINT"] == ENDPOINT
    assert request["Environment"]["MLOPS_DRIFT_ENGINE"] == "spark"
    (output,) = request["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["LocalPath"] == jobs.OUTPUT_DIR


def test_a_windowed_reference_is_never_given_to_the_spark_job(aws: dict[str, Any]) -> None:
    # mlcore's Spark engine compares with the training baseline only, and the settings refuse
    # the pair; a function environment edited by hand is refused before any job starts.
    _put_capture(aws["s3"], datetime(2026, 3, 2, 8, tzinfo=UTC))
    _put_capture(aws["s3"], datetime(2026, 3, 2, 9, tzinfo=UTC))
    with pytest.raises(ValueError, match="training baseline only"):
        _start(aws, _config(reference_mode="previous_window", drift_period_minutes=60))
    assert not aws["sagemaker"].list_processing_jobs()["ProcessingJobSummaries"]


@pytest.mark.parametrize(("threshold_mb", "engine"), [(1.0, "streaming"), (0.001, "spark")])
def test_auto_runs_spark_only_when_the_window_holds_more_capture_than_the_threshold(
    aws: dict[str, Any], threshold_mb: float, engine: str
) -> None:
    for hour in (7, 8, 9):
        _put_capture(aws["s3"], datetime(2026, 3, 2, hour, tzinfo=UTC), size=1000)
    run, request = _start(aws, _config(drift_engine="auto", spark_min_capture_mb=threshold_mb))
    assert run.captured_bytes == 3000
    assert run.engine == engine and "monitoring.engine auto" in str(run.engine_reason)
    image = request["AppSpecification"]["ImageUri"]
    assert (image == SPARK_IMAGE) is (engine == "spark")
    _check_against_the_service_model(request)


def test_the_streaming_job_validates_against_the_service_model_too(aws: dict[str, Any]) -> None:
    _put_capture(aws["s3"], datetime(2026, 3, 2, 9, tzinfo=UTC))
    _, request = _start(aws, _config(drift_engine="streaming", spark_image_uri=None))
    _check_against_the_service_model(request)
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert request["NetworkConfig"] == {"EnableNetworkIsolation": True}


def test_several_hours_become_one_glob_of_exactly_their_folders() -> None:
    root = f"s3://{BUCKET}/data-capture/{ENDPOINT}/AllTraffic"
    uris = [
        f"{root}/2026/03/01/23/a.jsonl",
        f"{root}/2026/03/02/00/b.jsonl",
        f"{root}/2026/03/02/00/c.jsonl",
    ]
    assert jobs.spark_current_uri(uris) == f"{root}/2026/03/{{01/23,02/00}}/"
    assert jobs.spark_current_uri(uris[1:]) == f"{root}/2026/03/02/00/"


@pytest.mark.slow
@pytest.mark.xdist_group("spark")
# pyspark 3.5 leaves the socket that brings collected rows to the driver to the collector.
@pytest.mark.filterwarnings("ignore:unclosed <socket:ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_spark_expands_the_glob_to_exactly_the_window(spark: Any, tmp_path: Path) -> None:
    # The real reader: Hadoop's glob (brace alternation across "/") in pyspark local mode.
    for folder in ("2026/03/01/22", "2026/03/01/23", "2026/03/02/00", "2026/03/02/01"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "part.jsonl").write_text(folder + "\n")
    uris = [
        f"file://{tmp_path}/2026/03/01/23/part.jsonl",
        f"file://{tmp_path}/2026/03/02/00/part.jsonl",
    ]
    rows = spark.read.text(jobs.spark_current_uri(uris)).collect()
    assert sorted(r.value for r in rows) == ["2026/03/01/23", "2026/03/02/00"]


def test_the_app_runs_mlcore_drift_on_the_spark_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    # Contract 7: from mlcore.cli import main; main(["drift", "--engine", "spark", ...]).
    seen: list[list[str]] = []
    monkeypatch.setattr("mlcore.cli.main", lambda argv: seen.append(argv) or 3)
    assert drift_app.main(["--current", "s3://b/k/"]) == 3
    assert seen == [["drift", "--engine", "spark", "--current", "s3://b/k/"]]


def test_the_image_holds_the_app_where_the_job_runs_it() -> None:
    # Read with BuildKit's own parser (the `dockerfile` package, as tests/cdk/test_cdk_image.py).
    import dockerfile

    instructions = list(
        dockerfile.parse_file(str(REPOSITORY / "pipelines/monitoring/spark/Dockerfile"))
    )
    by_command = [(i.cmd, i.value) for i in instructions]
    # BASE_IMAGE is declared before FROM, where FROM may use it (the CDK build passes it).
    assert by_command[:2] == [("ARG", ("BASE_IMAGE",)), ("FROM", ("${BASE_IMAGE}",))]
    assert ("COPY", ("pipelines/monitoring/spark/drift_app.py", SPARK_APP)) in by_command
    assert by_command[-1] == ("ENTRYPOINT", (SPARK_SUBMIT,)) and instructions[-1].json
    locked, project = [v[0] for c, v in by_command if c == "RUN" and "pip install" in v[0]]
    # Into the interpreter the base image's PYSPARK_PYTHON names, from the Python 3.12 lock with
    # hashes (tests/test_locks.py), then mlcore itself; no pip pyspark: the image's EMR Spark
    # provides pyspark, and a second one would shadow it.
    assert "/usr/local/bin/python3 -m pip install --require-hashes" in locked
    assert "-r lock/runtime-py312.txt" in locked
    assert "/usr/local/bin/python3 -m pip install --no-deps --no-index" in project
    assert "pyspark" not in locked + project
    assert "pyspark" not in (REPOSITORY / "lock/runtime-py312.txt").read_text()


def test_runs_after_a_long_gap_cover_every_hour_folder() -> None:
    start = datetime(2026, 3, 1, 20, tzinfo=UTC)
    uris = [
        f"s3://b/c/{(start + timedelta(hours=h)):%Y/%m/%d/%H}/part.jsonl" for h in range(0, 30, 3)
    ]
    glob = jobs.spark_current_uri(uris)
    tails = glob.removeprefix("s3://b/c/").strip("/")
    common, _, alternation = tails.partition("{")
    assert sorted(f"s3://b/c/{common}{t}" for t in alternation.rstrip("}").split(",")) == sorted(
        u.rsplit("/", 1)[0] for u in uris
    )
