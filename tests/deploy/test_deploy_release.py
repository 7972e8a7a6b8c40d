"""The release across accounts: the synthesised state machine run against moto.

The four-account app (tests/fixtures) gives the state machine as CDK synthesised it; a small
ASL runner (release_asl.py) executes it, dispatching its Lambda tasks to the real handlers in
pipelines/deploy. Every handler call opens its environment by assuming that environment's
deploy role through moto's STS, and moto then acts in that role's account: dev, staging and
prod are three accounts, as in the synthesised config.

What moto cannot play is replaced, and only that:
- CloudFormation: moto's UpdateStack does not re-resolve ``AWS::SSM::Parameter::Value``
  parameters, and moto has no SageMaker UpdateEndpoint. ``ServingStackDouble`` plays the
  serving stack: on UpdateStack it resolves the pointer from moto's SSM and rebuilds the
  model, endpoint config and endpoint in moto's SageMaker (delete and create), or plays an
  alarm-driven rollback (UPDATE_ROLLBACK_COMPLETE) that leaves the endpoint as it was. What
  the double hides, CloudFormation acting as the serving change role (every handler
  permission of every resource a release changes) and what UpdateStack asks of the deploy
  role, is checked in test_deploy_release_permissions.py.
- SageMaker runtime: moto's InvokeEndpoint answers from a queue that moto's own API
  (``/moto-api/static/sagemaker/endpoint-results``) fills; the tests fill it per account.
- The approvers of a release to prod act in prod's own registry while the flow waits
  (``World.approvals``): a person's decision, and the approval recorder that EventBridge would
  start for it there. moto does not enforce IAM, so that the release functions cannot approve
  (and that an unapproved archive cannot be served) is checked with an IAM evaluation in
  test_deploy_release_approval.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from moto import mock_aws
from release_asl import Execution, resolved_definition, run

from cdk.serving import release_access as names
from pipelines.deploy import approval, promote, release, smoke
from pipelines.deploy.targets import NO_MODEL, assume_role_session

pytestmark = pytest.mark.xdist_group("cdk_synth")

PROJECT = "acme"
REGION = "eu-west-1"
ACCOUNTS = {"dev": "111111111111", "staging": "222222222222", "prod": "333333333333"}
STACKS = {"dev": "Dev-Serving", "staging": "Staging-Serving", "prod": "Prod-Serving"}
REPOSITORY = "cdk-hnb659fds-container-assets-{account}-eu-west-1"
# One image manifest pushed to every account's repository: the same digest everywhere, as
# when the CI/CD pipeline publishes one built image to each environment.
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 7,
            "digest": "sha256:" + "a" * 64,
        },
        "layers": [],
    }
)


def _session(account: str) -> Any:
    return assume_role_session(f"arn:aws:iam::{account}:role/setup", REGION)


@dataclass
class ServingStackDouble:
    """The serving stack of one account, as CloudFormation would update it (see module doc)."""

    environment: str
    session: Any
    outcome: str = "complete"  # complete | alarm_rollback | refuse
    resolved: tuple[str, str] = (NO_MODEL, NO_MODEL)
    statuses: list[str] = field(default_factory=lambda: ["UPDATE_COMPLETE"])
    updates: list[dict[str, Any]] = field(default_factory=list)
    models: int = 0

    @property
    def exceptions(self) -> Any:
        return boto3.client("cloudformation", region_name=REGION).exceptions

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        assert StackName == STACKS[self.environment]
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        stack = {
            "StackName": StackName,
            "StackStatus": status,
            "Parameters": [
                {"ParameterKey": "ModelPackageArn", "ParameterValue": "/x"},
                {"ParameterKey": "ModelSha256", "ParameterValue": "/y"},
            ],
        }
        if status == "UPDATE_ROLLBACK_COMPLETE":
            stack["StackStatusReason"] = f"alarm {PROJECT}-{self.environment}-5xx-errors in ALARM"
        return {"Stacks": [stack]}

    def update_stack(self, **request: Any) -> dict[str, Any]:
        self.updates.append(request)
        # The deploy role may update the stack only while passing the serving change role.
        assert request["RoleARN"] == (
            f"arn:aws:iam::{ACCOUNTS[self.environment]}:role/"
            f"{names.change_role_name(PROJECT, self.environment)}"
        )
        assert request["UsePreviousTemplate"] is True
        if self.outcome == "refuse":
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationError",
                        "Message": "Stack is in UPDATE_ROLLBACK_FAILED",
                    }
                },
                "UpdateStack",
            )
        ssm = self.session.client("ssm")
        pointer = tuple(
            ssm.get_parameter(Name=n)["Parameter"]["Value"]
            for n in (
                names.model_package_parameter_name(PROJECT, self.environment),
                names.model_sha256_parameter_name(PROJECT, self.environment),
            )
        )
        if pointer == self.resolved:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationError",
                        "Message": "No updates are to be performed.",
                    }
                },
                "UpdateStack",
            )
        if self.outcome == "alarm_rollback":
            self.statuses = [
                "UPDATE_IN_PROGRESS",
                "UPDATE_ROLLBACK_IN_PROGRESS",
                "UPDATE_ROLLBACK_COMPLETE",
            ]
            return {"StackId": "id"}
        self._serve(pointer[0], pointer[1])
        self.resolved = pointer  # type: ignore[assignment]
        self.statuses = ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"]
        return {"StackId": "id"}

    def _serve(self, arn: str, sha: str) -> None:
        sagemaker = self.session.client("sagemaker")
        endpoint = f"{PROJECT}-{self.environment}"
        existing = [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]]
        if endpoint in existing:
            sagemaker.delete_endpoint(EndpointName=endpoint)
        if arn == NO_MODEL:
            return
        self.models += 1
        model = f"model-{self.models}"
        sagemaker.create_model(
            ModelName=model,
            Containers=[{"ModelPackageName": arn, "Environment": {"MLCORE_MODEL_SHA256": sha}}],
            ExecutionRoleArn=f"arn:aws:iam::{ACCOUNTS[self.environment]}:role/endpoint",
        )
        sagemaker.create_endpoint_config(
            EndpointConfigName=f"config-{self.models}",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": model,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
        sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=f"config-{self.models}")


class _Session:
    """A moto session in one account whose CloudFormation is that account's stack double."""

    def __init__(self, session: Any, stack: ServingStackDouble) -> None:
        self._session, self._stack = session, stack

    def client(self, service: str) -> Any:
        return self._stack if service == "cloudformation" else self._session.client(service)


@dataclass
class World:
    stacks: dict[str, ServingStackDouble]
    assumed: list[str] = field(default_factory=list)
    # A prod approver's decisions, one per check of a pending copy: (status, why), or None
    # when nobody decides by then. Once they run out, the approver approves.
    approvals: list[tuple[str, str] | None] = field(default_factory=list)
    # Status checks of the serving stack that fail (e.g. throttled), per environment.
    failing_status_checks: dict[str, int] = field(default_factory=dict)

    def decide(self, environment: str, copy_arn: str) -> None:
        """A person in ``environment``'s account decides on the copy, as approvers do there;
        for an approval, EventBridge then starts that account's approval recorder."""
        session = _session(ACCOUNTS[environment])
        sagemaker = session.client("sagemaker")
        described = sagemaker.describe_model_package(ModelPackageName=copy_arn)
        if described["ModelApprovalStatus"] != "PendingManualApproval":
            return
        decision = self.approvals.pop(0) if self.approvals else ("Approved", "looks right")
        if decision is None:
            return
        status, why = decision
        # moto 5.2's UpdateModelPackage drops the metadata it is not given; SageMaker keeps it.
        sagemaker.update_model_package(
            ModelPackageArn=copy_arn,
            ModelApprovalStatus=status,
            ApprovalDescription=why,
            CustomerMetadataProperties=described["CustomerMetadataProperties"],
        )
        if status == "Approved":
            approval.record_approval(
                sagemaker,
                session.client("s3"),
                copy_arn,
                group=f"{PROJECT}-{environment}-models",
                bucket=f"{PROJECT}-{environment}-artifacts",
            )

    def sessions(self, role_arn: str | None, region: str | None) -> Any:
        assert role_arn is not None, "every release action goes through a deploy role"
        self.assumed.append(role_arn)
        account = role_arn.split(":")[4]
        environment = next(e for e, a in ACCOUNTS.items() if a == account)
        assert role_arn.endswith(f":role/{names.deploy_role_name(PROJECT, environment)}")
        return _Session(assume_role_session(role_arn, region), self.stacks[environment])

    def pointer(self, environment: str) -> str:
        ssm = _session(ACCOUNTS[environment]).client("ssm")
        name = names.model_package_parameter_name(PROJECT, environment)
        return str(ssm.get_parameter(Name=name)["Parameter"]["Value"])

    def serving(self, environment: str) -> str:
        env = release.Environment.open(self._ref(environment), self.sessions)
        return release.serving(env).model_package_arn

    def _ref(self, environment: str) -> release.TargetRef:
        return release.TargetRef(
            environment,
            f"arn:aws:iam::{ACCOUNTS[environment]}:role/{names.deploy_role_name(PROJECT, environment)}",
            REGION,
            names.descriptor_parameter_name(PROJECT, environment),
        )

    def answer_smoke(self, environment: str, predictions: int | None) -> None:
        body = (
            {"predictions": [{"prediction": 1, "score": 0.8}] * predictions}
            if predictions is not None
            else {"result": "no predictions"}
        )
        requests.post(
            "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
            json={
                "account_id": ACCOUNTS[environment],
                "region": REGION,
                "results": [{"Body": json.dumps(body), "ContentType": "application/json"}],
            },
            timeout=5,
        )


def _sample_request(version: str) -> dict[str, Any]:
    # Any dataset, any column names (contract #6): five held-out rows of scikit-learn's wine
    # data, other rows for each model version (as each training run picks its own).
    from sklearn.datasets import load_wine

    start = 5 * int(version.lstrip("v"))
    frame = load_wine(as_frame=True).frame.drop(columns="target").iloc[start : start + 5]
    return {"instances": json.loads(frame.to_json(orient="records"))}


SAMPLE = _sample_request("v1")


def _model_archive(content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("model.joblib")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _register(version: str, *, sha: str | None = "present", approved: bool = True) -> str:
    """Train-and-register, as the model-build pipeline leaves it in dev's account."""
    session = _session(ACCOUNTS["dev"])
    s3, sagemaker = session.client("s3"), session.client("sagemaker")
    bucket = f"{PROJECT}-dev-artifacts"
    run_prefix = f"model-build/exec-{version}"
    archive = _model_archive(f"model {version}".encode())
    s3.put_object(Bucket=bucket, Key=f"{run_prefix}/model/job/output/model.tar.gz", Body=archive)
    s3.put_object(Bucket=bucket, Key=f"{run_prefix}/evaluation/evaluation.json", Body=b"{}")
    s3.put_object(
        Bucket=bucket,
        Key=f"{run_prefix}/evaluation/sample_request.json",
        Body=json.dumps(_sample_request(version)).encode(),
    )
    metadata = {"git_commit": version}
    if sha is not None:
        metadata["model_sha256"] = (
            "sha256:" + hashlib.sha256(f"model {version}".encode()).hexdigest()
        )
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=f"{PROJECT}-dev-models",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": f"{ACCOUNTS['dev']}.dkr.ecr.{REGION}.amazonaws.com/"
                    f"{REPOSITORY.format(account=ACCOUNTS['dev'])}:abc123",
                    "ModelDataUrl": f"s3://{bucket}/{run_prefix}/model/job/output/model.tar.gz",
                    "Environment": {"SAGEMAKER_REGION": REGION},
                }
            ],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelMetrics={
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://{bucket}/{run_prefix}/evaluation/evaluation.json",
                }
            }
        },
        CustomerMetadataProperties=metadata,
        ModelApprovalStatus="Approved" if approved else "PendingManualApproval",
    )["ModelPackageArn"]
    return str(arn)


@pytest.fixture(scope="module")
def definition(four_accounts: Any) -> dict[str, Any]:
    from aws_cdk.assertions import Template

    template = Template.from_stack(four_accounts.mlops.stages["dev"].serving_stack)
    resolved = resolved_definition(template)
    # The runner stands in for the release account: the role ARNs in the synthesised
    # definition must name each environment's own account.
    text = json.dumps(resolved)
    for environment, account in ACCOUNTS.items():
        assert f"arn:aws:iam::{account}:role/{names.deploy_role_name(PROJECT, environment)}" in text
    return resolved


@pytest.fixture(scope="module")
def descriptors(four_accounts: Any) -> dict[str, dict[str, Any]]:
    """Each environment's release-target descriptor as its ReleaseState stack writes it."""
    from mlops_testing.cloudformation import CloudAssembly

    assembly = CloudAssembly.load(four_accounts.outdir)
    found = {}
    for environment in ACCOUNTS:
        stack = assembly.stack(f"{environment.capitalize()}-ReleaseState")
        (parameter,) = [
            p
            for p in stack.resources("AWS::SSM::Parameter").values()
            if p["Properties"]["Name"] == names.descriptor_parameter_name(PROJECT, environment)
        ]
        found[environment] = json.loads(parameter["Properties"]["Value"])
    # cdk.json: a person approves releases to prod, nowhere else.
    assert [e for e, d in found.items() if d["release_approval"]] == ["prod"]
    return found


@pytest.fixture
def world(
    monkeypatch: pytest.MonkeyPatch, descriptors: dict[str, dict[str, Any]]
) -> Iterator[World]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        stacks = {}
        for environment, account in ACCOUNTS.items():
            session = _session(account)
            bucket = f"{PROJECT}-{environment}-artifacts"
            s3 = session.client("s3")
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            repository = REPOSITORY.format(account=account)
            ecr = session.client("ecr")
            ecr.create_repository(repositoryName=repository)
            ecr.put_image(repositoryName=repository, imageManifest=MANIFEST, imageTag="abc123")
            session.client("sagemaker").create_model_package_group(
                ModelPackageGroupName=f"{PROJECT}-{environment}-models"
            )
            ssm = session.client("ssm")
            for name in (
                names.model_package_parameter_name(PROJECT, environment),
                names.model_sha256_parameter_name(PROJECT, environment),
            ):
                ssm.put_parameter(Name=name, Value=NO_MODEL, Type="String")
            # What the environment's ReleaseState stack writes, with the bucket made here.
            ssm.put_parameter(
                Name=names.descriptor_parameter_name(PROJECT, environment),
                Type="String",
                Value=json.dumps({**descriptors[environment], "artifact_bucket": bucket}),
            )
            stacks[environment] = ServingStackDouble(environment, session)
        yield World(stacks=stacks)


def _release(
    world: World, definition: dict[str, Any], arn: str, *, approval_wait_days: float = 0.01
) -> Execution:
    def invoke(function: str, payload: Any) -> Any:
        if function.startswith("ReleaseDeployFunction"):
            environment = payload["target"]["environment"]
            if payload["action"] == "approval":
                world.decide(environment, payload["model_package_arn"])
            if payload["action"] == "status" and world.failing_status_checks.get(environment):
                world.failing_status_checks[environment] -= 1
                raise ClientError(
                    {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}},
                    "DescribeStacks",
                )
            return release.handler(payload, sessions=world.sessions)
        assert function.startswith("ReleaseSmokeTestFunction"), function
        return smoke.handler(payload, sessions=world.sessions)

    def advance(state: str, seconds: int) -> int:
        # How long people take to decide; other waits take their own time.
        return int(approval_wait_days * 86400) if state.endswith("Approval") else seconds

    event = {"detail": {"ModelPackageArn": arn, "ModelApprovalStatus": "Approved"}}
    return run(definition, event, invoke=invoke, advance=advance)


def _released(world: World, definition: dict[str, Any], arn: str) -> Execution:
    for environment in ACCOUNTS:
        world.answer_smoke(environment, len(SAMPLE["instances"]))
    execution = _release(world, definition, arn)
    assert execution.status == "SUCCEEDED", (execution.path[-8:], execution.messages[-1:])
    return execution


def _copy_in(environment: str, source_arn: str) -> dict[str, Any]:
    sagemaker = _session(ACCOUNTS[environment]).client("sagemaker")
    for summary in sagemaker.list_model_packages(
        ModelPackageGroupName=f"{PROJECT}-{environment}-models"
    )["ModelPackageSummaryList"]:
        described = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        if described["CustomerMetadataProperties"].get(promote.SOURCE_PACKAGE_KEY) == source_arn:
            return dict(described)
    raise AssertionError(f"no copy of {source_arn} in {environment}")


# The whole way: approve in dev, promote, staging, smoke test, approve in prod, prod.


def test_an_approved_package_reaches_dev_staging_and_prod_each_from_its_own_copy(
    world: World, definition: dict[str, Any]
) -> None:
    arn = _register("v1")
    execution = _released(world, definition, arn)
    assert world.pointer("dev") == world.serving("dev") == arn
    for environment in ("staging", "prod"):
        copy = _copy_in(environment, arn)
        assert copy["ModelPackageArn"].split(":")[4] == ACCOUNTS[environment]
        assert world.pointer(environment) == world.serving(environment) == copy["ModelPackageArn"]
    assert execution.path.index("ApproveProd") > execution.path.index("SmokeTestStaging")
    assert "Released" in execution.messages[-1]["Message"]


def test_the_prod_copy_waits_for_a_person_in_prod_and_serves_once_they_approve(
    world: World, definition: dict[str, Any]
) -> None:
    arn = _register("v1")
    # Nobody decides for two checks, then a person approves in prod's own registry.
    world.approvals = [None, None, ("Approved", "checked the evaluation")]
    execution = _released(world, definition, arn)
    copy = _copy_in("prod", arn)
    assert copy["ModelApprovalStatus"] == "Approved"
    assert copy["ApprovalDescription"] == "checked the evaluation"
    assert execution.path.count("CheckProdApproval") == 3
    assert execution.path.index("CheckProdApproval") < execution.path.index("DeployProd")
    (request,) = [m for m in execution.messages if m.get("Subject") == "Approve release to prod"]
    assert request["Message"]["model_package_arn"] == copy["ModelPackageArn"]
    # Staging needs no one: its copy is Approved when it is made.
    assert "CheckStagingApproval" not in execution.path
    assert _copy_in("staging", arn)["ModelApprovalStatus"] == "Approved"
    # The archive prod serves carries the approval its recorder wrote.
    bucket, key = copy["InferenceSpecification"]["Containers"][0]["ModelDataUrl"][5:].split("/", 1)
    tags = _session(ACCOUNTS["prod"]).client("s3").get_object_tagging(Bucket=bucket, Key=key)
    assert {"Key": approval.APPROVAL_TAG, "Value": "true"} in tags["TagSet"]


def test_a_prod_release_without_approval_is_refused_and_prod_is_untouched(
    world: World,
) -> None:
    # Anyone who can invoke (or change) dev's release function calls it for prod directly.
    arn = _register("v1")
    target = {
        "environment": "prod",
        "role_arn": world._ref("prod").role_arn,
        "region": REGION,
        "descriptor_parameter": names.descriptor_parameter_name(PROJECT, "prod"),
    }
    source = {**target, "environment": "dev", "role_arn": world._ref("dev").role_arn}
    source["descriptor_parameter"] = names.descriptor_parameter_name(PROJECT, "dev")
    promoted = release.handler(
        {"action": "promote", "source": source, "target": target, "model_package_arn": arn},
        sessions=world.sessions,
    )
    # The copy it could make waits for a person in prod ...
    assert promoted["approval_status"] == "PendingManualApproval"
    for package in (promoted["model_package_arn"], arn):
        # ... and neither it nor dev's package is deployed there.
        with pytest.raises(ValueError, match=r"not Approved in prod|not in prod's registry"):
            release.handler(
                {"action": "deploy", "target": target, "model_package_arn": package},
                sessions=world.sessions,
            )
    assert world.pointer("prod") == world.serving("prod") == NO_MODEL
    assert world.stacks["prod"].updates == []


def test_an_approval_without_its_recorded_archive_is_not_deployed(world: World) -> None:
    # Approved in the registry, but the recorder did not mark the archive (it failed, or the
    # archive was replaced): prod's endpoint could not read the model, so nothing is deployed.
    arn = _register("v1")
    prod = release.Environment.open(world._ref("prod"), world.sessions)
    dev = release.Environment.open(world._ref("dev"), world.sessions)
    copy = promote.promote(source=dev, target=prod, model_package_arn=arn).model_package_arn
    described = prod.client("sagemaker").describe_model_package(ModelPackageName=copy)
    prod.client("sagemaker").update_model_package(
        ModelPackageArn=copy,
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties=described["CustomerMetadataProperties"],
    )
    with pytest.raises(ValueError, match="no recorded approval in prod"):
        release.deploy(prod, copy)
    assert world.pointer("prod") == NO_MODEL and world.stacks["prod"].updates == []


def test_the_recorder_refuses_an_archive_that_is_not_the_one_approved(world: World) -> None:
    arn = _register("v1")
    prod = release.Environment.open(world._ref("prod"), world.sessions)
    dev = release.Environment.open(world._ref("dev"), world.sessions)
    copy = promote.promote(source=dev, target=prod, model_package_arn=arn).model_package_arn
    sagemaker, s3 = prod.client("sagemaker"), prod.client("s3")
    described = sagemaker.describe_model_package(ModelPackageName=copy)
    url = described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    bucket, key = url[5:].split("/", 1)
    s3.put_object(Bucket=bucket, Key=key, Body=_model_archive(b"something else"))
    sagemaker.update_model_package(
        ModelPackageArn=copy,
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties=described["CustomerMetadataProperties"],
    )
    with pytest.raises(ValueError, match="is not the archive it was approved with"):
        approval.record_approval(
            sagemaker, s3, copy, group=prod.descriptor.model_package_group, bucket=bucket
        )
    assert s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"] == []


def test_the_promoted_copy_is_the_same_model_archive_image_and_model_hash(
    world: World, definition: dict[str, Any]
) -> None:
    arn = _register("v1")
    _released(world, definition, arn)
    dev = _session(ACCOUNTS["dev"])
    source = dev.client("sagemaker").describe_model_package(ModelPackageName=arn)
    source_url = source["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    bucket, key = source_url.removeprefix("s3://").split("/", 1)
    archive = dev.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    digest = dev.client("ecr").describe_images(
        repositoryName=REPOSITORY.format(account=ACCOUNTS["dev"]), imageIds=[{"imageTag": "abc123"}]
    )["imageDetails"][0]["imageDigest"]
    for environment in ("staging", "prod"):
        copy = _copy_in(environment, arn)
        container = copy["InferenceSpecification"]["Containers"][0]
        metadata = copy["CustomerMetadataProperties"]
        assert metadata["model_data_sha256"] == "sha256:" + hashlib.sha256(archive).hexdigest()
        assert metadata["model_sha256"] == source["CustomerMetadataProperties"]["model_sha256"]
        assert container["Environment"]["MLCORE_MODEL_SHA256"] == metadata["model_sha256"]
        assert container["Image"].endswith(
            f"/{REPOSITORY.format(account=ACCOUNTS[environment])}@{digest}"
        )
        copied_bucket, copied_key = container["ModelDataUrl"].removeprefix("s3://").split("/", 1)
        assert copied_bucket == f"{PROJECT}-{environment}-artifacts"
        assert copied_key.startswith("promoted/")
        target_s3 = _session(ACCOUNTS[environment]).client("s3")
        assert target_s3.get_object(Bucket=copied_bucket, Key=copied_key)["Body"].read() == archive


def test_every_release_action_acts_through_the_target_environments_deploy_role(
    world: World, definition: dict[str, Any]
) -> None:
    _released(world, definition, _register("v1"))
    assert {r.split(":")[4] for r in world.assumed} == set(ACCOUNTS.values())


def test_the_served_model_carries_the_packages_model_hash(
    world: World, definition: dict[str, Any]
) -> None:
    arn = _register("v1")
    _released(world, definition, arn)
    expected = "sha256:" + hashlib.sha256(b"model v1").hexdigest()
    for environment, account in ACCOUNTS.items():
        sagemaker = _session(account).client("sagemaker")
        endpoint = sagemaker.describe_endpoint(EndpointName=f"{PROJECT}-{environment}")
        config = sagemaker.describe_endpoint_config(
            EndpointConfigName=endpoint["EndpointConfigName"]
        )
        model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
        assert model["Containers"][0]["Environment"]["MLCORE_MODEL_SHA256"] == expected


def test_promoting_the_same_package_again_reuses_its_copy(
    world: World, definition: dict[str, Any]
) -> None:
    arn = _register("v1")
    _released(world, definition, arn)
    _released(world, definition, arn)
    staging = _session(ACCOUNTS["staging"]).client("sagemaker")
    packages = staging.list_model_packages(ModelPackageGroupName=f"{PROJECT}-staging-models")
    assert len(packages["ModelPackageSummaryList"]) == 1


# Every failure path ends with the pointer on the package the endpoint serves.


def _second_release(world: World, definition: dict[str, Any]) -> tuple[str, str]:
    first = _register("v1")
    _released(world, definition, first)
    return first, _register("v2")


def _stopped_at(execution: Execution, environment: str) -> str:
    assert execution.status == "FAILED"
    assert execution.path[-1] == f"{environment.capitalize()}Stopped"
    return str(execution.messages[-1]["Message"])


def test_an_alarm_rollback_in_staging_puts_its_pointer_back_and_stops_before_prod(
    world: World, definition: dict[str, Any]
) -> None:
    first, second = _second_release(world, definition)
    served = _copy_in("staging", first)["ModelPackageArn"]
    world.stacks["staging"].outcome = "alarm_rollback"
    world.answer_smoke("dev", len(SAMPLE["instances"]))
    execution = _release(world, definition, second)
    message = _stopped_at(execution, "staging")
    assert world.serving("staging") == world.pointer("staging") == served
    assert "UPDATE_ROLLBACK_COMPLETE" in message and served in message
    assert "moved back" in message
    assert world.pointer("prod") == _copy_in("prod", first)["ModelPackageArn"]


def test_a_failed_smoke_test_redeploys_what_was_served_and_points_back_at_it(
    world: World, definition: dict[str, Any]
) -> None:
    first, second = _second_release(world, definition)
    served = _copy_in("staging", first)["ModelPackageArn"]
    world.answer_smoke("dev", len(SAMPLE["instances"]))
    world.answer_smoke("staging", 1)  # one prediction for five records
    execution = _release(world, definition, second)
    message = _stopped_at(execution, "staging")
    assert "RollBackStaging" in execution.path
    assert world.serving("staging") == world.pointer("staging") == served
    assert "1 predictions for 5 records" in message


def test_a_first_release_that_fails_its_smoke_test_leaves_no_endpoint_and_no_pointer(
    world: World, definition: dict[str, Any]
) -> None:
    world.answer_smoke("dev", len(SAMPLE["instances"]))
    world.answer_smoke("staging", None)
    execution = _release(world, definition, _register("v1"))
    _stopped_at(execution, "staging")
    assert world.serving("staging") == world.pointer("staging") == NO_MODEL


def test_a_rejected_prod_release_leaves_prod_on_its_package(
    world: World, definition: dict[str, Any]
) -> None:
    first, second = _second_release(world, definition)
    world.approvals = [("Rejected", "not before the audit")]
    for environment in ("dev", "staging"):
        world.answer_smoke(environment, len(SAMPLE["instances"]))
    execution = _release(world, definition, second)
    message = _stopped_at(execution, "prod")
    served = _copy_in("prod", first)["ModelPackageArn"]
    assert world.serving("prod") == world.pointer("prod") == served
    assert "rejected it (" in message and "(not before the audit)" in message
    assert served in message
    assert _copy_in("prod", second)["ModelApprovalStatus"] == "Rejected"
    assert world.stacks["prod"].updates[-1]  # only the first release updated prod
    assert len(world.stacks["prod"].updates) == 1


def test_an_expired_approval_leaves_prod_as_it_was(
    world: World, definition: dict[str, Any]
) -> None:
    world.approvals = [None] * 3
    for environment in ("dev", "staging"):
        world.answer_smoke(environment, len(SAMPLE["instances"]))
    # The four-account app waits 7 days (cdk.json); people take 3 days per check here.
    execution = _release(world, definition, _register("v1"), approval_wait_days=3)
    message = _stopped_at(execution, "prod")
    assert execution.path.count("CheckProdApproval") == 3
    assert world.serving("prod") == world.pointer("prod") == NO_MODEL
    assert "approval expired" in message and world.stacks["prod"].updates == []


def test_a_stack_update_that_does_not_start_leaves_the_pointer_on_the_served_package(
    world: World, definition: dict[str, Any]
) -> None:
    first, second = _second_release(world, definition)
    world.stacks["staging"].outcome = "refuse"
    world.answer_smoke("dev", len(SAMPLE["instances"]))
    execution = _release(world, definition, second)
    message = _stopped_at(execution, "staging")
    served = _copy_in("staging", first)["ModelPackageArn"]
    assert world.serving("staging") == world.pointer("staging") == served
    assert "UPDATE_ROLLBACK_FAILED" in message


def test_a_promotion_without_the_image_in_the_target_account_stops_with_the_fix(
    world: World, definition: dict[str, Any]
) -> None:
    prod_ecr = _session(ACCOUNTS["prod"]).client("ecr")
    prod_ecr.batch_delete_image(
        repositoryName=REPOSITORY.format(account=ACCOUNTS["prod"]),
        imageIds=[{"imageTag": "abc123"}],
    )
    for environment in ("dev", "staging"):
        world.answer_smoke(environment, len(SAMPLE["instances"]))
    execution = _release(world, definition, _register("v1"))
    message = _stopped_at(execution, "prod")
    assert "has no image sha256:" in message and "publishes the same image" in message
    assert world.pointer("prod") == NO_MODEL


def test_a_package_without_a_model_hash_is_not_released(
    world: World, definition: dict[str, Any]
) -> None:
    execution = _release(world, definition, _register("v1", sha=None))
    message = _stopped_at(execution, "dev")
    assert "no model_sha256 metadata" in message
    assert world.pointer("dev") == NO_MODEL


def test_a_copy_withdrawn_in_the_target_stops_a_new_promotion_of_its_source(
    world: World, definition: dict[str, Any]
) -> None:
    arn = _register("v1")
    _released(world, definition, arn)
    staging = _session(ACCOUNTS["staging"]).client("sagemaker")
    copy = _copy_in("staging", arn)
    # moto 5.2's UpdateModelPackage drops the metadata it is not given; SageMaker keeps it.
    staging.update_model_package(
        ModelPackageArn=copy["ModelPackageArn"],
        ModelApprovalStatus="Rejected",
        CustomerMetadataProperties=copy["CustomerMetadataProperties"],
    )
    world.answer_smoke("dev", len(SAMPLE["instances"]))
    execution = _release(world, definition, arn)
    assert "that is Rejected" in _stopped_at(execution, "staging"), execution.path


def test_a_deploy_while_the_stack_is_busy_touches_nothing(world: World) -> None:
    arn = _register("v1")
    world.stacks["dev"].statuses = ["UPDATE_IN_PROGRESS"]
    env = release.Environment.open(world._ref("dev"), world.sessions)
    with pytest.raises(RuntimeError, match="is busy"):
        release.deploy(env, arn)
    assert world.pointer("dev") == NO_MODEL
    assert world.stacks["dev"].updates == []


def test_restore_touches_nothing_while_the_stack_is_still_updating(world: World) -> None:
    world.stacks["dev"].statuses = ["UPDATE_IN_PROGRESS"]
    env = release.Environment.open(world._ref("dev"), world.sessions)
    _session(ACCOUNTS["dev"]).client("ssm").put_parameter(
        Name=names.model_package_parameter_name(PROJECT, "dev"),
        Value="arn:x",
        Type="String",
        Overwrite=True,
    )
    result = release.restore(env, reason="test", attempted="arn:y")
    assert world.pointer("dev") == "arn:x"
    assert result["settled"] is False and "still updating" in result["message"]


def test_restore_waits_for_the_releases_own_update_to_roll_back_then_puts_the_pointer_back(
    world: World, definition: dict[str, Any]
) -> None:
    first, second = _second_release(world, definition)
    served = _copy_in("staging", first)["ModelPackageArn"]
    # Staging's update is rolled back by an alarm, but the flow loses track of it: its first
    # status check fails while the update is still running, so Restore starts mid-update.
    world.stacks["staging"].outcome = "alarm_rollback"
    world.failing_status_checks["staging"] = 1
    world.answer_smoke("dev", len(SAMPLE["instances"]))
    execution = _release(world, definition, second)
    message = _stopped_at(execution, "staging")
    assert execution.path.count("RestoreStaging") >= 2
    assert "WaitStagingSettled" in execution.path
    assert world.serving("staging") == world.pointer("staging") == served
    assert "moved back" in message


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("UPDATE_IN_PROGRESS", "in_progress"),
        ("UPDATE_ROLLBACK_IN_PROGRESS", "in_progress"),
        ("UPDATE_COMPLETE", "succeeded"),
        ("UPDATE_ROLLBACK_COMPLETE", "failed"),
        ("UPDATE_FAILED", "failed"),
        ("UPDATE_ROLLBACK_FAILED", "failed"),
    ],
)
def test_stack_state_tells_the_flow_when_an_update_ended(
    world: World, status: str, state: str
) -> None:
    world.stacks["dev"].statuses = [status]
    env = release.Environment.open(world._ref("dev"), world.sessions)
    assert release.stack_state(env)[0] == state


def test_handler_rejects_unknown_actions_and_incomplete_targets(world: World) -> None:
    with pytest.raises(ValueError, match="promote, deploy, status, approval, restore"):
        release.handler({"action": "rollback"}, sessions=world.sessions)
    with pytest.raises(ValueError, match="release target lacks"):
        release.handler(
            {"action": "status", "target": {"environment": "dev"}}, sessions=world.sessions
        )


def test_a_descriptor_of_another_environment_is_refused(world: World) -> None:
    ref = world._ref("dev")
    wrong = release.TargetRef("staging", ref.role_arn, REGION, ref.descriptor_parameter)
    with pytest.raises(ValueError, match="describes 'dev', not 'staging'"):
        release.Environment.open(wrong, world.sessions)


# The smoke test's own checks, with answers queued through moto's API.


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("<html>oops</html>", "non-JSON"),
        (json.dumps({"result": []}), 'without a "predictions" list'),
        (json.dumps({"predictions": [{"prediction": 1, "score": 0.5}]}), "1 predictions for 5"),
        (json.dumps({"predictions": [{"prediction": 1, "score": 3.0}] * 5}), "not a probability"),
    ],
)
def test_smoke_test_fails_on_a_broken_answer(world: World, answer: str, message: str) -> None:
    requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
        json={"account_id": "123456789012", "region": REGION, "results": [{"Body": answer}]},
        timeout=5,
    )
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with pytest.raises(smoke.SmokeTestFailed, match=message):
        smoke.smoke_test(runtime, endpoint_name="acme-staging", payload=SAMPLE)


def test_smoke_test_sends_the_packages_sample_request(world: World) -> None:
    arn = _register("v1")
    dev = _session(ACCOUNTS["dev"])
    payload = smoke.package_sample_request(dev.client("sagemaker"), dev.client("s3"), arn)
    assert payload == SAMPLE


def test_the_deploy_code_uses_mlcores_contract_names() -> None:
    from mlcore import model
    from pipelines.deploy import targets

    assert targets.MODEL_SHA256_KEY == model.MODEL_SHA256_KEY
    assert targets.SAMPLE_REQUEST_FILE == model.SAMPLE_REQUEST_FILE
