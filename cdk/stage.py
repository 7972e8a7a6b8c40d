"""An environment (dev, staging, prod): the stacks deployed together into one account and region."""

from __future__ import annotations

from aws_cdk import Environment, Stack, Stage
from constructs import Construct

from cdk.config import AwsConfig, StageConfig
from cdk.model_build_stack import ModelBuildStack
from cdk.serving.approved_model import ApprovedModelParameter
from cdk.serving.stack import ServingProps, ServingStack
from mlcore.settings import MlopsSettings


class MlopsStage(Stage):
    """One environment: the model-build stack, then serving and monitoring beside it.

    Approving a package in this environment's model package group releases it to this
    environment's endpoint; a stage with ``release_via`` first releases to that stage's
    endpoint (smoke test), then asks for approval before its own.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        stage_name: str,
        stage_config: StageConfig,
        aws_config: AwsConfig,
        settings: MlopsSettings,
    ) -> None:
        super().__init__(
            scope,
            id_,
            env=Environment(account=stage_config.account, region=stage_config.region),
        )
        self.mlops_stage_name = stage_name
        self.stage_config = stage_config
        self.model_build_stack = ModelBuildStack(
            self,
            "ModelBuild",
            stage_name=stage_name,
            stage_config=stage_config,
            settings=settings,
            settings_file=aws_config.settings_file,
            data_prefix=aws_config.data_prefix,
            source_revision=aws_config.source_revision,
            ci_account=aws_config.toolchain.account,
            description=f"{settings.project} {stage_name}: data, artifacts, model-build pipeline, registry",
        )
        build = self.model_build_stack
        # The pointer to the released model package must exist before the serving stack
        # deploys (it reads it as a parameter), and it outlives serving deploys: its own stack.
        self.release_state_stack = Stack(
            self,
            "ReleaseState",
            description=f"{settings.project} {stage_name}: which approved model package is released",
        )
        approved = ApprovedModelParameter(
            self.release_state_stack,
            "ApprovedModel",
            parameter_name=f"/mlops/{settings.project}/{stage_name}/model-package-arn",
        )
        serverless = stage_config.serverless_inference
        endpoint: dict[str, object] = {"instance_type": stage_config.inference_instance_type}
        if serverless:
            endpoint["serverless"] = {}
        self.serving_stack = ServingStack(
            self,
            "Serving",
            props=ServingProps.from_mlops(
                settings,
                environment=stage_name,
                endpoint=endpoint,
                # Serverless endpoints cannot capture data, so there is nothing to monitor.
                with_monitors=not serverless,
                retain=stage_config.retain_data,
                settings_file=aws_config.settings_file,
                monitoring=stage_config.monitoring.overrides(),
            ),
            encryption_key=build.key,
            artifact_bucket=build.artifact_bucket,
            image_uri=build.image.image_uri,
            image_repository=build.image.repository,
            model_package_group_name=build.model_build.model_package_group_name,
            model_build_pipeline_name=build.model_build.pipeline_name,
            approved_model=approved,
            description=f"{settings.project} {stage_name}: endpoint, monitors, retrain loop, dashboard",
        )
        targets = []
        if stage_config.release_via is not None:
            # AwsConfig guarantees it names an earlier stage, already built in this scope.
            via = scope.node.find_child(stage_config.release_via.capitalize())
            assert isinstance(via, MlopsStage)
            targets.append(via.serving_stack.release_target())
        targets.append(
            self.serving_stack.release_target(approval_before=stage_config.release_via is not None)
        )
        self.serving_stack.add_release_flow(targets)
