"""Shared fixtures: one synthesised test app with the serving stacks of dev, staging and prod.

The app stands in for the part-1 model-build stack with a small "Build" stack (key,
bucket, image repository, approved-model parameters), so these tests exercise only the
constructs in cdk/serving and cdk/monitoring. It is synthesised once per session.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

REPO = Path(__file__).resolve().parents[2]
# Fixture settings (project "acme"), never the repository's mlops.yaml (contract #2).
SETTINGS_FILE = REPO / "tests" / "fixtures" / "aws_settings.yaml"
ACCOUNT, REGION = "111111111111", "eu-west-1"
PIPELINE_NAME = "acme-dev-model-build"
PACKAGE_GROUP = "acme-models"


@dataclass
class DeployApp:
    app: object
    build: object
    stacks: dict[str, object]
    assembly: object


def build_app(outdir: str) -> DeployApp:
    from aws_cdk import App, Aspects, Environment, RemovalPolicy, Stack
    from aws_cdk import aws_ecr as ecr
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_s3 as s3
    from cdk_nag import AwsSolutionsChecks

    from cdk.serving.approved_model import ApprovedModelParameter
    from cdk.serving.release import ReleaseTarget
    from cdk.serving.stack import ServingProps, ServingStack
    from mlcore.settings import load_settings

    settings = load_settings(SETTINGS_FILE)
    app = App(outdir=outdir)
    env = Environment(account=ACCOUNT, region=REGION)
    build = Stack(app, "Build", env=env)
    key = kms.Key(build, "Key", enable_key_rotation=True, removal_policy=RemovalPolicy.DESTROY)
    logs_bucket = s3.Bucket(
        build,
        "AccessLogs",
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
    )
    bucket = s3.Bucket(
        build,
        "Artifacts",
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        enforce_ssl=True,
        versioned=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        server_access_logs_bucket=logs_bucket,
    )
    from cdk_nag import NagPackSuppression, NagSuppressions

    NagSuppressions.add_resource_suppressions(
        logs_bucket,
        [NagPackSuppression(id="AwsSolutions-S1", reason="The access-log bucket itself.")],
    )
    repository = ecr.Repository(build, "Images", image_scan_on_push=True)
    approved = {
        name: ApprovedModelParameter(
            build, f"Approved{name}", parameter_name=f"/mlops/acme/{name}/model-package-arn"
        )
        for name in ("dev", "staging", "prod")
    }
    approved_sha256 = {
        name: ApprovedModelParameter(
            build, f"ApprovedSha{name}", parameter_name=f"/mlops/acme/{name}/model-sha256"
        )
        for name in ("dev", "staging", "prod")
    }
    common = dict(
        encryption_key=key,
        artifact_bucket=bucket,
        image_uri=f"{repository.repository_uri}:latest",
        image_repository=repository,
        model_package_group_name=PACKAGE_GROUP,
        model_build_pipeline_name=PIPELINE_NAME,
        env=env,
    )
    settings_file = str(SETTINGS_FILE)
    stacks = {
        "dev": ServingStack(
            app,
            "DevServing",
            props=ServingProps.from_mlops(
                settings,
                environment="dev",
                endpoint={"serverless": {"memory_size_mb": 2048}},
                with_monitors=False,
                settings_file=settings_file,
            ),
            approved_model=approved["dev"],
            approved_model_sha256=approved_sha256["dev"],
            change_role_name="acme-dev-release-cfn",
            **common,
        ),
        "staging": ServingStack(
            app,
            "StagingServing",
            props=ServingProps.from_mlops(
                settings,
                environment="staging",
                endpoint={"initial_instance_count": 1, "min_instances": 1, "max_instances": 2},
                settings_file=settings_file,
            ),
            approved_model=approved["staging"],
            approved_model_sha256=approved_sha256["staging"],
            change_role_name="acme-staging-release-cfn",
            **common,
        ),
    }
    stacks["prod"] = ServingStack(
        app,
        "ProdServing",
        props=ServingProps.from_mlops(
            settings,
            environment="prod",
            endpoint={"traffic_shifting": {"mode": "linear", "linear_step_percent": 25}},
            monitoring={
                "alert_emails": ("ml-team@example.com",),
                "model_monitor": {
                    "analyzer_image_uri": "468650794304.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-model-monitor-analyzer",
                    "baseline_statistics_s3_uri": "s3://baseline-bucket/acme/statistics.json",
                    "baseline_constraints_s3_uri": "s3://baseline-bucket/acme/constraints.json",
                },
            },
            retain=True,
            settings_file=settings_file,
        ),
        approved_model=approved["prod"],
        approved_model_sha256=approved_sha256["prod"],
        change_role_name="acme-prod-release-cfn",
        **common,
    )
    stacks["dev"].add_release_flow(
        [
            ReleaseTarget(
                environment=name,
                role_arn=f"arn:aws:iam::{ACCOUNT}:role/acme-{name}-release-deploy",
                descriptor_parameter=f"/mlops/acme/{name}/release-target",
                approval_before=name == "prod",
            )
            for name in ("dev", "staging", "prod")
        ],
        function_role_names=("acme-dev-release-fn", "acme-dev-smoke-fn"),
    )
    Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    assembly = app.synth()
    return DeployApp(app=app, build=build, stacks=stacks, assembly=assembly)


@pytest.fixture(scope="session")
def deploy_app(tmp_path_factory: pytest.TempPathFactory) -> DeployApp:
    return build_app(str(tmp_path_factory.mktemp("deploy-cdk-out")))
