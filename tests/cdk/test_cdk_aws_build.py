"""Issue 9 (build half) and 13 on the synthesised app: one settings artifact, tags, failure
alarms, monitors that follow their schedules and cdk.json, and the MLflow tracking server."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import jsonschema
import pytest
from aws_cdk.assertions import Template
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from cdk.monitoring.failures import PIPELINE_STATUS_EVENT, STATE_MACHINE_STATUS_EVENT
from cdk.monitoring.settings import MonitorConfig
from mlcore.settings import load_settings
from pipelines.monitoring import metrics
from pipelines.monitoring.jobs import job_name_prefix

pytestmark = pytest.mark.xdist_group("cdk_synth")

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_SETTINGS = REPOSITORY_ROOT / "tests" / "fixtures" / "acme-settings.yaml"


@pytest.fixture(scope="module")
def serving(synth: Any) -> dict[str, Template]:
    return {name: Template.from_stack(s.serving_stack) for name, s in synth.mlops.stages.items()}


def _resources(template: Template, kind: str) -> dict[str, Any]:
    return template.find_resources(kind)


def _function_env(template: Template, fragment: str) -> dict[str, Any]:
    (function,) = [
        v for k, v in _resources(template, "AWS::Lambda::Function").items() if fragment in k
    ]
    return function["Properties"]["Environment"]["Variables"]


def _alarm(template: Template, name_suffix: str) -> dict[str, Any]:
    (alarm,) = [
        a["Properties"]
        for a in _resources(template, "AWS::CloudWatch::Alarm").values()
        if str(a["Properties"].get("AlarmName", "")).endswith(name_suffix)
    ]
    return alarm


# --- finding 8: one settings artifact -------------------------------------------------------


def _settings_keys(serving: dict[str, Template], templates: dict[str, Template]) -> set[str]:
    keys = set()
    for stage in ("dev", "staging", "prod"):
        # Only dev trains (staging and prod deploy no pipeline: train is false there).
        for pipeline in _resources(templates[stage], "AWS::SageMaker::Pipeline").values():
            body, _ = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"][
                "Fn::Sub"
            ]
            keys |= set(re.findall(r"s3://\$\{SettingsBucket\}/([0-9a-f]+\.yaml)", body))
        if stage != "dev":  # dev is serverless: no monitors
            uri = json.dumps(_function_env(serving[stage], "MonitorsStartJob")["SETTINGS_S3_URI"])
            keys |= set(re.findall(r"/([0-9a-f]+\.yaml)", uri))
    return keys


def test_jobs_and_monitors_of_every_environment_read_one_settings_object(
    synth: Any, serving: dict[str, Template], templates: dict[str, Template]
) -> None:
    (key,) = _settings_keys(serving, templates)
    (staged,) = Path(synth.outdir).rglob(f"asset.{key.removesuffix('.yaml')}.yaml")
    assert staged.read_bytes() == FIXTURE_SETTINGS.read_bytes()


def test_synth_settings_equal_the_artifact_the_jobs_read_even_from_another_directory(
    synth: Any, serving: dict[str, Template], templates: dict[str, Template]
) -> None:
    # The shared synth ran in a folder holding a decoy mlops.yaml (tests/cdk/conftest.py).
    (key,) = _settings_keys(serving, templates)
    (staged,) = Path(synth.outdir).rglob(f"asset.{key.removesuffix('.yaml')}.yaml")
    artifact = load_settings(staged)
    assert synth.mlops.settings == artifact
    assert artifact.project == "acme"
    # What synth built from the settings agrees with the artifact: alarms and the gate record.
    quality = _alarm(serving["staging"], "-model-quality")
    assert quality["Threshold"] == artifact.monitoring.min_live_metric
    body = next(iter(_resources(templates["dev"], "AWS::SageMaker::Pipeline").values()))[
        "Properties"
    ]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"][0]
    assert f'"gate_min_auc": "{artifact.gate.min_metrics["auc"]}"' in body


def test_the_settings_grant_is_the_one_object_not_the_assets_bucket(
    templates: dict[str, Template],
) -> None:
    statements = [
        statement
        for policy in _resources(templates["dev"], "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "cdk-hnb659fds-assets" in json.dumps(statement["Resource"])
    ]
    reads = [json.dumps(s["Resource"]) for s in statements if s["Action"] == "s3:GetObject"]
    assert reads
    assert all(re.search(r'/[0-9a-f]{64}\.yaml"', g) for g in reads), reads
    # SageMaker lists an S3Prefix input before downloading it: the listing is of that key only.
    lists = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert lists
    for statement in lists:
        prefix = statement["Condition"]["StringEquals"]["s3:prefix"]
        assert re.fullmatch(r"[0-9a-f]{64}\.yaml", prefix), prefix
    assert {s["Action"] for s in statements} == {"s3:GetObject", "s3:ListBucket"}


# --- finding 10: tags ---------------------------------------------------------------------


@cache
def _taggable(resource_type: str) -> bool:
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource_type).schema
    return "Tags" in schema.get("properties", {})


def _tags(properties: dict[str, Any]) -> dict[str, str]:
    tags = properties.get("Tags", {})
    if isinstance(tags, dict):  # a few types (SSM parameters) take a map
        return tags
    return {t["Key"]: t["Value"] for t in tags}


@pytest.mark.parametrize(
    ("environment", "component"),
    [("dev", "model-build"), ("staging", "serving"), ("prod", "release-state")],
)
def test_every_taggable_resource_carries_project_environment_and_component(
    synth: Any, environment: str, component: str
) -> None:
    stage = synth.mlops.stages[environment]
    stack = {
        "model-build": stage.model_build_stack,
        "serving": stage.serving_stack,
        "release-state": stage.release_state_stack,
    }[component]
    template = Template.from_stack(stack).to_json()
    untagged = [
        name
        for name, resource in template["Resources"].items()
        if _taggable(resource["Type"])
        and _tags(resource.get("Properties", {}))
        != {"project": "acme", "environment": environment, "component": component}
        | {k: v for k, v in _tags(resource.get("Properties", {})).items() if k.startswith("aws")}
    ]
    assert untagged == []


def test_the_toolchain_is_tagged_as_such(templates: dict[str, Template]) -> None:
    template = templates["toolchain"].to_json()
    (pipeline,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::CodePipeline::Pipeline"
    ]
    assert _tags(pipeline["Properties"]) == {
        "project": "acme",
        "environment": "toolchain",
        "component": "cicd",
    }


# --- finding 6: silent failures -----------------------------------------------------------


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_every_lambda_function_of_an_environment_has_an_errors_alarm(
    synth: Any, serving: dict[str, Template], environment: str
) -> None:
    stage = synth.mlops.stages[environment]
    alarms = [
        a["Properties"]
        for a in _resources(serving[environment], "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "Errors"
        and a["Properties"].get("Namespace") == "AWS/Lambda"
    ]
    watched = {json.dumps(a["Dimensions"][0]["Value"]) for a in alarms}
    own = set(_resources(serving[environment], "AWS::Lambda::Function"))
    others = [
        logical_id
        for stack in (stage.model_build_stack, stage.release_state_stack)
        for logical_id in _resources(Template.from_stack(stack), "AWS::Lambda::Function")
    ]
    assert len(alarms) == len(own) + len(others)
    for logical_id in own:
        assert json.dumps({"Ref": logical_id}) in watched
    # The model-build stack's CheckInputs, imported; stages that do not train have none.
    trains = stage.model_build_stack.model_build is not None
    assert any("CheckInputs" in w for w in watched) is trains
    for alarm in alarms:
        assert alarm["AlarmActions"] and alarm["Threshold"] == 1


def test_monitor_starter_publisher_retrain_gate_and_release_functions_are_all_watched(
    serving: dict[str, Template],
) -> None:
    functions = set(_resources(serving["prod"], "AWS::Lambda::Function"))
    for fragment in ("MonitorsStartJob", "MonitorsPublishMetrics", "RetrainGate"):
        assert any(fragment in f for f in functions), fragment
    # The release flow lives in the model-build environment (dev).
    assert any("Release" in f for f in _resources(serving["dev"], "AWS::Lambda::Function"))


def _rules(template: Template) -> list[dict[str, Any]]:
    return [r["Properties"] for r in _resources(template, "AWS::Events::Rule").values()]


@pytest.mark.parametrize("environment", ["dev"])
def test_a_failed_model_build_execution_reaches_the_alerts_topic(
    serving: dict[str, Template], environment: str
) -> None:
    (rule,) = [
        r
        for r in _rules(serving[environment])
        if r.get("EventPattern", {}).get("detail-type") == [PIPELINE_STATUS_EVENT]
    ]
    detail = rule["EventPattern"]["detail"]
    assert detail["currentPipelineExecutionStatus"] == ["Failed", "Stopped"]
    assert f"pipeline/acme-{environment}-model-build" in json.dumps(detail["pipelineArn"])
    (target,) = rule["Targets"]
    assert "Alerts" in json.dumps(target["Arn"])


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_a_stage_without_a_pipeline_watches_no_model_build_executions(
    serving: dict[str, Template], environment: str
) -> None:
    assert not [
        r
        for r in _rules(serving[environment])
        if r.get("EventPattern", {}).get("detail-type") == [PIPELINE_STATUS_EVENT]
    ]


def test_a_failed_release_execution_reaches_the_alerts_topic(
    serving: dict[str, Template],
) -> None:
    # The release flow lives in the model-build environment (dev).
    (machine,) = _resources(serving["dev"], "AWS::StepFunctions::StateMachine")
    (rule,) = [
        r
        for r in _rules(serving["dev"])
        if r.get("EventPattern", {}).get("detail-type") == [STATE_MACHINE_STATUS_EVENT]
    ]
    assert rule["EventPattern"]["detail"] == {
        "stateMachineArn": [{"Ref": machine}],
        "status": ["FAILED", "TIMED_OUT", "ABORTED"],
    }
    assert "Alerts" in json.dumps(rule["Targets"][0]["Arn"])


def test_a_monitor_that_stops_running_raises_its_heartbeat_alarm(
    synth: Any, serving: dict[str, Template]
) -> None:
    settings = synth.mlops.settings
    drift = _alarm(serving["prod"], "-drift-monitor-stale")
    assert drift["MetricName"] == metrics.HOURS_SINCE_MONITOR_RUN
    assert drift["Threshold"] == 2 * settings.monitoring.schedule.period / timedelta(hours=1)
    assert drift["TreatMissingData"] == "breaching"  # no heartbeat at all is a failure too
    assert drift["Period"] == 3600 and drift["AlarmActions"]
    quality = _alarm(serving["staging"], "-quality-monitor-stale")
    assert quality["Threshold"] == 96  # staging's quality schedule is rate(2 days)


def test_the_heartbeat_runs_hourly_on_its_own_schedule(serving: dict[str, Template]) -> None:
    schedules = [
        s["Properties"]
        for s in _resources(serving["prod"], "AWS::Scheduler::Schedule").values()
        if s["Properties"]["ScheduleExpression"] == "rate(1 hour)"
    ]
    (heartbeat,) = schedules
    assert json.loads(heartbeat["Target"]["Input"])["heartbeat"] is True


def test_the_job_end_rule_matches_the_names_jobs_really_get(serving: dict[str, Template]) -> None:
    (rule,) = [
        r
        for r in _rules(serving["prod"])
        if r.get("EventPattern", {}).get("detail-type") == ["SageMaker Processing Job State Change"]
    ]
    prefixes = rule["EventPattern"]["detail"]["ProcessingJobName"]
    assert prefixes == [
        {"prefix": job_name_prefix("acme-prod", "drift")},
        {"prefix": job_name_prefix("acme-prod", "quality")},
    ]


# --- drift grades (contract 5) ------------------------------------------------------------


def test_moderate_drift_alerts_people_and_major_drift_retrains(
    serving: dict[str, Template],
) -> None:
    moderate = _alarm(serving["prod"], "-drift-moderate")
    assert (moderate["MetricName"], moderate["Threshold"]) == (metrics.DRIFT_GRADE, 1)
    assert moderate["AlarmActions"]
    (retrain,) = [
        r
        for r in _rules(serving["prod"])
        if r.get("EventPattern", {}).get("source") == ["aws.cloudwatch"]
    ]
    by_name = {
        a["Properties"].get("AlarmName"): {"Ref": logical_id}
        for logical_id, a in _resources(serving["prod"], "AWS::CloudWatch::Alarm").items()
    }
    names = retrain["EventPattern"]["detail"]["alarmName"]
    assert by_name["acme-prod-data-drift"] in names
    assert by_name["acme-prod-drift-moderate"] not in names
    major = _alarm(serving["prod"], "-data-drift")
    assert major["MetricName"] == metrics.DATASET_DRIFT  # true exactly when graded major


# --- finding 7: windows and periods follow the schedule; monitors set from cdk.json -------


def test_alarm_periods_follow_the_monitor_schedules(serving: dict[str, Template]) -> None:
    # The fixture's drift schedule is every 6 hours; staging's quality schedule every 2 days
    # (above CloudWatch's one-day period, so one day).
    assert _alarm(serving["prod"], "-data-drift")["Period"] == 6 * 3600
    assert _alarm(serving["prod"], "-model-quality")["Period"] == 24 * 3600
    assert _alarm(serving["staging"], "-model-quality")["Period"] == 24 * 3600


def test_the_monitor_window_settings_reach_the_starter(serving: dict[str, Template]) -> None:
    prod = _function_env(serving["prod"], "MonitorsStartJob")
    assert prod["DRIFT_PERIOD_MINUTES"] == "360"
    assert prod["MAX_WINDOW_HOURS"] == str(14 * 24)
    assert "LOOKBACK_HOURS" not in prod


def test_monitor_settings_in_cdk_json_reach_the_monitors(serving: dict[str, Template]) -> None:
    # tests/cdk/conftest.py sets these through mlops.stages.staging.monitoring.* context keys.
    staging = _function_env(serving["staging"], "MonitorsStartJob")
    assert staging["MAX_WINDOW_HOURS"] == "48"
    assert staging["INSTANCE_TYPE"] == "ml.c5.xlarge"
    assert staging["LABEL_DELAY_HOURS"] == "6"
    assert staging["QUALITY_PERIOD_MINUTES"] == str(2 * 24 * 60)


def test_every_monitor_setting_has_a_cdk_json_key_or_an_mlops_yaml_one() -> None:
    from cdk.monitoring.settings import MonitorSettings

    from_mlops = {"drift_schedule", "primary_metric", "min_live_metric"}
    from_mlops |= {"retrain_cooldown_hours", "alert_emails"}
    # drift.reference.* and monitoring.engine / spark_min_capture_mb (issues 11 and 14).
    from_mlops |= {"reference_mode", "seasonal_offset_days", "engine", "spark_min_capture_mb"}
    assert set(MonitorSettings.model_fields) == from_mlops | set(MonitorConfig.model_fields)


@pytest.mark.parametrize(
    ("monitoring", "message"),
    [
        ({"max_window_hours": 0}, "mlops.stages.dev.monitoring.max_window_hours"),
        ({"quality_schedul": "rate(1 day)"}, "mlops.stages.dev.monitoring.quality_schedul"),
        ({"quality_schedule": "cron(0 0 L * ? *)"}, "L, W and # are not supported"),
    ],
)
def test_an_invalid_monitor_setting_in_cdk_json_names_the_key(
    monitoring: dict[str, Any], message: str
) -> None:
    from cdk.config import load_aws_config

    context = {
        "mlops": {
            "source": {"provider": "codecommit", "repository": "r"},
            "stages": {"dev": {"monitoring": monitoring}},
        }
    }
    with pytest.raises(ValueError, match=re.escape(message)):
        load_aws_config(context)


# --- issue 13: the MLflow tracking server -------------------------------------------------


def _tracking_server(templates: dict[str, Template]) -> dict[str, Any]:
    (server,) = _resources(templates["dev"], "AWS::SageMaker::MlflowTrackingServer").values()
    return server["Properties"]


def test_the_tracking_server_is_created_only_where_switched_on(
    templates: dict[str, Template],
) -> None:
    assert _tracking_server(templates)["TrackingServerName"] == "acme-dev-mlflow"
    for stage in ("staging", "prod"):
        templates[stage].resource_count_is("AWS::SageMaker::MlflowTrackingServer", 0)


def test_tracking_server_properties_follow_the_cloudformation_schema(
    templates: dict[str, Template],
) -> None:
    # cfn-lint ships the resource provider schema; literal values must satisfy it.
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(
        "us-east-1", "AWS::SageMaker::MlflowTrackingServer"
    ).schema
    properties = _tracking_server(templates)
    assert set(schema["required"]) <= set(properties)
    for name, value in properties.items():
        assert name in schema["properties"], name
        if isinstance(value, str):
            jsonschema.validate(value, {**schema["properties"][name], "definitions": {}})


def test_tracking_server_properties_follow_the_sagemaker_api(
    templates: dict[str, Template],
) -> None:
    # botocore's service model of CreateMlflowTrackingServer: what SageMaker itself accepts.
    shape = (
        botocore.session.get_session()
        .get_service_model("sagemaker")
        .operation_model("CreateMlflowTrackingServer")
        .input_shape
    )
    properties = _tracking_server(templates)
    name = properties["TrackingServerName"]
    pattern = shape.members["TrackingServerName"].metadata["pattern"]
    assert (
        re.fullmatch(pattern, name)
        and len(name) <= shape.members["TrackingServerName"].metadata["max"]
    )
    assert properties["TrackingServerSize"] in shape.members["TrackingServerSize"].enum
    assert properties["AutomaticModelRegistration"] is False  # the registry stays SageMaker's
    assert set(properties) - {"Tags"} <= set(shape.members)


def test_the_jobs_log_to_the_tracking_server_through_mlflow_tracking_uri(
    templates: dict[str, Template],
) -> None:
    (server_id,) = _resources(templates["dev"], "AWS::SageMaker::MlflowTrackingServer")
    body, variables = next(iter(_resources(templates["dev"], "AWS::SageMaker::Pipeline").values()))[
        "Properties"
    ]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"]
    assert variables["TrackingUri"] == {"Fn::GetAtt": [server_id, "TrackingServerArn"]}
    assert body.count('"MLFLOW_TRACKING_URI": "${TrackingUri}"') == 4  # prep, train, 2 evaluates
    job_role = next(k for k in _resources(templates["dev"], "AWS::IAM::Role") if "JobRole" in k)
    actions = {
        action
        for policy in _resources(templates["dev"], "AWS::IAM::Policy").values()
        if {"Ref": job_role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "mlflow-tracking-server/acme-dev-mlflow" in json.dumps(statement["Resource"])
        for action in statement["Action"]
    }
    assert {"sagemaker-mlflow:CreateRun", "sagemaker-mlflow:LogBatch"} <= actions


def test_without_a_tracking_server_the_jobs_get_no_tracking_uri(four_accounts: Any) -> None:
    # The four-account app's dev trains without one (only the shared synth's dev has one).
    template = Template.from_stack(four_accounts.stacks("dev")["build"])
    body = next(iter(_resources(template, "AWS::SageMaker::Pipeline").values()))["Properties"][
        "PipelineDefinition"
    ]["PipelineDefinitionBody"]["Fn::Sub"][0]
    assert "MLFLOW_TRACKING_URI" not in body
