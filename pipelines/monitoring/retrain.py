"""The retrain trigger: a drift or quality alarm requests a retrain, at most once per cooldown.

An EventBridge rule on "CloudWatch Alarm State Change" (the drift and quality alarms
going to ALARM) invokes :func:`handler`. EventBridge has no cooldown of its own, and an
alarm that flaps on an hourly monitor would otherwise start a retrain every hour, so the
request passes a gate first: a conditional write to a DynamoDB item that succeeds only
when the last granted request is older than the cooldown. Two alarms firing at once
cannot both pass (the write is atomic).

A granted request is put on the event bus as ``source: mlops.retrain``,
``detail-type: Retrain Requested``; the retrain rule turns it into a
StartPipelineExecution of the model-build pipeline.

Across accounts (staging and prod serve, the model-build account trains), the granted
request is forwarded by an EventBridge rule to the model-build account's retrain bus, where
:func:`receive_handler` checks it (sending account, pipeline, shape) and passes it through
the same cooldown gate, in that account's own table, before putting the local event that
starts the pipeline. A forged or repeated request from another account therefore cannot start
more than one retrain per cooldown, and cannot start anything but that one pipeline.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

logger = logging.getLogger(__name__)

EVENT_SOURCE = "mlops.retrain"
EVENT_DETAIL_TYPE = "Retrain Requested"


@dataclass(frozen=True)
class RetrainDecision:
    granted: bool
    pipeline_name: str
    alarm_name: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "granted": self.granted,
            "pipeline_name": self.pipeline_name,
            "alarm_name": self.alarm_name,
            "reason": self.reason,
        }


def _require_environment(*names: str) -> None:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise ValueError(f"the retrain trigger needs environment variables {missing}")


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point (EventBridge target)."""
    import boto3

    _require_environment("PIPELINE_NAME", "STATE_TABLE", "COOLDOWN_HOURS")
    detail = event.get("detail", {})
    state = detail.get("state", {}).get("value")
    alarm_name = detail.get("alarmName", "")
    if state != "ALARM":
        return {"granted": False, "reason": f"alarm {alarm_name!r} state is {state!r}, not ALARM"}
    decision = request_retrain(
        pipeline_name=os.environ["PIPELINE_NAME"],
        alarm_name=alarm_name,
        reason=detail.get("state", {}).get("reason", ""),
        cooldown=timedelta(hours=float(os.environ["COOLDOWN_HOURS"])),
        table=os.environ["STATE_TABLE"],
        dynamodb=boto3.client("dynamodb"),
        events=boto3.client("events"),
        event_bus_name=os.environ.get("EVENT_BUS_NAME", "default"),
    )
    return decision.to_dict()


def request_retrain(
    *,
    pipeline_name: str,
    alarm_name: str,
    reason: str,
    cooldown: timedelta,
    table: str,
    dynamodb: Any,
    events: Any,
    event_bus_name: str = "default",
    now: datetime | None = None,
) -> RetrainDecision:
    """Grant a retrain unless one was granted within ``cooldown``; put the request event if granted."""
    now = now or datetime.now(UTC)
    cutoff = now - cooldown
    try:
        dynamodb.put_item(
            TableName=table,
            Item={
                "pk": {"S": f"retrain#{pipeline_name}"},
                "granted_at": {"N": str(int(now.timestamp()))},
                "alarm_name": {"S": alarm_name},
            },
            ConditionExpression="attribute_not_exists(pk) OR granted_at < :cutoff",
            ExpressionAttributeValues={":cutoff": {"N": str(int(cutoff.timestamp()))}},
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        logger.info(
            "retrain of %s for %s suppressed: within the %s cooldown",
            pipeline_name,
            alarm_name,
            cooldown,
        )
        return RetrainDecision(False, pipeline_name, alarm_name, f"within the {cooldown} cooldown")
    response = events.put_events(
        Entries=[
            {
                "Source": EVENT_SOURCE,
                "DetailType": EVENT_DETAIL_TYPE,
                "Detail": json.dumps(
                    {
                        "pipeline_name": pipeline_name,
                        "alarm_name": alarm_name,
                        "reason": reason,
                        "requested_at": now.isoformat(),
                    }
                ),
                "EventBusName": event_bus_name,
            }
        ]
    )
    if response.get("FailedEntryCount"):
        # Release the cooldown so the next alarm can try again, then fail loudly.
        dynamodb.delete_item(TableName=table, Key={"pk": {"S": f"retrain#{pipeline_name}"}})
        raise RuntimeError(f"EventBridge rejected the retrain request: {response['Entries']}")
    logger.info("retrain of %s requested by %s", pipeline_name, alarm_name)
    return RetrainDecision(True, pipeline_name, alarm_name, "requested")


def check_forwarded_request(
    event: dict[str, Any], *, pipeline_name: str, allowed_accounts: frozenset[str]
) -> str | None:
    """Why a retrain request forwarded from another account is refused, or None if it is sound.

    The receiver rule already matches on these fields; checking them again here means a rule
    edited by hand, or an event put straight on the bus by an allowed account, still cannot
    start another pipeline or speak for an account that was not allowed.
    """
    if event.get("source") != EVENT_SOURCE or event.get("detail-type") != EVENT_DETAIL_TYPE:
        return (
            f"not a retrain request: source {event.get('source')!r}, detail-type "
            f"{event.get('detail-type')!r} (expected {EVENT_SOURCE!r}, {EVENT_DETAIL_TYPE!r})"
        )
    account = event.get("account")
    if account not in allowed_accounts:
        return f"account {account!r} may not request retrains (allowed: {sorted(allowed_accounts)})"
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return "the request has no detail object"
    if detail.get("pipeline_name") != pipeline_name:
        return f"the request names pipeline {detail.get('pipeline_name')!r}, not {pipeline_name!r}"
    alarm_name = detail.get("alarm_name")
    if not isinstance(alarm_name, str) or not alarm_name:
        return "the request names no alarm (detail.alarm_name)"
    return None


def receive_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point of the receiver in the model-build account (retrain bus target)."""
    import boto3

    _require_environment("PIPELINE_NAME", "STATE_TABLE", "COOLDOWN_HOURS", "ALLOWED_ACCOUNTS")
    pipeline_name = os.environ["PIPELINE_NAME"]
    allowed = frozenset(a for a in os.environ["ALLOWED_ACCOUNTS"].split(",") if a)
    refusal = check_forwarded_request(event, pipeline_name=pipeline_name, allowed_accounts=allowed)
    raw_detail = event.get("detail")
    detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
    alarm_name = f"{event.get('account')}:{detail.get('alarm_name', '')}"
    if refusal is not None:
        logger.warning("retrain request refused: %s (event id %s)", refusal, event.get("id"))
        return RetrainDecision(False, pipeline_name, alarm_name, refusal).to_dict()
    decision = request_retrain(
        pipeline_name=pipeline_name,
        # The alarm as the sending account named it, prefixed with that account.
        alarm_name=alarm_name,
        reason=str(detail.get("reason", "")),
        cooldown=timedelta(hours=float(os.environ["COOLDOWN_HOURS"])),
        table=os.environ["STATE_TABLE"],
        dynamodb=boto3.client("dynamodb"),
        events=boto3.client("events"),
        event_bus_name=os.environ.get("EVENT_BUS_NAME", "default"),
    )
    return decision.to_dict()
