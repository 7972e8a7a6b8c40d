"""A SageMaker endpoint for an approved model package, updated blue/green with auto-rollback.

The model comes from a model package (its image and model data, as approved in the
registry); the serving container runs ``mlcore serve`` (SageMaker's inference contract).
Every update of the endpoint (a new approved package) is a blue/green deployment that
shifts traffic canary, linear or all at once and rolls back by itself when a rollback
alarm fires: 5XX errors, model latency, and any alarm the caller adds.

On instances: the ML storage volume and captured data are encrypted with the given
customer-managed key, data capture writes request and response pairs to
``s3://<capture bucket>/<capture_prefix>/<endpoint>/AllTraffic/yyyy/mm/dd/hh/``, and
target tracking scales the variant on invocations per instance (through Application Auto
Scaling's service-linked role, so that creating the endpoint creates no IAM role).
Serverless (for dev) has neither capture nor instance scaling; SageMaker supports neither
there.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, CfnCondition, CfnResource, Duration, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from cdk.network import StageNetwork
from cdk.serving.settings import EndpointSettings
from mlcore.serve.defaults import SERVING_ENV
from pipelines.deploy.approval import APPROVAL_TAG, APPROVAL_TAG_VALUE

SAGEMAKER_NAMESPACE = "AWS/SageMaker"
# The env var the serving container checks model.joblib against (contract #1).
MODEL_SHA256_ENV = "MLCORE_MODEL_SHA256"
# Where model archives live in an environment's artifact bucket: trained by its own
# model-build pipeline (model-build/<execution>/model/...) or promoted into it by the release
# (promoted/<group>/<version>/model/model.tar.gz). The endpoint may read these and nothing else.
MODEL_DATA_KEY_PATTERNS = ("model-build/*/model/*", "promoted/*/model/*")
#: The role Application Auto Scaling scales SageMaker variants with (path and name under
#: ``role/aws-service-role/``); it creates the role on first use.
SCALING_SERVICE_LINKED_ROLE = (
    "sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)


def endpoint_role_name(endpoint_name: str) -> str:
    """The execution role's name in a stage with a network."""
    return f"{endpoint_name}-serving"[:64]


class ModelEndpoint(Construct):
    """An endpoint serving one model package with safe, alarm-guarded updates.

    :param settings: capacity, capture, traffic shifting and rollback thresholds.
    :param model_package_arn: the approved model package to serve (a versioned package ARN;
        a CloudFormation parameter value is fine).
    :param model_sha256: ``sha256:<hex>`` of the package's model file, set on the model as
        ``MLCORE_MODEL_SHA256`` so the container refuses any other file (a parameter value is
        fine).
    :param encryption_key: encrypts the instance volumes and the captured data.
    :param capture_bucket: receives the captured requests and responses.
    :param model_bucket: holds the model data the package points to; the endpoint may read
        only the keys matching ``MODEL_DATA_KEY_PATTERNS``.
    :param image_repository: the ECR repository of the serving image. Default: the
        endpoint may pull from no repository of this account (use for SageMaker's own images).
    :param extra_rollback_alarms: alarms that also roll a deployment back. Default: only the
        5XX and latency alarms this construct creates.
    :param condition: create the model, endpoint and scaling only when this condition holds
        (the serving stack uses it until a first model is approved). Default: always.
    :param approved_models_only: the endpoint reads a model archive only once a person has
        approved its package in this environment (the approval recorder's tag,
        :mod:`pipelines.deploy.approval`). Default: any archive under the model keys.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: EndpointSettings,
        model_package_arn: str,
        model_sha256: str,
        encryption_key: kms.IKey,
        capture_bucket: s3.IBucket,
        model_bucket: s3.IBucket,
        image_repository: ecr.IRepository | None = None,
        extra_rollback_alarms: Sequence[cloudwatch.IAlarm] = (),
        condition: CfnCondition | None = None,
        approved_models_only: bool = False,
    ) -> None:
        super().__init__(scope, id_)
        self.settings = settings
        self.endpoint_name = settings.endpoint_name
        self.variant_name = settings.variant_name
        self.capture_bucket = capture_bucket
        self.capture_prefix = settings.capture_prefix
        stack = Stack.of(self)
        network = StageNetwork.of(self)

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Runs the {settings.endpoint_name} endpoint's serving container",
            # Named in a stage with a network: its buckets admit this role by name
            # (cdk.artifact_store.ArtifactStore.deny_outside_network).
            role_name=endpoint_role_name(settings.endpoint_name) if network is not None else None,
        )
        if approved_models_only:
            # Only archives the environment's approval recorder tagged (a person approved the
            # package there): nothing else can make this endpoint serve a model.
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:GetObject", "s3:GetObjectVersion"],
                    resources=[model_bucket.arn_for_objects(p) for p in MODEL_DATA_KEY_PATTERNS],
                    conditions={
                        "StringEquals": {f"s3:ExistingObjectTag/{APPROVAL_TAG}": APPROVAL_TAG_VALUE}
                    },
                )
            )
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:GetBucket*", "s3:List*"], resources=[model_bucket.bucket_arn]
                )
            )
        else:
            for pattern in MODEL_DATA_KEY_PATTERNS:
                model_bucket.grant_read(self.role, pattern)
        if settings.captures_data:
            capture_bucket.grant_put(self.role, f"{settings.capture_prefix}/*")
        encryption_key.grant_encrypt_decrypt(self.role)
        if image_repository is not None:
            image_repository.grant_pull(self.role)
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name=f"/aws/sagemaker/Endpoints/{settings.endpoint_name}:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}},
            )
        )
        # In a stage with a network, the instances' network interfaces are in its subnets.
        vpc_access = network.grant_network_interfaces(self.role) if network is not None else None
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason=(
                        "Reads objects only under the artifact bucket's model-archive keys "
                        f"({', '.join(MODEL_DATA_KEY_PATTERNS)}: archive names are set at "
                        "training or promotion time"
                        + (
                            "; only archives approved in this environment"
                            if approved_models_only
                            else ""
                        )
                        + "), and lists and reads the configuration of that one bucket; "
                        + (
                            f"writes captured data only under {settings.capture_prefix}/*; "
                            if settings.captures_data
                            else ""
                        )
                        + "uses the one data key (GenerateDataKey*/ReEncrypt* are CDK's grant "
                        "on that key); pulls from the one image repository "
                        "(ecr:GetAuthorizationToken has no resource); writes log streams of "
                        "this endpoint's log group only; PutMetricData has no resource type and "
                        "is limited to the /aws/sagemaker/Endpoints namespace."
                    ),
                )
            ],
            apply_to_children=True,
        )

        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            # CreateModel takes an environment beside a package name (the SageMaker Python
            # SDK's ModelPackage passes both): serving verifies the model file against it.
            containers=[
                sagemaker.CfnModel.ContainerDefinitionProperty(
                    model_package_name=model_package_arn,
                    environment={
                        MODEL_SHA256_ENV: model_sha256,
                        # The container has no mlops.yaml: its serving timeouts come from here.
                        SERVING_ENV: settings.serving.model_dump_json(),
                    },
                )
            ],
            # Instances need no network: SageMaker fetches the model data for the container.
            # Serverless inference lists network isolation among its unsupported features
            # ("Feature exclusions", docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html).
            enable_network_isolation=True if settings.serverless is None else None,
            vpc_config=sagemaker.CfnModel.VpcConfigProperty(
                security_group_ids=network.job_security_group_ids, subnets=network.subnet_ids
            )
            if network is not None
            else None,
        )
        # SageMaker checks at CreateModel that the role can read the model data and image.
        policy = self.role.node.try_find_child("DefaultPolicy")
        if policy is not None:
            self.model.node.add_dependency(policy)
        if vpc_access is not None:
            self.model.node.add_dependency(vpc_access)

        self.alarm_5xx = cloudwatch.Alarm(
            self,
            "Errors5xxAlarm",
            alarm_name=f"{settings.endpoint_name}-5xx-errors",
            alarm_description="Rolls back a deployment (and pages) when the share of requests "
            "answered 5XX exceeds rollback_alarms.max_5xx_rate",
            metric=self.metric_invocation_5xx_rate(),
            threshold=settings.rollback_alarms.max_5xx_rate,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=settings.rollback_alarms.evaluation_minutes,
            datapoints_to_alarm=settings.rollback_alarms.evaluation_minutes,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.alarm_latency = cloudwatch.Alarm(
            self,
            "LatencyAlarm",
            alarm_name=f"{settings.endpoint_name}-model-latency",
            alarm_description="Rolls back a deployment (and pages) when the 99th percentile "
            "of model latency exceeds rollback_alarms.max_p99_latency_ms",
            metric=self.metric_model_latency(statistic="p99"),
            # ModelLatency is reported in microseconds.
            threshold=settings.rollback_alarms.max_p99_latency_ms * 1000,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=settings.rollback_alarms.evaluation_minutes,
            datapoints_to_alarm=settings.rollback_alarms.evaluation_minutes,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.rollback_alarms: list[cloudwatch.IAlarm] = [
            self.alarm_5xx,
            self.alarm_latency,
            *extra_rollback_alarms,
        ]

        serverless = settings.serverless
        # Serverless capacity, or instances: the property takes one or the other (jsii leaves
        # out a field given as None).
        variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
            variant_name=self.variant_name,
            model_name=self.model.attr_model_name,
            initial_variant_weight=1,
            serverless_config=None
            if serverless is None
            else sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                memory_size_in_mb=serverless.memory_size_mb,
                max_concurrency=serverless.max_concurrency,
            ),
            instance_type=settings.instance_type if serverless is None else None,
            initial_instance_count=settings.initial_instance_count if serverless is None else None,
        )
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            production_variants=[variant],
            # Volume encryption: SageMaker rejects a key for serverless endpoints (no volume).
            kms_key_id=None if settings.serverless else encryption_key.key_arn,
            data_capture_config=self._data_capture(encryption_key),
        )
        # Unnamed on purpose: a new model needs a new config, which CloudFormation creates
        # under a fresh name before it switches the endpoint over (blue/green).
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=settings.endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            deployment_config=self._deployment_config(),
        )
        scaled = [self.model, self.endpoint_config, self.endpoint]
        self.scaling_target: appscaling.ScalableTarget | None = None
        if settings.serverless is None:
            self.scaling_target = self._autoscaling()
            # The target and its policy too: neither means anything without the endpoint.
            scaled.extend(
                child
                for child in self.scaling_target.node.find_all()
                if isinstance(child, CfnResource)
            )
        if condition is not None:
            for resource in scaled:
                resource.cfn_options.condition = condition

    def _data_capture(
        self, encryption_key: kms.IKey
    ) -> sagemaker.CfnEndpointConfig.DataCaptureConfigProperty | None:
        if not self.settings.captures_data:
            return None
        return sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
            enable_capture=True,
            initial_sampling_percentage=self.settings.capture_sampling_percentage,
            destination_s3_uri=self.capture_bucket.s3_url_for_object(self.settings.capture_prefix),
            kms_key_id=encryption_key.key_arn,
            capture_options=[
                sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
                sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output"),
            ],
            # Stored as text, so the monitors read CSV and JSON payloads without base64.
            capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                csv_content_types=["text/csv"], json_content_types=["application/json"]
            ),
        )

    def _deployment_config(self) -> sagemaker.CfnEndpoint.DeploymentConfigProperty:
        shifting = self.settings.traffic_shifting
        mode = "all_at_once" if self.settings.serverless else shifting.mode
        wait_seconds = shifting.wait_minutes * 60
        routing = {
            "canary": sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
                type="CANARY",
                canary_size=sagemaker.CfnEndpoint.CapacitySizeProperty(
                    type="CAPACITY_PERCENT", value=shifting.canary_percent
                ),
                wait_interval_in_seconds=wait_seconds,
            ),
            "linear": sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
                type="LINEAR",
                linear_step_size=sagemaker.CfnEndpoint.CapacitySizeProperty(
                    type="CAPACITY_PERCENT", value=shifting.linear_step_percent
                ),
                wait_interval_in_seconds=wait_seconds,
            ),
            "all_at_once": sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
                type="ALL_AT_ONCE", wait_interval_in_seconds=wait_seconds
            ),
        }[mode]
        return sagemaker.CfnEndpoint.DeploymentConfigProperty(
            blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
                traffic_routing_configuration=routing,
                termination_wait_in_seconds=shifting.termination_wait_minutes * 60,
                maximum_execution_timeout_in_seconds=shifting.max_deployment_minutes * 60,
            ),
            auto_rollback_configuration=sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
                alarms=[
                    sagemaker.CfnEndpoint.AlarmProperty(alarm_name=alarm.alarm_name)
                    for alarm in self.rollback_alarms
                ]
            ),
        )

    def _autoscaling(self) -> appscaling.ScalableTarget:
        stack = Stack.of(self)
        target = appscaling.ScalableTarget(
            self,
            "ScalingTarget",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{self.endpoint_name}/variant/{self.variant_name}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=self.settings.min_instances,
            max_capacity=self.settings.max_instances,
            # Given so that CDK creates no role of its own: an IAM role created with the
            # endpoint (on a release) would need IAM rights in the release's change role.
            role=iam.Role.from_role_arn(
                self,
                "ScalingServiceLinkedRole",
                stack.format_arn(
                    service="iam",
                    region="",
                    resource="role",
                    resource_name=f"aws-service-role/{SCALING_SERVICE_LINKED_ROLE}",
                ),
                mutable=False,
            ),
        )
        # Without RoleARN, Application Auto Scaling uses (and creates once per account) its
        # service-linked role for SageMaker variants (RegisterScalableTarget, "RoleARN").
        cfn_target = target.node.default_child
        assert isinstance(cfn_target, CfnResource)
        cfn_target.add_property_deletion_override("RoleARN")
        # Application Auto Scaling checks that the variant exists when the target is registered.
        cfn_target.node.add_dependency(self.endpoint)
        target.scale_to_track_metric(
            "InvocationsPerInstance",
            target_value=self.settings.target_invocations_per_instance,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_in_cooldown=Duration.seconds(self.settings.scale_in_cooldown_seconds),
            scale_out_cooldown=Duration.seconds(self.settings.scale_out_cooldown_seconds),
        )
        return target

    # Metrics, named after SageMaker's own metric names.

    def metric(self, metric_name: str, *, statistic: str = "Sum") -> cloudwatch.Metric:
        """A per-minute metric of this endpoint's variant in the AWS/SageMaker namespace."""
        return cloudwatch.Metric(
            namespace=SAGEMAKER_NAMESPACE,
            metric_name=metric_name,
            dimensions_map={"EndpointName": self.endpoint_name, "VariantName": self.variant_name},
            statistic=statistic,
            period=Duration.minutes(1),
        )

    def metric_invocations(self) -> cloudwatch.Metric:
        return self.metric("Invocations")

    def metric_invocation_5xx_errors(self) -> cloudwatch.Metric:
        return self.metric("Invocation5XXErrors")

    def metric_invocation_4xx_errors(self) -> cloudwatch.Metric:
        return self.metric("Invocation4XXErrors")

    def metric_invocation_5xx_rate(self) -> cloudwatch.MathExpression:
        """The share of invocations answered 5XX per minute (0 in a minute without traffic)."""
        return cloudwatch.MathExpression(
            expression="IF(invocations > 0, errors / invocations, 0)",
            using_metrics={
                "errors": self.metric("Invocation5XXErrors", statistic="Sum"),
                "invocations": self.metric("Invocations", statistic="Sum"),
            },
            label="5XX rate",
            period=Duration.minutes(1),
        )

    def metric_model_latency(self, *, statistic: str = "Average") -> cloudwatch.Metric:
        """Model latency in microseconds (``statistic``: Average, p99, ...)."""
        return self.metric("ModelLatency", statistic=statistic)

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow ``grantee`` to call InvokeEndpoint on this endpoint."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker:InvokeEndpoint"],
            resource_arns=[self.endpoint_arn],
        )

    @property
    def endpoint_arn(self) -> str:
        return Stack.of(self).format_arn(
            service="sagemaker", resource="endpoint", resource_name=self.endpoint_name.lower()
        )
