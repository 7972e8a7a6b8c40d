"""Captured data must outlive the oldest window a monitor still reads: checked at synth.

A drift run reads its own window (at most ``max_window_hours``) and, with a windowed
``drift.reference.mode``, a reference window: ``previous_window`` reaches back twice the
window, ``same_period_last_year`` ``seasonal_offset_days`` plus the window. The quality
run reads predictions up to ``label_delay_hours`` before its window. If the capture
bucket's lifecycle rules expire (or archive to a class a job cannot read) captures younger
than that, the reference would silently be empty or partial, and every run would grade
"insufficient data" for a reason nobody sees.

The retention is not lengthened automatically: captured requests are user data, and how
long they are kept can be a privacy decision (``artifact_expiry_days`` in cdk.json). Synth
fails instead, naming the setting to change. S3 expires objects at the first midnight UTC
after creation plus the rule's days, so a rule of N days keeps an object at least N days;
one day of margin covers the time between a window's end and its job reading the data.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import jsii
from aws_cdk import Annotations, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct, IValidation

from cdk.monitoring.settings import MonitorSettings

MARGIN = timedelta(days=1)
# Storage classes whose objects a processing job cannot read without a restore first.
_ARCHIVES = {"GLACIER", "DEEP_ARCHIVE"}


def oldest_capture_read(settings: MonitorSettings) -> timedelta:
    """How old the oldest captured object a monitor run reads can be, when it reads it."""
    window = timedelta(hours=settings.max_window_hours)
    ages = [window]
    if settings.reference_mode == "previous_window":
        ages.append(2 * window)
    elif settings.reference_mode == "same_period_last_year":
        ages.append(timedelta(days=settings.seasonal_offset_days) + window)
    if settings.quality_enabled:
        ages.append(timedelta(hours=settings.label_delay_hours) + window)
    return max(ages)


def required_retention_days(settings: MonitorSettings) -> int:
    """The fewest days a lifecycle rule may keep captures for these monitors."""
    return math.ceil((oldest_capture_read(settings) + MARGIN) / timedelta(days=1))


def retention_problems(
    lifecycle: dict[str, Any] | None, capture_prefix: str, needed_days: int
) -> list[str]:
    """What in a bucket's resolved ``lifecycleConfiguration`` (CfnBucket property names) cuts
    captures short."""
    problems = []
    for rule in (lifecycle or {}).get("rules", []):
        if rule.get("status") != "Enabled" or not _applies(rule, capture_prefix):
            continue
        name = rule.get("id", "(unnamed)")
        days = rule.get("expirationInDays")
        if days is not None and days < needed_days:
            problems.append(f"lifecycle rule {name!r} expires captures after {days} days")
        if rule.get("expirationDate") is not None:
            problems.append(f"lifecycle rule {name!r} expires captures on a fixed date")
        for transition in rule.get("transitions", []):
            if (
                transition.get("storageClass") in _ARCHIVES
                and transition.get("transitionInDays", 0) < needed_days
            ):
                problems.append(
                    f"lifecycle rule {name!r} archives captures to {transition['storageClass']} "
                    f"after {transition.get('transitionInDays', 0)} days (unreadable by a job)"
                )
    return problems


def _applies(rule: dict[str, Any], prefix: str) -> bool:
    """Whether a rule can act on objects under ``prefix`` (tags: captures carry none)."""
    if rule.get("tagFilters"):
        return False
    rule_prefix = rule.get("prefix") or ""
    return prefix.startswith(rule_prefix) or rule_prefix.startswith(prefix)


@jsii.implements(IValidation)
class CaptureRetentionCheck:
    """A synth-time validation: the capture bucket keeps captures as long as the monitors read them.

    Added to the monitoring construct with ``node.add_validation``; it reads the lifecycle
    rules when the app is synthesised, so rules added after the monitors count too.
    """

    def __init__(
        self,
        scope: Construct,
        *,
        bucket: s3.IBucket,
        capture_prefix: str,
        settings: MonitorSettings,
    ) -> None:
        self.scope = scope
        self.bucket = bucket
        self.capture_prefix = capture_prefix
        self.settings = settings

    def validate(self) -> list[str]:
        cfn_bucket = self.bucket.node.default_child
        if not isinstance(cfn_bucket, s3.CfnBucket):
            Annotations.of(self.scope).add_warning_v2(
                "mlops:CaptureRetentionUnchecked",
                f"the capture bucket is not defined in this app, so its lifecycle cannot be "
                f"checked: keep captures at least {required_retention_days(self.settings)} days",
            )
            return []
        # The L2 bucket renders its rules lazily; jsii cannot hand that value to Python as
        # the typed property, so the rendered properties (CfnResource.cfnProperties) are read.
        lifecycle = Stack.of(cfn_bucket).resolve(
            cfn_bucket._cfn_properties.get("lifecycleConfiguration")
        )
        needed = required_retention_days(self.settings)
        problems = retention_problems(lifecycle, self.capture_prefix, needed)
        if not problems:
            return []
        return [
            f"captured data must be kept at least {needed} days: the drift reference "
            f"({self.settings.reference_mode}, seasonal_offset_days "
            f"{self.settings.seasonal_offset_days}) and max_window_hours "
            f"({self.settings.max_window_hours}) reach that far back, but "
            + "; ".join(problems)
            + ". Raise the stage's artifact_expiry_days in cdk.json to at least "
            f"{needed}, or choose a shorter reference (drift.reference in mlops.yaml) or "
            "max_window_hours"
        ]
