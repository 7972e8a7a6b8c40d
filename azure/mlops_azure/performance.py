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
Azure's monitors do, which the retrain subscription (:mod:`mlops_azure.retrain`) reads.
"""

from __future__ import annotations

from pathlib import Path

from azure.ai.ml import Input, Output, command
from azure.ai.ml.entities import Environment, JobSchedule

from mlcore.settings import MlopsSettings
from mlops_azure.assets import datastore_uri
from mlops_azure.config import AzureEnvironment
from mlops_azure.endpoint import MODEL_INPUTS, MODEL_OUTPUTS, collected_data_uri
from mlops_azure.monitoring import schedule_trigger

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
) -> JobSchedule | None:
    """The schedule of the live model's performance job; None when no ground truth is configured."""
    if env.data.ground_truth_path is None:
        return None
    job = command(
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
        experiment_name=f"{settings.project}-performance-{env.name}",
        tags={"environment": env.name, "signal": "model_performance"},
    )
    return JobSchedule(
        name=f"{settings.project}-{env.name}-performance",
        display_name=f"{settings.project} model performance ({env.name})",
        trigger=schedule_trigger(settings.monitoring.schedule),
        create_job=job,
        tags={"environment": env.name},
    )
