"""Scheduled batch scoring on AWS (stages.<name>.batch): its settings, what it synthesises, and
what its roles may do, decided by the independent IAM evaluator (tests/support/mlops_testing).

The four-account app gives prod a batch path beside its endpoint (tests/fixtures/
four_account_app.py, through context keys as a user sets them); dev and staging have none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlops_testing.cloudformation import CloudAssembly, ResolvedStack
from mlops_testing.iam import IamSimulator, Request

from cdk.batch.settings import BatchConfig
from cdk.config import load_aws_config
from mlcore.serve.defaults import SERVING_ENV
from pipelines.batch import transform
from pipelines.deploy.approval import APPROVAL_TAG, APPROVAL_TAG_VALUE

pytestmark = pytest.mark.xdist_group("cdk_synth")

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
PROD = "333333333333"
TLS = {"aws:SecureTransport": "true"}
PACKAGE = f"arn:aws:sagemaker:{REGION}:{PROD}:model-package/acme-prod-models/7"
BATCH = {
    "mlops.stages.prod.batch.schedule": "rate(1 day)",
    "mlops.stages.prod.batch.input_prefix": "batch/input",
    "mlops.stages.prod.batch.output_prefix": "batch/output",
}


@pytest.fixture
def context() -> dict[str, object]:
    return dict(json.loads((REPOSITORY_ROOT / "cdk.json").read_text())["context"])


# Settings: typed from context keys, every mistake named with its fix.


def test_batch_is_off_unless_a_stage_sets_it(context: dict[str, object]) -> None:
    config = load_aws_config(context)
    assert [name for name, stage in config.stages.items() if stage.batch] == []


def test_batch_settings_from_context_keys_are_typed(context: dict[str, object]) -> None:
    batch = (
        load_aws_config({**context, **BATCH, "mlops.stages.prod.batch.instance_count": "3"})
        .stages["prod"]
        .batch
    )
    assert batch is not None
    assert (batch.schedule.eventbridge, batch.instance_count) == ("rate(1 day)", 3)
    assert (batch.instance_type, batch.max_payload_mb) == ("ml.m5.large", 6)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("schedule", "every night", r"batch\.schedule.*not an EventBridge Scheduler expression"),
        ("instance_type", "m5.large", r"batch\.instance_type.*should match pattern"),
        ("instance_count", "0", r"batch\.instance_count.*greater than or equal to 1"),
        ("input_prefix", "s3://bucket/drops", r"batch\.input_prefix.*should match pattern"),
        ("max_payload_mb", "20", r"batch\.max_payload_mb.*less than or equal to 6"),
        ("insatnce_count", "2", r"batch\.insatnce_count.*Extra inputs"),
    ],
)
def test_a_bad_batch_value_names_its_key(
    context: dict[str, object], key: str, value: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_aws_config({**context, **BATCH, f"mlops.stages.prod.batch.{key}": value})


def test_a_batch_path_without_its_prefixes_says_which_are_missing(
    context: dict[str, object],
) -> None:
    with pytest.raises(ValueError, match=r"batch\.output_prefix: Field required"):
        load_aws_config(
            {
                **context,
                "mlops.stages.prod.batch.schedule": "rate(1 day)",
                "mlops.stages.prod.batch.input_prefix": "batch/input",
            }
        )


def test_a_batch_prefix_inside_the_kits_own_keys_is_refused_with_the_fix() -> None:
    with pytest.raises(
        ValueError, match=r"input_prefix 'promoted/drops' overlaps 'promoted'.*e\.g\. batch/input"
    ):
        BatchConfig.model_validate(
            {"schedule": "rate(1 day)", "input_prefix": "promoted/drops", "output_prefix": "out"}
        )


def test_overlapping_input_and_output_prefixes_are_refused() -> None:
    with pytest.raises(ValueError, match="a run would score the previous run's output"):
        BatchConfig.model_validate(
            {"schedule": "rate(1 day)", "input_prefix": "batch", "output_prefix": "batch/out"}
        )
    # A shared start of the name is not an overlap of key folders.
    BatchConfig.model_validate(
        {"schedule": "rate(1 day)", "input_prefix": "batch", "output_prefix": "batch-out"}
    )


# Synthesis: the four-account app, prod with an endpoint and a batch path.


@pytest.fixture(scope="module")
def assembly(four_accounts: Any) -> CloudAssembly:
    return CloudAssembly.load(four_accounts.outdir)


@pytest.fixture(scope="module")
def simulator() -> IamSimulator:
    return IamSimulator()


def _released(assembly: CloudAssembly, environment: str = "prod") -> ResolvedStack:
    return assembly.stack(
        f"{environment.capitalize()}-Serving",
        ModelPackageArn=PACKAGE,
        ModelSha256="sha256:" + "7" * 64,
    )


def _batch_model(stack: ResolvedStack) -> dict[str, Any]:
    models = {
        logical_id: resource
        for logical_id, resource in stack.resources("AWS::SageMaker::Model").items()
        if logical_id.startswith("Batch")
    }
    assert len(models) == 1, sorted(models)
    return next(iter(models.values()))["Properties"]


def test_the_batch_model_is_the_released_package_named_as_the_starter_finds_it(
    assembly: CloudAssembly,
) -> None:
    model = _batch_model(_released(assembly))
    assert model["ModelName"] == transform.batch_model_name("acme-prod", PACKAGE)
    (container,) = model["Containers"]
    assert container["ModelPackageName"] == PACKAGE
    assert container["Environment"]["MLCORE_MODEL_SHA256"] == "sha256:" + "7" * 64
    # The same serving timeouts as the endpoint's model (mlops.yaml's serving: section).
    (endpoint_model,) = [
        r["Properties"]
        for logical_id, r in _released(assembly).resources("AWS::SageMaker::Model").items()
        if logical_id.startswith("Endpoint")
    ]
    assert (
        container["Environment"][SERVING_ENV]
        == endpoint_model["Containers"][0]["Environment"][SERVING_ENV]
    )
    assert model["EnableNetworkIsolation"] is True


def test_no_batch_model_exists_before_a_release(assembly: CloudAssembly) -> None:
    unreleased = assembly.stack("Prod-Serving", ModelPackageArn="none", ModelSha256="none")
    assert not [
        logical_id
        for logical_id in unreleased.resources("AWS::SageMaker::Model")
        if logical_id.startswith("Batch")
    ]


def test_only_the_stage_that_sets_batch_gets_a_batch_path(assembly: CloudAssembly) -> None:
    for environment, expected in (("dev", 0), ("staging", 0), ("prod", 1)):
        stack = assembly.stack(f"{environment.capitalize()}-Serving")
        schedules = [
            r
            for r in stack.template["Resources"].values()
            if r["Type"] == "AWS::Scheduler::Schedule"
            and "Scores new files" in json.dumps(r["Properties"].get("Description", ""))
        ]
        assert len(schedules) == expected, environment


def test_prods_batch_runs_on_its_schedule_with_its_capacity(assembly: CloudAssembly) -> None:
    stack = _released(assembly)
    (schedule,) = [
        r["Properties"]
        for r in stack.resources("AWS::Scheduler::Schedule").values()
        if "batch/input" in r["Properties"]["Description"]
    ]
    assert schedule["ScheduleExpression"] == "cron(0 2 * * ? *)"
    (function,) = [
        r["Properties"]
        for r in stack.resources("AWS::Lambda::Function").values()
        if r["Properties"]["Handler"] == "batch.transform.handler"
    ]
    environment = function["Environment"]["Variables"]
    config = transform.BatchJobConfig.from_environment(environment)
    assert (config.instance_type, config.instance_count) == ("ml.c5.xlarge", 2)
    assert (config.input_prefix, config.output_prefix) == ("batch/input", "batch/scored")
    # dataset.id_columns of the fixture settings: one id column leads each row.
    assert config.id_column_count == 1
    assert config.model_package_parameter == "/mlops/acme/prod/model-package-arn"
    assert config.lookback_hours == 48


def test_a_failed_batch_job_reaches_the_alerts_topic(assembly: CloudAssembly) -> None:
    stack = _released(assembly)
    (rule,) = [
        r["Properties"]
        for r in stack.resources("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("detail-type")
        == ["SageMaker Transform Job State Change"]
    ]
    assert rule["EventPattern"]["detail"] == {
        "TransformJobName": [{"prefix": "acme-prod-batch-"}],
        "TransformJobStatus": ["Failed", "Stopped"],
    }
    (target,) = rule["Targets"]
    topics = stack.resources("AWS::SNS::Topic")
    assert target["Arn"] in {stack.arn(logical_id) for logical_id in topics}


def test_prod_is_told_when_its_batch_runs_stop_for_two_schedule_periods(
    assembly: CloudAssembly,
) -> None:
    stack = _released(assembly)
    (alarm,) = [
        r["Properties"]
        for r in stack.resources("AWS::CloudWatch::Alarm").values()
        if r["Properties"].get("AlarmName") == "acme-prod-batch-stale"
    ]
    # cron(0 2 * * ? *): one run a day, so two days.
    assert alarm["Threshold"] == 48
    assert alarm["MetricName"] == "HoursSinceBatchRun"
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["Dimensions"] == [{"Name": "EndpointName", "Value": "acme-prod"}]
    topics = {stack.arn(logical_id) for logical_id in stack.resources("AWS::SNS::Topic")}
    assert set(alarm["AlarmActions"]) <= topics and alarm["AlarmActions"]
    (heartbeat,) = [
        r["Properties"]
        for r in stack.resources("AWS::Scheduler::Schedule").values()
        if r["Properties"]["Target"].get("Input") == '{"heartbeat":true}'
        and "batch" in r["Properties"]["Description"]
    ]
    assert heartbeat["ScheduleExpression"] == "rate(1 hour)"


# Least privilege, decided by the IAM evaluator.


class _Batch:
    def __init__(self, assembly: CloudAssembly) -> None:
        self.assembly = assembly
        self.stack = _released(assembly)
        self.role = self.stack.role("BatchExecutionRole")
        self.starter = self.stack.role("BatchStartJobRole")
        environment = next(
            r["Properties"]["Environment"]["Variables"]
            for r in self.stack.resources("AWS::Lambda::Function").values()
            if r["Properties"]["Handler"] == "batch.transform.handler"
        )
        self.config = transform.BatchJobConfig.from_environment(environment)
        self.bucket_arn = f"arn:aws:s3:::{self.config.bucket}"
        self.key_arn = self.config.kms_key_arn

    def object(self, key: str) -> str:
        return f"{self.bucket_arn}/{key}"

    def s3(self, role: Any, action: str, resource: str, **context: Any) -> Request:
        return Request.by(
            role,
            action,
            resource,
            context={**TLS, **context},
            resource_policy=self.assembly.resource_policy(resource),
        )

    def kms(self, role: Any, action: str) -> Request:
        return Request.by(
            role, action, self.key_arn, resource_policy=self.assembly.resource_policy(self.key_arn)
        )


@pytest.fixture(scope="module")
def batch(assembly: CloudAssembly) -> _Batch:
    return _Batch(assembly)


def _decide(simulator: IamSimulator, requests: list[Request]) -> list[bool]:
    return [d.allowed for d in simulator.decide(requests)]


def test_the_transform_jobs_role_reads_its_inputs_and_writes_its_outputs_only(
    batch: _Batch, simulator: IamSimulator
) -> None:
    role = batch.role
    run = "batch/scored/2026/03/02/020000"
    archive = batch.object("promoted/acme-dev-models/7/model/model.tar.gz")
    approved = {f"s3:ExistingObjectTag/{APPROVAL_TAG}": APPROVAL_TAG_VALUE}
    allowed = [
        batch.s3(role, "s3:GetObject", batch.object("batch/input/2026-03-02/part-1.csv")),
        batch.s3(role, "s3:GetObject", batch.object(f"{run}/manifest/manifest.json")),
        batch.s3(role, "s3:PutObject", batch.object(f"{run}/scored/part-1.csv.out")),
        # Prod asks for release approval: only archives a person approved there.
        batch.s3(role, "s3:GetObject", archive, **approved),
        batch.kms(role, "kms:Decrypt"),
        batch.kms(role, "kms:GenerateDataKey"),
    ]
    refused = [
        # Not the outputs (nor anything else of the bucket), not into its inputs.
        batch.s3(role, "s3:GetObject", batch.object(f"{run}/scored/part-1.csv.out")),
        batch.s3(role, "s3:PutObject", batch.object("batch/input/part-9.csv")),
        batch.s3(role, "s3:PutObject", batch.object(f"{run}/manifest/manifest.json")),
        batch.s3(role, "s3:GetObject", batch.object("data-capture/acme-prod/x.jsonl")),
        batch.s3(role, "s3:DeleteObject", batch.object("batch/input/part-1.csv")),
        batch.s3(role, "s3:GetObject", archive),
    ]
    assert _decide(simulator, allowed + refused) == [True] * len(allowed) + [False] * len(refused)


def test_the_starter_lists_the_input_prefix_and_writes_manifests_only(
    batch: _Batch, simulator: IamSimulator
) -> None:
    starter = batch.starter
    manifest = batch.object("batch/scored/2026/03/02/020000/manifest/manifest.json")
    allowed = [
        batch.s3(starter, "s3:ListBucket", batch.bucket_arn, **{"s3:prefix": "batch/input/"}),
        batch.s3(starter, "s3:PutObject", manifest),
        batch.kms(starter, "kms:GenerateDataKey"),
        Request.by(
            starter,
            "ssm:GetParameter",
            f"arn:aws:ssm:{REGION}:{PROD}:parameter/mlops/acme/prod/model-package-arn",
        ),
        Request.by(
            starter,
            "sagemaker:DescribeModel",
            f"arn:aws:sagemaker:{REGION}:{PROD}:model/acme-prod-batch-v7",
        ),
        Request.by(
            starter, "cloudwatch:PutMetricData", "*", context={"cloudwatch:namespace": "MLOps"}
        ),
    ]
    refused = [
        Request.by(
            starter, "cloudwatch:PutMetricData", "*", context={"cloudwatch:namespace": "Other"}
        ),
        batch.s3(starter, "s3:ListBucket", batch.bucket_arn, **{"s3:prefix": "promoted/"}),
        batch.s3(starter, "s3:ListBucket", batch.bucket_arn),
        batch.s3(starter, "s3:GetObject", batch.object("batch/input/part-1.csv")),
        batch.s3(starter, "s3:PutObject", batch.object("batch/scored/run/scored/x.out")),
        Request.by(
            starter,
            "sagemaker:DescribeModel",
            f"arn:aws:sagemaker:{REGION}:{PROD}:model/acme-prod-model-1",
        ),
    ]
    assert _decide(simulator, allowed + refused) == [True] * len(allowed) + [False] * len(refused)


def _create_job(batch: _Batch, **overrides: Any) -> Request:
    job = f"arn:aws:sagemaker:{REGION}:{PROD}:transform-job/acme-prod-batch-20260302020000"
    context: dict[str, Any] = {
        "sagemaker:InstanceTypes": [batch.config.instance_type],
        "sagemaker:ModelArn": f"arn:aws:sagemaker:{REGION}:{PROD}:model/acme-prod-batch-v7",
        "sagemaker:VolumeKmsKeyArn": batch.key_arn,
        "sagemaker:OutputKmsKeyArn": batch.key_arn,
    }
    context.update(overrides.pop("context", {}))
    for absent in overrides.pop("without", ()):
        context.pop(absent)
    return Request.by(
        batch.starter, "sagemaker:CreateTransformJob", overrides.get("job", job), context=context
    )


def test_the_starter_may_create_its_transform_job_and_no_other(
    batch: _Batch, simulator: IamSimulator
) -> None:
    other_key = f"arn:aws:kms:{REGION}:{PROD}:key/00000000-0000-0000-0000-000000000000"
    requests = [
        _create_job(batch),
        _create_job(batch, context={"sagemaker:InstanceTypes": ["ml.p4d.24xlarge"]}),
        _create_job(batch, context={"sagemaker:OutputKmsKeyArn": other_key}),
        _create_job(batch, without=["sagemaker:VolumeKmsKeyArn"]),
        _create_job(
            batch,
            context={"sagemaker:ModelArn": f"arn:aws:sagemaker:{REGION}:{PROD}:model/acme-prod-x"},
        ),
        _create_job(
            batch, job=f"arn:aws:sagemaker:{REGION}:{PROD}:transform-job/someone-elses-job"
        ),
    ]
    assert _decide(simulator, requests) == [True, False, False, False, False, False]


def test_the_release_change_role_may_pass_the_batch_role_to_sagemaker_only(
    batch: _Batch, simulator: IamSimulator
) -> None:
    change_role = batch.stack.role("ReleaseChangeRole")
    requests = [
        Request.by(
            change_role,
            "iam:PassRole",
            batch.role.arn,
            context={"iam:PassedToService": service},
        )
        for service in ("sagemaker.amazonaws.com", "lambda.amazonaws.com")
    ]
    assert _decide(simulator, requests) == [True, False]


def test_cdk_nag_finds_nothing_unsuppressed_in_the_stack_with_the_batch_path(
    four_accounts: Any,
) -> None:
    from aws_cdk.assertions import Annotations, Match

    stack = four_accounts.mlops.stages["prod"].serving_stack
    assert stack.node.try_find_child("Batch") is not None
    errors = Annotations.from_stack(stack).find_error(
        "*", Match.string_like_regexp(r"AwsSolutions-.*")
    )
    assert [f"{e.id}: {e.entry.data}" for e in errors] == []


# A batch-only stage: staging scores in batch and has no endpoint.


@pytest.fixture(scope="module")
def batch_only(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The app with staging batch-only (online_endpoint false, no endpoint settings), in the
    four accounts of the shared fixture; synthesised once for this module."""
    import copy
    import os

    from aws_cdk import App

    from cdk.assembly import build_app, cdk_json_context

    context = cdk_json_context(REPOSITORY_ROOT)
    mlops = copy.deepcopy(context["mlops"])
    del mlops["stages"]["staging"]["endpoint"]
    context["mlops"] = mlops
    accounts = {"toolchain": "444444444444", "dev": "111111111111", "staging": "222222222222"}
    context.update(
        {
            "mlops.settings_file": str(
                REPOSITORY_ROOT / "tests" / "fixtures" / "aws_settings.yaml"
            ),
            "mlops.toolchain.account": accounts["toolchain"],
            "mlops.toolchain.region": REGION,
            "mlops.stages.prod.account": PROD,
            "mlops.stages.prod.region": REGION,
            "mlops.stages.staging.online_endpoint": "false",
            "mlops.stages.staging.batch.schedule": "rate(12 hours)",
            "mlops.stages.staging.batch.input_prefix": "drops",
            "mlops.stages.staging.batch.output_prefix": "scored",
        }
    )
    for stage in ("dev", "staging"):
        context[f"mlops.stages.{stage}.account"] = accounts[stage]
        context[f"mlops.stages.{stage}.region"] = REGION
    outdir = tmp_path_factory.mktemp("batch-only") / "cdk.out"
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    app = App(context=context, outdir=str(outdir))
    built = build_app(app, repository_root=REPOSITORY_ROOT)
    app.synth()
    return built, CloudAssembly.load(outdir), outdir


def test_a_stage_without_endpoint_and_without_batch_is_refused(
    context: dict[str, object],
) -> None:
    with pytest.raises(ValueError, match="this stage would serve nothing; set batch"):
        load_aws_config({**context, "mlops.stages.dev.online_endpoint": "false"})


def test_endpoint_settings_on_a_batch_only_stage_are_refused(context: dict[str, object]) -> None:
    # cdk.json gives staging an endpoint block.
    with pytest.raises(ValueError, match="endpoint configure an endpoint, but online_endpoint"):
        load_aws_config(
            {
                **context,
                "mlops.stages.staging.online_endpoint": "false",
                "mlops.stages.staging.batch.schedule": "rate(1 day)",
                "mlops.stages.staging.batch.input_prefix": "drops",
                "mlops.stages.staging.batch.output_prefix": "scored",
            }
        )


def test_a_batch_only_stage_synthesises_without_an_endpoint(batch_only: Any) -> None:
    _, assembly, _ = batch_only
    unreleased = assembly.stack("Staging-Serving", ModelPackageArn="none", ModelSha256="none")
    released = assembly.stack(
        "Staging-Serving",
        ModelPackageArn=f"arn:aws:sagemaker:{REGION}:222222222222:model-package/acme-staging-models/3",
        ModelSha256="sha256:" + "3" * 64,
    )
    for stack in (unreleased, released):
        types = {r["Type"] for r in stack.resources().values()}
        assert not types & {
            "AWS::SageMaker::Endpoint",
            "AWS::SageMaker::EndpointConfig",
            "AWS::ApplicationAutoScaling::ScalableTarget",
            "AWS::CloudWatch::Dashboard",
        }
    (model,) = released.resources("AWS::SageMaker::Model").values()
    assert model["Properties"]["ModelName"] == "acme-staging-batch-v3"
    assert not unreleased.resources("AWS::SageMaker::Model")
    # The other stages keep their endpoints.
    prod = assembly.stack("Prod-Serving", ModelPackageArn=PACKAGE, ModelSha256="sha256:" + "7" * 64)
    assert len(prod.resources("AWS::SageMaker::Endpoint")) == 1


def test_a_batch_only_stage_tells_the_release_flow_what_it_serves(batch_only: Any) -> None:
    from pipelines.deploy.targets import TargetDescriptor

    _, assembly, _ = batch_only
    stack = assembly.stack("Staging-ReleaseState")
    (value,) = [
        p["Properties"]["Value"]
        for p in stack.resources("AWS::SSM::Parameter").values()
        if p["Properties"]["Name"] == "/mlops/acme/staging/release-target"
    ]
    descriptor = TargetDescriptor.from_json(value, parameter="staging")
    assert descriptor.online_endpoint is False
    assert descriptor.batch_model_prefix == "acme-staging-batch-v"


def test_a_release_to_a_batch_only_stage_is_allowed_every_change_it_makes(
    batch_only: Any, simulator: IamSimulator
) -> None:
    from mlops_testing.handlers import changes, requests_for

    _, assembly, _ = batch_only
    group = f"arn:aws:sagemaker:{REGION}:222222222222:model-package/acme-staging-models"
    states = [
        assembly.stack("Staging-Serving", ModelPackageArn=arn, ModelSha256=sha)
        for arn, sha in (
            ("none", "none"),
            (f"{group}/1", "sha256:" + "1" * 64),
            (f"{group}/2", "sha256:" + "2" * 64),
        )
    ]
    role = states[0].role("ReleaseChangeRole")
    found = [c for a, b in ((0, 1), (1, 2), (2, 0)) for c in changes(states[a], states[b])]
    assert {(c.type_, c.operation) for c in found} == {
        ("AWS::SageMaker::Model", "create"),
        ("AWS::SageMaker::Model", "delete"),
    }
    requests: list[Request] = []
    for change in found:
        placement = requests_for(change, role)
        assert placement.unplaced == []
        requests += placement.requests
    denied = [str(d) for d in simulator.decide(requests) if not d.allowed]
    assert denied == []
    # Nothing of an endpoint: the change role cannot create one here.
    endpoint = f"arn:aws:sagemaker:{REGION}:222222222222:endpoint/acme-staging"
    assert _decide(simulator, [Request.by(role, "sagemaker:CreateEndpoint", endpoint)]) == [False]


def test_cdk_nag_finds_nothing_unsuppressed_in_a_batch_only_stage(batch_only: Any) -> None:
    from aws_cdk.assertions import Annotations, Match

    built, _, _ = batch_only
    stage = built.stages["staging"]
    for stack in (stage.serving_stack, stage.release_state_stack):
        errors = Annotations.from_stack(stack).find_error(
            "*", Match.string_like_regexp(r"AwsSolutions-.*")
        )
        assert [f"{e.id}: {e.entry.data}" for e in errors] == []


def test_cfn_lint_reports_no_errors_in_the_templates_with_a_batch_path(
    four_accounts: Any, batch_only: Any
) -> None:
    from cdk.summary import lint_template

    _, _, outdir = batch_only
    templates = [
        *Path(four_accounts.outdir).rglob("*Prod*Serving*.template.json"),
        *Path(outdir).rglob("*Staging*Serving*.template.json"),
    ]
    assert len(templates) == 2, templates
    problems = {t.name: lint_template(t) for t in templates}
    assert {name: errors for name, errors in problems.items() if errors} == {}


def test_the_release_flow_may_read_what_a_batch_only_stage_serves(
    batch_only: Any, simulator: IamSimulator
) -> None:
    # release.serving / smoke.check_batch_model: ListModels, then DescribeModel of the newest.
    _, assembly, _ = batch_only
    deploy_role = assembly.stack("Staging-ReleaseState").role("ReleaseAccessDeployRole")
    model = f"arn:aws:sagemaker:{REGION}:222222222222:model/acme-staging-batch-v3"
    requests = [
        Request.by(deploy_role, "sagemaker:ListModels", "*"),
        Request.by(deploy_role, "sagemaker:DescribeModel", model),
    ]
    assert _decide(simulator, requests) == [True, True]
