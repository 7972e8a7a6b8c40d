"""Every cdk-nag IAM5 reason in the serving and release stacks names exactly the S3 prefixes its
policy grants.

An IAM5 suppression says why a wildcard is acceptable; a reason that names fewer (or other)
prefixes than the policy grants hides a grant nobody reviewed (the monitor job role read the
whole artifact bucket while its reason spoke of three prefixes). The reasons name key patterns
as ``prefix/*``; the policies are resolved to concrete ARNs (tests/support/mlops_testing), and
the patterns on both sides are compared: object ARNs with a wildcard, and the ``s3:prefix``
values a ListBucket is limited to.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from mlops_testing.cloudformation import CloudAssembly, ResolvedStack

pytestmark = pytest.mark.xdist_group("cdk_synth")

STACKS = [
    f"{environment}-{kind}"
    for environment in ("Dev", "Staging", "Prod")
    for kind in ("Serving", "ReleaseState")
]
# A key pattern as reasons write it: segments (names or *) joined by "/", ending in "/*".
_PATTERN = re.compile(r"(?<![\w*/:.-])((?:[\w.-]+|\*)(?:/(?:[\w.-]+|\*))*/\*)(?![\w*/])")


@pytest.fixture(scope="module")
def assembly(four_accounts: Any) -> CloudAssembly:
    return CloudAssembly.load(four_accounts.outdir)


def named_patterns(reason: str) -> set[str]:
    return set(_PATTERN.findall(reason))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted_patterns(document: dict[str, Any]) -> set[str]:
    """Key patterns with a wildcard that Allow statements on S3 grant (resources and
    s3:prefix conditions)."""
    found: set[str] = set()
    for statement in document["Statement"]:
        actions = _as_list(statement["Action"])
        if statement["Effect"] != "Allow" or not any(a.startswith("s3:") for a in actions):
            continue
        for resource in _as_list(statement.get("Resource", [])):
            if resource.startswith("arn:aws:s3:::") and "/" in resource and "*" in resource:
                found.add(resource.split("/", 1)[1])
        for condition in statement.get("Condition", {}).values():
            # An exact key (the settings object's listing) is no wildcard to justify.
            for prefix in _as_list(condition.get("s3:prefix", [])):
                if "*" in prefix:
                    found.add(prefix)
    return found


def _iam5_policies(stack: ResolvedStack) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(logical id, IAM5 reason, resolved policy document) of each suppressed policy."""
    for logical_id, resource in stack.resources().items():
        if resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        rules = resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
        for rule in rules:
            if rule["id"] == "AwsSolutions-IAM5":
                yield logical_id, rule["reason"], resource["Properties"]["PolicyDocument"]


def test_the_reason_reader_finds_key_patterns_and_nothing_else() -> None:
    reason = (
        "Reads objects under data-capture/acme-prod/*, model-build/*/model/* and promoted/* "
        "(read); GenerateDataKey*/ReEncrypt* on the key; the function's versions (':*')."
    )
    assert named_patterns(reason) == {
        "data-capture/acme-prod/*",
        "model-build/*/model/*",
        "promoted/*",
    }


def test_every_iam5_reason_names_exactly_the_s3_prefixes_its_policy_grants(
    assembly: CloudAssembly,
) -> None:
    mismatches = []
    checked = 0
    for name in STACKS:
        stack = assembly.stack(name)
        for logical_id, reason, document in _iam5_policies(stack):
            checked += 1
            granted, named = granted_patterns(document), named_patterns(reason)
            if granted != named:
                mismatches.append(
                    f"{name}/{logical_id}: grants {sorted(granted)}, its reason names "
                    f"{sorted(named)}"
                )
    assert checked >= 20
    assert mismatches == [], "\n".join(mismatches)


def test_the_monitor_job_reads_only_the_prefixes_it_reads(assembly: CloudAssembly) -> None:
    stack = assembly.stack("Prod-Serving")
    role = stack.role("MonitorsJobRole")
    objects = set()
    for document in role.policies:
        for statement in document["Statement"]:
            if any(a.startswith("s3:Get") for a in _as_list(statement["Action"])):
                objects |= {
                    r.split("/", 1)[1]
                    for r in _as_list(statement["Resource"])
                    if r.startswith("arn:aws:s3:::") and "/" in r and "prod-modelbuild" in r
                }
    assert objects == {
        "data-capture/acme-prod/*",
        "ground-truth/acme-prod/*",
        "monitoring/acme-prod/*",
        "model-build/*/model/*",
        "promoted/*/model/*",
    }
