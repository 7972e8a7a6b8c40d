"""A release to an environment without an endpoint (a batch path only), against moto.

What such an environment serves is its batch model (cdk/batch), so the release flow reads
that: a failed release puts the pointer back on the batch model's package, never on "none",
and the smoke test checks that the release built the batch model from the released package.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from pipelines.deploy import release, smoke
from pipelines.deploy.targets import Environment, TargetDescriptor, TargetRef

REGION = "eu-west-1"
ACCOUNT = "123456789012"
PREFIX = "acme-nightly-batch-v"
GROUP = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/acme-nightly-models"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Environment]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        descriptor = TargetDescriptor(
            environment="nightly",
            stack_name="Nightly-Serving",
            model_package_parameter="/mlops/acme/nightly/model-package-arn",
            model_sha256_parameter="/mlops/acme/nightly/model-sha256",
            endpoint_name="acme-nightly",
            model_package_group="acme-nightly-models",
            artifact_bucket="acme-nightly-artifacts",
            image_repository="acme-mlcore",
            cloudformation_role_arn=f"arn:aws:iam::{ACCOUNT}:role/acme-nightly-release-cfn",
            release_approval=False,
            online_endpoint=False,
            batch_model_prefix=PREFIX,
        )
        yield Environment(
            ref=TargetRef(
                environment="nightly", role_arn=None, region=REGION, descriptor_parameter="/d"
            ),
            descriptor=descriptor,
            session=boto3.Session(region_name=REGION),
        )


def _batch_model(env: Environment, version: int) -> None:
    env.client("sagemaker").create_model(
        ModelName=f"{PREFIX}{version}",
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/batch",
        Containers=[
            {
                "ModelPackageName": f"{GROUP}/{version}",
                "Environment": {"MLCORE_MODEL_SHA256": f"sha256:{version}"},
            }
        ],
    )


def test_nothing_is_served_before_the_first_batch_model(env: Environment) -> None:
    # Another model of the account, not this environment's batch model, is not "served".
    env.client("sagemaker").create_model(
        ModelName="acme-nightly-other",
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/x",
        Containers=[{"ModelPackageName": f"{GROUP}/9"}],
    )
    assert release.serving(env) == release.Served.nothing()


def test_what_a_batch_only_environment_serves_is_its_newest_batch_model(env: Environment) -> None:
    _batch_model(env, 1)
    time.sleep(1.1)  # moto stamps CreationTime with the real time
    _batch_model(env, 2)
    assert release.serving(env) == release.Served(f"{GROUP}/2", "sha256:2")


def test_the_smoke_test_of_a_batch_only_environment_checks_its_batch_model(
    env: Environment,
) -> None:
    _batch_model(env, 4)
    result = smoke.check_batch_model(env, f"{GROUP}/4")
    assert result.endpoint_name == f"{PREFIX}*"
    with pytest.raises(smoke.SmokeTestFailed, match=f"built from {GROUP}/4, not from {GROUP}/5"):
        smoke.check_batch_model(env, f"{GROUP}/5")


def test_a_descriptor_without_endpoint_or_batch_model_is_refused() -> None:
    text = (
        '{"environment": "n", "stack_name": "s", "model_package_parameter": "p", '
        '"model_sha256_parameter": "h", "endpoint_name": "e", "model_package_group": "g", '
        '"artifact_bucket": "b", "image_repository": "r", "cloudformation_role_arn": "a", '
        '"release_approval": false, "online_endpoint": false, "batch_model_prefix": ""}'
    )
    with pytest.raises(ValueError, match="neither an endpoint nor a batch model prefix"):
        TargetDescriptor.from_json(text, parameter="/d")
