"""Which credential the commands sign in with: the pipeline's workload identity, refreshed."""

from __future__ import annotations

import pytest
from azure.identity import AzurePipelinesCredential, DefaultAzureCredential
from mlops_azure.credentials import PIPELINE_VARIABLES, make_credential

from mlcore.errors import ConfigError

PIPELINE = {
    "TF_BUILD": "True",
    "AZURESUBSCRIPTION_TENANT_ID": "tenant",
    "AZURESUBSCRIPTION_CLIENT_ID": "client",
    "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": "connection",
    "SYSTEM_ACCESSTOKEN": "token",
}


def test_in_azure_pipelines_the_service_connection_is_used_not_the_agents_identity() -> None:
    # AzurePipelinesCredential fetches a fresh OIDC token per sign-in (azure-identity), so
    # long waits outlive the ~1 h of one CLI session; it never falls back to the managed
    # identity of a self-hosted agent, as DefaultAzureCredential would.
    assert isinstance(make_credential(PIPELINE), AzurePipelinesCredential)


@pytest.mark.parametrize("missing", PIPELINE_VARIABLES)
def test_a_pipeline_step_without_its_variables_is_an_error(missing: str) -> None:
    environ = {k: v for k, v in PIPELINE.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        make_credential(environ)


def test_outside_azure_pipelines_the_default_chain_is_used() -> None:
    assert isinstance(make_credential({}), DefaultAzureCredential)
