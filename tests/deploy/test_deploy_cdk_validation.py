"""Bad props fail at construction with one error that says what was wrong and how to fix it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cdk.monitoring.settings import MonitorSettings
from cdk.serving.settings import EndpointSettings

REPO = Path(__file__).resolve().parents[2]


def test_endpoint_capacity_must_be_consistent() -> None:
    with pytest.raises(ValueError, match=r"min_instances \(3\) exceeds max_instances \(2\)"):
        EndpointSettings(
            endpoint_name="acme-prod", min_instances=3, max_instances=2, initial_instance_count=2
        )


def test_endpoint_settings_reject_unknown_keys_and_bad_names() -> None:
    with pytest.raises(ValidationError) as caught:
        EndpointSettings(endpoint_name="acme_prod!", instance_typ="ml.m5.large")  # type: ignore[call-arg]
    problems = {error["loc"][0] for error in caught.value.errors()}
    assert problems == {"endpoint_name", "instance_typ"}


def test_monitor_schedule_and_floor_metric_are_checked() -> None:
    with pytest.raises(ValueError, match="Scheduler expression"):
        MonitorSettings(drift_schedule="every hour")
    with pytest.raises(ValueError, match="lower-is-better"):
        MonitorSettings(primary_metric="rmse")


def _scope() -> tuple[Any, Any, dict[str, Any]]:
    from aws_cdk import App, Stack
    from aws_cdk import aws_ecr as ecr
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_s3 as s3

    app = App()
    stack = Stack(app, "S")
    key = kms.Key(stack, "K")
    bucket = s3.Bucket(stack, "B", encryption_key=key)
    return app, stack, {"key": key, "bucket": bucket, "repo": ecr.Repository(stack, "R")}


def test_monitors_refuse_a_serverless_endpoint() -> None:
    from aws_cdk import aws_dynamodb as dynamodb
    from aws_cdk import aws_sns as sns

    from cdk.monitoring.monitors import ModelMonitors
    from cdk.serving.approved_model import ApprovedModelParameter
    from cdk.serving.endpoint import ModelEndpoint

    _, stack, things = _scope()
    endpoint = ModelEndpoint(
        stack,
        "E",
        settings=EndpointSettings(endpoint_name="acme-dev", serverless={}),
        model_package_arn="arn:aws:sagemaker:eu-west-1:111111111111:model-package/g/1",
        model_sha256="sha256:" + "0" * 64,
        encryption_key=things["key"],
        capture_bucket=things["bucket"],
        model_bucket=things["bucket"],
    )
    with pytest.raises(ValueError, match="serverless and captures no data"):
        ModelMonitors(
            stack,
            "M",
            endpoint=endpoint,
            approved_model=ApprovedModelParameter(
                stack, "P", parameter_name="/mlops/acme/dev/model"
            ),
            model_package_group_name="g",
            image_uri="img",
            image_repository=things["repo"],
            encryption_key=things["key"],
            model_bucket=things["bucket"],
            reports_bucket=things["bucket"],
            settings_file=REPO / "tests" / "fixtures" / "aws_settings.yaml",
            settings=MonitorSettings(),
            state_table=dynamodb.Table(
                stack,
                "T",
                partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            ),
            notifications=sns.Topic(stack, "N"),
        )


def test_parameter_names_must_be_ssm_paths() -> None:
    from cdk.serving.approved_model import ApprovedModelParameter

    _, stack, _ = _scope()
    with pytest.raises(ValueError, match="absolute SSM path"):
        ApprovedModelParameter(stack, "P", parameter_name="model arn")


def test_release_targets_must_be_unique() -> None:
    from aws_cdk import aws_sns as sns

    from cdk.serving.release import ReleaseFlow, ReleaseTarget

    _, stack, _ = _scope()
    target = ReleaseTarget("prod", "arn:aws:iam::1:role/r", "/mlops/acme/prod/release-target")
    with pytest.raises(ValueError, match="must be unique"):
        ReleaseFlow(
            stack,
            "F",
            model_package_group_name="g",
            targets=[target, target],
            notifications=sns.Topic(stack, "N"),
            function_role_names=("a", "b"),
        )


def test_the_model_build_target_cannot_wait_for_an_approval() -> None:
    from aws_cdk import aws_sns as sns

    from cdk.serving.release import ReleaseFlow, ReleaseTarget

    _, stack, _ = _scope()
    first = ReleaseTarget("dev", "arn:aws:iam::1:role/r", "/p", approval_before=True)
    with pytest.raises(ValueError, match="cannot ask again"):
        ReleaseFlow(
            stack,
            "F",
            model_package_group_name="g",
            targets=[first],
            notifications=sns.Topic(stack, "N"),
            function_role_names=("a", "b"),
        )


def test_endpoint_overrides_are_checked_as_endpoint_settings() -> None:
    from cdk.serving.settings import EndpointOverrides

    with pytest.raises(ValueError, match=r"initial_instance_count \(5\) must lie between"):
        EndpointOverrides(initial_instance_count=5, max_instances=4)
