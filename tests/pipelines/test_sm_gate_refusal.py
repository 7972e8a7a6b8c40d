"""A challenger the quality gate refuses is an outcome, not a broken build.

The model-build pipeline registers a challenger only when mlcore's gate passed it (the
PassedGate condition reads gate.json); a refused one ends the execution as Succeeded with
nothing registered, and the CI/CD step that waits for the run (run_pipeline, TrainDev) says so
and exits 0, so the pipeline goes on to deploy staging and prod. A crash in the evaluate step
still fails the run and the step.

SageMaker's answers to run_pipeline come through botocore's Stubber (moto does not run
pipeline steps), in the shapes of botocore's service model.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from pipelines.sagemaker import definition as sm_definition
from pipelines.sagemaker import run_pipeline

REGION = "us-east-1"
PIPELINE = "acme-dev-model-build"
EXECUTION_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/{PIPELINE}/execution/x1"


def _args(step: dict[str, Any]) -> list[str]:
    app = step["Arguments"]["AppSpecification"]
    return [*app["ContainerEntrypoint"], *app["ContainerArguments"]]


@pytest.mark.parametrize(
    ("evaluate", "gate", "register"),
    [
        ("Evaluate", "PassedGate", "RegisterModel"),
        ("EvaluateVsChampion", "PassedGateVsChampion", "RegisterVsChampion"),
    ],
)
def test_only_a_challenger_the_gate_passed_is_registered(
    steps: dict[str, dict[str, Any]], evaluate: str, gate: str, register: str
) -> None:
    assert "--fail-on-gate" not in _args(steps[evaluate])
    condition = steps[gate]["Arguments"]
    (passed,) = condition["Conditions"]
    assert passed["Type"] == "Equals" and passed["RightValue"] is True
    assert passed["LeftValue"]["Std:JsonGet"]["Path"] == "passed"
    assert passed["LeftValue"]["Std:JsonGet"]["PropertyFile"] == {
        "Get": f"Steps.{evaluate}.PropertyFiles.Gate"
    }
    assert [s["Name"] for s in condition["IfSteps"]] == [register]
    assert condition["ElseSteps"] == []


def test_the_ci_wait_knows_the_gate_conditions_by_their_names() -> None:
    assert set(run_pipeline.GATE_STEPS) == {
        sm_definition.GATE_CONDITION_STEP,
        sm_definition.GATE_VS_CHAMPION_CONDITION_STEP,
    }


def _run(status: str, steps: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> int:
    client = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    stubber.add_response(
        "start_pipeline_execution",
        {"PipelineExecutionArn": EXECUTION_ARN},
        {"PipelineName": PIPELINE, "PipelineParameters": []},
    )
    stubber.add_response(
        "describe_pipeline_execution",
        {"PipelineExecutionArn": EXECUTION_ARN, "PipelineExecutionStatus": status},
        {"PipelineExecutionArn": EXECUTION_ARN},
    )
    stubber.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": steps},
        {"PipelineExecutionArn": EXECUTION_ARN, "SortOrder": "Ascending"},
    )
    with stubber:
        return run_pipeline.main(
            ["--pipeline-name", PIPELINE, "--wait", "--poll-seconds", "1"], client=client
        )


def test_a_challenger_refused_by_the_gate_does_not_fail_the_ci_step(
    capsys: pytest.CaptureFixture[str],
) -> None:
    steps = [
        {"StepName": "EvaluateVsChampion", "StepStatus": "Succeeded"},
        {
            "StepName": "PassedGateVsChampion",
            "StepStatus": "Succeeded",
            "Metadata": {"Condition": {"Outcome": "False"}},
        },
    ]
    assert _run("Succeeded", steps, capsys) == run_pipeline.EXIT_SUCCEEDED
    out = capsys.readouterr().out
    assert "no model was registered: the quality gate refused the challenger" in out
    assert "EvaluateVsChampion" in out


def test_a_challenger_the_gate_passed_is_not_reported_as_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    steps = [
        {
            "StepName": "PassedGate",
            "StepStatus": "Succeeded",
            "Metadata": {"Condition": {"Outcome": "True"}},
        },
        {"StepName": "RegisterModel", "StepStatus": "Succeeded"},
    ]
    assert _run("Succeeded", steps, capsys) == run_pipeline.EXIT_SUCCEEDED
    assert "refused" not in capsys.readouterr().out


def test_a_crash_while_evaluating_still_fails_the_ci_step(
    capsys: pytest.CaptureFixture[str],
) -> None:
    steps = [
        {
            "StepName": "Evaluate",
            "StepStatus": "Failed",
            "FailureReason": "AlgorithmError: See job logs for more detail.",
        }
    ]
    assert _run("Failed", steps, capsys) == run_pipeline.EXIT_FAILED
