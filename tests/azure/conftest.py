"""Fixtures for the Azure tests: settings, the built definitions, an offline MLClient."""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import mlops_azure.__main__ as cli
import pytest
from azure.ai.ml import MLClient
from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint
from azure.ai.ml.operations import OnlineDeploymentOperations, OnlineEndpointOperations
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.polling import LROPoller
from azure.identity import DefaultAzureCredential
from mlops_azure.config import AzureEnvironment, load_environment
from mlops_azure.definitions import Definitions, build_definitions
from mlops_azure.endpoint import MODEL_TAG
from mlops_azure.rollout import SPEC_TAG, DeploymentSpec

from mlcore.settings import MlopsSettings, load_settings

TEST_SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
# Contract 2: the Azure tests read their own settings and environments, never the
# repository's mlops.yaml or azure/environments (a user's `mlcore init` rewrites those).
FIXTURES = Path(__file__).parent / "fixtures"
SETTINGS = FIXTURES / "mlops.yaml"
ENVIRONMENTS = FIXTURES / "environments"
REGISTRY_MODEL = "azureml://registries/acme-registry/models/acme-risk-model/versions/{}"


def registry_ref(version: str | int) -> str:
    return REGISTRY_MODEL.format(version)


@pytest.fixture(name="registry_ref")
def registry_ref_fixture() -> Callable[[str | int], str]:
    """``azureml://registries/...`` of a version of the fixture project's model."""
    return registry_ref


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Azure test is offline: a call that escaped the patches fails instead of reaching Azure."""

    def refuse(sock: socket.socket, address: object) -> None:
        raise AssertionError(f"test tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="session")
def settings() -> MlopsSettings:
    return load_settings(SETTINGS)


@pytest.fixture(scope="session")
def dev_env() -> AzureEnvironment:
    return load_environment("dev", environments_dir=ENVIRONMENTS)


@pytest.fixture(scope="session")
def prod_env() -> AzureEnvironment:
    return load_environment("prod", environments_dir=ENVIRONMENTS)


@pytest.fixture(scope="session")
def definitions(
    dev_env: AzureEnvironment, settings: MlopsSettings, tmp_path_factory: pytest.TempPathFactory
) -> Definitions:
    return build_definitions(
        dev_env,
        settings,
        work_dir=tmp_path_factory.mktemp("azure-definitions"),
        model=registry_ref(1),
        model_sha256="sha256:" + "ab" * 32,
        reference_version="1",
        data_version="snapshot-test",
        run_key="20250101000000",
        settings_file=SETTINGS,
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

    def __init__(self, finished: Callable[[object], Any], name: str = "acme-dev") -> None:
        self.finished = finished
        self.endpoint = ManagedOnlineEndpoint(name=name, traffic={}, mirror_traffic={}, tags={})
        self.deployments: dict[str, ManagedOnlineDeployment] = {}
        self.events: list[tuple[Any, ...]] = []
        # (deployment, current traffic) -> True when an invocation should fail.
        self.fails: Callable[[str, dict[str, int]], bool] = lambda deployment, traffic: False
        # Operations that raise, by event kind ("traffic", "create", "delete"): an
        # interruption (an expired token, a cancelled job) at that point.
        self.interrupt_on: Callable[[tuple[Any, ...]], bool] = lambda event: False

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

    def seed(self, colour: str, spec: DeploymentSpec, *, traffic: dict[str, int]) -> None:
        """A deployment that exists already, serving ``spec``."""
        self.deployments[colour] = ManagedOnlineDeployment(
            name=colour,
            endpoint_name=self.endpoint.name,
            tags={MODEL_TAG: spec.model, SPEC_TAG: spec.to_tag()},
        )
        self.endpoint.traffic = dict(traffic)

    def tag(self, **tags: str) -> None:
        self.endpoint.tags = {**(self.endpoint.tags or {}), **tags}

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
        event = ("traffic", {k: v for k, v in traffic.items() if v}, mirror)
        if self.interrupt_on(event):
            raise HttpResponseError(
                message="AADSTS700024: client assertion is not within its valid time range"
            )
        self.endpoint = copy.deepcopy(endpoint)
        self.events.append(event)
        return self.finished(self.endpoint)

    def get_deployment(self, name: str) -> ManagedOnlineDeployment:
        if name not in self.deployments:
            raise ResourceNotFoundError(f"deployment {name} not found")
        return self.deployments[name]

    def create(self, deployment: ManagedOnlineDeployment) -> Any:
        created = copy.deepcopy(deployment)
        # Azure registers the local code folder as a code asset and reports its id.
        code = str(created.code_configuration.code)
        if not code.startswith(("azureml:", "/subscriptions/")):
            created.code_configuration.code = f"azureml:code-{created.name}-{len(self.events)}:1"
        self.deployments[deployment.name] = created
        self.events.append(("create", deployment.name, deployment.tags[MODEL_TAG]))
        return self.finished(created)

    def delete(self, name: str) -> Any:
        assert (self.endpoint.traffic or {}).get(name, 0) == 0, f"{name} still takes traffic"
        del self.deployments[name]
        # Azure drops a deleted deployment from the endpoint's traffic and mirror maps.
        self.endpoint.traffic = {
            k: v for k, v in (self.endpoint.traffic or {}).items() if k != name
        }
        self.endpoint.mirror_traffic = {
            k: v for k, v in (self.endpoint.mirror_traffic or {}).items() if k != name
        }
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
    """An endpoint named acme-dev with no deployments, patched into every MLClient."""
    fake = FakeEndpointWorkspace(finished)
    fake.install(monkeypatch)
    return fake


@pytest.fixture(name="settings_file", scope="session")
def settings_file_fixture() -> Path:
    return SETTINGS


@pytest.fixture(name="environments_dir", scope="session")
def environments_dir_fixture() -> Path:
    return ENVIRONMENTS


def _dataset(kind: str) -> tuple[Any, str, str]:
    """(frame, target, task) from scikit-learn's bundled data, with arbitrary column names."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    loader, task = {
        "binary": (load_breast_cancer, "classification"),
        "multiclass": (load_wine, "classification"),
        "regression": (load_diabetes, "regression"),
    }[kind]
    data = loader()
    frame = pd.DataFrame(data.data[:, :5], columns=[f"Feat {i}" for i in range(5)])
    # A categorical feature too, so both drift tables are exercised.
    frame["band"] = np.where(frame["Feat 0"] > frame["Feat 0"].median(), "hi", "lo")
    target = {"binary": "is_malignant", "multiclass": "cultivar", "regression": "progression"}[kind]
    frame[target] = data.target
    return frame, target, task


@pytest.fixture(scope="session", params=["binary", "multiclass", "regression"])
def any_model(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    """(bundle, held-out frame) for a small model of each task, named nothing like churn."""
    return _small_model(request.param)


@pytest.fixture(scope="session")
def binary_model() -> tuple[Any, Any]:
    """The binary one of :func:`any_model`, for tests of one path that is not task-specific."""
    return _small_model("binary")


def _small_model(kind: str) -> tuple[Any, Any]:
    from mlcore.data import infer_spec
    from mlcore.settings import TrainingSettings
    from mlcore.train import train_model

    frame, target, task = _dataset(kind)
    # The bundled datasets are sorted by class: shuffle so both parts hold every class.
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    spec = infer_spec(frame, target=target, task=task)  # type: ignore[arg-type]
    train, held_out = frame.iloc[: len(frame) * 3 // 4], frame.iloc[len(frame) * 3 // 4 :]
    settings = TrainingSettings(hyperparameters={"max_iter": 20}, seed=1)
    return train_model(train, spec, settings), held_out.reset_index(drop=True)


def _no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError("the dry run tried to open a network connection")


def _no_client(*args: object, **kwargs: object) -> None:
    raise AssertionError("the dry run tried to build an Azure client or credential")


@pytest.fixture(scope="session")
def dry_run(
    tmp_path_factory: pytest.TempPathFactory, environments_dir: Path, settings_file: Path
) -> Path:
    output = tmp_path_factory.mktemp("dry-run") / "out" / "azure" / "dev"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _no_network)
        patch.setattr(cli, "make_credential", _no_client)
        patch.setattr(cli, "MLClient", _no_client)
        for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
            patch.delenv(name, raising=False)
        argv = ["apply", "--env", "dev", "--dry-run", "--output", str(output)]
        argv += ["--environments", str(environments_dir), "--settings", str(settings_file)]
        assert cli.main(argv) == 0
    return output
