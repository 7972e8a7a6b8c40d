"""The artifact store: one customer-managed KMS key and the buckets every other construct uses.

- ``data_bucket``: training data lands here (``<data_prefix>/``); EventBridge sees new objects.
- ``artifact_bucket``: prep outputs, models, evaluation reports, captured traffic.
- ``access_log_bucket``: S3 server access logs of both (it cannot log to itself).

All three are versioned, SSL-only, block public access, and expire old versions. With
``retain`` (production) the key and buckets survive ``cdk destroy``; without it they are
deleted with the stack, which CloudFormation refuses while a bucket still holds objects
(empty it first: nothing is thrown away by accident).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct


def access_log_bucket(scope: Construct, id_: str, *, retain: bool, expiry: Duration) -> s3.Bucket:
    """A bucket that receives S3 server access logs (SSL-only, versioned, private, expiring).

    Server access logs can only be delivered to SSE-S3 buckets, not SSE-KMS ones.
    """
    removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
    bucket = s3.Bucket(
        scope,
        id_,
        encryption=s3.BucketEncryption.S3_MANAGED,
        versioned=True,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=removal,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-access-logs",
                expiration=expiry,
                noncurrent_version_expiration=Duration.days(1),
            )
        ],
    )
    NagSuppressions.add_resource_suppressions(
        bucket,
        [
            NagPackSuppression(
                id="AwsSolutions-S1",
                reason="This is the access-log bucket; logging it to itself would loop.",
            )
        ],
    )
    return bucket


def log_access(bucket: s3.IBucket, *, to: s3.Bucket, prefix: str) -> None:
    """Deliver ``bucket``'s S3 server access logs to ``to`` under ``prefix``.

    Done with a bucket policy for the logging service, whatever the app's feature flags: the
    L2 ``server_access_logs_bucket`` falls back to ACLs (which fail on buckets with object
    ownership enforced) unless ``@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy`` is set.
    """
    to.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
            actions=["s3:PutObject"],
            resources=[to.arn_for_objects(prefix + "*")],
            conditions={
                "ArnLike": {"aws:SourceArn": bucket.bucket_arn},
                "StringEquals": {"aws:SourceAccount": Stack.of(to).account},
            },
        )
    )
    cfn_bucket = bucket.node.default_child
    if not isinstance(cfn_bucket, s3.CfnBucket):
        raise ValueError(
            f"can only switch on access logs for a bucket defined in this app; got {bucket}"
        )
    cfn_bucket.logging_configuration = s3.CfnBucket.LoggingConfigurationProperty(
        destination_bucket_name=to.bucket_name, log_file_prefix=prefix
    )


class ArtifactStore(Construct):
    """A KMS key with rotation and the data, artifact and access-log buckets.

    :param retain: keep the key and buckets when the stack is deleted. Default: deleted with
        the stack once emptied, which suits dev and staging.
    :param noncurrent_version_expiry: how long replaced object versions are kept. Default: 90 days.
    :param artifact_expiry: how long pipeline artifacts (prep outputs, models, reports) are kept;
        registered models keep their own copy in the registry's model data. Default: 365 days.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        retain: bool = False,
        noncurrent_version_expiry: Duration | None = None,
        artifact_expiry: Duration | None = None,
    ) -> None:
        super().__init__(scope, id_)
        noncurrent_version_expiry = noncurrent_version_expiry or Duration.days(90)
        artifact_expiry = artifact_expiry or Duration.days(365)
        if artifact_expiry.to_days() < 1 or noncurrent_version_expiry.to_days() < 1:
            raise ValueError(
                "ArtifactStore expiries must be at least one day; got "
                f"artifact_expiry={artifact_expiry.to_days()} days, "
                f"noncurrent_version_expiry={noncurrent_version_expiry.to_days()} days"
            )
        removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY

        self.key = kms.Key(
            self,
            "Key",
            description="Encrypts MLOps data, artifacts, job volumes and logs",
            enable_key_rotation=True,
            removal_policy=removal,
        )
        self.access_log_bucket = access_log_bucket(
            self,
            "AccessLogs",
            retain=retain,
            expiry=Duration.days(max(90, int(noncurrent_version_expiry.to_days()))),
        )
        self.data_bucket = s3.Bucket(
            self,
            "Data",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-old-versions",
                    noncurrent_version_expiration=noncurrent_version_expiry,
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
            versioned=True,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=removal,
        )
        # Object-created events go to EventBridge (the new-data trigger). Set on the bucket
        # itself: the L2 `event_bridge_enabled` deploys a Lambda-backed custom resource instead.
        data_cfn = self.data_bucket.node.default_child
        assert isinstance(data_cfn, s3.CfnBucket)
        data_cfn.add_property_override(
            "NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True
        )
        self.artifact_bucket = s3.Bucket(
            self,
            "Artifacts",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-artifacts",
                    expiration=artifact_expiry,
                    noncurrent_version_expiration=noncurrent_version_expiry,
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
            versioned=True,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=removal,
        )

        log_access(self.data_bucket, to=self.access_log_bucket, prefix="data/")
        log_access(self.artifact_bucket, to=self.access_log_bucket, prefix="artifacts/")

    def grant_read_data(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read training data (bucket and key)."""
        return self.data_bucket.grant_read(grantee)

    def grant_read_write_artifacts(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read and write pipeline artifacts (bucket and key)."""
        return self.artifact_bucket.grant_read_write(grantee)

    def grant_read_artifacts(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read pipeline artifacts (bucket and key)."""
        return self.artifact_bucket.grant_read(grantee)

    def deny_outside_network(
        self, *, vpc_endpoint_id: str, exempt_principal_arns: Sequence[str]
    ) -> None:
        """Refuse data access to the data and artifact buckets that does not come through the
        stage's S3 gateway endpoint (``aws:SourceVpce``), except for AWS service principals
        and ``exempt_principal_arns``: principals whose requests come from SageMaker's or
        another account's network, not from this VPC (the release flow's deploy role, acting
        from the model-build account; the roles SageMaker itself acts with). Bucket
        configuration (policy, lifecycle, logging) stays manageable by CloudFormation.
        """
        exempt = list(dict.fromkeys(exempt_principal_arns))
        for bucket in (self.data_bucket, self.artifact_bucket):
            bucket.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="OnlyThroughTheStageNetwork",
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    actions=DATA_ACTIONS,
                    resources=[bucket.bucket_arn, bucket.arn_for_objects("*")],
                    conditions={
                        "StringNotEquals": {"aws:SourceVpce": vpc_endpoint_id},
                        "Bool": {"aws:PrincipalIsAWSService": "false"},
                        **({"ArnNotLike": {"aws:PrincipalArn": exempt}} if exempt else {}),
                    },
                )
            )


#: The data-plane actions a networked stage's buckets refuse from outside its VPC endpoint.
DATA_ACTIONS = [
    "s3:GetObject*",
    "s3:PutObject*",
    "s3:DeleteObject*",
    "s3:ListBucket*",
    "s3:ListMultipartUploadParts",
    "s3:AbortMultipartUpload",
    "s3:RestoreObject",
]
