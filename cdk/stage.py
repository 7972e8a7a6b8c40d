"""An environment (dev, staging, prod): the stacks deployed together into one account and region."""

from __future__ import annotations

from aws_cdk import Aws, Duration, Environment, RemovalPolicy, Stack, Stage
from constructs import Construct

from cdk.batch.transform import batch_role_name
from cdk.config import AwsConfig, StageConfig
from cdk.container_image import app_image_extras
from cdk.model_build_stack import ModelBuildStack, resource_prefix
from cdk.monitoring.retrain import RemoteRetrainBus, retrain_bus_name
from cdk.serving.approval import ApprovalRecorder
from cdk.serving.approved_model import ApprovedModelParameter
from cdk.serving.endpoint import endpoint_role_name
from cdk.serving.release import ReleaseTarget
from cdk.serving.release_access import (
    ReleaseAccess,
    change_role_name,
    deploy_role_name,
    descriptor_parameter_name,
    model_package_parameter_name,
    model_sha256_parameter_name,
    release_function_role_names,
    role_arn,
)
from cdk.serving.stack import RetrainReceiverProps, ServingProps, ServingStack
from mlcore.settings import MlopsSettings


def model_build_pipeline_name(project: str, stage_name: str) -> str:
    return f"{resource_prefix(project, stage_name)}-model-build"


class MlopsStage(Stage):
    """One environment: the model-build stack, the release state and access, and serving.

    The model-build environment (``AwsConfig.build_stage``, dev by default) trains and
    registers models and holds the release flow: approving a package in its group releases
    it to its own endpoint, then promotes a verified copy to each later environment in turn
    (with a person's approval where ``release_approval`` is set), each through the deploy
    role that environment's ReleaseState stack creates.
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
        project = settings.project
        build_stage = aws_config.build_stage
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
            # One image for every stage: a package is promoted with its image's digest.
            mlcore_extras=app_image_extras(
                settings, tracking_servers=(s.mlflow.enabled for s in aws_config.stages.values())
            ),
            network_accounts=network_accounts(aws_config, stage_name),
            description=f"{project} {stage_name}: data, artifacts, model-build pipeline, registry",
        )
        build = self.model_build_stack
        # The pointer to the released model package must exist before the serving stack
        # deploys (it reads it as a parameter), and it outlives serving deploys: its own stack,
        # which also holds the deploy role the release flow acts through.
        self.release_state_stack = Stack(
            self,
            "ReleaseState",
            description=f"{project} {stage_name}: the released model package and the release's access",
        )
        approved = ApprovedModelParameter(
            self.release_state_stack,
            "ApprovedModel",
            parameter_name=model_package_parameter_name(project, stage_name),
        )
        approved_sha256 = ApprovedModelParameter(
            self.release_state_stack,
            "ApprovedModelSha256",
            parameter_name=model_sha256_parameter_name(project, stage_name),
            description="sha256 of the served package's model file (written by the release flow)",
        )
        # Either switch makes the endpoint serverless (stages.<name>.endpoint.serverless sets
        # its memory and concurrency too).
        serverless = stage_config.serverless
        endpoint: dict[str, object] = {
            "instance_type": stage_config.inference_instance_type,
            **stage_config.endpoint.as_settings(),
        }
        if serverless and "serverless" not in endpoint:
            endpoint["serverless"] = {}
        self.serving_stack = ServingStack(
            self,
            "Serving",
            props=ServingProps.from_mlops(
                settings,
                environment=stage_name,
                endpoint=endpoint,
                # Serverless endpoints cannot capture data, and a batch-only stage has no
                # endpoint: nothing to monitor.
                with_monitors=stage_config.captures_data,
                retain=stage_config.retain_data,
                release_approval=stage_config.release_approval,
                settings_file=aws_config.settings_file,
                monitoring=stage_config.monitoring.overrides(),
                batch=stage_config.batch,
                online_endpoint=stage_config.online_endpoint,
            ),
            encryption_key=build.key,
            artifact_bucket=build.artifact_bucket,
            image_uri=build.image.image_uri,
            image_repository=build.image.repository,
            model_package_group_name=build.model_package_group_name,
            model_build_pipeline_name=self._retrain_pipeline(aws_config, project),
            retrain_forward_to=self._retrain_forward_to(aws_config, project),
            retrain_receiver=self._retrain_receiver(aws_config, settings),
            approved_model=approved,
            approved_model_sha256=approved_sha256,
            change_role_name=change_role_name(project, stage_name),
            description=f"{project} {stage_name}: endpoint, monitors, retrain loop, dashboard",
        )
        release_account = aws_config.stages[build_stage].account or Aws.ACCOUNT_ID
        self.release_access = ReleaseAccess(
            self.release_state_stack,
            "ReleaseAccess",
            environment=stage_name,
            project=project,
            release_account=release_account,
            release_function_roles=release_function_role_names(project, build_stage),
            pointer=(approved, approved_sha256),
            serving_stack_name=self.serving_stack.stack_name,
            endpoint_name=self.serving_stack.props.endpoint.endpoint_name,
            online_endpoint=stage_config.online_endpoint,
            batch_model_prefix=(
                self.serving_stack.batch.model_name_prefix if self.serving_stack.batch else ""
            ),
            model_package_group_name=build.model_package_group_name,
            artifact_bucket=build.artifact_bucket,
            image_repository=build.image.repository,
            reads_trained_models=stage_config.train,
            release_approval=stage_config.release_approval,
        )
        self.approval_recorder: ApprovalRecorder | None = None
        if stage_config.release_approval:
            self.approval_recorder = ApprovalRecorder(
                self.release_state_stack,
                "ApprovalRecorder",
                model_package_group_name=build.model_package_group_name,
                artifact_bucket=build.artifact_bucket,
                removal_policy=RemovalPolicy.RETAIN
                if stage_config.retain_data
                else RemovalPolicy.DESTROY,
            )
        if build.network is not None and build.network.s3_endpoint_id is not None:
            self._deny_bucket_access_outside_the_network(project, stage_name, stage_config)
        if stage_name == build_stage:
            self.serving_stack.add_release_flow(
                release_targets(self.serving_stack, aws_config, project),
                function_role_names=release_function_role_names(project, build_stage),
                approval_timeout=Duration.hours(aws_config.release_approval_timeout_hours),
            )

    def _deny_bucket_access_outside_the_network(
        self, project: str, stage_name: str, stage_config: StageConfig
    ) -> None:
        """Data and artifacts reach this stage's buckets only through its VPC's S3 endpoint,
        except for the principals whose requests cannot come from there:

        - the release flow's deploy role of this stage: the release functions run in the
          model-build account (its VPC, or none) and copy a model in with this role;
        - the endpoint's execution role: SageMaker's hosting platform checks the model data at
          CreateModel and writes captured traffic; that it does so through the customer's VPC
          is not documented;
        - the batch model's execution role (a stage with ``batch``): as the endpoint's, SageMaker
          checks its model data at CreateModel;
        - the model-build pipeline's role: SageMaker Pipelines reads the property files
          (gate, lineage) from the service side, not from the VPC;
        - the principals the stage's ``network.bucket_access_from_outside`` names.
        """
        build = self.model_build_stack
        assert build.network is not None and build.network.s3_endpoint_id is not None
        account = stage_config.account or Aws.ACCOUNT_ID
        exempt = [role_arn(build, deploy_role_name(project, stage_name), account)]
        endpoint = self.serving_stack.endpoint
        if endpoint is not None:
            exempt.append(role_arn(build, endpoint_role_name(endpoint.endpoint_name), account))
        if self.serving_stack.batch is not None:
            exempt.append(
                role_arn(build, batch_role_name(self.serving_stack.batch.name_prefix), account)
            )
        if build.model_build is not None:
            exempt.append(build.model_build.pipeline_role.role_arn)
        assert stage_config.network is not None
        exempt.extend(stage_config.network.bucket_access_from_outside)
        build.artifact_store.deny_outside_network(
            vpc_endpoint_id=build.network.s3_endpoint_id, exempt_principal_arns=exempt
        )

    def _retrain_pipeline(self, aws_config: AwsConfig, project: str) -> str | None:
        """The pipeline a drift alarm here retrains: this stage's own when it trains, else the
        model-build stage's (started here when it is in this account and region, else
        forwarded to that account's retrain bus, see ``_retrain_forward_to``)."""
        if self.stage_config.train:
            return model_build_pipeline_name(project, self.mlops_stage_name)
        return model_build_pipeline_name(project, aws_config.build_stage)

    def _retrain_forward_to(self, aws_config: AwsConfig, project: str) -> RemoteRetrainBus | None:
        if not forwards_retrains(aws_config, self.mlops_stage_name):
            return None
        build = aws_config.stages[aws_config.build_stage]
        # Validation sets accounts on every stage or on none (then this is another region of
        # the one account), and regions likewise.
        return RemoteRetrainBus(
            account=build.account or Aws.ACCOUNT_ID,
            region=build.region or Aws.REGION,
            bus_name=retrain_bus_name(resource_prefix(project, aws_config.build_stage)),
        )

    def _retrain_receiver(
        self, aws_config: AwsConfig, settings: MlopsSettings
    ) -> RetrainReceiverProps | None:
        if self.mlops_stage_name != aws_config.build_stage:
            return None
        senders = [
            aws_config.stages[name].account or Aws.ACCOUNT_ID
            for name in aws_config.stages
            if forwards_retrains(aws_config, name)
        ]
        if not senders:
            return None
        return RetrainReceiverProps(
            bus_name=retrain_bus_name(resource_prefix(settings.project, self.mlops_stage_name)),
            sender_accounts=tuple(senders),
            cooldown_hours=settings.monitoring.retrain_cooldown_hours,
        )


def forwards_retrains(aws_config: AwsConfig, stage_name: str) -> bool:
    """Whether drift in ``stage_name`` retrains through the model-build stage's retrain bus:
    it has monitors (not serverless), does not train itself, and lives in another account
    or region than the model-build stage (an EventBridge rule starts pipelines of its own
    account and region only)."""
    stage = aws_config.stages[stage_name]
    if stage.train or not stage.captures_data:
        return False
    build = aws_config.stages[aws_config.build_stage]
    return (build.account, build.region) != (stage.account, stage.region)


def network_accounts(aws_config: AwsConfig, stage_name: str) -> list[str]:
    """The accounts whose principals call AWS from ``stage_name``'s VPC: its own, and in the
    model-build stage every account its release functions act in (through deploy roles)."""
    own = aws_config.stages[stage_name].account or Aws.ACCOUNT_ID
    if stage_name != aws_config.build_stage:
        return [own]
    others = [
        aws_config.stages[name].account or Aws.ACCOUNT_ID for name in aws_config.release_stages()
    ]
    return list(dict.fromkeys([own, *others]))


def release_targets(stack: Stack, aws_config: AwsConfig, project: str) -> list[ReleaseTarget]:
    """Every environment a release reaches, in order, as seen from the release flow's stack.

    Plain strings only (names, accounts, regions from the config): stacks of other stages
    cannot be referenced, and need not be, since each target describes itself at run time.
    """
    targets = []
    for name in aws_config.release_stages():
        stage = aws_config.stages[name]
        targets.append(
            ReleaseTarget(
                environment=name,
                # Validation guarantees every stage has an account, or none has (one account).
                role_arn=role_arn(
                    stack, deploy_role_name(project, name), stage.account or Aws.ACCOUNT_ID
                ),
                descriptor_parameter=descriptor_parameter_name(project, name),
                region=stage.region,
                approval_before=stage.release_approval,
            )
        )
    return targets
