"""The closed loop, end to end on this machine.

A model trained by mlcore serves over loopback with SageMaker-layout data capture. The
monitor job's own command line (the ContainerEntrypoint the scheduled starter sends)
runs against the captured data laid out as the Processing job sees it; its report is
published as CloudWatch metrics (moto); the alarm deployed by the serving stack (read
from the synthesised template) is evaluated on them; the alarm's state change goes to
the retrain gate, whose event must match the deployed retrain rule (moto EventBridge
delivering to SQS). Drifting all day starts exactly one retrain.
"""

from __future__ import annotations

import argparse
import json
import operator
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pandas as pd
import pytest
from moto import mock_aws

from mlcore.capture import INFERENCE_ID_HEADER, INFERENCE_TIME_HEADER, CaptureWriter
from mlcore.cli import main as mlcore_main
from mlcore.data import CHURN_SPEC, make_churn
from mlcore.quality import add_quality_parser
from mlcore.serve import serve_in_thread
from mlcore.settings import load_settings, resolve_settings_path
from mlcore.train import save_trained_model, train_model
from pipelines.monitoring import jobs, metrics, retrain

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("deploy-cdk")]

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
# Names the deploy_app fixture (tests/deploy/conftest.py, project "acme") gives its resources.
ENDPOINT = "acme-staging"
PIPELINE = "acme-dev-model-build"
TABLE = "serving-state"
LIVE_START = datetime(2026, 3, 2, 8, tzinfo=UTC)
_COMPARE = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = load_settings(resolve_settings_path())
    data = make_churn(4_000, seed=3)
    train, holdout = data.iloc[:3_000], data.iloc[3_000:]
    bundle = train_model(train, CHURN_SPEC, settings.training)
    return save_trained_model(
        bundle, tmp_path_factory.mktemp("model"), reference=holdout, drift_settings=settings.drift
    )


def _serve(model_dir: Path, capture_root: Path, live: pd.DataFrame) -> list[str]:
    """One request per record (an inference id labels one request), an hour of traffic per 100 rows."""
    writer = CaptureWriter(capture_root, endpoint_name=ENDPOINT, seed=0)
    ids = []
    with (
        serve_in_thread(model_dir, capture=writer, trust_inference_time_header=True) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        for number, record in enumerate(
            json.loads(live[list(CHURN_SPEC.features)].to_json(orient="records"))
        ):
            inference_id = str(uuid.uuid5(uuid.NAMESPACE_OID, f"e2e-{number}"))
            when = LIVE_START + timedelta(hours=number // 100)
            headers = {INFERENCE_ID_HEADER: inference_id, INFERENCE_TIME_HEADER: when.isoformat()}
            client.post(
                "/invocations", json={"instances": [record]}, headers=headers
            ).raise_for_status()
            ids.append(inference_id)
    return ids


def _job_workspace(tmp: Path, capture_root: Path, model: Path) -> Path:
    """The Processing job's /opt/ml/processing, as its inputs land there."""
    root = tmp / "processing"
    shutil.copytree(capture_root, root / "input" / "capture")
    shutil.copytree(model, root / "input" / "model")
    (root / "input" / "settings").mkdir(parents=True)
    shutil.copy(resolve_settings_path(), root / "input" / "settings" / "mlops.yaml")
    return root


def _local(command: list[str], root: Path) -> list[str]:
    return [part.replace("/opt/ml/processing", str(root)) for part in command]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("PIPELINE_NAME", PIPELINE)
    monkeypatch.setenv("STATE_TABLE", TABLE)
    monkeypatch.setenv("COOLDOWN_HOURS", "24")
    with mock_aws():
        clients = {
            n: boto3.client(n, region_name=REGION)
            for n in ("cloudwatch", "dynamodb", "events", "sqs")
        }
        clients["dynamodb"].create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield clients


def _deployed(deploy_app: Any, type_: str, predicate: Any) -> dict[str, Any]:
    from aws_cdk.assertions import Template

    resources = Template.from_stack(deploy_app.stacks["staging"]).find_resources(type_)
    matches = [r["Properties"] for r in resources.values() if predicate(r["Properties"])]
    assert len(matches) == 1
    return matches[0]


def _alarm_breached(cloudwatch: Any, alarm: dict[str, Any], at: datetime) -> bool:
    """Evaluate the deployed alarm's statistic and threshold on what was published (moto stores, not evaluates)."""
    points = cloudwatch.get_metric_statistics(
        Namespace=alarm["Namespace"],
        MetricName=alarm["MetricName"],
        Dimensions=alarm["Dimensions"],
        StartTime=at - timedelta(seconds=alarm["Period"]),
        EndTime=at + timedelta(minutes=1),
        Period=alarm["Period"],
        Statistics=[alarm["Statistic"]],
    )["Datapoints"]
    compare = _COMPARE[alarm["ComparisonOperator"]]
    return any(compare(p[alarm["Statistic"]], alarm["Threshold"]) for p in points)


def _retrain_queue(aws: dict[str, Any], deploy_app: Any) -> str:
    """An SQS queue behind a rule with the deployed retrain rule's event pattern."""
    rule = _deployed(
        deploy_app,
        "AWS::Events::Rule",
        lambda p: p["EventPattern"].get("source") == [retrain.EVENT_SOURCE],
    )
    queue_url = aws["sqs"].create_queue(QueueName="retrains")["QueueUrl"]
    queue_arn = aws["sqs"].get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    aws["events"].put_rule(Name="retrain", EventPattern=json.dumps(rule["EventPattern"]))
    aws["events"].put_targets(Rule="retrain", Targets=[{"Id": "pipeline", "Arn": queue_arn}])
    return queue_url


def _alarm_event(alarm_name: str) -> dict[str, Any]:
    return {
        "source": "aws.cloudwatch",
        "detail-type": "CloudWatch Alarm State Change",
        "detail": {
            "alarmName": alarm_name,
            "state": {"value": "ALARM", "reason": "Threshold Crossed"},
        },
    }


def _received(aws: dict[str, Any], queue_url: str) -> list[dict[str, Any]]:
    messages = (
        aws["sqs"].receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    )
    return [json.loads(m["Body"]) for m in messages]


def test_injected_drift_starts_exactly_one_retrain_per_cooldown(
    model_dir: Path, deploy_app: Any, aws: dict[str, Any], tmp_path: Path
) -> None:
    live = make_churn(300, seed=11, covariate_shift=1.0)
    capture_root = tmp_path / "capture"
    _serve(model_dir, capture_root, live)

    root = _job_workspace(tmp_path, capture_root, model_dir)
    command = _local(jobs.monitor_command("drift", settings_file="mlops.yaml"), root)
    assert command[0] == "mlcore"
    assert mlcore_main(command[1:]) == 0
    report = json.loads((root / "output" / "drift_report.json").read_text())
    assert report["dataset_drift"] is True and report["current_rows"] == 300
    assert (root / "output" / "constraint_violations.json").is_file()

    alarm = _deployed(
        deploy_app, "AWS::CloudWatch::Alarm", lambda p: p.get("MetricName") == metrics.DATASET_DRIFT
    )
    queue_url = _retrain_queue(aws, deploy_app)
    granted = []
    # Hourly drift runs all day: every run breaches, and the alarm flaps back to ALARM each time.
    for hour in range(6):
        at = LIVE_START + timedelta(hours=3 + hour)
        data = metrics.drift_metric_data(report, endpoint_name=ENDPOINT, timestamp=at)
        metrics.put_metrics(aws["cloudwatch"], namespace="MLOps", data=data)
        assert _alarm_breached(aws["cloudwatch"], alarm, at)
        decision = retrain.request_retrain(
            pipeline_name=PIPELINE,
            alarm_name=f"{ENDPOINT}-data-drift",
            reason="Threshold Crossed",
            cooldown=timedelta(hours=24),
            table=TABLE,
            dynamodb=aws["dynamodb"],
            events=aws["events"],
            now=at,
        )
        granted.append(decision.granted)
    assert granted == [True, False, False, False, False, False]
    delivered = _received(aws, queue_url)
    assert len(delivered) == 1
    assert delivered[0]["detail"]["pipeline_name"] == PIPELINE


def test_no_drift_no_alarm(
    model_dir: Path, deploy_app: Any, aws: dict[str, Any], tmp_path: Path
) -> None:
    live = make_churn(300, seed=12)
    capture_root = tmp_path / "capture"
    _serve(model_dir, capture_root, live)
    root = _job_workspace(tmp_path, capture_root, model_dir)
    assert (
        mlcore_main(_local(jobs.monitor_command("drift", settings_file="mlops.yaml"), root)[1:])
        == 0
    )
    report = json.loads((root / "output" / "drift_report.json").read_text())
    assert report["dataset_drift"] is False
    alarm = _deployed(
        deploy_app, "AWS::CloudWatch::Alarm", lambda p: p.get("MetricName") == metrics.DATASET_DRIFT
    )
    at = LIVE_START + timedelta(hours=3)
    metrics.put_metrics(
        aws["cloudwatch"],
        namespace="MLOps",
        data=metrics.drift_metric_data(report, endpoint_name=ENDPOINT, timestamp=at),
    )
    assert not _alarm_breached(aws["cloudwatch"], alarm, at)


def test_late_labels_that_disagree_raise_the_quality_alarm_and_a_retrain(
    model_dir: Path, deploy_app: Any, aws: dict[str, Any], tmp_path: Path
) -> None:
    live = make_churn(300, seed=13)
    capture_root = tmp_path / "capture"
    ids = _serve(model_dir, capture_root, live)

    # The model's own opinion, reversed, arrives as ground truth a day later (SageMaker's format).
    from mlcore.capture import read_capture

    captured = read_capture(capture_root, CHURN_SPEC).set_index("inference_id")
    labels_dir = tmp_path / "ground-truth" / "2026" / "03" / "03" / "09"
    labels_dir.mkdir(parents=True)
    with (labels_dir / "labels.jsonl").open("w") as handle:
        for inference_id in ids[:250]:  # some labels have not arrived yet
            label = int(captured.loc[inference_id, "score"] < 0.5)
            record = {
                "groundTruthData": {"data": str(label), "encoding": "CSV"},
                "eventMetadata": {"eventId": inference_id},
                "eventVersion": "0",
            }
            handle.write(json.dumps(record) + "\n")

    root = _job_workspace(tmp_path, capture_root, model_dir)
    shutil.copytree(tmp_path / "ground-truth", root / "input" / "labels")
    # The job receives the model as SageMaker's model.tar.gz, not a folder.
    shutil.rmtree(root / "input" / "model")
    (root / "input" / "model").mkdir()
    with tarfile.open(root / "input" / "model" / "model.tar.gz", "w:gz") as tar:
        for item in model_dir.iterdir():
            tar.add(item, arcname=item.name)

    parser = argparse.ArgumentParser(prog="mlcore")
    add_quality_parser(parser.add_subparsers(required=True))
    command = _local(jobs.monitor_command("quality", settings_file="mlops.yaml"), root)
    args = parser.parse_args(command[1:])
    assert args.handler(args) == 0
    report = json.loads((root / "output" / "quality_report.json").read_text())
    assert report["rows"] == 250 and report["unlabelled_predictions"] == 50
    assert report["below_threshold"] is True
    assert set(report["slices"]) == set(
        load_settings(resolve_settings_path()).dataset.slice_columns
    )

    alarm = _deployed(
        deploy_app,
        "AWS::CloudWatch::Alarm",
        lambda p: p.get("MetricName") == metrics.quality_metric_name("auc"),
    )
    at = LIVE_START + timedelta(days=1, hours=2)
    metrics.put_metrics(
        aws["cloudwatch"],
        namespace="MLOps",
        data=metrics.quality_metric_data(report, endpoint_name=ENDPOINT, timestamp=at),
    )
    assert _alarm_breached(aws["cloudwatch"], alarm, at)
    queue_url = _retrain_queue(aws, deploy_app)
    assert retrain.handler(_alarm_event(f"{ENDPOINT}-model-quality"))["granted"] is True
    assert retrain.handler(_alarm_event(f"{ENDPOINT}-model-quality"))["granted"] is False
    assert len(_received(aws, queue_url)) == 1
