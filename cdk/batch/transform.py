"""Scheduled batch scoring: SageMaker Batch Transform on an environment's released model package.

The model is the package the environment's pointer names (the SSM parameter its endpoint is
deployed from), so a batch path is promoted and approved exactly as the endpoint is: the
release flow writes the pointer and updates the serving stack, which replaces the batch
model (named ``<prefix>-batch-v<package version>``, see
:func:`pipelines.batch.transform.batch_model_name`). The model sets ``MLCORE_MODEL_SHA256``
as the endpoint's does, so the serving container refuses any other model file, and runs
with network isolation.

On the batch schedule, EventBridge Scheduler invokes a starter function
(:mod:`pipelines.batch.transform`) that starts a transform job over the files that arrived
under the input prefix since the previous run. A transform job runs as its model's execution
role (CreateTransformJob takes no role): that role, created here, may read the model archive,
the run's manifest and the input prefix, write under the output prefix, and use the
environment's key; the starter may create transform jobs of this environment on the
configured instance type with the key on output and volumes, and nothing else of SageMaker
but describe the batch models. A failed or stopped job is reported on the environment's
topic (:class:`cdk.monitoring.failures.FailureAlarms`), as a failed model build is; an hourly
heartbeat publishes ``HoursSinceBatchRun``, and ``<name>-batch-stale`` fires when no run ended
without error in two schedule periods (as the monitors' heartbeat alarms do).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, CfnCondition, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from cdk.batch.settings import BatchConfig
from cdk.serving.approved_model import ApprovedModelParameter
from cdk.serving.endpoint import MODEL_DATA_KEY_PATTERNS, MODEL_SHA256_ENV
from cdk.serving.functions import ControlPlaneFunction
from mlcore.serve.defaults import SERVING_ENV
from mlcore.settings import ServingSettings
from pipelines.batch.transform import HOURS_SINCE_BATCH_RUN, BatchJobConfig, job_name_prefix
from pipelines.deploy.approval import APPROVAL_TAG, APPROVAL_TAG_VALUE

#: Where a run's manifest and scored files go under the output prefix (pipelines.batch.transform).
MANIFEST_PATTERN = "*/manifest/*"
SCORED_PATTERN = "*/scored/*"


class BatchTransform(Construct):
    """A scheduled Batch Transform of the released model over new files under an input prefix.

    :param settings: the schedule, prefixes and capacity (``stages.<name>.batch``).
    :param name_prefix: names the batch model and jobs (``<prefix>-batch-...``); the
        environment's endpoint name.
    :param model_package_arn: the released package (the pointer parameter's value).
    :param model_sha256: ``sha256:<hex>`` of its model file (the second pointer's value).
    :param approved_model: the pointer parameter itself: the starter reads it at run time.
    :param condition: create the batch model only while it holds (a package is released).
    :param bucket: the artifact bucket: model archives, input and output prefixes.
    :param encryption_key: encrypts the outputs, the job's volumes and the manifests.
    :param image_repository: the serving image's repository.
    :param state_table: keeps the end of the last run (the watermark) and the files scored.
    :param notifications: receives the stale alarm (no run completed in two schedule periods).
    :param namespace: the CloudWatch namespace of ``HoursSinceBatchRun``. Default: ``MLOps``.
    :param id_column_count: how many id columns lead each input row (cut off before scoring,
        joined back on output). Default: none.
    :param approved_models_only: read a model archive only once a person approved its package
        in this environment (as the endpoint). Default: any archive under the model keys.
    :param serving: mlops.yaml's ``serving:`` section (timeouts), handed to the container as
        the endpoint's is. Default: mlcore's defaults.
    :param log_key: encrypts the starter's logs and environment. Default: AWS-owned keys.
    :param removal_policy: of the starter's log group. Default: destroyed with the stack.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: BatchConfig,
        name_prefix: str,
        model_package_arn: str,
        model_sha256: str,
        approved_model: ApprovedModelParameter,
        condition: CfnCondition,
        bucket: s3.IBucket,
        encryption_key: kms.IKey,
        image_repository: ecr.IRepository,
        state_table: dynamodb.ITable,
        notifications: sns.ITopic,
        namespace: str = "MLOps",
        id_column_count: int = 0,
        approved_models_only: bool = False,
        serving: ServingSettings | None = None,
        log_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        self.settings = settings
        self.name_prefix = name_prefix
        self.job_name_prefix = job_name_prefix(name_prefix)
        input_prefix = settings.input_prefix.rstrip("/")
        output_prefix = settings.output_prefix.rstrip("/")
        # The starter's own checks (name lengths) run here, at synth, with the same values.
        job_config = BatchJobConfig(
            name_prefix=name_prefix,
            model_package_parameter=approved_model.parameter_name,
            bucket="synth-check",
            input_prefix=input_prefix,
            output_prefix=output_prefix,
            state_table="synth-check",
            kms_key_arn="synth-check",
            id_column_count=id_column_count,
            instance_type=settings.instance_type,
            instance_count=settings.instance_count,
            max_payload_mb=settings.max_payload_mb,
            max_concurrent_transforms=settings.max_concurrent_transforms,
            invocation_timeout_seconds=settings.invocation_timeout_seconds,
            lookback_hours=settings.lookback_hours,
        )

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Runs {name_prefix}'s batch transform jobs (the batch model's role)",
        )
        model_objects = [bucket.arn_for_objects(p) for p in MODEL_DATA_KEY_PATTERNS]
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=model_objects,
                conditions=(
                    {"StringEquals": {f"s3:ExistingObjectTag/{APPROVAL_TAG}": APPROVAL_TAG_VALUE}}
                    if approved_models_only
                    else None
                ),
            )
        )
        # The job reads the run's manifest, then exactly the files it lists.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[
                    bucket.arn_for_objects(f"{input_prefix}/*"),
                    bucket.arn_for_objects(f"{output_prefix}/{MANIFEST_PATTERN}"),
                ],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[bucket.arn_for_objects(f"{output_prefix}/{SCORED_PATTERN}")],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetBucketLocation"], resources=[bucket.bucket_arn])
        )
        encryption_key.grant_encrypt_decrypt(self.role)
        image_repository.grant_pull(self.role)
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws/sagemaker/TransformJobs:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={
                    "StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TransformJobs"}
                },
            )
        )

        # Named after the package version, as the starter derives it from the pointer: a
        # release replaces the model (a new version is a new name), and the starter finds
        # the one the pointer names without being redeployed.
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            model_name=Fn.join(
                "",
                [
                    self.model_name_prefix,
                    Fn.select(2, Fn.split("/", model_package_arn)),
                ],
            ),
            execution_role_arn=self.role.role_arn,
            containers=[
                sagemaker.CfnModel.ContainerDefinitionProperty(
                    model_package_name=model_package_arn,
                    environment={
                        MODEL_SHA256_ENV: model_sha256,
                        # The container has no mlops.yaml: its serving timeouts come from here.
                        SERVING_ENV: (serving or ServingSettings()).model_dump_json(),
                    },
                )
            ],
            # The container needs no network: SageMaker hands it the model and the rows.
            enable_network_isolation=True,
        )
        self.model.cfn_options.condition = condition
        policy = self.role.node.try_find_child("DefaultPolicy")
        if policy is not None:
            # SageMaker checks at CreateModel that the role can read the model data and image.
            self.model.node.add_dependency(policy)

        self.start_function = ControlPlaneFunction(
            self,
            "StartJob",
            handler="batch.transform.handler",
            description=f"Starts {name_prefix}'s scheduled batch transform runs",
            encryption_key=log_key,
            removal_policy=removal_policy,
            environment={
                "NAME_PREFIX": name_prefix,
                "MODEL_PACKAGE_PARAMETER": approved_model.parameter_name,
                "BUCKET": bucket.bucket_name,
                "INPUT_PREFIX": input_prefix,
                "OUTPUT_PREFIX": output_prefix,
                "STATE_TABLE": state_table.table_name,
                "KMS_KEY_ARN": encryption_key.key_arn,
                "ID_COLUMN_COUNT": str(job_config.id_column_count),
                "INSTANCE_TYPE": job_config.instance_type,
                "INSTANCE_COUNT": str(job_config.instance_count),
                "MAX_PAYLOAD_MB": str(job_config.max_payload_mb),
                "MAX_CONCURRENT_TRANSFORMS": str(job_config.max_concurrent_transforms),
                "INVOCATION_TIMEOUT_SECONDS": str(job_config.invocation_timeout_seconds),
                "LOOKBACK_HOURS": str(job_config.lookback_hours),
                "METRIC_NAMESPACE": namespace,
            },
            # Listing a large input prefix page by page.
            timeout=Duration.minutes(5),
        )
        starter = self.start_function.role
        starter.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{input_prefix}/*"]}},
            )
        )
        starter.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[bucket.arn_for_objects(f"{output_prefix}/{MANIFEST_PATTERN}")],
            )
        )
        encryption_key.grant_encrypt(starter)
        approved_model.grant_read(starter)
        state_table.grant_read_write_data(starter)
        self.job_arn_pattern = stack.format_arn(
            service="sagemaker",
            resource="transform-job",
            resource_name=f"{self.job_name_prefix.lower()}*",
        )
        self.model_arn_pattern = stack.format_arn(
            service="sagemaker", resource="model", resource_name=f"{name_prefix.lower()}-batch-v*"
        )
        starter.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:CreateTransformJob"],
                resources=[self.job_arn_pattern],
                # Only this environment's batch models, on the configured instance type, with
                # outputs and volumes under the environment's key (the service authorization
                # reference's condition keys for CreateTransformJob).
                conditions={
                    "ForAllValues:StringEquals": {
                        "sagemaker:InstanceTypes": [settings.instance_type]
                    },
                    "ArnLike": {"sagemaker:ModelArn": self.model_arn_pattern},
                    "ArnEquals": {
                        "sagemaker:VolumeKmsKeyArn": encryption_key.key_arn,
                        "sagemaker:OutputKmsKeyArn": encryption_key.key_arn,
                    },
                },
            )
        )
        # Tagging on create is authorised as AddTags, which has none of the keys above.
        starter.add_to_principal_policy(
            iam.PolicyStatement(actions=["sagemaker:AddTags"], resources=[self.job_arn_pattern])
        )
        starter.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModel"], resources=[self.model_arn_pattern]
            )
        )

        starter.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": namespace}},
            )
        )

        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            ),
            description=f"Lets EventBridge Scheduler start {name_prefix}'s batch runs",
        )
        self.schedule = scheduler.Schedule(
            self,
            "Schedule",
            description=f"Scores new files under {input_prefix}/ with {name_prefix}'s model",
            schedule=scheduler.ScheduleExpression.expression(settings.schedule.eventbridge),
            target=scheduler_targets.LambdaInvoke(
                self.start_function.function,
                input=scheduler.ScheduleTargetInput.from_object(
                    {"scheduled_time": scheduler.ContextAttribute.scheduled_time}
                ),
                retry_attempts=2,
                role=self.scheduler_role,
            ),
        )

        self.heartbeat_schedule = scheduler.Schedule(
            self,
            "HeartbeatSchedule",
            description=f"Hourly heartbeat of {name_prefix}'s batch runs (hours since the last)",
            schedule=scheduler.ScheduleExpression.rate(Duration.hours(1)),
            target=scheduler_targets.LambdaInvoke(
                self.start_function.function,
                input=scheduler.ScheduleTargetInput.from_object({"heartbeat": True}),
                retry_attempts=2,
                role=self.scheduler_role,
            ),
        )
        self.namespace = namespace
        limit_hours = 2 * settings.schedule.period.total_seconds() / 3600
        self.stale_alarm = cloudwatch.Alarm(
            self,
            "StaleAlarm",
            alarm_name=f"{name_prefix}-batch-stale",
            alarm_description=(
                f"No batch run of {name_prefix} completed in two schedule periods "
                f"({limit_hours:g} h): runs keep failing (see the start function's log group) "
                "or the schedule or its hourly heartbeat stopped; files are not being scored"
            ),
            metric=self.metric_hours_since_batch_run(),
            threshold=limit_hours,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            # No heartbeat is itself a failure (the scheduler or the function stopped).
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        self.stale_alarm.add_alarm_action(cloudwatch_actions.SnsAction(notifications))

        reasons = {
            self.role: (
                "Reads objects only under the model-archive keys "
                f"({', '.join(MODEL_DATA_KEY_PATTERNS)}"
                + ("; only archives approved in this environment" if approved_models_only else "")
                + f"), under {input_prefix}/* (the files a run's manifest lists) and the runs' "
                f"manifests ({output_prefix}/{MANIFEST_PATTERN}); writes only under "
                f"{output_prefix}/{SCORED_PATTERN}; KMS data-key actions on the one key (CDK's "
                "grant); pulls from the one image repository (ecr:GetAuthorizationToken has no "
                "resource); the transform jobs' log group; PutMetricData has no resource type "
                "and is limited to /aws/sagemaker/TransformJobs."
            ),
            self.start_function: (
                f"Lists the bucket under {input_prefix}/* only (s3:prefix condition); writes "
                f"only run manifests ({output_prefix}/{MANIFEST_PATTERN}); creates and tags "
                f"transform jobs named {self.job_name_prefix}* (on the configured instance "
                "type, this environment's batch models and the one key, by condition) and "
                "describes this environment's batch models only; KMS data-key actions on the "
                "one key; its own log streams; PutMetricData has no resource type (our "
                "namespace only, by condition)."
            ),
            self.scheduler_role: (
                "Invokes the start function and its versions (CDK's grant, hence ':*')."
            ),
        }
        for construct, reason in reasons.items():
            NagSuppressions.add_resource_suppressions(
                construct,
                [NagPackSuppression(id="AwsSolutions-IAM5", reason=reason)],
                apply_to_children=True,
            )

    def metric_hours_since_batch_run(self) -> cloudwatch.Metric:
        """Hours since a batch run last completed (the hourly heartbeat's, Maximum per hour)."""
        return cloudwatch.Metric(
            namespace=self.namespace,
            metric_name=HOURS_SINCE_BATCH_RUN,
            dimensions_map={"EndpointName": self.name_prefix},
            statistic="Maximum",
            period=Duration.hours(1),
        )

    @property
    def model_name_prefix(self) -> str:
        """What every batch model's name starts with (``<prefix>-batch-v<version>``)."""
        return f"{self.name_prefix}-batch-v"

    @property
    def input_prefix(self) -> str:
        return self.settings.input_prefix.rstrip("/")

    @property
    def output_prefix(self) -> str:
        return self.settings.output_prefix.rstrip("/")
