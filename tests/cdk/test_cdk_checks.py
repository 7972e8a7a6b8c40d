"""cdk-nag AwsSolutions and cfn-lint over every synthesised stack and template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Annotations, Match, Template

from cdk.summary import lint_template

pytestmark = pytest.mark.xdist_group("cdk_synth")


def _all_stacks(synth: Any) -> dict[str, Stack]:
    stacks: dict[str, Stack] = {"toolchain": synth.mlops.cicd}
    for name in synth.mlops.stages:
        stacks[name] = synth.stage_stack(name)
    return stacks


def test_cdk_nag_ran_on_every_stack(synth: Any) -> None:
    # Without its report a stack was never checked (aspects do not cross stage boundaries).
    reports = {path.name for path in synth.outdir.glob("AwsSolutions-*-NagReport.csv")}
    for stack in _all_stacks(synth).values():
        assert any(stack.stack_name in report for report in reports), stack.stack_name


@pytest.mark.parametrize("stack_key", ["toolchain", "dev", "staging", "prod"])
def test_no_unsuppressed_cdk_nag_errors(synth: Any, stack_key: str) -> None:
    stack = _all_stacks(synth)[stack_key]
    errors = Annotations.from_stack(stack).find_error(
        "*", Match.string_like_regexp(r"AwsSolutions-.*")
    )
    assert [f"{e.id}: {e.entry.data}" for e in errors] == []


@pytest.mark.parametrize("stack_key", ["dev", "staging", "prod"])
def test_every_suppression_in_environments_has_a_reason_and_a_scope(
    templates: dict[str, Template], stack_key: str
) -> None:
    suppressions = [
        rule
        for resource in templates[stack_key].to_json()["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert suppressions
    for rule in suppressions:
        assert len(rule["reason"]) >= 40, rule
        if rule["id"] == "AwsSolutions-IAM5":
            assert rule.get("applies_to"), rule


def test_cfn_lint_reports_no_errors_in_any_template(synth: Any) -> None:
    templates = sorted(Path(synth.outdir).rglob("*.template.json"))
    # The CI/CD stack, then per environment: model build, release state, serving.
    assert len(templates) == 1 + 3 * 3
    problems = {str(t.relative_to(synth.outdir)): lint_template(t) for t in templates}
    assert {name: errors for name, errors in problems.items() if errors} == {}


def test_the_nag_assertion_catches_an_unsuppressed_finding() -> None:
    # Guards the tests above: with this cdk-nag/CDK pair, findings must surface as annotations.
    from aws_cdk import App, Aspects
    from aws_cdk import aws_s3 as s3
    from cdk_nag import AwsSolutionsChecks

    app = App()
    stack = Stack(app, "Probe")
    s3.Bucket(stack, "Unlogged")
    Aspects.of(app).add(AwsSolutionsChecks())
    errors = Annotations.from_stack(stack).find_error(
        "*", Match.string_like_regexp(r"AwsSolutions-S1")
    )
    assert errors
