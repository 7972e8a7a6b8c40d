"""An environment (dev, staging, prod): the stacks deployed together into one account and region."""

from __future__ import annotations

from aws_cdk import Environment, Stage
from constructs import Construct

from cdk.config import AwsConfig, StageConfig
from cdk.model_build_stack import ModelBuildStack
from mlcore.settings import MlopsSettings


class MlopsStage(Stage):
    """One environment. Add serving and monitoring stacks beside ``model_build_stack``."""

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
            data_prefix=aws_config.data_prefix,
            source_revision=aws_config.source_revision,
            ci_account=aws_config.toolchain.account,
            description=f"{settings.project} {stage_name}: data, artifacts, model-build pipeline, registry",
        )
