"""CI/CD logs in to SageMaker's Spark image registry before it builds the Spark monitor image.

The Spark monitor image is built FROM SageMaker's prebuilt Spark processing image, which lives
in an AWS-owned account's ECR; pulling it needs a registry login (CDK Pipelines'
DockerCredential.ecr: a credentials file for cdk-assets plus ECR pull rights on that
repository, aws-cdk-lib/pipelines/lib/docker-credentials.ts).
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from aws_cdk import App, Environment
from aws_cdk.assertions import Template

from cdk.cicd import CicdStack
from cdk.config import SourceConfig
from cdk.monitoring.spark_image import spark_base_image_uri, spark_base_repository_arn


def _toolchain(repositories: list[str]) -> Template:
    app = App()
    cicd = CicdStack(
        app,
        "Cicd",
        source_config=SourceConfig.model_validate(
            {"provider": "s3", "bucket": "acme-source", "object_key": "source.zip"}
        ),
        project="acme",
        docker_base_repositories=repositories,
        env=Environment(account="111111111111", region="eu-west-1"),
    )
    cicd.finalize()
    return Template.from_stack(cicd)


def test_the_repository_arn_is_the_one_the_sdk_names_the_image_in() -> None:
    arn = spark_base_repository_arn("eu-west-1")
    account, rest = spark_base_image_uri("eu-west-1").split(".dkr.ecr.", 1)
    assert arn == f"arn:aws:ecr:eu-west-1:{account}:repository/sagemaker-spark-processing"
    assert rest.startswith("eu-west-1.amazonaws.com/sagemaker-spark-processing:")


def test_the_pipeline_logs_in_to_the_spark_registry_and_may_pull_from_it() -> None:
    arn = spark_base_repository_arn("eu-west-1")
    template = json.dumps(_toolchain([arn]).to_json())
    # The registry's domain (its URL suffix a CloudFormation reference) in cdk-assets' file.
    registry_prefix = spark_base_image_uri("eu-west-1").split("amazonaws.com", 1)[0]
    assert "cdk-docker-creds.json" in template and registry_prefix in template
    assert "ecr:BatchGetImage" in template and arn in template


def test_without_spark_images_the_pipeline_logs_in_nowhere() -> None:
    template = json.dumps(_toolchain([]).to_json())
    assert "cdk-docker-creds" not in template
