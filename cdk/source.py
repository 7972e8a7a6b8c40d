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


def pipeline_source(scope: Construct, config: SourceConfig) -> PipelineSource:
    """Build the CodePipeline source for ``config`` (validated: each provider has its settings)."""
    if config.provider == "connection":
        assert config.repository is not None and config.connection_arn is not None
        return PipelineSource(
            pipelines.CodePipelineSource.connection(
                config.repository,
                config.branch,
                connection_arn=config.connection_arn,
            ),
            "CommitId",
        )
    if config.provider == "codecommit":
        assert config.repository is not None
        repository = codecommit.Repository.from_repository_name(
            scope, "SourceRepository", config.repository
        )
        return PipelineSource(
            pipelines.CodePipelineSource.code_commit(repository, config.branch),
            "CommitId",
        )
    assert config.bucket is not None and config.object_key is not None
    bucket = s3.Bucket.from_bucket_name(scope, "SourceBucket", config.bucket)
    return PipelineSource(pipelines.CodePipelineSource.s3(bucket, config.object_key), "VersionId")
