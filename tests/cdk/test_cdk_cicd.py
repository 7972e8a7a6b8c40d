"""The self-mutating CI/CD pipeline: synth with tests, dev -> staging -> approval -> prod."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

pytestmark = pytest.mark.xdist_group("cdk_synth")


def _stages(template: Template) -> list[dict[str, Any]]:
    (pipeline,) = template.find_resources("AWS::CodePipeline::Pipeline").values()
    return pipeline["Properties"]["Stages"]


def _project_running(template: Template, command: str) -> dict[str, Any]:
    for project in template.find_resources("AWS::CodeBuild::Project").values():
        if command in json.dumps(project["Properties"]["Source"].get("BuildSpec", "")):
            return project
    raise AssertionError(f"no CodeBuild project runs {command!r}")


def test_pipeline_promotes_dev_then_staging_then_prod(templates: dict[str, Template]) -> None:
    names = [stage["Name"] for stage in _stages(templates["toolchain"])]
    assert names[:3] == ["Source", "Build", "UpdatePipeline"]
    assert [n for n in names if n in ("Dev", "Staging", "Prod")] == ["Dev", "Staging", "Prod"]


def test_prod_waits_for_manual_approval_before_deploying(templates: dict[str, Template]) -> None:
    (prod,) = [s for s in _stages(templates["toolchain"]) if s["Name"] == "Prod"]
    approval = [a for a in prod["Actions"] if a["ActionTypeId"]["Category"] == "Approval"]
    deploys = [a for a in prod["Actions"] if a["ActionTypeId"]["Category"] == "Deploy"]
    assert approval and deploys
    assert max(a["RunOrder"] for a in approval) < min(a["RunOrder"] for a in deploys)


def test_staging_deploys_without_approval(templates: dict[str, Template]) -> None:
    (staging,) = [s for s in _stages(templates["toolchain"]) if s["Name"] == "Staging"]
    assert not [a for a in staging["Actions"] if a["ActionTypeId"]["Category"] == "Approval"]


def test_synth_step_runs_the_test_suite_before_cdk_synth(templates: dict[str, Template]) -> None:
    spec = json.loads(
        _project_running(templates["toolchain"], "npx cdk synth")["Properties"]["Source"][
            "BuildSpec"
        ]
    )
    commands = spec["phases"]["build"]["commands"]
    assert commands.index("make test") < commands.index("npx cdk synth")
    assert spec["phases"]["install"]["runtime-versions"] == {"python": "3.11", "nodejs": "20"}


def test_dev_trains_after_deploy_through_its_ci_role(templates: dict[str, Template]) -> None:
    project = _project_running(templates["toolchain"], "pipelines.sagemaker.run_pipeline")
    spec = project["Properties"]["Source"]["BuildSpec"]
    assert "--wait" in spec and '--assume-role-arn \\"$CI_ROLE_ARN\\"' in spec
    env = {
        v["Name"]: v["Value"] for v in project["Properties"]["Environment"]["EnvironmentVariables"]
    }
    assert "role/acme-dev-ci-train" in json.dumps(env["CI_ROLE_ARN"])


def test_pipeline_updates_itself(templates: dict[str, Template]) -> None:
    (update,) = [s for s in _stages(templates["toolchain"]) if s["Name"] == "UpdatePipeline"]
    assert [a["Name"] for a in update["Actions"]] == ["SelfMutate"]


def test_artifacts_are_encrypted_with_a_rotating_key_usable_across_accounts(
    templates: dict[str, Template],
) -> None:
    templates["toolchain"].has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    (pipeline,) = templates["toolchain"].find_resources("AWS::CodePipeline::Pipeline").values()
    assert pipeline["Properties"]["ArtifactStore"]["EncryptionKey"]["Type"] == "KMS"


def test_source_is_the_configured_codeconnections_repository(
    templates: dict[str, Template],
) -> None:
    templates["toolchain"].has_resource_properties(
        "AWS::CodePipeline::Pipeline",
        {
            "Stages": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Name": "Source",
                            "Actions": [
                                Match.object_like(
                                    {
                                        "ActionTypeId": Match.object_like(
                                            {"Provider": "CodeStarSourceConnection"}
                                        ),
                                        "Configuration": Match.object_like(
                                            {
                                                "FullRepositoryId": "example-org/mlops-kit",
                                                "BranchName": "main",
                                            }
                                        ),
                                    }
                                )
                            ],
                        }
                    )
                ]
            )
        },
    )


def test_pipeline_artifact_bucket_logs_access(templates: dict[str, Template]) -> None:
    (pipeline,) = templates["toolchain"].find_resources("AWS::CodePipeline::Pipeline").values()
    bucket_id = pipeline["Properties"]["ArtifactStore"]["Location"]["Ref"]
    bucket = templates["toolchain"].to_json()["Resources"][bucket_id]
    assert bucket["Properties"]["LoggingConfiguration"]["LogFilePrefix"] == "pipeline-artifacts/"
