"""One CloudWatch dashboard per endpoint: traffic, errors, latency, drift and live quality."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from cdk.monitoring.monitors import ModelMonitors
from cdk.serving.endpoint import ModelEndpoint


class MonitoringDashboard(Construct):
    """Charts an endpoint's service metrics and, when given, its monitors' metrics and alarms.

    :param endpoint: the endpoint.
    :param monitors: its drift and quality monitors. Default: service metrics only.
    :param dashboard_name: default ``<endpoint name>``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        endpoint: ModelEndpoint,
        monitors: ModelMonitors | None = None,
        dashboard_name: str | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=dashboard_name or endpoint.endpoint_name,
            default_interval=Duration.days(7),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Invocations", left=[endpoint.metric_invocations()], width=8
            ),
            cloudwatch.GraphWidget(
                title="Errors",
                left=[
                    endpoint.metric_invocation_5xx_errors(),
                    endpoint.metric_invocation_4xx_errors(),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Model latency (microseconds)",
                left=[endpoint.metric_model_latency()],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Rollback alarms", alarms=list(endpoint.rollback_alarms), width=24
            )
        )
        if monitors is None:
            return
        quality = []
        if monitors.quality_alarm is not None:
            quality.append(
                cloudwatch.GraphWidget(
                    title=f"Live {monitors.settings.primary_metric}",
                    left=[monitors.metric_live(monitors.settings.primary_metric)],
                    left_annotations=[
                        cloudwatch.HorizontalAnnotation(
                            value=monitors.settings.min_live_metric, label="min_live_metric"
                        )
                    ],
                    width=8,
                )
            )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Drift grade (0 none, 1 moderate, 2 major) and dataset drift (1 = major)",
                left=[monitors.metric_drift_grade(), monitors.metric_dataset_drift()],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Share of drifted features",
                left=[monitors.metric_share_drifted_features()],
                width=8,
            ),
            *quality,
        )
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Monitor alarms",
                alarms=[
                    *monitors.alarms,
                    monitors.moderate_drift_alarm,
                    monitors.job_failed_alarm,
                    *monitors.heartbeat_alarms.values(),
                ],
                width=24,
            )
        )
