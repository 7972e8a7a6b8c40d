"""Private endpoints and privatelink DNS zones: the way into a workspace with no public access.

A workspace with ``public_network_access: Disabled`` answers only through private endpoints
in a virtual network of yours. ``apply`` creates them in the subnet named by
``workspace_settings.private_endpoints.subnet`` for the workspace, its storage account (blob
and file: the SDK uploads code and data to blob, the studio reads files), key vault and
container registry, and for the shared registry; and it creates the privatelink DNS zones
those endpoints register in, linked to the endpoints' virtual network (and any
``linked_vnets``), so that names such as ``<workspace-id>.workspace.<region>.api.azureml.ms``
resolve to the private addresses inside your network.

Built with azure-mgmt-network and azure-mgmt-privatedns from this package, rather than a
Bicep file beside it: the same typed models as the rest of ``apply``, the same credential,
transport and retries, the same dry run, and tests through the SDK's own serialisation to the
wire (no Bicep compiler or az CLI is needed to check them).

The zone names are Azure's (Learn: private-endpoint-dns, "Azure services DNS zone
configuration"); an endpoint's DNS zone group writes its A records into them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import (
    PrivateDnsZoneConfig,
    PrivateDnsZoneGroup,
    PrivateDnsZoneGroupPropertiesFormat,
    PrivateDnsZonePropertiesFormat,
    PrivateEndpoint,
    PrivateEndpointProperties,
    PrivateLinkServiceConnection,
    PrivateLinkServiceConnectionProperties,
    Subnet,
)
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.privatedns.models import (
    PrivateZone,
    SubResource,
    VirtualNetworkLink,
    VirtualNetworkLinkProperties,
)
from rich.console import Console

from mlcore.errors import ConfigError
from mlops_azure.config import AzureEnvironment, PrivateEndpointsConfig
from mlops_azure.progress import wait_for

# Private Link subresource (group id) -> the privatelink zones its records go in.
DNS_ZONES: dict[str, tuple[str, ...]] = {
    "amlworkspace": ("privatelink.api.azureml.ms", "privatelink.notebooks.azure.net"),
    "amlregistry": ("privatelink.api.azureml.ms",),
    "blob": ("privatelink.blob.core.windows.net",),
    "file": ("privatelink.file.core.windows.net",),
    "vault": ("privatelink.vaultcore.azure.net",),
    "registry": ("privatelink.azurecr.io",),
}
ZONE_GROUP = "default"


@dataclass(frozen=True)
class Target:
    """One private endpoint: the resource it reaches and the subresource it connects to."""

    role: str  # workspace | registry | storage | keyvault | acr
    resource_id: str
    group_id: str

    def endpoint_name(self, env: AzureEnvironment) -> str:
        return f"pe-{env.workspace}-{self.role}-{self.group_id}"[:80]


@dataclass(frozen=True)
class WorkspaceResources:
    """The workspace and the resources Azure created with it (ARM ids), as the workspace reports
    them; the container registry is None until Azure has created one."""

    workspace: str
    storage_account: str
    key_vault: str
    container_registry: str | None


def registry_resource_id(env: AzureEnvironment) -> str:
    registry = env.registry
    return (
        f"/subscriptions/{registry.subscription_id or env.subscription_id}/resourceGroups/"
        f"{registry.resource_group or env.resource_group}/providers/"
        f"Microsoft.MachineLearningServices/registries/{registry.name}"
    )


def workspace_resource_id(env: AzureEnvironment) -> str:
    return (
        f"/subscriptions/{env.subscription_id}/resourceGroups/{env.resource_group}/providers/"
        f"Microsoft.MachineLearningServices/workspaces/{env.workspace}"
    )


# Names the dry run gives the resources Azure names when it creates the workspace.
DRY_RUN_RESOURCES = WorkspaceResources(
    workspace="",
    storage_account="{workspace storage account}",
    key_vault="{workspace key vault}",
    container_registry="{workspace container registry}",
)


def targets(env: AzureEnvironment, resources: WorkspaceResources) -> list[Target]:
    found = [
        Target("workspace", resources.workspace or workspace_resource_id(env), "amlworkspace"),
        Target("registry", registry_resource_id(env), "amlregistry"),
        Target("storage", resources.storage_account, "blob"),
        Target("storage", resources.storage_account, "file"),
        Target("keyvault", resources.key_vault, "vault"),
    ]
    if resources.container_registry:
        found.append(Target("acr", resources.container_registry, "registry"))
    return found


def _segments(resource_id: str) -> dict[str, str]:
    parts = resource_id.strip("/").split("/")
    return {parts[i].lower(): parts[i + 1] for i in range(0, len(parts) - 1, 2)}


def subnet_location(config: PrivateEndpointsConfig) -> tuple[str, str, str]:
    """(subscription, resource group, virtual network id) of the endpoints' subnet: a private
    endpoint lives in its virtual network's subscription (Learn: private-endpoint-overview)."""
    segments = _segments(config.subnet)
    vnet = config.subnet.split("/subnets/")[0]
    return segments["subscriptions"], segments["resourcegroups"], vnet


def dns_zone_id(env: AzureEnvironment, config: PrivateEndpointsConfig, zone: str) -> str:
    return (
        f"/subscriptions/{env.subscription_id}/resourceGroups/"
        f"{config.dns_resource_group or env.resource_group}/providers/"
        f"Microsoft.Network/privateDnsZones/{zone}"
    )


def build_private_endpoint(env: AzureEnvironment, target: Target) -> PrivateEndpoint:
    config = _config(env)
    return PrivateEndpoint(
        location=env.workspace_settings.location,
        properties=PrivateEndpointProperties(
            subnet=Subnet(id=config.subnet),
            private_link_service_connections=[
                PrivateLinkServiceConnection(
                    name=target.endpoint_name(env),
                    properties=PrivateLinkServiceConnectionProperties(
                        private_link_service_id=target.resource_id,
                        group_ids=[target.group_id],
                    ),
                )
            ],
        ),
        tags={"environment": env.name, "purpose": f"private access to the {target.role}"},
    )


def build_zone_group(env: AzureEnvironment, target: Target) -> PrivateDnsZoneGroup:
    config = _config(env)
    return PrivateDnsZoneGroup(
        properties=PrivateDnsZoneGroupPropertiesFormat(
            private_dns_zone_configs=[
                PrivateDnsZoneConfig(
                    name=zone.replace(".", "-"),
                    properties=PrivateDnsZonePropertiesFormat(
                        private_dns_zone_id=dns_zone_id(env, config, zone)
                    ),
                )
                for zone in DNS_ZONES[target.group_id]
            ]
        )
    )


def build_vnet_link(vnet: str) -> VirtualNetworkLink:
    """A zone's link to a network: its machines resolve the zone's names (no auto-registration)."""
    return VirtualNetworkLink(
        location="global",
        properties=VirtualNetworkLinkProperties(
            virtual_network=SubResource(id=vnet), registration_enabled=False
        ),
    )


def linked_vnets(env: AzureEnvironment) -> list[str]:
    config = _config(env)
    _, _, vnet = subnet_location(config)
    return list(dict.fromkeys([vnet, *config.linked_vnets]))


def zones(found: list[Target]) -> list[str]:
    return sorted({zone for target in found for zone in DNS_ZONES[target.group_id]})


def _config(env: AzureEnvironment) -> PrivateEndpointsConfig:
    config = env.workspace_settings.private_endpoints
    if config is None:
        raise ConfigError(
            f"azure/environments/{env.name}.yaml sets no workspace_settings.private_endpoints"
        )
    return config


def plan_document(env: AzureEnvironment, resources: WorkspaceResources) -> dict[str, Any]:
    """The endpoints, zones and links ``apply`` creates, as the management SDK serialises them
    (the dry run's network.json)."""
    if env.workspace_settings.private_endpoints is None:
        return {}
    found = targets(env, resources)
    config = _config(env)
    subscription, group, _ = subnet_location(config)
    return {
        "subscription": subscription,
        "resource_group": group,
        "endpoints": {
            target.endpoint_name(env): {
                "endpoint": build_private_endpoint(env, target).as_dict(),
                "dns_zone_group": build_zone_group(env, target).as_dict(),
            }
            for target in found
        },
        "dns_zones": {
            zone: {
                "id": dns_zone_id(env, config, zone),
                "links": [build_vnet_link(vnet).as_dict() for vnet in linked_vnets(env)],
            }
            for zone in zones(found)
        },
    }


def apply_private_endpoints(
    env: AzureEnvironment,
    resources: WorkspaceResources,
    *,
    network: NetworkManagementClient,
    dns: PrivateDnsManagementClient,
    console: Console,
) -> list[str]:
    """Create (or update) the zones, their links, the endpoints and their zone groups; returns
    the endpoints' names. ``network`` is a client of the subnet's subscription, ``dns`` of the
    environment's."""
    config = _config(env)
    _, group, _ = subnet_location(config)
    dns_group = config.dns_resource_group or env.resource_group
    found = targets(env, resources)
    if resources.container_registry is None:
        console.print(
            f"[yellow]Workspace {env.workspace} has no container registry yet (Azure creates one "
            "at the first environment build): run apply again afterwards for its private "
            "endpoint[/yellow]"
        )
    for zone in zones(found):
        wait_for(
            dns.private_zones.begin_create_or_update(
                dns_group, zone, PrivateZone(location="global")
            ),
            f"Private DNS zone {zone}",
            console=console,
        )
        for vnet in linked_vnets(env):
            link = f"link-{vnet.rsplit('/', 1)[-1]}"[:80]
            wait_for(
                dns.virtual_network_links.begin_create_or_update(
                    dns_group,
                    zone,
                    link,
                    build_vnet_link(vnet),
                ),
                f"Link of {zone} to {vnet.rsplit('/', 1)[-1]}",
                console=console,
            )
    names = []
    for target in found:
        name = target.endpoint_name(env)
        wait_for(
            network.private_endpoints.begin_create_or_update(
                group, name, build_private_endpoint(env, target)
            ),
            f"Private endpoint {name}",
            console=console,
        )
        wait_for(
            network.private_dns_zone_groups.begin_create_or_update(
                group, name, ZONE_GROUP, build_zone_group(env, target)
            ),
            f"DNS records of {name}",
            console=console,
        )
        names.append(name)
    return names
