"""Fixture settings and targets for the pipeline tests (never the root mlops.yaml)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from sm_fixtures import FIXTURE_SETTINGS, TARGETS

from mlcore.settings import MlopsSettings, load_settings
from pipelines.sagemaker.definition import pipeline_definition


@pytest.fixture(scope="session")
def fixture_settings() -> MlopsSettings:
    return load_settings(FIXTURE_SETTINGS)


@pytest.fixture(scope="session")
def definition(fixture_settings: MlopsSettings) -> dict[str, Any]:
    """Built with no AWS credentials reachable at all, as at `cdk synth` on a laptop or in CI."""
    with pytest.MonkeyPatch.context() as patch:
        for name in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
        ):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        patch.setenv("AWS_CONFIG_FILE", "/nonexistent")
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        return json.loads(
            pipeline_definition(
                "acme-dev-model-build",
                settings=fixture_settings,
                targets=TARGETS,
                settings_digest="sha256:fixture",
            )
        )


@pytest.fixture(scope="session")
def steps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from sm_fixtures import all_steps

    return all_steps(definition)
