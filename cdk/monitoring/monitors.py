"""Our own model monitors: scheduled drift and model-quality jobs, their metrics and alarms.

EventBridge Scheduler invokes a small function on each monitor's schedule; it starts a
SageMaker Processing job in the one mlcore image over the captured data since the last
run (:mod:`pipelines.monitoring.jobs`), or, for drift with ``monitoring.engine`` spark
(or auto and a large window), a PySpark processing job on the Spark monitor image
(:mod:`cdk.monitoring.spark_image`) sized by ``spark_instance_count``/``spark_instance_type``.
With ``drift.reference.mode`` previous_window or same_period_last_year the job also
receives the captured data of the reference window; synth checks that the capture bucket
keeps captures that long (:mod:`cdk.monitoring.capture_retention`). Nothing runs between runs. When a job ends, an
EventBridge rule hands it to a publisher (:mod:`pipelines.monitoring.publish`) that turns
the report into CloudWatch metrics; three alarms watch them:

- data drift: ``DatasetDrift`` reached 1 (the share of drifted features passed
  ``drift.dataset_drift_share`` in mlops.yaml);
- model quality: the live primary metric fell below ``monitoring.min_live_metric``;
- moderate drift: ``DriftGrade`` reached 1 (moderate): people are told, nothing retrains;
- monitor failed: a monitor job failed, so silence is not mistaken for health;
- heartbeat (one per monitor): no run completed in two schedule periods, measured by an
  hourly heartbeat invocation (``HoursSinceMonitorRun``; a missing heartbeat breaches too).

The data-drift alarm (major drift) and the quality alarm are the ones the retrain loop
acts on. Alarm periods follow the schedules (one period, at most CloudWatch's one day).

Reports land in ``s3://<reports bucket>/<reports_prefix>/<monitor>/yyyy/mm/dd/hh/report/``
(``drift_report.json``, ``drift_report.html``, ``constraint_violations.json``,
``statistics.json``; or ``quality_report.json`` and ``evaluation.json``). Ground truth is
read from ``s3://<reports bucket>/<ground_truth_prefix>/yyyy/mm/dd/hh/``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from cdk.monitoring.capture_retention import CaptureRetentionCheck
from cdk.monitoring.settings import MonitorSettings
from cdk.monitoring.spark_image import SparkMonitorImage
from cdk.serving.approved_model import ApprovedModelParameter
from cdk.serving.endpoint import MODEL_DATA_KEY_PATTERNS, ModelEndpoint
from cdk.serving.functions import ControlPlaneFunction
from cdk.settings_artifact import SettingsArtifact, SettingsSource
from pipelines.monitoring import metrics as names
from pipelines.monitoring.jobs import job_name_prefix

# CloudWatch: an alarm's period is a multiple of 60 s, and one period may span one day at most.
_MAX_ALARM_PERIOD = timedelta(days=1)


def _grant_prefixes(role: iam.IRole, reads: Iterable[tuple[s3.IBucket, str]]) -> None:
    """Read objects under each (bucket, key pattern), and list each bucket under those only."""
    by_bucket: dict[s3.IBucket, list[str]] = {}
    for bucket, pattern in reads:
        by_bucket.setdefault(bucket, []).append(pattern)
    for bucket, patterns in by_bucket.items():
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(p) for p in patterns],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": patterns}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetBucketLocation"], resources=[bucket.bucket_arn])
        )


def _alarm_period(schedule_period: timedelta) -> Duration:
    """One schedule period, capped at one day, in whole minutes."""
    return Duration.minutes(max(1, _minutes(min(schedule_period, _MAX_ALARM_PERIOD))))


def _minutes(period: timedelta) -> int:
    return int(period.total_seconds() // 60)


class ModelMonitors(Construct):
    """Drift and model-quality monitors for one endpoint, with their alarms.

    :param endpoint: the monitored endpoint (it must capture data: not serverless).
    :param approved_model: the parameter naming the package the endpoint serves; the jobs
        read the drift baseline from that package's model artifact.
    :param model_package_group_name: the registry group of those packages.
    :param image_uri: the mlcore image (``ENTRYPOINT ["mlcore"]``) the jobs run.
    :param image_repository: the ECR repository holding that image.
    :param encryption_key: the key of the captured data, model artifacts and reports.
    :param model_bucket: holds the model artifacts.
    :param reports_bucket: receives the reports and holds the ground truth.
    :param settings_file: the ``mlops.yaml`` the jobs read their thresholds from.
    :param settings: schedules, floors and job sizes.
    :param state_table: keeps each monitor's last analysed hour.
    :param notifications: receives every alarm.
    :param namespace: the CloudWatch namespace of the published metrics. Default: ``MLOps``.
    :param reports_prefix: default ``monitoring/<endpoint name>``.
    :param ground_truth_prefix: default ``ground-truth/<endpoint name>``.
    :param log_key: encrypts the functions' logs. Default: AWS-owned keys.
    :param removal_policy: of the functions' log groups. Default: destroyed with the stack.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        endpoint: ModelEndpoint,
        approved_model: ApprovedModelParameter,
        model_package_group_name: str,
        image_uri: str,
        image_repository: ecr.IRepository,
        encryption_key: kms.IKey,
        model_bucket: s3.IBucket,
        reports_bucket: s3.IBucket,
        settings_file: str | Path,
        settings: MonitorSettings,
        state_table: dynamodb.ITable,
        notifications: sns.ITopic,
        namespace: str = "MLOps",
        reports_prefix: str | None = None,
        ground_truth_prefix: str | None = None,
        log_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, id_)
        if not endpoint.settings.captures_data:
            raise ValueError(
                f"endpoint {endpoint.endpoint_name} is serverless and captures no data, so it "
                "cannot be monitored; give it instances (EndpointSettings.serverless=None) or "
                "leave the monitors out for this environment"
            )
        if not Path(settings_file).is_absolute() or not Path(settings_file).is_file():
            raise ValueError(
                f"settings_file {settings_file} must be the absolute path of an existing "
                "mlops.yaml (resolved from the repository root, as the model-build jobs' is)"
            )
        stack = Stack.of(self)
        self.endpoint = endpoint
        self.settings = settings
        self.namespace = namespace
        name = endpoint.endpoint_name
        self.reports_prefix = reports_prefix or f"monitoring/{name}"
        self.ground_truth_prefix = ground_truth_prefix or f"ground-truth/{name}"
        self.reports_bucket = reports_bucket

        # The same file as the model-build jobs' (same bytes, same asset object).
        settings_asset = SettingsArtifact(
            self, "Settings", source=SettingsSource.from_file(settings_file)
        )

        self.job_role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Runs the drift and quality jobs of {name}",
        )
        # The job reads exactly these prefixes (SageMaker lists an S3Prefix input, the model
        # archive, before it downloads it; the Spark engine lists the capture) and writes its
        # report under the reports prefix.
        self.job_reads = {
            "capture": (endpoint.capture_bucket, f"{endpoint.capture_prefix}/{name}/*"),
            "ground truth": (reports_bucket, f"{self.ground_truth_prefix}/*"),
            "reports and manifests": (reports_bucket, f"{self.reports_prefix}/*"),
            **{
                f"model archives {pattern}": (model_bucket, pattern)
                for pattern in MODEL_DATA_KEY_PATTERNS
            },
        }
        _grant_prefixes(self.job_role, self.job_reads.values())
        self.job_role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[reports_bucket.arn_for_objects(f"{self.reports_prefix}/*")],
            )
        )
        settings_asset.grant_read(self.job_role)
        encryption_key.grant_encrypt_decrypt(self.job_role)
        image_repository.grant_pull(self.job_role)
        self.job_role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws/sagemaker/ProcessingJobs:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )

        # Only environments that may run Spark build and hold the (large) Spark image.
        self.spark_image: SparkMonitorImage | None = None
        spark_environment: dict[str, str] = {}
        if settings.engine != "streaming":
            self.spark_image = SparkMonitorImage(self, "SparkImage")
            self.spark_image.repository.grant_pull(self.job_role)
            spark_environment = {
                "SPARK_IMAGE_URI": self.spark_image.image_uri,
                "SPARK_INSTANCE_COUNT": str(settings.spark_instance_count),
                "SPARK_INSTANCE_TYPE": settings.spark_instance_type,
                "SPARK_MIN_CAPTURE_MB": f"{settings.spark_min_capture_mb:g}",
            }
        self.node.add_validation(
            CaptureRetentionCheck(
                self,
                bucket=endpoint.capture_bucket,
                capture_prefix=f"{endpoint.capture_prefix}/{name}/",
                settings=settings,
            )
        )

        job_arn_pattern = stack.format_arn(
            service="sagemaker", resource="processing-job", resource_name=f"{name.lower()}-*"
        )
        self.start_function = ControlPlaneFunction(
            self,
            "StartJob",
            handler="monitoring.jobs.handler",
            description=f"Starts a drift or quality job over {name}'s captured data",
            encryption_key=log_key,
            removal_policy=removal_policy,
            environment={
                "ENDPOINT_NAME": name,
                "VARIANT_NAME": endpoint.variant_name,
                "CAPTURE_S3_URI": endpoint.capture_bucket.s3_url_for_object(
                    endpoint.capture_prefix
                ),
                "REPORTS_S3_URI": reports_bucket.s3_url_for_object(self.reports_prefix),
                "GROUND_TRUTH_S3_URI": reports_bucket.s3_url_for_object(self.ground_truth_prefix),
                "MODEL_PACKAGE_PARAMETER": approved_model.parameter_name,
                "SETTINGS_S3_URI": settings_asset.s3_object_url,
                "IMAGE_URI": image_uri,
                "ROLE_ARN": self.job_role.role_arn,
                "STATE_TABLE": state_table.table_name,
                "KMS_KEY_ARN": encryption_key.key_arn,
                "INSTANCE_TYPE": settings.instance_type,
                "DRIFT_PERIOD_MINUTES": str(_minutes(settings.drift_period)),
                "QUALITY_PERIOD_MINUTES": str(_minutes(settings.quality_period)),
                "MAX_WINDOW_HOURS": str(settings.max_window_hours),
                "LABEL_DELAY_HOURS": str(settings.label_delay_hours),
                "MAX_RUNTIME_SECONDS": str(settings.max_runtime_minutes * 60),
                "VOLUME_SIZE_GB": str(settings.volume_size_gb),
                "METRIC_NAMESPACE": namespace,
                "REFERENCE_MODE": settings.reference_mode,
                "SEASONAL_OFFSET_DAYS": str(settings.seasonal_offset_days),
                "DRIFT_ENGINE": settings.engine,
                **spark_environment,
            },
            # A two-week window lists up to 336 hour folders.
            timeout=Duration.minutes(5),
        )
        starter = self.start_function.role
        endpoint.capture_bucket.grant_read(starter, f"{endpoint.capture_prefix}/{name}/*")
        reports_bucket.grant_read(starter, f"{self.ground_truth_prefix}/*")
        reports_bucket.grant_put(starter, f"{self.reports_prefix}/*")
        encryption_key.grant_encrypt_decrypt(starter)
        approved_model.grant_read(starter)
        state_table.grant_read_write_data(starter)
        self.job_role.grant_pass_role(starter)
        starter.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": namespace}},
            )
        )
        instance_types = sorted(
            {settings.instance_type}
            | ({settings.spark_instance_type} if self.spark_image else set())
        )
        starter.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:CreateProcessingJob"],
                resources=[job_arn_pattern],
                # Only on the configured instance types, with volumes and outputs under our key
                # (the service authorisation reference's condition keys for CreateProcessingJob).
                conditions={
                    "ForAllValues:StringEquals": {"sagemaker:InstanceTypes": instance_types},
                    "ArnEquals": {
                        # The ...Arn keys: AWS deprecated VolumeKmsKey/OutputKmsKey, and a key
                        # the action no longer has is absent, which would deny every job.
                        "sagemaker:VolumeKmsKeyArn": encryption_key.key_arn,
                        "sagemaker:OutputKmsKeyArn": encryption_key.key_arn,
                    },
                },
            )
        )
        # Tagging on create is authorised as AddTags, which has none of the keys above.
        starter.add_to_policy(
            iam.PolicyStatement(actions=["sagemaker:AddTags"], resources=[job_arn_pattern])
        )
        starter.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackage"],
                resources=[
                    stack.format_arn(
                        service="sagemaker",
                        resource="model-package",
                        resource_name=f"{model_package_group_name.lower()}/*",
                    )
                ],
            )
        )

        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            ),
            description=f"Lets EventBridge Scheduler start {name}'s monitor runs",
        )
        self.schedules: dict[str, scheduler.Schedule] = {}
        monitors = {"drift": settings.drift_schedule}
        if settings.quality_enabled:
            monitors["quality"] = settings.quality_schedule
        for monitor, expression in monitors.items():
            self.schedules[monitor] = scheduler.Schedule(
                self,
                f"{monitor.capitalize()}Schedule",
                description=f"Runs the {monitor} monitor of {name}",
                schedule=scheduler.ScheduleExpression.expression(expression.eventbridge),
                target=scheduler_targets.LambdaInvoke(
                    self.start_function.function,
                    input=scheduler.ScheduleTargetInput.from_object(
                        {
                            "monitor": monitor,
                            "scheduled_time": scheduler.ContextAttribute.scheduled_time,
                        }
                    ),
                    retry_attempts=2,
                    role=self.scheduler_role,
                ),
            )
        self.heartbeat_schedule = scheduler.Schedule(
            self,
            "HeartbeatSchedule",
            description=f"Hourly heartbeat of {name}'s monitors (hours since each last ran)",
            schedule=scheduler.ScheduleExpression.rate(Duration.hours(1)),
            target=scheduler_targets.LambdaInvoke(
                self.start_function.function,
                input=scheduler.ScheduleTargetInput.from_object(
                    {"heartbeat": True, "monitors": list(monitors)}
                ),
                retry_attempts=2,
                role=self.scheduler_role,
            ),
        )

        self.publish_function = ControlPlaneFunction(
            self,
            "PublishMetrics",
            handler="monitoring.publish.handler",
            description=f"Publishes {name}'s monitor reports as CloudWatch metrics",
            encryption_key=log_key,
            removal_policy=removal_policy,
            environment={"METRIC_NAMESPACE": namespace, "STATE_TABLE": state_table.table_name},
        )
        publisher = self.publish_function.role
        state_table.grant_read_write_data(publisher)
        reports_bucket.grant_read(publisher, f"{self.reports_prefix}/*")
        encryption_key.grant_decrypt(publisher)
        publisher.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeProcessingJob"], resources=[job_arn_pattern]
            )
        )
        publisher.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": namespace}},
            )
        )
        self.job_ended_rule = events.Rule(
            self,
            "OnJobEnded",
            description=f"Publishes the metrics of {name}'s monitor jobs when they end",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Processing Job State Change"],
                detail={
                    # The same prefix job_name_for builds names from (endpoint names are cut
                    # to fit SageMaker's 63 characters, differently per monitor).
                    "ProcessingJobName": [
                        {"prefix": job_name_prefix(name, monitor)}  # type: ignore[arg-type]
                        for monitor in monitors
                    ],
                    "ProcessingJobStatus": ["Completed", "Failed", "Stopped"],
                },
            ),
            targets=[
                events_targets.LambdaFunction(self.publish_function.function, retry_attempts=2)
            ],
        )

        alarm_action = cloudwatch_actions.SnsAction(notifications)
        self.drift_alarm = cloudwatch.Alarm(
            self,
            "DriftAlarm",
            alarm_name=f"{name}-data-drift",
            alarm_description=(
                "Data drift: the share of drifted features reached drift.dataset_drift_share "
                f"(mlops.yaml). Reports: {self.reports_prefix}/drift/ in the artifact bucket"
            ),
            metric=self.metric_dataset_drift(),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.alarms: list[cloudwatch.Alarm] = [self.drift_alarm]
        # Moderate drift tells people and starts nothing (contract: alerts act on moderate,
        # the retrain trigger on major), so it is not in self.alarms.
        self.moderate_drift_alarm = cloudwatch.Alarm(
            self,
            "ModerateDriftAlarm",
            alarm_name=f"{name}-drift-moderate",
            alarm_description=(
                "Drift graded moderate or worse in the last drift run (DriftGrade >= 1); no "
                f"retrain is started for moderate drift. Reports: {self.reports_prefix}/drift/"
            ),
            metric=self._metric(names.DRIFT_GRADE, {}, "Maximum", self._drift_period()),
            threshold=names.GRADE_VALUES["moderate"],
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.quality_alarm: cloudwatch.Alarm | None = None
        if settings.quality_enabled:
            self.quality_alarm = cloudwatch.Alarm(
                self,
                "QualityAlarm",
                alarm_name=f"{name}-model-quality",
                alarm_description=(
                    f"Live {settings.primary_metric} on labelled traffic fell below "
                    f"monitoring.min_live_metric ({settings.min_live_metric}, mlops.yaml)"
                ),
                metric=self.metric_live(settings.primary_metric),
                threshold=settings.min_live_metric,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            self.alarms.append(self.quality_alarm)
        self.job_failed_alarm = cloudwatch.Alarm(
            self,
            "JobFailedAlarm",
            alarm_name=f"{name}-monitor-failed",
            alarm_description="A drift or quality monitor job failed: the model is not being watched",
            metric=cloudwatch.MathExpression(
                expression="SUM(METRICS())",
                using_metrics={
                    m: self._metric(
                        names.MONITOR_JOB_FAILED,
                        {"Monitor": m},
                        "Sum",
                        self._drift_period(),
                    )
                    for m in monitors
                },
                period=self._drift_period(),
            ),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.heartbeat_alarms: dict[str, cloudwatch.Alarm] = {}
        periods = {"drift": settings.drift_period, "quality": settings.quality_period}
        for monitor in monitors:
            limit_hours = 2 * periods[monitor].total_seconds() / 3600
            self.heartbeat_alarms[monitor] = cloudwatch.Alarm(
                self,
                f"{monitor.capitalize()}HeartbeatAlarm",
                alarm_name=f"{name}-{monitor}-monitor-stale",
                alarm_description=(
                    f"No {monitor} monitor run completed in two schedule periods "
                    f"({limit_hours:g} h), or the hourly heartbeat stopped: the model is not "
                    "being watched"
                ),
                metric=self._metric(
                    names.HOURS_SINCE_MONITOR_RUN,
                    {"Monitor": monitor},
                    "Maximum",
                    Duration.hours(1),
                ),
                threshold=limit_hours,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=2,
                datapoints_to_alarm=2,
                # No heartbeat is itself a failure (the scheduler or the function stopped).
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            )
        for alarm in (
            *self.alarms,
            self.moderate_drift_alarm,
            self.job_failed_alarm,
            *self.heartbeat_alarms.values(),
        ):
            alarm.add_alarm_action(alarm_action)

        job_prefixes = ", ".join(pattern for _, pattern in self.job_reads.values())
        reasons = {
            self.job_role: (
                f"Reads objects under {job_prefixes} (ListBucket limited to those prefixes by "
                f"condition) and writes under {self.reports_prefix}/*; KMS data-key actions on "
                "the one key; the processing jobs' log streams; ecr:GetAuthorizationToken has "
                "no resource type."
            ),
            self.start_function: (
                f"Reads objects under {endpoint.capture_prefix}/{name}/* and "
                f"{self.ground_truth_prefix}/* and writes under {self.reports_prefix}/* (CDK's "
                "grants, which also list the bucket); versions of the one model package group; "
                "jobs named after this endpoint; KMS data-key actions on the one key; its own "
                "log streams; PutMetricData has no resource type (our namespace only, by "
                "condition)."
            ),
            self.publish_function: (
                f"Reads objects under {self.reports_prefix}/* (CDK's grant, which also lists "
                "the bucket); its own log streams; PutMetricData has no resource type (our "
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

    def _drift_period(self) -> Duration:
        return _alarm_period(self.settings.drift_period)

    def _quality_period(self) -> Duration:
        return _alarm_period(self.settings.quality_period)

    def _metric(
        self, metric_name: str, extra: dict[str, str], statistic: str, period: Duration
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self.namespace,
            metric_name=metric_name,
            dimensions_map={"EndpointName": self.endpoint.endpoint_name, **extra},
            statistic=statistic,
            period=period,
        )

    def metric_dataset_drift(self) -> cloudwatch.Metric:
        """1 when the last drift run found dataset drift (graded major), else 0 (Maximum)."""
        return self._metric(names.DATASET_DRIFT, {}, "Maximum", self._drift_period())

    def metric_drift_grade(self) -> cloudwatch.Metric:
        """The last drift run's grade: 0 none, 1 moderate, 2 major (Maximum over the period)."""
        return self._metric(names.DRIFT_GRADE, {}, "Maximum", self._drift_period())

    def metric_share_drifted_features(self) -> cloudwatch.Metric:
        return self._metric(names.SHARE_DRIFTED_FEATURES, {}, "Maximum", self._drift_period())

    def metric_feature_drift_statistic(self, feature: str) -> cloudwatch.Metric:
        return self._metric(
            names.FEATURE_DRIFT_STATISTIC, {"Feature": feature}, "Maximum", self._drift_period()
        )

    def metric_live(self, metric: str) -> cloudwatch.Metric:
        """A live model metric on labelled traffic (e.g. ``auc``), Minimum over the period."""
        return self._metric(
            names.quality_metric_name(metric), {}, "Minimum", self._quality_period()
        )

    def grant_write_ground_truth(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let a label producer write ground truth where the quality monitor reads it."""
        return self.reports_bucket.grant_put(grantee, f"{self.ground_truth_prefix}/*")
