"""Private networking on Azure: the managed network's rules, its provisioning for Spark, and the
private endpoints and DNS zones of a workspace with no public access.

The rules are derived from what the kit builds (its environments' conda files and images, its
jobs), and checked per job type: command components, the training pipeline, the scheduled
command and serverless Spark jobs, the online deployment and Azure's monitors. ``apply`` is
driven through the real SDK clients (azure-ai-ml, azure-mgmt-network, azure-mgmt-privatedns)
down to the fake service of fake_arm.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlops_azure.__main__ as cli
import pytest
import yaml
from azure.ai.ml.entities import Environment, FqdnDestination, PrivateEndpointDestination
from fake_arm import (
    Credential,
    FakeAzure,
    install_default_transport,
    seed_registry,
    seed_workspace,
)
from mlops_azure import network
from mlops_azure.config import AzureEnvironment, load_environment
from mlops_azure.definitions import Definitions, build_definitions

from mlcore.errors import ConfigError
from mlcore.settings import MlopsSettings, load_settings

PROD_SUBSCRIPTION = "22222222-3333-4444-5555-666666666666"
# The subnet of the fixture prod.yaml lives in a network subscription of its own.
NETWORK_SUBSCRIPTION = "99999999-8888-7777-6666-555555555555"
PACKAGE_HOSTS = {"conda.anaconda.org", "pypi.org", "files.pythonhosted.org"}


@pytest.fixture(scope="module")
def streaming_settings(settings_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture settings with the streaming drift engine (the shipped mlops.yaml's): no
    Spark session installs packages, so prod's approved-outbound network can run every job."""
    document = yaml.safe_load(settings_file.read_text())
    document["monitoring"]["engine"] = "streaming"
    path = tmp_path_factory.mktemp("streaming") / "mlops.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def prod_definitions(
    prod_env: AzureEnvironment, streaming_settings: Path, tmp_path_factory: pytest.TempPathFactory
) -> Definitions:
    return _build(prod_env, load_settings(streaming_settings), streaming_settings, tmp_path_factory)


def _build(
    env: AzureEnvironment,
    settings: MlopsSettings,
    settings_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Definitions:
    return build_definitions(
        env,
        settings,
        work_dir=tmp_path_factory.mktemp("network-definitions"),
        model="azureml://registries/acme-registry/models/acme-risk-model/versions/1",
        reference_version="1",
        data_version="snapshot-test",
        run_key="20250101000000",
        settings_file=settings_file,
    )


# -- hosts from the environments -------------------------------------------------------


def test_the_environments_install_from_conda_forge_and_pypi_only(
    prod_definitions: Definitions,
) -> None:
    for environment in (prod_definitions.environment, prod_definitions.serving_environment):
        assert network.environment_hosts(environment) == PACKAGE_HOSTS


def test_a_conda_file_without_nodefaults_also_reaches_anacondas_defaults() -> None:
    conda = {"channels": ["conda-forge"], "dependencies": ["python=3.11"]}
    assert network.conda_hosts(conda) == {"conda.anaconda.org", "repo.anaconda.com"}


def test_a_private_index_replaces_pypi() -> None:
    conda = {
        "channels": ["https://conda.example.com/channel", "nodefaults"],
        "dependencies": [{"pip": ["--index-url https://pkgs.example.com/simple", "numpy==2.4.0"]}],
    }
    assert network.conda_hosts(conda) == {"conda.example.com", "pkgs.example.com"}


def test_a_base_image_outside_microsofts_registry_needs_its_host() -> None:
    environment = Environment(name="e", image="ghcr.io/acme/base:1.0", conda_file={"channels": []})
    assert "ghcr.io" in network.environment_hosts(environment)
    mcr = Environment(name="e", image="mcr.microsoft.com/azureml/x:1", conda_file={"channels": []})
    assert "mcr.microsoft.com" not in network.environment_hosts(mcr)


# -- every job type is allowed -----------------------------------------------------------


def test_every_job_type_the_kit_runs_is_checked(definitions: Definitions) -> None:
    # The dev fixture runs the Spark drift job too (monitoring.engine: auto).
    kinds = {need.kind for need in network.job_needs(definitions)}
    assert kinds == {"command", "pipeline", "serverless-spark", "online-endpoint", "monitor"}


def test_prods_rules_allow_every_job_and_nothing_more(
    prod_env: AzureEnvironment, prod_definitions: Definitions
) -> None:
    plan = network.plan_network(prod_env, prod_definitions)
    fqdns = {r.destination for r in plan.rules if isinstance(r, FqdnDestination)}
    assert fqdns == PACKAGE_HOSTS
    needs = plan.needs
    assert {n.kind for n in needs} == {"command", "pipeline", "online-endpoint", "monitor"}
    for need in needs:
        assert need.hosts <= fqdns, need
    endpoints = {
        (r.subresource_target, r.spark_enabled)
        for r in plan.rules
        if isinstance(r, PrivateEndpointDestination)
    }
    assert endpoints == {("amlregistry", True), ("blob", True), ("dfs", True)}
    assert plan.include_spark  # Azure's monitors run on serverless Spark


def test_dev_runs_the_spark_drift_job_with_internet_outbound_and_no_firewall(
    dev_env: AzureEnvironment, definitions: Definitions
) -> None:
    plan = network.plan_network(dev_env, definitions)
    assert not any(isinstance(r, FqdnDestination) for r in plan.rules)  # no Azure Firewall
    spark = [n for n in plan.needs if n.kind == "serverless-spark"]
    assert spark and all(n.session_packages for n in spark)
    # It reads the live model's reference from the registry, through the registry's endpoint.
    assert all(n.registry for n in spark)
    assert plan.include_spark


@pytest.mark.parametrize("host", sorted(PACKAGE_HOSTS))
def test_a_missing_package_rule_names_the_jobs_it_blocks(
    prod_env: AzureEnvironment, prod_definitions: Definitions, host: str
) -> None:
    needs = network.job_needs(prod_definitions)
    rules = network.outbound_rules(prod_env, needs, storage_account=network.DRY_RUN_STORAGE_ID)
    without = [r for r in rules if not (isinstance(r, FqdnDestination) and r.destination == host)]
    problems = network.job_problems(prod_env, needs, without)
    blocked = {p.split(":")[0] for p in problems}
    assert "online-endpoint deployment blue" in blocked
    assert "pipeline training pipeline" in blocked
    assert all(host in p for p in problems)


def test_a_missing_registry_endpoint_blocks_the_deployment_and_the_monitors(
    prod_env: AzureEnvironment, prod_definitions: Definitions
) -> None:
    needs = network.job_needs(prod_definitions)
    rules = network.outbound_rules(prod_env, needs, storage_account=network.DRY_RUN_STORAGE_ID)
    without = [r for r in rules if getattr(r, "subresource_target", "") != "amlregistry"]
    problems = network.job_problems(prod_env, needs, without)
    assert any(p.startswith("online-endpoint") and "registry" in p for p in problems)
    assert any(p.startswith("monitor") and "registry" in p for p in problems)


def test_prod_refuses_a_spark_job_that_installs_session_packages(
    prod_env: AzureEnvironment,
    settings: MlopsSettings,
    settings_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # The fixture settings say monitoring.engine: auto, which schedules mlcore on Spark.
    spark = _build(prod_env, settings, settings_file, tmp_path_factory)
    with pytest.raises(
        ConfigError, match=r"serverless-spark .*session packages.*engine: streaming"
    ):
        network.plan_network(prod_env, spark)


def test_a_private_workspace_needs_private_endpoints(
    environments_dir: Path, tmp_path: Path
) -> None:
    text = (environments_dir / "prod.yaml").read_text()
    start = text.index("  private_endpoints:")
    end = text.index("\n\n", start)
    (tmp_path / "prod.yaml").write_text(text[:start] + text[end + 1 :])
    with pytest.raises(
        ConfigError, match=r"no way to reach the workspace.*private_endpoints\.subnet"
    ):
        load_environment("prod", environments_dir=tmp_path)


# -- the dry run -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def prod_dry_run(
    tmp_path_factory: pytest.TempPathFactory, environments_dir: Path, streaming_settings: Path
) -> dict[str, Any]:
    output = tmp_path_factory.mktemp("prod-dry-run")
    argv = ["apply", "--env", "prod", "--dry-run", "--output", str(output)]
    argv += ["--environments", str(environments_dir), "--settings", str(streaming_settings)]
    assert cli.main(argv) == 0
    document: dict[str, Any] = json.loads((output / "network.json").read_text())
    return document


def test_the_dry_run_shows_a_prod_workspace_without_public_access(
    prod_dry_run: dict[str, Any], prod_env: AzureEnvironment
) -> None:
    assert prod_dry_run["public_network_access"] == "Disabled"
    managed = prod_dry_run["managed_network"]
    assert managed["isolation_mode"] == "allow_only_approved_outbound"
    assert managed["provision"] == {"include_spark": True}
    assert {r["destination"] for r in managed["outbound_rules"] if r["type"] == "FQDN"} == (
        PACKAGE_HOSTS
    )


def test_the_dry_run_lists_an_endpoint_and_dns_zone_for_each_private_resource(
    prod_dry_run: dict[str, Any],
) -> None:
    endpoints = prod_dry_run["private_endpoints"]["endpoints"]
    groups = {
        connection["properties"]["groupIds"][0]
        for endpoint in endpoints.values()
        for connection in endpoint["endpoint"]["properties"]["privateLinkServiceConnections"]
    }
    assert groups == {"amlworkspace", "amlregistry", "blob", "file", "vault", "registry"}
    assert set(prod_dry_run["private_endpoints"]["dns_zones"]) == {
        "privatelink.api.azureml.ms",
        "privatelink.notebooks.azure.net",
        "privatelink.blob.core.windows.net",
        "privatelink.file.core.windows.net",
        "privatelink.vaultcore.azure.net",
        "privatelink.azurecr.io",
    }
    assert prod_dry_run["private_endpoints"]["subscription"] == NETWORK_SUBSCRIPTION


# -- apply, through the SDKs to the wire -----------------------------------------------


@pytest.fixture
def prod_cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAzure]:
    """An empty prod subscription with the shared registry; the CLI's clients on the fake."""
    monkeypatch.setenv("MLOPS_AZURE_PROD_SUBSCRIPTION_ID", PROD_SUBSCRIPTION)
    monkeypatch.delenv("TF_BUILD", raising=False)
    monkeypatch.delenv("AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED", raising=False)
    fake = FakeAzure()
    seed_registry(fake, PROD_SUBSCRIPTION, "rg-mlops-prod", "acme-registry")
    install_default_transport(monkeypatch, fake)
    monkeypatch.setattr(cli.Clients, "client_options", {"transport": fake})
    monkeypatch.setattr(cli, "make_credential", Credential)
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    yield fake


@pytest.fixture
def apply_prod(
    environments_dir: Path, streaming_settings: Path, prod_cloud: FakeAzure
) -> Callable[[], int]:
    def call() -> int:
        return cli.main(
            [
                "apply",
                "--env",
                "prod",
                "--environments",
                str(environments_dir),
                "--settings",
                str(streaming_settings),
            ]
        )

    return call


def _template_parameters(fake: FakeAzure) -> dict[str, Any]:
    (deployment,) = fake.sent("PUT", r"/Microsoft.Resources/deployments/")
    return {k: v.get("value") for k, v in deployment.body["properties"]["parameters"].items()}


def test_apply_creates_prod_with_no_public_path(
    apply_prod: Callable[[], int], prod_cloud: FakeAzure
) -> None:
    assert apply_prod() == 0
    parameters = _template_parameters(prod_cloud)
    assert parameters["publicNetworkAccess"] == "Disabled"
    # The storage account and key vault created with it refuse public access too.
    assert parameters["associatedResourcePNA"] == "Disabled"
    assert parameters["managedNetwork"]["isolationMode"] == "AllowOnlyApprovedOutbound"
    (endpoint,) = prod_cloud.sent("PUT", r"/onlineEndpoints/[^/]+$")
    assert endpoint.body["properties"]["publicNetworkAccess"].lower() == "disabled"
    (compute,) = prod_cloud.sent("PUT", r"/computes/cpu-cluster$")
    assert compute.body["properties"]["properties"]["enableNodePublicIp"] is False


def test_apply_puts_the_rules_then_provisions_the_network_for_spark_before_any_compute(
    apply_prod: Callable[[], int], prod_cloud: FakeAzure
) -> None:
    assert apply_prod() == 0
    rules = {
        r.path.rsplit("/", 1)[1]: r.body["properties"]
        for r in prod_cloud.sent("PUT", r"/workspaces/mlw-mlops-prod/outboundRules/")
    }
    assert {p["destination"] for p in rules.values() if p["type"] == "FQDN"} == PACKAGE_HOSTS
    registry = [p for p in rules.values() if p["type"] == "PrivateEndpoint"]
    assert {
        (p["destination"]["subresourceTarget"], p["destination"]["sparkEnabled"]) for p in registry
    } == {
        ("amlregistry", True),
        ("blob", True),
        ("dfs", True),
    }
    (provision,) = prod_cloud.sent("POST", r"/workspaces/mlw-mlops-prod/provisionManagedNetwork$")
    assert provision.body == {"includeSpark": True}
    order = [r.path for r in prod_cloud.requests if r.method in ("PUT", "POST")]
    first_compute = min(
        i
        for i, p in enumerate(order)
        if p.endswith("/computes/cpu-cluster") or "/onlineEndpoints/" in p
    )
    assert order.index(provision.path) < first_compute
    assert max(i for i, p in enumerate(order) if "/outboundRules/" in p) < order.index(
        provision.path
    )


def test_apply_creates_the_private_endpoints_and_their_dns_in_the_agents_network(
    apply_prod: Callable[[], int], prod_cloud: FakeAzure
) -> None:
    assert apply_prod() == 0
    subnet_group = f"/subscriptions/{NETWORK_SUBSCRIPTION}/resourceGroups/rg-network-prod/"
    endpoints = prod_cloud.sent("PUT", r"/Microsoft\.Network/privateEndpoints/[^/]+$")
    targets = {}
    for sent in endpoints:
        assert sent.path.startswith(subnet_group)
        properties = sent.body["properties"]
        assert properties["subnet"]["id"].endswith("/subnets/snet-private-endpoints")
        (connection,) = properties["privateLinkServiceConnections"]
        link = connection["properties"]
        targets[link["groupIds"][0]] = link["privateLinkServiceId"]
    workspace = prod_cloud.resource(r"/workspaces/mlw-mlops-prod$")["properties"]
    assert targets == {
        "amlworkspace": prod_cloud.resource(r"/workspaces/mlw-mlops-prod$")["id"],
        "amlregistry": prod_cloud.resource(r"/registries/acme-registry$")["id"],
        "blob": workspace["storageAccount"],
        "file": workspace["storageAccount"],
        "vault": workspace["keyVault"],
        "registry": workspace["containerRegistry"],
    }
    groups = prod_cloud.sent("PUT", r"/privateEndpoints/[^/]+/privateDnsZoneGroups/default$")
    assert len(groups) == len(endpoints)
    zones = {r.path.rsplit("/", 1)[1] for r in prod_cloud.sent("PUT", r"/privateDnsZones/[^/]+$")}
    for group in groups:
        for config in group.body["properties"]["privateDnsZoneConfigs"]:
            assert config["properties"]["privateDnsZoneId"].rsplit("/", 1)[1] in zones
    links = prod_cloud.sent("PUT", r"/privateDnsZones/[^/]+/virtualNetworkLinks/[^/]+$")
    assert {r.path.split("/privateDnsZones/")[1].split("/")[0] for r in links} == zones
    for link in links:
        vnet = link.body["properties"]["virtualNetwork"]["id"]
        assert vnet.endswith("/virtualNetworks/vnet-mlops-prod")
        assert link.body["properties"]["registrationEnabled"] is False


def test_apply_refuses_a_blocked_job_before_creating_anything(
    environments_dir: Path,
    settings_file: Path,
    prod_cloud: FakeAzure,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["apply", "--env", "prod", "--environments", str(environments_dir)]
    assert cli.main([*argv, "--settings", str(settings_file)]) == cli.EXIT_CONFIG
    assert "session packages" in capsys.readouterr().err.replace("\n", " ")
    assert [r for r in prod_cloud.requests if r.method != "GET"] == []


def test_an_existing_workspace_with_a_weaker_network_is_reported_not_changed(
    apply_prod: Callable[[], int], prod_cloud: FakeAzure, capsys: pytest.CaptureFixture[str]
) -> None:
    # seed_workspace: a workspace created with internet outbound, as dev's is.
    seed_workspace(prod_cloud, PROD_SUBSCRIPTION, "rg-mlops-prod", "mlw-mlops-prod")
    prod_cloud.resource(r"/workspaces/mlw-mlops-prod$")["properties"]["publicNetworkAccess"] = (
        "Enabled"
    )
    assert apply_prod() == cli.EXIT_CONFIG
    error = " ".join(capsys.readouterr().err.split())
    assert "managed network is AllowInternetOutbound, the settings say" in error
    assert "public network access is Enabled" in error
    assert prod_cloud.sent("PUT", r"/outboundRules/|/privateEndpoints/|/computes/") == []
    assert prod_cloud.sent("POST", r"/provisionManagedNetwork$") == []
