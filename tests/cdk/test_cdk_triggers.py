"""What starts the model-build pipeline: schedule, new data, and CI/CD after a deploy."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Template

pytestmark = pytest.mark.xdist_group("cdk_synth")


def _rules(template: Template) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template.find_resources("AWS::Events::Rule").values()]


def test_the_model_build_stage_retrains_on_the_configured_schedule(
    templates: dict[str, Template],
) -> None:
    scheduled = [r for r in _rules(templates["dev"]) if "ScheduleExpression" in r]
    assert [r["ScheduleExpression"] for r in scheduled] == ["rate(7 days)"]


def test_prod_does_not_train_so_starts_no_run(templates: dict[str, Template]) -> None:
    # Prod serves the packages promoted from dev (stages.prod.train is false).
    templates["prod"].resource_count_is("AWS::Events::Rule", 0)


def test_new_data_rule_fires_once_per_ready_marker_in_the_data_prefix(
    templates: dict[str, Template],
) -> None:
    (rule,) = [r for r in _rules(templates["dev"]) if "EventPattern" in r]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"]["key"] == [{"wildcard": "training-data/*_SUCCESS"}]
    assert pattern["detail"]["bucket"]["name"] == [{"Ref": "ArtifactStoreData52C54A7C"}]


def test_staging_does_not_retrain_on_new_data(templates: dict[str, Template]) -> None:
    templates["staging"].resource_count_is("AWS::Events::Rule", 0)


def test_rules_target_the_pipeline_with_a_role(templates: dict[str, Template]) -> None:
    rules = _rules(templates["dev"])
    assert len(rules) == 2
    for rule in rules:
        (target,) = rule["Targets"]
        assert "pipeline/acme-dev-model-build" in json.dumps(target["Arn"])
        assert "RoleArn" in target and target["RetryPolicy"]["MaximumRetryAttempts"] == 3


def test_events_role_may_only_start_this_pipeline(templates: dict[str, Template]) -> None:
    role_id = next(
        k for k in templates["dev"].find_resources("AWS::IAM::Role") if "EventsRole" in k
    )
    (policy,) = [
        p
        for p in templates["dev"].find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "sagemaker:StartPipelineExecution"
    assert json.dumps(statement["Resource"]).endswith(':pipeline/acme-dev-model-build"]]}')


def test_ci_role_exists_only_where_training_follows_deploy(templates: dict[str, Template]) -> None:
    templates["dev"].has_resource_properties("AWS::IAM::Role", {"RoleName": "acme-dev-ci-train"})
    for stage in ("staging", "prod"):
        names = [
            r["Properties"].get("RoleName")
            for r in templates[stage].find_resources("AWS::IAM::Role").values()
        ]
        assert "acme-" + stage + "-ci-train" not in names
