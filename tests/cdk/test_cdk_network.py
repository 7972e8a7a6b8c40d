"""A stage with a network (prod in the shipped cdk.json): every job, endpoint and function runs in
its VPC, every AWS service the code calls has an endpoint there, and nothing has a public path.

Two synths: the four-account app (prod networked with ``create: true``, as cdk.json ships it;
shared with tests/cdk and tests/deploy), and, for the model-build pipeline, which prod does not
run, one model-build stack in a stage that brings its own VPC (imported by id, no lookups).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Stage
from aws_cdk.assertions import Annotations, Match, Template

from cdk.config import AwsConfig, NetworkConfig, StageConfig, load_aws_config
from cdk.model_build_stack import ModelBuildStack
from cdk.network import (
    GATEWAY_ENDPOINTS,
    INTERFACE_ENDPOINTS,
    SAGEMAKER_CONTAINER_SERVICES,
)
from mlcore.settings import load_settings
from pipelines.deploy.approval import APPROVAL_TAG, APPROVAL_TAG_VALUE

pytestmark = pytest.mark.xdist_group("cdk_synth")

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SETTINGS = REPOSITORY_ROOT / "tests" / "fixtures" / "aws_settings.yaml"
PROD = "333333333333"
BYO = {
    "vpc_id": "vpc-0a1b2c3d4e5f60718",
    "subnet_ids": ("subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"),
    "availability_zones": ("eu-west-1a", "eu-west-1b"),
    "route_table_ids": ("rtb-0a1b2c3d4e5f60001", "rtb-0a1b2c3d4e5f60002"),
    "security_group_ids": ("sg-0a1b2c3d4e5f60009",),
}
# A boto3 client or resource for a literal service name: ``x.client("s3")``.
_CLIENT_CALL = re.compile(r"\.(?:client|resource)\(\s*[\"']([a-z0-9-]+)[\"']")
# Every client call with any first argument (a literal one or not).
_ANY_CLIENT_CALL = re.compile(r"\.(?:client|resource)\(\s*([^)\s,]+)")
#: Client calls whose service name is a variable, and why that is fine: they forward a name
#: that a literal call site elsewhere gives (and which the scan reads there).
FORWARDING_CLIENT_CALLS = {
    "deploy/targets.py": "Environment.client(service) forwards the names its callers give",
}


# --- the synths --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prod(four_accounts: Any) -> dict[str, dict[str, Any]]:
    """The templates of prod's three stacks, as JSON."""
    return {
        kind: Template.from_stack(stack).to_json()
        for kind, stack in four_accounts.stacks("prod").items()
    }


@pytest.fixture(scope="module")
def byo_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelBuildStack, Path]:
    """A model-build stack (it trains) in a stage whose network is the user's own VPC."""
    outdir = tmp_path_factory.mktemp("byo-network")
    app = App(outdir=str(outdir))
    stage = Stage(app, "Dev", env=Environment(account="111111111111", region="eu-west-1"))
    stack = ModelBuildStack(
        stage,
        "ModelBuild",
        stage_name="dev",
        stage_config=StageConfig(network=NetworkConfig(**BYO)),  # type: ignore[arg-type]
        settings=load_settings(SETTINGS),
        settings_file=SETTINGS,
        data_prefix="training-data",
        source_revision="abc123",
    )
    from aws_cdk import Aspects
    from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks

    Aspects.of(stage).add(AwsSolutionsChecks(verbose=True))
    # For its VPC rules (LambdaInsideVPC and the like), which AwsSolutions does not have.
    Aspects.of(stage).add(NIST80053R5Checks(verbose=True))
    app.synth()
    return stack, outdir


@pytest.fixture(scope="module")
def byo(byo_build: tuple[ModelBuildStack, Path]) -> dict[str, Any]:
    return Template.from_stack(byo_build[0]).to_json()


def _networked_templates(
    prod: dict[str, dict[str, Any]], byo: dict[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind, template in prod.items():
        yield f"prod/{kind}", template
    yield "byo/build", byo


# --- every job, endpoint and function runs in the network ---------------------------------------


def _custom_resource_providers(template: dict[str, Any]) -> set[str]:
    """Functions that serve only as CloudFormation custom-resource providers: they run while
    CloudFormation deploys (answering its presigned S3 response URL), hold no data, and are
    referenced by nothing but the ServiceToken of Custom:: resources."""
    resources = template["Resources"]
    providers = set()
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        users = []
        for other_id, other in resources.items():
            if other_id == logical_id:
                continue
            properties = dict(other.get("Properties", {}))
            token = properties.pop("ServiceToken", None)
            if (
                logical_id in json.dumps(properties)
                or logical_id in json.dumps(other.get("Metadata", {}))
                or (
                    token is not None
                    and logical_id in json.dumps(token)
                    and not other["Type"].startswith("Custom::")
                )
            ):
                users.append(other_id)
        referenced_as_provider = any(
            logical_id in json.dumps(r.get("Properties", {}).get("ServiceToken", ""))
            for r in resources.values()
            if r["Type"].startswith("Custom::")
        )
        if referenced_as_provider and not users:
            providers.add(logical_id)
    return providers


def _steps(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop()
        yield step
        arguments = step.get("Arguments", {})
        pending.extend(arguments.get("IfSteps", []))
        pending.extend(arguments.get("ElseSteps", []))


def _without_network(template: dict[str, Any]) -> list[str]:
    """Every job, endpoint model and function of ``template`` not placed in a VPC."""
    missing = []
    providers = _custom_resource_providers(template)
    for logical_id, resource in template["Resources"].items():
        type_, properties = resource["Type"], resource.get("Properties", {})
        if type_ == "AWS::Lambda::Function" and logical_id not in providers:
            vpc = properties.get("VpcConfig", {})
            if not vpc.get("SubnetIds") or not vpc.get("SecurityGroupIds"):
                missing.append(f"function {logical_id}")
        elif type_ == "AWS::SageMaker::Model":
            if not properties.get("VpcConfig", {}).get("Subnets"):
                missing.append(f"endpoint model {logical_id}")
        elif type_.startswith("AWS::SageMaker::") and type_.endswith("JobDefinition"):
            if not properties.get("NetworkConfig", {}).get("VpcConfig", {}).get("Subnets"):
                missing.append(f"monitor job {logical_id}")
        elif type_ == "AWS::SageMaker::MonitoringSchedule":
            inline = properties["MonitoringScheduleConfig"].get("MonitoringJobDefinition")
            if inline and not inline.get("NetworkConfig", {}).get("VpcConfig"):
                missing.append(f"monitoring schedule {logical_id}")
        elif type_ == "AWS::SageMaker::Pipeline":
            body = properties["PipelineDefinition"]["PipelineDefinitionBody"]
            text = body["Fn::Sub"][0] if isinstance(body, dict) else body
            for step in _steps(json.loads(text)):
                arguments = step.get("Arguments", {})
                if step["Type"] == "Training" and not arguments.get("VpcConfig"):
                    missing.append(f"pipeline step {step['Name']}")
                if step["Type"] == "Processing" and not arguments.get("NetworkConfig", {}).get(
                    "VpcConfig"
                ):
                    missing.append(f"pipeline step {step['Name']}")
    return missing


def test_every_job_endpoint_and_function_of_a_networked_stage_runs_in_its_vpc(
    prod: dict[str, dict[str, Any]], byo: dict[str, Any]
) -> None:
    missing = {
        name: _without_network(template) for name, template in _networked_templates(prod, byo)
    }
    assert all(not m for m in missing.values()), missing
    # The walk saw what it is meant to: functions in each stack, the model, the pipeline.
    types = {r["Type"] for _, t in _networked_templates(prod, byo) for r in t["Resources"].values()}
    assert {"AWS::Lambda::Function", "AWS::SageMaker::Model", "AWS::SageMaker::Pipeline"} <= types


def test_the_walk_finds_a_function_or_job_left_outside_the_network(
    prod: dict[str, dict[str, Any]], byo: dict[str, Any]
) -> None:
    serving = json.loads(json.dumps(prod["serving"]))
    function = next(
        logical_id
        for logical_id, r in serving["Resources"].items()
        if r["Type"] == "AWS::Lambda::Function" and "VpcConfig" in r["Properties"]
    )
    del serving["Resources"][function]["Properties"]["VpcConfig"]
    build = json.loads(json.dumps(byo))
    pipeline = next(
        r for r in build["Resources"].values() if r["Type"] == "AWS::SageMaker::Pipeline"
    )
    body = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"]
    definition = json.loads(body[0])
    for step in _steps(definition):
        step.get("Arguments", {}).pop("VpcConfig", None)
    body[0] = json.dumps(definition)
    assert _without_network(serving) == [f"function {function}"]
    assert _without_network(build) == ["pipeline step Train"]


def test_containers_that_need_no_network_run_isolated(
    prod: dict[str, dict[str, Any]], byo: dict[str, Any]
) -> None:
    models = [
        r["Properties"]
        for r in prod["serving"]["Resources"].values()
        if r["Type"] == "AWS::SageMaker::Model"
    ]
    assert models and all(m["EnableNetworkIsolation"] is True for m in models)
    pipeline = next(r for r in byo["Resources"].values() if r["Type"] == "AWS::SageMaker::Pipeline")
    body = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"][0]
    jobs = [s for s in _steps(json.loads(body)) if s["Type"] in ("Training", "Processing")]
    assert {s["Name"] for s in jobs} == {"Prep", "Train", "Evaluate", "EvaluateVsChampion"}
    for step in jobs:
        arguments = step["Arguments"]
        settings = arguments if step["Type"] == "Training" else arguments["NetworkConfig"]
        assert settings["EnableNetworkIsolation"] is True, step["Name"]
        assert settings["EnableInterContainerTrafficEncryption"] is True, step["Name"]


def test_no_principal_of_a_networked_stage_may_start_a_job_outside_it(
    prod: dict[str, dict[str, Any]], byo: dict[str, Any]
) -> None:
    starts = []
    for name, template in _networked_templates(prod, byo):
        for resource in template["Resources"].values():
            if resource["Type"] != "AWS::IAM::Policy":
                continue
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                actions = statement["Action"]
                actions = [actions] if isinstance(actions, str) else actions
                if not any(re.fullmatch(r"sagemaker:Create\w+Job", a) for a in actions):
                    continue
                if actions == ["sagemaker:CreateTransformJob"]:
                    # A transform job runs in its model's VPC and the action has no VPC keys:
                    # the starter may use only this stage's batch models (each in the VPC, by
                    # the walk above).
                    assert "sagemaker:ModelArn" in statement["Condition"]["ArnLike"], statement
                    continue
                starts.append(name)
                condition = statement.get("Condition", {})
                assert condition.get("Null") == {"sagemaker:VpcSubnets": "false"}, statement
                subnets = condition["ForAllValues:StringEquals"]["sagemaker:VpcSubnets"]
                assert subnets, statement
    # The monitor starter (prod) and the pipeline role (the model-build stack).
    assert "prod/serving" in starts and "byo/build" in starts


def test_a_monitor_job_runs_in_the_subnets_its_starter_is_given() -> None:
    from pipelines.monitoring.jobs import MonitorJobConfig, processing_job_request

    environment = {
        "ENDPOINT_NAME": "acme-prod",
        "CAPTURE_S3_URI": "s3://a/capture",
        "REPORTS_S3_URI": "s3://a/reports",
        "MODEL_PACKAGE_PARAMETER": "/p",
        "SETTINGS_S3_URI": "s3://a/mlops.yaml",
        "IMAGE_URI": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/mlcore:1",
        "ROLE_ARN": "arn:aws:iam::111111111111:role/job",
        "STATE_TABLE": "t",
        "KMS_KEY_ARN": "arn:aws:kms:eu-west-1:111111111111:key/k",
        "SUBNET_IDS": "subnet-1,subnet-2",
        "SECURITY_GROUP_IDS": "sg-1",
        "DRIFT_ENGINE": "spark",
        "SPARK_IMAGE_URI": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/spark:1",
    }
    config = MonitorJobConfig.from_environment(environment)
    for spark in (False, True):
        request = processing_job_request(
            config,
            job_name="j",
            command=["mlcore", "drift"],
            inputs=[],
            report_uri="s3://a/r",
            spark=spark,
            environment={},
            tags={},
        )
        network = request["NetworkConfig"]
        assert network["VpcConfig"] == {
            "Subnets": ["subnet-1", "subnet-2"],
            "SecurityGroupIds": ["sg-1"],
        }
        assert network["EnableInterContainerTrafficEncryption"] is True
        # Spark reads S3 itself (through the VPC's endpoint); the mlcore job needs no network.
        assert network["EnableNetworkIsolation"] is (not spark)
    with pytest.raises(ValueError, match="both SUBNET_IDS and SECURITY_GROUP_IDS"):
        MonitorJobConfig.from_environment({**environment, "SECURITY_GROUP_IDS": ""})


# --- security groups: HTTPS to the endpoints, nothing public ----------------------------------


def _egress_rules(template: dict[str, Any]) -> list[dict[str, Any]]:
    rules = []
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::EC2::SecurityGroup":
            rules.extend(resource["Properties"].get("SecurityGroupEgress", []))
        elif resource["Type"] == "AWS::EC2::SecurityGroupEgress":
            rules.append(resource["Properties"])
    return rules


def test_workloads_may_send_https_to_the_vpc_endpoints_only(
    prod: dict[str, dict[str, Any]], byo: dict[str, Any]
) -> None:
    for name, template in (("prod", prod["build"]), ("byo", byo)):
        rules = _egress_rules(template)
        assert rules, name
        for rule in rules:
            if rule.get("CidrIp") == "255.255.255.255/32":
                continue  # CDK's "disallow all traffic" placeholder of a group with no egress
            assert rule.get("CidrIp") != "0.0.0.0/0" and rule.get("CidrIpv6") != "::/0", rule
            to_self = "DestinationSecurityGroupId" in rule and rule["FromPort"] == 0
            if not to_self:
                assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 443, 443)
                assert "DestinationSecurityGroupId" in rule or "DestinationPrefixListId" in rule


def test_interface_endpoints_admit_https_from_the_workload_groups_only(
    prod: dict[str, dict[str, Any]],
) -> None:
    resources = prod["build"]["Resources"]
    group = next(
        logical_id
        for logical_id in resources
        if logical_id.startswith("NetworkEndpointSecurityGroup")
    )
    ingress = resources[group]["Properties"].get("SecurityGroupIngress", []) + [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::EC2::SecurityGroupIngress"
        and group in json.dumps(r["Properties"]["GroupId"])
    ]
    assert len(ingress) == 2
    for rule in ingress:
        assert "CidrIp" not in rule and rule["FromPort"] == 443 and rule["ToPort"] == 443
        assert "SourceSecurityGroupId" in rule


# --- endpoints for every service the code calls -----------------------------------------------


def _function_assets(outdir: Path, template: dict[str, Any]) -> list[Path]:
    """The code asset folders of the template's Lambda functions (as deployed)."""
    providers = _custom_resource_providers(template)
    folders = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function" or logical_id in providers:
            continue
        key = resource["Properties"]["Code"]["S3Key"]
        digest = key.removesuffix(".zip")
        found = sorted(outdir.rglob(f"asset.{digest}"))
        assert found, f"no asset folder for {logical_id} ({key}) under {outdir}"
        folders.append(found[0])
    return folders


def services_called(folders: list[Path]) -> dict[str, set[str]]:
    """The boto3 service names the code in ``folders`` creates clients for, by file."""
    calls: dict[str, set[str]] = {}
    for folder in folders:
        for path in folder.rglob("*.py"):
            text = path.read_text()
            relative = str(path.relative_to(folder))
            literal = set(_CLIENT_CALL.findall(text))
            forwarded = [a for a in _ANY_CLIENT_CALL.findall(text) if not a.startswith(("'", '"'))]
            if forwarded:
                assert relative in FORWARDING_CLIENT_CALLS, (
                    f"{relative} creates a client for a service given by a variable "
                    f"({forwarded}): the scan cannot tell which service; use a literal name "
                    "or list the file in FORWARDING_CLIENT_CALLS with the reason"
                )
            if literal:
                calls.setdefault(relative, set()).update(literal)
    return calls


def _endpoint_services(template: dict[str, Any]) -> set[str]:
    """The endpoint service suffixes (``sagemaker.api``, ``s3``) of the template's endpoints."""
    services = set()
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::EC2::VPCEndpoint":
            continue
        name = resource["Properties"]["ServiceName"]
        text = (
            name
            if isinstance(name, str)
            else "".join(part if isinstance(part, str) else "" for part in name["Fn::Join"][1])
        )
        services.add(re.sub(r"^com\.amazonaws\.([a-z0-9-]+\.)?", "", text).lstrip("."))
    return services


def test_every_aws_service_the_networked_stages_code_calls_has_a_vpc_endpoint(
    four_accounts: Any,
    prod: dict[str, dict[str, Any]],
    byo_build: tuple[ModelBuildStack, Path],
    byo: dict[str, Any],
) -> None:
    folders = [
        folder
        for template in prod.values()
        for folder in _function_assets(four_accounts.outdir, template)
    ] + _function_assets(byo_build[1], byo)
    calls = services_called(folders)
    called = set().union(*calls.values())
    # The scan read the control-plane code: the release, monitors, retrain gate, CheckInputs.
    assert {"s3", "sagemaker", "ssm", "dynamodb", "cloudwatch", "events"} <= called, calls
    needed = called | set(SAGEMAKER_CONTAINER_SERVICES)
    mapped = {**GATEWAY_ENDPOINTS, **INTERFACE_ENDPOINTS}
    unmapped = sorted(needed - set(mapped))
    assert not unmapped, (
        f"the code calls {unmapped}, which cdk.network maps to no VPC endpoint: add them to "
        "GATEWAY_ENDPOINTS or INTERFACE_ENDPOINTS"
    )
    present = _endpoint_services(prod["build"])
    missing = sorted({mapped[s] for s in needed} - present)
    assert not missing, f"prod's VPC has no endpoint for {missing}"


def test_the_scan_sees_a_client_the_endpoints_do_not_cover(tmp_path: Path) -> None:
    (tmp_path / "handler.py").write_text('import boto3\nsqs = boto3.client("sqs")\n')
    assert services_called([tmp_path]) == {"handler.py": {"sqs"}}
    assert "sqs" not in {**GATEWAY_ENDPOINTS, **INTERFACE_ENDPOINTS}
    (tmp_path / "other.py").write_text("def f(s, name):\n    return s.client(name)\n")
    with pytest.raises(AssertionError, match="given by a variable"):
        services_called([tmp_path])


def test_mlcore_calls_no_aws_service() -> None:
    # The jobs' own code (mlcore) runs isolated: it must need no endpoint at all.
    source = REPOSITORY_ROOT / "src" / "mlcore"
    offenders = [
        str(p.relative_to(source))
        for p in source.rglob("*.py")
        if re.search(r"^\s*(import|from)\s+(boto3|botocore|s3fs)\b", p.read_text(), re.M)
    ]
    assert offenders == []


def test_endpoint_policies_admit_only_principals_of_the_accounts_acting_in_the_stage(
    prod: dict[str, dict[str, Any]],
) -> None:
    endpoints = [
        r["Properties"]
        for r in prod["build"]["Resources"].values()
        if r["Type"] == "AWS::EC2::VPCEndpoint"
    ]
    assert len(endpoints) == len(GATEWAY_ENDPOINTS) + len(INTERFACE_ENDPOINTS)
    for endpoint in endpoints:
        statements = endpoint["PolicyDocument"]["Statement"]
        scoped = [s for s in statements if s.get("Sid") == "PrincipalsOfTheStageAccounts"]
        assert len(scoped) == 1, endpoint["ServiceName"]
        assert scoped[0]["Condition"] == {"StringEquals": {"aws:PrincipalAccount": [PROD]}}
        for statement in statements:
            if statement.get("Sid") == "EcrImageLayers":
                # ECR signs layer downloads itself: only that bucket's objects, read only.
                assert statement["Action"] == "s3:GetObject"
                assert "starport-layer-bucket/*" in json.dumps(statement["Resource"])
            else:
                assert "Condition" in statement
    interface = [e for e in endpoints if e.get("VpcEndpointType") == "Interface"]
    assert interface and all(e["PrivateDnsEnabled"] is True for e in interface)


def test_the_model_build_stage_admits_the_accounts_its_release_acts_in() -> None:
    from cdk.stage import network_accounts

    config = _config({"dev": {"account": "111111111111"}, "prod": {"account": PROD}})
    assert network_accounts(config, "dev") == ["111111111111", PROD]
    assert network_accounts(config, "prod") == [PROD]


# --- the VPC the kit creates ----------------------------------------------------------------


def test_the_created_vpc_has_private_isolated_subnets_in_two_zones_and_no_public_path(
    prod: dict[str, dict[str, Any]],
) -> None:
    resources = prod["build"]["Resources"].values()
    types = [r["Type"] for r in resources]
    assert types.count("AWS::EC2::Subnet") == 2
    for forbidden in ("AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::EIP"):
        assert forbidden not in types
    assert all(
        r["Properties"].get("MapPublicIpOnLaunch") is False
        for r in resources
        if r["Type"] == "AWS::EC2::Subnet"
    )
    zones = {
        json.dumps(r["Properties"]["AvailabilityZone"])
        for r in resources
        if r["Type"] == "AWS::EC2::Subnet"
    }
    assert len(zones) == 2


def test_flow_logs_go_to_a_kms_encrypted_log_group(prod: dict[str, dict[str, Any]]) -> None:
    resources = prod["build"]["Resources"]
    flow_log = next(r for r in resources.values() if r["Type"] == "AWS::EC2::FlowLog")
    assert flow_log["Properties"]["TrafficType"] == "ALL"
    group = resources[flow_log["Properties"]["LogGroupName"]["Ref"]]
    key = group["Properties"]["KmsKeyId"]["Fn::GetAtt"][0]
    assert resources[key]["Properties"]["EnableKeyRotation"] is True


def test_a_vpc_of_your_own_is_imported_by_its_ids_without_lookups(
    byo: dict[str, Any], byo_build: tuple[ModelBuildStack, Path]
) -> None:
    types = {r["Type"] for r in byo["Resources"].values()}
    assert "AWS::EC2::VPC" not in types and "AWS::EC2::Subnet" not in types
    text = json.dumps(byo)
    for value in (
        BYO["vpc_id"],
        *BYO["subnet_ids"],
        *BYO["route_table_ids"],
        *BYO["security_group_ids"],
    ):
        assert value in text
    # No context lookup was needed (synth stays offline): nothing is missing from the manifest.
    manifest = json.loads((byo_build[1] / "manifest.json").read_text())
    assert not manifest.get("missing")


# --- checks over the networked stage ----------------------------------------------------------


PROVIDER = "AWS679f53fac002430cb0da5b7982bd2287"
VPC_RULES = re.compile(r"AwsSolutions-(VPC\d+|EC2\d+|SM\d+|L1)")


def test_cdk_nag_vpc_rules_pass_without_suppressions_in_the_networked_stage(
    four_accounts: Any, byo_build: tuple[ModelBuildStack, Path]
) -> None:
    reports = [
        *four_accounts.outdir.glob("assembly-*Prod*/AwsSolutions-*NagReport.csv"),
        *four_accounts.outdir.glob("AwsSolutions-Prod-*NagReport.csv"),
        *byo_build[1].glob("**/AwsSolutions-*NagReport.csv"),
    ]
    assert reports
    rows = [
        row for report in reports for row in list(csv.reader(report.read_text().splitlines()))[1:]
    ]
    vpc_rows = [row for row in rows if VPC_RULES.match(row[0])]
    assert vpc_rows, "the reports list the VPC rules"
    assert {row[2] for row in rows} <= {"Compliant", "Non-Compliant", "Suppressed", "N/A"}, rows[:3]
    suppressed = [row[:3] for row in vpc_rows if row[2] == "Suppressed"]
    broken = [row[:3] for row in vpc_rows if row[2] == "Non-Compliant"]
    assert suppressed == [] and broken == []
    errors = Annotations.from_stack(byo_build[0]).find_error(
        "*", Match.string_like_regexp("AwsSolutions-.*")
    )
    assert errors == [], [str(e.entry.data)[:200] for e in errors]


def test_nist_vpc_rules_find_no_function_outside_the_vpc(
    byo_build: tuple[ModelBuildStack, Path],
) -> None:
    annotations = Annotations.from_stack(byo_build[0])
    # CDK's deploy-time custom-resource provider (the prefix-list lookup) stays outside: it
    # runs only while CloudFormation deploys and holds no data (see _custom_resource_providers).
    found = [
        f"{a.id}: {str(a.entry.data)[:160]}"
        for a in (
            *annotations.find_error("*", Match.string_like_regexp("NIST.800.53.R5-.*VPC.*")),
            *annotations.find_warning("*", Match.string_like_regexp("NIST.800.53.R5-.*VPC.*")),
        )
        if PROVIDER not in a.id
    ]
    # The pack did run: it reports on other things in this stack.
    assert annotations.find_error("*", Match.string_like_regexp("NIST.800.53.R5-.*"))
    assert found == []


def test_cfn_lint_reports_no_errors_in_the_networked_model_build_stacks(
    four_accounts: Any, byo_build: tuple[ModelBuildStack, Path]
) -> None:
    files = [
        str(p)
        for p in (
            *four_accounts.outdir.glob("assembly-*Prod*/*ModelBuild*.template.json"),
            *byo_build[1].glob("**/*ModelBuild*.template.json"),
        )
    ]
    assert len(files) == 2
    result = subprocess.run(
        [sys.executable, "-m", "cfnlint", "--format", "json", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [f for f in json.loads(result.stdout or "[]") if f["Level"] == "Error"]
    assert errors == [], errors[:5]


# --- configuration --------------------------------------------------------------------------


def _config(stages: dict[str, Any]) -> AwsConfig:
    return load_aws_config(
        {
            "mlops": {
                "source": {"provider": "codecommit", "repository": "r"},
                "stages": stages,
            }
        }
    )


def test_the_shipped_cdk_json_networks_prod_and_leaves_dev_without() -> None:
    from cdk.assembly import cdk_json_context

    stages = load_aws_config(cdk_json_context(REPOSITORY_ROOT)).stages
    assert stages["prod"].network == NetworkConfig(create=True)
    assert stages["dev"].network is None


@pytest.mark.parametrize(
    ("network", "message"),
    [
        ({"create": True, "vpc_id": BYO["vpc_id"]}, "either the kit creates the VPC"),
        ({}, "needs create: true"),
        (
            {
                **BYO,
                "subnet_ids": BYO["subnet_ids"][:1],
                "availability_zones": ["eu-west-1a"],
                "route_table_ids": ["rtb-0a1b2c3d4e5f60001"],
            },
            "at least two availability zones",
        ),
        ({**BYO, "availability_zones": ["eu-west-1a"]}, "each subnet's zone"),
        ({**BYO, "availability_zones": ["eu-west-1a", "eu-west-1a"]}, "at least two availability"),
        ({**BYO, "route_table_ids": []}, "each subnet's route table"),
        ({**BYO, "create_endpoints": False}, "give network.vpc_cidr"),
        ({**BYO, "create_endpoints": False, "vpc_cidr": "10.1.0.0/16"}, "s3_vpc_endpoint_id"),
        ({**BYO, "security_group_ids": ["default"]}, "security group ids"),
        ({**BYO, "bucket_access_from_outside": ["alice"]}, "IAM role or user ARNs"),
        ({"create": True, "subnet_ids": BYO["subnet_ids"]}, "remove them"),
    ],
)
def test_a_network_section_that_cannot_work_is_refused_with_the_fix(
    network: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        _config({"dev": {}, "prod": {"network": network}})


def test_a_networked_stage_refuses_a_serverless_endpoint_and_a_tracking_server() -> None:
    with pytest.raises(ValueError, match="serverless inference runs in no VPC"):
        _config({"dev": {"serverless_inference": True, "network": {"create": True}}})
    with pytest.raises(ValueError, match="cannot reach a tracking server"):
        _config({"dev": {"mlflow": {"enabled": True}, "network": {"create": True}}})


def test_a_networked_model_build_stage_releases_within_its_region_only() -> None:
    with pytest.raises(ValueError, match="serve its own region"):
        _config(
            {
                "dev": {
                    "account": "111111111111",
                    "region": "eu-west-1",
                    "network": {"create": True},
                },
                "prod": {"account": PROD, "region": "us-east-1"},
            }
        )


# --- the buckets of a networked stage: through its S3 endpoint only ----------------------------


@pytest.fixture(scope="module")
def prod_buckets(four_accounts: Any) -> Any:
    from mlops_testing.cloudformation import CloudAssembly

    return _ProdBuckets(CloudAssembly.load(four_accounts.outdir))


class _ProdBuckets:
    """Prod's artifact bucket, its policy, its S3 endpoint, and the roles acting on it."""

    def __init__(self, assembly: Any) -> None:
        self.assembly = assembly
        build = assembly.stack("Prod-ModelBuild")
        self.build = build
        endpoint = build.logical_id("NetworkS3Endpoint", "AWS::EC2::VPCEndpoint")
        self.endpoint_id = build.ref(endpoint)
        bucket = build.logical_id("ArtifactStoreArtifacts", "AWS::S3::Bucket")
        self.bucket = build.physical_name(bucket)
        self.policy = assembly.resource_policy(f"arn:aws:s3:::{self.bucket}")
        serving = assembly.stack("Prod-Serving")
        self.monitor_job_role = serving.role("MonitorsJobRole")
        self.endpoint_role = serving.role("EndpointExecutionRole")
        self.deploy_role = assembly.stack("Prod-ReleaseState").role("ReleaseAccessDeployRole")
        self.dev_release_role = assembly.stack("Dev-Serving").role("ReleaseDeployRole")

    def request(self, role: Any, action: str, key: str, **context: str) -> Any:
        from mlops_testing.iam import Request

        resource = f"arn:aws:s3:::{self.bucket}" + (f"/{key}" if key else "")
        return Request.by(
            role,
            action,
            resource,
            resource_account=PROD,
            resource_policy=self.policy,
            context={"aws:SecureTransport": "true", **context},
        )


def test_prods_buckets_refuse_data_access_from_outside_its_s3_endpoint(
    prod_buckets: _ProdBuckets,
) -> None:
    from mlops_testing.iam import IamSimulator

    b = prod_buckets
    capture = "data-capture/acme-prod/AllTraffic/2026/01/01/00/capture.jsonl"
    inside, outside, other_vpc = IamSimulator().decide(
        [
            b.request(
                b.monitor_job_role, "s3:GetObject", capture, **{"aws:SourceVpce": b.endpoint_id}
            ),
            b.request(b.monitor_job_role, "s3:GetObject", capture),
            b.request(
                b.monitor_job_role,
                "s3:GetObject",
                capture,
                **{"aws:SourceVpce": "vpce-0123456789abcdef0"},
            ),
        ]
    )
    assert inside.allowed, inside
    assert outside.result == "ExplicitlyDenied", outside
    assert other_vpc.result == "ExplicitlyDenied", other_vpc


def test_the_release_still_copies_a_model_into_prod_from_the_model_build_account(
    prod_buckets: _ProdBuckets,
) -> None:
    """The release functions run in dev (dev has no network in cdk.json: public S3; with one,
    dev's own endpoint) and copy into prod's bucket as prod's deploy role: allowed from both."""
    from mlops_testing.iam import IamSimulator

    b = prod_buckets
    archive = "promoted/acme-dev-models/3/model/model.tar.gz"
    decisions = IamSimulator().decide(
        [
            b.request(b.deploy_role, "s3:PutObject", archive),
            b.request(
                b.deploy_role,
                "s3:PutObject",
                archive,
                **{"aws:SourceVpce": "vpce-0dev0dev0dev0dev0"},
            ),
            b.request(b.deploy_role, "s3:GetObject", archive),
            # SageMaker checks and fetches the model data as the endpoint's role (prod's
            # endpoint reads archives approved in prod only: the recorder's tag).
            b.request(
                b.endpoint_role,
                "s3:GetObject",
                archive,
                **{f"s3:ExistingObjectTag/{APPROVAL_TAG}": APPROVAL_TAG_VALUE},
            ),
        ]
    )
    assert all(d.allowed for d in decisions), [str(d) for d in decisions if not d.allowed]


def test_nobody_else_reads_prods_data_from_outside_not_even_an_administrator(
    prod_buckets: _ProdBuckets,
) -> None:
    from mlops_testing.iam import IamSimulator, Request

    b = prod_buckets
    admin = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    bucket_arn = f"arn:aws:s3:::{b.bucket}"
    as_admin = [
        Request(
            principal=f"arn:aws:iam::{PROD}:role/Admin",
            action=action,
            resource=resource,
            resource_account=PROD,
            identity_policies=(admin,),
            resource_policy=b.policy,
            context={
                "aws:SecureTransport": "true",
                "aws:PrincipalArn": f"arn:aws:iam::{PROD}:role/Admin",
                "aws:PrincipalIsAWSService": "false",
                **({"s3:prefix": ""} if action == "s3:ListBucket" else {}),
            },
        )
        for action, resource in (
            ("s3:GetObject", f"{bucket_arn}/promoted/acme-dev-models/3/model/model.tar.gz"),
            ("s3:ListBucket", bucket_arn),
            # Managing the bucket stays possible (CloudFormation updates its policy).
            ("s3:PutBucketPolicy", bucket_arn),
        )
    ]
    # dev's release functions acting as themselves (not through prod's deploy role).
    direct = b.request(b.dev_release_role, "s3:GetObject", "promoted/x/model/model.tar.gz")
    read, listing, manage, from_dev = IamSimulator().decide([*as_admin, direct])
    assert read.result == "ExplicitlyDenied", read
    assert listing.result == "ExplicitlyDenied", listing
    assert manage.allowed, manage
    assert not from_dev.allowed, from_dev


def test_pipeline_targets_take_subnets_and_groups_together_and_no_tracking_server() -> None:
    from pipelines.sagemaker.definition import PipelineTargets

    base = {
        "role_arn": "arn:aws:iam::111111111111:role/job",
        "image_uri": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/mlcore:1",
        "artifact_bucket": "artifacts",
        "model_package_group_name": "acme-models",
        "default_input_data_url": "s3://data/training-data/",
        "region": "eu-west-1",
        "settings_s3_uri": "s3://assets/mlops.yaml",
        "check_function_arn": "arn:aws:lambda:eu-west-1:111111111111:function:check",
    }
    with pytest.raises(ValueError, match="both subnet_ids and security_group_ids"):
        PipelineTargets(**base, subnet_ids=("subnet-1",))
    with pytest.raises(ValueError, match="cannot reach a tracking server"):
        PipelineTargets(
            **base,
            subnet_ids=("subnet-1",),
            security_group_ids=("sg-1",),
            tracking_uri="arn:aws:sagemaker:eu-west-1:111111111111:mlflow-tracking-server/t",
        )


def test_a_vpc_with_its_own_endpoints_gets_https_within_the_vpc_and_no_new_endpoints() -> None:
    from aws_cdk import Stack

    from cdk.network import StageNetwork

    app = App()
    stage = Stage(app, "Prod", env=Environment(account=PROD, region="eu-west-1"))
    stack = Stack(stage, "Build")
    config = NetworkConfig(
        **{
            **BYO,
            "create_endpoints": False,
            "vpc_cidr": "10.1.0.0/16",
            "s3_vpc_endpoint_id": "vpce-0a1b2c3d4e5f60003",
            "s3_prefix_list_id": "pl-6da54004",
            "dynamodb_prefix_list_id": "pl-6fa54006",
        }
    )
    network = StageNetwork(stack, "Network", config=config, principal_accounts=[PROD])
    assert StageNetwork.of(stack) is network
    assert network.s3_endpoint_id == "vpce-0a1b2c3d4e5f60003"
    template = Template.from_stack(stack).to_json()
    types = [r["Type"] for r in template["Resources"].values()]
    assert "AWS::EC2::VPCEndpoint" not in types and "AWS::Lambda::Function" not in types
    https = {
        (rule.get("CidrIp"), rule.get("DestinationPrefixListId"))
        for rule in _egress_rules(template)
        if rule.get("FromPort") == 443
    }
    assert https == {
        ("10.1.0.0/16", None),
        (None, "pl-6da54004"),
        (None, "pl-6fa54006"),
    }
