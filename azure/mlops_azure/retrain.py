"""The closed loop: a breached monitor signal starts the Azure DevOps pipeline, with a cooldown.

Wiring (Learn, how-to-monitor-model-performance, "Integrate ... with Azure Event Grid"):
the workspace's Event Grid system topic emits
``Microsoft.MachineLearningServices.RunStatusChanged`` for every run, with the run's
tags. A monitor run whose signal breached carries the tag
``azureml_modelmonitor_threshold_breached`` (so does the performance job,
:mod:`mlops_azure.jobs.performance`). One subscription filters on that tag and delivers
to the retrain function (``azure/functions/retrain``), which calls
:func:`mlops_azure.retrain_handler.handle_event`.

Retraining means a run of the project's Azure DevOps pipeline: the model then goes
through the same gate, registry, rollout and approvals as one trained on a commit. The
cooldown (``monitoring.retrain_cooldown_hours``, the AWS loop's setting) counts the runs
the function started (their ``retrainReason`` is set) that did not fail.

``apply`` creates the subscription only when the function exists: Event Grid validates
an Azure Function destination when the subscription is created, and a subscription to a
function that is not deployed yet fails the whole ``apply``.
"""

from __future__ import annotations

from azure.mgmt.eventgrid.models import (
    AzureFunctionEventSubscriptionDestination,
    EventSubscription,
    EventSubscriptionFilter,
    RetryPolicy,
    StringContainsAdvancedFilter,
    StringInAdvancedFilter,
    SystemTopic,
)

from mlcore.settings import MlopsSettings
from mlops_azure.config import AzureEnvironment
from mlops_azure.jobs.breach import BREACH_TAG, BREACH_WORDING
from mlops_azure.retrain_handler import RUN_STATUS, RUN_STATUS_CHANGED, RUN_TAGS

WORKSPACE_TOPIC_TYPE = "Microsoft.MachineLearningServices.Workspaces"
SUBSCRIPTION_NAME = "retrain-on-breach"


def workspace_id(env: AzureEnvironment) -> str:
    return (
        f"/subscriptions/{env.subscription_id}/resourceGroups/{env.resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{env.workspace}"
    )


def function_resource_id(env: AzureEnvironment, settings: MlopsSettings) -> str:
    """The configured retrain function, or the one the README's deployment step names."""
    return env.retrain.function_resource_id or (
        f"/subscriptions/{env.subscription_id}/resourceGroups/{env.resource_group}"
        f"/providers/Microsoft.Web/sites/{settings.project}-{env.name}-retrain/functions/retrain"
    )


def system_topic_name(env: AzureEnvironment) -> str:
    return f"{env.workspace}-events"


def build_system_topic(env: AzureEnvironment) -> SystemTopic:
    """The workspace's Event Grid system topic (one per workspace)."""
    return SystemTopic(
        location=env.workspace_settings.location,
        source=workspace_id(env),
        topic_type=WORKSPACE_TOPIC_TYPE,
        tags={"environment": env.name},
    )


def build_retrain_subscription(env: AzureEnvironment, settings: MlopsSettings) -> EventSubscription:
    """Breached-signal events only, delivered to the retrain function."""
    return EventSubscription(
        destination=AzureFunctionEventSubscriptionDestination(
            resource_id=function_resource_id(env, settings)
        ),
        filter=EventSubscriptionFilter(
            included_event_types=[RUN_STATUS_CHANGED],
            advanced_filters=[
                StringContainsAdvancedFilter(
                    key=f"data.{RUN_TAGS}.{BREACH_TAG}", values=[BREACH_WORDING]
                ),
                StringInAdvancedFilter(key=f"data.{RUN_STATUS}", values=["Completed"]),
            ],
        ),
        event_delivery_schema="EventGridSchema",
        # A breach seen a day late is still worth a retrain; older ones are superseded.
        retry_policy=RetryPolicy(max_delivery_attempts=30, event_time_to_live_in_minutes=1440),
    )
