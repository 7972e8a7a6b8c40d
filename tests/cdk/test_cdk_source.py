"""The pluggable source: CodeCommit and S3 work as well as the default CodeConnections."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack, pipelines
from aws_cdk.assertions import Match, Template

from cdk.config import SourceConfig
from cdk.source import pipeline_source


def _source_action(config: SourceConfig) -> tuple[Template, str]:
    stack = Stack(App(), "Toolchain")
    source = pipeline_source(stack, config)
    pipeline = pipelines.CodePipeline(
        stack,
        "Pipeline",
        synth=pipelines.ShellStep("Synth", input=source.source, commands=["true"]),
        self_mutation=False,
    )
    pipeline.build_pipeline()
    return Template.from_stack(stack), source.revision_variable


@pytest.mark.parametrize(
    ("config", "provider", "configuration", "revision"),
    [
        (
            SourceConfig(provider="codecommit", repository="mlops-kit", branch="release"),
            "CodeCommit",
            {"RepositoryName": "mlops-kit", "BranchName": "release"},
            "CommitId",
        ),
        (
            SourceConfig(provider="s3", bucket="my-source-bucket", object_key="mlops-kit.zip"),
            "S3",
            {"S3Bucket": "my-source-bucket", "S3ObjectKey": "mlops-kit.zip"},
            "VersionId",
        ),
    ],
)
def test_alternative_sources_feed_the_pipeline(
    config: SourceConfig, provider: str, configuration: dict[str, str], revision: str
) -> None:
    template, revision_variable = _source_action(config)
    template.has_resource_properties(
        "AWS::CodePipeline::Pipeline",
        {
            "Stages": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Name": "Source",
                            "Actions": [
                                Match.object_like(
                                    {
                                        "ActionTypeId": Match.object_like({"Provider": provider}),
                                        "Configuration": Match.object_like(configuration),
                                    }
                                )
                            ],
                        }
                    )
                ]
            )
        },
    )
    assert revision_variable == revision
