"""Which credential the commands sign in with.

On an Azure DevOps agent (``TF_BUILD=True``) the commands use ``AzurePipelinesCredential``
with the service connection's workload identity: it asks the pipeline's OIDC endpoint
for a fresh federated token whenever Azure's token runs out, so a 4-hour training wait or
a long canary never outlives its sign-in (the CLI session of AzureCLI@2 does, after
about an hour: AADSTS700024, azure-cli issues 28708 and 28915). It also never picks a
self-hosted agent's managed identity instead of the service connection, as
``DefaultAzureCredential`` would. AzureCLI@2 sets the ``AZURESUBSCRIPTION_*`` variables;
the step maps ``SYSTEM_ACCESSTOKEN`` (pipelines/azure/steps/mlops-azure.yml).

Elsewhere (a laptop) ``DefaultAzureCredential`` finds ``az login`` and the like.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from azure.core.credentials import TokenCredential
from azure.identity import AzurePipelinesCredential, DefaultAzureCredential

from mlcore.errors import ConfigError

PIPELINE_VARIABLES = (
    "AZURESUBSCRIPTION_TENANT_ID",
    "AZURESUBSCRIPTION_CLIENT_ID",
    "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
    "SYSTEM_ACCESSTOKEN",
)


def in_azure_pipelines(environ: Mapping[str, str]) -> bool:
    return environ.get("TF_BUILD", "").lower() == "true"


def make_credential(environ: Mapping[str, str] | None = None) -> TokenCredential:
    environ = os.environ if environ is None else environ
    if not in_azure_pipelines(environ):
        return DefaultAzureCredential()
    missing = [name for name in PIPELINE_VARIABLES if not environ.get(name)]
    if missing:
        raise ConfigError(
            f"running in Azure Pipelines without {missing}: run the command through "
            "pipelines/azure/steps/mlops-azure.yml (AzureCLI@2 with a workload-identity service "
            "connection, and SYSTEM_ACCESSTOKEN mapped from $(System.AccessToken))"
        )
    return AzurePipelinesCredential(
        tenant_id=environ["AZURESUBSCRIPTION_TENANT_ID"],
        client_id=environ["AZURESUBSCRIPTION_CLIENT_ID"],
        service_connection_id=environ["AZURESUBSCRIPTION_SERVICE_CONNECTION_ID"],
        system_access_token=environ["SYSTEM_ACCESSTOKEN"],
    )
