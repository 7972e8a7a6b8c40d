"""``monitoring.schedule`` as Azure ML schedules, and scheduled jobs in the form the SDK submits.

The schedule is parsed once, in mlcore (:class:`mlcore.schedule.Schedule`): every run judges
the hours since the firing before it, on AWS and Azure alike. Azure ML's triggers fire at the
same times (:meth:`~mlcore.schedule.Schedule.azure_triggers`), one Azure schedule per trigger:
a schedule with uneven gaps (weekdays only) gets one per gap, so the MonitorSchedule of each
reads exactly its gap as its production window.

A scheduled command or Spark job is submitted as the only step of a pipeline job: azure-ai-ml
1.35's ``JobSchedule._to_rest_object`` accepts a CommandJob or SparkJob only with the
private-preview flag ``AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED`` set, and Learn's schedule guide
schedules pipeline jobs (users do the same: MicrosoftDocs/azure-docs issue 119908). The
pipeline's string input ``trigger_time`` is ``${{creation_context.trigger_time}}``, which Azure
fills with the run's trigger time (Learn, "Use supported expressions in schedules"); the step
receives it as ``${{inputs.trigger_time}}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from azure.ai.ml.entities import CronTrigger, JobSchedule, PipelineJob, RecurrenceTrigger
from azure.ai.ml.entities._builders import BaseNode

from mlcore.errors import ConfigError
from mlcore.schedule import RATE_ANCHOR, AzureTrigger, Schedule

TRIGGER_TIME_INPUT = "trigger_time"
TRIGGER_TIME_EXPRESSION = "${{creation_context.trigger_time}}"
# What a step's trigger_time input is bound to: the pipeline's input of that name.
TRIGGER_TIME_BINDING = f"${{{{parent.inputs.{TRIGGER_TIME_INPUT}}}}}"


def azure_triggers(schedule: Schedule) -> tuple[AzureTrigger, ...]:
    """The schedule's Azure triggers; a ConfigError names what Azure ML cannot run."""
    try:
        return schedule.azure_triggers()
    except ValueError as exc:
        raise ConfigError(f"{exc} (monitoring.schedule in mlops.yaml)") from exc


def sdk_trigger(trigger: AzureTrigger) -> CronTrigger | RecurrenceTrigger:
    """One trigger as azure-ai-ml's entity (UTC)."""
    if trigger.cron is not None:
        return CronTrigger(expression=trigger.cron, time_zone="UTC")
    # A fixed start in the past keeps the phase of a rate across re-applies: the first run
    # is at the next multiple of the interval after it.
    return RecurrenceTrigger(
        frequency=str(trigger.frequency),
        interval=int(trigger.interval or 1),
        start_time=RATE_ANCHOR.strftime("%Y-%m-%dT%H:%M:%S"),
        time_zone="UTC",
    )


def schedule_names(base: str, count: int) -> list[str]:
    """``base`` for the first trigger, ``base-2``, ``base-3`` ... for the others."""
    return [base if index == 0 else f"{base}-{index + 1}" for index in range(count)]


def stale_names(
    base: str, current: Iterable[str | None], existing: Iterable[str | None]
) -> list[str]:
    """Schedules of this family that the current settings no longer have.

    Names are optional in the SDK's entities; a schedule without one belongs to no family.
    """
    keep = set(current)
    family = [name for name in existing if name and (name == base or name.startswith(f"{base}-"))]
    return sorted(
        name
        for name in family
        if name not in keep and (name == base or name[len(base) + 1 :].isdigit())
    )


def scheduled_pipeline(
    step_name: str, step: BaseNode, *, display_name: str, experiment_name: str, **kwargs: Any
) -> PipelineJob:
    """``step`` as the one step of a pipeline job that a schedule can submit.

    ``step`` declares the input ``trigger_time`` bound to :data:`TRIGGER_TIME_BINDING`.
    """
    return PipelineJob(
        jobs={step_name: step},
        inputs={TRIGGER_TIME_INPUT: TRIGGER_TIME_EXPRESSION},
        display_name=display_name,
        experiment_name=experiment_name,
        **kwargs,
    )


def job_schedules(
    base: str,
    schedule: Schedule,
    job: PipelineJob,
    *,
    display_name: str,
    tags: dict[str, str],
) -> list[JobSchedule]:
    """One JobSchedule of ``job`` per Azure trigger of ``schedule``."""
    triggers = azure_triggers(schedule)
    return [
        JobSchedule(
            name=name,
            display_name=display_name,
            trigger=sdk_trigger(trigger),
            create_job=job,
            tags={**tags, "mlops_schedule": str(schedule)},
        )
        for name, trigger in zip(schedule_names(base, len(triggers)), triggers, strict=True)
    ]
