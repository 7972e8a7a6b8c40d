"""A local, file-based model registry shaped like SageMaker model packages.

Each model package group is a folder; each version is a sub-folder holding a copy
of the model, its evaluation and ``package.json`` with the fields SageMaker's
DescribeModelPackage returns (ModelPackageGroupName, ModelPackageVersion,
ModelApprovalStatus, CustomerMetadataProperties, ModelMetrics, ...). The local run
and tests use it the way the cloud pipelines use SageMaker's registry or Azure ML's
model assets: register as PendingManualApproval, approve or reject, deploy the
latest approved version.

Every version records ``model_sha256`` (the model's hash: the sha256 of its manifest,
which covers ``model.joblib`` and ``metadata.json``; see :func:`mlcore.model.model_sha256`)
in its CustomerMetadataProperties, outside the model folder, as SageMaker packages and
Azure model tags do; serving checks the folder against it (``MLCORE_MODEL_SHA256``)
before loading anything. Registration refuses a folder whose files do not match its own
manifest: a torn or edited copy is never registered.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from mlcore.atomic import new_folder
from mlcore.errors import ModelError, RegistryError
from mlcore.jsonio import dumps, write_json
from mlcore.model import MODEL_SHA256_KEY, model_sha256

ApprovalStatus = Literal["PendingManualApproval", "Approved", "Rejected"]
APPROVAL_STATUSES: tuple[ApprovalStatus, ...] = ("PendingManualApproval", "Approved", "Rejected")
PACKAGE_FILE = "package.json"


@dataclass(frozen=True)
class ModelPackage:
    """One registered version, read from its ``package.json``."""

    path: Path
    description: dict[str, Any]

    @property
    def version(self) -> int:
        return int(self.description["ModelPackageVersion"])

    @property
    def status(self) -> ApprovalStatus:
        status: ApprovalStatus = self.description["ModelApprovalStatus"]
        return status

    @property
    def arn(self) -> str:
        return str(self.description["ModelPackageArn"])

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def evaluation_dir(self) -> Path:
        return self.path / "evaluation"

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.description.get("CustomerMetadataProperties", {}))

    @property
    def model_sha256(self) -> str:
        """The registered model's hash (``"sha256:<hex>"`` of its manifest): what serving must be given."""
        return self.metadata[MODEL_SHA256_KEY]


class LocalModelRegistry:
    """Model package groups under ``root``. Versions are immutable; only approval changes."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def register(
        self,
        group: str,
        *,
        model_dir: str | Path,
        evaluation_dir: str | Path | None = None,
        metadata: dict[str, Any] | None = None,
        description: str = "",
    ) -> ModelPackage:
        """Copy the model (and evaluation) into a new version, PendingManualApproval.

        The version folder is assembled in a temporary folder and renamed into place,
        so a crash never leaves a half-registered version behind.
        """
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise RegistryError(f"cannot register {model_dir}: it is not a model directory")
        model_sha256 = _model_sha256(model_dir, (metadata or {}).get(MODEL_SHA256_KEY))
        versions = self._group_dir(group) / "versions"
        versions.mkdir(parents=True, exist_ok=True)
        # Not mkdtemp: the version folder keeps the staging folder's modes (the umask's).
        staging = new_folder(versions, prefix=".staging-")
        try:
            shutil.copytree(model_dir, staging / "model")
            if evaluation_dir is not None:
                shutil.copytree(evaluation_dir, staging / "evaluation")
            version = self._claim_next_version(versions)
            now = _now()
            package = {
                "ModelPackageGroupName": group,
                "ModelPackageVersion": version,
                "ModelPackageArn": f"local:model-package/{group}/{version}",
                "ModelPackageDescription": description,
                "ModelApprovalStatus": "PendingManualApproval",
                "CreationTime": now,
                "LastModifiedTime": now,
                # SageMaker limits metadata values to strings; keep the same shape.
                "CustomerMetadataProperties": {
                    **{
                        k: v if isinstance(v, str) else dumps(v, sort_keys=True)
                        for k, v in (metadata or {}).items()
                    },
                    MODEL_SHA256_KEY: model_sha256,
                },
                "InferenceSpecification": {
                    "Containers": [
                        {"ModelDataUrl": (versions / str(version) / "model").resolve().as_uri()}
                    ],
                    "SupportedContentTypes": ["text/csv", "application/json"],
                    "SupportedResponseMIMETypes": ["application/json", "text/csv"],
                },
            }
            if evaluation_dir is not None:
                evaluation_uri = (
                    (versions / str(version) / "evaluation" / "evaluation.json").resolve().as_uri()
                )
                package["ModelMetrics"] = {
                    "ModelQuality": {
                        "Statistics": {"ContentType": "application/json", "S3Uri": evaluation_uri}
                    }
                }
            write_json(staging / PACKAGE_FILE, package)
            final = versions / str(version)
            final.rmdir()  # the empty placeholder that claimed the number
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.get(group, version)

    def update_approval(
        self, group: str, version: int, status: ApprovalStatus, *, reason: str = ""
    ) -> ModelPackage:
        if status not in APPROVAL_STATUSES:
            raise RegistryError(
                f"unknown approval status {status!r}; use one of {APPROVAL_STATUSES}"
            )
        package = self.get(group, version)
        description = dict(package.description)
        description["ModelApprovalStatus"] = status
        description["ApprovalDescription"] = reason
        description["LastModifiedTime"] = _now()
        tmp = package.path / (PACKAGE_FILE + ".tmp")
        write_json(tmp, description)
        os.replace(tmp, package.path / PACKAGE_FILE)
        return self.get(group, version)

    def get(self, group: str, version: int) -> ModelPackage:
        path = self._group_dir(group) / "versions" / str(version)
        if not (path / PACKAGE_FILE).exists():
            known = [p.version for p in self.list_packages(group)]
            raise RegistryError(
                f"model package {group}/{version} does not exist; versions: {known}"
            )
        return ModelPackage(path=path, description=json.loads((path / PACKAGE_FILE).read_text()))

    def list_packages(
        self, group: str, *, status: ApprovalStatus | None = None
    ) -> list[ModelPackage]:
        versions = self._group_dir(group) / "versions"
        if not versions.is_dir():
            return []
        packages = [
            ModelPackage(path=p, description=json.loads((p / PACKAGE_FILE).read_text()))
            for p in versions.iterdir()
            if p.name.isdigit() and (p / PACKAGE_FILE).exists()
        ]
        packages.sort(key=lambda p: p.version)
        return [p for p in packages if status is None or p.status == status]

    def latest_approved(self, group: str) -> ModelPackage | None:
        approved = self.list_packages(group, status="Approved")
        return approved[-1] if approved else None

    def _group_dir(self, group: str) -> Path:
        if not group or "/" in group or group.startswith("."):
            raise RegistryError(f"invalid model package group name {group!r}")
        return self.root / group

    @staticmethod
    def _claim_next_version(versions: Path) -> int:
        # mkdir is atomic: two processes registering at once get different numbers.
        existing = [int(p.name) for p in versions.iterdir() if p.name.isdigit()]
        candidate = max(existing, default=0) + 1
        while True:
            try:
                (versions / str(candidate)).mkdir()
                return candidate
            except FileExistsError:
                candidate += 1


def _model_sha256(model_dir: Path, given: object) -> str:
    """The model's hash (its manifest's, every file checked), and the caller's if given, agreeing."""
    try:
        actual = model_sha256(model_dir)
    except ModelError as exc:
        raise RegistryError(f"cannot register {model_dir}: {exc}") from exc
    if given is not None and given != actual:
        raise RegistryError(
            f"cannot register {model_dir}: its hash is {actual} but the metadata given says "
            f"{given}; the folder is not the model that was evaluated"
        )
    return actual


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
