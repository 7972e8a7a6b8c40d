"""Fixtures for the Azure tests: settings, the built definitions, an offline MLClient."""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import pytest
from azure.ai.ml import MLClient
from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint
from azure.ai.ml.operations import OnlineDeploymentOperations, OnlineEndpointOperations
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.polling import LROPoller
from azure.identity import DefaultAzureCredential
from mlops_azure.config import SETTINGS_FILE, AzureEnvironment, load_environment
from mlops_azure.definitions import Definitions, build_definitions
from mlops_azure.endpoint import MODEL_TAG

from mlcore.settings import MlopsSettings, load_settings

TEST_SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Azure test is offline: a call that escaped the patches fails instead of reaching Azure."""

    def refuse(sock: socket.socket, address: object) -> None:
        raise AssertionError(f"test tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="session")
def settings() -> MlopsSettings:
    return load_settings(SETTINGS_FILE)


@pytest.fixture(scope="session")
def dev_env() -> AzureEnvironment:
    return load_environment("dev")


@pytest.fixture(scope="session")
def definitions(
    dev_env: AzureEnvironment, settings: MlopsSettings, tmp_path_factory: pytest.TempPathFactory
) -> Definitions:
    return build_definitions(
        dev_env,
        settings,
        work_dir=tmp_path_factory.mktemp("azure-definitions"),
        model="azureml:churn-model:1",
    )


@pytest.fixture
def ml_client() -> MLClient:
    """A real MLClient that cannot authenticate: nothing may reach Azure without a patch."""
    return MLClient(
        Mock(spec_set=DefaultAzureCredential),
        subscription_id=TEST_SUBSCRIPTION,
        resource_group_name="rg-test",
        workspace_name="mlw-test",
    )


def _finished(result: object = None) -> LROPoller:
    poller = Mock(spec_set=LROPoller)
    poller.done.return_value = True
    poller.result.return_value = result
    return poller


@pytest.fixture
def finished() -> Callable[[object], LROPoller]:
    """Make a poller whose operation has already completed with the given result."""
    return _finished


class FakeEndpointWorkspace:
    """One endpoint and its deployments, as Azure would keep them.

    Patched into the operation classes, it enforces the Azure rules the rollout
    depends on: traffic only to existing deployments, shares summing to 100, no
    live traffic to a mirrored deployment, and no deletion of a deployment that
    still takes traffic.
    """

    def __init__(self, finished: Callable[[object], Any], name: str = "churn-dev") -> None:
        self.finished = finished
        self.endpoint = ManagedOnlineEndpoint(name=name, traffic={}, mirror_traffic={}, tags={})
        self.deployments: dict[str, ManagedOnlineDeployment] = {}
        self.events: list[tuple[Any, ...]] = []
        # (deployment, current traffic) -> True when an invocation should fail.
        self.fails: Callable[[str, dict[str, int]], bool] = lambda deployment, traffic: False

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(
            OnlineEndpointOperations, "get", lambda ops, name: self.get_endpoint(name)
        )
        monkeypatch.setattr(
            OnlineEndpointOperations,
            "begin_create_or_update",
            lambda ops, ep: self.update_endpoint(ep),
        )
        monkeypatch.setattr(OnlineEndpointOperations, "invoke", lambda ops, **kw: self.invoke(**kw))
        monkeypatch.setattr(
            OnlineDeploymentOperations, "begin_create_or_update", lambda ops, d: self.create(d)
        )
        monkeypatch.setattr(
            OnlineDeploymentOperations,
            "begin_delete",
            lambda ops, name, endpoint_name: self.delete(name),
        )
        monkeypatch.setattr(
            OnlineDeploymentOperations,
            "get",
            lambda ops, name, endpoint_name: self.get_deployment(name),
        )
        monkeypatch.setattr(
            OnlineDeploymentOperations,
            "list",
            lambda ops, endpoint_name: list(self.deployments.values()),
        )

    def seed(
        self, colour: str, model: str, *, traffic: dict[str, int], tags: dict[str, str]
    ) -> None:
        self.deployments[colour] = ManagedOnlineDeployment(
            name=colour, endpoint_name=self.endpoint.name, tags={MODEL_TAG: model}
        )
        self.endpoint.traffic = dict(traffic)
        self.endpoint.tags = dict(tags)

    def get_endpoint(self, name: str) -> ManagedOnlineEndpoint:
        if name != self.endpoint.name:
            raise ResourceNotFoundError(f"endpoint {name} not found")
        return copy.deepcopy(self.endpoint)

    def update_endpoint(self, endpoint: ManagedOnlineEndpoint) -> Any:
        traffic = {k: v for k, v in (endpoint.traffic or {}).items()}
        mirror = {k: v for k, v in (endpoint.mirror_traffic or {}).items() if v}
        unknown = set(traffic) | set(mirror) - set(self.deployments)
        assert not unknown - set(self.deployments), f"traffic to missing deployments {unknown}"
        assert sum(traffic.values()) in (0, 100), f"traffic must sum to 100: {traffic}"
        assert all(traffic.get(name, 0) == 0 for name in mirror), (
            "mirrored deployment already has live traffic"
        )
        self.endpoint = copy.deepcopy(endpoint)
        self.events.append(("traffic", {k: v for k, v in traffic.items() if v}, mirror))
        return self.finished(self.endpoint)

    def get_deployment(self, name: str) -> ManagedOnlineDeployment:
        if name not in self.deployments:
            raise ResourceNotFoundError(f"deployment {name} not found")
        return self.deployments[name]

    def create(self, deployment: ManagedOnlineDeployment) -> Any:
        self.deployments[deployment.name] = deployment
        self.events.append(("create", deployment.name, deployment.tags[MODEL_TAG]))
        return self.finished(deployment)

    def delete(self, name: str) -> Any:
        assert (self.endpoint.traffic or {}).get(name, 0) == 0, f"{name} still takes traffic"
        del self.deployments[name]
        self.events.append(("delete", name))
        return self.finished(None)

    def invoke(self, *, endpoint_name: str, request_file: str, deployment_name: str) -> str:
        self.events.append(("invoke", deployment_name))
        if deployment_name not in self.deployments:
            raise ResourceNotFoundError(f"deployment {deployment_name} not found")
        if self.fails(deployment_name, dict(self.endpoint.traffic or {})):
            raise HttpResponseError(message="502 upstream connect error")
        records = json.loads(Path(request_file).read_text())["instances"]
        return json.dumps(
            json.dumps({"predictions": [{"prediction": 0, "score": 0.2}] * len(records)})
        )

    def without_invokes(self) -> list[tuple[Any, ...]]:
        return [event for event in self.events if event[0] != "invoke"]


@pytest.fixture
def workspace(
    monkeypatch: pytest.MonkeyPatch, finished: Callable[[object], LROPoller]
) -> FakeEndpointWorkspace:
    """An endpoint named churn-dev with no deployments, patched into every MLClient."""
    fake = FakeEndpointWorkspace(finished)
    fake.install(monkeypatch)
    return fake
