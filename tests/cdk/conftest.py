"""One synthesised app for every CDK test: synth takes 15-30 s, so it happens once per run.

Modules using these fixtures mark themselves ``xdist_group("cdk_synth")`` so that under
``pytest -n 2 --dist loadgroup`` they share one worker and one synth.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

# Before anything imports the SageMaker SDK (it builds a boto3 client at import time).
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App
from aws_cdk.assertions import Template

from cdk.assembly import MlopsApp, build_app, cdk_json_context
from cdk.model_build_stack import ModelBuildStack

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
)


@dataclass(frozen=True)
class Synth:
    """The app as the CDK CLI synthesises it from cdk.json, and the folder it was written to."""

    mlops: MlopsApp
    outdir: Path

    def stage_stack(self, stage: str) -> ModelBuildStack:
        return self.mlops.stages[stage].model_build_stack


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory, settings_file: Path) -> Synth:
    outdir = tmp_path_factory.mktemp("cdk") / "cdk.out"
    # Synth must need no credentials: prove it by synthesising without any.
    saved = {name: os.environ.pop(name) for name in _CREDENTIAL_VARIABLES if name in os.environ}
    try:
        # The suite's settings, not the team's root mlops.yaml (tests/conftest.py).
        context = {**cdk_json_context(REPOSITORY_ROOT), "mlops.settings_file": str(settings_file)}
        app = App(context=context, outdir=str(outdir))
        mlops = build_app(app, repository_root=REPOSITORY_ROOT)
        app.synth()
    finally:
        os.environ.update(saved)
    return Synth(mlops=mlops, outdir=outdir)


@pytest.fixture(scope="session")
def templates(synth: Synth) -> dict[str, Template]:
    """A Template per stack: ``toolchain`` (CI/CD) and one per environment (dev, staging, prod)."""
    result = {"toolchain": Template.from_stack(synth.mlops.cicd)}
    for name in synth.mlops.stages:
        result[name] = Template.from_stack(synth.stage_stack(name))
    return result
