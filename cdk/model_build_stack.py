"""One environment's model-build stack: artifact store, mlcore image, model build, triggers.

The stack only wires constructs together. Its public attributes (artifact store, bucket, key,
image, model build, package group) are what the serving and monitoring stacks build on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import CfnOutput, Duration, Environment, Stack
from aws_cdk import aws_events as events
from constructs import Construct

from cdk.artifact_store import ArtifactStore
from cdk.config import StageConfig
from cdk.container_image import MlcoreImage, check_estimator_in_image, image_extras
from cdk.model_build import ModelBuild, ModelRegistry
from cdk.network import StageNetwork
from cdk.settings_artifact import SettingsArtifact, SettingsSource
from cdk.tracking import TrackingServer
from cdk.triggers import ModelBuildTriggers
from mlcore.settings import MlopsSettings
from pipelines.sagemaker.definition import ModelBuildOptions


def resource_prefix(project: str, stage_name: str) -> str:
    """``<project>-dev``: the prefix of every physical name in one environment."""
    return f"{project}-{stage_name}"


def ci_role_name(project: str, stage_name: str) -> str:
    """The role CI/CD assumes to start a training run in an environment."""
    return f"{resource_prefix(project, stage_name)}-ci-train"


class ModelBuildStack(Stack):
    """Artifact store, mlcore image, SageMaker model-build pipeline, registry and triggers.

    A stage that does not train (``train: false``) gets the artifact store, image, settings
    and registry group only: it serves the copies the release flow promotes into them.

    ``mlcore_extras`` are the extras its mlcore image installs. Default: what this stage needs;
    the stages of one app pass :func:`cdk.container_image.app_image_extras` instead, so that
    they all build the same image and packages promote between them.

    With ``stage_config.network`` set, the stage's VPC (:class:`cdk.network.StageNetwork`)
    is created here first, so every job, endpoint and function of the stage's stacks runs in
    it; ``network_accounts`` are the accounts whose principals may use its endpoints.
    Default: the stack's own account.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        stage_name: str,
        stage_config: StageConfig,
        settings: MlopsSettings,
        settings_file: str | Path,
        data_prefix: str,
        source_revision: str,
        ci_account: str | None = None,
        mlcore_extras: Sequence[str] | None = None,
        network_accounts: Sequence[str] = (),
        env: Environment | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(scope, id_, env=env, description=description)
        prefix = resource_prefix(settings.project, stage_name)
        source = SettingsSource.from_file(settings_file)
        if source.settings != settings:
            raise ValueError(
                f"the settings given to {id_} differ from the file {source.path} its jobs would "
                "read; pass the settings parsed from that file (one settings artifact per run)"
            )
        # A custom estimator must be importable in the image the jobs run.
        check_estimator_in_image(settings.training.estimator)
        # The file every job of this environment reads (the monitors upload the same bytes,
        # hence the same asset object).
        self.settings_artifact = SettingsArtifact(self, "Settings", source=source)

        self.network: StageNetwork | None = None
        if stage_config.network is not None:
            self.network = StageNetwork(
                self,
                "Network",
                config=stage_config.network,
                principal_accounts=list(network_accounts) or [self.account],
                retain=stage_config.retain_data,
            )
        self.artifact_store = ArtifactStore(
            self,
            "ArtifactStore",
            retain=stage_config.retain_data,
            artifact_expiry=Duration.days(stage_config.artifact_expiry_days),
        )
        self.key = self.artifact_store.key
        self.artifact_bucket = self.artifact_store.artifact_bucket
        self.data_bucket = self.artifact_store.data_bucket
        self.image = MlcoreImage(
            self,
            "MlcoreImage",
            extras=image_extras(settings, tracking_server=stage_config.mlflow.enabled)
            if mlcore_extras is None
            else mlcore_extras,
        )
        self.tracking_server: TrackingServer | None = None
        if stage_config.mlflow.enabled:
            self.tracking_server = TrackingServer(
                self,
                "Tracking",
                tracking_server_name=f"{prefix}-mlflow",
                artifact_bucket=self.artifact_bucket,
                key=self.key,
                config=stage_config.mlflow,
                retain=stage_config.retain_data,
            )

        self.model_build: ModelBuild | None = None
        self.triggers: ModelBuildTriggers | None = None
        self.pipeline_name_output: CfnOutput | None = None
        if not stage_config.train:
            # Serves promoted models only: a pipeline here would stand idle (nothing may start
            # it, config.py refuses training triggers), so only the registry group is made.
            # Its construct id is ModelBuild's, so the group keeps its logical ID.
            registry = ModelRegistry(
                self,
                "ModelBuild",
                model_package_group_name=f"{prefix}-models",
                retain=stage_config.retain_data,
            )
            self.model_package_group_name = registry.model_package_group_name
            self.model_package_group = registry.model_package_group
        else:
            self._build_pipeline(
                prefix=prefix,
                stage_name=stage_name,
                stage_config=stage_config,
                settings=settings,
                data_prefix=data_prefix,
                source_revision=source_revision,
                ci_account=ci_account,
            )
        CfnOutput(
            self,
            "ModelPackageGroupName",
            value=self.model_package_group_name,
            description="Approve models here (SageMaker Studio > Models, or pipelines.sagemaker.model_registry)",
        )
        if self.model_build is not None:
            CfnOutput(
                self,
                "DataBucketName",
                value=self.data_bucket.bucket_name,
                description=(
                    f"Upload training data under s3://<this>/{data_prefix}/ (any subfolders), "
                    "then a _SUCCESS object; every run trains on the whole prefix"
                ),
            )
        CfnOutput(self, "ArtifactBucketName", value=self.artifact_bucket.bucket_name)
        if self.tracking_server is not None:
            CfnOutput(
                self,
                "MlflowTrackingUri",
                value=self.tracking_server.tracking_uri,
                description="MLFLOW_TRACKING_URI of this environment's runs (needs sagemaker-mlflow)",
            )

    def _build_pipeline(
        self,
        *,
        prefix: str,
        stage_name: str,
        stage_config: StageConfig,
        settings: MlopsSettings,
        data_prefix: str,
        source_revision: str,
        ci_account: str | None,
    ) -> None:
        """The model-build pipeline, its triggers and its outputs (a stage that trains)."""
        self.model_build = ModelBuild(
            self,
            "ModelBuild",
            pipeline_name=f"{prefix}-model-build",
            model_package_group_name=f"{prefix}-models",
            settings_artifact=self.settings_artifact,
            data_bucket=self.data_bucket,
            artifact_bucket=self.artifact_bucket,
            key=self.key,
            image=self.image,
            data_prefix=data_prefix,
            retain=stage_config.retain_data,
            tracking_server=self.tracking_server,
            options=ModelBuildOptions(
                processing_instance_type=stage_config.processing_instance_type,
                training_instance_type=stage_config.training_instance_type,
                inference_instance_types=(stage_config.inference_instance_type,),
                use_spot_training=stage_config.use_spot_training,
                max_runtime_seconds=stage_config.max_training_minutes * 60,
                max_spot_wait_seconds=stage_config.max_spot_wait_minutes * 60,
                source_revision=source_revision,
            ),
        )
        self.model_package_group_name = self.model_build.model_package_group_name
        self.model_package_group = self.model_build.model_package_group
        self.triggers = ModelBuildTriggers(
            self,
            "Triggers",
            model_build=self.model_build,
            data_bucket=self.data_bucket,
            data_prefix=data_prefix,
            schedule=events.Schedule.expression(stage_config.training_schedule)
            if stage_config.training_schedule
            else None,
            retrain_on_new_data=stage_config.retrain_on_new_data,
            ci_role_name=ci_role_name(settings.project, stage_name)
            if stage_config.train_after_deploy
            else None,
            ci_account=ci_account if stage_config.train_after_deploy else None,
        )
        self.pipeline_name_output = CfnOutput(
            self,
            "ModelBuildPipelineName",
            value=self.model_build.pipeline_name,
            description="Start a training run: python -m pipelines.sagemaker.run_pipeline --pipeline-name <this>",
        )
