"""A recording stand-in for Azure ML's REST service, at azure-core's transport.

The Azure tests build real clients (``MLClient``, the Event Grid and Monitor management
clients) with ``transport=FakeAzure(...)``: every operation runs the SDK's own validation,
REST conversion, serialisation and long-running-operation polling, and only the HTTP
exchange is answered here. The answers follow the service's REST API specification
(Azure/azure-rest-api-specs, specification/machinelearningservices/resource-manager,
stable 2024-10-01 and its examples):

* a PUT returns the resource with ``id``, ``name``, ``type``, ``systemData`` and
  ``properties.provisioningState``; long-running ones (online endpoints and deployments,
  schedules, computes, workspaces, registries) answer 201 with an ``Azure-AsyncOperation``
  header, whose status URL reports ``Succeeded`` (or the operation's error), after which the
  SDK reads the resource back (``final-state-via: original-uri``);
* a DELETE of a deployment answers 202 with a ``Location`` the SDK polls until 200;
* a missing resource answers 404 with ARM's error body (``ResourceNotFound``).

Azure's rules the rollout depends on are enforced as the service enforces them: traffic only
to existing deployments and summing to 100 (or 0), mirrored traffic at most 50% and never to
a deployment taking live traffic, and no deletion of a deployment that still takes traffic.
Scoring requests (``POST`` to the endpoint's scoring URI with ``azureml-model-deployment``)
are answered by :class:`Scorer` per deployment, and recorded, with the test clock's time.

Blob storage (code and data uploads go through azure-storage-blob, whose clients the SDK
builds without the MLClient's transport) is answered by the same object, installed as
azure-core's default requests transport by :func:`install_default_transport`.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import requests
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import HttpTransport
from azure.core.pipeline.transport._requests_basic import (
    RequestsTransportResponse,
    _handle_non_stream_rest_response,
    _is_rest,
)
from azure.core.rest._requests_basic import RestRequestsTransportResponse

ARM = "https://management.azure.com"
REGION = "westeurope"
STORAGE_ACCOUNT = "mlwstorage"
# Resource types whose PUT is a long-running operation in the service's specification.
LONG_RUNNING = {
    "onlineendpoints",
    "batchendpoints",
    "deployments",
    "schedules",
    "computes",
    "workspaces",
    "registries",
    "systemtopics",
    "eventsubscriptions",
    # Microsoft.Network: private endpoints, their DNS zone groups, private DNS zones and their
    # virtual network links (Azure-AsyncOperation in each specification).
    "privateendpoints",
    "privatednszonegroups",
    "privatednszones",
    "virtualnetworklinks",
}
# Answered 202 with a Location (no 201) in the specification: the managed network's outbound
# rules (Managed Network Settings Rule - Create Or Update: 200 or 202).
ACCEPTED_WITH_LOCATION = {"outboundrules"}
# Event Grid's specification answers an event subscription's PUT with 201 only, update or not.
ALWAYS_CREATED = {"eventsubscriptions"}


def _unsigned_jwt(claims: dict[str, Any]) -> str:
    import base64

    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.c2ln"


class Credential:
    """A credential that always has a token: sign-in is not what these tests exercise.

    Tokens are shaped as Entra ID's: a JWT whose audience is the scope's resource, with
    object and tenant ids. azure-ai-ml reads those claims when it submits a job.
    """

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        audience = scopes[0].removesuffix("/.default") if scopes else ""
        claims = {
            "aud": audience,
            "oid": "aaaaaaaa-0000-0000-0000-000000000001",
            "tid": "bbbbbbbb-0000-0000-0000-000000000002",
            "upn": "tests@example.com",
            "name": "tests",
            "exp": 4_102_444_800,
        }
        return AccessToken(_unsigned_jwt(claims), 4_102_444_800)


@dataclass
class Recorded:
    method: str
    url: str
    body: Any
    headers: dict[str, str]
    status: int = 0  # the answer's status code

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


def healthy(deployment: str, records: int) -> tuple[int, Any]:
    """A deployment's answer to a request of ``records`` rows: one prediction each."""
    return 200, {"predictions": [{"prediction": 0, "score": 0.2}] * records}


@dataclass
class Scorer:
    """How deployments answer scoring requests (``respond``), healthy unless told otherwise."""

    respond: Callable[[str, int], tuple[int, Any]] = healthy

    def answer(self, deployment: str, records: int) -> tuple[int, Any]:
        return self.respond(deployment, records)


class ServiceError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], Any]:
    return status, {}, {"error": {"code": code, "message": message}}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeAzure(HttpTransport):  # type: ignore[misc]
    """Azure ML's control plane, its scoring endpoints and blob storage, in memory."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.requests: list[Recorded] = []
        self.resources: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.blobs: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.scorer = Scorer()
        self.scored: list[tuple[datetime, str, int]] = []  # (time, deployment, status)
        # (method, path regex) -> error to answer once the SDK sends it: a service failure.
        self.fail_next: list[tuple[str, str, int, str]] = []
        # A request for which this is true is refused as an expired sign-in is (401).
        self.interrupt: Callable[[Recorded], bool] = lambda recorded: False
        # path regex -> message: the long-running operation that PUT starts fails with it.
        self.failing_operations: dict[str, str] = {}
        # Runs a submitted job (its REST body) and returns the status it ends in; what a
        # job produces (registered outputs) is this function's to add.
        self.run_job: Callable[[dict[str, Any]], str] = lambda job: "Completed"
        # job name -> output name -> (asset id, asset type, azureml:// path of its files):
        # what run history reports of a finished job's registered outputs.
        self.job_outputs: dict[str, dict[str, tuple[str, str, str]]] = {}
        # Runs an invoked batch deployment (its name and the job's REST properties) and
        # returns the status the job ends in; what it writes is this function's to do.
        self.run_batch: Callable[[str, dict[str, Any]], str] = lambda name, job: "Completed"
        self.batch_jobs: list[tuple[str, dict[str, Any]]] = []

    # -- HttpTransport ----------------------------------------------------------------

    def __enter__(self) -> FakeAzure:
        return self

    def __exit__(self, *args: object) -> None:
        return None

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def send(self, request: Any, **kwargs: Any) -> Any:
        raw = request.body if hasattr(request, "body") else None
        if raw is None and hasattr(request, "content"):
            raw = request.content
        if isinstance(raw, bytes | bytearray):
            try:
                body: Any = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                body = bytes(raw)
        elif isinstance(raw, str):
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        elif raw is not None and hasattr(raw, "read"):
            body = raw.read()
        else:
            body = raw
        recorded = Recorded(request.method, request.url, body, dict(request.headers))
        self.requests.append(recorded)
        status, headers, payload = self._route(recorded)
        recorded.status = status
        response = requests.Response()
        response.status_code = status
        response.url = request.url
        response.reason = "OK" if status < 400 else "Error"
        response.headers.update({"x-ms-request-id": str(uuid.uuid4()), **headers})
        if isinstance(payload, bytes):
            response._content = payload
        elif payload is None:
            response._content = b""
        elif isinstance(payload, str) and headers.get("Content-Type", "").endswith("xml"):
            response._content = payload.encode()
        else:
            response._content = json.dumps(payload).encode()
            response.headers.setdefault("Content-Type", "application/json; charset=utf-8")
        response.raw = _Raw(response._content)
        # As azure-core's RequestsTransport answers: a rest response to a rest request.
        if _is_rest(request):
            answer = RestRequestsTransportResponse(request=request, internal_response=response)
            if not kwargs.get("stream"):
                _handle_non_stream_rest_response(answer)
            return answer
        return RequestsTransportResponse(request, response)

    # -- what was sent ------------------------------------------------------------------

    def sent(self, method: str, pattern: str) -> list[Recorded]:
        """Requests of ``method`` whose path matches ``pattern`` (a regular expression)."""
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    def resource(self, pattern: str) -> dict[str, Any]:
        (found,) = [v for k, v in self.resources.items() if re.search(pattern, k)]
        return found

    # -- routing ------------------------------------------------------------------------

    def _route(self, recorded: Recorded) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(recorded.url)
        if self.interrupt(recorded):
            return _error(
                401,
                "InvalidAuthenticationToken",
                "AADSTS700024: client assertion is not within its valid time range",
            )
        for index, (method, pattern, status, message) in enumerate(self.fail_next):
            if method == recorded.method and re.search(pattern, parts.path):
                del self.fail_next[index]
                return _error(status, "ServiceError", message)
        try:
            if parts.netloc.endswith(".blob.core.windows.net"):
                return self._blob(recorded, parts.netloc, parts.path, parse_qs(parts.query))
            if parts.netloc.endswith(".inference.ml.azure.com") and parts.path == "/jobs":
                return self._invoke_batch(recorded, parts.netloc.split(".")[0])
            if parts.netloc.endswith(".inference.ml.azure.com"):
                return self._score(recorded, parts.netloc.split(".")[0])
            if parts.netloc == "management.azure.com":
                return self._arm(recorded, parts.path, parse_qs(parts.query))
            if parts.netloc.endswith(".api.azureml.ms"):
                return self._regional(recorded, parts.path, parse_qs(parts.query))
        except ServiceError as exc:
            return _error(exc.status, exc.code, exc.message)
        return _error(404, "UnknownHost", f"no fake for {parts.netloc}")

    def _regional(
        self, recorded: Recorded, path: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, str], Any]:
        """The regional hosts: registry discovery, and registries' management front end."""
        discovery = re.match(r"^/registrymanagement/v1\.0/registries/([^/]+)/discovery$", path)
        if discovery:
            name = discovery.group(1)
            found = [
                v for k, v in self.resources.items() if k.endswith(f"/registries/{name.lower()}")
            ]
            if not found:
                return _error(404, "ResourceNotFound", f"registry {name} was not found")
            registry_id = found[0]["id"]
            return (
                200,
                {},
                {
                    "registryName": name,
                    "primaryRegion": REGION,
                    "primaryRegionResourceProviderUri": f"https://{REGION}.api.azureml.ms/",
                    "subscriptionId": registry_id.split("/")[2],
                    "resourceGroup": registry_id.split("/")[4],
                    "registryFqdns": {REGION: {"api": f"https://{REGION}.api.azureml.ms"}},
                },
            )
        if path == "/discovery":
            # The workspace's discovery document: where its regional services are.
            base = f"https://{REGION}.api.azureml.ms"
            return (
                200,
                {},
                {
                    key: base
                    for key in (
                        "api",
                        "catalog",
                        "experimentation",
                        "gallery",
                        "history",
                        "hyperdrive",
                        "labeling",
                        "modelmanagement",
                        "pipelines",
                        "studiotrace",
                    )
                },
            )
        if path.endswith("/rundata") and path.startswith("/history/v1.0/"):
            run = (recorded.body or {}).get("runId")
            outputs = self.job_outputs.get(str(run), {})
            return (
                200,
                {},
                {
                    "runMetadata": {
                        "runId": run,
                        "status": "Completed",
                        "outputs": {
                            name: {"assetId": asset, "type": kind}
                            for name, (asset, kind, _) in outputs.items()
                        },
                    }
                },
            )
        if path.endswith("/models/batchGetResolvedUris"):
            paths = {
                asset: uri
                for outputs in self.job_outputs.values()
                for asset, _, uri in outputs.values()
            }
            wanted = (recorded.body or {}).get("values") or []
            return (
                200,
                {},
                {"values": {asset: {"path": paths[asset]} for asset in wanted if asset in paths}},
            )
        prefix = "/mferp/managementfrontend"
        if path.lower().startswith(prefix):
            return self._arm(recorded, path[len(prefix) :], query)
        return _error(404, "UnknownPath", f"no fake for {path}")

    def _key(self, path: str) -> str:
        return path.rstrip("/").lower()

    def _arm(
        self, recorded: Recorded, path: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, str], Any]:
        key = self._key(path)
        if key.startswith("/operations/"):
            status = self.operations[key]
            if status.get("location"):
                # A Location header's URL: 204 once the operation is done, or 200 with the
                # operation's result where it has one (provisionManagedNetwork).
                if "result" in status:
                    return 200, {}, status["result"]
                return 204, {}, None
            return 200, {}, status
        if key.startswith("/locations/"):
            return 200, {}, {}
        method = recorded.method
        segments = key.split("/")
        if "/deployments/" in key and key.endswith("/operations") and "onlineendpoints" not in key:
            # The operations of a template deployment, which the SDK lists while it waits.
            return 200, {}, {"value": []}
        if method == "POST" and "/datarefs/" in key:
            # A registry's read access to an asset's blobs (DataReference getBlobReferenceSAS).
            uri = (recorded.body or {}).get("blobUri", "")
            container = "/".join(uri.split("/")[:4])  # https://<account>.blob.../<container>
            return (
                200,
                {},
                {
                    "blobReferenceForConsumption": {
                        "blobUri": uri,
                        "storageAccountArmId": None,
                        "credential": {
                            "credentialType": "SAS",
                            "sasUri": f"{container}?sig=registry",
                        },
                    }
                },
            )
        if method == "POST" and key.endswith("/import") and "/registries/" in key:
            return self._import(recorded, path)
        if method == "POST":
            return self._action(recorded, key, segments[-1])
        if method == "GET":
            if key in self.resources:
                return 200, {}, self.resources[key]
            if "/codes/" in key and key.endswith("/versions") and query.get("hash"):
                # The service finds a snapshot by its content hash, whatever its name: the
                # SDK then reuses it instead of uploading the folder again.
                wanted = query["hash"][0]
                return (
                    200,
                    {},
                    {
                        "value": [
                            v
                            for k, v in self.resources.items()
                            if "/codes/" in k
                            and (v["properties"].get("properties") or {}).get("hash_sha256")
                            == wanted
                        ]
                    },
                )
            if self._is_collection(key):
                prefix = key + "/"
                items = [
                    v
                    for k, v in self.resources.items()
                    if k.startswith(prefix) and "/" not in k[len(prefix) :]
                ]
                return 200, {}, {"value": items}
            return _error(404, "ResourceNotFound", f"{path} was not found")
        if method == "PUT" and "/tempdatarefs/" in key:
            # A registry's temporary upload location for an asset's files.
            container = f"https://{STORAGE_ACCOUNT}.blob.core.windows.net/registry-uploads"
            return (
                200,
                {},
                {
                    "blobReferenceForConsumption": {
                        "blobUri": f"{container}/{uuid.uuid4()}",
                        "credential": {
                            "credentialType": "SAS",
                            "sasUri": f"{container}?sig=upload",
                        },
                    }
                },
            )
        if method == "PUT":
            return self._put(recorded, key, path)
        if method == "DELETE":
            return self._delete(key, path)
        return _error(405, "MethodNotAllowed", method)

    def _is_collection(self, key: str) -> bool:
        last = key.split("/")[-1]
        return last in {
            "deployments",
            "schedules",
            "versions",
            "computes",
            "datastores",
            "outboundrules",
        }

    def _kind(self, key: str) -> str:
        segments = key.split("/")
        return segments[-2] if len(segments) >= 2 else ""

    def _put(self, recorded: Recorded, key: str, path: str) -> tuple[int, dict[str, str], Any]:
        body = recorded.body if isinstance(recorded.body, dict) else {}
        kind = self._kind(key)
        if "/providers/microsoft.resources/deployments/" in key:
            self._deploy_template(path, body)
        existed = key in self.resources
        if kind == "onlineendpoints":
            self._check_traffic(key, body)
        resource = copy.deepcopy(body)
        now = _iso(self.clock())
        resource.update(
            {
                "id": resource_id(path),
                "name": path.rstrip("/").split("/")[-1],
                "type": _resource_type(path),
                "systemData": {
                    "createdAt": now,
                    "createdBy": "tests",
                    "createdByType": "User",
                    "lastModifiedAt": now,
                    "lastModifiedBy": "tests",
                    "lastModifiedByType": "User",
                },
            }
        )
        properties = resource.setdefault("properties", {})
        self._complete(kind, key, resource, properties)
        if kind == "jobs":
            properties["status"] = self.run_job(resource)
        if kind in ACCEPTED_WITH_LOCATION:
            self.resources[key] = resource
            operation = f"/operations/{uuid.uuid4()}"
            self.operations[operation] = {
                "status": "Succeeded",
                "location": True,
                "result": resource,
            }
            return (
                202,
                {"Location": f"{ARM}{operation}?api-version=2024-10-01", "Retry-After": "0"},
                None,
            )
        if kind in LONG_RUNNING:
            failure = next(
                (m for p, m in self.failing_operations.items() if re.search(p, path)), None
            )
            properties["provisioningState"] = "Failed" if failure else "Succeeded"
            self.resources[key] = resource
            operation = f"/operations/{uuid.uuid4()}"
            self.operations[operation] = (
                {"status": "Failed", "error": {"code": "DeploymentFailed", "message": failure}}
                if failure
                else {"status": "Succeeded"}
            )
            creating = copy.deepcopy(resource)
            creating["properties"]["provisioningState"] = "Updating" if existed else "Creating"
            headers = {
                "Azure-AsyncOperation": f"{ARM}{operation}?api-version=2024-10-01",
                "Retry-After": "0",
            }
            created = not existed or kind in ALWAYS_CREATED
            return (201 if created else 200), headers, creating
        properties.setdefault("provisioningState", "Succeeded")
        self.resources[key] = resource
        return (200 if existed else 201), {}, resource

    def _import(self, recorded: Recorded, path: str) -> tuple[int, dict[str, str], Any]:
        """A workspace asset shared into a registry (``share``): the registry gets a copy, at
        the destination name and version, with the source's properties and tags."""
        properties = (recorded.body or {}).get("properties") or recorded.body or {}
        source = str(properties.get("sourceAssetId", ""))
        match = re.search(r"/(data|models)/([^/]+)/versions/([^/]+)$", source)
        if not match:
            raise ServiceError(400, "BadArgument", f"not an asset id: {source!r}")
        kind, name, version = match.groups()
        found = [
            v
            for k, v in self.resources.items()
            if "/workspaces/" in k
            and k.endswith(f"/{kind}/{name.lower()}/versions/{version.lower()}")
        ]
        if not found:
            raise ServiceError(404, "ResourceNotFound", f"{source} was not found")
        registry = path.rsplit("/import", 1)[0]
        target = (
            f"{registry}/{kind}/{properties.get('destinationName', name)}"
            f"/versions/{properties.get('destinationVersion', version)}"
        )
        copied = copy.deepcopy(found[0])
        copied.update(
            {"id": resource_id(target), "name": str(properties.get("destinationVersion", version))}
        )
        self.resources[self._key(target)] = copied
        operation = f"/operations/{uuid.uuid4()}"
        self.operations[operation] = {"status": "Succeeded", "location": True}
        return (
            202,
            {"Location": f"{ARM}{operation}?api-version=2024-10-01", "Retry-After": "0"},
            None,
        )

    def _deploy_template(self, path: str, body: dict[str, Any]) -> None:
        """A template deployment that creates a workspace (workspaces.begin_create): the
        workspace it names appears, with its default datastore. The template's other
        resources (storage, key vault, Application Insights) are not modelled."""
        parameters = {
            name: value.get("value")
            for name, value in ((body.get("properties") or {}).get("parameters") or {}).items()
        }
        name = parameters.get("workspaceName")
        if name:
            segments = path.split("/")
            created = seed_workspace(self, segments[2], segments[4], str(name))
            properties = self.resources[self._key(created)]["properties"]
            properties["publicNetworkAccess"] = parameters.get("publicNetworkAccess", "Enabled")
            properties["managedNetwork"] = parameters.get("managedNetwork") or {
                "isolationMode": "Disabled"
            }

    def _complete(
        self, kind: str, key: str, resource: dict[str, Any], properties: dict[str, Any]
    ) -> None:
        """What the service adds to a resource it creates."""
        if kind == "onlineendpoints":
            name = resource["name"]
            resource.setdefault("location", REGION)
            properties["scoringUri"] = f"https://{name}.{REGION}.inference.ml.azure.com/score"
            properties["swaggerUri"] = (
                f"https://{name}.{REGION}.inference.ml.azure.com/swagger.json"
            )
            properties.setdefault("traffic", {})
            properties.setdefault("mirrorTraffic", {})
        if kind == "deployments":
            # The data collector registers each collection as a data asset of the workspace.
            endpoint = key.split("/")[-3]
            collector = properties.get("dataCollector") or {}
            workspace = key.split("/onlineendpoints/")[0]
            for name, collection in (collector.get("collections") or {}).items():
                asset = f"{endpoint}-{resource['name']}-{name}"
                collection.setdefault("dataId", f"{workspace}/data/{asset}/versions/1")
            resource.setdefault("location", REGION)
            resource.setdefault("sku", {"name": "Default", "capacity": 1})
            properties.setdefault("scaleSettings", {"scaleType": "Default"})
        if kind == "batchendpoints":
            name = resource["name"]
            resource.setdefault("location", REGION)
            properties["scoringUri"] = f"https://{name}.{REGION}.inference.ml.azure.com/jobs"
            properties.setdefault("defaults", {})
        if kind == "schedules":
            properties.setdefault("isEnabled", True)
        if kind == "versions":
            properties.setdefault("isArchived", False)
        if kind == "versions" and "/models/" in key:
            properties.setdefault("flavors", {})

    def _check_traffic(self, key: str, body: dict[str, Any]) -> None:
        properties = body.get("properties") or {}
        traffic = {k: int(v) for k, v in (properties.get("traffic") or {}).items()}
        mirror = {k: int(v) for k, v in (properties.get("mirrorTraffic") or {}).items()}
        existing = {
            k.rsplit("/", 1)[1] for k in self.resources if k.startswith(key + "/deployments/")
        }
        problems = []
        unknown = sorted((set(traffic) | set(mirror)) - existing)
        if unknown:
            problems.append(f"traffic names deployments that do not exist: {unknown}")
        if traffic and sum(traffic.values()) not in (0, 100):
            problems.append(f"traffic must sum to 100, got {traffic}")
        if any(share > 50 for share in mirror.values()):
            problems.append(f"mirror traffic may not exceed 50%: {mirror}")
        if any(traffic.get(name, 0) > 0 for name, share in mirror.items() if share > 0):
            problems.append("a deployment taking live traffic cannot receive mirror traffic")
        if problems:
            raise ServiceError(400, "BadArgument", "; ".join(problems))

    def _delete(self, key: str, path: str) -> tuple[int, dict[str, str], Any]:
        if key not in self.resources:
            return 204, {}, None
        if self._kind(key) == "deployments":
            endpoint = self.resources[key.rsplit("/deployments/", 1)[0]]
            name = key.rsplit("/", 1)[1]
            if int((endpoint["properties"].get("traffic") or {}).get(name, 0)) > 0:
                raise ServiceError(
                    400, "BadArgument", f"deployment {name} takes traffic and cannot be deleted"
                )
            for share in ("traffic", "mirrorTraffic"):
                endpoint["properties"][share] = {
                    k: v for k, v in (endpoint["properties"].get(share) or {}).items() if k != name
                }
        del self.resources[key]
        operation = f"/operations/{uuid.uuid4()}"
        self.operations[operation] = {"status": "Succeeded", "location": True}
        return (
            202,
            {"Location": f"{ARM}{operation}?api-version=2024-10-01", "Retry-After": "0"},
            None,
        )

    def _action(self, recorded: Recorded, key: str, action: str) -> tuple[int, dict[str, str], Any]:
        owner = key.rsplit("/", 1)[0]
        if action == "listkeys" and self._kind(owner) == "onlineendpoints":
            return 200, {}, {"primaryKey": "primary", "secondaryKey": "secondary"}
        if action == "listsecrets":
            return 200, {}, {"secretsType": "AccountKey", "key": "a2V5"}
        if owner not in self.resources and action not in ("startpendingupload",):
            return _error(404, "ResourceNotFound", f"{owner} was not found")
        if action == "provisionmanagednetwork":
            return self._provision_network(recorded, owner)
        if action == "startpendingupload":
            return (
                200,
                {},
                {
                    "blobReferenceForConsumption": {
                        "blobUri": f"https://{STORAGE_ACCOUNT}.blob.core.windows.net/uploads/{uuid.uuid4()}",
                        "credential": {
                            "credentialType": "SAS",
                            "sasUri": f"https://{STORAGE_ACCOUNT}.blob.core.windows.net/uploads?sig=x",
                        },
                    },
                    "pendingUploadId": str(uuid.uuid4()),
                    "pendingUploadType": "TemporaryBlobReference",
                },
            )
        return _error(400, "UnsupportedAction", f"the fake does not answer {action}")

    def _provision_network(
        self, recorded: Recorded, workspace: str
    ) -> tuple[int, dict[str, str], Any]:
        """Workspaces_ProvisionManagedNetwork: 202 with a Location whose answer is the
        ManagedNetworkProvisionStatus. Refused, as the service does, for a workspace without a
        managed network."""
        properties = self.resources[workspace]["properties"]
        network = properties.get("managedNetwork") or {}
        if network.get("isolationMode", "Disabled") == "Disabled":
            raise ServiceError(
                400, "BadRequest", "the workspace has no managed network to provision"
            )
        spark = bool((recorded.body or {}).get("includeSpark"))
        status = {"status": "Active", "sparkReady": spark}
        network["status"] = status
        operation = f"/operations/{uuid.uuid4()}"
        self.operations[operation] = {"status": "Succeeded", "location": True, "result": status}
        return (
            202,
            {"Location": f"{ARM}{operation}?api-version=2024-10-01", "Retry-After": "0"},
            None,
        )

    # -- scoring --------------------------------------------------------------------------

    def _score(self, recorded: Recorded, endpoint: str) -> tuple[int, dict[str, str], Any]:
        deployment = recorded.headers.get("azureml-model-deployment")
        endpoints = [
            v
            for k, v in self.resources.items()
            if self._kind(k) == "onlineendpoints" and v["name"].lower() == endpoint
        ]
        if not endpoints:
            return 404, {}, {"message": f"no endpoint {endpoint}"}
        if deployment is None:
            raise ServiceError(400, "BadArgument", "the tests always name the deployment")
        key = self._key(endpoints[0]["id"]) + f"/deployments/{deployment.lower()}"
        if key not in self.resources:
            return 404, {}, {"message": f"deployment {deployment} not found"}
        records = len((recorded.body or {}).get("instances") or [])
        status, answer = self.scorer.answer(deployment, records)
        self.scored.append((self.clock(), deployment, status))
        return status, {}, answer

    def _invoke_batch(self, recorded: Recorded, endpoint: str) -> tuple[int, dict[str, str], Any]:
        """A batch endpoint invocation (POST <scoringUri>): the job runs at once through
        :attr:`run_batch` and is stored under the workspace's jobs, with the status it
        ended in, as the service lists a batch job (a pipeline job)."""
        found = [
            (k, v)
            for k, v in self.resources.items()
            if self._kind(k) == "batchendpoints" and v["name"].lower() == endpoint
        ]
        if not found:
            return 404, {}, {"message": f"no batch endpoint {endpoint}"}
        key, resource = found[0]
        deployment = recorded.headers.get("azureml-model-deployment") or (
            resource["properties"].get("defaults") or {}
        ).get("deploymentName")
        if not deployment or f"{key}/deployments/{deployment.lower()}" not in self.resources:
            raise ServiceError(400, "BadArgument", f"no deployment {deployment!r} to run")
        properties = (recorded.body or {}).get("properties") or {}
        name = properties.get("name") or f"batchjob-{uuid.uuid4()}"
        status = self.run_batch(deployment, properties)
        workspace = key.split("/batchendpoints/")[0]
        job = {
            "id": resource_id(f"{workspace}/jobs/{name}"),
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/jobs",
            "properties": {
                "jobType": "Pipeline",
                "status": status,
                "jobs": {},
                "inputs": {},
                "outputs": {},
                "settings": {},
                "experimentName": endpoint,
                "properties": {},
                "tags": {},
            },
        }
        self.resources[f"{workspace}/jobs/{name.lower()}"] = job
        self.batch_jobs.append((deployment, properties))
        return 200, {}, job

    # -- blob storage ---------------------------------------------------------------------

    def _list_xml(self, host: str, container: str, query: dict[str, list[str]]) -> str:
        """List Blobs (the service's XML), with ``prefix`` and ``delimiter``."""
        account = host.split(".")[0]
        root = f"{account}/{container}/"
        start = (query.get("prefix") or [""])[0]
        delimiter = (query.get("delimiter") or [""])[0]
        blobs, prefixes = [], set()
        for key in sorted(k for k in self.blobs if k.startswith(root + start)):
            name = key[len(root) :]
            rest = name[len(start) :]
            if delimiter and delimiter in rest:
                prefixes.add(start + rest.split(delimiter, 1)[0] + delimiter)
            else:
                blobs.append(_blob_xml(name, *self.blobs[key]))
        folders = "".join(
            f"<BlobPrefix><Name>{escape(p)}</Name></BlobPrefix>" for p in sorted(prefixes)
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><EnumerationResults '
            f'ServiceEndpoint="https://{host}/" ContainerName="{container}">'
            f"<Prefix>{escape(start)}</Prefix><Delimiter>{escape(delimiter)}</Delimiter>"
            f"<Blobs>{''.join(blobs)}{folders}</Blobs><NextMarker /></EnumerationResults>"
        )

    def _blob(
        self, recorded: Recorded, host: str, path: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, str], Any]:
        account = host.split(".")[0]
        container, _, blob = path.lstrip("/").partition("/")
        method, comp = recorded.method, (query.get("comp") or [""])[0]
        prefix = f"{account}/{container}/"
        if method == "GET" and comp == "list":
            return 200, {"Content-Type": "application/xml"}, self._list_xml(host, container, query)
        key = prefix + blob
        if method == "PUT" and comp == "metadata":
            if key not in self.blobs:
                return 404, {"x-ms-error-code": "BlobNotFound"}, b""
            metadata = {
                k[len("x-ms-meta-") :]: v
                for k, v in recorded.headers.items()
                if k.lower().startswith("x-ms-meta-")
            }
            self.blobs[key] = (self.blobs[key][0], metadata)
            return 200, {"ETag": '"0x1"', "Last-Modified": "Mon, 01 Jun 2026 00:00:00 GMT"}, b""
        if method == "PUT" and not comp:
            content = (
                recorded.body
                if isinstance(recorded.body, bytes)
                else json.dumps(recorded.body).encode()
            )
            metadata = {
                k[len("x-ms-meta-") :]: v
                for k, v in recorded.headers.items()
                if k.lower().startswith("x-ms-meta-")
            }
            self.blobs[key] = (content, metadata)
            return (
                201,
                {
                    "ETag": '"0x1"',
                    "Last-Modified": "Mon, 01 Jun 2026 00:00:00 GMT",
                    "Content-MD5": "",
                },
                b"",
            )
        if method in ("GET", "HEAD"):
            if key not in self.blobs:
                return 404, {"x-ms-error-code": "BlobNotFound"}, b""
            content, metadata = self.blobs[key]
            status = 200
            headers: dict[str, str] = {}
            wanted = recorded.headers.get("x-ms-range") or recorded.headers.get("Range")
            if method == "GET" and wanted and content:
                first, _, last = wanted.split("=", 1)[1].partition("-")
                end = min(int(last), len(content) - 1) if last else len(content) - 1
                headers["Content-Range"] = f"bytes {first}-{end}/{len(content)}"
                content, status = content[int(first) : end + 1], 206
            elif method == "GET" and wanted:
                # The service's answer to a range over an empty blob; the client asks again.
                return 416, {"Content-Range": "bytes */0", "x-ms-error-code": "InvalidRange"}, b""
            headers = {
                **headers,
                "Content-Length": str(len(content)),
                "Content-Type": "application/octet-stream",
                "ETag": '"0x1"',
                "Last-Modified": "Mon, 01 Jun 2026 00:00:00 GMT",
                "x-ms-blob-type": "BlockBlob",
                **{f"x-ms-meta-{k}": v for k, v in metadata.items()},
            }
            return status, headers, content if method == "GET" else b""
        if method == "PUT" and comp in ("block", "blocklist"):
            return 201, {"ETag": '"0x1"'}, b""
        return 400, {"x-ms-error-code": "UnsupportedByFake"}, b""


class _Raw:
    """The body as urllib3's stream, which azure-core reads when a response is streamed."""

    def __init__(self, content: bytes) -> None:
        import io

        self._stream = io.BytesIO(content)

    def stream(self, chunk_size: int, decode_content: bool = False) -> Any:
        while chunk := self._stream.read(chunk_size):
            yield chunk

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        return self._stream.read(*args)

    def close(self) -> None:
        return None


def resource_id(path: str) -> str:
    """A resource's id as the service gives it: the ARM path, except for a registry's assets,
    which registries name ``azureml://registries/<registry>/<type>/<name>/versions/<v>``."""
    match = re.search(r"/registries/([^/]+)/(.+)$", path.rstrip("/"))
    if match:
        return f"azureml://registries/{match.group(1)}/{match.group(2)}"
    return path.rstrip("/")


def _resource_type(path: str) -> str:
    segments = [s for s in path.strip("/").split("/") if s]
    provider = segments.index("providers")
    types = segments[provider + 2 :: 2]
    return "/".join([segments[provider + 1], *types])


def _blob_xml(name: str, content: bytes, metadata: dict[str, str]) -> str:
    meta = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in metadata.items())
    return (
        f"<Blob><Name>{escape(name)}</Name><Properties>"
        "<Last-Modified>Mon, 01 Jun 2026 00:00:00 GMT</Last-Modified><Etag>0x1</Etag>"
        f"<Content-Length>{len(content)}</Content-Length>"
        "<Content-Type>application/octet-stream</Content-Type><BlobType>BlockBlob</BlobType>"
        f"</Properties><Metadata>{meta}</Metadata></Blob>"
    )


def workspace_path(subscription: str, resource_group: str, workspace: str) -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
        f"Microsoft.MachineLearningServices/workspaces/{workspace}"
    )


def seed_workspace(fake: FakeAzure, subscription: str, resource_group: str, workspace: str) -> str:
    """A workspace that exists, with its default blob datastore (spec examples: Workspace/get,
    Datastore/get)."""
    path = workspace_path(subscription, resource_group, workspace)
    key = fake._key(path)
    fake.resources[key] = {
        "id": path,
        "name": workspace,
        "type": "Microsoft.MachineLearningServices/workspaces",
        "location": REGION,
        "identity": {
            "type": "SystemAssigned",
            "principalId": str(uuid.uuid4()),
            "tenantId": str(uuid.uuid4()),
        },
        "properties": {
            "friendlyName": workspace,
            "workspaceId": str(uuid.uuid5(uuid.NAMESPACE_URL, path)),
            "storageAccount": f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Storage/storageAccounts/{STORAGE_ACCOUNT}",
            "keyVault": f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.KeyVault/vaults/mlwvault",
            "containerRegistry": f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.ContainerRegistry/registries/mlwacr",
            "managedNetwork": {"isolationMode": "AllowInternetOutbound"},
            "discoveryUrl": f"https://{REGION}.api.azureml.ms/discovery",
            "mlFlowTrackingUri": f"azureml://{REGION}.api.azureml.ms/mlflow/v1.0{path}",
            "provisioningState": "Succeeded",
        },
    }
    datastore = f"{path}/datastores/workspaceblobstore"
    fake.resources[fake._key(datastore)] = {
        "id": datastore,
        "name": "workspaceblobstore",
        "type": "Microsoft.MachineLearningServices/workspaces/datastores",
        "properties": {
            "datastoreType": "AzureBlob",
            "accountName": STORAGE_ACCOUNT,
            "containerName": "azureml-blobstore",
            "endpoint": "core.windows.net",
            "protocol": "https",
            "isDefault": True,
            "credentials": {"credentialsType": "AccountKey"},
            "serviceDataAccessAuthIdentity": "None",
        },
    }
    return path


def registry_path(subscription: str, resource_group: str, registry: str) -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
        f"Microsoft.MachineLearningServices/registries/{registry}"
    )


def seed_registry(fake: FakeAzure, subscription: str, resource_group: str, registry: str) -> str:
    path = registry_path(subscription, resource_group, registry)
    fake.resources[fake._key(path)] = {
        "id": path,
        "name": registry,
        "type": "Microsoft.MachineLearningServices/registries",
        "location": REGION,
        "properties": {
            "regionDetails": [{"location": REGION, "acrDetails": [], "storageAccountDetails": []}],
            "provisioningState": "Succeeded",
        },
    }
    return path


def install_default_transport(monkeypatch: Any, fake: FakeAzure) -> None:
    """Send what SDK-internal clients (azure-storage-blob) send through ``fake`` too."""
    from azure.core.pipeline.transport import RequestsTransport

    monkeypatch.setattr(
        RequestsTransport, "send", lambda self, request, **kw: fake.send(request, **kw)
    )
