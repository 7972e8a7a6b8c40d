"""Drift in staging or prod retrains in dev (the model-build account), in moto across accounts.

What runs is the real code: the serving account's retrain gate (``retrain.handler``) and dev's
receiver (``retrain.receive_handler``), with the rules, bus name and bus policy read from the
synthesised four-account templates. moto 5.2 is multi-account (credentials from AssumeRole
into another account's role act in that account) and delivers a rule's event-bus target in
another account (moto/events/models.py, ``Rule.send_to_targets``). What moto does not do,
checked in its source: it does not enforce the receiving bus's policy (``put_permission``
stores it), it invokes no Lambda targets (SQS queues stand in, behind the deployed patterns),
and it stamps a forwarded event with the *receiving* account, where EventBridge keeps the
sender's (botocore's events model, PutPermission: "Rules with an account field do not match
any events sent from other accounts"). The receiver's account filter is therefore checked on
the template (tests/cdk/test_cdk_cross_account.py) and here on the event as EventBridge
delivers it, with the sender's account put back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipelines.monitoring import retrain

pytestmark = pytest.mark.xdist_group("cdk_synth")

REGION = "eu-west-1"
ACCOUNTS = {"dev": "111111111111", "staging": "222222222222", "prod": "333333333333"}
DEV_PIPELINE = "acme-dev-model-build"
TABLE = "serving-state"
NOW = datetime(2026, 3, 2, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def deployed(four_accounts: Any) -> dict[str, dict[str, Any]]:
    """The serving templates of dev, staging and prod (JSON)."""
    from aws_cdk.assertions import Template

    return {
        stage: Template.from_stack(four_accounts.stacks(stage)["serving"]).to_json()
        for stage in ACCOUNTS
    }


def _resolve(value: Any, account: str) -> Any:
    """A template value with the pseudo parameters these resources use resolved."""
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(str(_resolve(p, account)) for p in parts)
    if isinstance(value, dict) and value.get("Ref") == "AWS::Partition":
        return "aws"
    if isinstance(value, dict) and value.get("Ref") == "AWS::AccountId":
        return account
    if isinstance(value, list):
        return [_resolve(v, account) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, account) for k, v in value.items()}
    return value


def _of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == type_
    }


def _forward_rule(template: dict[str, Any]) -> dict[str, Any]:
    (rule,) = [
        r
        for r in _of_type(template, "AWS::Events::Rule").values()
        if r["EventPattern"].get("source") == [retrain.EVENT_SOURCE]
    ]
    return rule


class Accounts:
    """boto3 clients acting in each account (moto: AssumeRole into that account's role)."""

    def __init__(self) -> None:
        sts = boto3.client("sts", region_name=REGION)
        self._credentials = {
            name: sts.assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/test", RoleSessionName=name
            )["Credentials"]
            for name, account in ACCOUNTS.items()
        }

    def client(self, account: str, service: str) -> Any:
        credentials = self._credentials[account]
        return boto3.client(
            service,
            region_name=REGION,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )

    def act_as(self, account: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make the handlers' own ``boto3.client(...)`` calls act in ``account``."""
        credentials = self._credentials[account]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
        monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])
        # boto3's default session keeps the credentials it resolved first.
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)

    def table(self, account: str) -> None:
        self.client(account, "dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )

    def queue_behind(
        self, account: str, name: str, pattern: dict[str, Any], bus: str = "default"
    ) -> str:
        """An SQS queue behind a rule with ``pattern`` on ``bus`` (stands in for the target)."""
        sqs = self.client(account, "sqs")
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events = self.client(account, "events")
        events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
        return url

    def received(self, account: str, url: str) -> list[dict[str, Any]]:
        messages = (
            self.client(account, "sqs")
            .receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            .get("Messages", [])
        )
        return [json.loads(m["Body"]) for m in messages]


@pytest.fixture
def accounts(monkeypatch: pytest.MonkeyPatch) -> Iterator[Accounts]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield Accounts()


@pytest.fixture
def dev_bus(accounts: Accounts, deployed: dict[str, dict[str, Any]]) -> str:
    """Dev's retrain bus as deployed: its name and resource policy from the template."""
    template = deployed["dev"]
    ((bus_id, bus),) = _of_type(template, "AWS::Events::EventBus").items()
    events = accounts.client("dev", "events")
    events.create_event_bus(Name=bus["Name"])
    statements = [
        {**policy["Statement"], "Resource": f"arn:aws:events:{REGION}:{ACCOUNTS['dev']}:x"}
        for policy in _of_type(template, "AWS::Events::EventBusPolicy").values()
        if policy["EventBusName"] == {"Ref": bus_id}
    ]
    events.put_permission(
        EventBusName=bus["Name"],
        Policy=json.dumps(
            _resolve({"Version": "2012-10-17", "Statement": statements}, ACCOUNTS["dev"])
        ),
    )
    return str(bus["Name"])


def _receiver(template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Dev's receiving rule and its gate's environment."""
    (bus_id,) = _of_type(template, "AWS::Events::EventBus")
    (rule,) = [
        r
        for r in _of_type(template, "AWS::Events::Rule").values()
        if r.get("EventBusName") == {"Ref": bus_id}
    ]
    gate_id = rule["Targets"][0]["Arn"]["Fn::GetAtt"][0]
    gate = _of_type(template, "AWS::Lambda::Function")[gate_id]
    return rule, gate["Environment"]["Variables"]


def _gate_environment(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, Any], cooldown_hours: str = "24"
) -> None:
    for name, value in variables.items():
        # The table's name is a Ref in the template; the test's table stands in for it.
        monkeypatch.setenv(name, TABLE if name == "STATE_TABLE" else str(value))
    monkeypatch.setenv("COOLDOWN_HOURS", cooldown_hours)


def _alarm(name: str) -> dict[str, Any]:
    return {
        "source": "aws.cloudwatch",
        "detail-type": "CloudWatch Alarm State Change",
        "detail": {"alarmName": name, "state": {"value": "ALARM", "reason": "Threshold Crossed"}},
    }


@pytest.mark.parametrize("stage", ["staging", "prod"])
def test_a_drift_alarm_in_a_serving_account_reaches_devs_retrain_bus_once_per_cooldown(
    stage: str,
    accounts: Accounts,
    dev_bus: str,
    deployed: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forward = _forward_rule(deployed[stage])
    (target,) = forward["Targets"]
    target_arn = _resolve(target["Arn"], ACCOUNTS[stage])
    assert target_arn == f"arn:aws:events:{REGION}:{ACCOUNTS['dev']}:event-bus/{dev_bus}"
    events = accounts.client(stage, "events")
    events.put_rule(Name="forward", EventPattern=json.dumps(forward["EventPattern"]))
    events.put_targets(
        Rule="forward",
        Targets=[
            {"Id": "dev", "Arn": target_arn, "RoleArn": f"arn:aws:iam::{ACCOUNTS[stage]}:role/f"}
        ],
    )
    receiver, _ = _receiver(deployed["dev"])
    # moto stamps forwarded events with the receiving account (see the module docstring).
    pattern = {k: v for k, v in receiver["EventPattern"].items() if k != "account"}
    queue = accounts.queue_behind("dev", "receiver", pattern, bus=dev_bus)
    (start,) = [
        r
        for r in _of_type(deployed["dev"], "AWS::Events::Rule").values()
        if r["EventPattern"].get("source") == [retrain.EVENT_SOURCE] and "EventBusName" not in r
    ]
    start_queue = accounts.queue_behind("dev", "start", start["EventPattern"])

    accounts.table(stage)
    accounts.act_as(stage, monkeypatch)
    alarm_rule = next(
        r
        for r in _of_type(deployed[stage], "AWS::Events::Rule").values()
        if r["EventPattern"]["source"] == ["aws.cloudwatch"]
    )
    gate_id = alarm_rule["Targets"][0]["Arn"]["Fn::GetAtt"][0]
    gate = _of_type(deployed[stage], "AWS::Lambda::Function")[gate_id]
    _gate_environment(monkeypatch, gate["Environment"]["Variables"])
    first = retrain.handler(_alarm(f"acme-{stage}-data-drift"))
    again = retrain.handler(_alarm(f"acme-{stage}-model-quality"))

    assert (first["granted"], again["granted"]) == (True, False)
    (delivered,) = accounts.received("dev", queue)
    assert delivered["source"] == retrain.EVENT_SOURCE
    assert delivered["detail-type"] == retrain.EVENT_DETAIL_TYPE
    assert delivered["detail"]["pipeline_name"] == DEV_PIPELINE
    assert delivered["detail"]["alarm_name"] == f"acme-{stage}-data-drift"
    # Nothing reached dev's default bus, where the rule that starts the pipeline listens:
    # only dev's gate puts requests there.
    assert accounts.received("dev", start_queue) == []


def _forwarded(stage: str, alarm: str, **changes: Any) -> dict[str, Any]:
    """A request as EventBridge delivers it on dev's retrain bus, from ``stage``'s gate."""
    event = {
        "version": "0",
        "id": f"id-{stage}-{alarm}",
        "source": retrain.EVENT_SOURCE,
        "detail-type": retrain.EVENT_DETAIL_TYPE,
        "account": ACCOUNTS[stage],
        "region": REGION,
        "resources": [],
        "detail": {
            "pipeline_name": DEV_PIPELINE,
            "alarm_name": alarm,
            "reason": "Threshold Crossed",
            "requested_at": NOW.isoformat(),
        },
    }
    return {**event, **changes}


@pytest.fixture
def dev_gate(
    accounts: Accounts, deployed: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> str:
    """Dev's receiving gate, configured as deployed; returns a queue behind dev's start rule."""
    template = deployed["dev"]
    _, variables = _receiver(template)
    accounts.table("dev")
    accounts.act_as("dev", monkeypatch)
    _gate_environment(monkeypatch, variables)
    (start,) = [
        r
        for r in _of_type(template, "AWS::Events::Rule").values()
        if r["EventPattern"].get("source") == [retrain.EVENT_SOURCE] and "EventBusName" not in r
    ]
    return accounts.queue_behind("dev", "start", start["EventPattern"])


def test_dev_starts_one_retrain_per_cooldown_whichever_account_asks(
    accounts: Accounts, dev_gate: str
) -> None:
    decisions = [
        retrain.receive_handler(_forwarded("staging", "acme-staging-data-drift")),
        retrain.receive_handler(_forwarded("prod", "acme-prod-data-drift")),
        retrain.receive_handler(_forwarded("staging", "acme-staging-model-quality")),
    ]
    assert [d["granted"] for d in decisions] == [True, False, False]
    assert "cooldown" in decisions[1]["reason"]
    (started,) = accounts.received("dev", dev_gate)
    assert started["detail"]["pipeline_name"] == DEV_PIPELINE
    assert started["detail"]["alarm_name"] == f"{ACCOUNTS['staging']}:acme-staging-data-drift"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"account": "999999999999"}, "may not request retrains"),
        ({"account": ACCOUNTS["dev"]}, "may not request retrains"),
        ({"source": "aws.cloudwatch"}, "not a retrain request"),
        ({"detail-type": "Retrain Granted"}, "not a retrain request"),
        ({"detail": {"pipeline_name": "acme-dev-other", "alarm_name": "x"}}, "names pipeline"),
        ({"detail": {"pipeline_name": DEV_PIPELINE}}, "names no alarm"),
        ({"detail": "not an object"}, "no detail object"),
    ],
)
def test_dev_refuses_a_forged_request_without_touching_the_cooldown(
    accounts: Accounts, dev_gate: str, changes: dict[str, Any], reason: str
) -> None:
    decision = retrain.receive_handler(_forwarded("staging", "acme-staging-data-drift", **changes))
    assert decision["granted"] is False and reason in decision["reason"]
    assert accounts.client("dev", "dynamodb").scan(TableName=TABLE)["Items"] == []
    assert accounts.received("dev", dev_gate) == []
    # The refusal spent nothing: a sound request right after it is granted.
    sound = retrain.receive_handler(_forwarded("staging", "acme-staging-data-drift"))
    assert sound["granted"] is True
