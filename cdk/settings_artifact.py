"""One settings artifact per run: the mlops.yaml that synth, the jobs and the monitors all read.

``SettingsSource.resolve`` finds the file from the repository root (never the working
directory) and parses it once; the CDK app builds alarms, gate metadata and schedules from
that parse. ``SettingsArtifact`` uploads the very same file as a CDK asset: the model-build
jobs and the monitor jobs receive its S3 object as an input, so every reader of the settings
in one deployment reads the same bytes. The image carries no copy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from mlcore.settings import MlopsSettings, load_settings


@dataclass(frozen=True)
class SettingsSource:
    """The settings file (absolute path), its parse and its digest."""

    path: Path
    settings: MlopsSettings

    @classmethod
    def resolve(cls, repository_root: Path, settings_file: str | Path) -> SettingsSource:
        """``settings_file`` relative to ``repository_root`` (or absolute), parsed once."""
        path = Path(settings_file)
        if not path.is_absolute():
            path = Path(repository_root).resolve() / path
        if not path.is_file():
            raise ValueError(
                f"settings file {path} does not exist: set mlops.settings_file in cdk.json to a "
                "path relative to the repository root (default mlops.yaml)"
            )
        return cls(path=path, settings=load_settings(path))

    @classmethod
    def from_file(cls, path: str | Path) -> SettingsSource:
        """An absolute path: a relative one would depend on the working directory of synth."""
        if not Path(path).is_absolute():
            raise ValueError(
                f"settings file {path} must be an absolute path (resolve it against the "
                "repository root with SettingsSource.resolve), not one relative to the working "
                "directory"
            )
        return cls.resolve(Path(path).parent, path)

    @property
    def sha256(self) -> str:
        """``sha256:<hex>`` of the file's bytes, recorded with every model it gated."""
        return "sha256:" + hashlib.sha256(self.path.read_bytes()).hexdigest()


class SettingsArtifact(Construct):
    """The settings file as an S3 asset (one object, named by its content hash).

    :param source: the resolved settings file.
    """

    def __init__(self, scope: Construct, id_: str, *, source: SettingsSource) -> None:
        super().__init__(scope, id_)
        self.source = source
        self.asset = s3_assets.Asset(self, "Asset", path=str(source.path))
        self.s3_object_url = self.asset.s3_object_url
        # A literal (the content hash plus the extension): the name the file has in the jobs.
        self.file_name = self.asset.s3_object_key.rsplit("/", 1)[-1]

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read this one object, not the whole bootstrap assets bucket (Asset.grant_read).

        The jobs receive the file as an ``S3Prefix`` input, and SageMaker lists a prefix
        (ListObjectsV2) before it downloads what the listing returned: without
        ``s3:ListBucket`` the job fails with "ListObjectsV2 failed". The listing is allowed
        for exactly the object's key as the prefix, nothing else in the bucket.
        """
        stack = Stack.of(self)
        bucket_arn = stack.format_arn(
            service="s3", region="", account="", resource=self.asset.s3_bucket_name
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:ListBucket"],
            resource_arns=[bucket_arn],
            conditions={"StringEquals": {"s3:prefix": self.asset.s3_object_key}},
        )
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:GetObject"],
            resource_arns=[
                stack.format_arn(
                    service="s3",
                    region="",
                    account="",
                    resource=self.asset.s3_bucket_name,
                    resource_name=self.asset.s3_object_key,
                )
            ],
        )
