"""Fixtures for the Azure tests: settings, the built definitions, the fake Azure ML service."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mlops_azure.__main__ as cli
import pytest
from azure.ai.ml import MLClient
from fake_arm import (
    Credential,
    FakeAzure,
    Recorded,
    healthy,
    install_default_transport,
    seed_workspace,
    workspace_path,
)
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
def azure(monkeypatch: pytest.MonkeyPatch) -> FakeAzure:
    """Azure ML's REST service, in memory, behind azure-core's transport (fake_arm.py).

    The private-preview flag that lets azure-ai-ml schedule command and Spark jobs is not
    set: the tests see what the generally available SDK accepts.
    """
    monkeypatch.delenv("AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED", raising=False)
    fake = FakeAzure()
    seed_workspace(fake, TEST_SUBSCRIPTION, "rg-test", "mlw-test")
    install_default_transport(monkeypatch, fake)
    return fake


@pytest.fixture
def ml_client(azure: FakeAzure) -> MLClient:
    """A real MLClient whose requests reach the fake service and nothing else."""
    return MLClient(
        Credential(),
        subscription_id=TEST_SUBSCRIPTION,
        resource_group_name="rg-test",
        workspace_name="mlw-test",
        transport=azure,
    )


@dataclass(frozen=True)
class DeploymentView:
    """A deployment as the service stores it (the REST body the SDK sent)."""

    name: str
    model: str
    environment: str
    code: str
    environment_variables: dict[str, str]
    tags: dict[str, str]


class EndpointView:
    """One endpoint of the fake service and what was done to it, read from the wire.

    ``events`` are the changes the service accepted, in order: ``("traffic", live, mirror)``
    for each endpoint update (shares above zero), ``("create", colour, model)``,
    ``("delete", colour)``, and ``("invoke", colour)`` for each scoring request.
    """

    def __init__(self, fake: FakeAzure, workspace: str, name: str = "acme-dev") -> None:
        self.fake = fake
        self.name = name
        self.path = f"{workspace}/onlineEndpoints/{name}"
        self.key = fake._key(self.path)
        # What `apply` leaves: the endpoint with no deployments (spec example Endpoint/get).
        fake.resources[self.key] = {
            "id": self.path,
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
            "location": "westeurope",
            "identity": {"type": "SystemAssigned"},
            "tags": {},
            "properties": {
                "authMode": "Key",
                "traffic": {},
                "mirrorTraffic": {},
                "scoringUri": f"https://{name}.westeurope.inference.ml.azure.com/score",
                "provisioningState": "Succeeded",
            },
        }

    @property
    def endpoint(self) -> SimpleNamespace:
        """Traffic, mirror and tags as ``online_endpoints.get`` reports them: the SDK adds
        each deployment without a share at 0 (operations/_online_endpoint_operations.py)."""
        resource = self.fake.resources[self.key]
        traffic = {k: int(v) for k, v in (resource["properties"].get("traffic") or {}).items()}
        mirror = {
            k: int(v)
            for k, v in (resource["properties"].get("mirrorTraffic") or {}).items()
            if int(v)
        }
        for name in self.deployments:
            if not traffic.get(name) and not mirror.get(name):
                traffic[name] = 0
        return SimpleNamespace(
            traffic=traffic, mirror_traffic=mirror, tags=dict(resource.get("tags") or {})
        )

    @property
    def deployments(self) -> dict[str, DeploymentView]:
        prefix = self.key + "/deployments/"
        found = {}
        for key, resource in self.fake.resources.items():
            if key.startswith(prefix):
                properties = resource["properties"]
                found[resource["name"]] = DeploymentView(
                    name=resource["name"],
                    model=properties.get("model", ""),
                    environment=properties.get("environmentId", ""),
                    code=(properties.get("codeConfiguration") or {}).get("codeId", ""),
                    environment_variables=dict(properties.get("environmentVariables") or {}),
                    tags=dict(resource.get("tags") or {}),
                )
        return found

    @property
    def events(self) -> list[tuple[Any, ...]]:
        events: list[tuple[Any, ...]] = []
        for request in self.fake.requests:
            path = request.path.lower()
            if request.method == "POST" and "inference.ml.azure.com" in request.url:
                events.append(("invoke", request.headers.get("azureml-model-deployment")))
            elif request.status >= 400:
                continue
            elif request.method == "PUT" and path == self.key:
                properties = request.body["properties"]
                events.append(
                    (
                        "traffic",
                        {k: int(v) for k, v in (properties.get("traffic") or {}).items() if int(v)},
                        {
                            k: int(v)
                            for k, v in (properties.get("mirrorTraffic") or {}).items()
                            if int(v)
                        },
                    )
                )
            elif path.startswith(self.key + "/deployments/") and request.method == "PUT":
                name = request.path.rsplit("/", 1)[1]
                events.append(("create", name, (request.body.get("tags") or {}).get(MODEL_TAG)))
            elif path.startswith(self.key + "/deployments/") and request.method == "DELETE":
                events.append(("delete", request.path.rsplit("/", 1)[1]))
        return events

    def without_invokes(self) -> list[tuple[Any, ...]]:
        return [event for event in self.events if event[0] != "invoke"]

    def seed(self, colour: str, spec: DeploymentSpec, *, traffic: dict[str, int]) -> None:
        """A deployment that exists already (a rollout before this test), serving ``spec``."""
        path = f"{self.path}/deployments/{colour}"
        self.fake.resources[self.fake._key(path)] = {
            "id": path,
            "name": colour,
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
            "location": "westeurope",
            "sku": {"name": "Default", "capacity": 1},
            "tags": {MODEL_TAG: spec.model, SPEC_TAG: spec.to_tag()},
            "properties": {
                "endpointComputeType": "Managed",
                "model": spec.model,
                "environmentId": spec.environment,
                "codeConfiguration": {"codeId": spec.code_asset or "", "scoringScript": "score.py"},
                "instanceType": "Standard_DS3_v2",
                "scaleSettings": {"scaleType": "Default"},
                "provisioningState": "Succeeded",
            },
        }
        self.fake.resources[self.key]["properties"]["traffic"] = dict(traffic)

    def tag(self, **tags: str) -> None:
        resource = self.fake.resources[self.key]
        resource["tags"] = {**(resource.get("tags") or {}), **tags}

    def fail_when(self, fails: Callable[[str, dict[str, int]], bool]) -> None:
        """Scoring requests to a deployment fail (502) while ``fails(deployment, traffic)``."""

        def respond(deployment: str, records: int) -> tuple[int, Any]:
            if fails(deployment, self.endpoint.traffic):
                return 502, {"message": "upstream connect error"}
            return healthy(deployment, records)

        self.fake.scorer.respond = respond

    def interrupt_when(self, interrupted: Callable[[tuple[Any, ...]], bool]) -> None:
        """Endpoint updates whose event ``interrupted`` picks are refused: an expired sign-in."""

        def check(request: Recorded) -> bool:
            if request.method != "PUT" or request.path.lower() != self.key:
                return False
            properties = request.body["properties"]
            event = (
                "traffic",
                {k: int(v) for k, v in (properties.get("traffic") or {}).items() if int(v)},
                {k: int(v) for k, v in (properties.get("mirrorTraffic") or {}).items() if int(v)},
            )
            return interrupted(event)

        self.fake.interrupt = check


@pytest.fixture
def workspace(azure: FakeAzure) -> EndpointView:
    """The endpoint acme-dev, with no deployments, in the fake service."""
    return EndpointView(azure, workspace_path(TEST_SUBSCRIPTION, "rg-test", "mlw-test"))


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
