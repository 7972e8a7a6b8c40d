"""A release's stack update is allowed by IAM, as CloudFormation will evaluate it.

The release flow updates each serving stack through the environment's deploy role, passing the
serving change role; CloudFormation then acts as that role for every resource the update
creates, updates, replaces or deletes. tests/deploy/test_deploy_release.py plays CloudFormation
with a double; this module checks what the double hides: every permission the resource
providers' handlers need (their schemas, as cfn-lint ships them), for every resource a release
changes in every serving template of the four-account app, in both states of the condition a
release flips (no model -> first model -> next model -> no model), on the ARNs those resources
will have, decided by an IAM policy simulator (tests/support/mlops_testing).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from mlops_testing.cloudformation import CloudAssembly, ResolvedStack
from mlops_testing.handlers import Change, changes, requests_for
from mlops_testing.iam import Decision, IamSimulator, Request

pytestmark = pytest.mark.xdist_group("cdk_synth")

ACCOUNTS = {"dev": "111111111111", "staging": "222222222222", "prod": "333333333333"}
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def assembly(four_accounts: Any) -> CloudAssembly:
    return CloudAssembly.load(four_accounts.outdir)


@pytest.fixture(scope="module")
def simulator() -> IamSimulator:
    return IamSimulator()


def _states(assembly: CloudAssembly, environment: str) -> list[ResolvedStack]:
    """The serving stack with no model, a first and a second released package."""
    account = ACCOUNTS[environment]
    group = f"arn:aws:sagemaker:{REGION}:{account}:model-package/acme-{environment}-models"
    pointers = [("none", "none"), (f"{group}/1", "sha256:" + "1" * 64)]
    pointers.append((f"{group}/2", "sha256:" + "2" * 64))
    return [
        assembly.stack(f"{environment.capitalize()}-Serving", ModelPackageArn=arn, ModelSha256=sha)
        for arn, sha in pointers
    ]


def _release_changes(states: list[ResolvedStack]) -> list[Change]:
    first, second, removed = (0, 1), (1, 2), (2, 0)
    return [c for a, b in (first, second, removed) for c in changes(states[a], states[b])]


def _decide(simulator: IamSimulator, requests: list[Request]) -> list[Decision]:
    unique = {
        (r.principal, r.action, r.resource, json.dumps(r.context, sort_keys=True)): r
        for r in requests
    }
    return simulator.decide(list(unique.values()))


def _handler_requests(states: list[ResolvedStack]) -> tuple[list[Change], list[Request]]:
    role = states[0].role("ReleaseChangeRole")
    found = _release_changes(states)
    requests: list[Request] = []
    unplaced: list[str] = []
    for change in found:
        placement = requests_for(change, role)
        requests += placement.requests
        unplaced += placement.unplaced
    assert unplaced == [], "handler permissions without a known resource:\n" + "\n".join(unplaced)
    return found, requests


def test_cloudformation_as_the_change_role_may_make_every_change_of_a_release(
    assembly: CloudAssembly, simulator: IamSimulator
) -> None:
    requests: list[Request] = []
    for environment in ACCOUNTS:
        found, placed = _handler_requests(_states(assembly, environment))
        assert found, f"a release changes nothing in {environment}?"
        requests += placed
    denied = [str(d) for d in _decide(simulator, requests) if not d.allowed]
    assert denied == [], "\n".join(denied)


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_a_first_release_creates_the_endpoint_and_its_scaling_but_no_iam_resource(
    assembly: CloudAssembly, environment: str
) -> None:
    states = _states(assembly, environment)
    created = {c.type_ for c in changes(states[0], states[1]) if c.operation == "create"}
    assert created == {
        "AWS::SageMaker::Model",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::Endpoint",
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
    }


def test_a_next_release_replaces_the_model_and_config_and_updates_the_endpoint(
    assembly: CloudAssembly,
) -> None:
    states = _states(assembly, "prod")
    found = {(c.type_, c.operation) for c in changes(states[1], states[2])}
    assert found == {
        ("AWS::SageMaker::Model", "create"),
        ("AWS::SageMaker::Model", "delete"),
        ("AWS::SageMaker::EndpointConfig", "create"),
        ("AWS::SageMaker::EndpointConfig", "delete"),
        ("AWS::SageMaker::Endpoint", "update"),
    }


def _with_resources(assembly: CloudAssembly, stack: str, extra: dict[str, Any]) -> CloudAssembly:
    """The assembly with resources added to one stack's template (as a later change might)."""
    artifacts = []
    for artifact in assembly.artifacts.values():
        if artifact.stack_name.endswith(stack):
            template = json.loads(json.dumps(artifact.template))
            template["Resources"].update(extra)
            artifact = dataclasses.replace(artifact, template=template)
        artifacts.append(artifact)
    return CloudAssembly(artifacts)


def test_a_resource_added_to_the_release_that_the_change_role_cannot_manage_is_refused(
    assembly: CloudAssembly, simulator: IamSimulator
) -> None:
    # What finding 1 was: a role created with the endpoint. And a queue, a type the role
    # was never meant to touch.
    extra = {
        "AddedRole": {
            "Type": "AWS::IAM::Role",
            "Condition": "HasApprovedModel",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "sagemaker.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            },
        },
        "AddedQueue": {"Type": "AWS::SQS::Queue", "Condition": "HasApprovedModel"},
    }
    mutated = _with_resources(assembly, "Prod-Serving", extra)
    _, requests = _handler_requests(_states(mutated, "prod"))
    denied = {
        (d.request.action, d.request.resource.rsplit(":", 1)[-1].split("/")[-1])
        for d in _decide(simulator, requests)
        if not d.allowed
    }
    stack = mutated.stack("Prod-Serving")
    assert ("iam:CreateRole", stack.physical_name("AddedRole")) in denied
    assert ("sqs:CreateQueue", stack.physical_name("AddedQueue")) in denied
    assert {action for action, _ in denied} >= {"iam:DeleteRole", "sqs:DeleteQueue"}


def _ssm_parameter_arn(stack: ResolvedStack, name: str) -> str:
    return f"arn:aws:ssm:{stack.region}:{stack.account}:parameter/{name.lstrip('/')}"


@pytest.mark.parametrize("environment", list(ACCOUNTS))
def test_the_deploy_role_may_start_a_release_update_of_its_serving_stack(
    assembly: CloudAssembly, simulator: IamSimulator, environment: str
) -> None:
    serving = assembly.stack(f"{environment.capitalize()}-Serving")
    deploy_role = assembly.stack(f"{environment.capitalize()}-ReleaseState").role(
        "ReleaseAccessDeployRole"
    )
    change_role = serving.role("ReleaseChangeRole")
    stack_arn = serving.ref("AWS::StackId")
    # UpdateStack resolves the template's SSM-typed parameters with the caller's credentials:
    # the pointer and CDK's bootstrap version.
    ssm_parameters = [
        str(declared["Default"])
        for declared in serving.template["Parameters"].values()
        if declared["Type"].startswith("AWS::SSM::Parameter::Value")
    ]
    assert "/cdk-bootstrap/hnb659fds/version" in ssm_parameters
    requests = [
        Request.by(
            deploy_role,
            "cloudformation:UpdateStack",
            stack_arn,
            context={"cloudformation:RoleArn": change_role.arn},
        ),
        Request.by(deploy_role, "cloudformation:DescribeStacks", stack_arn),
        Request.by(
            deploy_role,
            "iam:PassRole",
            change_role.arn,
            context={"iam:PassedToService": "cloudformation.amazonaws.com"},
        ),
        *(
            Request.by(deploy_role, "ssm:GetParameters", _ssm_parameter_arn(serving, name))
            for name in ssm_parameters
        ),
    ]
    denied = [str(d) for d in simulator.decide(requests) if not d.allowed]
    assert denied == [], "\n".join(denied)
    # And only with the change role: the stack's last role (CDK's admin role) stays out of reach.
    other = f"arn:aws:iam::{ACCOUNTS[environment]}:role/cdk-hnb659fds-cfn-exec-role"
    (without,) = simulator.decide(
        [
            Request.by(
                deploy_role,
                "cloudformation:UpdateStack",
                stack_arn,
                context={"cloudformation:RoleArn": other},
            )
        ]
    )
    assert not without.allowed
