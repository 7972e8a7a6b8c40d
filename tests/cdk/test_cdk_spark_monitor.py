"""The Spark drift monitor and the reference modes in CDK (issues 14 and 11).

One small stack (a key, buckets, an image repository, an endpoint and its monitors, with
``monitoring.engine: spark`` in fixture settings; the Spark engine compares with the
training baseline, so ``drift.reference.mode`` is ``training``) is synthesised once for this module, under cdk-nag; cfn-lint checks its
template. The shared full-app synth (tests/cdk/conftest.py) keeps the default engine.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Aspects, Duration, Environment, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Annotations, Match, Template
from cdk_nag import AwsSolutionsChecks, NagPackSuppression, NagSuppressions

from cdk.monitoring.capture_retention import (
    CaptureRetentionCheck,
    required_retention_days,
    retention_problems,
)
from cdk.monitoring.monitors import ModelMonitors
from cdk.monitoring.settings import MonitorSettings
from cdk.monitoring.spark_image import spark_base_image_uri
from cdk.serving.approved_model import ApprovedModelParameter
from cdk.serving.endpoint import ModelEndpoint
from cdk.serving.settings import EndpointSettings
from cdk.summary import lint_template
from mlcore.settings import load_settings

REPOSITORY = Path(__file__).resolve().parents[2]
FIXTURE_SETTINGS = REPOSITORY / "tests" / "fixtures" / "aws_settings.yaml"
REGION = "eu-west-1"


@dataclass(frozen=True)
class SparkApp:
    stack: Stack
    monitors: ModelMonitors
    template: Template
    outdir: Path


def _settings_file(tmp: Path, *, engine: str, reference: dict[str, Any]) -> Path:
    document = yaml.safe_load(FIXTURE_SETTINGS.read_text())
    document["monitoring"]["engine"] = engine
    document["drift"]["reference"] = reference
    path = tmp / "mlops.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _monitored_stack(
    app: App, settings_file: Path, *, expiry_days: int, **monitoring: Any
) -> tuple[Stack, ModelMonitors]:
    stack = Stack(app, "SparkMonitor", env=Environment(account="111111111111", region=REGION))
    key = kms.Key(stack, "Key", enable_key_rotation=True, removal_policy=RemovalPolicy.DESTROY)
    logs = s3.Bucket(
        stack,
        "Logs",
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
    )
    NagSuppressions.add_resource_suppressions(
        logs, [NagPackSuppression(id="AwsSolutions-S1", reason="The access-log bucket itself.")]
    )
    bucket = s3.Bucket(
        stack,
        "Artifacts",
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        enforce_ssl=True,
        versioned=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        server_access_logs_bucket=logs,
        lifecycle_rules=[s3.LifecycleRule(id="expire", expiration=Duration.days(expiry_days))],
    )
    repository = ecr.Repository(stack, "Images", image_scan_on_push=True)
    endpoint = ModelEndpoint(
        stack,
        "Endpoint",
        settings=EndpointSettings(
            endpoint_name="acme-prod", initial_instance_count=1, min_instances=1, max_instances=2
        ),
        model_package_arn="arn:aws:sagemaker:eu-west-1:111111111111:model-package/acme-models/1",
        model_sha256="sha256:" + "0" * 64,
        encryption_key=key,
        capture_bucket=bucket,
        model_bucket=bucket,
        image_repository=repository,
    )
    monitors = ModelMonitors(
        stack,
        "Monitors",
        endpoint=endpoint,
        approved_model=ApprovedModelParameter(
            stack, "Approved", parameter_name="/mlops/acme/prod/model-package-arn"
        ),
        model_package_group_name="acme-models",
        image_uri=f"{repository.repository_uri}:latest",
        image_repository=repository,
        encryption_key=key,
        model_bucket=bucket,
        reports_bucket=bucket,
        settings_file=settings_file,
        settings=MonitorSettings.from_mlops(load_settings(settings_file), **monitoring),
        state_table=dynamodb.Table(
            stack,
            "State",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
        ),
        notifications=sns.Topic(stack, "Alerts", master_key=key, enforce_ssl=True),
        log_key=key,
    )
    return stack, monitors


@pytest.fixture(scope="module")
def spark_app(tmp_path_factory: pytest.TempPathFactory) -> SparkApp:
    tmp = tmp_path_factory.mktemp("spark-monitor")
    settings_file = _settings_file(tmp, engine="spark", reference={"mode": "training"})
    outdir = tmp / "cdk.out"
    app = App(outdir=str(outdir))
    stack, monitors = _monitored_stack(
        app,
        settings_file,
        expiry_days=365,
        spark_instance_count=3,
        spark_instance_type="ml.r5.xlarge",
    )
    Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    app.synth()
    return SparkApp(stack, monitors, Template.from_stack(stack), outdir)


def _starter_environment(template: Template) -> dict[str, Any]:
    functions = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "monitoring.jobs.handler"}}
    )
    (function,) = functions.values()
    variables: dict[str, Any] = function["Properties"]["Environment"]["Variables"]
    return variables


def test_the_spark_settings_reach_the_starter(spark_app: SparkApp) -> None:
    env = _starter_environment(spark_app.template)
    assert env["DRIFT_ENGINE"] == "spark"
    assert env["SPARK_INSTANCE_COUNT"] == "3" and env["SPARK_INSTANCE_TYPE"] == "ml.r5.xlarge"
    assert env["SPARK_MIN_CAPTURE_MB"] == "2048"
    assert env["REFERENCE_MODE"] == "training" and env["SEASONAL_OFFSET_DAYS"] == "364"
    # The Spark monitor image asset (in the bootstrap asset repository), not the mlcore image.
    image = spark_app.monitors.spark_image
    assert image is not None
    assert env["SPARK_IMAGE_URI"] == spark_app.stack.resolve(image.image_uri)
    assert env["SPARK_IMAGE_URI"] != env["IMAGE_URI"]


def test_the_spark_image_is_built_from_sagemakers_spark_35_python_312_image(
    spark_app: SparkApp,
) -> None:
    (manifest,) = spark_app.outdir.glob(f"{spark_app.stack.artifact_id}.assets.json")
    images = json.loads(manifest.read_text())["dockerImages"].values()
    (spark,) = [i for i in images if i["source"].get("dockerFile", "").endswith("spark/Dockerfile")]
    base = spark["source"]["dockerBuildArgs"]["BASE_IMAGE"]
    # The SageMaker SDK's own image_uris config names the account per region.
    assert base == spark_base_image_uri(REGION)
    assert (
        base
        == "571004829621.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-spark-processing:3.5-cpu-py312"
    )
    assert spark["source"]["platform"] == "linux/amd64"


def test_the_job_role_may_pull_the_spark_image(spark_app: SparkApp) -> None:
    image = spark_app.monitors.spark_image
    assert image is not None
    role = spark_app.stack.resolve(spark_app.monitors.job_role.role_name)
    statements = [
        statement
        for policy in spark_app.template.find_resources("AWS::IAM::Policy").values()
        if role in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    pulls = [s for s in statements if "ecr:BatchGetImage" in json.dumps(s["Action"])]
    repository_arn = spark_app.stack.resolve(image.repository.repository_arn)
    assert any(json.dumps(repository_arn) in json.dumps(s["Resource"]) for s in pulls)


def test_the_starter_may_start_jobs_only_on_the_configured_instances_and_key(
    spark_app: SparkApp,
) -> None:
    role = spark_app.stack.resolve(spark_app.monitors.start_function.role.role_name)
    (statement,) = [
        statement
        for policy in spark_app.template.find_resources("AWS::IAM::Policy").values()
        if role in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "sagemaker:CreateProcessingJob"
    ]
    condition = statement["Condition"]
    assert condition["ForAllValues:StringEquals"]["sagemaker:InstanceTypes"] == [
        "ml.m5.large",
        "ml.r5.xlarge",
    ]
    key_construct = spark_app.stack.node.find_child("Key")
    assert isinstance(key_construct, kms.Key)
    key = spark_app.stack.resolve(key_construct.key_arn)
    assert condition["ArnEquals"] == {
        "sagemaker:VolumeKmsKeyArn": key,
        "sagemaker:OutputKmsKeyArn": key,
    }
    # Keys the action has in AWS's current Service Authorization Reference (parliament's
    # bundled copy predates the ...Arn keys that replaced the deprecated ones).
    from mlops_testing.handlers import action_data

    supported = {k.lower() for k in action_data("sagemaker:CreateProcessingJob")["conditionKeys"]}
    used = {key for operator in condition.values() for key in operator}
    assert {key.lower() for key in used} <= supported


def test_the_spark_variant_has_no_unsuppressed_cdk_nag_error(spark_app: SparkApp) -> None:
    errors = Annotations.from_stack(spark_app.stack).find_error(
        "*", Match.string_like_regexp(r"AwsSolutions-.*")
    )
    assert [f"{e.id}: {e.entry.data}" for e in errors] == []


def test_the_spark_variant_template_is_cfn_lint_clean(spark_app: SparkApp) -> None:
    template = spark_app.outdir / spark_app.stack.template_file
    assert lint_template(template) == []


def test_streaming_environments_build_no_spark_image(tmp_path: Path) -> None:
    settings_file = _settings_file(tmp_path, engine="streaming", reference={"mode": "training"})
    _, monitors = _monitored_stack(App(), settings_file, expiry_days=365)
    assert monitors.spark_image is None
    assert monitors.node.validate() == []


def test_a_seasonal_reference_longer_than_the_capture_retention_fails_synth(
    tmp_path: Path,
) -> None:
    # 364 days back plus a two-week window: a 365-day expiry deletes last year's captures
    # before the run that needs them. Synth must say so, not the monitor, a year later.
    settings_file = _settings_file(
        tmp_path, engine="streaming", reference={"mode": "same_period_last_year"}
    )
    app = App(outdir=str(tmp_path / "out"))
    _, monitors = _monitored_stack(app, settings_file, expiry_days=365)
    (error,) = monitors.node.validate()
    assert "must be kept at least 379 days" in error
    assert "lifecycle rule 'expire' expires captures after 365 days" in error
    assert "artifact_expiry_days" in error
    with pytest.raises(RuntimeError, match="must be kept at least 379 days"):
        app.synth()


def test_the_retention_each_reference_mode_needs() -> None:
    base = {"max_window_hours": 24, "quality_enabled": False}
    assert required_retention_days(MonitorSettings(**base)) == 2
    assert required_retention_days(MonitorSettings(**base, reference_mode="previous_window")) == 3
    seasonal = MonitorSettings(
        **base, reference_mode="same_period_last_year", seasonal_offset_days=7
    )
    assert required_retention_days(seasonal) == 9
    with_quality = MonitorSettings(max_window_hours=24, label_delay_hours=72)
    assert required_retention_days(with_quality) == 5


def test_only_rules_that_reach_the_captures_count() -> None:
    rules = {
        "rules": [
            {"id": "logs", "status": "Enabled", "prefix": "logs/", "expirationInDays": 1},
            {"id": "off", "status": "Disabled", "expirationInDays": 1},
            {"id": "tagged", "status": "Enabled", "tagFilters": [{"Key": "k", "Value": "v"}]},
            {
                "id": "archive",
                "status": "Enabled",
                "prefix": "data-capture/",
                "transitions": [{"storageClass": "GLACIER", "transitionInDays": 30}],
            },
        ]
    }
    assert retention_problems(rules, "data-capture/acme-prod/", 40) == [
        "lifecycle rule 'archive' archives captures to GLACIER after 30 days (unreadable by a job)"
    ]
    assert retention_problems(rules, "data-capture/acme-prod/", 30) == []


def test_an_imported_capture_bucket_is_flagged_not_assumed(tmp_path: Path) -> None:
    stack = Stack(App(), "Imported")
    check = CaptureRetentionCheck(
        stack,
        bucket=s3.Bucket.from_bucket_name(stack, "B", "someone-elses-bucket"),
        capture_prefix="data-capture/acme-prod/",
        settings=MonitorSettings(reference_mode="previous_window"),
    )
    assert check.validate() == []
    warnings = Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("29 days"))
    assert warnings
