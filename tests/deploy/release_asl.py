"""Run the synthesised release state machine locally: a small Amazon States Language interpreter.

Step Functions cannot run offline (moto's Step Functions backend does not execute tasks), so
the tests execute the definition CDK synthesised, state by state, with the Lambda tasks
dispatched to the real handlers and SNS publications recorded. It covers exactly what the
release flow uses: Pass (Parameters, ResultPath), Task (lambda:invoke, sns:publish and its
.waitForTaskToken form, with ResultSelector, ResultPath and Catch), Choice (StringEquals,
BooleanEquals, Default), Wait (not waited: it moves the execution's clock on), Succeed and
Fail, the context object's ``$$.State.EnteredTime`` and ``$$.Task.Token``, and the intrinsic
States.Format. Semantics follow the Amazon States Language specification
(states-language.net/spec.html): input/output processing and error catching.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_cdk.assertions import Template

ACCOUNT, REGION = "111111111111", "eu-west-1"


def resolved_definition(template: Template) -> dict[str, Any]:
    """The state machine's definition with CloudFormation tokens replaced by plausible values.

    A function's ARN ends in its logical id, so the runner can find its handler.
    """
    machines = template.find_resources("AWS::StepFunctions::StateMachine")
    assert len(machines) == 1, sorted(machines)
    parts = next(iter(machines.values()))["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(_resolve(part) for part in parts)
    return json.loads(text)


def _resolve(part: Any) -> str:
    if isinstance(part, str):
        return part
    if "Ref" in part:
        return {
            "AWS::Partition": "aws",
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::URLSuffix": "amazonaws.com",
        }.get(part["Ref"], f"arn:aws:sns:{REGION}:{ACCOUNT}:{part['Ref']}")
    if "Fn::GetAtt" in part:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{part['Fn::GetAtt'][0]}"
    raise AssertionError(f"unexpected token in the definition: {part}")


class TaskFailed(Exception):
    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


@dataclass
class Execution:
    """One run: the states visited, the SNS messages published, and how it ended."""

    path: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    status: str = "RUNNING"
    output: Any = None
    error: str | None = None


# A Lambda task: (function logical id, payload) -> the function's return value.
Invoke = Callable[[str, Any], Any]
# A task-token request: (message) -> None to succeed, or (error, cause) to fail it.
Approve = Callable[[dict[str, Any]], tuple[str, str] | None]
# How far the execution's clock moves at a Wait state: (state name, its seconds) -> seconds.
Advance = Callable[[str, int], int]
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def run(
    definition: dict[str, Any],
    event: Any,
    *,
    invoke: Invoke,
    approve: Approve | None = None,
    advance: Advance | None = None,
    max_transitions: int = 500,
) -> Execution:
    execution = Execution()
    states = definition["States"]
    name = definition["StartAt"]
    data = copy.deepcopy(event)
    clock = START
    for _ in range(max_transitions):
        state = states[name]
        execution.path.append(name)
        context = {"State": {"Name": name, "EnteredTime": clock.isoformat().replace("+00:00", "Z")}}
        kind = state["Type"]
        if kind == "Succeed":
            execution.status, execution.output = "SUCCEEDED", data
            return execution
        if kind == "Fail":
            execution.status, execution.error = "FAILED", state.get("Cause")
            return execution
        if kind == "Choice":
            name = _choose(state, data)
            continue
        if kind == "Wait":
            seconds = int(state["Seconds"])
            clock += timedelta(seconds=advance(name, seconds) if advance else seconds)
            name = state["Next"]
            continue
        if kind == "Pass":
            result = (
                _parameters(state["Parameters"], data, context=context)
                if "Parameters" in state
                else data
            )
            data = _put(data, state.get("ResultPath", "$"), result)
            name = state["Next"]
            continue
        assert kind == "Task", kind
        try:
            result = _task(state, data, invoke, approve, execution, context)
        except TaskFailed as failure:
            catcher = next(
                (
                    c
                    for c in state.get("Catch", [])
                    if "States.ALL" in c["ErrorEquals"] or failure.error in c["ErrorEquals"]
                ),
                None,
            )
            if catcher is None:
                execution.status, execution.error = "FAILED", str(failure)
                return execution
            data = _put(
                data,
                catcher.get("ResultPath", "$"),
                {"Error": failure.error, "Cause": failure.cause},
            )
            name = catcher["Next"]
            continue
        if "ResultSelector" in state:
            result = _parameters(state["ResultSelector"], result)
        data = _put(data, state.get("ResultPath", "$"), result)
        if state.get("End"):
            execution.status, execution.output = "SUCCEEDED", data
            return execution
        name = state["Next"]
    raise AssertionError(f"no end after {max_transitions} transitions: {execution.path[-20:]}")


def _task(
    state: dict[str, Any],
    data: Any,
    invoke: Invoke,
    approve: Approve | None,
    execution: Execution,
    context: dict[str, Any],
) -> Any:
    resource = state["Resource"]
    parameters = _parameters(
        state["Parameters"], data, context={**context, "Task": {"Token": "token-1"}}
    )
    if resource.endswith(":states:::lambda:invoke"):
        function = parameters["FunctionName"].rsplit(":", 1)[-1]
        try:
            payload = invoke(function, parameters["Payload"])
        except Exception as exc:  # a Lambda error, as Step Functions reports it
            raise TaskFailed(
                type(exc).__name__,
                json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__}),
            ) from exc
        # What Lambda returns travels through JSON.
        return {"Payload": json.loads(json.dumps(payload)), "StatusCode": 200}
    if resource.endswith(":states:::sns:publish"):
        execution.messages.append(parameters)
        return {"MessageId": f"m-{len(execution.messages)}"}
    if resource.endswith(":states:::sns:publish.waitForTaskToken"):
        execution.messages.append(parameters)
        assert approve is not None, "a task token waits for an answer: pass approve"
        answer = approve(parameters)
        if answer is not None:
            raise TaskFailed(*answer)
        return True
    raise AssertionError(f"unsupported resource {resource}")


def _choose(state: dict[str, Any], data: Any) -> str:
    for rule in state.get("Choices", []):
        value = _get(data, rule["Variable"])
        if "StringEquals" in rule and value == rule["StringEquals"]:
            return str(rule["Next"])
        if "BooleanEquals" in rule and value is rule["BooleanEquals"]:
            return str(rule["Next"])
    if "Default" not in state:
        raise TaskFailed("States.NoChoiceMatched", json.dumps(state.get("Choices")))
    return str(state["Default"])


_FORMAT = re.compile(r"^States\.Format\('((?:[^'\\]|\\.)*)',\s*(\$[^)]*)\)$")


def _parameters(template: Any, data: Any, *, context: dict[str, Any] | None = None) -> Any:
    if isinstance(template, list):
        return [_parameters(item, data, context=context) for item in template]
    if not isinstance(template, dict):
        return template
    result: dict[str, Any] = {}
    for key, value in template.items():
        if not key.endswith(".$"):
            result[key] = _parameters(value, data, context=context)
            continue
        if value.startswith("$$."):
            result[key[:-2]] = _get(context or {}, "$" + value[2:])
            continue
        match = _FORMAT.match(value)
        if match:
            text = match[1].replace("\\'", "'")
            result[key[:-2]] = text.replace("{}", str(_get(data, match[2])), 1)
            continue
        result[key[:-2]] = _get(data, value)
    return result


def _path(path: str) -> list[str]:
    assert path == "$" or path.startswith("$."), path
    return [] if path == "$" else path[2:].split(".")


def _get(data: Any, path: str) -> Any:
    node = data
    for part in _path(path):
        if not isinstance(node, dict) or part not in node:
            raise TaskFailed("States.Runtime", f"path {path} not found in {json.dumps(data)[:300]}")
        node = node[part]
    return node


def _put(data: Any, path: str | None, value: Any) -> Any:
    if path is None:  # ResultPath: null keeps the input
        return data
    parts = _path(path)
    if not parts:
        return value
    result = copy.deepcopy(data)
    node = result
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return result
