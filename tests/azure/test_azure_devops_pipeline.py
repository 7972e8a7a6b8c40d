"""pipelines/azure-pipelines.yml: valid YAML for Azure DevOps, complete, and prod behind an approval."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE = REPO_ROOT / "pipelines" / "azure-pipelines.yml"
ROLLBACK = REPO_ROOT / "pipelines" / "azure" / "rollback-pipeline.yml"
TEMPLATES = sorted(set((REPO_ROOT / "pipelines" / "azure").rglob("*.yml")) - {ROLLBACK})
ALL_FILES = [PIPELINE, ROLLBACK, *TEMPLATES]
SCHEMA = REPO_ROOT.parent / "shared" / "schemas" / "azure-pipelines.schema.json"


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), path
    return document


def _walk(node: Any) -> Any:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _template_references(path: Path) -> list[Path]:
    """Templates a file includes; a parameterised path is expanded over the parameter's values."""
    document = _load(path)
    values = {
        parameter["name"]: parameter.get("values", [])
        for parameter in document.get("parameters", [])
        if isinstance(parameter, dict)
    }
    references = []
    for node in _walk(document):
        if isinstance(node, dict) and isinstance(node.get("template"), str):
            template = node["template"]
            match = re.search(r"\$\{\{ parameters\.(\w+) \}\}", template)
            expansions = (
                [template.replace(match.group(0), value) for value in values[match.group(1)]]
                if match
                else [template]
            )
            references += [(path.parent / name).resolve() for name in expansions]
    return references


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    if not SCHEMA.is_file():
        pytest.skip(
            f"the Azure Pipelines schema is not beside this clone ({SCHEMA}); CI always has it"
        )
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text())
    return loaded


@pytest.fixture(scope="module")
def pipeline() -> dict[str, Any]:
    return _load(PIPELINE)


def _stage(pipeline: dict[str, Any], name: str) -> dict[str, Any]:
    (stage,) = [s for s in pipeline["stages"] if s["stage"] == name]
    return stage


@pytest.mark.parametrize(
    "path", [PIPELINE, *TEMPLATES], ids=lambda p: str(p.relative_to(REPO_ROOT))
)
def test_every_file_matches_the_azure_pipelines_schema(path: Path, schema: dict[str, Any]) -> None:
    document = _load(path)
    if set(document) <= {"variables", "parameters"}:
        # A variables template has no pipeline root in the schema: check it against the
        # schema's own definition of a variables block.
        target, instance = {**schema, "$ref": "#/definitions/variables"}, document["variables"]
    else:
        target, instance = schema, document
    errors = list(jsonschema.Draft7Validator(target).iter_errors(instance))
    assert not errors, [jsonschema.exceptions.best_match(errors).message]


def test_schema_check_catches_a_misspelt_key(
    schema: dict[str, Any], pipeline: dict[str, Any]
) -> None:
    broken = json.loads(json.dumps(pipeline))
    broken["stages"][0]["dependsOnn"] = []
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


@pytest.mark.parametrize(
    "path", [PIPELINE, *TEMPLATES], ids=lambda p: str(p.relative_to(REPO_ROOT))
)
def test_every_referenced_template_exists(path: Path) -> None:
    for reference in _template_references(path):
        assert reference.is_file(), f"{path.name} references missing template {reference}"


def test_every_template_is_used() -> None:
    used: set[Path] = set()
    pending = [PIPELINE, ROLLBACK]
    while pending:
        for reference in _template_references(pending.pop()):
            if reference not in used:
                used.add(reference)
                pending.append(reference)
    assert used == {path.resolve() for path in TEMPLATES}


def test_every_script_and_make_target_referenced_exists() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    for path in ALL_FILES:
        for node in _walk(_load(path)):
            if not isinstance(node, dict):
                continue
            script_path = (
                (node.get("inputs") or {}).get("scriptPath")
                if isinstance(node.get("inputs"), dict)
                else None
            )
            if script_path:
                script = REPO_ROOT / script_path
                assert script.is_file(), f"{path.name}: {script_path} does not exist"
                assert script.stat().st_mode & 0o111, f"{script_path} is not executable"
            for target in re.findall(r"\bmake (\w[\w-]*)", str(node.get("script", ""))):
                assert re.search(rf"^{target}:", makefile, re.MULTILINE), (
                    f"make {target} is not in the Makefile"
                )


def test_stages_run_in_order(pipeline: dict[str, Any]) -> None:
    assert [s["stage"] for s in pipeline["stages"]] == ["CI", "Train", "DeployDev", "DeployProd"]
    assert _stage(pipeline, "Train")["dependsOn"] == "CI"
    assert _stage(pipeline, "DeployDev")["dependsOn"] == "Train"
    assert _stage(pipeline, "DeployProd")["dependsOn"] == ["Train", "DeployDev"]
    assert "refs/heads/main" in _stage(pipeline, "Train")["condition"]


def test_ci_lints_type_checks_tests_and_publishes_results(pipeline: dict[str, Any]) -> None:
    steps = _stage(pipeline, "CI")["jobs"][0]["steps"]
    scripts = " ".join(step.get("script", "") for step in steps)
    assert (
        "ruff check" in scripts
        and "mypy" in scripts
        and "pytest" in scripts
        and "--junitxml" in scripts
    )
    (publish,) = [s for s in steps if s.get("task") == "PublishTestResults@2"]
    assert publish["condition"] == "succeededOrFailed()"


def _variables(name: str) -> dict[str, str]:
    items = _load(REPO_ROOT / "pipelines" / "azure" / "variables" / f"{name}.yml")["variables"]
    return {item["name"]: item["value"] for item in items if "name" in item}


def test_prod_deploys_through_the_approval_environment(pipeline: dict[str, Any]) -> None:
    prod = _stage(pipeline, "DeployProd")
    assert prod["variables"][0] == {"template": "azure/variables/prod.yml"}
    (job,) = prod["jobs"]
    assert job["template"] == "azure/jobs/deploy.yml"
    assert job["parameters"]["approvalEnvironment"] == "${{ variables.approvalEnvironment }}"
    assert _variables("prod")["approvalEnvironment"] == "mlops-prod"
    deploy = _load(REPO_ROOT / "pipelines" / "azure" / "jobs" / "deploy.yml")["jobs"][0]
    # A deployment job waits for the environment's approvals and checks before it runs.
    assert "deployment" in deploy
    assert deploy["environment"] == "${{ parameters.approvalEnvironment }}"
    assert prod["condition"] == "succeeded()"


TRAIN_OUTPUT = "$[ stageDependencies.Train.train.outputs['publish.model'] ]"


def test_train_publishes_the_model_as_a_stage_output(pipeline: dict[str, Any]) -> None:
    (job,) = _stage(pipeline, "Train")["jobs"]
    assert job["job"] == "train"
    assert any(step.get("template") == "azure/steps/train.yml" for step in job["steps"])
    (step,) = _load(REPO_ROOT / "pipelines" / "azure" / "steps" / "train.yml")["steps"]
    # The step is named `publish`; `train` prints the vso line that sets `model` as output.
    assert step["name"] == "publish"
    assert step["inputs"]["arguments"].startswith("train ")
    import mlops_azure.__main__ as cli

    assert "variable=model;isOutput=true" in cli.OUTPUT_VARIABLE


@pytest.mark.parametrize("stage", ["DeployDev", "DeployProd"])
def test_every_deploy_stage_rolls_out_exactly_the_trained_version(
    pipeline: dict[str, Any], stage: str
) -> None:
    definition = _stage(pipeline, stage)
    model = next(v for v in definition["variables"] if v.get("name") == "model")
    assert model["value"] == TRAIN_OUTPUT
    assert "Train" in (
        [definition["dependsOn"]]
        if isinstance(definition["dependsOn"], str)
        else definition["dependsOn"]
    )
    (job,) = definition["jobs"]
    assert job["parameters"]["model"] == "$(model)"
    deploy = (REPO_ROOT / "pipelines" / "azure" / "jobs" / "deploy.yml").read_text()
    assert "arguments: --model ${{ parameters.model }}" in deploy
    assert "--promote-from" not in json.dumps(pipeline)


def test_runs_are_serialised(pipeline: dict[str, Any]) -> None:
    assert pipeline["lockBehavior"] == "sequential"
    assert _load(ROLLBACK)["lockBehavior"] == "sequential"


def test_azure_stages_install_only_the_lean_set(pipeline: dict[str, Any]) -> None:
    setup = _load(REPO_ROOT / "pipelines" / "azure" / "steps" / "setup.yml")
    (target,) = [p for p in setup["parameters"] if p["name"] == "installTarget"]
    assert target["default"] == "install-azure"
    text = json.dumps(setup)
    assert (
        "make ${{ parameters.installTarget }}" in text
        and "Cache@2" in text
        and "PIP_CACHE_DIR" in text
    )
    ci = json.dumps(_stage(pipeline, "CI"))
    assert '"installTarget": "install"' in ci  # only CI needs the CDK and SageMaker toolchain
    for stage in ("Train", "DeployDev", "DeployProd"):
        assert '"installTarget": "install"' not in json.dumps(_stage(pipeline, stage)), stage
    for path in ALL_FILES:
        assert "installTarget: install\n" not in path.read_text() or path == PIPELINE, path
    control = (REPO_ROOT / "azure" / "requirements-control.txt").read_text()
    names = {
        line.strip() for line in control.splitlines() if line.strip() and not line.startswith("#")
    }
    pinned = {
        line.split("==")[0].strip().lower()
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line
    }
    assert names <= pinned  # the versions come from requirements.txt, not a second copy
    assert not names & {"aws-cdk-lib", "sagemaker", "boto3", "moto", "cdk-nag", "cfn-lint"}


def test_steps_sign_in_with_a_refreshing_pipeline_credential() -> None:
    for template in ("mlops-azure.yml", "train.yml"):
        (task,) = _load(REPO_ROOT / "pipelines" / "azure" / "steps" / template)["steps"]
        assert task["task"] == "AzureCLI@2"
        # AzurePipelinesCredential needs the job's access token (mlops_azure.credentials).
        assert task["env"] == {"SYSTEM_ACCESSTOKEN": "$(System.AccessToken)"}
    assert task["inputs"]["azureSubscription"] == "${{ parameters.serviceConnection }}"
    assert _variables("dev")["serviceConnection"] != _variables("prod")["serviceConnection"]


def test_the_commands_the_steps_run_are_real_cli_commands() -> None:
    import mlops_azure.__main__ as cli

    parser = cli.build_parser()
    steps = _load(REPO_ROOT / "pipelines" / "azure" / "steps" / "mlops-azure.yml")
    allowed = next(p for p in steps["parameters"] if p["name"] == "command")["values"]
    for command in allowed:
        extra = ["--model", "m:1"] if command in ("rollout", "batch-deploy") else []
        assert parser.parse_args([command, "--env", "dev", *extra]).command == command


def test_rollback_pipeline_is_manual_approved_and_covers_every_environment() -> None:
    rollback = _load(ROLLBACK)
    assert rollback["trigger"] == "none" and rollback["pr"] == "none"
    (parameter,) = rollback["parameters"]
    assert parameter["values"] == ["dev", "prod"]
    for environment in parameter["values"]:
        assert {"agentPool", "serviceConnection", "approvalEnvironment"} <= set(
            _variables(environment)
        )
    (job,) = rollback["stages"][0]["jobs"]
    # A deployment job on the environment: its approvals gate a rollback too.
    assert job["environment"] == "${{ variables.approvalEnvironment }}"
    assert "command: rollback" in ROLLBACK.read_text()
