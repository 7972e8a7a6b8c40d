"""A person's approval of a release, recorded in the environment it releases to.

An environment with ``release_approval`` (prod by default) receives each package as a copy in
its own model registry with the status ``PendingManualApproval``: the release flow's deploy
role may create copies only in that status and may not change a status. A person approves the
copy there, in that account (SageMaker Studio, or ``aws sagemaker update-model-package
--model-approval-status Approved``), or rejects it (``Rejected``). Nothing in the model-build
account can write that status: invoking or changing the release functions does not approve
anything.

The approval also unlocks the model for serving. The endpoint's role in such an environment
reads a promoted model archive only when the archive carries the tag :data:`APPROVAL_TAG`
(an IAM condition on ``s3:ExistingObjectTag``), and only the environment's own approval
recorder sets it: a Lambda function started by the registry's approval event
(:func:`record_handler`), which checks that the archive is the one the approved package
recorded (its ``model_data_sha256``) and tags that very object version. The deploy role may
neither tag objects nor write objects carrying the tag. So a package that nobody approved in
the environment cannot serve there, whatever the release functions do: the endpoint could not
read its model.

The release flow waits for the decision (:func:`approval_state`, polled through the deploy
role): approved once the status is Approved and the archive is tagged; rejected; or expired
when nobody decided within the approval timeout.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlparse

from .promote import MODEL_DATA_SHA256_KEY
from .targets import Environment

logger = logging.getLogger(__name__)

#: The S3 tag (key and value) on a model archive approved for serving in its environment.
APPROVAL_TAG = "mlops-release-approved"
APPROVAL_TAG_VALUE = "true"

ApprovalDecision = Literal["approved", "pending", "rejected", "expired"]


@dataclass(frozen=True)
class ApprovalState:
    """Where a person's decision on a copy stands, with what people should read."""

    state: ApprovalDecision
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _archive(package: dict[str, Any]) -> tuple[str, str]:
    containers = package.get("InferenceSpecification", {}).get("Containers", [])
    url = containers[0].get("ModelDataUrl") if len(containers) == 1 else None
    parsed = urlparse(url or "")
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise ValueError(
            f"{package.get('ModelPackageArn')} must have exactly one container whose "
            f"ModelDataUrl is an s3://bucket/key archive; got {url!r}"
        )
    return parsed.netloc, parsed.path.lstrip("/")


def is_recorded(s3: Any, package: dict[str, Any]) -> bool:
    """Whether the package's model archive (its current version) carries the approval tag."""
    bucket, key = _archive(package)
    tags = s3.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
    return {"Key": APPROVAL_TAG, "Value": APPROVAL_TAG_VALUE} in tags


def approval_state(
    env: Environment, model_package_arn: str, *, requested_at: str, now: str, timeout_seconds: int
) -> ApprovalState:
    """The decision on ``model_package_arn`` in ``env``, read through its deploy role.

    ``requested_at`` and ``now`` are ISO times of the release flow's own clock (when it asked,
    and now); the request expires ``timeout_seconds`` after it was made.
    """
    name = env.ref.environment
    package = env.client("sagemaker").describe_model_package(ModelPackageName=model_package_arn)
    status = package.get("ModelApprovalStatus")
    if status == "Rejected":
        why = package.get("ApprovalDescription") or "no reason given"
        return ApprovalState("rejected", f"{model_package_arn} was rejected in {name} ({why})")
    if status == "Approved":
        if is_recorded(env.client("s3"), package):
            return ApprovalState("approved", f"{model_package_arn} was approved in {name}")
        detail = (
            f"{model_package_arn} is approved in {name}; waiting for its approval recorder to "
            "mark the model archive for serving"
        )
    else:
        detail = f"{model_package_arn} waits for a person's approval in {name} ({status})"
    deadline = _time(requested_at) + timedelta(seconds=timeout_seconds)
    if _time(now) >= deadline:
        return ApprovalState(
            "expired", f"nobody approved {model_package_arn} in {name} by {deadline.isoformat()}"
        )
    return ApprovalState("pending", detail)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def require_recorded(env: Environment, package: dict[str, Any]) -> None:
    """Raise unless the package's archive is approved for serving in ``env``."""
    if not is_recorded(env.client("s3"), package):
        raise ValueError(
            f"{package['ModelPackageArn']} has no recorded approval in {env.ref.environment}: "
            f"its model archive lacks the {APPROVAL_TAG} tag that the environment's approval "
            "recorder sets when a person approves the package there, so its endpoint could not "
            "read the model; approve the package in that account's model registry"
        )


# The approval recorder (runs in the environment, as its own role, on its registry's event).


def record_approval(
    sagemaker: Any, s3: Any, model_package_arn: str, *, group: str, bucket: str
) -> dict[str, str]:
    """Tag the approved package's model archive, after checking it is the recorded one."""
    package = sagemaker.describe_model_package(ModelPackageName=model_package_arn)
    problems = []
    if package.get("ModelPackageGroupName") != group:
        problems.append(f"it belongs to {package.get('ModelPackageGroupName')!r}, not {group!r}")
    if package.get("ModelApprovalStatus") != "Approved":
        problems.append(f"it is {package.get('ModelApprovalStatus')}, not Approved")
    archive_bucket, key = _archive(package)
    if archive_bucket != bucket:
        problems.append(f"its model archive is in {archive_bucket}, not in {bucket}")
    if problems:
        raise ValueError(
            f"not recording the approval of {model_package_arn}: " + "; ".join(problems)
        )
    head = s3.head_object(Bucket=bucket, Key=key)
    version = head.get("VersionId")
    pinned = {"VersionId": version} if version else {}
    expected = package.get("CustomerMetadataProperties", {}).get(MODEL_DATA_SHA256_KEY)
    if expected:
        digest = hashlib.sha256()
        body = s3.get_object(Bucket=bucket, Key=key, **pinned)["Body"]
        for chunk in iter(lambda: body.read(1024 * 1024), b""):
            digest.update(chunk)
        if f"sha256:{digest.hexdigest()}" != expected:
            raise ValueError(
                f"not recording the approval of {model_package_arn}: s3://{bucket}/{key} "
                f"({version}) is not the archive it was approved with ({expected}); promote "
                "the package again"
            )
    tags = [
        t
        for t in s3.get_object_tagging(Bucket=bucket, Key=key, **pinned).get("TagSet", [])
        if t["Key"] != APPROVAL_TAG
    ]
    tags.append({"Key": APPROVAL_TAG, "Value": APPROVAL_TAG_VALUE})
    s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tags}, **pinned)
    logger.info(
        "recorded the approval of %s on s3://%s/%s (%s)", model_package_arn, bucket, key, version
    )
    return {"model_package_arn": model_package_arn, "archive": f"s3://{bucket}/{key}"}


def record_handler(event: dict[str, Any], context: Any = None) -> dict[str, str]:
    """Lambda entry point: EventBridge's "SageMaker Model Package State Change" for an
    approval in this environment's group (``MODEL_PACKAGE_GROUP``, ``ARTIFACT_BUCKET``)."""
    import os

    import boto3

    detail = event.get("detail") or {}
    arn = detail.get("ModelPackageArn")
    if not isinstance(arn, str) or not arn:
        raise ValueError(f"expected a model package state change event; got {event!r}")
    return record_approval(
        boto3.client("sagemaker"),
        boto3.client("s3"),
        arn,
        group=os.environ["MODEL_PACKAGE_GROUP"],
        bucket=os.environ["ARTIFACT_BUCKET"],
    )
