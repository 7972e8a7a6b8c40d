"""Monitoring on AWS: our drift and quality monitors, the retrain loop, Model Monitor (optional), the dashboard."""

from cdk.monitoring.dashboard import MonitoringDashboard
from cdk.monitoring.model_monitor import DataQualityMonitorSchedule
from cdk.monitoring.monitors import ModelMonitors
from cdk.monitoring.retrain import RetrainLoop, RetrainReceiver
from cdk.monitoring.settings import ModelMonitorSettings, MonitorSettings

__all__ = [
    "DataQualityMonitorSchedule",
    "ModelMonitorSettings",
    "ModelMonitors",
    "MonitorSettings",
    "MonitoringDashboard",
    "RetrainLoop",
    "RetrainReceiver",
]
