"""The artifact store: KMS with rotation, SSL-only versioned buckets with access logs, RETAIN in prod."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template

pytestmark = pytest.mark.xdist_group("cdk_synth")

STAGES = ("dev", "staging", "prod")


@pytest.mark.parametrize("stage", STAGES)
def test_kms_key_rotates(templates: dict[str, Template], stage: str) -> None:
    templates[stage].has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_data_and_artifact_buckets_use_the_customer_managed_key(
    templates: dict[str, Template],
) -> None:
    buckets = templates["dev"].find_resources(
        "AWS::S3::Bucket",
        {
            "Properties": {
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {
                            "ServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": Match.any_value(),
                            }
                        }
                    ]
                }
            }
        },
    )
    assert len(buckets) == 2


def test_every_bucket_is_versioned_and_blocks_public_access(templates: dict[str, Template]) -> None:
    buckets = templates["dev"].find_resources("AWS::S3::Bucket")
    assert buckets
    for bucket in buckets.values():
        properties = bucket["Properties"]
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
        assert properties["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }


def test_every_bucket_policy_denies_requests_without_tls(templates: dict[str, Template]) -> None:
    policies = templates["dev"].find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 3
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny"
            and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_data_and_artifact_buckets_log_access_to_the_log_bucket(
    templates: dict[str, Template],
) -> None:
    logged = templates["dev"].find_resources(
        "AWS::S3::Bucket",
        {"Properties": {"LoggingConfiguration": {"DestinationBucketName": Match.any_value()}}},
    )
    assert len(logged) == 2


def test_artifacts_expire_after_the_configured_days(templates: dict[str, Template]) -> None:
    templates["dev"].has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like(
                            {"Id": "expire-artifacts", "ExpirationInDays": 365, "Status": "Enabled"}
                        )
                    ]
                )
            }
        },
    )


def test_data_bucket_sends_object_events_to_eventbridge_without_a_custom_resource(
    templates: dict[str, Template],
) -> None:
    templates["dev"].has_resource_properties(
        "AWS::S3::Bucket",
        {"NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}},
    )
    # The only function in the stack is the pipeline's CheckInputs step; no notification handler.
    functions = templates["dev"].find_resources("AWS::Lambda::Function")
    assert [k for k in functions if "CheckInputs" not in k] == []


def test_prod_retains_key_and_buckets(templates: dict[str, Template]) -> None:
    for kind in ("AWS::KMS::Key", "AWS::S3::Bucket", "AWS::SageMaker::ModelPackageGroup"):
        for resource in templates["prod"].find_resources(kind).values():
            assert resource["DeletionPolicy"] == "Retain", kind
            assert resource["UpdateReplacePolicy"] == "Retain", kind


def test_dev_deletes_key_and_buckets_with_the_stack(templates: dict[str, Template]) -> None:
    for kind in ("AWS::KMS::Key", "AWS::S3::Bucket"):
        for resource in templates["dev"].find_resources(kind).values():
            assert resource["DeletionPolicy"] == "Delete", kind


def test_stateful_logical_ids_are_stable(templates: dict[str, Template]) -> None:
    # Renaming any of these replaces the resource (new bucket, new key, new registry).
    expected = {
        "ArtifactStoreKey28E2B6CF": "AWS::KMS::Key",
        "ArtifactStoreAccessLogs28327170": "AWS::S3::Bucket",
        "ArtifactStoreData52C54A7C": "AWS::S3::Bucket",
        "ArtifactStoreArtifacts856EDEA9": "AWS::S3::Bucket",
        "ModelBuildModelPackageGroupAECAA7A4": "AWS::SageMaker::ModelPackageGroup",
    }
    resources = templates["prod"].to_json()["Resources"]
    assert {k: resources[k]["Type"] for k in expected if k in resources} == expected
