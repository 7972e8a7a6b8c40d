"""Compute, environment and data assets: the fields users rely on."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.ai.ml.entities import Environment
from mlops_azure import assets
from mlops_azure.config import AzureEnvironment
from mlops_azure.definitions import Definitions

from mlcore.errors import ConfigError
from mlcore.settings import MlopsSettings


def test_compute_scales_to_zero(definitions: Definitions) -> None:
    compute = definitions.compute
    assert compute.min_instances == 0
    assert compute.max_instances == 2
    assert compute.idle_time_before_scale_down == 900


def test_nodes_lose_public_ips_only_with_a_private_route(dev_env: AzureEnvironment) -> None:
    # Learn (how-to-secure-training-vnet, "compute instance/cluster with no public IP"):
    # nodes without public IPs need a VNet subnet or a managed-VNet workspace.
    managed = dev_env.model_copy(
        update={
            "workspace_settings": dev_env.workspace_settings.model_copy(
                update={"managed_network": "allow_only_approved_outbound"}
            )
        }
    )
    assert assets.build_compute(managed).enable_node_public_ip is False
    open_ws = dev_env.workspace_settings.model_copy(update={"managed_network": "disabled"})
    public = dev_env.model_copy(update={"workspace_settings": open_ws})
    assert assets.build_compute(public).enable_node_public_ip is True
    subnet = (
        "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers/"
        "Microsoft.Network/virtualNetworks/vnet/subnets/training"
    )
    on_subnet = public.model_copy(
        update={"compute": public.compute.model_copy(update={"subnet": subnet})}
    )
    compute = assets.build_compute(on_subnet)
    assert compute.enable_node_public_ip is False
    assert compute.network_settings.subnet == subnet


def _locked(name: str) -> dict[str, str]:
    """normalised name -> the lock's entry (name==version --hash=...), lower-cased."""
    from tools.locks import LOCKS_BY_NAME, read_lock

    return {n: p.requirement.lower() for n, p in read_lock(LOCKS_BY_NAME[name].path).items()}


def _pip(environment: Environment) -> list[str]:
    pip: list[str] = environment.conda_file["dependencies"][-1]["pip"]
    return [requirement.lower() for requirement in pip]


def _versions(pip: list[str]) -> dict[str, str]:
    return {p.split("==")[0]: p.split("==")[1].split()[0] for p in pip}


def test_job_environment_is_the_job_lock_with_hashes(definitions: Definitions) -> None:
    # Issue 20: the environment once resolved python-dateutil and pydantic at build time, to
    # versions CI never ran. Now every entry is the lock's, whole tree, each with its hashes.
    pip = _pip(definitions.environment)
    assert pip == list(_locked("azure-job").values())
    assert all(" --hash=sha256:" in p for p in pip)
    # Issue 13: jobs log to the workspace's MLflow tracking, which needs both, pinned.
    versions = _versions(pip)
    assert versions["mlflow-skinny"] == "3.15.0"
    assert versions["azureml-mlflow"] == "1.62.0.post6"
    assert versions["python-dateutil"] == _versions(list(_locked("ci").values()))["python-dateutil"]
    assert definitions.environment.conda_file["dependencies"][0] == "python=3.11"
    assert definitions.environment.name == "acme-risk-mlcore-training"


def test_the_pipeline_steps_run_in_the_mlflow_environment(definitions: Definitions) -> None:
    ref = f"azureml:{definitions.environment.name}:{definitions.environment.version}"
    assert {c.environment for c in definitions.components.values()} == {ref}
    commands = {step: c.command for step, c in definitions.components.items()}
    # mlcore train and evaluate are what log to MLflow (Azure ML sets MLFLOW_TRACKING_URI).
    assert commands["train"].startswith("python -m mlcore train")
    assert commands["evaluate"].startswith("python -m mlcore evaluate")


def test_no_azure_environment_installs_the_aws_toolchain(definitions: Definitions) -> None:
    for environment in (definitions.environment, definitions.serving_environment):
        names = {p.split("==")[0] for p in _pip(environment)}
        assert not names & {"aws-cdk-lib", "sagemaker", "boto3", "moto", "cdk-nag"}, names


def test_serving_environment_is_the_serving_lock_with_hashes(definitions: Definitions) -> None:
    serving = _pip(definitions.serving_environment)
    assert serving == list(_locked("azure-serving").values())
    versions = _versions(serving)
    # The one pin Azure's server forces (tools/locks.py AZURE_DIFFERENCES says which and why).
    assert versions["pydantic"] == "2.12.5"
    assert "azureml-inference-server-http" in versions and "azureml-ai-monitoring" in versions
    assert definitions.serving_environment.version != definitions.environment.version
    assert definitions.deployment.environment == (
        f"azureml:{definitions.serving_environment.name}:{definitions.serving_environment.version}"
    )


def test_environment_version_changes_with_the_pins(
    dev_env: AzureEnvironment, settings: MlopsSettings
) -> None:
    base = assets.build_environment(dev_env, settings, ["numpy==2.4.6 --hash=sha256:aa"])
    same = assets.build_environment(dev_env, settings, ["numpy==2.4.6 --hash=sha256:aa"])
    bumped = assets.build_environment(dev_env, settings, ["numpy==2.4.7 --hash=sha256:bb"])
    assert base.version == same.version
    assert base.version != bumped.version


def test_an_extra_without_a_lock_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"mlcore\[gpu\], which has no lock.*make lock"):
        assets.locked_requirements(["gpu"], serving=False)


def test_training_data_points_at_the_datastore_folder(definitions: Definitions) -> None:
    data = definitions.training_data
    assert data.type == "uri_folder"
    assert data.path == "azureml://datastores/workspaceblobstore/paths/acme/raw/"
    assert data.name == "acme-risk-training-data"


def test_data_version_follows_the_files() -> None:
    one = [assets.StoredFile("raw/a.parquet", 10, "0x1")]
    assert assets.snapshot_version(one) == assets.snapshot_version(list(reversed(one)))
    added = [*one, assets.StoredFile("raw/b.parquet", 4, "0x2")]
    rewritten = [assets.StoredFile("raw/a.parquet", 10, "0x9")]
    versions = {assets.snapshot_version(files) for files in (one, added, rewritten)}
    assert len(versions) == 3
    with pytest.raises(ConfigError, match="holds no files"):
        assets.snapshot_version([])


def test_workspace_and_registry_are_built_from_settings(definitions: Definitions) -> None:
    workspace, registry = definitions.workspace, definitions.registry
    assert (workspace.name, workspace.location) == ("mlw-mlops-dev", "westeurope")
    assert workspace.managed_network.isolation_mode == "AllowInternetOutbound"
    assert registry.name == "acme-registry"
    assert [r.location for r in registry.replication_locations] == ["westeurope"]


def test_settings_asset_is_versioned_by_content(settings: MlopsSettings, tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text("project: acme-risk\n")
    second = tmp_path / "b.yaml"
    second.write_text("project: acme-risk\ngate: {min_metrics: {auc: 0.8}}\n")
    assert (
        assets.build_settings_data(settings, first).version
        != assets.build_settings_data(settings, second).version
    )
    with pytest.raises(ConfigError, match="does not exist"):
        assets.build_settings_data(settings, tmp_path / "missing.yaml")


def _settings_with(settings: MlopsSettings, **sections: dict[str, object]) -> MlopsSettings:
    data = settings.model_dump()
    for section, values in sections.items():
        data[section] = {**data[section], **values}
    if "training" in sections:
        data["training"].pop("hyperparameters")  # the fixture's belong to its algorithm
    return MlopsSettings.model_validate(data)


@pytest.mark.parametrize(
    ("algorithm", "package"), [("xgboost", "xgboost-cpu"), ("lightgbm", "lightgbm")]
)
def test_a_configured_estimator_is_installed_in_the_job_and_serving_environments(
    dev_env: AzureEnvironment, settings: MlopsSettings, algorithm: str, package: str
) -> None:
    # The endpoint unpickles the model, so it needs the estimator's package as much as
    # training does (pyproject: mlcore[xgboost] is xgboost-cpu on Linux, where Azure runs).
    from mlops_azure.definitions import runtime_environment

    configured = _settings_with(settings, training={"algorithm": algorithm})
    pin = _locked(f"extra-{algorithm}")[package]
    for serving in (False, True):
        pip = _pip(runtime_environment(dev_env, configured, serving=serving))
        assert pin in pip, (serving, pip)
        assert not any(p.startswith("xgboost==") for p in pip), "the non-Linux xgboost wheel"
    plain = _pip(runtime_environment(dev_env, settings))
    assert not any(p.startswith(package + "==") for p in plain), "installed although unconfigured"


def test_tracking_on_uses_the_workspace_mlflow_pins_not_cis(
    dev_env: AzureEnvironment, settings: MlopsSettings
) -> None:
    # mlcore[tracking] is mlflow 3.17.2, which azureml-mlflow cannot share: the job
    # environment's MLflow is requirements-job.txt's, and the endpoint tracks nothing.
    from mlops_azure.definitions import runtime_environment

    tracked = _settings_with(settings, tracking={"enabled": True})
    job = _pip(runtime_environment(dev_env, tracked))
    versions = _versions(job)
    assert versions["mlflow-skinny"] == "3.15.0" and versions["azureml-mlflow"] == "1.62.0.post6"
    assert not any(p.startswith("mlflow==") for p in job), job
    serving = _pip(runtime_environment(dev_env, tracked, serving=True))
    assert not any(p.startswith(("mlflow==", "mlflow-skinny==")) for p in serving), serving
