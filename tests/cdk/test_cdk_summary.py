"""The one-screen synth summary that `make demo` prints."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from cdk import summary

pytestmark = pytest.mark.xdist_group("cdk_synth")


@pytest.fixture(scope="module")
def report(synth: Any) -> summary.SynthSummary:
    return summary.summarize(synth.outdir)


def test_lists_the_toolchain_then_each_environment(report: summary.SynthSummary) -> None:
    assert report.stages == ("toolchain", "dev", "staging", "prod")
    assert [s.stack_name for s in report.stacks] == [
        "MlopsCicd",
        "Dev-ModelBuild",
        "Dev-ReleaseState",
        "Dev-Serving",
        "Staging-ModelBuild",
        "Staging-ReleaseState",
        "Staging-Serving",
        "Prod-ModelBuild",
        "Prod-ReleaseState",
        "Prod-Serving",
    ]


def test_counts_resources_by_type_as_in_the_templates(
    report: summary.SynthSummary, templates: dict[str, Template]
) -> None:
    # The shared `templates` fixture holds the CI/CD stack and each environment's ModelBuild stack.
    by_name = {s.stack_name: s for s in report.stacks}
    for name, template in templates.items():
        stack = by_name["MlopsCicd" if name == "toolchain" else f"{name.capitalize()}-ModelBuild"]
        types = [r["Type"] for r in template.to_json()["Resources"].values()]
        assert sum(stack.resources.values()) == len(types)
        assert stack.resources["AWS::IAM::Role"] == types.count("AWS::IAM::Role")


def test_the_synthesised_app_passes_both_checks(report: summary.SynthSummary) -> None:
    assert report.ok
    # The model-build stacks of stages that do not train hold a key, buckets, the image and
    # the registry group only: nothing there needs a justified suppression.
    untrained = {"Staging-ModelBuild", "Prod-ModelBuild"}
    assert {s.stack_name for s in report.stacks} >= untrained
    assert all(s.nag_suppressed > 0 for s in report.stacks if s.stack_name not in untrained)


def test_an_unsuppressed_nag_error_fails_the_summary(synth: Any, tmp_path: Path) -> None:
    outdir = tmp_path / "cdk.out"
    shutil.copytree(synth.outdir, outdir)
    with (outdir / "AwsSolutions-Dev-Dev-ModelBuild-NagReport.csv").open("a", newline="") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL).writerow(
            [
                "AwsSolutions-S1",
                "MlopsCicd/Dev/ModelBuild/Extra/Resource",
                "Non-Compliant",
                "N/A",
                "Error",
                "no logs",
            ]
        )
    failed = summary.summarize(outdir, lint=False)
    assert not failed.ok
    (dev,) = [s for s in failed.stacks if s.stack_name == "Dev-ModelBuild"]
    assert dev.nag_errors == ("AwsSolutions-S1 MlopsCicd/Dev/ModelBuild/Extra/Resource",)


def test_summary_of_a_missing_assembly_says_to_synth_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert summary.main(["--no-synth", "--outdir", str(tmp_path)]) == 2
    assert "run `make synth` first" in capsys.readouterr().err


def test_summary_renders_one_screen(
    report: summary.SynthSummary, capsys: pytest.CaptureFixture[str]
) -> None:
    summary.render(report)
    out = capsys.readouterr().out
    assert (
        "SageMaker::Pipeline" in out and "SageMaker::Endpoint" in out and "all checks pass" in out
    )
    assert len(out.splitlines()) <= 50
