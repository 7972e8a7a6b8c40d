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
#: The settings the shared synth uses (contract #2: never the root mlops.yaml).
FIXTURE_SETTINGS = REPOSITORY_ROOT / "tests" / "fixtures" / "acme-settings.yaml"
#: What the shared synth sets on top of cdk.json: fixture settings, an MLflow tracking server
#: in dev, and monitor settings for staging, all through the same context keys a user has.
SYNTH_OVERRIDES = {
    "mlops.settings_file": str(FIXTURE_SETTINGS),
    "mlops.stages.dev.mlflow.enabled": "true",
    "mlops.stages.staging.monitoring.max_window_hours": "48",
    "mlops.stages.staging.monitoring.quality_schedule": "rate(2 days)",
    "mlops.stages.staging.monitoring.instance_type": "ml.c5.xlarge",
    "mlops.stages.staging.monitoring.label_delay_hours": "6",
    # prod's network (cdk.json) with the prefix lists given, as a user may: no deploy-time
    # lookup (the four-account app covers the lookup).
    "mlops.stages.prod.network.s3_prefix_list_id": "pl-6da54004",
    "mlops.stages.prod.network.dynamodb_prefix_list_id": "pl-6fa54006",
}
#: A settings file in the working directory of the synth that nothing may read.
DECOY_SETTINGS = (
    "project: decoy\ngate:\n  min_metrics: {auc: 0.01}\nmonitoring:\n  min_live_metric: 0.01\n"
)
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
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    outdir = tmp_path_factory.mktemp("cdk") / "cdk.out"
    # Synth runs from another directory holding a decoy mlops.yaml: the settings must be
    # resolved from the repository root (finding 8), and the tests compare them with it.
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "mlops.yaml").write_text(DECOY_SETTINGS)
    # Synth must need no credentials: prove it by synthesising without any.
    saved = {name: os.environ.pop(name) for name in _CREDENTIAL_VARIABLES if name in os.environ}
    cwd = Path.cwd()
    try:
        os.chdir(elsewhere)
        app = App(
            context={**cdk_json_context(REPOSITORY_ROOT), **SYNTH_OVERRIDES}, outdir=str(outdir)
        )
        mlops = build_app(app, repository_root=REPOSITORY_ROOT)
        app.synth()
    finally:
        os.chdir(cwd)
        os.environ.update(saved)
    return Synth(mlops=mlops, outdir=outdir)


@pytest.fixture(scope="session")
def templates(synth: Synth) -> dict[str, Template]:
    """A Template per stack: ``toolchain`` (CI/CD) and one per environment (dev, staging, prod)."""
    result = {"toolchain": Template.from_stack(synth.mlops.cicd)}
    for name in synth.mlops.stages:
        result[name] = Template.from_stack(synth.stage_stack(name))
    return result
