"""Azure Function (Python v2 model): Event Grid breach events -> a retraining pipeline run.

Deploy this folder with mlops_azure and mlcore beside it (README, "Retraining on Azure").
The function's managed identity must be allowed to queue the Azure DevOps pipeline.
"""

from __future__ import annotations

import logging
import os

from azure.identity import DefaultAzureCredential
from mlops_azure.retrain_handler import (
    AZURE_DEVOPS_SCOPE,
    AzureDevOpsRuns,
    function_settings,
    handle_event,
)

import azure.functions as func

app = func.FunctionApp()


@app.event_grid_trigger(arg_name="event")
def retrain(event: func.EventGridEvent) -> None:
    settings = function_settings(os.environ)
    credential = DefaultAzureCredential()
    runs = AzureDevOpsRuns(
        organization_url=settings["MLOPS_ADO_ORGANIZATION_URL"],
        project=settings["MLOPS_ADO_PROJECT"],
        pipeline_id=int(settings["MLOPS_ADO_PIPELINE_ID"]),
        token=lambda: credential.get_token(AZURE_DEVOPS_SCOPE).token,
    )
    decision = handle_event(
        {"eventType": event.event_type, "subject": event.subject, "data": event.get_json()},
        runs=runs,
        cooldown_hours=float(settings["MLOPS_RETRAIN_COOLDOWN_HOURS"]),
    )
    logging.info("retrain: %s (%s)", decision.reason, decision.run or "no run")
