"""The independent IAM evaluation the AWS tests rely on (tests/support/mlops_testing) decides
as AWS does on small cases whose answer is known, so a green permission test means something."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlops_testing.cloudformation import CloudAssembly, UnresolvableError
from mlops_testing.iam import IamSimulator, Request

DEV, PROD = "111111111111", "333333333333"


def _write_assembly(root: Path, stacks: dict[str, tuple[str, dict[str, Any]]]) -> Path:
    artifacts = {}
    for name, (account, template) in stacks.items():
        (root / f"{name}.template.json").write_text(json.dumps(template))
        artifacts[name] = {
            "type": "aws:cloudformation:stack",
            "environment": f"aws://{account}/eu-west-1",
            "properties": {"templateFile": f"{name}.template.json", "stackName": name},
        }
    (root / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))
    return root


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> CloudAssembly:
    exporter = {
        "Resources": {
            "Data": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "acme-data"}},
        },
        "Outputs": {
            "DataArn": {
                "Value": {"Fn::GetAtt": ["Data", "Arn"]},
                "Export": {"Name": "Build:DataArn"},
            }
        },
    }
    importer = {
        "Parameters": {
            "Pointer": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/p"},
        },
        "Conditions": {"HasModel": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Pointer"}, "none"]}]}},
        "Resources": {
            "JobRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []},
                },
            },
            "JobPolicy": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "PolicyName": "job",
                    "Roles": [{"Ref": "JobRole"}],
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "s3:ListBucket",
                                "Resource": {"Fn::ImportValue": "Build:DataArn"},
                                "Condition": {"StringLike": {"s3:prefix": ["settings/*"]}},
                            },
                            {
                                "Effect": "Allow",
                                "Action": "s3:GetObject",
                                "Resource": {
                                    "Fn::Join": ["", [{"Fn::ImportValue": "Build:DataArn"}, "/*"]]
                                },
                            },
                            {
                                "Effect": "Allow",
                                "Action": "sqs:SendMessage",
                                "Resource": {
                                    "Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:q"
                                },
                            },
                        ],
                    },
                },
            },
            "Scaling": {
                "Type": "AWS::IAM::Role",
                "Condition": "HasModel",
                "Properties": {"AssumeRolePolicyDocument": {"Statement": []}},
            },
        },
    }
    root = tmp_path_factory.mktemp("assembly")
    return CloudAssembly.load(
        _write_assembly(root, {"Build": (DEV, exporter), "Serve": (PROD, importer)})
    )


def test_intrinsics_resolve_across_stacks_and_accounts(assembly: CloudAssembly) -> None:
    stack = assembly.stack("Serve")
    role = stack.role("JobRole")
    statements = role.policies[0]["Statement"]
    assert statements[0]["Resource"] == "arn:aws:s3:::acme-data"
    assert statements[1]["Resource"] == "arn:aws:s3:::acme-data/*"
    assert statements[2]["Resource"] == f"arn:aws:sqs:eu-west-1:{PROD}:q"
    assert role.arn.startswith(f"arn:aws:iam::{PROD}:role/Serve-JobRole")


def test_a_conditional_resource_exists_only_in_the_state_that_creates_it(
    assembly: CloudAssembly,
) -> None:
    assert "Scaling" in assembly.stack("Serve", Pointer="arn:model").present
    assert "Scaling" not in assembly.stack("Serve", Pointer="none").present


def test_an_unmodelled_attribute_is_an_error_not_a_guess(assembly: CloudAssembly) -> None:
    with pytest.raises(UnresolvableError, match="not modelled"):
        assembly.stack("Build").get_att("Data", "RegionalDomainName")


@pytest.fixture(scope="module")
def simulator() -> IamSimulator:
    return IamSimulator()


def test_list_bucket_is_allowed_only_under_the_granted_prefix(
    assembly: CloudAssembly, simulator: IamSimulator
) -> None:
    role = assembly.stack("Serve").role("JobRole")
    # As if the bucket were in the role's own account: the identity policy alone decides.
    inside, outside, no_prefix = simulator.decide(
        [
            Request.by(
                role,
                "s3:ListBucket",
                "arn:aws:s3:::acme-data",
                resource_account=PROD,
                context={"s3:prefix": prefix},
            )
            for prefix in ("settings/run-1/", "models/", "")
        ]
    )
    assert inside.allowed
    assert not outside.allowed and not no_prefix.allowed


def test_a_cross_account_call_needs_the_resource_policy_too(
    assembly: CloudAssembly, simulator: IamSimulator
) -> None:
    role = assembly.stack("Serve").role("JobRole")
    bucket_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": role.arn},
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": ["arn:aws:s3:::acme-data", "arn:aws:s3:::acme-data/*"],
            }
        ],
    }
    decisions = simulator.decide(
        [
            Request.by(
                role,
                "s3:GetObject",
                "arn:aws:s3:::acme-data/settings/mlops.yaml",
                resource_account=DEV,
            ),
            Request.by(
                role,
                "s3:GetObject",
                "arn:aws:s3:::acme-data/settings/mlops.yaml",
                resource_account=DEV,
                resource_policy=bucket_policy,
            ),
            Request.by(
                role,
                "s3:ListBucket",
                "arn:aws:s3:::acme-data",
                resource_account=DEV,
                resource_policy=bucket_policy,
                context={"s3:prefix": "models/"},
            ),
            Request.by(
                role,
                "s3:ListBucket",
                "arn:aws:s3:::acme-data",
                resource_account=DEV,
                resource_policy=bucket_policy,
                context={"s3:prefix": "settings/a"},
            ),
        ]
    )
    assert [decision.allowed for decision in decisions] == [False, True, False, True]


def test_a_request_the_simulator_cannot_evaluate_raises(
    assembly: CloudAssembly, simulator: IamSimulator
) -> None:
    role = assembly.stack("Serve").role("JobRole")
    with pytest.raises(ValueError, match="could not evaluate"):
        simulator.decide([Request.by(role, "s3:NoSuchAction", "arn:aws:s3:::acme-data")])
