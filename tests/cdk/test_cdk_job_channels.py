"""Every channel of every job the kit starts is allowed by the role the job runs as.

SageMaker fetches a job's inputs and uploads its outputs as the job's execution role, before
and after the container runs, and what it does depends on the channel type:

- ``S3Prefix``: it lists the prefix (ListObjectsV2, authorised as ``s3:ListBucket`` with the
  ``s3:prefix`` condition key set to the channel's key) and downloads every object under it
  (``s3:GetObject``). A grant of GetObject alone fails with "ListObjectsV2 failed".
- ``ManifestFile``: it reads the manifest and then each object it names (``s3:GetObject``).
- outputs: it uploads under the output prefix (``s3:PutObject``; large files are multipart,
  which needs ``kms:Decrypt`` as well as ``kms:GenerateDataKey`` under SSE-KMS, and
  ``s3:AbortMultipartUpload`` to clean up a failed one).
- KMS: objects of a bucket with a customer-managed key need ``kms:Decrypt`` to be read; the
  output key and the volume key need ``kms:GenerateDataKey`` and ``kms:Decrypt``.

The jobs are taken from what the app really starts, never restated here: the model-build
steps from the synthesised ``AWS::SageMaker::Pipeline`` definition (its pipeline expressions
evaluated with a sample execution), the monitor jobs from the CreateProcessingJob requests
``pipelines.monitoring.jobs`` builds (in moto) from the synthesised StartJob function's
environment: drift (streaming, training baseline), drift against the previous window, drift on
the Spark engine (which also lists and reads the window's capture itself) and quality. The
permissions are the synthesised policies of the role each job names, resolved and decided
by the independent IAM evaluator (tests/support/mlops_testing), resource policies included.

Not covered: the optional SageMaker Model Monitor schedule (off in the shared app) and
buckets outside the app: the CDK bootstrap's assets bucket (the settings file) is encrypted
with the AWS-managed ``aws/s3`` key by default, whose key policy lets any principal of the
account use it through S3, so only its S3 permissions are checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest
from mlops_testing.cloudformation import CloudAssembly, ResolvedStack, Role
from mlops_testing.iam import IamSimulator, Request
from moto import mock_aws

from pipelines.monitoring import jobs

pytestmark = pytest.mark.xdist_group("cdk_synth")

#: A sample execution: its id, and the run before it that produced the champion.
EXECUTION_ID = "p1a2b3c4d5e6"
EARLIER_EXECUTION_ID = "z9y8x7w6v5u4"
TRAINING_JOB_NAME = f"pipelines-{EXECUTION_ID}-Train-AbCdEfGhIj"
#: The hour a monitor runs at, and the captured hours before it.
SCHEDULED = datetime(2026, 3, 2, 10, 5, tzinfo=UTC)
_BOOTSTRAP_ASSETS = re.compile(r"^cdk-[a-z0-9]+-assets-(\d{12})-[a-z0-9-]+$")


@dataclass(frozen=True)
class Channel:
    """One thing SageMaker fetches or uploads for a job."""

    name: str
    kind: str  # S3Prefix | ManifestFile | Output | SparkRead
    uri: str
    objects: tuple[str, ...] = ()  # ManifestFile: the objects it names


@dataclass(frozen=True)
class Job:
    name: str
    role_arn: str
    channels: tuple[Channel, ...]
    keys: tuple[str, ...] = field(default_factory=tuple)  # output and volume keys in force


# --- the model-build steps, from the synthesised pipeline definition -----------------------


def _evaluate(expression: Any, runtime: dict[str, str]) -> str:
    """A pipeline expression's value in the sample execution."""
    if isinstance(expression, str):
        return expression
    if "Get" in expression:
        name = expression["Get"]
        if name not in runtime:
            raise KeyError(
                f"the definition reads {name!r}, which this test gives no sample value: add "
                "what SageMaker would put there"
            )
        return runtime[name]
    if "Std:Join" in expression:
        join = expression["Std:Join"]
        return str(join["On"]).join(_evaluate(value, runtime) for value in join["Values"])
    raise ValueError(f"unknown pipeline expression {expression!r}")


def _all_steps(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop(0)
        yield step
        arguments = step.get("Arguments", {})
        pending += arguments.get("IfSteps", []) + arguments.get("ElseSteps", [])


def _pipeline_jobs(stack: ResolvedStack) -> list[Job]:
    found: list[Job] = []
    for resource in stack.resources("AWS::SageMaker::Pipeline").values():
        body = resource["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]
        definition = json.loads(body)
        steps = {step["Name"]: step for step in _all_steps(definition)}
        runtime = {
            f"Parameters.{p['Name']}": str(p["DefaultValue"]) for p in definition["Parameters"]
        }
        runtime["Execution.PipelineExecutionId"] = EXECUTION_ID
        trainings = [s for s in steps.values() if s["Type"] == "Training"]
        assert len(trainings) == 1, "one training step is what the sample execution models"
        output_path = _evaluate(
            trainings[0]["Arguments"]["OutputDataConfig"]["S3OutputPath"], runtime
        )
        runtime[f"Steps.{trainings[0]['Name']}.ModelArtifacts.S3ModelArtifacts"] = (
            f"{output_path}/{TRAINING_JOB_NAME}/output/model.tar.gz"
        )
        # The champion: a model an earlier execution of this pipeline trained and registered.
        earlier = output_path.replace(EXECUTION_ID, EARLIER_EXECUTION_ID)
        assert earlier != output_path, "the model path no longer names the execution"
        for lambda_step in (s for s in steps.values() if s["Type"] == "Lambda"):
            runtime[f"Steps.{lambda_step['Name']}.OutputParameters['champion_model_url']"] = (
                f"{earlier}/pipelines-{EARLIER_EXECUTION_ID}-Train-0/output/model.tar.gz"
            )
        for step in steps.values():
            if step["Type"] == "Processing":
                found.append(_processing_step(stack, step, runtime))
            elif step["Type"] == "Training":
                found.append(_training_step(stack, step, runtime))
    return found


def _processing_step(stack: ResolvedStack, step: dict[str, Any], runtime: dict[str, str]) -> Job:
    arguments = step["Arguments"]
    channels = [
        Channel(
            item["InputName"],
            item["S3Input"]["S3DataType"],
            _evaluate(item["S3Input"]["S3Uri"], runtime),
        )
        for item in arguments.get("ProcessingInputs", [])
    ]
    output_config = arguments.get("ProcessingOutputConfig", {})
    channels += [
        Channel(item["OutputName"], "Output", _evaluate(item["S3Output"]["S3Uri"], runtime))
        for item in output_config.get("Outputs", [])
    ]
    keys = [
        output_config.get("KmsKeyId"),
        arguments["ProcessingResources"]["ClusterConfig"].get("VolumeKmsKeyId"),
    ]
    return Job(
        f"{stack.artifact.stack_name}/{step['Name']}",
        arguments["RoleArn"],
        tuple(channels),
        tuple(k for k in keys if k),
    )


def _training_step(stack: ResolvedStack, step: dict[str, Any], runtime: dict[str, str]) -> Job:
    arguments = step["Arguments"]
    channels = [
        Channel(
            item["ChannelName"],
            item["DataSource"]["S3DataSource"]["S3DataType"],
            _evaluate(item["DataSource"]["S3DataSource"]["S3Uri"], runtime),
        )
        for item in arguments["InputDataConfig"]
    ]
    output = arguments["OutputDataConfig"]
    channels.append(Channel("model", "Output", _evaluate(output["S3OutputPath"], runtime)))
    keys = [output.get("KmsKeyId"), arguments["ResourceConfig"].get("VolumeKmsKeyId")]
    return Job(
        f"{stack.artifact.stack_name}/{step['Name']}",
        arguments["RoleArn"],
        tuple(channels),
        tuple(k for k in keys if k),
    )


# --- the monitor jobs, from the requests the synthesised starter would send ---------------


def _starter_environments(stack: ResolvedStack) -> list[dict[str, str]]:
    return [
        dict(resource["Properties"]["Environment"]["Variables"])
        for resource in stack.resources("AWS::Lambda::Function").values()
        if resource["Properties"].get("Handler") == "monitoring.jobs.handler"
    ]


def _monitor_jobs(stack: ResolvedStack, environment: dict[str, str]) -> list[Job]:
    config = jobs.MonitorJobConfig.from_environment(environment)
    scenarios = {
        "drift": (config, "drift"),
        "drift-previous-window": (replace(config, reference_mode="previous_window"), "drift"),
        # The Spark engine runs as the same role; the image is not what is checked here.
        "drift-spark": (
            replace(config, drift_engine="spark", spark_image_uri=config.image_uri),
            "drift",
        ),
        "quality": (config, "quality"),
    }
    found = []
    for label, (scenario, monitor) in scenarios.items():
        request, manifests = _monitor_request(stack, scenario, monitor)
        found.append(_monitor_job(f"{stack.artifact.stack_name}/{label}", request, manifests))
    return found


def _monitor_request(
    stack: ResolvedStack, config: jobs.MonitorJobConfig, monitor: str
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The CreateProcessingJob request of one run, and the objects each manifest names."""
    region = stack.region
    with mock_aws():
        s3 = boto3.client("s3", region_name=region)
        sagemaker = boto3.client("sagemaker", region_name=region)
        ssm = boto3.client("ssm", region_name=region)
        dynamodb = boto3.client("dynamodb", region_name=region)
        buckets = {
            urlparse(uri).netloc
            for uri in (config.capture_s3_uri, config.reports_s3_uri, config.ground_truth_s3_uri)
            if uri
        }
        for bucket in buckets:
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region}
            )
        capture_root = f"{config.capture_s3_uri}/{config.endpoint_name}/{config.variant_name}"
        for hours_before in range(1, 8):
            _put(s3, capture_root, SCHEDULED - timedelta(hours=hours_before), "capture.jsonl")
        assert config.ground_truth_s3_uri
        _put(s3, config.ground_truth_s3_uri, SCHEDULED - timedelta(hours=1), "labels.jsonl")
        # The package the environment serves: a promoted copy in its own artifact bucket.
        group = f"{stack.artifact.stack_name.split('-')[0].lower()}-models"
        model_url = (
            f"s3://{urlparse(config.reports_s3_uri).netloc}/promoted/{group}/1/model/model.tar.gz"
        )
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
        package = sagemaker.create_model_package(
            ModelPackageGroupName=group,
            InferenceSpecification={
                "Containers": [{"Image": config.image_uri, "ModelDataUrl": model_url}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        )["ModelPackageArn"]
        ssm.put_parameter(
            Name=config.model_package_parameter, Value=package, Type="String", Overwrite=True
        )
        dynamodb.create_table(
            TableName=config.state_table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sent: list[dict[str, Any]] = []
        sagemaker.meta.events.register(
            "provide-client-params.sagemaker.CreateProcessingJob",
            lambda params, **_: sent.append(dict(params)),
        )
        run = jobs.start_monitor_run(
            config,
            monitor=monitor,  # type: ignore[arg-type]
            scheduled_time=SCHEDULED,
            s3=s3,
            sagemaker=sagemaker,
            ssm=ssm,
            dynamodb=dynamodb,
        )
        assert run.status == "started" and len(sent) == 1, run
        manifests = {}
        for item in sent[0]["ProcessingInputs"]:
            if item["S3Input"]["S3DataType"] == "ManifestFile":
                bucket, key = jobs.split_s3_uri(item["S3Input"]["S3Uri"])
                body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
                manifests[item["S3Input"]["S3Uri"]] = [
                    f"{body[0]['prefix']}{relative}" for relative in body[1:]
                ]
    return sent[0], manifests


def _put(s3: Any, root: str, hour: datetime, name: str) -> None:
    bucket, key = jobs.split_s3_uri(f"{root.rstrip('/')}/{hour:%Y/%m/%d/%H}/{name}")
    s3.put_object(Bucket=bucket, Key=key, Body=b"{}\n")


def _monitor_job(name: str, request: dict[str, Any], manifests: dict[str, list[str]]) -> Job:
    channels = []
    for item in request["ProcessingInputs"]:
        source = item["S3Input"]
        channels.append(
            Channel(
                item["InputName"],
                source["S3DataType"],
                source["S3Uri"],
                tuple(manifests.get(source["S3Uri"], ())),
            )
        )
    command = request["AppSpecification"]["ContainerEntrypoint"]
    current = command[command.index("--current") + 1]
    if current.startswith("s3://"):
        # The Spark app lists and reads the window's hour folders itself, as the job role.
        channels += [Channel("current", "SparkRead", uri) for uri in _expand_glob(current)]
    output_config = request["ProcessingOutputConfig"]
    channels += [
        Channel(item["OutputName"], "Output", item["S3Output"]["S3Uri"])
        for item in output_config["Outputs"]
    ]
    keys = [
        output_config.get("KmsKeyId"),
        request["ProcessingResources"]["ClusterConfig"].get("VolumeKmsKeyId"),
    ]
    return Job(name, request["RoleArn"], tuple(channels), tuple(k for k in keys if k))


def _expand_glob(uri: str) -> list[str]:
    """``s3://b/root/{a,b}/`` -> the folders it names (Hadoop's alternation)."""
    match = re.fullmatch(r"(.*)\{([^}]*)\}(.*)", uri)
    if not match:
        return [uri]
    head, alternatives, tail = match.groups()
    return [f"{head}{alternative}{tail}" for alternative in alternatives.split(",")]


# --- what SageMaker does for each channel, as requests by the job's role -------------------


class _Environment:
    """Resolves buckets, keys and roles of the assembly for the requests."""

    def __init__(self, assembly: CloudAssembly) -> None:
        self.assembly = assembly
        self.bucket_accounts: dict[str, str] = {}
        self.bucket_keys: dict[str, str | None] = {}
        self.roles: dict[str, Role] = {}
        for stack in assembly.stacks():
            for logical_id, bucket in stack.resources("AWS::S3::Bucket").items():
                name = stack.physical_name(logical_id)
                self.bucket_accounts[name] = stack.account
                rules = (
                    bucket["Properties"]
                    .get("BucketEncryption", {})
                    .get("ServerSideEncryptionConfiguration", [])
                )
                key = next(
                    (
                        r["ServerSideEncryptionByDefault"].get("KMSMasterKeyID")
                        for r in rules
                        if r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
                    ),
                    None,
                )
                self.bucket_keys[name] = key
            for logical_id in stack.resources("AWS::IAM::Role"):
                self.roles[stack.arn(logical_id)] = stack.role(logical_id)

    def bucket_account(self, bucket: str) -> str:
        if bucket in self.bucket_accounts:
            return self.bucket_accounts[bucket]
        match = _BOOTSTRAP_ASSETS.match(bucket)
        if match:
            return match.group(1)
        raise KeyError(f"bucket {bucket} is neither in the app nor the CDK assets bucket")

    def s3(self, role: Role, action: str, bucket: str, key: str | None, **context: str) -> Request:
        arn = f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")
        return Request.by(
            role,
            action,
            arn,
            resource_account=self.bucket_account(bucket),
            resource_policy=self.assembly.resource_policy(arn),
            context={"aws:SecureTransport": "true", **context},
        )

    def kms(self, role: Role, action: str, key_arn: str, via: str) -> Request:
        return Request.by(
            role,
            action,
            key_arn,
            resource_policy=self.assembly.resource_policy(key_arn),
            context={"kms:ViaService": f"{via}.{key_arn.split(':')[3]}.amazonaws.com"},
        )

    def object_reads(self, role: Role, uris: list[str]) -> list[Request]:
        requests = []
        for uri in uris:
            bucket, key = jobs.split_s3_uri(uri)
            requests.append(self.s3(role, "s3:GetObject", bucket, key))
            bucket_key = self.bucket_keys.get(bucket)
            if bucket_key:
                requests.append(self.kms(role, "kms:Decrypt", bucket_key, "s3"))
        return requests

    def requests(self, job: Job) -> list[tuple[str, Request]]:
        assert job.role_arn in self.roles, f"{job.name} runs as {job.role_arn}, not in the app"
        role = self.roles[job.role_arn]
        found: list[tuple[str, Request]] = []

        def add(channel: Channel, requests: list[Request]) -> None:
            found.extend((f"{job.name} {channel.kind} {channel.name}", r) for r in requests)

        for channel in job.channels:
            bucket, key = jobs.split_s3_uri(channel.uri)
            if channel.kind in ("S3Prefix", "SparkRead"):
                listing = self.s3(role, "s3:ListBucket", bucket, None, **{"s3:prefix": key})
                add(channel, [listing, *self.object_reads(role, [_an_object_under(channel.uri)])])
            elif channel.kind == "ManifestFile":
                assert channel.objects, f"{job.name}: the manifest {channel.uri} names nothing"
                add(channel, self.object_reads(role, [channel.uri, *channel.objects]))
            elif channel.kind == "Output":
                uploaded = f"{key.rstrip('/')}/report.json"
                # PutObject authorises single and multipart uploads; a failed multipart
                # upload is aborted.
                add(
                    channel,
                    [
                        self.s3(role, "s3:PutObject", bucket, uploaded),
                        self.s3(role, "s3:AbortMultipartUpload", bucket, uploaded),
                    ],
                )
                bucket_key = self.bucket_keys.get(bucket)
                if bucket_key:
                    add(channel, self._data_key(role, bucket_key, "s3"))
            else:
                raise ValueError(f"{job.name}: unknown channel type {channel.kind}")
        for key_arn in job.keys:
            found.extend(
                (f"{job.name} key {key_arn}", r) for r in self._data_key(role, key_arn, "s3")
            )
        return found

    def _data_key(self, role: Role, key_arn: str, via: str) -> list[Request]:
        return [
            self.kms(role, "kms:GenerateDataKey", key_arn, via),
            self.kms(role, "kms:Decrypt", key_arn, via),
        ]


def _an_object_under(uri: str) -> str:
    """An object SageMaker would download for the prefix ``uri``: the object itself when the
    prefix names a file (the settings, spec.json, model.tar.gz), else one inside it."""
    last = uri.rstrip("/").rsplit("/", 1)[-1]
    return uri if "." in last else f"{uri.rstrip('/')}/part-00000.parquet"


# --- the tests ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def assembly(four_accounts: Any) -> CloudAssembly:
    return CloudAssembly.load(four_accounts.outdir)


@pytest.fixture(scope="module")
def started_jobs(assembly: CloudAssembly) -> list[Job]:
    found: list[Job] = []
    for stack in assembly.stacks():
        found += _pipeline_jobs(stack)
        for environment in _starter_environments(stack):
            found += _monitor_jobs(stack, environment)
    return found


def test_the_app_starts_the_jobs_this_test_checks(started_jobs: list[Job]) -> None:
    names = {job.name.split("/", 1)[1] for job in started_jobs}
    assert {"Prep", "Train", "Evaluate", "EvaluateVsChampion"} <= names
    assert {"drift", "drift-previous-window", "drift-spark", "quality"} <= names
    kinds = {channel.kind for job in started_jobs for channel in job.channels}
    assert kinds == {"S3Prefix", "ManifestFile", "Output", "SparkRead"}
    # Every job reads its settings from the one settings artifact.
    assert all(any(c.name == "settings" for c in job.channels) for job in started_jobs)


def test_every_job_role_may_fetch_every_input_and_upload_every_output(
    assembly: CloudAssembly, started_jobs: list[Job]
) -> None:
    environment = _Environment(assembly)
    labelled = [item for job in started_jobs for item in environment.requests(job)]
    unique = {
        (r.principal, r.action, r.resource, json.dumps(dict(r.context), sort_keys=True)): (
            label,
            r,
        )
        for label, r in labelled
    }
    requests = [r for _, r in unique.values()]
    labels = [label for label, _ in unique.values()]
    decisions = IamSimulator().decide(requests)
    denied = [
        f"{label}: {decision}"
        for label, decision in zip(labels, decisions, strict=True)
        if not decision.allowed
    ]
    assert denied == [], "\n".join(denied)


def test_the_settings_listing_is_limited_to_the_settings_object(
    assembly: CloudAssembly, started_jobs: list[Job]
) -> None:
    environment = _Environment(assembly)
    requests = []
    for job in started_jobs:
        settings = next(c for c in job.channels if c.name == "settings")
        bucket, key = jobs.split_s3_uri(settings.uri)
        role = environment.roles[job.role_arn]
        requests += [
            environment.s3(role, "s3:ListBucket", bucket, None, **{"s3:prefix": other})
            for other in ("", key.rsplit("/", 1)[0] + "/", "cdk/")
        ]
    decisions = IamSimulator().decide(requests)
    assert not any(d.allowed for d in decisions), [str(d) for d in decisions if d.allowed]
