"""CDK assertions on the serving and monitoring constructs (one synthesised test app per session)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Capture, Match, Template
from release_asl import resolved_definition

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.xdist_group("deploy-cdk")

# Names the test app (conftest.py) gives the part-1 resources it stands in for.
MODEL_BUILD_PIPELINE = "acme-dev-model-build"
MODEL_PACKAGE_GROUP = "acme-models"


@pytest.fixture(scope="module")
def templates(deploy_app: Any) -> dict[str, Template]:
    return {name: Template.from_stack(stack) for name, stack in deploy_app.stacks.items()}


def _resources(template: Template, type_: str) -> dict[str, dict]:
    return template.find_resources(type_)


def _only(template: Template, type_: str) -> tuple[str, dict]:
    found = _resources(template, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return next(iter(found.items()))


def test_prod_endpoint_rolls_back_on_5xx_and_latency_alarms(templates: dict[str, Template]) -> None:
    prod = templates["prod"]
    _, endpoint = _only(prod, "AWS::SageMaker::Endpoint")
    alarms = endpoint["Properties"]["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    referenced = {alarm["AlarmName"]["Ref"] for alarm in alarms}
    found = [_resources(prod, "AWS::CloudWatch::Alarm")[i]["Properties"] for i in referenced]
    metrics = {
        p.get("MetricName")
        or next(q["MetricStat"]["Metric"]["MetricName"] for q in p["Metrics"] if "MetricStat" in q)
        for p in found
    }
    assert metrics == {"Invocation5XXErrors", "ModelLatency"}


def test_rollback_limits_are_a_5xx_share_and_a_p99_latency_as_on_azure(
    templates: dict[str, Template],
) -> None:
    # The same names and units as Azure's rollout (mlcore.settings.RolloutLimits): the share
    # of requests answered 5XX, and the 99th percentile of latency (microseconds in CloudWatch).
    prod = templates["prod"]
    prod.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ModelLatency",
            "Namespace": "AWS/SageMaker",
            "ExtendedStatistic": "p99",
            "Threshold": 1_000_000,
        },
    )
    rate = next(
        p["Properties"]
        for p in _resources(prod, "AWS::CloudWatch::Alarm").values()
        if "Metrics" in p["Properties"]
    )
    assert rate["Threshold"] == 0.01
    assert rate["ComparisonOperator"] == "GreaterThanThreshold"
    expression = next(q for q in rate["Metrics"] if "Expression" in q)
    assert expression["Expression"] == "IF(invocations > 0, errors / invocations, 0)"
    used = {
        q["Id"]: q["MetricStat"]["Metric"]["MetricName"]
        for q in rate["Metrics"]
        if "MetricStat" in q
    }
    assert used == {"errors": "Invocation5XXErrors", "invocations": "Invocations"}


def test_prod_shifts_traffic_linearly_and_staging_by_canary(templates: dict[str, Template]) -> None:
    def routing(name: str) -> dict:
        _, endpoint = _only(templates[name], "AWS::SageMaker::Endpoint")
        policy = endpoint["Properties"]["DeploymentConfig"]["BlueGreenUpdatePolicy"]
        return policy["TrafficRoutingConfiguration"]

    assert routing("prod")["Type"] == "LINEAR"
    assert routing("prod")["LinearStepSize"] == {"Type": "CAPACITY_PERCENT", "Value": 25}
    assert routing("staging")["Type"] == "CANARY"
    assert routing("staging")["CanarySize"] == {"Type": "CAPACITY_PERCENT", "Value": 10}


def test_data_capture_is_on_and_encrypted_with_the_data_key(templates: dict[str, Template]) -> None:
    key = Capture()
    templates["prod"].has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "KmsKeyId": key,
            "DataCaptureConfig": {
                "EnableCapture": True,
                "InitialSamplingPercentage": 50,
                "KmsKeyId": Match.object_like({"Fn::ImportValue": Match.string_like_regexp("Key")}),
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "DestinationS3Uri": Match.any_value(),
            },
        },
    )
    assert "Key" in json.dumps(key.as_object())


def test_endpoint_serves_the_package_named_by_the_ssm_parameter(
    templates: dict[str, Template],
) -> None:
    prod = templates["prod"]
    prod.has_parameter(
        "ModelPackageArn",
        {
            "Type": "AWS::SSM::Parameter::Value<String>",
            "Default": "/mlops/acme/prod/model-package-arn",
        },
    )
    prod.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "Containers": [
                {
                    "ModelPackageName": {"Ref": "ModelPackageArn"},
                    "Environment": {"MLCORE_MODEL_SHA256": {"Ref": "ModelSha256"}},
                }
            ],
            "EnableNetworkIsolation": True,
        },
    )
    prod.has_parameter(
        "ModelSha256",
        {
            "Type": "AWS::SSM::Parameter::Value<String>",
            "Default": "/mlops/acme/prod/model-sha256",
        },
    )


def test_no_endpoint_is_created_before_a_model_is_approved(templates: dict[str, Template]) -> None:
    prod = templates["prod"]
    prod.has_condition(
        "HasApprovedModel", {"Fn::Not": [{"Fn::Equals": [{"Ref": "ModelPackageArn"}, "none"]}]}
    )
    for type_ in (
        "AWS::SageMaker::Model",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::Endpoint",
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::SageMaker::MonitoringSchedule",
    ):
        for logical_id, resource in _resources(prod, type_).items():
            assert resource.get("Condition") == "HasApprovedModel", logical_id


def test_autoscaling_tracks_invocations_per_instance(templates: dict[str, Template]) -> None:
    staging = templates["staging"]
    staging.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "ResourceId": "endpoint/acme-staging/variant/AllTraffic",
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "ServiceNamespace": "sagemaker",
            "MinCapacity": 1,
            "MaxCapacity": 2,
        },
    )
    staging.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                    },
                    "TargetValue": 300,
                }
            ),
        },
    )


def test_dev_serverless_endpoint_has_no_capture_scaling_or_monitors(
    templates: dict[str, Template],
) -> None:
    dev = templates["dev"]
    _, config = _only(dev, "AWS::SageMaker::EndpointConfig")
    variant = config["Properties"]["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MaxConcurrency": 5, "MemorySizeInMB": 2048}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    assert "DataCaptureConfig" not in config["Properties"]
    dev.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)
    dev.resource_count_is("AWS::Scheduler::Schedule", 0)


def test_drift_alarm_rule_starts_the_model_build_pipeline(templates: dict[str, Template]) -> None:
    staging = templates["staging"]
    drift_alarm = next(
        logical_id
        for logical_id, alarm in _resources(staging, "AWS::CloudWatch::Alarm").items()
        if alarm["Properties"].get("MetricName") == "DatasetDrift"
    )
    rules = _resources(staging, "AWS::Events::Rule")
    alarm_rule = next(
        rule
        for rule in rules.values()
        if rule["Properties"]["EventPattern"].get("source") == ["aws.cloudwatch"]
    )
    assert {"Ref": drift_alarm} in alarm_rule["Properties"]["EventPattern"]["detail"]["alarmName"]
    gate = alarm_rule["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0]
    gate_env = _resources(staging, "AWS::Lambda::Function")[gate]["Properties"]["Environment"]
    assert gate_env["Variables"]["PIPELINE_NAME"] == MODEL_BUILD_PIPELINE
    assert gate_env["Variables"]["COOLDOWN_HOURS"] == "12"

    retrain_rule = next(
        rule
        for rule in rules.values()
        if rule["Properties"]["EventPattern"].get("source") == ["mlops.retrain"]
    )
    target = retrain_rule["Properties"]["Targets"][0]
    assert target["Arn"]["Fn::Join"][1][-1].endswith(f":pipeline/{MODEL_BUILD_PIPELINE}")
    role = target["RoleArn"]["Fn::GetAtt"][0]
    staging.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": [{"Ref": role}],
            "PolicyDocument": {
                "Statement": [
                    Match.object_like(
                        {"Action": "sagemaker:StartPipelineExecution", "Resource": target["Arn"]}
                    )
                ]
            },
        },
    )


def test_monitors_run_on_the_mlops_yaml_schedule(templates: dict[str, Template]) -> None:
    schedules = _resources(templates["staging"], "AWS::Scheduler::Schedule")
    # The hourly heartbeat schedule (cdk/monitoring/monitors.py) carries no "monitor".
    by_monitor = {
        json.loads(s["Properties"]["Target"]["Input"])["monitor"]: s["Properties"]
        for s in schedules.values()
        if "monitor" in json.loads(s["Properties"]["Target"]["Input"])
    }
    assert set(by_monitor) == {"drift", "quality"}
    assert by_monitor["drift"]["ScheduleExpression"] == "cron(0 * * * ? *)"
    assert (
        json.loads(by_monitor["drift"]["Target"]["Input"])["scheduled_time"]
        == "<aws.scheduler.scheduled-time>"
    )


def test_quality_alarm_fires_below_min_live_metric(templates: dict[str, Template]) -> None:
    templates["prod"].has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "Live_auc",
            "Namespace": "MLOps",
            "Threshold": 0.6,
            "ComparisonOperator": "LessThanThreshold",
            "Dimensions": [{"Name": "EndpointName", "Value": "acme-prod"}],
        },
    )


def test_prod_stateful_resources_are_retained(templates: dict[str, Template]) -> None:
    for type_ in ("AWS::DynamoDB::Table", "AWS::KMS::Key", "AWS::Logs::LogGroup"):
        prod = _resources(templates["prod"], type_)
        staging = _resources(templates["staging"], type_)
        assert prod and all(r["DeletionPolicy"] == "Retain" for r in prod.values()), type_
        assert staging and all(r["DeletionPolicy"] == "Delete" for r in staging.values()), type_


def test_state_table_logical_id_is_stable(templates: dict[str, Template]) -> None:
    # Renaming it would replace the table and forget every watermark and cooldown.
    assert list(_resources(templates["prod"], "AWS::DynamoDB::Table")) == ["State1C20CC9A"]


def _state_machine(template: Template) -> dict[str, Any]:
    _, machine = _only(template, "AWS::StepFunctions::StateMachine")
    return json.loads(
        "".join(
            part if isinstance(part, str) else "X"
            for part in machine["Properties"]["DefinitionString"]["Fn::Join"][1]
        )
    )


@pytest.fixture(scope="module")
def release_states(templates: dict[str, Template]) -> dict[str, Any]:
    return _state_machine(templates["dev"])["States"]


def test_release_starts_on_approval_in_the_model_build_group(
    templates: dict[str, Template],
) -> None:
    templates["dev"].has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Model Package State Change"],
                "detail": {
                    "ModelPackageGroupName": [MODEL_PACKAGE_GROUP],
                    "ModelApprovalStatus": ["Approved"],
                },
            }
        },
    )
    for name in ("staging", "prod"):
        templates[name].resource_count_is("AWS::StepFunctions::StateMachine", 0)


def test_release_promotes_deploys_and_smoke_tests_each_stage_in_order(
    release_states: dict[str, Any],
) -> None:
    states = release_states
    assert states["ReadApprovalEvent"]["Next"] == "PromoteDev"
    assert states["PromoteDev"]["Next"] == "DeployDev"
    assert states["DeployDev"]["Next"] == "DevChanging"
    assert states["SmokeTestDev"]["Next"] == "PromoteStaging"
    assert states["SmokeTestStaging"]["Next"] == "PromoteProd"
    # Prod's copy waits for a person in prod's own registry; the flow only polls the decision.
    assert states["PromoteProd"]["Next"] == "ProdAlreadyApproved"
    assert states["ProdAlreadyApproved"]["Default"] == "RequestProdApproval"
    assert states["RequestProdApproval"]["Next"] == "ApproveProd"
    assert states["ApproveProd"]["Resource"].endswith("sns:publish")
    assert states["ApproveProd"]["Next"] == "WaitForProdApproval"
    assert states["WaitForProdApproval"]["Next"] == "CheckProdApproval"
    assert states["CheckProdApproval"]["Next"] == "ProdDecided"
    decided = {c["StringEquals"]: c["Next"] for c in states["ProdDecided"]["Choices"]}
    assert decided == {
        "approved": "DeployProd",
        "rejected": "ProdApprovalRejected",
        "expired": "ProdApprovalApprovalExpired",
    }
    assert states["ProdDecided"]["Default"] == "WaitForProdApproval"
    assert "PromoteStagingApproval" not in states and "CheckStagingApproval" not in states
    assert states["SmokeTestProd"]["Next"] == "NotifyReleased"


@pytest.mark.parametrize("env", ["Dev", "Staging", "Prod"])
def test_every_failure_of_a_stage_ends_in_its_restore_step(
    release_states: dict[str, Any], env: str
) -> None:
    # Finding 2: a stack failure, an alarm rollback (UPDATE_ROLLBACK_COMPLETE is "failed"),
    # a smoke test failure, a rejection or expiry, or any error puts the pointer back.
    states = release_states
    for name in (f"Promote{env}", f"Deploy{env}", f"Check{env}", f"Check{env}RollBack"):
        assert [c["Next"] for c in states[name]["Catch"]] == [f"Restore{env}"], name
    assert states[f"SmokeTest{env}"]["Catch"][0]["Next"] == f"RollBack{env}"
    assert states[f"RollBack{env}"]["Catch"][0]["Next"] == f"Restore{env}"
    failed = next(
        c for c in states[f"{env}Updated"]["Choices"] if c.get("StringEquals") == "failed"
    )
    assert failed["Next"] == f"{env}UpdateFailed"
    assert states[f"{env}UpdateFailed"]["Next"] == f"Restore{env}"
    assert states[f"{env}RollBackUpdated"]["Default"] == f"Restore{env}"
    # Restore waits for the stack to settle before it announces anything.
    assert states[f"Restore{env}"]["Next"] == f"{env}Settled"
    (unsettled,) = states[f"{env}Settled"]["Choices"]
    assert unsettled["Next"] == f"Wait{env}Settled"
    assert states[f"Wait{env}Settled"]["Next"] == f"Restore{env}"
    assert states[f"{env}Settled"]["Default"] == f"Notify{env}Stopped"
    assert states[f"Notify{env}Stopped"]["Parameters"]["Message.$"] == "$.restored.message"
    assert states[f"Notify{env}Stopped"]["Next"] == f"{env}Stopped"
    assert states[f"{env}Stopped"]["Type"] == "Fail"
    if env == "Prod":
        assert states["CheckProdApproval"]["Catch"][0]["Next"] == "RestoreProd"
        for ended in ("ProdApprovalRejected", "ProdApprovalApprovalExpired"):
            assert states[ended]["Next"] == "RestoreProd"


def test_smoke_test_rolls_back_to_what_was_served_before(release_states: dict[str, Any]) -> None:
    payload = release_states["RollBackStaging"]["Parameters"]["Payload"]
    assert payload["action"] == "deploy"
    assert payload["model_package_arn.$"] == "$.staging_deploy.served_before"


def test_state_machine_passes_asl_validator(templates: dict[str, Template], tmp_path: Path) -> None:
    # AWS's States Language rules, as the independent npm asl-validator encodes them.
    validator = REPO / "node_modules" / ".bin" / "asl-validator"
    assert validator.exists(), "run `npm ci` (package.json pins asl-validator)"
    path = tmp_path / "release.asl.json"
    # Tokens resolved to ARNs of the right shape (the validator checks Resource ARNs).
    path.write_text(json.dumps(resolved_definition(templates["dev"])))
    result = subprocess.run(
        [str(validator), "--json-path", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_model_monitor_schedule_only_where_configured(templates: dict[str, Template]) -> None:
    templates["prod"].resource_count_is("AWS::SageMaker::MonitoringSchedule", 1)
    templates["staging"].resource_count_is("AWS::SageMaker::MonitoringSchedule", 0)


def test_dashboard_charts_endpoint_and_monitor_metrics(templates: dict[str, Template]) -> None:
    _, dashboard = _only(templates["prod"], "AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in (
        "Invocations",
        "Invocation5XXErrors",
        "ModelLatency",
        "DatasetDrift",
        "Live_auc",
    ):
        assert metric in body


def test_lambda_handlers_exist_in_pipelines(templates: dict[str, Template]) -> None:
    handlers = {
        f["Properties"]["Handler"]
        for t in templates.values()
        for f in _resources(t, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] != "index.handler"  # CDK's own custom-resource provider
    }
    assert handlers >= {
        "monitoring.jobs.handler",
        "monitoring.retrain.handler",
        "deploy.release.handler",
        "deploy.smoke.handler",
    }
    for handler in handlers:
        module, function = handler.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(f"pipelines.{module}"), function)), handler


def test_lambda_asset_holds_only_the_boto3_control_plane(deploy_app: Any) -> None:
    outdir = Path(deploy_app.assembly.directory)
    manifest = json.loads((outdir / "StagingServing.assets.json").read_text())
    folders = [
        outdir / entry["source"]["path"]
        for entry in manifest["files"].values()
        if entry["source"].get("packaging") == "zip"
    ]
    assert folders
    for folder in folders:
        top = {p.name for p in folder.iterdir()}
        assert top == {"batch", "deploy", "monitoring"}, top
        assert (folder / "monitoring" / "jobs.py").is_file()
        assert (folder / "batch" / "transform.py").is_file()


def test_cdk_nag_reports_no_unsuppressed_errors(deploy_app: Any) -> None:
    for name, stack in deploy_app.stacks.items():
        errors = Annotations.from_stack(stack).find_error(
            "*", Match.string_like_regexp("AwsSolutions-.*")
        )
        assert errors == [], f"{name}: " + "; ".join(str(e.entry.data)[:200] for e in errors)


def test_cfn_lint_reports_no_errors(deploy_app: Any) -> None:
    outdir = Path(deploy_app.assembly.directory)
    files = sorted(str(p) for p in outdir.glob("*Serving.template.json"))
    assert len(files) == 3
    result = subprocess.run(
        [sys.executable, "-m", "cfnlint", "--format", "json", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    errors = [f for f in findings if f["Level"] == "Error"]
    assert errors == [], errors[:5]


def test_release_state_machine_may_use_the_key_of_its_encrypted_topic(
    templates: dict[str, Template],
) -> None:
    # Publishing to an SSE-KMS topic needs kms:GenerateDataKey* and kms:Decrypt on its key.
    dev = templates["dev"]
    (role,) = [
        k for k in dev.find_resources("AWS::IAM::Role") if k.startswith("ReleaseStateMachineRole")
    ]
    statements = [
        s
        for p in dev.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    kms = [s for s in statements if "kms:GenerateDataKey*" in s["Action"]]
    (ops_key,) = [k for k in dev.find_resources("AWS::KMS::Key") if k.startswith("OpsKey")]
    assert kms and kms[0]["Resource"] == {"Fn::GetAtt": [ops_key, "Arn"]}
