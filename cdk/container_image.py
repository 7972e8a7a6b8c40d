"""The one mlcore container image that processing, training and serving all run.

Built by the CDK CLI at deploy time from ``pipelines/container/Dockerfile`` (a Docker-capable
machine or the CI/CD pipeline's asset stage does the build); synth only fingerprints the
files the image is built from, so it needs no Docker.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import IgnoreMode
from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = "pipelines/container/Dockerfile"

# Only what the Dockerfile copies is part of the build context (and of the asset hash), so an
# edit to tests or infrastructure code does not rebuild and redeploy the image.
BUILD_CONTEXT = (
    "pyproject.toml",
    "requirements.txt",
    "README.md",
    "src",
    "pipelines/container",
)


class MlcoreImage(Construct):
    """The mlcore image as a CDK Docker image asset (ENTRYPOINT ``mlcore``).

    :param directory: the repository to build from. Default: this repository.
    """

    def __init__(self, scope: Construct, id_: str, *, directory: Path | None = None) -> None:
        super().__init__(scope, id_)
        root = directory or REPOSITORY_ROOT
        missing = [path for path in (*BUILD_CONTEXT, DOCKERFILE) if not (root / path).exists()]
        if missing:
            raise ValueError(
                f"cannot build the mlcore image from {root}: missing {missing}; "
                "pass the repository root as directory"
            )
        self.asset = ecr_assets.DockerImageAsset(
            self,
            "Asset",
            directory=str(root),
            file=DOCKERFILE,
            platform=ecr_assets.Platform.LINUX_AMD64,
            ignore_mode=IgnoreMode.DOCKER,
            exclude=[
                "*",
                *(f"!{path}" for path in BUILD_CONTEXT),
                "**/__pycache__",
                "**/*.egg-info",
            ],
            display_name="mlcore",
        )
        self.image_uri = self.asset.image_uri
        self.repository = self.asset.repository
