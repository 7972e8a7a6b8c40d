"""Review and approve models in a SageMaker model package group (boto3).

The model-build pipeline registers each model that passes the quality gate as
PendingManualApproval, with its lineage in the package's metadata. A reviewer approves it
in SageMaker Studio (Models > Registered models) or here::

    python -m pipelines.sagemaker.model_registry list --group <project>-dev-models
    python -m pipelines.sagemaker.model_registry approve --group <project>-dev-models --latest \\
        --comment "AUC 0.87 on the March data; reviewed by J. Doe"

Approving emits SageMaker's "Model Package State Change" event, which deployment listens to.

Each package carries the model card ``mlcore evaluate`` wrote (``ModelCard`` in
CreateModelPackage, the register step reads it from the evaluation's
``model_package_card.json``): Studio shows it on the version's page, ``list`` prints its
status, and ``check-card`` checks such a file against what CreateModelPackage accepts::

    python -m pipelines.sagemaker.model_registry check-card out/evaluation/model_package_card.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import boto3
import botocore.session
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from botocore.validate import validate_parameters

ApprovalStatus = Literal["Approved", "Rejected", "PendingManualApproval"]
PENDING: ApprovalStatus = "PendingManualApproval"


@dataclass(frozen=True)
class ModelPackage:
    """A registered model version and the lineage the pipeline recorded with it."""

    arn: str
    version: int
    status: str
    metadata: dict[str, str]
    # The model card's content (model package card schema) and status, when it has one.
    model_card: dict[str, Any] | None = None
    model_card_status: str | None = None

    @property
    def git_commit(self) -> str | None:
        return self.metadata.get("git_commit")

    @property
    def data_fingerprint(self) -> str | None:
        return self.metadata.get("data_fingerprint")

    @property
    def metrics(self) -> dict[str, str]:
        return {
            k.removeprefix("metric_"): v
            for k, v in self.metadata.items()
            if k.startswith("metric_")
        }


def list_packages(
    client: Any, group: str, *, status: ApprovalStatus | None = None
) -> list[ModelPackage]:
    """The group's packages, newest first, optionally only those with ``status``."""
    request: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
    }
    if status:
        request["ModelApprovalStatus"] = status
    packages: list[ModelPackage] = []
    while True:
        page = client.list_model_packages(**request)
        for summary in page.get("ModelPackageSummaryList", []):
            packages.append(describe_package(client, summary["ModelPackageArn"]))
        token = page.get("NextToken")
        if not token:
            return packages
        request["NextToken"] = token


def describe_package(client: Any, arn: str) -> ModelPackage:
    described = client.describe_model_package(ModelPackageName=arn)
    card = described.get("ModelCard") or {}
    content = card.get("ModelCardContent")
    return ModelPackage(
        arn=described["ModelPackageArn"],
        version=int(described.get("ModelPackageVersion", 0)),
        status=described["ModelApprovalStatus"],
        metadata=dict(described.get("CustomerMetadataProperties", {})),
        model_card=json.loads(content) if content else None,
        model_card_status=card.get("ModelCardStatus"),
    )


# The model package card schema keeps only these of the model card's model_overview
# (ModelPackageModelCard in the SageMaker API reference).
_PACKAGE_OVERVIEW = frozenset({"model_creator", "model_artifact"})
_MAX_MATRIX = 20


def check_model_card(member: Mapping[str, Any]) -> None:
    """Check CreateModelPackage's ``ModelCard`` member before SageMaker sees it.

    The member against botocore's service model (types and required members through its
    validator; the status enum and the content's length, which the validator leaves to the
    service), and the content against the model package card schema: the SageMaker SDK's
    ``ModelCardContent`` shapes, generated from the model card JSON schema, with every key
    required to survive their round trip (the shapes drop keys they do not know), and
    ``model_overview`` limited to the package schema's two properties.

    Raises
    ------
    ValueError
        Listing every problem found.
    """
    from pydantic import ValidationError
    from sagemaker.core.shapes.model_card_shapes import ModelCardContent

    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateModelPackage").input_shape.members["ModelCard"]
    problems: list[str] = []
    try:
        validate_parameters(dict(member), shape)
    except ParamValidationError as exc:
        problems.append(str(exc))
    status = member.get("ModelCardStatus")
    allowed = shape.members["ModelCardStatus"].enum
    if status not in allowed:
        problems.append(f"ModelCardStatus {status!r} is not one of {allowed}")
    text = member.get("ModelCardContent")
    limit = shape.members["ModelCardContent"].metadata.get("max")
    if isinstance(text, str) and limit is not None and len(text) > limit:
        problems.append(f"ModelCardContent is {len(text)} characters, over the {limit} allowed")
    content: Any = None
    if isinstance(text, str):
        try:
            content = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(f"ModelCardContent is not JSON: {exc}")
    if isinstance(content, dict):
        try:
            parsed = ModelCardContent.model_validate(content)
        except ValidationError as exc:
            problems.append(f"the content breaks the model card schema: {exc}")
        else:
            kept = parsed.model_dump(mode="json", exclude_unset=True)
            problems += [
                f"the model card schema has no {path}" for path in _dropped(content, kept, "")
            ]
        extra = set(content.get("model_overview") or {}) - _PACKAGE_OVERVIEW
        if extra:
            problems.append(
                f"a model package card's model_overview holds only {sorted(_PACKAGE_OVERVIEW)}, "
                f"not {sorted(extra)}"
            )
        problems += _oversized_matrices(content)
    if problems:
        raise ValueError("the model card would be refused: " + "; ".join(problems))


def _dropped(given: Any, kept: Any, path: str) -> list[str]:
    """Paths in ``given`` that the schema's round trip did not keep."""
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            return [path or "content"]
        return [
            problem
            for key, value in given.items()
            for problem in (
                [f"{path}.{key}".lstrip(".")]
                if key not in kept
                else _dropped(value, kept[key], f"{path}.{key}")
            )
        ]
    if isinstance(given, list) and isinstance(kept, list):
        return [
            problem
            for index, (a, b) in enumerate(zip(given, kept, strict=False))
            for problem in _dropped(a, b, f"{path}[{index}]")
        ]
    return []


def _oversized_matrices(content: dict[str, Any]) -> list[str]:
    # The JSON schema's matrix_metric holds at most 20 rows of at most 20 numbers; the
    # SDK's shapes do not carry that limit.
    problems = []
    for evaluation in content.get("evaluation_details") or []:
        for group in evaluation.get("metric_groups") or []:
            for metric in group.get("metric_data") or []:
                value = metric.get("value")
                if metric.get("type") == "matrix" and (
                    len(value) > _MAX_MATRIX or any(len(row) > _MAX_MATRIX for row in value)
                ):
                    problems.append(f"the matrix {metric.get('name')!r} exceeds 20 x 20")
    return problems


def latest_pending(client: Any, group: str) -> ModelPackage:
    """The newest package waiting for review; an error names the group when there is none."""
    pending = list_packages(client, group, status=PENDING)
    if not pending:
        raise ValueError(f"no model package in {group} is waiting for approval ({PENDING})")
    return pending[0]


def set_approval(client: Any, arn: str, status: ApprovalStatus, *, comment: str) -> ModelPackage:
    """Approve or reject a package. A comment is required: it is the review's audit trail."""
    if status == PENDING:
        raise ValueError(f"set a package to Approved or Rejected, not {PENDING}")
    if not comment.strip():
        raise ValueError("give a comment saying why (it is kept with the model package)")
    client.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus=status, ApprovalDescription=comment
    )
    return describe_package(client, arn)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.sagemaker.model_registry",
        description="List, approve or reject registered models.",
    )
    parser.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="list a group's packages with their lineage and metrics")
    listing.add_argument(
        "--group", required=True, help="model package group, e.g. <project>-dev-models"
    )
    listing.add_argument("--status", choices=["Approved", "Rejected", PENDING])
    check = sub.add_parser(
        "check-card", help="check a model_package_card.json against what SageMaker accepts"
    )
    check.add_argument("file", help="model_package_card.json written by mlcore evaluate")
    for command in ("approve", "reject"):
        decide = sub.add_parser(command, help=f"{command} a package")
        decide.add_argument(
            "--group", required=True, help="model package group, e.g. <project>-dev-models"
        )
        which = decide.add_mutually_exclusive_group(required=True)
        which.add_argument("--package-arn", help="the package to decide on")
        which.add_argument("--latest", action="store_true", help="the newest pending package")
        decide.add_argument("--comment", required=True, help="why (kept with the package)")
    return parser


def main(argv: Sequence[str] | None = None, *, client: Any | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check-card":
            check_model_card(json.loads(Path(args.file).read_text()))
            print(f"{args.file}: a valid ModelCard for CreateModelPackage")
            return 0
        client = client or boto3.Session(region_name=args.region).client("sagemaker")
        if args.command == "list":
            for package in list_packages(client, args.group, status=args.status):
                print(
                    json.dumps(
                        {
                            "arn": package.arn,
                            "version": package.version,
                            "status": package.status,
                            "model_card": package.model_card_status or "none",
                            **package.metadata,
                        }
                    )
                )
            return 0
        arn = args.package_arn or latest_pending(client, args.group).arn
        status: ApprovalStatus = "Approved" if args.command == "approve" else "Rejected"
        package = set_approval(client, arn, status, comment=args.comment)
        print(f"{package.arn}: {package.status}")
        return 0
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"AWS error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
