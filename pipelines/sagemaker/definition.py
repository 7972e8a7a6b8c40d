"""The model-build SageMaker Pipeline: check inputs -> prep -> train -> evaluate (gate) -> register.

1. ``CheckInputs`` (a Lambda step, :mod:`pipelines.sagemaker.preflight`) looks for data under
   the input prefix and for the newest Approved package of the group (the champion). With no
   data the ``HasTrainingData`` condition ends the run as Succeeded without training, and the
   step's ``message`` output says what to upload (the first deploy has an empty bucket).
2. ``Prep`` and ``Train`` run the ``mlcore`` CLI in the one container image
   (``pipelines/container``): prep as a Processing job, training through the SageMaker
   training contract (``mlcore train --settings ...`` with no paths).
3. ``Evaluate`` runs ``mlcore evaluate``; when there is a champion (``HasChampion``),
   ``EvaluateVsChampion`` adds ``--champion-dir`` with the champion's model. The gate is
   mlcore's (floors, ceilings, and the champion tolerance and confidence of mlops.yaml, judged
   on a paired bootstrap): the same rules and messages as Azure and ``make demo``, written to
   ``gate.json``. The ``PassedGate`` condition reads its decision: a refused challenger is
   registered nowhere and the execution ends as Succeeded, since a refused model is an
   outcome, not a failure (CI/CD goes on delivering the infrastructure; ``run_pipeline`` says
   the challenger was refused).
4. The register step records the model as PendingManualApproval with its lineage (git commit,
   data fingerprint, hyperparameters, metrics) and the gate it passed (thresholds applied, the
   champion it was compared with, the settings file's hash) in the package's metadata, and the
   model card ``mlcore evaluate`` wrote (``model_package_card.json``, read through a property
   file) as the package's ModelCard, pending review with the package.

Every job reads its settings from one file, the settings artifact the CDK app uploads from
the repository root (``PipelineTargets.settings_s3_uri``): never a copy baked into the image.

The definition is built offline: no credentials, no network. The CDK app passes
CloudFormation ``${...}`` placeholders as the targets (role, image, bucket, package group)
and deploys the JSON through ``Fn::Sub``; tests pass real values and upsert it into moto.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import jsonschema
from sagemaker.core.config.config_manager import SageMakerConfig
from sagemaker.core.config.config_schema import SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA
from sagemaker.core.helper.session_helper import Session
from sagemaker.core.lambda_helper import Lambda
from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
from sagemaker.core.processing import Processor
from sagemaker.core.shapes import (
    ModelPackageModelCard,
    OutputDataConfig,
    ProcessingInput,
    ProcessingOutput,
    ProcessingS3Input,
    ProcessingS3Output,
    StoppingCondition,
)
from sagemaker.core.training.configs import Compute, InputData
from sagemaker.core.workflow.conditions import ConditionEquals
from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.parameters import Parameter, ParameterString
from sagemaker.core.workflow.pipeline_context import PipelineSession
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow import (
    ConditionStep,
    LambdaOutput,
    LambdaStep,
    ModelStep,
    Pipeline,
    ProcessingStep,
    TrainingStep,
)
from sagemaker.mlops.workflow.lambda_step import LambdaOutputTypeEnum
from sagemaker.serve.model_builder import ModelBuilder
from sagemaker.train.model_trainer import ModelTrainer

from mlcore.evaluate import CLASSIFICATION_METRICS, REGRESSION_METRICS
from mlcore.model_package_card import CARD_STATUS
from mlcore.settings import MlopsSettings
from pipelines.sagemaker import contract

logger = logging.getLogger(__name__)

CHECK_STEP = "CheckInputs"
DATA_CONDITION_STEP = "HasTrainingData"
PREP_STEP = "Prep"
TRAIN_STEP = "Train"
CHAMPION_CONDITION_STEP = "HasChampion"
EVALUATE_STEP = "Evaluate"
EVALUATE_VS_CHAMPION_STEP = "EvaluateVsChampion"
REGISTER_STEP = "RegisterModel"
REGISTER_VS_CHAMPION_STEP = "RegisterVsChampion"
GATE_CONDITION_STEP = "PassedGate"
GATE_VS_CHAMPION_CONDITION_STEP = "PassedGateVsChampion"
#: The CheckInputs Lambda step's outputs (pipelines.sagemaker.preflight.Inputs.outputs).
CHECK_OUTPUTS = (
    "has_data",
    "data_files",
    "has_champion",
    "champion_package_arn",
    "champion_model_url",
    "message",
)

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


class _SdkConfigValidator:
    """Validates SDK configs as ``jsonschema.validate`` does, checking the schema itself once.

    The SDK validates its config on every config lookup with ``jsonschema.validate``, which
    first re-checks the whole SDK config schema against the metaschema: about 1 s per lookup,
    65 lookups per definition (a minute per synth). The config is still validated every time.
    """

    def __init__(self) -> None:
        self._validator: jsonschema.protocols.Validator | None = None

    def __call__(self, sagemaker_config: dict[str, Any] | None = None) -> None:
        if self._validator is None:
            schema = SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            self._validator = cls(schema)
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(sagemaker_config))
        if error is not None:
            raise error


SageMakerConfig.validate_sagemaker_config = staticmethod(_SdkConfigValidator())


@dataclass(frozen=True)
class PipelineTargets:
    """The resources the pipeline runs against.

    Real values in tests; CloudFormation ``${...}`` placeholders when the CDK app builds the
    definition, because the resources do not exist yet at synth time. ``role_arn`` must look
    like an IAM role ARN (the SDK checks the shape), e.g.
    ``arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${RoleName}``.

    ``settings_s3_uri`` is the one settings file every job reads (an object, not a prefix);
    ``settings_file_name`` its last key segment, the name it has inside the jobs.
    ``check_function_arn`` is the Lambda function of the CheckInputs step.
    ``tracking_uri``, when given, becomes ``MLFLOW_TRACKING_URI`` in every job.
    """

    role_arn: str
    image_uri: str
    artifact_bucket: str
    model_package_group_name: str
    default_input_data_url: str
    region: str
    settings_s3_uri: str
    check_function_arn: str
    kms_key_id: str | None = None
    tracking_uri: str | None = None
    # A stage with a network: the private subnets and security groups every job runs in.
    # Empty: the jobs run without a VPC.
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            raise ValueError(
                "PipelineTargets needs both subnet_ids and security_group_ids for jobs in a VPC "
                f"(got {len(self.subnet_ids)} subnets, {len(self.security_group_ids)} groups)"
            )
        if self.subnet_ids and self.tracking_uri:
            raise ValueError(
                "jobs in a VPC run with network isolation and cannot reach a tracking server; "
                "drop tracking_uri or the network"
            )

    @property
    def settings_file_name(self) -> str:
        return self.settings_s3_uri.rstrip("/").rsplit("/", 1)[-1]


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


def gate_metric_names(settings: MlopsSettings) -> tuple[str, ...]:
    """The metrics the gate reads, checked against the names ``mlcore evaluate`` reports.

    The names come from mlcore (:mod:`mlcore.evaluate`), so the definition cannot ask for a
    metric mlcore never computes; a declared task narrows them to that task's metrics.
    """
    gate = settings.gate
    names = tuple(dict.fromkeys([*gate.min_metrics, *gate.max_metrics]))
    if not names:
        raise ValueError(
            "gate.min_metrics and gate.max_metrics in mlops.yaml are both empty: the pipeline's "
            "quality gate needs at least one threshold (for example min_metrics: {auc: 0.7})"
        )
    task = settings.dataset.task
    known = {
        "classification": CLASSIFICATION_METRICS,
        "regression": REGRESSION_METRICS,
        None: (*CLASSIFICATION_METRICS, *REGRESSION_METRICS),
    }[task]
    unknown = [m for m in (*names, gate.primary_metric) if m not in known]
    if unknown:
        raise ValueError(
            f"gate metric(s) {unknown} in mlops.yaml are not ones mlcore evaluate reports"
            + (f" for {task}" if task else "")
            + f"; use one of {sorted(known)}"
        )
    return names


def settings_sha256(path: str | Path) -> str:
    """``sha256:<hex>`` of a settings file: recorded with every model it gated."""
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build_pipeline(
    name: str,
    *,
    settings: MlopsSettings,
    targets: PipelineTargets,
    options: ModelBuildOptions | None = None,
    settings_digest: str = "unrecorded",
    boto_session: boto3.Session | None = None,
) -> Pipeline:
    """Build the model-build pipeline. Nothing is sent to AWS.

    ``settings`` must be what ``targets.settings_s3_uri`` holds (the CDK app parses and uploads
    the same file); ``settings_digest`` is that file's :func:`settings_sha256`.
    ``boto_session`` is only needed to ``upsert`` or ``start`` the result (against moto or a real
    account); building the definition makes no calls.
    """
    options = options or ModelBuildOptions()
    session = _DefinitionSession(
        boto_session=boto_session or boto3.Session(region_name=_OFFLINE_REGION),
        default_bucket=targets.artifact_bucket,
        sagemaker_config=_SDK_CONFIG,
    )
    metric_names = gate_metric_names(settings)

    input_data = ParameterString(INPUT_DATA_PARAMETER, default_value=targets.default_input_data_url)
    processing_instance = ParameterString(
        PROCESSING_INSTANCE_PARAMETER, default_value=options.processing_instance_type
    )
    training_instance = ParameterString(
        TRAINING_INSTANCE_PARAMETER, default_value=options.training_instance_type
    )
    git_commit = ParameterString(GIT_COMMIT_PARAMETER, default_value=options.source_revision)
    parameters: list[Parameter] = [input_data, processing_instance, training_instance, git_commit]

    run_prefix = f"s3://{targets.artifact_bucket}/model-build"
    prep_uri = Join(on="/", values=[run_prefix, ExecutionVariables.PIPELINE_EXECUTION_ID, "prep"])
    evaluation_uri = Join(
        on="/", values=[run_prefix, ExecutionVariables.PIPELINE_EXECUTION_ID, "evaluation"]
    )
    model_uri = Join(on="/", values=[run_prefix, ExecutionVariables.PIPELINE_EXECUTION_ID, "model"])

    check = LambdaStep(
        name=CHECK_STEP,
        description="Is there training data under InputDataUrl, and which package is the champion?",
        lambda_func=Lambda(function_arn=targets.check_function_arn, session=session),
        inputs={
            "input_data_url": input_data,
            "model_package_group_name": targets.model_package_group_name,
        },
        outputs=[
            LambdaOutput(output_name=o, output_type=LambdaOutputTypeEnum.String)
            for o in CHECK_OUTPUTS
        ],
    )
    with _role_checked_by_deployment():
        prep = _prep_step(targets, options, session, input_data, processing_instance, prep_uri)
        train = _train_step(
            settings, targets, options, session, training_instance, git_commit, prep_uri, model_uri
        )
        context = _GateContext(
            settings=settings,
            targets=targets,
            options=options,
            session=session,
            instance_type=processing_instance,
            train=train,
            prep=prep,
            check=check,
            prep_uri=prep_uri,
            evaluation_uri=evaluation_uri,
            git_commit=git_commit,
            input_data=input_data,
            metric_names=metric_names,
            settings_digest=settings_digest,
        )
        against_champion = _evaluate_and_register(context, with_champion=True)
        alone = _evaluate_and_register(context, with_champion=False)
        has_champion = ConditionStep(
            name=CHAMPION_CONDITION_STEP,
            conditions=[
                ConditionEquals(left=check.properties.Outputs["has_champion"], right="true")
            ],
            if_steps=against_champion,
            else_steps=alone,
        )
        # No data: no else steps, so the execution ends as Succeeded and TrainDev does not
        # block the later stages; CheckInputs' message output says why nothing was trained.
        has_data = ConditionStep(
            name=DATA_CONDITION_STEP,
            conditions=[ConditionEquals(left=check.properties.Outputs["has_data"], right="true")],
            if_steps=[prep, train, has_champion],
            else_steps=[],
        )
        return Pipeline(
            name=name,
            parameters=parameters,
            steps=[check, has_data],
            sagemaker_session=session,
            # No SageMaker Experiments: runs are tracked in MLflow (MLFLOW_TRACKING_URI) and
            # lineage is in the package metadata, so the pipeline role needs no
            # sagemaker:CreateExperiment/CreateTrial/AssociateTrialComponent rights.
            pipeline_experiment_config=None,
        )


def pipeline_definition(
    name: str,
    *,
    settings: MlopsSettings,
    targets: PipelineTargets,
    options: ModelBuildOptions | None = None,
    settings_digest: str = "unrecorded",
) -> str:
    """The pipeline definition as JSON: what ``AWS::SageMaker::Pipeline`` deploys."""
    pipeline = build_pipeline(
        name, settings=settings, targets=targets, options=options, settings_digest=settings_digest
    )
    definition = json.loads(pipeline.definition())
    _tidy_registered_container(definition, targets.region)
    _train_with_settings(definition, targets)
    _run_in_network(definition, targets)
    return json.dumps(definition, sort_keys=True)


# sagemaker ships no type information (no py.typed), so mypy sees PipelineSession as Any.
class _DefinitionSession(PipelineSession):  # type: ignore[misc]
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


def _job_environment(targets: PipelineTargets) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": targets.tracking_uri} if targets.tracking_uri else {}


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
        env=_job_environment(targets) or None,
        sagemaker_session=session,
    )


def _s3_input(name: str, uri: object, local_path: str) -> ProcessingInput:
    return ProcessingInput(
        input_name=name,
        s3_input=ProcessingS3Input(
            s3_uri=uri, local_path=local_path, s3_data_type="S3Prefix", s3_input_mode="File"
        ),
    )


def _settings_input(targets: PipelineTargets) -> ProcessingInput:
    return _s3_input("settings", targets.settings_s3_uri, contract.PROCESSING_SETTINGS_DIR)


def processing_settings_path(targets: PipelineTargets) -> str:
    """Where a processing job finds the settings file (``--settings``)."""
    return f"{contract.PROCESSING_SETTINGS_DIR}/{targets.settings_file_name}"


def _prep_step(
    targets: PipelineTargets,
    options: ModelBuildOptions,
    session: Session,
    input_data: ParameterString,
    instance_type: ParameterString,
    prep_uri: Join,
) -> ProcessingStep:
    processor = _processor("prep", targets, options, session, instance_type)
    # One output for the whole folder: prep writes train/, validation/, test/ and, beside
    # them, spec.json and lineage.json, which training and the register step read. The data
    # input is the whole prefix (every drop under it, read recursively by mlcore).
    step_args = processor.run(
        inputs=[
            _s3_input("data", input_data, contract.PREP_DATA_DIR),
            _settings_input(targets),
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
            processing_settings_path(targets),
        ],
    )
    lineage = PropertyFile(name="Lineage", output_name="prep", path=contract.LINEAGE_FILE)
    return ProcessingStep(name=PREP_STEP, step_args=step_args, property_files=[lineage])


def training_hyperparameters(settings: MlopsSettings) -> dict[str, str]:
    """The hyperparameters ``mlcore train`` reads in a SageMaker container (all strings)."""
    training = settings.training
    values: dict[str, str] = {"target": settings.dataset.target}
    if training.estimator is not None:
        # "package.module:factory" from the image's src/ (cdk.container_image checks it is
        # there at synth). It replaces the algorithm (mlcore.train), so the job, and the
        # package's hp_* metadata, name what was really trained.
        values["estimator"] = training.estimator
    else:
        values["algorithm"] = training.algorithm
    values["seed"] = str(training.seed)
    for key, value in training.hyperparameters.items():
        values[key] = json.dumps(value) if not isinstance(value, str) else value
    return values


def training_command(targets: PipelineTargets) -> list[str]:
    """The training container's command: the SageMaker contract, settings from the artifact."""
    return [
        "mlcore",
        "train",
        "--settings",
        f"{contract.TRAINING_CHANNEL_ROOT}/settings/{targets.settings_file_name}",
    ]


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
        environment=_job_environment(targets) or None,
        output_data_config=OutputDataConfig(
            s3_output_path=model_uri, kms_key_id=targets.kms_key_id
        ),
    )
    channels: dict[str, object] = {
        "train": Join(on="/", values=[prep_uri, "train"]),
        "validation": Join(on="/", values=[prep_uri, "validation"]),
        # A prefix naming one object: the channel holds just spec.json.
        "spec": Join(on="/", values=[prep_uri, contract.SPEC_FILE]),
        "settings": targets.settings_s3_uri,
    }
    step_args = trainer.train(
        input_data_config=[
            InputData(channel_name=channel, data_source=uri) for channel, uri in channels.items()
        ]
    )
    return TrainingStep(name=TRAIN_STEP, step_args=step_args, depends_on=[PREP_STEP])


@dataclass(frozen=True)
class _GateContext:
    """What the evaluate and register steps of either branch are built from."""

    settings: MlopsSettings
    targets: PipelineTargets
    options: ModelBuildOptions
    session: Session
    instance_type: ParameterString
    train: TrainingStep
    prep: ProcessingStep
    check: LambdaStep
    prep_uri: Join
    evaluation_uri: Join
    git_commit: ParameterString
    input_data: ParameterString
    metric_names: tuple[str, ...]
    settings_digest: str


def evaluate_arguments(targets: PipelineTargets, *, with_champion: bool) -> list[str]:
    """``mlcore evaluate`` arguments: the gate decides (``gate.json``); the PassedGate
    condition reads the decision, so a refused challenger does not fail the step."""
    arguments = [
        "--model-dir",
        contract.EVALUATE_MODEL_DIR,
        "--data",
        contract.EVALUATE_DATA_DIR,
        "--output",
        contract.EVALUATE_OUTPUT_DIR,
        "--settings",
        processing_settings_path(targets),
    ]
    if with_champion:
        arguments += ["--champion-dir", contract.EVALUATE_CHAMPION_DIR]
    return arguments


def _evaluate_and_register(context: _GateContext, *, with_champion: bool) -> list[object]:
    """The evaluate step and the register step that follows it, for one branch of HasChampion."""
    evaluate_name = EVALUATE_VS_CHAMPION_STEP if with_champion else EVALUATE_STEP
    targets = context.targets
    processor = _processor(
        "evaluate", targets, context.options, context.session, context.instance_type
    )
    inputs = [
        _s3_input(
            "model",
            context.train.properties.ModelArtifacts.S3ModelArtifacts,
            contract.EVALUATE_MODEL_DIR,
        ),
        _s3_input(
            "test", Join(on="/", values=[context.prep_uri, "test"]), contract.EVALUATE_DATA_DIR
        ),
        _settings_input(targets),
    ]
    if with_champion:
        inputs.append(
            _s3_input(
                "champion",
                context.check.properties.Outputs["champion_model_url"],
                contract.EVALUATE_CHAMPION_DIR,
            )
        )
    step_args = processor.run(
        inputs=inputs,
        outputs=[
            ProcessingOutput(
                output_name="evaluation",
                s3_output=ProcessingS3Output(
                    s3_uri=context.evaluation_uri,
                    local_path=contract.EVALUATE_OUTPUT_DIR,
                    s3_upload_mode="EndOfJob",
                ),
            )
        ],
        arguments=evaluate_arguments(targets, with_champion=with_champion),
    )
    gate_file = PropertyFile(name="Gate", output_name="evaluation", path=contract.GATE_FILE)
    card_file = PropertyFile(
        name="ModelCard", output_name="evaluation", path=contract.MODEL_CARD_FILE
    )
    evaluate = ProcessingStep(
        name=evaluate_name, step_args=step_args, property_files=[gate_file, card_file]
    )
    register = _register_step(context, evaluate, gate_file, card_file, with_champion=with_champion)
    # Refused: no else steps, so the execution ends as Succeeded with nothing registered.
    passed = ConditionStep(
        name=GATE_VS_CHAMPION_CONDITION_STEP if with_champion else GATE_CONDITION_STEP,
        conditions=[
            ConditionEquals(
                left=JsonGet(step_name=evaluate.name, property_file=gate_file, json_path="passed"),
                right=True,
            )
        ],
        if_steps=[register],
        else_steps=[],
    )
    return [evaluate, passed]


def _as_text(value: JsonGet) -> Join:
    # Model package metadata values must be strings; a JSON number read from a file is not.
    return Join(on="", values=[value])


def gate_metadata(settings: MlopsSettings, *, settings_digest: str) -> dict[str, str]:
    """The gate a registered model passed, as package metadata: thresholds and their source.

    The thresholds are those of the settings artifact every job read (its hash recorded with
    them); no execution parameter can change them, so what is recorded is what was applied.
    """
    gate = settings.gate
    metadata = {
        "gate_primary_metric": gate.primary_metric,
        "gate_champion_tolerance": str(gate.champion_tolerance),
        "gate_champion_confidence": str(gate.champion_confidence),
        "gate_settings_sha256": settings_digest,
    }
    metadata.update({f"gate_min_{m}": str(v) for m, v in gate.min_metrics.items()})
    metadata.update({f"gate_max_{m}": str(v) for m, v in gate.max_metrics.items()})
    return metadata


def _register_step(
    context: _GateContext,
    evaluate: ProcessingStep,
    gate_file: PropertyFile,
    card_file: PropertyFile,
    *,
    with_champion: bool,
) -> ModelStep:
    settings, targets, prep = context.settings, context.targets, context.prep
    lineage_file = prep.property_files[0]
    metadata: dict[str, object] = {
        "git_commit": context.git_commit,
        "data_url": context.input_data,
        "data_fingerprint": JsonGet(
            step_name=prep.name, property_file=lineage_file, json_path="data_fingerprint"
        ),
        "data_rows": _as_text(
            JsonGet(step_name=prep.name, property_file=lineage_file, json_path="rows")
        ),
        "pipeline_execution_arn": ExecutionVariables.PIPELINE_EXECUTION_ARN,
        "model_sha256": JsonGet(
            step_name=evaluate.name, property_file=gate_file, json_path="model_sha256"
        ),
        "gate_champion_package_arn": context.check.properties.Outputs["champion_package_arn"]
        if with_champion
        else "none",
        **gate_metadata(settings, settings_digest=context.settings_digest),
    }
    for key, value in training_hyperparameters(settings).items():
        metadata[f"hp_{key}"] = value
    # Gated metrics are never NaN on a model that passed; the primary metric is compared
    # (so also a number) only when there is a champion.
    recorded = list(context.metric_names)
    if with_champion and settings.gate.primary_metric not in recorded:
        recorded.append(settings.gate.primary_metric)
    for metric in recorded:
        metadata[f"metric_{metric}"] = _as_text(
            JsonGet(
                step_name=evaluate.name, property_file=gate_file, json_path=f"challenger.{metric}"
            )
        )
    builder = ModelBuilder(
        image_uri=targets.image_uri,
        s3_model_data_url=context.train.properties.ModelArtifacts.S3ModelArtifacts,
        role_arn=targets.role_arn,
        sagemaker_session=context.session,
        # ModelBuilder otherwise sets the SDK's shared utils logger to DEBUG for the process.
        log_level=logging.WARNING,
    )
    step_args = builder.register(
        model_package_group_name=targets.model_package_group_name,
        content_types=["text/csv", "application/json"],
        response_types=["application/json"],
        inference_instances=list(context.options.inference_instance_types),
        transform_instances=list(context.options.inference_instance_types),
        approval_status=APPROVAL_STATUS,
        model_metrics=ModelMetrics(
            model_statistics=MetricsSource(
                content_type="application/json",
                s3_uri=Join(on="/", values=[context.evaluation_uri, contract.EVALUATION_FILE]),
            )
        ),
        customer_metadata_properties=metadata,
        # The model card mlcore evaluate wrote for this model, in the model package card
        # schema: reviewers read it on the version's page before approving.
        model_card=ModelPackageModelCard(
            model_card_content=JsonGet(
                step_name=evaluate.name, property_file=card_file, json_path="ModelCardContent"
            ),
            model_card_status=CARD_STATUS,
        ),
    )
    name = REGISTER_VS_CHAMPION_STEP if with_champion else REGISTER_STEP
    return ModelStep(name=name, step_args=step_args)


def _train_with_settings(definition: dict[str, object], targets: PipelineTargets) -> None:
    """Run the training container as ``mlcore train --settings <artifact>``.

    ModelTrainer has no entry-point option, while CreateTrainingJob's AlgorithmSpecification
    takes ContainerEntrypoint (botocore's SageMaker service model); without it SageMaker runs
    ``<image> train``, which would read settings from the working directory.
    """
    for step in _all_steps(definition):
        if step.get("Type") == "Training":
            step["Arguments"]["AlgorithmSpecification"]["ContainerEntrypoint"] = training_command(
                targets
            )


def _run_in_network(definition: dict[str, object], targets: PipelineTargets) -> None:
    """Put every training and processing job in the stage's subnets, isolated.

    The containers read and write only through SageMaker's S3 channels (inputs downloaded,
    outputs uploaded by SageMaker through the VPC's S3 endpoint), so they run with network
    isolation: no call leaves them at all. Traffic between the instances of a job is
    encrypted (each job has one instance today; the setting holds when that changes).
    The SDK's step builders take no VPC for every step type, so it is set here, on the
    CreateTrainingJob/CreateProcessingJob arguments themselves (botocore's shapes).
    """
    if not targets.subnet_ids:
        return
    vpc = {
        "SecurityGroupIds": list(targets.security_group_ids),
        "Subnets": list(targets.subnet_ids),
    }
    for step in _all_steps(definition):
        arguments = step.get("Arguments")
        if not isinstance(arguments, dict):
            continue
        if step.get("Type") == "Training":
            arguments["VpcConfig"] = vpc
            arguments["EnableNetworkIsolation"] = True
            arguments["EnableInterContainerTrafficEncryption"] = True
        elif step.get("Type") == "Processing":
            arguments["NetworkConfig"] = {
                "VpcConfig": vpc,
                "EnableNetworkIsolation": True,
                "EnableInterContainerTrafficEncryption": True,
            }


def _tidy_registered_container(definition: dict[str, Any], region: str) -> None:
    """Replace the SDK's script-mode environment on the registered container with ours.

    ModelBuilder adds SAGEMAKER_PROGRAM/SUBMIT_DIRECTORY (empty: there is no script, the image
    serves with ``mlcore serve``) and the region of the machine that built the definition.
    """
    for step in _all_steps(definition):
        if step.get("Type") != "RegisterModel":
            continue
        for container in step["Arguments"]["InferenceSpecification"]["Containers"]:
            container["Environment"] = {"SAGEMAKER_REGION": region}


def _all_steps(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop()
        yield step
        arguments = step.get("Arguments", {})
        if step.get("Type") == "Condition":
            pending.extend(arguments.get("IfSteps", []))
            pending.extend(arguments.get("ElseSteps", []))
