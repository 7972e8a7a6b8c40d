"""The model-build pipeline and its control plane against moto's SageMaker.

moto stores pipelines, executions and model packages but runs no steps, so waiting for an
execution to finish is exercised with botocore's Stubber (scripted DescribePipelineExecution
answers) instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from mlcore.settings import load_settings, resolve_settings_path
from pipelines.sagemaker import model_registry, run_pipeline
from pipelines.sagemaker.definition import PipelineTargets, build_pipeline

REGION = "us-east-1"
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
GROUP = "churn-dev-models"
PIPELINE = "churn-dev-model-build"
EXECUTION_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/{PIPELINE}/execution/abc123"


@pytest.fixture
def aws() -> Iterator[boto3.Session]:
    with mock_aws():
        yield boto3.Session(region_name=REGION)


ROLE_ARN = "arn:aws:iam::123456789012:role/model-build"  # moto's account id


def _create_sagemaker_role(session: boto3.Session) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = session.client("iam").create_role(
        RoleName="model-build", AssumeRolePolicyDocument=json.dumps(trust)
    )
    return str(role["Role"]["Arn"])


@pytest.fixture(scope="module")
def pipeline() -> Any:
    """Built once (a few seconds); each test upserts it into its own moto account."""
    return build_pipeline(
        PIPELINE,
        settings=load_settings(resolve_settings_path()),
        targets=PipelineTargets(
            role_arn=ROLE_ARN,
            image_uri=f"123456789012.dkr.ecr.{REGION}.amazonaws.com/mlcore:test",
            artifact_bucket="churn-dev-artifacts",
            model_package_group_name=GROUP,
            default_input_data_url="s3://churn-dev-data/training-data/",
            region=REGION,
        ),
        # Fake keys: the clients are made now, outside moto, and only used inside it.
        boto_session=boto3.Session(
            region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        ),
    )


@pytest.fixture
def upserted(aws: boto3.Session, pipeline: Any) -> Any:
    # upsert checks the role's trust policy in IAM: create it as the stack would.
    assert _create_sagemaker_role(aws) == ROLE_ARN
    aws.client("sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
    pipeline.upsert(role_arn=ROLE_ARN)
    return pipeline


def test_definition_upserts_and_starts_in_sagemaker(aws: boto3.Session, upserted: Any) -> None:
    client = aws.client("sagemaker")
    described = client.describe_pipeline(PipelineName=PIPELINE)
    names = [s["Name"] for s in json.loads(described["PipelineDefinition"])["Steps"]]
    assert names == ["Prep", "Train", "Evaluate", "QualityGate"]
    arn = run_pipeline.start_execution(
        client, PIPELINE, parameters={"GitCommit": "abc123", "MinAuc": "0.8"}
    )
    (summary,) = client.list_pipeline_executions(PipelineName=PIPELINE)[
        "PipelineExecutionSummaries"
    ]
    assert summary["PipelineExecutionArn"] == arn
    parameters = client.describe_pipeline_execution(PipelineExecutionArn=arn)
    assert parameters["PipelineExecutionArn"] == arn


def test_misspelt_parameter_is_refused_before_starting(aws: boto3.Session, upserted: Any) -> None:
    client = aws.client("sagemaker")
    with pytest.raises(ValueError, match=r"no parameter\(s\) \['MinAUC'\].*'MinAuc'"):
        run_pipeline.start_execution(client, PIPELINE, parameters={"MinAUC": "0.8"})
    assert (
        client.list_pipeline_executions(PipelineName=PIPELINE)["PipelineExecutionSummaries"] == []
    )


def test_run_pipeline_cli_starts_an_execution(
    aws: boto3.Session, upserted: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    client = aws.client("sagemaker")
    code = run_pipeline.main(
        ["--pipeline-name", PIPELINE, "--parameter", "GitCommit=abc123"], client=client
    )
    assert code == run_pipeline.EXIT_SUCCEEDED
    assert "started arn:aws:sagemaker:" in capsys.readouterr().out


def test_run_pipeline_cli_rejects_a_malformed_parameter(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_pipeline.main(
        ["--pipeline-name", PIPELINE, "--parameter", "GitCommit"], client=object()
    )
    assert code == run_pipeline.EXIT_ERROR
    assert "must look like Name=value" in capsys.readouterr().err


def _scripted_client(statuses: list[str], steps: list[dict[str, Any]]) -> tuple[Any, Stubber]:
    client = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    for status in statuses:
        stubber.add_response(
            "describe_pipeline_execution",
            {"PipelineExecutionArn": EXECUTION_ARN, "PipelineExecutionStatus": status},
            {"PipelineExecutionArn": EXECUTION_ARN},
        )
        stubber.add_response(
            "list_pipeline_execution_steps",
            {"PipelineExecutionSteps": steps},
            {"PipelineExecutionArn": EXECUTION_ARN, "SortOrder": "Ascending"},
        )
    return client, stubber


def test_wait_reports_step_changes_until_the_execution_succeeds() -> None:
    steps = [
        {"StepName": "Prep", "StepStatus": "Succeeded"},
        {"StepName": "Train", "StepStatus": "Executing"},
    ]
    client, stubber = _scripted_client(["Executing", "Executing", "Succeeded"], steps)
    reports: list[tuple[run_pipeline.StepStatus, ...]] = []
    with stubber:
        result = run_pipeline.wait_for_execution(
            client,
            EXECUTION_ARN,
            timeout_seconds=600,
            poll_seconds=1,
            on_change=reports.append,
            sleep=lambda _: None,
        )
    assert result.status == "Succeeded" and not result.timed_out
    assert len(reports) == 1  # the steps did not change between polls
    assert [s.describe() for s in reports[0]] == ["Prep: Succeeded", "Train: Executing"]


def test_wait_times_out_on_a_stuck_execution() -> None:
    client, stubber = _scripted_client(["Executing", "Executing"], [])
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with stubber:
        result = run_pipeline.wait_for_execution(
            client,
            EXECUTION_ARN,
            timeout_seconds=60,
            poll_seconds=60,
            clock=lambda: now[0],
            sleep=sleep,
        )
    assert result.timed_out and result.status == "Executing"


def test_failed_step_reason_is_reported() -> None:
    steps = [
        {
            "StepName": "Evaluate",
            "StepStatus": "Failed",
            "FailureReason": "AlgorithmError: no test data",
        }
    ]
    client, stubber = _scripted_client(["Failed"], steps)
    with stubber:
        result = run_pipeline.wait_for_execution(client, EXECUTION_ARN, timeout_seconds=60)
    assert result.status == "Failed"
    assert result.steps[0].describe() == "Evaluate: Failed (AlgorithmError: no test data)"


def _register(client: Any, commit: str) -> str:
    # What the pipeline's RegisterModel step sends once the gate has passed.
    return client.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlcore:test",
                    "ModelDataUrl": "s3://a/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties={
            "git_commit": commit,
            "data_fingerprint": "sha256:0f1e",
            "hp_learning_rate": "0.08",
            "metric_auc": "0.87",
        },
    )["ModelPackageArn"]


def test_registered_model_is_reviewed_and_approved(aws: boto3.Session) -> None:
    client = aws.client("sagemaker")
    client.create_model_package_group(ModelPackageGroupName=GROUP)
    _register(client, "old0001")
    newest = _register(client, "abc1234")
    pending = model_registry.latest_pending(client, GROUP)
    assert pending.arn == newest
    assert (pending.git_commit, pending.data_fingerprint, pending.metrics) == (
        "abc1234",
        "sha256:0f1e",
        {"auc": "0.87"},
    )
    approved = model_registry.set_approval(client, newest, "Approved", comment="AUC 0.87; reviewed")
    assert approved.status == "Approved"
    assert [p.arn for p in model_registry.list_packages(client, GROUP, status="Approved")] == [
        newest
    ]


def test_approval_needs_a_comment(aws: boto3.Session) -> None:
    client = aws.client("sagemaker")
    client.create_model_package_group(ModelPackageGroupName=GROUP)
    arn = _register(client, "abc1234")
    with pytest.raises(ValueError, match="give a comment"):
        model_registry.set_approval(client, arn, "Approved", comment=" ")
    assert model_registry.describe_package(client, arn).status == "PendingManualApproval"


def test_registry_cli_rejects_the_latest_pending_model(
    aws: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    client = aws.client("sagemaker")
    client.create_model_package_group(ModelPackageGroupName=GROUP)
    arn = _register(client, "abc1234")
    code = model_registry.main(
        ["reject", "--group", GROUP, "--latest", "--comment", "drifted data"], client=client
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == f"{arn}: Rejected"


def test_registry_cli_says_when_nothing_awaits_approval(
    aws: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    client = aws.client("sagemaker")
    client.create_model_package_group(ModelPackageGroupName=GROUP)
    code = model_registry.main(
        ["approve", "--group", GROUP, "--latest", "--comment", "ok"], client=client
    )
    assert code == 2
    assert "no model package in churn-dev-models is waiting for approval" in capsys.readouterr().err
