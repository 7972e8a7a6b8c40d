"""Promote an approved model package from the model-build environment to another one.

The target gets its own copy, registered in its own model package group as Approved (or as
PendingManualApproval where a person approves each release there: :mod:`.approval`): the
model archive, the evaluation report and the sample request are copied into the target's
artifact bucket (under its key), and the image is the target's own copy of the very same
image, found by digest in the target's repository. Bytes are streamed through this function
between two sessions, one per deploy role, so neither account grants the other anything on
its bucket, key, repository or package group: the only cross-account grant of a release is
the trust of each deploy role in the release functions.

Why a copy rather than sharing the source package (a resource policy on the group plus
bucket and key grants): an endpoint fetches its model data again whenever an instance starts
(autoscaling, replacement), so a shared package would tie prod's availability to dev's
bucket, its lifecycle rules and its teardown; a copy lives and is retained where it serves.
The copy is verified, not trusted: its archive is read at a pinned S3 version and its sha256
recorded (``model_data_sha256``), its image is pinned by digest, and it carries the source's
``model_sha256``, which the serving container checks before it loads the model.

Promoting twice returns the existing copy; a copy someone set to Rejected stops the release.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import asdict, dataclass
from typing import IO, Any
from urllib.parse import urlparse

from .targets import MODEL_SHA256_ENV, MODEL_SHA256_KEY, SAMPLE_REQUEST_FILE, Environment

logger = logging.getLogger(__name__)

PROMOTED_PREFIX = "promoted"
SOURCE_PACKAGE_KEY = "source_model_package_arn"
MODEL_DATA_SHA256_KEY = "model_data_sha256"
_IMAGE = re.compile(
    r"^(?P<registry>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
# SageMaker's limit on CustomerMetadataProperties entries (CreateModelPackage API reference).
_MAX_METADATA = 50


@dataclass(frozen=True)
class Promotion:
    """The package to deploy in the target, and whether this call created it."""

    environment: str
    model_package_arn: str
    source_model_package_arn: str
    created: bool
    # Approved, or PendingManualApproval where a person approves releases (deploy.approval).
    approval_status: str = "Approved"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def promote(*, source: Environment, target: Environment, model_package_arn: str) -> Promotion:
    """The target's copy of ``model_package_arn`` (created if there is none): Approved, or
    PendingManualApproval in an environment where a person approves each release."""
    package = _approved_source(source, model_package_arn)
    if source.ref.environment == target.ref.environment:
        # The model-build environment serves the package it registered.
        return Promotion(target.ref.environment, model_package_arn, model_package_arn, False)
    existing = _existing_copy(target, model_package_arn)
    if existing is not None:
        arn, status = existing
        return Promotion(target.ref.environment, arn, model_package_arn, False, status)
    status = "PendingManualApproval" if target.descriptor.release_approval else "Approved"

    container = package["InferenceSpecification"]["Containers"][0]
    version = package.get("ModelPackageVersion", "0")
    prefix = f"{PROMOTED_PREFIX}/{package['ModelPackageGroupName']}/{version}"
    bucket = target.descriptor.artifact_bucket
    model_key = f"{prefix}/model/model.tar.gz"
    model_sha = _copy_object(
        source.client("s3"), container["ModelDataUrl"], target.client("s3"), bucket, model_key
    )
    evaluation_url = _evaluation_url(package)
    evaluation_folder = evaluation_url.rsplit("/", 1)[0]
    copied_evaluation = f"{prefix}/evaluation/{evaluation_url.rsplit('/', 1)[1]}"
    _copy_object(
        source.client("s3"), evaluation_url, target.client("s3"), bucket, copied_evaluation
    )
    _copy_object(
        source.client("s3"),
        f"{evaluation_folder}/{SAMPLE_REQUEST_FILE}",
        target.client("s3"),
        bucket,
        f"{prefix}/evaluation/{SAMPLE_REQUEST_FILE}",
        what=f"the sample request (written by mlcore evaluate beside {evaluation_url})",
    )
    image = same_image_in_target(source, target, container["Image"])
    metadata = dict(package.get("CustomerMetadataProperties", {}))
    metadata.update(
        {SOURCE_PACKAGE_KEY: model_package_arn, MODEL_DATA_SHA256_KEY: f"sha256:{model_sha}"}
    )
    if len(metadata) > _MAX_METADATA:
        raise ValueError(
            f"{model_package_arn} has {len(metadata) - 2} metadata entries; its copy needs two "
            f"more and SageMaker allows {_MAX_METADATA}"
        )
    inference = package["InferenceSpecification"]
    copied_container = {
        "Image": image,
        "ModelDataUrl": f"s3://{bucket}/{model_key}",
        "Environment": {
            **container.get("Environment", {}),
            MODEL_SHA256_ENV: metadata[MODEL_SHA256_KEY],
        },
    }
    specification = {
        "Containers": [copied_container],
        "SupportedContentTypes": inference.get("SupportedContentTypes", ["application/json"]),
        "SupportedResponseMIMETypes": inference.get(
            "SupportedResponseMIMETypes", ["application/json"]
        ),
    }
    for key in ("SupportedRealtimeInferenceInstanceTypes", "SupportedTransformInstanceTypes"):
        if inference.get(key):
            specification[key] = inference[key]
    statistics = package["ModelMetrics"]["ModelQuality"]["Statistics"]
    created = target.client("sagemaker").create_model_package(
        ModelPackageGroupName=target.descriptor.model_package_group,
        ModelPackageDescription=f"Promoted copy of {model_package_arn}"[:1024],
        InferenceSpecification=specification,
        # Where a person approves releases, the deploy role may create nothing else.
        ModelApprovalStatus=status,
        ModelMetrics={
            "ModelQuality": {
                "Statistics": {
                    "ContentType": statistics.get("ContentType", "application/json"),
                    "S3Uri": f"s3://{bucket}/{copied_evaluation}",
                }
            }
        },
        CustomerMetadataProperties=metadata,
    )
    arn = str(created["ModelPackageArn"])
    logger.info(
        "promoted %s to %s as %s (%s)", model_package_arn, target.ref.environment, arn, status
    )
    return Promotion(target.ref.environment, arn, model_package_arn, True, status)


def _approved_source(source: Environment, arn: str) -> dict[str, Any]:
    package: dict[str, Any] = source.client("sagemaker").describe_model_package(
        ModelPackageName=arn
    )
    problems = []
    if package.get("ModelPackageGroupName") != source.descriptor.model_package_group:
        problems.append(
            f"it belongs to {package.get('ModelPackageGroupName')!r}, not to the model-build "
            f"group {source.descriptor.model_package_group!r}"
        )
    if package.get("ModelApprovalStatus") != "Approved":
        problems.append(f"it is {package.get('ModelApprovalStatus')}, not Approved")
    if not package.get("CustomerMetadataProperties", {}).get(MODEL_SHA256_KEY):
        problems.append(f"it has no {MODEL_SHA256_KEY} metadata (retrain it)")
    containers = package.get("InferenceSpecification", {}).get("Containers", [])
    if len(containers) != 1 or not containers[0].get("ModelDataUrl"):
        problems.append("it must have exactly one container with model data")
    if problems:
        raise ValueError(f"cannot promote {arn}: " + "; ".join(problems))
    return package


def _existing_copy(target: Environment, source_arn: str) -> tuple[str, str] | None:
    """The target's copy of ``source_arn`` and its status, if it has one it may still use."""
    sagemaker = target.client("sagemaker")
    request: dict[str, Any] = {
        "ModelPackageGroupName": target.descriptor.model_package_group,
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
    }
    while True:
        page = sagemaker.list_model_packages(**request)
        for summary in page.get("ModelPackageSummaryList", []):
            described = sagemaker.describe_model_package(
                ModelPackageName=summary["ModelPackageArn"]
            )
            if (
                described.get("CustomerMetadataProperties", {}).get(SOURCE_PACKAGE_KEY)
                != source_arn
            ):
                continue
            status = str(described["ModelApprovalStatus"])
            waiting = status == "PendingManualApproval" and target.descriptor.release_approval
            if status != "Approved" and not waiting:
                raise ValueError(
                    f"{target.ref.environment} already holds a copy of {source_arn} "
                    f"({summary['ModelPackageArn']}) that is {status}: someone withdrew or "
                    "rejected it there; approve that copy there or release another package"
                )
            return str(summary["ModelPackageArn"]), status
        token = page.get("NextToken")
        if not token:
            return None
        request["NextToken"] = token


def evaluation_report_url(package: dict[str, Any]) -> str | None:
    """Where the package's evaluation.json is: the SageMaker SDK registers ``model_statistics``
    as ModelMetrics.ModelQuality.Statistics (botocore's CreateModelPackage shape)."""
    url = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
    return str(url) if url else None


def _evaluation_url(package: dict[str, Any]) -> str:
    url = evaluation_report_url(package)
    if not url:
        raise ValueError(
            f"{package['ModelPackageArn']} records no evaluation report (ModelMetrics."
            "ModelQuality.Statistics), so its sample request cannot be found; retrain it"
        )
    return str(url)


class _HashingReader:
    """A file-like view of a stream that hashes what is read (one pass, bounded memory)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self.sha256.update(chunk)
        return chunk


def _copy_object(
    source_s3: Any, url: str, target_s3: Any, bucket: str, key: str, *, what: str | None = None
) -> str:
    """Stream ``url`` (read at its current version) to ``s3://bucket/key``; return its sha256."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise ValueError(f"expected an s3://bucket/key URL, got {url!r}")
    source_bucket, source_key = parsed.netloc, parsed.path.lstrip("/")
    try:
        head = source_s3.head_object(Bucket=source_bucket, Key=source_key)
    except source_s3.exceptions.ClientError as exc:
        raise ValueError(f"cannot read {what or url} at {url}: {exc}") from exc
    pinned = {"VersionId": head["VersionId"]} if head.get("VersionId") else {}
    body = source_s3.get_object(Bucket=source_bucket, Key=source_key, **pinned)["Body"]
    reader = _HashingReader(body)
    target_s3.upload_fileobj(reader, bucket, key)
    digest = reader.sha256.hexdigest()
    logger.info("copied %s (%s) to s3://%s/%s, sha256 %s", url, pinned, bucket, key, digest)
    return digest


def same_image_in_target(source: Environment, target: Environment, image_uri: str) -> str:
    """The target repository's image with the digest of the source package's image."""
    match = _IMAGE.match(image_uri)
    if not match:
        raise ValueError(f"the package's image {image_uri!r} is not an ECR image URI")
    digest = match["digest"]
    if digest is None:
        if match["tag"] is None:
            raise ValueError(f"the package's image {image_uri!r} has neither a tag nor a digest")
        source_ecr = source.client("ecr")
        try:
            found = source_ecr.describe_images(
                repositoryName=match["repository"], imageIds=[{"imageTag": match["tag"]}]
            )["imageDetails"]
        except source_ecr.exceptions.ClientError as exc:
            raise ValueError(
                f"the package's image {image_uri} is gone from {source.ref.environment}'s "
                f"repository, so its digest cannot be checked: {exc}"
            ) from exc
        digest = found[0]["imageDigest"]
    ecr = target.client("ecr")
    repository = target.descriptor.image_repository
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageDigest": digest}])
    except ecr.exceptions.ClientError as exc:
        raise ValueError(
            f"{target.ref.environment}'s repository {repository} has no image {digest} (the image "
            f"the package was trained with, {image_uri}). The CI/CD pipeline publishes the same "
            "image to every environment: let it deploy this environment at the commit that "
            "trained the model, then release again"
        ) from exc
    uri = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0][
        "repositoryUri"
    ]
    return f"{uri}@{digest}"
