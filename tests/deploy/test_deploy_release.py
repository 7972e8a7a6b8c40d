"""The release control plane (pipelines/deploy) against moto, with Stubber where moto falls short."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from pipelines.deploy import release, smoke

REGION = "eu-west-1"
GROUP = "churn-models"
PARAMETER = "/mlops/churn/staging/model-package-arn"
STACK = "StagingServing"
IMAGE = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/mlcore:1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        ssm = boto3.client("ssm", region_name=REGION)
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        ssm.put_parameter(Name=PARAMETER, Value="none", Type="String")
        yield {"sagemaker": sagemaker, "ssm": ssm}


def _register(sagemaker: Any, version_tag: str, status: str) -> str:
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelPackageDescription=version_tag,
        InferenceSpecification={
            "Containers": [
                {"Image": IMAGE, "ModelDataUrl": f"s3://artifacts/{version_tag}/model.tar.gz"}
            ],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelApprovalStatus=status,
    )["ModelPackageArn"]
    return str(arn)


def _stubbed_cloudformation() -> tuple[Any, Stubber]:
    # moto's UpdateStack does not re-read AWS::SSM::Parameter::Value<String> parameters: it
    # answers "No updates are to be performed" where CloudFormation updates the stack with
    # the parameter's new value. So CloudFormation is stubbed; SSM and SageMaker are moto.
    client = boto3.client("cloudformation", region_name=REGION)
    return client, Stubber(client)


def _describe(status: str = "UPDATE_COMPLETE", reason: str | None = None) -> dict[str, Any]:
    stack: dict[str, Any] = {
        "StackName": STACK,
        "CreationTime": "2026-01-01T00:00:00Z",
        "StackStatus": status,
        "Parameters": [
            {"ParameterKey": "ModelPackageArn", "ParameterValue": PARAMETER},
            {
                "ParameterKey": "BootstrapVersion",
                "ParameterValue": "/cdk-bootstrap/hnb659fds/version",
            },
        ],
    }
    if reason:
        stack["StackStatusReason"] = reason
    return {"Stacks": [stack]}


def _expect_update(stubber: Stubber, *, error: str | None = None) -> None:
    stubber.add_response("describe_stacks", _describe(), {"StackName": STACK})
    expected = {
        "StackName": STACK,
        "UsePreviousTemplate": True,
        "Parameters": [
            {"ParameterKey": "ModelPackageArn", "UsePreviousValue": True},
            {"ParameterKey": "BootstrapVersion", "UsePreviousValue": True},
        ],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    }
    if error is None:
        stubber.add_response("update_stack", {"StackId": "stack-id"}, expected)
    else:
        stubber.add_client_error("update_stack", "ValidationError", error, expected_params=expected)


def test_latest_approved_package_skips_pending_and_rejected(aws: dict[str, Any]) -> None:
    _register(aws["sagemaker"], "v1", "Approved")
    newest_approved = _register(aws["sagemaker"], "v2", "Approved")
    _register(aws["sagemaker"], "v3", "PendingManualApproval")
    assert release.latest_approved_package(aws["sagemaker"], GROUP) == newest_approved


def test_latest_approved_package_explains_an_empty_group(aws: dict[str, Any]) -> None:
    _register(aws["sagemaker"], "v1", "PendingManualApproval")
    with pytest.raises(ValueError, match="holds no Approved package"):
        release.latest_approved_package(aws["sagemaker"], GROUP)


def test_deploy_points_the_parameter_at_the_package_and_updates_the_stack(
    aws: dict[str, Any],
) -> None:
    arn = _register(aws["sagemaker"], "v1", "Approved")
    cloudformation, stubber = _stubbed_cloudformation()
    _expect_update(stubber)
    with stubber:
        result = release.deploy_model_package(
            cloudformation=cloudformation,
            ssm=aws["ssm"],
            sagemaker=aws["sagemaker"],
            stack_name=STACK,
            parameter_name=PARAMETER,
            model_package_arn=arn,
        )
    stubber.assert_no_pending_responses()
    assert result.updating and result.previous_model_package_arn == "none"
    assert aws["ssm"].get_parameter(Name=PARAMETER)["Parameter"]["Value"] == arn


def test_deploying_the_served_package_again_changes_nothing(aws: dict[str, Any]) -> None:
    arn = _register(aws["sagemaker"], "v1", "Approved")
    aws["ssm"].put_parameter(Name=PARAMETER, Value=arn, Type="String", Overwrite=True)
    cloudformation, stubber = _stubbed_cloudformation()
    _expect_update(stubber, error="No updates are to be performed.")
    with stubber:
        result = release.deploy_model_package(
            cloudformation=cloudformation,
            ssm=aws["ssm"],
            sagemaker=aws["sagemaker"],
            stack_name=STACK,
            parameter_name=PARAMETER,
            model_package_arn=arn,
        )
    assert not result.updating and result.previous_model_package_arn == arn


def test_a_rejected_update_restores_the_parameter(aws: dict[str, Any]) -> None:
    served = _register(aws["sagemaker"], "v1", "Approved")
    new = _register(aws["sagemaker"], "v2", "Approved")
    aws["ssm"].put_parameter(Name=PARAMETER, Value=served, Type="String", Overwrite=True)
    cloudformation, stubber = _stubbed_cloudformation()
    _expect_update(stubber, error="Stack:StagingServing is in UPDATE_IN_PROGRESS state")
    with stubber, pytest.raises(Exception, match="UPDATE_IN_PROGRESS"):
        release.deploy_model_package(
            cloudformation=cloudformation,
            ssm=aws["ssm"],
            sagemaker=aws["sagemaker"],
            stack_name=STACK,
            parameter_name=PARAMETER,
            model_package_arn=new,
        )
    assert aws["ssm"].get_parameter(Name=PARAMETER)["Parameter"]["Value"] == served


def test_only_approved_packages_are_deployed(aws: dict[str, Any]) -> None:
    pending = _register(aws["sagemaker"], "v1", "PendingManualApproval")
    cloudformation, stubber = _stubbed_cloudformation()
    with stubber, pytest.raises(ValueError, match="not Approved"):
        release.deploy_model_package(
            cloudformation=cloudformation,
            ssm=aws["ssm"],
            sagemaker=aws["sagemaker"],
            stack_name=STACK,
            parameter_name=PARAMETER,
            model_package_arn=pending,
        )
    assert aws["ssm"].get_parameter(Name=PARAMETER)["Parameter"]["Value"] == "none"


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("UPDATE_IN_PROGRESS", "in_progress"),
        ("UPDATE_ROLLBACK_IN_PROGRESS", "in_progress"),
        ("UPDATE_COMPLETE", "succeeded"),
        ("UPDATE_ROLLBACK_COMPLETE", "failed"),
        ("UPDATE_FAILED", "failed"),
    ],
)
def test_stack_state_tells_the_flow_when_an_update_ended(status: str, state: str) -> None:
    cloudformation, stubber = _stubbed_cloudformation()
    stubber.add_response(
        "describe_stacks", _describe(status, "alarm churn-prod-5xx-errors"), {"StackName": STACK}
    )
    with stubber:
        got, detail = release.stack_state(cloudformation, STACK)
    assert got == state and status in detail


def test_rollback_serves_the_previous_package_again(aws: dict[str, Any]) -> None:
    previous = _register(aws["sagemaker"], "v1", "Approved")
    current = _register(aws["sagemaker"], "v2", "Approved")
    aws["ssm"].put_parameter(Name=PARAMETER, Value=current, Type="String", Overwrite=True)
    cloudformation, stubber = _stubbed_cloudformation()
    _expect_update(stubber)
    with stubber:
        result = release.rollback(
            cloudformation=cloudformation,
            ssm=aws["ssm"],
            sagemaker=aws["sagemaker"],
            stack_name=STACK,
            parameter_name=PARAMETER,
            to_model_package_arn=previous,
        )
    assert result.previous_model_package_arn == current
    assert aws["ssm"].get_parameter(Name=PARAMETER)["Parameter"]["Value"] == previous


def test_handler_rejects_unknown_actions_and_missing_targets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with pytest.raises(ValueError, match="release target lacks"):
        release.handler({"action": "deploy", "target": {"environment": "staging"}})
    target = {
        "environment": "staging",
        "stack_name": STACK,
        "parameter_name": PARAMETER,
        "endpoint_name": "churn-staging",
    }
    with mock_aws(), pytest.raises(ValueError, match="deploy, status or rollback"):
        release.handler({"action": "promote", "target": target})
    with mock_aws(), pytest.raises(ValueError, match="needs a model_package_arn"):
        release.handler({"action": "rollback", "target": target, "model_package_arn": "none"})


# Smoke test: moto's InvokeEndpoint returns a canned body whatever the endpoint is, so the
# answers below are stubbed with botocore's Stubber to play a good and a broken endpoint.


def _runtime_answering(body: bytes | None, *, error: str | None = None) -> tuple[Any, Stubber]:
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    stubber = Stubber(runtime)
    if error:
        stubber.add_client_error("invoke_endpoint", "ModelError", error)
    else:
        assert body is not None
        stubber.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"},
        )
    return runtime, stubber


def test_smoke_payload_matches_the_churn_models_features() -> None:
    from mlcore.data import CHURN_SPEC
    from mlcore.serve.payload import parse_request

    payload = smoke.load_payload()
    frame = parse_request(json.dumps(payload).encode(), "application/json", CHURN_SPEC)
    assert len(frame) == len(payload["instances"]) == 5


def test_smoke_test_passes_one_probability_per_record() -> None:
    payload = smoke.load_payload()
    answer = {"predictions": [{"prediction": 1, "score": 0.8}] * len(payload["instances"])}
    runtime, stubber = _runtime_answering(json.dumps(answer).encode())
    with stubber:
        result = smoke.smoke_test(runtime, endpoint_name="churn-staging", payload=payload)
    assert result.predictions == result.records == 5


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"<html>oops</html>", "non-JSON"),
        (json.dumps({"result": []}).encode(), 'without a "predictions" list'),
        (
            json.dumps({"predictions": [{"prediction": 1, "score": 0.5}]}).encode(),
            "1 predictions for 5",
        ),
        (
            json.dumps({"predictions": [{"prediction": 1, "score": 3.0}] * 5}).encode(),
            "not a probability",
        ),
    ],
)
def test_smoke_test_fails_on_a_broken_answer(answer: bytes, message: str) -> None:
    runtime, stubber = _runtime_answering(answer)
    with stubber, pytest.raises(smoke.SmokeTestFailed, match=message):
        smoke.smoke_test(runtime, endpoint_name="churn-staging", payload=smoke.load_payload())


def test_smoke_test_fails_when_the_endpoint_errors() -> None:
    runtime, stubber = _runtime_answering(None, error="Received server error (500)")
    with stubber, pytest.raises(smoke.SmokeTestFailed, match="server error"):
        smoke.smoke_test(runtime, endpoint_name="churn-staging", payload=smoke.load_payload())
