"""Every schedule that follows the live deployment, checked before traffic moves.

Three families of Azure ML schedules watch the live deployment: Azure's MonitorSchedule
(:mod:`mlops_azure.monitoring`), the model-performance job (:mod:`mlops_azure.performance`)
and, with ``monitoring.engine: spark | auto``, the Spark drift job
(:mod:`mlops_azure.drift_job`). Each family has one schedule per Azure trigger of
``monitoring.schedule``.

:meth:`MonitorPlan.check` builds them for a colour and runs the SDK's own conversion to the
REST body (``_to_rest_object``: where azure-ai-ml refuses a job type, a trigger or a window)
and the pipeline jobs' validation, offline. ``rollout`` and ``apply`` call it before they
change anything, so what can be refused is refused while traffic is where it was.
:meth:`MonitorPlan.apply` then sends the schedules and disables those of a family that the
settings no longer have (a schedule changed from weekdays to hourly leaves no second monitor).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from azure.ai.ml import MLClient
from azure.ai.ml.entities import Environment, JobSchedule, MonitorSchedule, PipelineJob
from rich.console import Console

from mlcore.errors import ConfigError
from mlcore.settings import MlopsSettings
from mlops_azure import assets
from mlops_azure.config import AzureEnvironment
from mlops_azure.definitions import asset_ref, stage_job_code
from mlops_azure.drift_job import build_drift_schedules, drift_schedule_name, stage_spark_code
from mlops_azure.endpoint import DEPLOYMENT_COLOURS
from mlops_azure.monitoring import build_monitor_schedules, monitor_schedule_name
from mlops_azure.performance import build_performance_schedule, performance_schedule_name
from mlops_azure.progress import wait_for
from mlops_azure.promote import RegistryModel
from mlops_azure.schedules import stale_names

Schedule = MonitorSchedule | JobSchedule


@dataclass(frozen=True)
class MonitorSchedules:
    """The schedules of one colour, by family (the family's base name)."""

    families: dict[str, list[Schedule]]

    def all(self) -> list[Schedule]:
        return [schedule for family in self.families.values() for schedule in family]


class MonitorPlan:
    """Builds, checks and applies the monitors of a model for the colour that serves it."""

    def __init__(
        self,
        env: AzureEnvironment,
        settings: MlopsSettings,
        *,
        model: RegistryModel,
        settings_file: Path,
        environment: Environment,
        work_dir: Path,
    ) -> None:
        self.env = env
        self.settings = settings
        self.model = model
        self.settings_data = assets.build_settings_data(settings, settings_file)
        self.environment = environment
        self.job_code = stage_job_code(work_dir / "job-code")
        self.spark_code = stage_spark_code(work_dir / "spark-code")

    def build(self, colour: str) -> MonitorSchedules:
        env, settings = self.env, self.settings
        settings_data = asset_ref(self.settings_data)
        return MonitorSchedules(
            {
                monitor_schedule_name(env, settings): list(
                    build_monitor_schedules(
                        env,
                        settings,
                        deployment_name=colour,
                        reference_data=self.model.prediction_reference,
                    )
                ),
                performance_schedule_name(env, settings): list(
                    build_performance_schedule(
                        env,
                        settings,
                        deployment_name=colour,
                        model=self.model.reference,
                        settings_data=settings_data,
                        environment=self.environment,
                        code_dir=self.job_code,
                    )
                ),
                drift_schedule_name(env, settings): list(
                    build_drift_schedules(
                        env,
                        settings,
                        deployment_name=colour,
                        reference_data=self.model.prediction_reference,
                        settings_data=settings_data,
                        code_dir=self.spark_code,
                    )
                ),
            }
        )

    def check(self) -> None:
        """Build every colour's schedules and convert them as the SDK will: offline.

        Raises
        ------
        ConfigError
            Naming each schedule the SDK refuses, and why.
        """
        problems = []
        for colour in DEPLOYMENT_COLOURS:
            for schedule in self.build(colour).all():
                try:
                    _check(schedule)
                except Exception as exc:
                    problems.append(f"{schedule.name}: {type(exc).__name__}: {exc}")
        if problems:
            raise ConfigError(
                "azure-ai-ml refuses the monitor schedules, so nothing was changed:\n  - "
                + "\n  - ".join(sorted(set(problems)))
            )

    def apply(self, client: MLClient, colour: str, *, console: Console) -> None:
        """Send the schedules watching ``colour``; disable the family members no longer set."""
        client.data.create_or_update(self.settings_data)
        schedules = self.build(colour)
        for schedule in schedules.all():
            wait_for(
                client.schedules.begin_create_or_update(schedule),
                f"{_kind(schedule)} {schedule.name} -> {colour}",
                console=console,
            )
        existing = [schedule.name for schedule in client.schedules.list()]
        for base, family in schedules.families.items():
            for name in stale_names(base, [s.name for s in family], existing):
                wait_for(client.schedules.begin_disable(name), f"{name} off", console=console)
        if not schedules.families[performance_schedule_name(self.env, self.settings)]:
            console.print("No model-performance job: data.ground_truth_path is not set")


def _check(schedule: Schedule) -> None:
    # ``schedule`` is built for the check alone: the conversion may fill in its defaults.
    if isinstance(schedule, JobSchedule) and isinstance(schedule.create_job, PipelineJob):
        result = schedule.create_job._validate()
        if not result.passed:
            raise ValueError(result.error_messages)
    schedule._to_rest_object()


def _kind(schedule: Schedule) -> str:
    return "Monitor" if isinstance(schedule, MonitorSchedule) else "Scheduled job"


def monitor_plan(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    model: RegistryModel,
    settings_file: Path,
    environment: Environment,
) -> tuple[MonitorPlan, Callable[[], None]]:
    """A plan with its staged code in a temporary folder, and the function that removes it."""
    tmp = tempfile.TemporaryDirectory(prefix="mlops-monitors-")
    plan = MonitorPlan(
        env,
        settings,
        model=model,
        settings_file=settings_file,
        environment=environment,
        work_dir=Path(tmp.name),
    )
    return plan, tmp.cleanup
