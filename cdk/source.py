"""Where the CI/CD pipeline takes the code from: pluggable, chosen by ``source.provider``.

- ``connection`` (default): AWS CodeConnections to GitHub, GitLab or Bitbucket. Create the
  connection once in the console (Developer Tools > Settings > Connections) and approve it.
- ``codecommit``: an existing CodeCommit repository in the toolchain account.
- ``s3``: a zip of the repository in a versioned S3 bucket.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_codecommit as codecommit
from aws_cdk import aws_s3 as s3
from aws_cdk import pipelines
from constructs import Construct

from cdk.config import SourceConfig


@dataclass(frozen=True)
class PipelineSource:
    """A CDK Pipelines source and the name of its output variable that identifies the revision."""

    source: pipelines.CodePipelineSource
    revision_variable: str

    def revision(self) -> str:
        """The revision (commit id or S3 object version) as a CodePipeline variable reference."""
        return self.source.source_attribute(self.revision_variable)


def _required(config: SourceConfig, name: str) -> str:
    value = getattr(config, name)
    if not value:
        raise ValueError(f"source.provider {config.provider!r} needs source.{name} (see cdk.json)")
    return str(value)


def pipeline_source(scope: Construct, config: SourceConfig) -> PipelineSource:
    """Build the CodePipeline source for ``config``."""
    if config.provider == "connection":
        return PipelineSource(
            pipelines.CodePipelineSource.connection(
                _required(config, "repository"),
                config.branch,
                connection_arn=_required(config, "connection_arn"),
            ),
            "CommitId",
        )
    if config.provider == "codecommit":
        repository = codecommit.Repository.from_repository_name(
            scope, "SourceRepository", _required(config, "repository")
        )
        return PipelineSource(
            pipelines.CodePipelineSource.code_commit(repository, config.branch),
            "CommitId",
        )
    bucket = s3.Bucket.from_bucket_name(scope, "SourceBucket", _required(config, "bucket"))
    return PipelineSource(
        pipelines.CodePipelineSource.s3(bucket, _required(config, "object_key")), "VersionId"
    )
