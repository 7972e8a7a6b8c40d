"""The workspace's managed network: what each job the kit runs needs to reach, and the rules
that allow exactly that.

Azure ML runs every job of the kit on managed compute inside the workspace's managed virtual
network (Learn: how-to-managed-network). With ``allow_only_approved_outbound`` (prod's
default) nothing leaves that network unless a rule allows it. Azure adds the *required* rules
itself: private endpoints to the workspace and its own storage, key vault and container
registry, and the service tags Azure ML needs (AzureMachineLearning, AzureActiveDirectory,
BatchNodeManagement, AzureResourceManager, AzureFrontDoor.FirstParty,
MicrosoftContainerRegistry, AzureMonitor). What the kit adds (user-defined rules):

* FQDN rules for the package hosts its environments install from. The hosts are read from the
  environments themselves (:func:`environment_hosts`): the conda channels of each conda file
  (``conda-forge`` is served by conda.anaconda.org; ``nodefaults`` keeps conda off
  repo.anaconda.com), PyPI for its ``pip`` section (pypi.org lists, files.pythonhosted.org
  serves the files), and the base image's registry unless it is Microsoft's, which the
  required MicrosoftContainerRegistry and AzureFrontDoor.FirstParty tags already allow.
  The images are built by Azure ML inside the managed network (the workspace's container
  registry is reachable only through its private endpoint there), so the build needs them.
* A private endpoint to the shared registry (subresource ``amlregistry``): every deployment
  serves a registry model, and the monitors read their reference from registry data.
* Private endpoints, enabled for Spark, to the workspace's storage account (``blob`` and
  ``dfs``): serverless Spark (Azure's monitors, the kit's drift job) reads the collected
  traffic through them (Learn: "Configure for serverless Spark jobs").

Then the network is provisioned with Spark support (``begin_provision_network(
include_spark=True)``): without it the first serverless Spark job waits for provisioning and
private endpoints are created only with the first compute.

One thing no rule can allow: with ``allow_only_approved_outbound``, serverless Spark cannot
install session packages (the conda file in ``spark.synapse.library.python.env``), because
FQDN rules do not reach Spark (Learn: how-to-managed-network, "Configure for serverless Spark
jobs"). :func:`job_problems` refuses the kit's own Spark drift job there, with the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from azure.ai.ml import MLClient
from azure.ai.ml.constants._workspace import OutboundRuleCategory
from azure.ai.ml.entities import (
    Environment,
    FqdnDestination,
    OutboundRule,
    PipelineJob,
    PrivateEndpointDestination,
    Workspace,
)
from rich.console import Console

from mlcore.errors import ConfigError
from mlops_azure.config import AzureEnvironment
from mlops_azure.definitions import Definitions, asset_ref
from mlops_azure.private_endpoints import (
    DRY_RUN_RESOURCES,
    WorkspaceResources,
    plan_document,
    registry_resource_id,
)
from mlops_azure.progress import wait_for

# conda's default channel_alias: a channel given by name is served from here.
CONDA_CHANNEL_HOST = "conda.anaconda.org"
# conda's "defaults" channels (repo.anaconda.com), used unless the file lists nodefaults.
CONDA_DEFAULTS_HOST = "repo.anaconda.com"
# pip's default index lists packages on pypi.org and serves their files from here.
PYPI_HOSTS = ("pypi.org", "files.pythonhosted.org")
# Microsoft's registry: allowed by Azure's required service tags in every managed network.
MICROSOFT_REGISTRY = "mcr.microsoft.com"
SPARK_PYTHON_ENV_CONF = "spark.synapse.library.python.env"
# Storage subresources serverless Spark reads through: blob (the SDK's uploads, mounts) and
# dfs (abfss:// paths in direct mode).
SPARK_STORAGE_SUBRESOURCES = ("blob", "dfs")
REGISTRY_SUBRESOURCE = "amlregistry"
REGISTRY_URI = "azureml://registries/"
APPROVED_ONLY = "allow_only_approved_outbound"
# The service's pattern for outbound rule names (REST API, Managed Network Settings Rule).
_RULE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$")


# -- what the environments install from ----------------------------------------------


def _channel_host(channel: str) -> str | None:
    if channel == "nodefaults":
        return None
    if channel == "defaults":
        return CONDA_DEFAULTS_HOST
    if "://" in channel:
        return urlsplit(channel).hostname
    return CONDA_CHANNEL_HOST


def _pip_index_hosts(pip: Iterable[str]) -> set[str]:
    """The hosts pip reads from: PyPI unless the requirements set their own index."""
    hosts: set[str] = set()
    replaced = False
    for line in pip:
        option = re.match(r"^\s*--(index-url|extra-index-url)[=\s]+(\S+)", line)
        if option:
            replaced = replaced or option.group(1) == "index-url"
            host = urlsplit(option.group(2)).hostname
            if host:
                hosts.add(host)
    return hosts if replaced else hosts | set(PYPI_HOSTS)


def conda_hosts(conda: Mapping[str, Any]) -> set[str]:
    """The hosts installing a conda file reaches: its channels' hosts, and pip's index when
    it has a ``pip`` section."""
    channels = [str(c) for c in conda.get("channels") or []]
    hosts = {h for h in (_channel_host(c) for c in channels) if h}
    if "nodefaults" not in channels:
        hosts.add(CONDA_DEFAULTS_HOST)
    for dependency in conda.get("dependencies") or []:
        if isinstance(dependency, dict) and "pip" in dependency:
            hosts |= _pip_index_hosts(str(line) for line in dependency["pip"] or [])
    return hosts


def image_host(image: str) -> str:
    """The registry an image reference pulls from (Docker Hub when it names none)."""
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def environment_hosts(environment: Environment) -> set[str]:
    """Every host the image build of ``environment`` reaches that Azure's required rules do
    not already allow."""
    hosts = set()
    if environment.image and image_host(environment.image) != MICROSOFT_REGISTRY:
        hosts.add(image_host(environment.image))
    if environment.conda_file:
        conda: Any = environment.conda_file
        if isinstance(conda, str):
            conda = yaml.safe_load(conda)
        if not isinstance(conda, Mapping):
            raise ConfigError(f"environment {environment.name} has no readable conda file")
        hosts |= conda_hosts(conda)
    return hosts


# -- the jobs the kit runs and what each needs ---------------------------------------


@dataclass(frozen=True)
class JobNeeds:
    """What one job (or endpoint) of the kit needs from the managed network."""

    kind: str  # command | pipeline | serverless-spark | online-endpoint | monitor
    name: str
    hosts: frozenset[str] = frozenset()
    spark: bool = False
    registry: bool = False
    session_packages: bool = False  # installs a conda file when the Spark session starts
    unknown_environments: tuple[str, ...] = ()


def _environment_of(node: Any) -> Any:
    found = getattr(node, "environment", None)
    if found is None:
        found = getattr(getattr(node, "component", None), "environment", None)
    return found


def _pipeline_needs(
    kind: str, name: str, job: PipelineJob, environments: Mapping[str, Environment]
) -> JobNeeds:
    hosts: set[str] = set()
    unknown: list[str] = []
    spark = session = False
    for node in (job.jobs or {}).values():
        conf = getattr(node, "conf", None) or {}
        if getattr(node, "type", None) == "spark":
            spark = True
            if conf.get(SPARK_PYTHON_ENV_CONF):
                session = True
                hosts |= conda_hosts(yaml.safe_load(conf[SPARK_PYTHON_ENV_CONF]))
            continue
        environment = _environment_of(node)
        if isinstance(environment, Environment):
            hosts |= environment_hosts(environment)
        elif isinstance(environment, str) and environment in environments:
            hosts |= environment_hosts(environments[environment])
        else:
            unknown.append(f"{node.name}: {environment!r}")
    return JobNeeds(
        kind="serverless-spark" if spark else kind,
        name=name,
        hosts=frozenset(hosts),
        spark=spark,
        registry=_reads_a_registry(job),
        session_packages=session,
        unknown_environments=tuple(unknown),
    )


def _reads_a_registry(job: PipelineJob) -> bool:
    """Whether any input of the job or its steps is a registry asset (a model, the reference)."""
    document = json.dumps(job._to_dict(), default=str)
    return REGISTRY_URI in document


def job_needs(definitions: Definitions) -> list[JobNeeds]:
    """Every job type the kit runs, as ``definitions`` builds them: the training pipeline and
    its command components, the scheduled model-performance (command) and drift (serverless
    Spark) jobs, the online deployment, and Azure's monitors."""
    environments = {
        asset_ref(e): e for e in (definitions.environment, definitions.serving_environment)
    }
    needs = []
    for step, component in definitions.components.items():
        environment = component.environment
        known = environments.get(str(environment)) if isinstance(environment, str) else None
        resolved = environment if isinstance(environment, Environment) else known
        needs.append(
            JobNeeds(
                kind="command",
                name=f"component {step}",
                hosts=frozenset(environment_hosts(resolved)) if resolved else frozenset(),
                unknown_environments=() if resolved else (f"{step}: {environment!r}",),
            )
        )
    needs.append(
        _pipeline_needs(
            "pipeline", "training pipeline", definitions.training_pipeline, environments
        )
    )
    for family, schedules in (
        ("model-performance", definitions.performance),
        ("spark drift", definitions.spark_drift),
    ):
        for schedule in schedules:
            job = schedule.create_job
            if not isinstance(job, PipelineJob):
                raise TypeError(f"schedule {schedule.name} does not run a pipeline job")
            needs.append(
                _pipeline_needs("command", f"{family} schedule {schedule.name}", job, environments)
            )
    deployment = definitions.deployment
    environment = deployment.environment
    resolved = (
        environment if isinstance(environment, Environment) else environments.get(str(environment))
    )
    needs.append(
        JobNeeds(
            kind="online-endpoint",
            name=f"deployment {deployment.name}",
            hosts=frozenset(environment_hosts(resolved)) if resolved else frozenset(),
            registry=str(deployment.model).startswith(REGISTRY_URI),
            unknown_environments=() if resolved else (f"{deployment.name}: {environment!r}",),
        )
    )
    for monitor in definitions.monitors:
        # Azure's monitors run Azure's own Spark components on serverless Spark and read the
        # reference data the kit shares to the registry.
        needs.append(
            JobNeeds(kind="monitor", name=f"monitor {monitor.name}", spark=True, registry=True)
        )
    return needs


# -- the rules -------------------------------------------------------------------------


def _rule_name(prefix: str, target: str) -> str:
    name = f"{prefix}-{re.sub(r'[^a-zA-Z0-9]+', '-', target)}".strip("-")[:33].rstrip("-_")
    if not _RULE_NAME.match(name):
        raise ConfigError(f"cannot name an outbound rule for {target!r}: {name!r}")
    return name


def fqdn_rules(needs: Iterable[JobNeeds]) -> list[FqdnDestination]:
    """One FQDN rule per package host an image build or Spark session reaches."""
    hosts = sorted({host for need in needs for host in need.hosts})
    return [FqdnDestination(name=_rule_name("pkg", host), destination=host) for host in hosts]


def private_endpoint_rules(
    env: AzureEnvironment, needs: Iterable[JobNeeds], *, storage_account: str
) -> list[PrivateEndpointDestination]:
    """The registry's endpoint when a job uses it, and Spark-enabled storage endpoints when a
    Spark job runs; ``storage_account`` is the workspace's (its ARM id), known once it exists."""
    needs = list(needs)
    spark = any(n.spark for n in needs)
    rules = []
    if any(n.registry for n in needs):
        rules.append(
            PrivateEndpointDestination(
                name=_rule_name("registry", env.registry.name),
                service_resource_id=registry_resource_id(env),
                subresource_target=REGISTRY_SUBRESOURCE,
                spark_enabled=spark,
            )
        )
    if spark:
        # Named by their role, not the account's name, which Azure chooses at creation.
        rules.extend(
            PrivateEndpointDestination(
                name=f"workspace-storage-{subresource}-spark",
                service_resource_id=storage_account,
                subresource_target=subresource,
                spark_enabled=True,
            )
            for subresource in SPARK_STORAGE_SUBRESOURCES
        )
    return rules


def outbound_rules(
    env: AzureEnvironment, needs: Iterable[JobNeeds], *, storage_account: str
) -> list[OutboundRule]:
    """The user-defined rules of ``env``'s managed network. FQDN rules exist only in
    ``allow_only_approved_outbound`` (with internet outbound everything public is reachable,
    and each FQDN rule would start an Azure Firewall for nothing)."""
    needs = list(needs)
    mode = env.workspace_settings.managed_network
    if mode == "disabled":
        return []
    rules: list[OutboundRule] = []
    if mode == APPROVED_ONLY:
        rules.extend(fqdn_rules(needs))
    rules.extend(private_endpoint_rules(env, needs, storage_account=storage_account))
    return rules


def job_problems(
    env: AzureEnvironment, needs: Iterable[JobNeeds], rules: Iterable[OutboundRule]
) -> list[str]:
    """What would stop a job of the kit in ``env``'s network; empty when every job can run.

    Checked per job: its package hosts each have an FQDN rule (approved-outbound only), the
    registry has a private endpoint (Spark-enabled for Spark jobs), a Spark job has Spark
    storage endpoints, and no Spark session installs packages behind approved-outbound.
    """
    rules = list(rules)
    mode = env.workspace_settings.managed_network
    if mode == "disabled":
        return []
    fqdns = {r.destination for r in rules if isinstance(r, FqdnDestination)}
    endpoints = [r for r in rules if isinstance(r, PrivateEndpointDestination)]
    registry = [
        r
        for r in endpoints
        if r.subresource_target == REGISTRY_SUBRESOURCE
        and r.service_resource_id.lower() == registry_resource_id(env).lower()
    ]
    spark_storage = {
        r.subresource_target
        for r in endpoints
        if r.spark_enabled
        and "/microsoft.storage/storageaccounts/" in r.service_resource_id.lower()
    }
    problems = []
    for need in needs:
        where = f"{need.kind} {need.name}"
        for unknown in need.unknown_environments:
            problems.append(
                f"{where}: environment {unknown} is not one the kit builds, so its package "
                "hosts are unknown"
            )
        if mode == APPROVED_ONLY:
            missing = sorted(need.hosts - fqdns)
            if missing:
                problems.append(f"{where}: no FQDN rule for {missing}")
            if need.session_packages:
                problems.append(
                    f"{where}: serverless Spark cannot install session packages "
                    f"({SPARK_PYTHON_ENV_CONF}) in a workspace with allow_only_approved_outbound "
                    "(FQDN rules do not reach Spark). Set monitoring.engine: streaming in "
                    f"mlops.yaml, or workspace_settings.managed_network: allow_internet_outbound "
                    f"in azure/environments/{env.name}.yaml"
                )
        if need.registry and not registry:
            problems.append(f"{where}: no private endpoint rule to registry {env.registry.name}")
        if need.registry and need.spark and registry and not all(r.spark_enabled for r in registry):
            problems.append(f"{where}: the registry's private endpoint is not enabled for Spark")
        if need.spark and not set(SPARK_STORAGE_SUBRESOURCES) <= spark_storage:
            problems.append(
                f"{where}: no Spark-enabled private endpoint to the workspace storage "
                f"({', '.join(SPARK_STORAGE_SUBRESOURCES)})"
            )
    return problems


@dataclass(frozen=True)
class NetworkPlan:
    """The managed network of one environment: its rules and whether it is provisioned for Spark."""

    isolation_mode: str
    rules: list[OutboundRule]
    include_spark: bool
    needs: list[JobNeeds] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        """What the dry run writes: the rules as the SDK dumps them, and each job's needs."""
        return {
            "managed_network": {
                "isolation_mode": self.isolation_mode,
                "provision": {"include_spark": self.include_spark},
                "outbound_rules": [rule._to_dict() for rule in self.rules],  # type: ignore[attr-defined]
            },
            "jobs": [
                {
                    "kind": need.kind,
                    "name": need.name,
                    "package_hosts": sorted(need.hosts),
                    "spark": need.spark,
                    "registry": need.registry,
                }
                for need in self.needs
            ],
        }


# Stands for the workspace's storage account in the dry run, whose name Azure chooses when it
# creates the workspace; shaped as an ARM id, so the dry run's rules are checked as apply's are.
DRY_RUN_STORAGE_ID = (
    "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/"
    "Microsoft.Storage/storageAccounts/{workspace-storage-account}"
)


def plan_network(
    env: AzureEnvironment, definitions: Definitions, *, storage_account: str = DRY_RUN_STORAGE_ID
) -> NetworkPlan:
    """The rules ``env`` needs for the jobs ``definitions`` runs; ``storage_account`` is the
    workspace's (its ARM id), read from the workspace at apply.

    Raises
    ------
    ConfigError
        When a job the kit runs would be blocked by the network (:func:`job_problems`).
    """
    needs = job_needs(definitions)
    rules = outbound_rules(env, needs, storage_account=storage_account)
    problems = job_problems(env, needs, rules)
    if problems:
        raise ConfigError(
            f"the managed network of {env.name} ({env.workspace_settings.managed_network}) "
            "would block jobs the kit runs:\n  - " + "\n  - ".join(problems)
        )
    return NetworkPlan(
        isolation_mode=env.workspace_settings.managed_network,
        rules=rules,
        include_spark=any(n.spark for n in needs),
        needs=needs,
    )


def _plain(value: object) -> str:
    """An SDK enum's value (``IsolationMode.X`` prints its member name), or the string."""
    return str(getattr(value, "value", value) or "")


def _squash(value: object) -> str:
    return re.sub(r"[^a-z]", "", _plain(value).lower())


def _check_existing_network(workspace: Workspace, env: AzureEnvironment) -> None:
    """An existing workspace is left as it is, so its network must already be what the settings
    say: Azure cannot turn a managed network off, nor make an internet-outbound one approved-only
    (Learn: how-to-managed-network, Limitations), and a public workspace is not a private one."""
    settings = env.workspace_settings
    problems = []
    actual = _plain(
        workspace.managed_network.isolation_mode if workspace.managed_network else "Disabled"
    )
    if _squash(actual) != _squash(settings.managed_network):
        problems.append(
            f"its managed network is {actual}, the settings say {settings.managed_network}"
        )
    access = _plain(workspace.public_network_access)
    if access and _squash(access) != _squash(settings.public_network_access):
        problems.append(
            f"its public network access is {access}, the settings say "
            f"{settings.public_network_access}"
        )
    if problems:
        raise ConfigError(
            f"workspace {env.workspace} exists and does not match "
            f"azure/environments/{env.name}.yaml: {'; '.join(problems)}. Change the workspace "
            "(Networking in the portal; a managed network cannot be turned off, nor changed from "
            "internet outbound to approved-only: that needs a new workspace) or the settings"
        )


def workspace_resources(ml_client: MLClient, env: AzureEnvironment) -> WorkspaceResources:
    """The workspace's own resources, as the workspace reports them, once its network is checked
    against the settings."""
    workspace: Workspace = ml_client.workspaces.get(env.workspace)
    _check_existing_network(workspace, env)
    missing = [
        name for name in ("storage_account", "key_vault") if not getattr(workspace, name, None)
    ]
    if missing or not workspace.id:
        raise ConfigError(f"workspace {env.workspace} reports no {missing or 'id'}")
    return WorkspaceResources(
        workspace=str(workspace.id),
        storage_account=str(workspace.storage_account),
        key_vault=str(workspace.key_vault),
        container_registry=workspace.container_registry or None,
    )


def write_network_plan(env: AzureEnvironment, definitions: Definitions, output: Path) -> Path:
    """The dry run's network.json: the managed network's rules, what each job needs, and the
    private endpoints and DNS zones ``apply`` creates (the workspace's own resources, which
    Azure names at creation, stand as placeholders)."""
    plan = plan_network(env, definitions)
    document = {
        **plan.document(),
        "public_network_access": env.workspace_settings.public_network_access,
        "private_endpoints": plan_document(env, DRY_RUN_RESOURCES),
    }
    path = output / "network.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def apply_managed_network(
    ml_client: MLClient,
    env: AzureEnvironment,
    definitions: Definitions,
    resources: WorkspaceResources,
    *,
    console: Console,
) -> NetworkPlan | None:
    """Put the outbound rules on the workspace and provision its network (with Spark when a
    Spark job runs). Rules are PUT one by one, so a rule added by hand stays; a rule the kit
    no longer needs is named, not removed (a person may depend on it)."""
    if env.workspace_settings.managed_network == "disabled":
        console.print("Managed network disabled: no outbound rules to apply")
        return None
    plan = plan_network(env, definitions, storage_account=resources.storage_account)
    existing = list(ml_client.workspace_outbound_rules.list(env.workspace))
    for rule in plan.rules:
        wait_for(
            ml_client.workspace_outbound_rules.begin_create(env.workspace, rule),
            f"Outbound rule {rule.name}",
            console=console,
        )
    wanted = {rule.name for rule in plan.rules}
    stale = sorted(
        str(rule.name)
        for rule in existing
        if rule is not None
        and rule.category == OutboundRuleCategory.USER_DEFINED
        and rule.name not in wanted
    )
    if stale:
        console.print(
            f"[yellow]Outbound rules the kit does not need (left as they are): {stale}[/yellow]"
        )
    wait_for(
        ml_client.workspaces.begin_provision_network(
            workspace_name=env.workspace, include_spark=plan.include_spark
        ),
        f"Provisioning the managed network of {env.workspace}"
        + (" with Spark" if plan.include_spark else ""),
        console=console,
    )
    return plan
