"""The model-build SageMaker Pipeline: prep -> train -> evaluate -> gate -> register.

Every step runs the ``mlcore`` CLI in the one container image (``pipelines/container``):
prep and evaluate as Processing jobs whose ContainerEntrypoint is ``mlcore <command>``,
training through the SageMaker training contract (the image's ``train`` invocation). The
gate is a ConditionStep over ``evaluation.json`` with the thresholds from ``mlops.yaml`` as
pipeline parameters, so one execution can be started with different thresholds without a
redeploy. A passing model is registered as PendingManualApproval with its lineage (git
commit, data fingerprint, hyperparameters, metrics) in the package's metadata.

The definition is built offline: no credentials, no network. The CDK app passes
CloudFormation ``${...}`` placeholders as the targets (role, image, bucket, package group)
and deploys the JSON through ``Fn::Sub``; tests pass real values and upsert it into moto.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
from sagemaker.core.helper.session_helper import Session
from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
from sagemaker.core.processing import Processor
from sagemaker.core.shapes import (
    OutputDataConfig,
    ProcessingInput,
    ProcessingOutput,
    ProcessingS3Input,
    ProcessingS3Output,
    StoppingCondition,
)
from sagemaker.core.training.configs import Compute, InputData
from sagemaker.core.workflow.conditions import (
    Condition,
    ConditionGreaterThanOrEqualTo,
    ConditionLessThanOrEqualTo,
)
from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.parameters import Parameter, ParameterFloat, ParameterString
from sagemaker.core.workflow.pipeline_context import PipelineSession
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow import (
    ConditionStep,
    FailStep,
    ModelStep,
    Pipeline,
    ProcessingStep,
    TrainingStep,
)
from sagemaker.serve.model_builder import ModelBuilder
from sagemaker.train.model_trainer import ModelTrainer

from mlcore.settings import MlopsSettings
from pipelines.sagemaker import contract

logger = logging.getLogger(__name__)

PREP_STEP = "Prep"
TRAIN_STEP = "Train"
EVALUATE_STEP = "Evaluate"
GATE_STEP = "QualityGate"
REGISTER_STEP = "RegisterModel"
GATE_FAILED_STEP = "GateFailed"

INPUT_DATA_PARAMETER = "InputDataUrl"
PROCESSING_INSTANCE_PARAMETER = "ProcessingInstanceType"
TRAINING_INSTANCE_PARAMETER = "TrainingInstanceType"
GIT_COMMIT_PARAMETER = "GitCommit"

APPROVAL_STATUS = "PendingManualApproval"

# The SDK needs a client region to build a definition offline. Nothing region-specific from it
# reaches the definition: the one place the SDK writes it (the registered container's
# environment) is replaced with PipelineTargets.region.
_OFFLINE_REGION = "us-east-1"

# An explicit SDK config: no user or admin config file on the build machine can change the
# definition, and the SDK sends no usage telemetry (synth and tests run without network).
_SDK_CONFIG = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}

# mlcore writes evaluation.json in SageMaker's model-quality layout: the section depends on the task.
_REGRESSION_METRICS = frozenset({"rmse", "mae", "r2", "mse"})
_CLASSIFICATION_METRICS = frozenset({"auc", "accuracy", "f1", "precision", "recall", "log_loss"})


@dataclass(frozen=True)
class PipelineTargets:
    """The resources the pipeline runs against.

    Real values in tests; CloudFormation ``${...}`` placeholders when the CDK app builds the
    definition, because the resources do not exist yet at synth time. ``role_arn`` must look
    like an IAM role ARN (the SDK checks the shape), e.g.
    ``arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${RoleName}``.
    """

    role_arn: str
    image_uri: str
    artifact_bucket: str
    model_package_group_name: str
    default_input_data_url: str
    region: str
    kms_key_id: str | None = None


@dataclass(frozen=True)
class ModelBuildOptions:
    """How the jobs run: instance types, spot training, time limits, the code revision."""

    processing_instance_type: str = "ml.m5.large"
    training_instance_type: str = "ml.m5.large"
    inference_instance_types: tuple[str, ...] = ("ml.m5.large",)
    use_spot_training: bool = False
    max_runtime_seconds: int = 3600
    # Managed spot training waits for capacity; this bounds runtime plus waiting.
    max_spot_wait_seconds: int = 7200
    # Default of the GitCommit parameter: the revision the image and definition were built from.
    source_revision: str = "unversioned"
    volume_size_gb: int = 30

    def __post_init__(self) -> None:
        problems = []
        if self.max_runtime_seconds <= 0:
            problems.append(f"max_runtime_seconds must be positive, got {self.max_runtime_seconds}")
        if self.use_spot_training and self.max_spot_wait_seconds < self.max_runtime_seconds:
            problems.append(
                f"max_spot_wait_seconds ({self.max_spot_wait_seconds}) must be at least "
                f"max_runtime_seconds ({self.max_runtime_seconds}) for managed spot training"
            )
        if not self.inference_instance_types:
            problems.append("inference_instance_types must name at least one instance type")
        if problems:
            raise ValueError("invalid model-build options: " + "; ".join(problems))


def metric_json_path(metric: str) -> str:
    """Where ``mlcore evaluate`` puts ``metric`` in evaluation.json (SageMaker's layout).

    >>> metric_json_path("auc")
    'binary_classification_metrics.auc.value'
    """
    if metric in _CLASSIFICATION_METRICS:
        return f"binary_classification_metrics.{metric}.value"
    if metric in _REGRESSION_METRICS:
        return f"regression_metrics.{metric}.value"
    known = sorted(_CLASSIFICATION_METRICS | _REGRESSION_METRICS)
    raise ValueError(
        f"gate metric {metric!r} is not one mlcore evaluate reports; use one of {known}"
    )


def threshold_parameter_name(kind: str, metric: str) -> str:
    """``("min", "log_loss")`` -> ``"MinLogLoss"``: a valid, readable pipeline parameter name."""
    return kind.capitalize() + "".join(
        part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", metric)
    )


def build_pipeline(
    name: str,
    *,
    settings: MlopsSettings,
    targets: PipelineTargets,
    options: ModelBuildOptions | None = None,
    boto_session: boto3.Session | None = None,
) -> Pipeline:
    """Build the model-build pipeline. Nothing is sent to AWS.

    ``boto_session`` is only needed to ``upsert`` or ``start`` the result (against moto or a real
    account); building the definition makes no calls.
    """
    options = options or ModelBuildOptions()
    session = _DefinitionSession(
        boto_session=boto_session or boto3.Session(region_name=_OFFLINE_REGION),
        default_bucket=targets.artifact_bucket,
        sagemaker_config=_SDK_CONFIG,
    )
    gate = settings.gate
    thresholds: list[tuple[str, str, float]] = [
        ("min", metric, value) for metric, value in gate.min_metrics.items()
    ] + [("max", metric, value) for metric, value in gate.max_metrics.items()]
    if not thresholds:
        raise ValueError(
            "gate.min_metrics and gate.max_metrics in mlops.yaml are both empty: the pipeline's "
            "quality gate needs at least one threshold (for example min_metrics: {auc: 0.7})"
        )

    input_data = ParameterString(INPUT_DATA_PARAMETER, default_value=targets.default_input_data_url)
    processing_instance = ParameterString(
        PROCESSING_INSTANCE_PARAMETER, default_value=options.processing_instance_type
    )
    training_instance = ParameterString(
        TRAINING_INSTANCE_PARAMETER, default_value=options.training_instance_type
    )
    git_commit = ParameterString(GIT_COMMIT_PARAMETER, default_value=options.source_revision)
    threshold_parameters = {
        (kind, metric): ParameterFloat(threshold_parameter_name(kind, metric), default_value=value)
        for kind, metric, value in thresholds
    }
    parameters: list[Parameter] = [
        input_data,
        processing_instance,
        training_instance,
        git_commit,
        *threshold_parameters.values(),
    ]

    run_prefix = f"s3://{targets.artifact_bucket}/model-build"
    prep_uri = Join(on="/", values=[run_prefix, ExecutionVariables.PIPELINE_EXECUTION_ID, "prep"])
    evaluation_uri = Join(
        on="/", values=[run_prefix, ExecutionVariables.PIPELINE_EXECUTION_ID, "evaluation"]
    )
    model_uri = Join(on="/", values=[run_prefix, ExecutionVariables.PIPELINE_EXECUTION_ID, "model"])

    with _role_checked_by_deployment():
        prep = _prep_step(
            settings, targets, options, session, input_data, processing_instance, prep_uri
        )
        train = _train_step(
            settings, targets, options, session, training_instance, git_commit, prep_uri, model_uri
        )
        evaluation_file = PropertyFile(
            name="Evaluation", output_name="evaluation", path=contract.EVALUATION_FILE
        )
        evaluate = _evaluate_step(
            targets,
            options,
            session,
            processing_instance,
            train,
            prep_uri,
            evaluation_uri,
            evaluation_file,
        )
        conditions: list[Condition] = []
        for (kind, metric), parameter in threshold_parameters.items():
            observed = JsonGet(
                step_name=evaluate.name,
                property_file=evaluation_file,
                json_path=metric_json_path(metric),
            )
            comparison = (
                ConditionGreaterThanOrEqualTo if kind == "min" else ConditionLessThanOrEqualTo
            )
            conditions.append(comparison(left=observed, right=parameter))
        register = _register_step(
            settings,
            targets,
            options,
            session,
            train,
            prep,
            evaluate,
            evaluation_file,
            evaluation_uri,
            git_commit,
            input_data,
        )
        gate_failed = FailStep(
            name=GATE_FAILED_STEP,
            error_message=Join(
                on=" ",
                values=[
                    "The model did not pass the quality gate; see",
                    evaluation_uri,
                    "for evaluation.json and gate.json.",
                ],
            ),
        )
        gate_step = ConditionStep(
            name=GATE_STEP, conditions=conditions, if_steps=[register], else_steps=[gate_failed]
        )
        return Pipeline(
            name=name,
            parameters=parameters,
            steps=[prep, train, evaluate, gate_step],
            sagemaker_session=session,
        )


def pipeline_definition(
    name: str,
    *,
    settings: MlopsSettings,
    targets: PipelineTargets,
    options: ModelBuildOptions | None = None,
) -> str:
    """The pipeline definition as JSON: what ``AWS::SageMaker::Pipeline`` deploys."""
    pipeline = build_pipeline(name, settings=settings, targets=targets, options=options)
    definition = json.loads(pipeline.definition())
    _tidy_registered_container(definition, targets.region)
    return json.dumps(definition, sort_keys=True)


class _DefinitionSession(PipelineSession):
    """A PipelineSession that never checks or creates its default bucket.

    The SDK's default_bucket() lists buckets to create a missing one; our bucket is created
    by the same deployment (or by the test), and the definition must build offline.
    """

    def default_bucket(self) -> str:
        bucket: str = self._default_bucket_name_override
        return bucket


@contextmanager
def _role_checked_by_deployment() -> Iterator[None]:
    # ModelTrainer asks IAM whether the role may train (iam:SimulatePrincipalPolicy). At synth
    # time the role does not exist yet and there are no credentials; CloudFormation creates it
    # with exactly the permissions the jobs need, so the SDK's check is switched off here only.
    previous = os.environ.get("SAGEMAKER_VALIDATE_ROLE")
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["SAGEMAKER_VALIDATE_ROLE"]
        else:
            os.environ["SAGEMAKER_VALIDATE_ROLE"] = previous


def _processor(
    command: str,
    targets: PipelineTargets,
    options: ModelBuildOptions,
    session: Session,
    instance_type: ParameterString,
) -> Processor:
    return Processor(
        role=targets.role_arn,
        image_uri=targets.image_uri,
        instance_count=1,
        instance_type=instance_type,
        entrypoint=["mlcore", command],
        base_job_name=f"mlcore-{command}",
        volume_size_in_gb=options.volume_size_gb,
        volume_kms_key=targets.kms_key_id,
        output_kms_key=targets.kms_key_id,
        max_runtime_in_seconds=options.max_runtime_seconds,
        sagemaker_session=session,
    )


def _prep_step(
    settings: MlopsSettings,
    targets: PipelineTargets,
    options: ModelBuildOptions,
    session: Session,
    input_data: ParameterString,
    instance_type: ParameterString,
    prep_uri: Join,
) -> ProcessingStep:
    processor = _processor("prep", targets, options, session, instance_type)
    # One output for the whole folder: prep writes train/, validation/, test/ and, beside
    # them, spec.json and lineage.json, which training and the register step read.
    step_args = processor.run(
        inputs=[
            ProcessingInput(
                input_name="data",
                s3_input=ProcessingS3Input(
                    s3_uri=input_data,
                    local_path=contract.PREP_DATA_DIR,
                    s3_data_type="S3Prefix",
                    s3_input_mode="File",
                ),
            )
        ],
        outputs=[
            ProcessingOutput(
                output_name="prep",
                s3_output=ProcessingS3Output(
                    s3_uri=prep_uri, local_path=contract.PREP_OUTPUT_DIR, s3_upload_mode="EndOfJob"
                ),
            )
        ],
        arguments=[
            "--data",
            contract.PREP_DATA_DIR,
            "--output",
            contract.PREP_OUTPUT_DIR,
            "--settings",
            contract.CONTAINER_SETTINGS_PATH,
            "--target",
            settings.dataset.target,
        ],
    )
    lineage = PropertyFile(name="Lineage", output_name="prep", path=contract.LINEAGE_FILE)
    return ProcessingStep(name=PREP_STEP, step_args=step_args, property_files=[lineage])


def training_hyperparameters(settings: MlopsSettings) -> dict[str, str]:
    """The hyperparameters ``mlcore train`` reads in a SageMaker container (all strings)."""
    training = settings.training
    values: dict[str, str] = {
        "target": settings.dataset.target,
        "algorithm": training.algorithm,
        "seed": str(training.seed),
    }
    for key, value in training.hyperparameters.items():
        values[key] = json.dumps(value) if not isinstance(value, str) else value
    return values


def _train_step(
    settings: MlopsSettings,
    targets: PipelineTargets,
    options: ModelBuildOptions,
    session: Session,
    instance_type: ParameterString,
    git_commit: ParameterString,
    prep_uri: Join,
    model_uri: Join,
) -> TrainingStep:
    stopping = StoppingCondition(max_runtime_in_seconds=options.max_runtime_seconds)
    if options.use_spot_training:
        stopping = StoppingCondition(
            max_runtime_in_seconds=options.max_runtime_seconds,
            max_wait_time_in_seconds=options.max_spot_wait_seconds,
        )
    trainer = ModelTrainer(
        sagemaker_session=session,
        base_job_name="mlcore-train",
        role=targets.role_arn,
        training_image=targets.image_uri,
        compute=Compute(
            instance_type=instance_type,
            instance_count=1,
            volume_size_in_gb=options.volume_size_gb,
            volume_kms_key_id=targets.kms_key_id,
            enable_managed_spot_training=options.use_spot_training or None,
        ),
        stopping_condition=stopping,
        hyperparameters={**training_hyperparameters(settings), "git_commit": git_commit},
        output_data_config=OutputDataConfig(
            s3_output_path=model_uri, kms_key_id=targets.kms_key_id
        ),
    )
    channels = {
        "train": Join(on="/", values=[prep_uri, "train"]),
        "validation": Join(on="/", values=[prep_uri, "validation"]),
        # A prefix naming one object: the channel holds just spec.json.
        "spec": Join(on="/", values=[prep_uri, contract.SPEC_FILE]),
    }
    step_args = trainer.train(
        input_data_config=[
            InputData(channel_name=channel, data_source=uri) for channel, uri in channels.items()
        ]
    )
    return TrainingStep(name=TRAIN_STEP, step_args=step_args, depends_on=[PREP_STEP])


def _evaluate_step(
    targets: PipelineTargets,
    options: ModelBuildOptions,
    session: Session,
    instance_type: ParameterString,
    train: TrainingStep,
    prep_uri: Join,
    evaluation_uri: Join,
    evaluation_file: PropertyFile,
) -> ProcessingStep:
    processor = _processor("evaluate", targets, options, session, instance_type)
    step_args = processor.run(
        inputs=[
            ProcessingInput(
                input_name="model",
                s3_input=ProcessingS3Input(
                    s3_uri=train.properties.ModelArtifacts.S3ModelArtifacts,
                    local_path=contract.EVALUATE_MODEL_DIR,
                    s3_data_type="S3Prefix",
                    s3_input_mode="File",
                ),
            ),
            ProcessingInput(
                input_name="test",
                s3_input=ProcessingS3Input(
                    s3_uri=Join(on="/", values=[prep_uri, "test"]),
                    local_path=contract.EVALUATE_DATA_DIR,
                    s3_data_type="S3Prefix",
                    s3_input_mode="File",
                ),
            ),
        ],
        outputs=[
            ProcessingOutput(
                output_name="evaluation",
                s3_output=ProcessingS3Output(
                    s3_uri=evaluation_uri,
                    local_path=contract.EVALUATE_OUTPUT_DIR,
                    s3_upload_mode="EndOfJob",
                ),
            )
        ],
        arguments=[
            "--model-dir",
            contract.EVALUATE_MODEL_DIR,
            "--data",
            contract.EVALUATE_DATA_DIR,
            "--output",
            contract.EVALUATE_OUTPUT_DIR,
            "--settings",
            contract.CONTAINER_SETTINGS_PATH,
        ],
    )
    return ProcessingStep(name=EVALUATE_STEP, step_args=step_args, property_files=[evaluation_file])


def _as_text(value: JsonGet) -> Join:
    # Model package metadata values must be strings; a JSON number read from a file is not.
    return Join(on="", values=[value])


def _register_step(
    settings: MlopsSettings,
    targets: PipelineTargets,
    options: ModelBuildOptions,
    session: Session,
    train: TrainingStep,
    prep: ProcessingStep,
    evaluate: ProcessingStep,
    evaluation_file: PropertyFile,
    evaluation_uri: Join,
    git_commit: ParameterString,
    input_data: ParameterString,
) -> ModelStep:
    lineage_file = prep.property_files[0]
    metadata: dict[str, object] = {
        "git_commit": git_commit,
        "data_url": input_data,
        "data_fingerprint": JsonGet(
            step_name=prep.name, property_file=lineage_file, json_path="data_fingerprint"
        ),
        "data_rows": _as_text(
            JsonGet(step_name=prep.name, property_file=lineage_file, json_path="rows")
        ),
        "pipeline_execution_arn": ExecutionVariables.PIPELINE_EXECUTION_ARN,
    }
    for key, value in training_hyperparameters(settings).items():
        metadata[f"hp_{key}"] = value
    gate_metrics = [
        settings.gate.primary_metric,
        *settings.gate.min_metrics,
        *settings.gate.max_metrics,
    ]
    for metric in dict.fromkeys(gate_metrics):
        metadata[f"metric_{metric}"] = _as_text(
            JsonGet(
                step_name=evaluate.name,
                property_file=evaluation_file,
                json_path=metric_json_path(metric),
            )
        )
    builder = ModelBuilder(
        image_uri=targets.image_uri,
        s3_model_data_url=train.properties.ModelArtifacts.S3ModelArtifacts,
        role_arn=targets.role_arn,
        sagemaker_session=session,
        # ModelBuilder otherwise sets the SDK's shared utils logger to DEBUG for the process.
        log_level=logging.WARNING,
    )
    step_args = builder.register(
        model_package_group_name=targets.model_package_group_name,
        content_types=["text/csv", "application/json"],
        response_types=["application/json"],
        inference_instances=list(options.inference_instance_types),
        transform_instances=list(options.inference_instance_types),
        approval_status=APPROVAL_STATUS,
        model_metrics=ModelMetrics(
            model_statistics=MetricsSource(
                content_type="application/json",
                s3_uri=Join(on="/", values=[evaluation_uri, contract.EVALUATION_FILE]),
            )
        ),
        customer_metadata_properties=metadata,
    )
    return ModelStep(name=REGISTER_STEP, step_args=step_args)


def _tidy_registered_container(definition: dict[str, object], region: str) -> None:
    """Replace the SDK's script-mode environment on the registered container with ours.

    ModelBuilder adds SAGEMAKER_PROGRAM/SUBMIT_DIRECTORY (empty: there is no script, the image
    serves with ``mlcore serve``) and the region of the machine that built the definition.
    """
    for step in _all_steps(definition):
        if step.get("Type") != "RegisterModel":
            continue
        for container in step["Arguments"]["InferenceSpecification"]["Containers"]:
            container["Environment"] = {"SAGEMAKER_REGION": region}


def _all_steps(definition: dict[str, object]) -> Iterator[dict[str, object]]:
    pending = list(definition["Steps"])  # type: ignore[call-overload]
    while pending:
        step = pending.pop()
        yield step
        arguments = step.get("Arguments", {})
        if step.get("Type") == "Condition":
            pending.extend(arguments.get("IfSteps", []))
            pending.extend(arguments.get("ElseSteps", []))
