#!/usr/bin/env python3
"""The CDK app: the CI/CD pipeline stack and one stage per environment (dev, staging, prod).

Configuration is read here and only here: the ``mlops`` object in cdk.json (``-c mlops.<path>=
<value>`` overrides it) and mlops.yaml for what must agree across clouds. Synth needs no AWS
credentials and no network.
"""

from __future__ import annotations

import os
from pathlib import Path

# The SageMaker SDK creates a boto3 client when it is imported; no real account is involved.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from aws_cdk import App

from cdk.assembly import build_app, silence_sagemaker_sdk_logging

REPOSITORY_ROOT = Path(__file__).resolve().parent


def main() -> None:
    silence_sagemaker_sdk_logging()
    app = App()
    revision = os.environ.get("CODEBUILD_RESOLVED_SOURCE_VERSION")
    if revision and app.node.try_get_context("mlops.source_revision") is None:
        # Built by the CI/CD pipeline: record the commit as the default GitCommit of training runs.
        app.node.set_context("mlops.source_revision", revision[:64])
    build_app(app, repository_root=REPOSITORY_ROOT)
    app.synth()


if __name__ == "__main__":
    main()
