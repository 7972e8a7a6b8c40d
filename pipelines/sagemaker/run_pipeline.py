"""Start a model-build pipeline execution and, optionally, wait for it, printing step statuses.

CI/CD runs this after deploying an environment (the "train on commit" trigger); people run it
to start a training run by hand::

    python -m pipelines.sagemaker.run_pipeline --pipeline-name <project>-dev-model-build \\
        --parameter GitCommit=$(git rev-parse HEAD) --wait --timeout-minutes 120

Exit codes: 0 the execution succeeded (or was started, without ``--wait``), including when it
trained nothing (no data) or the quality gate refused the challenger: a refused model is an
outcome, not a broken build, so CI/CD goes on delivering the infrastructure; 1 it failed or
was stopped; 2 bad arguments or an AWS error; 4 the wait timed out (the execution is stopped
unless ``--keep-running-on-timeout``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
import botocore.session
from botocore.credentials import CredentialProvider, DeferredRefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

#: The pipeline's first step (pipelines.sagemaker.definition.CHECK_STEP); kept here so the CI
#: image needs only boto3, not the SageMaker SDK that definition.py imports.
CHECK_STEP = "CheckInputs"
#: The conditions that read the gate's decision (definition.GATE_CONDITION_STEP and
#: GATE_VS_CHAMPION_CONDITION_STEP), likewise.
GATE_STEPS = ("PassedGate", "PassedGateVsChampion")
TERMINAL_STATUSES = frozenset({"Succeeded", "Failed", "Stopped"})
EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_ERROR = 2
EXIT_TIMEOUT = 4


@dataclass(frozen=True)
class StepStatus:
    """One step of an execution as SageMaker reports it."""

    name: str
    status: str
    failure_reason: str | None = None
    # A Lambda step's output parameters (the CheckInputs step says why a run trained nothing).
    outputs: tuple[tuple[str, str], ...] = ()
    # A condition step's outcome: "True" or "False".
    outcome: str | None = None

    def describe(self) -> str:
        text = f"{self.name}: {self.status}"
        return f"{text} ({self.failure_reason})" if self.failure_reason else text


@dataclass(frozen=True)
class ExecutionResult:
    """How a wait ended: the execution's final (or last seen) status and its steps."""

    execution_arn: str
    status: str
    steps: tuple[StepStatus, ...]
    timed_out: bool = False
    failure_reason: str | None = None


def parse_parameters(pairs: Sequence[str]) -> dict[str, str]:
    """``["GitCommit=abc", "MinAuc=0.8"]`` -> ``{"GitCommit": "abc", "MinAuc": "0.8"}``."""
    parameters: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(
                f"pipeline parameter {pair!r} must look like Name=value, e.g. GitCommit=abc123"
            )
        if name in parameters:
            raise ValueError(f"pipeline parameter {name!r} is given twice")
        parameters[name] = value
    return parameters


def start_execution(
    client: Any,
    pipeline_name: str,
    *,
    parameters: Mapping[str, str] | None = None,
    display_name: str | None = None,
    description: str | None = None,
) -> str:
    """Start an execution and return its ARN. Unknown parameter names are an error.

    SageMaker silently ignores a parameter the pipeline does not declare, so a misspelt
    threshold would run with its default: we check names against the definition first.
    """
    parameters = dict(parameters or {})
    if parameters:
        declared = _declared_parameters(client, pipeline_name)
        unknown = sorted(set(parameters) - declared)
        if unknown:
            raise ValueError(
                f"{pipeline_name} has no parameter(s) {unknown}; it declares {sorted(declared)}"
            )
    request: dict[str, Any] = {
        "PipelineName": pipeline_name,
        "PipelineParameters": [{"Name": k, "Value": v} for k, v in parameters.items()],
    }
    if display_name:
        request["PipelineExecutionDisplayName"] = display_name
    if description:
        request["PipelineExecutionDescription"] = description
    arn: str = client.start_pipeline_execution(**request)["PipelineExecutionArn"]
    logger.info("started %s", arn)
    return arn


def step_statuses(client: Any, execution_arn: str) -> tuple[StepStatus, ...]:
    """The execution's steps in the order they started."""
    steps: list[StepStatus] = []
    paginator_args: dict[str, Any] = {
        "PipelineExecutionArn": execution_arn,
        "SortOrder": "Ascending",
    }
    while True:
        page = client.list_pipeline_execution_steps(**paginator_args)
        for step in page.get("PipelineExecutionSteps", []):
            steps.append(
                StepStatus(
                    name=step["StepName"],
                    status=step.get("StepStatus", "Unknown"),
                    failure_reason=step.get("FailureReason"),
                    outputs=tuple(
                        (o["Name"], o.get("Value", ""))
                        for o in step.get("Metadata", {})
                        .get("Lambda", {})
                        .get("OutputParameters", [])
                    ),
                    outcome=step.get("Metadata", {}).get("Condition", {}).get("Outcome"),
                )
            )
        token = page.get("NextToken")
        if not token:
            return tuple(steps)
        paginator_args["NextToken"] = token


def wait_for_execution(
    client: Any,
    execution_arn: str,
    *,
    timeout_seconds: float,
    poll_seconds: float = 30.0,
    on_change: Callable[[tuple[StepStatus, ...]], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ExecutionResult:
    """Poll until the execution ends or ``timeout_seconds`` pass; report step changes."""
    if timeout_seconds <= 0 or poll_seconds <= 0:
        raise ValueError(
            f"timeout_seconds and poll_seconds must be positive; got {timeout_seconds}, {poll_seconds}"
        )
    deadline = clock() + timeout_seconds
    last_steps: tuple[StepStatus, ...] | None = None
    while True:
        described = client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
        status = described["PipelineExecutionStatus"]
        steps = step_statuses(client, execution_arn)
        if steps != last_steps and on_change is not None:
            on_change(steps)
        last_steps = steps
        if status in TERMINAL_STATUSES:
            return ExecutionResult(
                execution_arn, status, steps, failure_reason=described.get("FailureReason")
            )
        if clock() >= deadline:
            return ExecutionResult(execution_arn, status, steps, timed_out=True)
        sleep(min(poll_seconds, max(deadline - clock(), 0.0)))


def skipped_reason(steps: Sequence[StepStatus]) -> str | None:
    """Why a succeeded execution trained nothing (no data), from its CheckInputs step."""
    for step in steps:
        outputs = dict(step.outputs)
        if step.name == CHECK_STEP and outputs.get("has_data") == "false":
            return outputs.get("message") or "no training data"
    return None


def refused_by_gate(steps: Sequence[StepStatus]) -> str | None:
    """Which gate refused the challenger of a succeeded execution (nothing was registered)."""
    for step in steps:
        if step.name in GATE_STEPS and step.status == "Succeeded" and step.outcome == "False":
            evaluate = "EvaluateVsChampion" if step.name.endswith("VsChampion") else "Evaluate"
            return (
                f"the quality gate refused the challenger ({step.name}); its reasons are in "
                f"gate.json of the {evaluate} step's output"
            )
    return None


def _declared_parameters(client: Any, pipeline_name: str) -> set[str]:
    described = client.describe_pipeline(PipelineName=pipeline_name)
    definition = json.loads(described["PipelineDefinition"])
    return {parameter["Name"] for parameter in definition.get("Parameters", [])}


def assumed_role_session(
    role_arn: str,
    *,
    region: str | None = None,
    source: boto3.Session | None = None,
    session_name: str = "mlops-run-pipeline",
    duration_seconds: int = 3600,
    time_fetcher: Callable[[], datetime] | None = None,
) -> boto3.Session:
    """A session acting as ``role_arn`` whose credentials are renewed before they expire.

    CodeBuild already runs as a role, so assuming the environment's CI role is role chaining,
    which IAM caps at one hour whatever the role's MaxSessionDuration ("Role chaining limits
    your session to a maximum of one hour", IAM User Guide, Roles terms). A training wait runs
    for hours (``train_timeout_minutes``, 180 by default), so the credentials are botocore
    refreshable credentials: botocore calls AssumeRole again from the source credentials
    (themselves refreshed by CodeBuild) whenever fewer than 15 minutes remain.
    """
    source = source or boto3.Session(region_name=region)
    if source.get_credentials() is None:
        raise ValueError(
            f"no AWS credentials to assume {role_arn} with: configure credentials (aws "
            "configure, AWS_PROFILE or the CodeBuild role) or leave out --assume-role-arn"
        )
    sts = source.client("sts", region_name=region or source.region_name)

    def assume() -> dict[str, str]:
        issued = sts.assume_role(
            RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=duration_seconds
        )["Credentials"]
        logger.info("assumed %s until %s", role_arn, issued["Expiration"].isoformat())
        return {
            "access_key": issued["AccessKeyId"],
            "secret_key": issued["SecretAccessKey"],
            "token": issued["SessionToken"],
            "expiry_time": issued["Expiration"].isoformat(),
        }

    options = {"time_fetcher": time_fetcher} if time_fetcher is not None else {}
    credentials = DeferredRefreshableCredentials(
        refresh_using=assume, method="assume-role", **options
    )
    core = botocore.session.Session()
    # Ahead of the environment and profile providers: this session acts only as role_arn.
    core.get_component("credential_provider").insert_before(
        "env", _FixedCredentialProvider(credentials)
    )
    return boto3.Session(botocore_session=core, region_name=region or source.region_name)


class _FixedCredentialProvider(CredentialProvider):  # type: ignore[misc]
    METHOD = "mlops-assume-role"
    CANONICAL_NAME = "custom-mlops-assume-role"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


def sagemaker_client(*, region: str | None = None, assume_role_arn: str | None = None) -> Any:
    """A SageMaker client, acting as ``assume_role_arn`` (refreshed for long waits) when given."""
    if assume_role_arn:
        return assumed_role_session(assume_role_arn, region=region).client("sagemaker")
    return boto3.Session(region_name=region).client("sagemaker")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.sagemaker.run_pipeline",
        description="Start a SageMaker model-build pipeline execution and optionally wait for it.",
    )
    parser.add_argument(
        "--pipeline-name", required=True, help="e.g. <project>-dev-model-build (a stack output)"
    )
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="pipeline parameter override, repeatable (GitCommit, InputDataUrl, MinAuc, ...)",
    )
    parser.add_argument("--display-name", help="execution display name")
    parser.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    parser.add_argument(
        "--assume-role-arn", help="role to assume first (the environment's CI role)"
    )
    parser.add_argument("--wait", action="store_true", help="wait for the execution to finish")
    parser.add_argument(
        "--timeout-minutes", type=float, default=120.0, help="give up waiting after this"
    )
    parser.add_argument(
        "--poll-seconds", type=float, default=30.0, help="time between status checks"
    )
    parser.add_argument(
        "--keep-running-on-timeout",
        action="store_true",
        help="leave the execution running when the wait times out (default: stop it)",
    )
    return parser


def main(argv: Sequence[str] | None = None, *, client: Any | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        parameters = parse_parameters(args.parameter)
        client = client or sagemaker_client(
            region=args.region, assume_role_arn=args.assume_role_arn
        )
        arn = start_execution(
            client, args.pipeline_name, parameters=parameters, display_name=args.display_name
        )
        print(f"started {arn}")
        if not args.wait:
            return EXIT_SUCCEEDED

        def report(steps: tuple[StepStatus, ...]) -> None:
            print("steps: " + ("; ".join(step.describe() for step in steps) or "none started yet"))

        result = wait_for_execution(
            client,
            arn,
            timeout_seconds=args.timeout_minutes * 60,
            poll_seconds=args.poll_seconds,
            on_change=report,
        )
        if result.timed_out:
            print(
                f"timed out after {args.timeout_minutes} minutes; last status {result.status}",
                file=sys.stderr,
            )
            if not args.keep_running_on_timeout:
                client.stop_pipeline_execution(PipelineExecutionArn=arn)
                print(f"stopped {arn}", file=sys.stderr)
            return EXIT_TIMEOUT
        print(
            f"execution {result.status}"
            + (f": {result.failure_reason}" if result.failure_reason else "")
        )
        skipped = skipped_reason(result.steps) if result.status == "Succeeded" else None
        if skipped:
            # Not a failure (the first deploy has an empty bucket), but say it loudly.
            print(f"no model was trained: {skipped}")
        refused = refused_by_gate(result.steps) if result.status == "Succeeded" else None
        if refused:
            # An outcome, not a broken build: nothing is registered, the release is untouched.
            print(f"no model was registered: {refused}")
        return EXIT_SUCCEEDED if result.status == "Succeeded" else EXIT_FAILED
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (ClientError, BotoCoreError) as exc:
        print(f"AWS error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
