"""Review and approve models in a SageMaker model package group (boto3).

The model-build pipeline registers each model that passes the quality gate as
PendingManualApproval, with its lineage in the package's metadata. A reviewer approves it
in SageMaker Studio (Models > Registered models) or here::

    python -m pipelines.sagemaker.model_registry list --group <project>-dev-models
    python -m pipelines.sagemaker.model_registry approve --group <project>-dev-models --latest \\
        --comment "AUC 0.87 on the March data; reviewed by J. Doe"

Approving emits SageMaker's "Model Package State Change" event, which deployment listens to.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import boto3
from botocore.exceptions import BotoCoreError, ClientError

ApprovalStatus = Literal["Approved", "Rejected", "PendingManualApproval"]
PENDING = "PendingManualApproval"


@dataclass(frozen=True)
class ModelPackage:
    """A registered model version and the lineage the pipeline recorded with it."""

    arn: str
    version: int
    status: str
    metadata: dict[str, str]

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
    return ModelPackage(
        arn=described["ModelPackageArn"],
        version=int(described.get("ModelPackageVersion", 0)),
        status=described["ModelApprovalStatus"],
        metadata=dict(described.get("CustomerMetadataProperties", {})),
    )


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
        client = client or boto3.Session(region_name=args.region).client("sagemaker")
        if args.command == "list":
            for package in list_packages(client, args.group, status=args.status):
                print(
                    json.dumps(
                        {
                            "arn": package.arn,
                            "version": package.version,
                            "status": package.status,
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
