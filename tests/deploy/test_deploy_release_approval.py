"""Prod's approval cannot be skipped from dev: only IAM in prod decides, so it is evaluated.

The release functions run in dev and act in prod through prod's deploy role. Whatever they
are made to do (invoked directly, or with their code changed), that role cannot approve a
package in prod's registry, cannot mark a model archive approved, and prod's endpoint cannot
read an archive nobody approved there. moto does not enforce IAM, so these are decided by an
IAM policy simulator over the synthesised four-account app (tests/support/mlops_testing); the
behaviour of the flow around it runs in moto in test_deploy_release.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlops_testing.cloudformation import CloudAssembly, ResolvedStack, Role
from mlops_testing.iam import Decision, IamSimulator, Request

from pipelines.deploy.approval import APPROVAL_TAG, APPROVAL_TAG_VALUE

pytestmark = pytest.mark.xdist_group("cdk_synth")

ACCOUNTS = {"staging": "222222222222", "prod": "333333333333"}
REGION = "eu-west-1"
TLS = {"aws:SecureTransport": "true"}


@pytest.fixture(scope="module")
def assembly(four_accounts: Any) -> CloudAssembly:
    return CloudAssembly.load(four_accounts.outdir)


@pytest.fixture(scope="module")
def simulator() -> IamSimulator:
    return IamSimulator()


class _Environment:
    def __init__(self, assembly: CloudAssembly, name: str) -> None:
        self.assembly = assembly
        self.release_state = assembly.stack(f"{name.capitalize()}-ReleaseState")
        self.serving = assembly.stack(f"{name.capitalize()}-Serving")
        self.deploy_role = self.release_state.role("ReleaseAccessDeployRole")
        self.endpoint_role = self.serving.role("EndpointExecutionRole")
        descriptor = self._descriptor(self.release_state, name)
        self.bucket = descriptor["artifact_bucket"]
        group = descriptor["model_package_group"]
        self.package = f"arn:aws:sagemaker:{REGION}:{ACCOUNTS[name]}:model-package/{group}/3"
        self.archive = f"arn:aws:s3:::{self.bucket}/promoted/acme-dev-models/3/model/model.tar.gz"
        # A stage with a network (prod): its functions reach S3 through its VPC's S3 endpoint,
        # and its buckets admit nothing else (cdk.artifact_store.deny_outside_network).
        build = assembly.stack(f"{name.capitalize()}-ModelBuild")
        endpoints = [
            logical_id
            for logical_id, resource in build.template["Resources"].items()
            if resource["Type"] == "AWS::EC2::VPCEndpoint"
            and logical_id.startswith("NetworkS3Endpoint")
        ]
        self.from_vpc = {"aws:SourceVpce": build.ref(endpoints[0])} if endpoints else {}

    @staticmethod
    def _descriptor(stack: ResolvedStack, name: str) -> dict[str, Any]:
        (parameter,) = [
            p["Properties"]["Value"]
            for p in stack.resources("AWS::SSM::Parameter").values()
            if p["Properties"]["Name"] == f"/mlops/acme/{name}/release-target"
        ]
        return dict(json.loads(parameter))

    def on_archive(self, role: Role, action: str, **context: Any) -> Request:
        return Request.by(
            role,
            action,
            self.archive,
            context={**TLS, **context},
            resource_policy=self.assembly.resource_policy(self.archive),
        )


def _allowed(simulator: IamSimulator, requests: list[Request]) -> list[bool]:
    decisions: list[Decision] = simulator.decide(requests)
    return [d.allowed for d in decisions]


def test_prods_deploy_role_can_register_a_copy_only_as_waiting_for_approval(
    assembly: CloudAssembly, simulator: IamSimulator
) -> None:
    prod = _Environment(assembly, "prod")
    requests = [
        Request.by(
            prod.deploy_role,
            "sagemaker:CreateModelPackage",
            prod.package,
            context={"sagemaker:ModelApprovalStatus": status},
        )
        for status in ("PendingManualApproval", "Approved")
    ]
    # Without a status in the request the condition key is absent: refused too.
    requests.append(Request.by(prod.deploy_role, "sagemaker:CreateModelPackage", prod.package))
    assert _allowed(simulator, requests) == [True, False, False]


def test_prods_deploy_role_can_neither_approve_a_package_nor_mark_an_archive_approved(
    assembly: CloudAssembly, simulator: IamSimulator
) -> None:
    prod = _Environment(assembly, "prod")
    role = prod.deploy_role
    requests = [
        Request.by(
            role,
            "sagemaker:UpdateModelPackage",
            prod.package,
            context={"sagemaker:ModelApprovalStatus": "Approved"},
        ),
        prod.on_archive(role, "s3:PutObjectTagging"),
        prod.on_archive(role, "s3:PutObjectVersionTagging"),
        prod.on_archive(role, "s3:PutObject", **{"s3:RequestObjectTagKeys": [APPROVAL_TAG]}),
        # What promotion needs still works: writing the copied archive, untagged.
        prod.on_archive(role, "s3:PutObject"),
        prod.on_archive(role, "s3:GetObjectTagging"),
    ]
    assert _allowed(simulator, requests) == [False, False, False, False, True, True]


def test_prods_endpoint_reads_only_archives_approved_in_prod(
    assembly: CloudAssembly, simulator: IamSimulator
) -> None:
    prod = _Environment(assembly, "prod")
    tagged = {f"s3:ExistingObjectTag/{APPROVAL_TAG}": APPROVAL_TAG_VALUE}
    forged = {f"s3:ExistingObjectTag/{APPROVAL_TAG}": "yes"}
    requests = [
        prod.on_archive(prod.endpoint_role, "s3:GetObject"),
        prod.on_archive(prod.endpoint_role, "s3:GetObject", **forged),
        prod.on_archive(prod.endpoint_role, "s3:GetObject", **tagged),
    ]
    assert _allowed(simulator, requests) == [False, False, True]


def test_prods_approvers_and_its_approval_recorder_can_do_their_part(
    assembly: CloudAssembly, simulator: IamSimulator
) -> None:
    prod = _Environment(assembly, "prod")
    (policy,) = prod.release_state.resources("AWS::IAM::ManagedPolicy").values()
    assert policy["Properties"]["ManagedPolicyName"] == "acme-prod-release-approver"
    approver = Role(
        logical_id="Approver",
        arn="arn:aws:iam::333333333333:role/approver",
        name="approver",
        trust_policy={},
        policies=(policy["Properties"]["PolicyDocument"],),
        managed_policy_arns=(),
        permissions_boundary=None,
    )
    recorder = prod.release_state.role("ApprovalRecorderFunctionRole")
    requests = [
        Request.by(
            approver,
            "sagemaker:UpdateModelPackage",
            prod.package,
            context={"sagemaker:ModelApprovalStatus": "Approved"},
        ),
        prod.on_archive(recorder, "s3:PutObjectVersionTagging", **prod.from_vpc),
        prod.on_archive(recorder, "s3:GetObjectVersion", **prod.from_vpc),
        # The approver cannot mark archives themselves: that is the recorder's check.
        prod.on_archive(approver, "s3:PutObjectTagging", **prod.from_vpc),
        # The recorder runs in prod's VPC: the same call from anywhere else is refused.
        prod.on_archive(recorder, "s3:GetObjectVersion"),
    ]
    assert prod.from_vpc, "prod has a network in cdk.json"
    assert _allowed(simulator, requests) == [True, True, True, False, False]


def test_staging_releases_without_a_person(
    assembly: CloudAssembly, simulator: IamSimulator
) -> None:
    staging = _Environment(assembly, "staging")
    requests = [
        Request.by(
            staging.deploy_role,
            "sagemaker:CreateModelPackage",
            staging.package,
            context={"sagemaker:ModelApprovalStatus": "Approved"},
        ),
        staging.on_archive(staging.endpoint_role, "s3:GetObject"),
    ]
    assert _allowed(simulator, requests) == [True, True]
    assert staging.release_state.resources("AWS::IAM::ManagedPolicy") == {}
