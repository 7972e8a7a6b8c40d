"""Compute, environment and data assets: the fields users rely on."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from azure.ai.ml.entities import Environment
from mlops_azure import assets
from mlops_azure.config import REPO_ROOT, AzureEnvironment
from mlops_azure.definitions import Definitions

from mlcore.errors import ConfigError
from mlcore.settings import MlopsSettings


def test_compute_scales_to_zero_without_public_node_ips(definitions: Definitions) -> None:
    compute = definitions.compute
    assert compute.min_instances == 0
    assert compute.max_instances == 2
    assert compute.enable_node_public_ip is False
    assert compute.idle_time_before_scale_down == 900


def _ci_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("#")[0].strip().split("==")
            pins[name.split("[")[0].lower()] = version
    return pins


def _declared_names() -> list[str]:
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [
        re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].lower() for requirement in declared
    ]


def _pip(environment: Environment) -> list[str]:
    pip: list[str] = environment.conda_file["dependencies"][-1]["pip"]
    return [requirement.lower() for requirement in pip]


def test_training_environment_is_mlcore_at_exactly_the_ci_pins(definitions: Definitions) -> None:
    pins = _ci_pins()
    expected = [f"{name}=={pins[name]}" for name in _declared_names()]
    assert _pip(definitions.environment) == expected
    assert definitions.environment.conda_file["dependencies"][0] == "python=3.11"
    assert definitions.environment.name == "churn-mlcore-training"


def test_serving_environment_adds_azure_serving_and_only_the_documented_override(
    definitions: Definitions,
) -> None:
    pins = _ci_pins()
    serving = _pip(definitions.serving_environment)
    assert serving[-len(assets.SERVING_REQUIREMENTS) :] == list(assets.SERVING_REQUIREMENTS)
    for name in _declared_names():
        version = assets.SERVING_PIN_OVERRIDES.get(name, pins[name])
        assert f"{name}=={version}" in serving
    assert len(serving) == len(_declared_names()) + len(assets.SERVING_REQUIREMENTS)
    assert definitions.serving_environment.version != definitions.environment.version
    assert definitions.deployment.environment == (
        f"azureml:{definitions.serving_environment.name}:{definitions.serving_environment.version}"
    )


def test_environment_version_changes_with_the_pins(
    dev_env: AzureEnvironment, settings: MlopsSettings
) -> None:
    base = assets.build_environment(dev_env, settings, ["numpy==2.4.6"])
    same = assets.build_environment(dev_env, settings, ["numpy==2.4.6"])
    bumped = assets.build_environment(dev_env, settings, ["numpy==2.4.7"])
    assert base.version == same.version
    assert base.version != bumped.version


def test_missing_pin_is_a_clear_error(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["numpy>=2", "polars>=1"]\n')
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==2.4.6\n")
    with pytest.raises(ConfigError, match=r"no exact pin.*\['polars'\]"):
        assets.runtime_requirements(pyproject, requirements)


def test_training_data_points_at_the_datastore_folder(definitions: Definitions) -> None:
    data = definitions.training_data
    assert data.type == "uri_folder"
    assert data.path == "azureml://datastores/workspaceblobstore/paths/churn/raw/"
    assert data.name == "churn-training-data"


def test_reference_data_is_an_mltable_over_the_same_files(
    definitions: Definitions, dev_env: AzureEnvironment
) -> None:
    reference = definitions.reference_data
    assert reference.type == "mltable"
    document = yaml.safe_load((Path(reference.path) / "MLTable").read_text())
    (pattern,) = [p["pattern"] for p in document["paths"]]
    assert pattern.endswith("/datastores/workspaceblobstore/paths/churn/raw/*.parquet")
    assert f"/workspaces/{dev_env.workspace}/" in pattern
    assert document["transformations"] == ["read_parquet"]


def test_csv_data_is_read_as_delimited(dev_env: AzureEnvironment) -> None:
    env = dev_env.model_copy(update={"data": dev_env.data.model_copy(update={"format": "csv"})})
    document = assets.mltable_document(env)
    assert document["paths"][0]["pattern"].endswith("*.csv")
    assert "read_delimited" in document["transformations"][0]


def test_settings_asset_is_versioned_by_content(settings: MlopsSettings, tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text("project: churn\n")
    second = tmp_path / "b.yaml"
    second.write_text("project: churn\ngate: {min_metrics: {auc: 0.8}}\n")
    assert (
        assets.build_settings_data(settings, first).version
        != assets.build_settings_data(settings, second).version
    )
    with pytest.raises(ConfigError, match="does not exist"):
        assets.build_settings_data(settings, tmp_path / "missing.yaml")
