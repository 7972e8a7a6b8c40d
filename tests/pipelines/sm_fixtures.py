"""Constants and helpers the pipeline tests share (imported as a plain module by pytest's path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.sagemaker.definition import PipelineTargets

FIXTURE_SETTINGS = Path(__file__).resolve().parents[1] / "fixtures" / "acme-settings.yaml"
TARGETS = PipelineTargets(
    role_arn="arn:aws:iam::123456789012:role/jobs",
    image_uri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlcore:1",
    artifact_bucket="artifacts-bucket",
    model_package_group_name="acme-dev-models",
    default_input_data_url="s3://data-bucket/training-data/",
    region="eu-west-1",
    settings_s3_uri="s3://cdk-assets-bucket/0f1e2d.yaml",
    check_function_arn="arn:aws:lambda:eu-west-1:123456789012:function:acme-dev-check",
    kms_key_id="arn:aws:kms:eu-west-1:123456789012:key/abc",
)


def all_steps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every step by name, those inside condition branches included."""
    steps: dict[str, dict[str, Any]] = {}
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop()
        steps[step["Name"]] = step
        pending.extend(
            step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", [])
        )
    return steps
