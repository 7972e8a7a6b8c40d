"""The Spark drift monitor's image: SageMaker's prebuilt Spark processing image with mlcore.

Built by the CDK CLI at deploy time from ``pipelines/monitoring/spark/Dockerfile`` (which
says why an image, and not py-files or a packed environment), only for environments whose
``monitoring.engine`` is ``spark`` or ``auto``. The base image's URI comes from the SageMaker
Python SDK's own image_uris config, so the registry account per region is AWS's, not ours.
"""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import IgnoreMode, Stack, Token
from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

from pipelines.monitoring.spark import SPARK_FRAMEWORK, SPARK_PY_VERSION, SPARK_VERSION

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = "pipelines/monitoring/spark/Dockerfile"
BUILD_CONTEXT = (
    "pyproject.toml",
    "lock",
    "README.md",
    "LICENSE",
    "src",
    "pipelines/monitoring/spark",
)
# A region-agnostic stack has no region at synth, and a Docker build argument cannot wait for
# one: the base is then pulled from this region's registry (the same image in every region).
FALLBACK_REGION = "us-east-1"


def spark_base_image_uri(region: str) -> str:
    """SageMaker's Spark 3.5 / Python 3.12 processing image in ``region`` (the SDK's lookup)."""
    from sagemaker.core import image_uris

    return str(
        image_uris.retrieve(
            SPARK_FRAMEWORK, region=region, version=SPARK_VERSION, py_version=SPARK_PY_VERSION
        )
    )


def spark_base_repository_arn(region: str) -> str:
    """The ECR repository of :func:`spark_base_image_uri`: CI/CD logs in to it to build on it."""
    match = re.fullmatch(
        r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
        r"/(?P<repository>[^:@]+)[:@].+",
        spark_base_image_uri(region),
    )
    if match is None:
        raise ValueError(f"not an ECR image URI: {spark_base_image_uri(region)}")
    partition = "aws-cn" if match["region"].startswith("cn-") else "aws"
    return (
        f"arn:{partition}:ecr:{match['region']}:{match['account']}:repository/{match['repository']}"
    )


class SparkMonitorImage(Construct):
    """The Spark monitor image as a CDK Docker image asset (ENTRYPOINT ``smspark-submit``).

    :param directory: the repository to build from. Default: this repository.
    """

    def __init__(self, scope: Construct, id_: str, *, directory: Path | None = None) -> None:
        super().__init__(scope, id_)
        root = directory or REPOSITORY_ROOT
        missing = [path for path in (*BUILD_CONTEXT, DOCKERFILE) if not (root / path).exists()]
        if missing:
            raise ValueError(
                f"cannot build the Spark monitor image from {root}: missing {missing}; "
                "pass the repository root as directory"
            )
        region = Stack.of(self).region
        self.base_image_uri = spark_base_image_uri(
            FALLBACK_REGION if Token.is_unresolved(region) else region
        )
        self.asset = ecr_assets.DockerImageAsset(
            self,
            "Asset",
            directory=str(root),
            file=DOCKERFILE,
            build_args={"BASE_IMAGE": self.base_image_uri},
            platform=ecr_assets.Platform.LINUX_AMD64,
            ignore_mode=IgnoreMode.DOCKER,
            exclude=[
                "*",
                *(f"!{path}" for path in BUILD_CONTEXT),
                "**/__pycache__",
                "**/*.egg-info",
            ],
            display_name="mlcore-spark-monitor",
        )
        self.image_uri = self.asset.image_uri
        self.repository = self.asset.repository
