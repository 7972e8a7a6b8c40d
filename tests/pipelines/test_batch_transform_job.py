"""A scheduled batch run end to end: the starter against moto, the job as Batch Transform runs it.

The starter (``pipelines.batch.transform.start_batch_run``) runs against moto; every
CreateTransformJob request it sends is checked against botocore's service model of the
operation (what SageMaker itself accepts) and accepted by moto's SageMaker. The job is then
run here as Batch Transform runs it, on the request's own settings: the manifest's files
are split into lines, the ``DataProcessing.InputFilter`` columns are sent in requests of at
most ``MaxPayloadInMB`` to the real serving app's ``POST /invocations`` (mlcore serve,
in a thread), and each answer line is joined to its input line (``JoinSource: Input``) and
written to ``<S3OutputPath>/<file>.out``. The emulation covers the CSV column-range
filters the starter uses (``$`` and ``$[n:]``), nothing more of JSONPath.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pandas as pd
import pytest
from botocore.stub import Stubber
from botocore.validate import validate_parameters
from moto import mock_aws
from sklearn.datasets import load_diabetes

from mlcore.data import DatasetSpec
from mlcore.serve import serve_in_thread
from mlcore.settings import load_settings
from mlcore.train import save_trained_model, train_model
from pipelines.batch import transform

REGION = "eu-west-1"
BUCKET = "acme-artifacts"
TABLE = "acme-serving-state"
PARAMETER = "/mlops/acme/prod/model-package-arn"
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1111"
PREFIX = "acme-prod"
FIXTURE_SETTINGS = Path(__file__).resolve().parents[1] / "fixtures" / "aws_settings.yaml"
FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
SPEC = DatasetSpec(target="high", numeric=FEATURES, categorical=(), task="classification")


@pytest.fixture(scope="module")
def diabetes() -> pd.DataFrame:
    data = load_diabetes(as_frame=True)
    frame = data.data.copy()
    frame["high"] = (data.target > data.target.median()).astype(int)
    return frame


@pytest.fixture(scope="module")
def model_dir(diabetes: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = load_settings(FIXTURE_SETTINGS)
    bundle = train_model(diabetes.iloc[::2], SPEC, settings.training)
    return save_trained_model(
        bundle,
        tmp_path_factory.mktemp("model"),
        reference=diabetes.iloc[1::4],
        drift_settings=settings.drift,
    )


@pytest.fixture(scope="module")
def serving(model_dir: Path) -> Iterator[httpx.Client]:
    with serve_in_thread(model_dir) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        clients: dict[str, Any] = {
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
        requests: list[dict[str, Any]] = []
        clients["sagemaker"].meta.events.register(
            "provide-client-params.sagemaker.CreateTransformJob",
            lambda params, **_: requests.append(json.loads(json.dumps(params))),
        )
        clients["requests"] = requests
        yield clients


def _release(aws: dict[str, Any], version: int = 1) -> str:
    """What a release leaves: the pointer on a package, and the batch model the serving stack
    created from it (named as its template names it)."""
    package = f"arn:aws:sagemaker:{REGION}:123456789012:model-package/acme-prod-models/{version}"
    aws["ssm"].put_parameter(Name=PARAMETER, Value=package, Type="String", Overwrite=True)
    aws["sagemaker"].create_model(
        ModelName=transform.batch_model_name(PREFIX, package),
        ExecutionRoleArn="arn:aws:iam::123456789012:role/acme-prod-batch",
        Containers=[{"ModelPackageName": package}],
        EnableNetworkIsolation=True,
    )
    return package


def _config(**overrides: Any) -> transform.BatchJobConfig:
    values: dict[str, Any] = {
        "name_prefix": PREFIX,
        "model_package_parameter": PARAMETER,
        "bucket": BUCKET,
        "input_prefix": "batch/input",
        "output_prefix": "batch/output",
        "state_table": TABLE,
        "kms_key_arn": KEY_ARN,
        "id_column_count": 2,
        "max_payload_mb": 1,
    }
    return transform.BatchJobConfig(**{**values, **overrides})


def _drop(aws: dict[str, Any], key: str, rows: pd.DataFrame) -> None:
    """A data drop as the README asks for it: headerless CSV, ids first, then the features."""
    frame = pd.DataFrame(
        {
            "customer": [f"c-{i}" for i in rows.index],
            "region": [f"r{i % 3}" for i in rows.index],
            **{f: rows[f] for f in FEATURES},
        }
    )
    aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=frame.to_csv(index=False, header=False))


def _start(aws: dict[str, Any], config: transform.BatchJobConfig, at: datetime) -> Any:
    return transform.start_batch_run(
        config,
        scheduled_time=at,
        s3=aws["s3"],
        sagemaker=aws["sagemaker"],
        ssm=aws["ssm"],
        dynamodb=aws["dynamodb"],
    )


def _column_filter(expression: str) -> slice:
    if expression == "$":
        return slice(None)
    found = re.fullmatch(r"\$\[(\d+):\]", expression)
    assert found, f"the emulation reads $ and $[n:] only, got {expression!r}"
    return slice(int(found.group(1)), None)


def _run_transform(aws: dict[str, Any], request: dict[str, Any], serving: httpx.Client) -> None:
    """Run a CreateTransformJob request as Batch Transform does (CSV, Line, MultiRecord)."""
    s3 = aws["s3"]
    source = request["TransformInput"]["DataSource"]["S3DataSource"]
    assert source["S3DataType"] == "ManifestFile"
    bucket, key = transform_uri(source["S3Uri"])
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    prefix_bucket, prefix = transform_uri(manifest[0]["prefix"])
    processing = request["DataProcessing"]
    assert processing["JoinSource"] == "Input"
    keep = _column_filter(processing["InputFilter"])
    out = _column_filter(processing["OutputFilter"])
    limit = request["MaxPayloadInMB"] * 1024 * 1024
    out_bucket, out_prefix = transform_uri(request["TransformOutput"]["S3OutputPath"])
    for relative in manifest[1:]:
        body = s3.get_object(Bucket=prefix_bucket, Key=prefix + relative)["Body"].read().decode()
        lines = body.splitlines()
        records = [next(csv.reader([line])) for line in lines]
        sent = [",".join(record[keep]) for record in records]
        answers: list[str] = []
        start = 0
        while start < len(sent):
            end, size = start, 0
            while end < len(sent) and size + len(sent[end]) + 1 <= limit:
                size += len(sent[end]) + 1
                end += 1
            response = serving.post(
                "/invocations",
                content="\n".join(sent[start:end]) + "\n",
                headers={
                    "Content-Type": request["TransformInput"]["ContentType"],
                    "Accept": request["TransformOutput"]["Accept"],
                },
            )
            assert response.status_code == 200, response.text
            answers += response.text.splitlines()
            start = end
        assert len(answers) == len(lines), "JoinSource needs one answer line per input line"
        joined = [
            ",".join([*record, *next(csv.reader([answer]))][out])
            for record, answer in zip(records, answers, strict=True)
        ]
        name = relative.rsplit("/", 1)[-1]
        s3.put_object(
            Bucket=out_bucket, Key=f"{out_prefix}/{name}.out", Body="\n".join(joined) + "\n"
        )


def transform_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _validated(aws: dict[str, Any]) -> dict[str, Any]:
    (request,) = aws["requests"]
    # botocore's service model of CreateTransformJob: what SageMaker itself accepts.
    shape = aws["sagemaker"].meta.service_model.operation_model("CreateTransformJob").input_shape
    validate_parameters(request, shape)
    return request


def test_a_run_scores_the_new_files_and_writes_every_row_back_with_its_ids_and_score(
    aws: dict[str, Any], diabetes: pd.DataFrame, serving: httpx.Client
) -> None:
    package = _release(aws)
    rows = diabetes.iloc[1::2]
    _drop(aws, "batch/input/2026-03-02/part-1.csv", rows.iloc[:120])
    _drop(aws, "batch/input/2026-03-02/part-2.csv", rows.iloc[120:])
    # Files land before the scheduled time (LastModified is real time in moto).
    run = _start(aws, _config(), datetime.now(UTC) + timedelta(seconds=2))

    assert run.status == "started" and run.files == 2 and run.model_package_arn == package
    request = _validated(aws)
    assert request["ModelName"] == f"{PREFIX}-batch-v1"
    assert request["DataProcessing"] == {
        "InputFilter": "$[2:]",
        "JoinSource": "Input",
        "OutputFilter": "$",
    }
    assert request["TransformOutput"]["KmsKeyId"] == KEY_ARN
    assert request["TransformResources"]["VolumeKmsKeyId"] == KEY_ARN
    described = aws["sagemaker"].describe_transform_job(TransformJobName=run.job_name)
    assert described["ModelName"] == request["ModelName"]

    _run_transform(aws, request, serving)
    out_bucket, out_prefix = transform_uri(run.output_uri)
    scored = []
    for name in ("part-1.csv.out", "part-2.csv.out"):
        text = aws["s3"].get_object(Bucket=out_bucket, Key=f"{out_prefix}/{name}")["Body"].read()
        scored.append(pd.read_csv(io.BytesIO(text), header=None))
    table = pd.concat(scored, ignore_index=True)
    # ids, features, then prediction and the positive class's probability.
    assert table.shape == (len(rows), 2 + len(FEATURES) + 2)
    assert list(table[0]) == [f"c-{i}" for i in rows.index]
    assert list(table[1]) == [f"r{i % 3}" for i in rows.index]
    assert set(table[12]) <= {0, 1}
    assert table[13].between(0, 1).all()


def test_the_next_run_scores_only_the_files_that_arrived_since_the_last(
    aws: dict[str, Any], diabetes: pd.DataFrame
) -> None:
    _release(aws)
    _drop(aws, "batch/input/a.csv", diabetes.iloc[:50])
    first = _start(aws, _config(), datetime.now(UTC) + timedelta(seconds=1))
    assert first.status == "started" and first.files == 1
    empty = _start(aws, _config(), first.window_end + timedelta(seconds=1))
    assert empty.status == "skipped" and "no new files" in str(empty.reason)

    # moto stamps LastModified with the real time: wait until past the last window's end.
    while datetime.now(UTC) < empty.window_end + timedelta(seconds=1):
        pass
    _drop(aws, "batch/input/b.csv", diabetes.iloc[50:80])
    second = _start(aws, _config(), datetime.now(UTC) + timedelta(seconds=2))
    assert second.status == "started" and second.files == 1
    manifest_uri = aws["requests"][-1]["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    bucket, key = transform_uri(manifest_uri)
    manifest = json.loads(aws["s3"].get_object(Bucket=bucket, Key=key)["Body"].read())
    assert manifest[1:] == ["batch/input/b.csv"]


def test_a_file_stamped_before_the_last_run_but_missed_by_it_is_scored_next_and_once(
    aws: dict[str, Any], diabetes: pd.DataFrame
) -> None:
    # S3 stamps an object with the time its upload began: one that completes after a run
    # lists the prefix can carry a time before that run's end. Here b.csv is stamped before
    # the first run's end (moto uses the real time) but is not there when it lists.
    _release(aws)
    _drop(aws, "batch/input/a.csv", diabetes.iloc[:50])
    first = _start(aws, _config(), datetime.now(UTC) + timedelta(seconds=30))
    assert first.files == 1
    _drop(aws, "batch/input/b.csv", diabetes.iloc[50:80])
    assert aws["s3"].head_object(Bucket=BUCKET, Key="batch/input/b.csv")["LastModified"] < (
        first.window_end
    )
    second = _start(aws, _config(), first.window_end + timedelta(minutes=1))
    assert second.status == "started" and second.files == 1
    manifest_uri = aws["requests"][-1]["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    bucket, key = transform_uri(manifest_uri)
    manifest = json.loads(aws["s3"].get_object(Bucket=bucket, Key=key)["Body"].read())
    assert manifest[1:] == ["batch/input/b.csv"]
    # Nothing left: a third run scores nothing again, and a changed file is scored anew.
    third = _start(aws, _config(), second.window_end + timedelta(minutes=1))
    assert third.status == "skipped"
    _drop(aws, "batch/input/a.csv", diabetes.iloc[100:130])
    fourth = _start(aws, _config(), datetime.now(UTC) + timedelta(minutes=5))
    assert fourth.status == "started" and fourth.files == 1


def test_nothing_is_scored_before_a_model_is_released_and_the_files_wait(
    aws: dict[str, Any], diabetes: pd.DataFrame
) -> None:
    aws["ssm"].put_parameter(Name=PARAMETER, Value="none", Type="String")
    _drop(aws, "batch/input/a.csv", diabetes.iloc[:50])
    at = datetime.now(UTC) + timedelta(seconds=1)
    skipped = _start(aws, _config(), at)
    assert skipped.status == "skipped" and "no model" in str(skipped.reason)
    assert aws["requests"] == []
    _release(aws)
    started = _start(aws, _config(), at + timedelta(minutes=5))
    assert started.status == "started" and started.files == 1


def test_a_pointer_ahead_of_its_batch_model_fails_the_run_rather_than_score_an_older_model(
    aws: dict[str, Any], diabetes: pd.DataFrame
) -> None:
    _release(aws, version=1)
    # A release wrote v2 to the pointer; the stack update that creates its model has not run.
    newer = f"arn:aws:sagemaker:{REGION}:123456789012:model-package/acme-prod-models/2"
    aws["ssm"].put_parameter(Name=PARAMETER, Value=newer, Type="String", Overwrite=True)
    _drop(aws, "batch/input/a.csv", diabetes.iloc[:50])
    with pytest.raises(RuntimeError, match="acme-prod-batch-v2 does not exist"):
        _start(aws, _config(), datetime.now(UTC) + timedelta(seconds=1))
    assert aws["requests"] == []
    # The files wait for the retry: no watermark was written.
    item = aws["dynamodb"].get_item(TableName=TABLE, Key={"pk": {"S": f"watermark#{PREFIX}#batch"}})
    assert "Item" not in item


def test_starting_the_same_run_twice_starts_one_job(
    aws: dict[str, Any], diabetes: pd.DataFrame
) -> None:
    package = _release(aws)
    _drop(aws, "batch/input/a.csv", diabetes.iloc[:50])
    at = datetime.now(UTC) + timedelta(seconds=1)
    first = _start(aws, _config(), at)
    # The scheduler retried after the job started but before the run was recorded (the
    # scored files and the watermark).
    for pk in (f"watermark#{PREFIX}#batch", transform.scored_key(PREFIX, "batch/input/a.csv")):
        aws["dynamodb"].delete_item(TableName=TABLE, Key={"pk": {"S": pk}})
    # moto accepts a second job of the same name; SageMaker refuses it with ResourceInUse,
    # which botocore's Stubber stands in for here (moto still serves S3, SSM and DynamoDB).
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_response(
            "describe_model",
            {
                "ModelName": first.model_name,
                "ExecutionRoleArn": "arn:aws:iam::123456789012:role/acme-prod-batch",
                "Containers": [{"ModelPackageName": package}],
                "CreationTime": datetime.now(UTC),
                "ModelArn": f"arn:aws:sagemaker:{REGION}:123456789012:model/{first.model_name}",
            },
        )
        stub.add_client_error("create_transform_job", service_error_code="ResourceInUse")
        again = transform.start_batch_run(
            _config(),
            scheduled_time=at,
            s3=aws["s3"],
            sagemaker=sagemaker,
            ssm=aws["ssm"],
            dynamodb=aws["dynamodb"],
        )
    assert first.status == "started"
    assert (again.status, again.job_name) == ("already-started", first.job_name)


def test_a_request_without_id_columns_sends_whole_rows() -> None:
    request = transform.transform_job_request(
        _config(id_column_count=0),
        job_name=f"{PREFIX}-batch-20260302100000",
        model_name=f"{PREFIX}-batch-v1",
        manifest_uri=f"s3://{BUCKET}/batch/output/run/manifest.json",
        output_uri=f"s3://{BUCKET}/batch/output/run/scored",
        environment={},
    )
    assert request["DataProcessing"]["InputFilter"] == "$"
    shape = (
        boto3.session.Session(region_name=REGION)
        .client("sagemaker")
        .meta.service_model.operation_model("CreateTransformJob")
        .input_shape
    )
    validate_parameters(request, shape)


def test_the_starter_refuses_a_pointer_that_is_no_versioned_package() -> None:
    with pytest.raises(ValueError, match="not a versioned model package ARN"):
        transform.batch_model_name(PREFIX, "arn:aws:sagemaker:eu-west-1:1:model-package/g")


def test_the_starter_refuses_a_prefix_that_makes_job_names_too_long() -> None:
    with pytest.raises(ValueError, match="longer than SageMaker's 63 characters"):
        _config(name_prefix="a" * 45)


def test_the_heartbeat_reports_hours_since_the_last_run_that_ended_without_error(
    aws: dict[str, Any], diabetes: pd.DataFrame
) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    config = _config()
    start = datetime.now(UTC)
    # Before any run the clock starts at the first heartbeat: a new stage is not stale.
    assert (
        transform.heartbeat(config, now=start, dynamodb=aws["dynamodb"], cloudwatch=cloudwatch)[
            "hours_since_run"
        ]
        == 0.0
    )
    later = transform.heartbeat(
        config, now=start + timedelta(hours=30), dynamodb=aws["dynamodb"], cloudwatch=cloudwatch
    )
    assert later["hours_since_run"] == pytest.approx(30.0)
    # A run with nothing to do still counts (the stage is alive) ...
    aws["ssm"].put_parameter(Name=PARAMETER, Value="none", Type="String")
    _start(aws, config, datetime.now(UTC))
    after_run = transform.heartbeat(
        config, now=datetime.now(UTC), dynamodb=aws["dynamodb"], cloudwatch=cloudwatch
    )
    assert after_run["hours_since_run"] < 0.01
    # ... a run that fails does not.
    stamp = aws["dynamodb"].get_item(TableName=TABLE, Key={"pk": {"S": transform.ran_key(PREFIX)}})[
        "Item"
    ]["at"]["S"]
    newer = f"arn:aws:sagemaker:{REGION}:123456789012:model-package/acme-prod-models/2"
    aws["ssm"].put_parameter(Name=PARAMETER, Value=newer, Type="String", Overwrite=True)
    with pytest.raises(RuntimeError, match="does not exist"):
        _start(aws, config, datetime.now(UTC))
    item = aws["dynamodb"].get_item(TableName=TABLE, Key={"pk": {"S": transform.ran_key(PREFIX)}})
    assert item["Item"]["at"]["S"] == stamp
    (metric,) = cloudwatch.list_metrics(Namespace="MLOps")["Metrics"]
    assert metric["MetricName"] == "HoursSinceBatchRun"
    assert metric["Dimensions"] == [{"Name": "EndpointName", "Value": PREFIX}]
