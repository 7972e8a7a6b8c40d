"""The model-performance signal: a scheduled job running mlcore's live-quality code.

Azure's built-in ModelPerformanceSignal computes accuracy, macro precision and macro
recall (classification) or MAE and RMSE (regression) only
(azureml-assets, model_monitoring/components/src/model_performance_metrics/utils.py), and
its threshold check treats every metric outside a short list as "alert when above"
(model_monitor_evaluate_metrics_threshold/evaluate_metrics_threshold.py,
Metric_Value_Should_Greater_Than_Threshold holds no Accuracy, Precision or Recall): a
floor on accuracy would alert for a good model. mlcore's ``monitoring.min_live_metric``
is a floor on ``gate.primary_metric`` (auc by default), so the signal runs mlcore itself
(:mod:`mlops_azure.jobs.performance`) on the monitor's schedule, and tags a breach as
Azure's monitors do, which the retrain subscription (:mod:`mlops_azure.retrain`) reads. The
schedule submits it as a one-step pipeline job (:mod:`mlops_azure.schedules` says why).
"""

from __future__ import annotations

from pathlib import Path

from azure.ai.ml import Input, Output, command
from azure.ai.ml.entities import Environment, JobSchedule

from mlcore.settings import MlopsSettings
from mlops_azure.assets import datastore_uri
from mlops_azure.config import AzureEnvironment
from mlops_azure.endpoint import MODEL_INPUTS, MODEL_OUTPUTS, collected_data_uri
from mlops_azure.schedules import job_schedules, scheduled_pipeline

# Only traffic this recent is scored each run: older labels were judged by earlier runs.
LOOKBACK_DAYS = 7


def build_performance_schedule(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    deployment_name: str,
    model: str,
    settings_data: str,
    environment: Environment,
    code_dir: Path,
) -> list[JobSchedule]:
    """The schedules of the live model's performance job; none without ground truth."""
    if env.data.ground_truth_path is None:
        return []
    step = command(
        display_name=f"{settings.project} model performance ({env.name})",
        description="live primary metric on labelled traffic vs monitoring.min_live_metric",
        command=(
            "python -m mlops_azure.jobs.performance --inputs ${{inputs.model_inputs}} "
            "--outputs ${{inputs.model_outputs}} --labels ${{inputs.labels}} "
            "--model-dir ${{inputs.model}} --settings ${{inputs.settings}} "
            f"--output ${{{{outputs.report}}}} --lookback-days {LOOKBACK_DAYS}"
        ),
        inputs={
            "model_inputs": Input(
                type="uri_folder", path=collected_data_uri(env, deployment_name, MODEL_INPUTS)
            ),
            "model_outputs": Input(
                type="uri_folder", path=collected_data_uri(env, deployment_name, MODEL_OUTPUTS)
            ),
            "labels": Input(type="uri_folder", path=datastore_uri(env, env.data.ground_truth_path)),
            "model": Input(type="custom_model", path=model),
            "settings": Input(type="uri_file", path=settings_data),
        },
        outputs={"report": Output(type="uri_folder")},
        environment=f"azureml:{environment.name}:{environment.version}",
        compute=env.compute.name,
        code=str(code_dir),
        tags={"environment": env.name, "signal": "model_performance"},
    )
    display_name = f"{settings.project} model performance ({env.name})"
    job = scheduled_pipeline(
        "performance",
        step,
        display_name=display_name,
        experiment_name=f"{settings.project}-performance-{env.name}",
        tags={"environment": env.name, "signal": "model_performance"},
    )
    return job_schedules(
        performance_schedule_name(env, settings),
        settings.monitoring.schedule,
        job,
        display_name=display_name,
        tags={"environment": env.name},
    )


def performance_schedule_name(env: AzureEnvironment, settings: MlopsSettings) -> str:
    return f"{settings.project}-{env.name}-performance"
