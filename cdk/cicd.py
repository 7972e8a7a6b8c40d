"""The self-mutating CI/CD pipeline: synth (tests, cdk-nag, cdk synth) -> dev -> staging -> prod.

CDK Pipelines updates the pipeline itself first (self-mutation), then deploys each environment
in the configured order. A stage with ``manual_approval`` waits for a person in CodePipeline;
a stage with ``train_after_deploy`` starts the model-build pipeline after its deploy and waits
for the run (the "train on commit" trigger), through a role in that environment's account.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Environment, Stack, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from cdk.artifact_store import access_log_bucket, log_access
from cdk.config import SourceConfig
from cdk.model_build_stack import ci_role_name
from cdk.source import pipeline_source
from cdk.stage import MlopsStage
from cdk.triggers import ModelBuildTriggers

#: The construct id (and stack name) of the CI/CD stack.
CICD_STACK_ID = "MlopsCicd"
# CodeBuild's standard image with the Python and Node.js versions the project uses.
_BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0
_RUNTIMES = {"phases": {"install": {"runtime-versions": {"python": "3.11", "nodejs": "20"}}}}


class CicdStack(Stack):
    """The CodePipeline that tests, synthesises and deploys every environment.

    :param source_config: where the code comes from (see ``cdk.source``).
    :param project: the project name from mlops.yaml (prefix of physical names).
    :param docker_base_repositories: ARNs of other accounts' ECR repositories the stages' images
        are built FROM (SageMaker's Spark processing image): the pipeline logs in to them
        before it builds or publishes image assets.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        source_config: SourceConfig,
        project: str,
        docker_base_repositories: Sequence[str] = (),
        env: Environment | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(scope, id_, env=env, description=description)
        self.project = project
        self._source = pipeline_source(self, source_config)
        source = self._source
        self.stages: list[MlopsStage] = []
        synth = pipelines.CodeBuildStep(
            "Synth",
            input=source.source,
            install_commands=["npm ci"],
            commands=["make test", "npx cdk synth"],
            primary_output_directory="cdk.out",
            env={
                "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
                "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            },
            partial_build_spec=pipelines_build_spec(),
            timeout=Duration.minutes(60),
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=f"{project}-mlops",
            pipeline_type=codepipeline.PipelineType.V2,
            synth=synth,
            # Stages may live in other accounts: encrypt artifacts with a KMS key they can use.
            cross_account_keys=True,
            enable_key_rotation=True,
            docker_enabled_for_synth=False,
            docker_credentials=[
                pipelines.DockerCredential.ecr(
                    [
                        ecr.Repository.from_repository_arn(self, f"DockerBase{index}", arn)
                        for index, arn in enumerate(docker_base_repositories)
                    ]
                )
            ]
            if docker_base_repositories
            else None,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(build_image=_BUILD_IMAGE)
            ),
        )

    def add_environment(self, stage: MlopsStage) -> pipelines.StageDeployment:
        """Deploy ``stage`` after the ones added before it, with its approval and training steps."""
        config = stage.stage_config
        pre: list[pipelines.Step] = []
        if config.manual_approval:
            pre.append(
                pipelines.ManualApprovalStep(
                    f"Approve{stage.stage_name.capitalize()}",
                    comment=f"Promote to {stage.mlops_stage_name}? Check the previous stage first.",
                )
            )
        post: list[pipelines.Step] = []
        if config.train_after_deploy:
            post.append(self._training_step(stage))
        self.stages.append(stage)
        return self.pipeline.add_stage(stage, pre=pre, post=post)

    def _training_step(self, stage: MlopsStage) -> pipelines.CodeBuildStep:
        pipeline_name = stage.model_build_stack.pipeline_name_output
        if pipeline_name is None:  # config.py refuses train_after_deploy without train
            raise ValueError(f"{stage.mlops_stage_name} trains after deploy but has no pipeline")
        role_arn = ModelBuildTriggers.ci_role_arn(
            self, ci_role_name(self.project, stage.mlops_stage_name), stage.stage_config.account
        )
        timeout = stage.stage_config.train_timeout_minutes
        return pipelines.CodeBuildStep(
            f"Train{stage.stage_name.capitalize()}",
            input=self._source.source,
            install_commands=["pip install \"$(grep '^boto3==' requirements.txt)\""],
            commands=[
                "python -m pipelines.sagemaker.run_pipeline"
                ' --pipeline-name "$PIPELINE_NAME"'
                ' --assume-role-arn "$CI_ROLE_ARN"'
                ' --parameter "GitCommit=$SOURCE_REVISION"'
                f" --wait --timeout-minutes {timeout}"
            ],
            env={"CI_ROLE_ARN": role_arn, "SOURCE_REVISION": self._source.revision()},
            env_from_cfn_outputs={"PIPELINE_NAME": pipeline_name},
            role_policy_statements=[
                iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[role_arn])
            ],
            partial_build_spec=pipelines_build_spec(),
            timeout=Duration.minutes(timeout + 10),
        )

    def finalize(self) -> None:
        """Build the pipeline after the last stage: log its artifact bucket, justify the rest."""
        self.pipeline.build_pipeline()
        self._log_artifact_bucket_access()
        NagSuppressions.add_resource_suppressions(
            self.pipeline,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason=(
                        "CDK Pipelines scopes its roles to its own artifact bucket, key, CodeBuild "
                        "log groups and the CDK bootstrap roles; object keys, log streams and report "
                        "groups are named at run time, hence the trailing wildcards."
                    ),
                ),
                NagPackSuppression(
                    id="AwsSolutions-CB3",
                    reason="The asset stage builds the mlcore Docker image, which needs privileged mode.",
                ),
            ],
            apply_to_children=True,
        )

    def _log_artifact_bucket_access(self) -> None:
        # CDK Pipelines creates its artifact bucket (KMS, SSL-only, private) without access
        # logs and offers no prop for them, so they are switched on through the L1 bucket.
        logs = access_log_bucket(self, "ArtifactAccessLogs", retain=False, expiry=Duration.days(90))
        artifacts = self.pipeline.pipeline.artifact_bucket
        log_access(artifacts, to=logs, prefix="pipeline-artifacts/")
        # Nor versioning: an overwritten or deleted artifact of a run stays recoverable.
        cfn_bucket = artifacts.node.default_child
        assert isinstance(cfn_bucket, s3.CfnBucket)
        cfn_bucket.versioning_configuration = s3.CfnBucket.VersioningConfigurationProperty(
            status="Enabled"
        )


def pipelines_build_spec() -> codebuild.BuildSpec:
    """The runtime versions every CodeBuild step of this project uses."""
    return codebuild.BuildSpec.from_object(_RUNTIMES)
