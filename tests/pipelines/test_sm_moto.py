"""The model-build pipeline and its control plane against moto's SageMaker.

moto stores pipelines, executions and model packages but runs no steps, so waiting for an
execution to finish is exercised with botocore's Stubber (scripted DescribePipelineExecution
answers) instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from sm_fixtures import FIXTURE_SETTINGS

from mlcore.settings import load_settings
from pipelines.sagemaker import definition as sm_definition
from pipelines.sagemaker import model_registry, preflight, run_pipeline
from pipelines.sagemaker.definition import PipelineTargets, build_pipeline

REGION = "us-east-1"
GROUP = "acme-dev-models"
PIPELINE = "acme-dev-model-build"
EXECUTION_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/{PIPELINE}/execution/abc123"


@pytest.fixture
def aws() -> Iterator[boto3.Session]:
    with mock_aws():
        yield boto3.Session(region_name=REGION)


ROLE_ARN = "arn:aws:iam::123456789012:role/model-build"  # moto's account id
DATA_BUCKET = "acme-dev-data"


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
        settings=load_settings(FIXTURE_SETTINGS),
        targets=PipelineTargets(
            role_arn=ROLE_ARN,
            image_uri=f"123456789012.dkr.ecr.{REGION}.amazonaws.com/mlcore:test",
            artifact_bucket="acme-dev-artifacts",
            model_package_group_name=GROUP,
            default_input_data_url=f"s3://{DATA_BUCKET}/training-data/",
            region=REGION,
            settings_s3_uri="s3://cdk-assets/0f1e.yaml",
            check_function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:check",
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
    assert names == [sm_definition.CHECK_STEP, sm_definition.DATA_CONDITION_STEP]
    arn = run_pipeline.start_execution(
        client, PIPELINE, parameters={"GitCommit": "abc123", "InputDataUrl": "s3://x/y/"}
    )
    (summary,) = client.list_pipeline_executions(PipelineName=PIPELINE)[
        "PipelineExecutionSummaries"
    ]
    assert summary["PipelineExecutionArn"] == arn
    parameters = client.describe_pipeline_execution(PipelineExecutionArn=arn)
    assert parameters["PipelineExecutionArn"] == arn


def test_misspelt_parameter_is_refused_before_starting(aws: boto3.Session, upserted: Any) -> None:
    client = aws.client("sagemaker")
    with pytest.raises(ValueError, match=r"no parameter\(s\) \['GitComit'\].*'GitCommit'"):
        run_pipeline.start_execution(client, PIPELINE, parameters={"GitComit": "abc"})
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


def _scripted_client(
    statuses: list[str], steps: list[dict[str, Any]], *, started: bool = False
) -> tuple[Any, Stubber]:
    client = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    if started:
        stubber.add_response(
            "start_pipeline_execution",
            {"PipelineExecutionArn": EXECUTION_ARN},
            {"PipelineName": PIPELINE, "PipelineParameters": []},
        )
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
    assert "no model package in acme-dev-models is waiting for approval" in capsys.readouterr().err


CI_ROLE_ARN = "arn:aws:iam::222222222222:role/acme-dev-ci-train"


def test_assumed_role_credentials_are_renewed_before_they_expire(aws: boto3.Session) -> None:
    # Finding 5: CodeBuild -> CI role is role chaining, capped at one hour per AssumeRole; a
    # 3-hour training wait must keep working. moto's STS issues one-hour credentials.
    offset = [timedelta(0)]
    session = run_pipeline.assumed_role_session(
        CI_ROLE_ARN, region=REGION, source=aws, time_fetcher=lambda: _now() + offset[0]
    )
    credentials = session.get_credentials()
    first = credentials.get_frozen_credentials()
    assert credentials.get_frozen_credentials().access_key == first.access_key  # still valid
    offset[0] = timedelta(minutes=48)  # 12 minutes left: inside botocore's refresh window
    renewed = credentials.get_frozen_credentials()
    assert renewed.access_key != first.access_key and renewed.token != first.token


def test_assumed_role_client_acts_in_the_role_account(aws: boto3.Session) -> None:
    # moto switches account with the assumed role, as AWS does for a role in another account.
    client = run_pipeline.assumed_role_session(CI_ROLE_ARN, region=REGION, source=aws).client(
        "sagemaker"
    )
    client.create_model_package_group(ModelPackageGroupName=GROUP)
    arn = client.describe_model_package_group(ModelPackageGroupName=GROUP)["ModelPackageGroupArn"]
    assert ":222222222222:" in arn
    assert aws.client("sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"] == []


def test_assuming_a_role_without_source_credentials_says_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = boto3.Session(region_name=REGION)
    monkeypatch.setattr(source, "get_credentials", lambda: None)
    with pytest.raises(ValueError, match=r"no AWS credentials to assume .*acme-dev-ci-train"):
        run_pipeline.assumed_role_session(CI_ROLE_ARN, source=source)


def _now() -> datetime:
    return datetime.now(UTC)


def test_a_run_that_found_no_data_succeeds_and_says_nothing_was_trained(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Finding 4: TrainDev must not fail (and block staging and prod) on an empty bucket.
    steps = [
        {
            "StepName": run_pipeline.CHECK_STEP,
            "StepStatus": "Succeeded",
            "Metadata": {
                "Lambda": {
                    "Arn": "arn:aws:lambda:us-east-1:123456789012:function:check",
                    "OutputParameters": [
                        {"Name": "has_data", "Value": "false"},
                        {"Name": "message", "Value": "no training data under s3://d/t/"},
                    ],
                }
            },
        },
        {"StepName": "HasTrainingData", "StepStatus": "Succeeded"},
    ]
    client, stubber = _scripted_client(["Succeeded"], steps)
    stubber.add_response(
        "start_pipeline_execution",
        {"PipelineExecutionArn": EXECUTION_ARN},
        {"PipelineName": PIPELINE, "PipelineParameters": []},
    )
    # start comes first: move its answer to the front of the queue.
    stubber._queue.rotate(1)
    with stubber:
        code = run_pipeline.main(
            ["--pipeline-name", PIPELINE, "--wait", "--poll-seconds", "1"], client=client
        )
    assert code == run_pipeline.EXIT_SUCCEEDED
    assert "no model was trained: no training data under s3://d/t/" in capsys.readouterr().out


def test_the_ci_wait_knows_the_check_step_by_its_name() -> None:
    assert run_pipeline.CHECK_STEP == sm_definition.CHECK_STEP


def _put(s3: Any, key: str, body: bytes = b"x") -> None:
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=body)


def _check(aws: boto3.Session) -> dict[str, str]:
    return preflight.check_inputs(
        input_data_url=f"s3://{DATA_BUCKET}/training-data/",
        model_package_group_name=GROUP,
        s3=aws.client("s3"),
        sagemaker=aws.client("sagemaker"),
    ).outputs()


def test_check_inputs_finds_no_data_in_an_empty_bucket_or_one_with_markers_only(
    aws: boto3.Session,
) -> None:
    aws.client("s3").create_bucket(Bucket=DATA_BUCKET)
    aws.client("sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
    assert _check(aws)["has_data"] == "false"
    _put(aws.client("s3"), "training-data/2026-10/_SUCCESS", b"")
    _put(aws.client("s3"), "training-data/2026-10/.part-0.parquet.crc")
    _put(aws.client("s3"), "other-prefix/part-0.parquet")
    outputs = _check(aws)
    assert (outputs["has_data"], outputs["data_files"]) == ("false", "0")
    assert "training skipped" in outputs["message"] and "_SUCCESS" in outputs["message"]


def test_check_inputs_counts_a_dated_drop_and_finds_the_newest_approved_champion(
    aws: boto3.Session,
) -> None:
    s3, client = aws.client("s3"), aws.client("sagemaker")
    s3.create_bucket(Bucket=DATA_BUCKET)
    client.create_model_package_group(ModelPackageGroupName=GROUP)
    _put(s3, "training-data/2026-10/part-0.parquet")
    _put(s3, "training-data/2026-10/_SUCCESS", b"")
    assert _check(aws)["has_champion"] == "false"
    older = _register(client, "old0001")
    model_registry.set_approval(client, older, "Approved", comment="first")
    newest = _register(client, "abc1234")
    _register(client, "pending9")  # pending packages are not champions
    model_registry.set_approval(client, newest, "Approved", comment="second")
    outputs = _check(aws)
    assert (outputs["has_data"], outputs["data_files"]) == ("true", "1")
    assert outputs["has_champion"] == "true"
    assert outputs["champion_package_arn"] == newest
    assert outputs["champion_model_url"] == "s3://a/model.tar.gz"


def test_check_inputs_handler_says_which_inputs_are_missing() -> None:
    with pytest.raises(ValueError, match=r"needs \['model_package_group_name'\]"):
        preflight.handler({"input_data_url": "s3://b/p/"})
