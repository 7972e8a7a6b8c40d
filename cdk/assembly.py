"""Build the whole CDK app from configuration: the CI/CD stack and one stage per environment.

``app.py``, the tests and ``python -m cdk.summary`` all call ``build_app`` so they synthesise
exactly the same thing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App, Aspects, Environment
from cdk_nag import AwsSolutionsChecks

from cdk.checkov import CheckovJustifications
from cdk.cicd import CICD_STACK_ID, CicdStack
from cdk.config import AwsConfig, load_aws_config
from cdk.monitoring.failures import FailureAlarms, functions_in, state_machines_in
from cdk.monitoring.spark_image import FALLBACK_REGION, spark_base_repository_arn
from cdk.settings_artifact import SettingsSource
from cdk.stage import MlopsStage
from cdk.tagging import tag_environment
from mlcore.settings import MlopsSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MlopsApp:
    """The synthesisable app and handles to its parts (for tests, the summary and extensions)."""

    app: App
    config: AwsConfig
    settings: MlopsSettings
    cicd: CicdStack
    stages: dict[str, MlopsStage]


def silence_sagemaker_sdk_logging() -> None:
    """Only errors from the SageMaker SDK at synth: it logs every default it applies, at INFO
    and DEBUG, on loggers it configures itself (so the parent logger's level is not enough)."""
    for name in list(logging.root.manager.loggerDict):
        if name == "sagemaker" or name.startswith("sagemaker."):
            logging.getLogger(name).setLevel(logging.ERROR)


def cdk_json_context(repository_root: Path) -> dict[str, Any]:
    """The ``context`` of cdk.json, as the CDK CLI would pass it (for in-process synths)."""
    path = repository_root / "cdk.json"
    try:
        context = json.loads(path.read_text())["context"]
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise ValueError(f"cannot read the context from {path}: {exc}") from exc
    if not isinstance(context, dict):
        raise ValueError(f'"context" in {path} must be an object')
    return context


def watch_failures(stage: MlopsStage) -> FailureAlarms:
    """Alarm on every Lambda error, failed model build and failed release of ``stage``.

    Built once the stage is complete, so functions and state machines that other constructs
    added (the release flow, the pipeline's CheckInputs) are all found; the alarms live in the
    serving stack, beside the topic, and reach into the stacks it already depends on.
    """
    serving = stage.serving_stack
    build = stage.model_build_stack.model_build
    scopes = [stage.model_build_stack, stage.release_state_stack, serving]
    return FailureAlarms(
        serving,
        "FailureAlarms",
        topic=serving.alerts,
        functions=functions_in(scopes),
        pipeline_names=[build.pipeline_name] if build is not None else [],
        state_machines=state_machines_in(scopes),
        prefix=serving.props.endpoint.endpoint_name,
        transform_job_prefixes=[serving.batch.job_name_prefix] if serving.batch else [],
    )


def _spark_base_repositories(config: AwsConfig, settings: MlopsSettings) -> list[str]:
    """SageMaker's Spark image repositories the stages' Spark monitor images are built FROM."""
    if settings.monitoring.engine == "streaming":
        return []
    regions = {stage.region or config.toolchain.region for stage in config.stages.values()}
    return sorted({spark_base_repository_arn(region or FALLBACK_REGION) for region in regions})


def build_app(app: App, *, repository_root: Path, nag: bool = True) -> MlopsApp:
    """Read the ``mlops`` context and mlops.yaml, then build the CI/CD stack and every stage.

    With ``nag`` (the default) cdk-nag's AwsSolutions checks run over every stack at synth;
    unsuppressed findings are error annotations, which make ``cdk synth`` fail.
    """
    config = load_aws_config(app.node.get_all_context())
    # Resolved from the repository root, never the working directory, and parsed once: the
    # jobs and monitors receive this very file (cdk.settings_artifact).
    source = SettingsSource.resolve(repository_root, config.settings_file)
    config = config.model_copy(update={"settings_file": str(source.path)})
    settings = source.settings
    logger.info("building %d stages from %s", len(config.stages), source.path)

    cicd = CicdStack(
        app,
        CICD_STACK_ID,
        source_config=config.source,
        project=settings.project,
        docker_base_repositories=_spark_base_repositories(config, settings),
        env=Environment(account=config.toolchain.account, region=config.toolchain.region),
        description=f"{settings.project}: self-mutating CI/CD pipeline for the MLOps environments",
    )
    stages: dict[str, MlopsStage] = {}
    for name, stage_config in config.stages.items():
        stage = MlopsStage(
            cicd,
            name.capitalize(),
            stage_name=name,
            stage_config=stage_config,
            aws_config=config,
            settings=settings,
        )
        watch_failures(stage)
        tag_environment(stage, project=settings.project, environment=name)
        # The checkov findings the app accepts, with their reasons (cdk/checkov.py).
        Aspects.of(stage).add(CheckovJustifications())
        if nag:
            # Aspects do not cross Stage boundaries, and CDK Pipelines synthesises each stage
            # when the pipeline is built: each stage gets its own checks, added before that.
            Aspects.of(stage).add(AwsSolutionsChecks(verbose=True))
        cicd.add_environment(stage)
        stages[name] = stage
    tag_environment(cicd, project=settings.project, environment="toolchain", component="cicd")
    Aspects.of(app).add(CheckovJustifications())
    if nag:
        Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    cicd.finalize()
    return MlopsApp(app=app, config=config, settings=settings, cicd=cicd, stages=stages)
