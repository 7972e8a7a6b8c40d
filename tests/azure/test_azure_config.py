"""Per-environment Azure settings: typed, strict, and no calls to Azure with placeholders."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlops_azure.config import (
    PLACEHOLDER_SUBSCRIPTION,
    AzureEnvironment,
    coordinate_overrides,
    load_environment,
)

from mlcore.errors import ConfigError

ENVIRONMENTS_DIR = Path(__file__).parent / "fixtures" / "environments"


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_shipped_environments_load(name: str) -> None:
    env = load_environment(name)
    assert env.name == name
    assert env.endpoint.name.endswith(name)
    assert env.monitoring.alert_emails


def test_prod_is_private_and_shares_the_registry_with_dev() -> None:
    dev, prod = (load_environment(n, environments_dir=ENVIRONMENTS_DIR) for n in ("dev", "prod"))
    assert prod.endpoint.public_network_access == "disabled"
    assert prod.workspace_settings.public_network_access == "Disabled"
    assert dev.workspace != prod.workspace
    assert dev.registry == prod.registry
    assert prod.rollout.min_requests >= dev.rollout.min_requests


def test_settings_are_frozen(dev_env: AzureEnvironment) -> None:
    with pytest.raises(ValueError, match="frozen"):
        dev_env.workspace = "other"  # type: ignore[misc]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


def test_unknown_key_is_named_in_the_error(tmp_path: Path) -> None:
    text = (
        (ENVIRONMENTS_DIR / "dev.yaml").read_text().replace("workspace:", "workspce: x\nworkspace:")
    )
    with pytest.raises(ConfigError, match="workspce"):
        load_environment("dev", environments_dir=_write(tmp_path, "dev", text))


def test_missing_environment_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"no Azure environment 'staging'.*\['dev', 'prod'\]"):
        load_environment("staging", environments_dir=ENVIRONMENTS_DIR)


def test_subscription_must_be_a_guid(tmp_path: Path) -> None:
    text = (ENVIRONMENTS_DIR / "dev.yaml").read_text().replace(PLACEHOLDER_SUBSCRIPTION, "my-sub")
    with pytest.raises(ConfigError, match=r"subscription_id.*GUID"):
        load_environment("dev", environments_dir=_write(tmp_path, "dev", text))


def test_bad_alert_email_is_refused(tmp_path: Path) -> None:
    text = (
        (ENVIRONMENTS_DIR / "dev.yaml")
        .read_text()
        .replace("mlops-dev-alerts@example.com", "not-an-address")
    )
    with pytest.raises(ConfigError, match="not-an-address"):
        load_environment("dev", environments_dir=_write(tmp_path, "dev", text))


def test_placeholder_subscription_is_refused_before_any_azure_call(
    dev_env: AzureEnvironment,
) -> None:
    assert dev_env.has_placeholder_subscription
    with pytest.raises(ConfigError, match=r"placeholder subscription.*--dry-run"):
        dev_env.require_real_subscription()


def test_variable_group_coordinates_override_the_file() -> None:
    environ = {
        "MLOPS_AZURE_DEV_SUBSCRIPTION_ID": "11111111-2222-3333-4444-555555555555",
        "MLOPS_AZURE_DEV_WORKSPACE": "mlw-from-variable-group",
        "MLOPS_AZURE_PROD_WORKSPACE": "not-for-dev",
        "MLOPS_AZURE_DEV_RESOURCE_GROUP": "",
    }
    env = load_environment(
        "dev", environments_dir=ENVIRONMENTS_DIR, overrides=coordinate_overrides(environ, "dev")
    )
    assert env.workspace == "mlw-from-variable-group"
    assert env.resource_group == "rg-mlops-dev"  # empty variable: the file's value stays
    env.require_real_subscription()


def test_a_subnet_must_be_an_arm_subnet_id(tmp_path: Path) -> None:
    text = (
        (ENVIRONMENTS_DIR / "dev.yaml")
        .read_text()
        .replace("compute:\n", "compute:\n  subnet: my-subnet\n")
    )
    with pytest.raises(ConfigError, match=r"compute\.subnet"):
        load_environment("dev", environments_dir=_write(tmp_path, "dev", text))


def test_no_project_name_is_hard_coded_in_the_azure_code() -> None:
    # Contract 3: names come from settings.project; only azure/environments/*.yaml (which
    # `mlcore init` rewrites) may name the shipped project.
    root = Path(__file__).resolve().parents[2]
    files = [
        *root.joinpath("azure").rglob("*"),
        *root.joinpath("pipelines", "azure").rglob("*"),
        root / "pipelines" / "azure-pipelines.yml",
    ]
    offenders = [
        str(path.relative_to(root))
        for path in files
        if path.is_file()
        and "environments" not in path.parts
        and "__pycache__" not in path.parts
        and "churn" in path.read_text(errors="ignore").lower()
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "image",
    [
        "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest",
        "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04",
        "localhost:5000/azureml/base",
    ],
)
def test_a_moving_base_image_tag_is_refused(image: str) -> None:
    from mlops_azure.config import EnvironmentImageConfig
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not pinned"):
        EnvironmentImageConfig(base_image=image)


def test_the_shipped_environments_pin_the_same_base_image() -> None:
    from mlops_azure.config import ENVIRONMENTS_DIR, load_environment

    images = {
        load_environment(n, environments_dir=ENVIRONMENTS_DIR).environment.base_image
        for n in ("dev", "prod")
    }
    assert len(images) == 1 and not images.pop().endswith(":latest")
