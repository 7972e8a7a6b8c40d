"""Synthesised CloudFormation templates, resolved the way CloudFormation would resolve them.

Tests that evaluate IAM (tests/support/mlops_testing/iam.py) need concrete ARNs, not
``{"Fn::GetAtt": [...]}``: this module reads a cloud assembly (``cdk.out``, nested stage
assemblies included), gives every resource a deterministic physical name in the account and
region of its stack, and resolves ``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub``,
``Fn::Select``, ``Fn::Split``, ``Fn::If``, ``Fn::ImportValue`` (across stacks of the
assembly), condition functions and the pseudo parameters.

A stack is resolved for one set of parameter values, so a test can look at both states of a
condition a release flips (``stack.with_parameters(ModelPackageArn="none")``). Resources whose
condition is false are absent, as CloudFormation would leave them.

Unknown resource types or attributes raise: a new resource type in the app then needs its ARN
format here (from the service authorization reference), rather than a silently wrong guess.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"


class UnresolvableError(ValueError):
    """A template holds something this resolver cannot turn into a concrete value."""


@dataclass(frozen=True)
class _TypeRule:
    """How CloudFormation names one resource type: what ``Ref`` returns and the ARN format."""

    ref: str  # "name", "arn" or "id"
    arn: str  # format with {partition} {region} {account} {name} {id}
    name_property: str | None
    lowercase_name_in_arn: bool = False
    attributes: tuple[str, ...] = ()  # GetAtt attributes that return the name
    id_attributes: tuple[str, ...] = ()  # GetAtt attributes that return the physical id
    id_prefix: str | None = None  # EC2 ids look like vpc-0123...: Ref returns <prefix>-<hex>


# What Ref returns and the ARN formats, per the CloudFormation resource reference and the
# service authorization reference. Only the types the app uses (and close relatives).
_TYPES: dict[str, _TypeRule] = {
    "AWS::S3::Bucket": _TypeRule("name", "arn:{partition}:s3:::{name}", "BucketName"),
    "AWS::IAM::Role": _TypeRule("name", "arn:{partition}:iam::{account}:role/{name}", "RoleName"),
    "AWS::IAM::ManagedPolicy": _TypeRule(
        "arn", "arn:{partition}:iam::{account}:policy/{name}", "ManagedPolicyName"
    ),
    "AWS::IAM::Policy": _TypeRule("id", "", "PolicyName"),
    "AWS::KMS::Key": _TypeRule("id", "arn:{partition}:kms:{region}:{account}:key/{id}", None),
    "AWS::KMS::Alias": _TypeRule(
        "name", "arn:{partition}:kms:{region}:{account}:{name}", "AliasName"
    ),
    "AWS::Lambda::Function": _TypeRule(
        "name", "arn:{partition}:lambda:{region}:{account}:function:{name}", "FunctionName"
    ),
    "AWS::Lambda::Permission": _TypeRule("id", "", None),
    "AWS::DynamoDB::Table": _TypeRule(
        "name", "arn:{partition}:dynamodb:{region}:{account}:table/{name}", "TableName"
    ),
    "AWS::Events::EventBus": _TypeRule(
        "name", "arn:{partition}:events:{region}:{account}:event-bus/{name}", "Name"
    ),
    "AWS::Events::Rule": _TypeRule(
        "name", "arn:{partition}:events:{region}:{account}:rule/{name}", "Name"
    ),
    "AWS::Events::EventBusPolicy": _TypeRule("id", "", None),
    "AWS::Logs::LogGroup": _TypeRule(
        "name", "arn:{partition}:logs:{region}:{account}:log-group:{name}:*", "LogGroupName"
    ),
    "AWS::CodeBuild::Project": _TypeRule(
        "name", "arn:{partition}:codebuild:{region}:{account}:project/{name}", "Name"
    ),
    "AWS::CodePipeline::Pipeline": _TypeRule(
        "name", "arn:{partition}:codepipeline:{region}:{account}:{name}", "Name"
    ),
    "AWS::CloudWatch::Alarm": _TypeRule(
        "name", "arn:{partition}:cloudwatch:{region}:{account}:alarm:{name}", "AlarmName"
    ),
    "AWS::CloudWatch::Dashboard": _TypeRule(
        "name", "arn:{partition}:cloudwatch::{account}:dashboard/{name}", "DashboardName"
    ),
    "AWS::SNS::Topic": _TypeRule(
        "arn",
        "arn:{partition}:sns:{region}:{account}:{name}",
        "TopicName",
        attributes=("TopicName",),
    ),
    "AWS::SNS::TopicPolicy": _TypeRule("id", "", None),
    "AWS::SQS::Queue": _TypeRule(
        "url",
        "arn:{partition}:sqs:{region}:{account}:{name}",
        "QueueName",
        attributes=("QueueName",),
    ),
    "AWS::StepFunctions::StateMachine": _TypeRule(
        "arn",
        "arn:{partition}:states:{region}:{account}:stateMachine:{name}",
        "StateMachineName",
        attributes=("Name",),
    ),
    "AWS::SSM::Parameter": _TypeRule(
        "name", "arn:{partition}:ssm:{region}:{account}:parameter/{name}", "Name"
    ),
    "AWS::Scheduler::Schedule": _TypeRule(
        "name", "arn:{partition}:scheduler:{region}:{account}:schedule/default/{name}", "Name"
    ),
    "AWS::ECR::Repository": _TypeRule(
        "name", "arn:{partition}:ecr:{region}:{account}:repository/{name}", "RepositoryName"
    ),
    "AWS::ApplicationAutoScaling::ScalableTarget": _TypeRule(
        "id",
        "arn:{partition}:application-autoscaling:{region}:{account}:scalable-target/{id}",
        None,
    ),
    "AWS::ApplicationAutoScaling::ScalingPolicy": _TypeRule("arn", "", "PolicyName"),
    "AWS::S3::BucketPolicy": _TypeRule("id", "", None),
    # EC2 resources: Ref (and GroupId) return the resource's id, e.g. vpce-... (the value of
    # aws:SourceVpce on the requests an endpoint carries).
    "AWS::EC2::VPCEndpoint": _TypeRule(
        "id", "arn:{partition}:ec2:{region}:{account}:vpc-endpoint/{id}", None, id_prefix="vpce"
    ),
    "AWS::EC2::VPC": _TypeRule(
        "id", "arn:{partition}:ec2:{region}:{account}:vpc/{id}", None, id_prefix="vpc"
    ),
    "AWS::EC2::Subnet": _TypeRule(
        "id", "arn:{partition}:ec2:{region}:{account}:subnet/{id}", None, id_prefix="subnet"
    ),
    "AWS::EC2::SecurityGroup": _TypeRule(
        "id",
        "arn:{partition}:ec2:{region}:{account}:security-group/{id}",
        None,
        id_attributes=("GroupId",),
        id_prefix="sg",
    ),
    # SageMaker writes resource names in lower case into its ARNs.
    "AWS::SageMaker::Model": _TypeRule(
        "arn",
        "arn:{partition}:sagemaker:{region}:{account}:model/{name}",
        "ModelName",
        lowercase_name_in_arn=True,
        attributes=("ModelName",),
    ),
    "AWS::SageMaker::EndpointConfig": _TypeRule(
        "arn",
        "arn:{partition}:sagemaker:{region}:{account}:endpoint-config/{name}",
        "EndpointConfigName",
        lowercase_name_in_arn=True,
        attributes=("EndpointConfigName",),
    ),
    "AWS::SageMaker::Endpoint": _TypeRule(
        "arn",
        "arn:{partition}:sagemaker:{region}:{account}:endpoint/{name}",
        "EndpointName",
        lowercase_name_in_arn=True,
        attributes=("EndpointName",),
    ),
    "AWS::SageMaker::ModelPackageGroup": _TypeRule(
        "arn",
        "arn:{partition}:sagemaker:{region}:{account}:model-package-group/{name}",
        "ModelPackageGroupName",
        lowercase_name_in_arn=True,
    ),
    "AWS::SageMaker::Pipeline": _TypeRule(
        "name",
        "arn:{partition}:sagemaker:{region}:{account}:pipeline/{name}",
        "PipelineName",
        lowercase_name_in_arn=True,
    ),
    "AWS::SageMaker::ModelCard": _TypeRule(
        "arn",
        "arn:{partition}:sagemaker:{region}:{account}:model-card/{name}",
        "ModelCardName",
        lowercase_name_in_arn=True,
    ),
}

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


@dataclass(frozen=True)
class StackArtifact:
    """One ``aws:cloudformation:stack`` artifact of the assembly."""

    artifact_id: str
    stack_name: str
    account: str
    region: str
    template: Mapping[str, Any]
    cloudformation_execution_role: str | None
    deploy_role: str | None


class CloudAssembly:
    """Every stack of a synthesised app (nested stage assemblies included), by stack name."""

    def __init__(self, artifacts: list[StackArtifact]) -> None:
        self.artifacts = {artifact.stack_name: artifact for artifact in artifacts}

    @classmethod
    def load(cls, outdir: Path | str) -> CloudAssembly:
        return cls(list(_read_assembly(Path(outdir))))

    def stack(self, name: str, **parameters: str) -> ResolvedStack:
        """The stack whose name is ``name`` (or ends with it, e.g. ``"Prod-Serving"``)."""
        matches = [
            artifact
            for stack_name, artifact in self.artifacts.items()
            if stack_name == name or stack_name.endswith(name) or artifact.artifact_id == name
        ]
        if len(matches) != 1:
            raise KeyError(
                f"{len(matches)} stacks match {name!r}; stacks: {sorted(self.artifacts)}"
            )
        return ResolvedStack(self, matches[0], dict(parameters))

    def stacks(self) -> Iterator[ResolvedStack]:
        for artifact in self.artifacts.values():
            yield ResolvedStack(self, artifact, {})

    def export(self, name: str) -> Any:
        """The value of the output exported as ``name`` by any stack of the assembly."""
        for artifact in self.artifacts.values():
            resolved = ResolvedStack(self, artifact, {})
            for output in artifact.template.get("Outputs", {}).values():
                export = output.get("Export")
                if export and resolved.resolve(export["Name"]) == name:
                    return resolved.resolve(output["Value"])
        raise UnresolvableError(f"no stack of the assembly exports {name!r}")

    def resource_policy(self, arn: str) -> Mapping[str, Any] | None:
        """The resource policy the assembly gives the resource ``arn`` (a KMS key's key
        policy, a bucket's bucket policy), or None when it has none or is not in the assembly.

        KMS decides with the key policy first: an identity policy alone allows nothing on a
        key unless the key policy lets the account's IAM policies grant it. An object's ARN
        (``arn:aws:s3:::bucket/key``) gets its bucket's policy.
        """
        if arn.startswith(f"arn:{PARTITION}:s3:::"):
            arn = arn.split("/", 1)[0]
        for artifact in self.artifacts.values():
            stack = ResolvedStack(self, artifact, {})
            for logical_id, resource in artifact.template["Resources"].items():
                type_ = resource["Type"]
                if type_ == "AWS::KMS::Key" and stack.arn(logical_id) == arn:
                    return dict(stack.resolve(resource["Properties"]["KeyPolicy"]))
                if type_ == "AWS::S3::Bucket" and stack.arn(logical_id) == arn:
                    for policy in stack.resources("AWS::S3::BucketPolicy").values():
                        if policy["Properties"]["Bucket"] == stack.physical_name(logical_id):
                            return dict(policy["Properties"]["PolicyDocument"])
                    return None
        return None


def _read_assembly(directory: Path) -> Iterator[StackArtifact]:
    manifest = json.loads((directory / "manifest.json").read_text())
    for artifact_id, artifact in manifest["artifacts"].items():
        properties = artifact.get("properties", {})
        if artifact["type"] == "cdk:cloud-assembly":
            yield from _read_assembly(directory / properties["directoryName"])
        elif artifact["type"] == "aws:cloudformation:stack":
            account, region = artifact["environment"].removeprefix("aws://").split("/")
            yield StackArtifact(
                artifact_id=artifact_id,
                stack_name=properties.get("stackName", artifact_id),
                account=account,
                region=region,
                template=json.loads((directory / properties["templateFile"]).read_text()),
                cloudformation_execution_role=_pseudo(
                    properties.get("cloudFormationExecutionRoleArn")
                ),
                deploy_role=_pseudo(properties.get("assumeRoleArn")),
            )


def _pseudo(value: str | None) -> str | None:
    return None if value is None else value.replace("${AWS::Partition}", PARTITION)


@dataclass(frozen=True)
class Role:
    """An IAM role of a stack with its resolved policies."""

    logical_id: str
    arn: str
    name: str
    trust_policy: Mapping[str, Any]
    policies: tuple[Mapping[str, Any], ...]
    managed_policy_arns: tuple[str, ...]
    permissions_boundary: str | None


@dataclass
class ResolvedStack:
    """One stack with every intrinsic resolved for one set of parameter values."""

    assembly: CloudAssembly
    artifact: StackArtifact
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def account(self) -> str:
        return self.artifact.account

    @property
    def region(self) -> str:
        return self.artifact.region

    @property
    def template(self) -> Mapping[str, Any]:
        return self.artifact.template

    def with_parameters(self, **parameters: str) -> ResolvedStack:
        return ResolvedStack(self.assembly, self.artifact, {**self.parameters, **parameters})

    # --- conditions and resources -------------------------------------------------------

    @cached_property
    def conditions(self) -> dict[str, bool]:
        result: dict[str, bool] = {}
        for name in self.template.get("Conditions", {}):
            result[name] = self._condition(name, result)
        return result

    def _condition(self, name: str, known: dict[str, bool]) -> bool:
        if name not in known:
            known[name] = bool(self.resolve(self.template["Conditions"][name]))
        return known[name]

    @cached_property
    def present(self) -> dict[str, Mapping[str, Any]]:
        """Resources that exist with these parameters (their condition is true or absent)."""
        return {
            logical_id: resource
            for logical_id, resource in self.template["Resources"].items()
            if "Condition" not in resource or self.conditions[resource["Condition"]]
        }

    def resources(self, type_: str | None = None) -> dict[str, dict[str, Any]]:
        """Present resources (of one type) with their properties resolved."""
        return {
            logical_id: {
                **resource,
                "Properties": self.resolve(resource.get("Properties", {})),
            }
            for logical_id, resource in self.present.items()
            if type_ is None or resource["Type"] == type_
        }

    def logical_id(self, prefix: str, type_: str | None = None) -> str:
        """The one present resource whose logical id starts with ``prefix``."""
        matches = [
            logical_id
            for logical_id, resource in self.present.items()
            if logical_id.startswith(prefix) and (type_ is None or resource["Type"] == type_)
        ]
        if len(matches) != 1:
            raise KeyError(
                f"{len(matches)} resources of {self.artifact.stack_name} match {prefix!r}"
            )
        return matches[0]

    # --- physical names -----------------------------------------------------------------

    def _rule(self, logical_id: str) -> _TypeRule:
        type_ = self.template["Resources"][logical_id]["Type"]
        if type_ not in _TYPES:
            raise UnresolvableError(
                f"{self.artifact.stack_name}/{logical_id}: no naming rule for {type_}; "
                "add its Ref and ARN format to tests/support/mlops_testing/cloudformation.py"
            )
        return _TYPES[type_]

    def physical_name(self, logical_id: str) -> str:
        rule = self._rule(logical_id)
        properties = self.template["Resources"][logical_id].get("Properties", {})
        if rule.name_property and rule.name_property in properties:
            return str(self.resolve(properties[rule.name_property]))
        # CloudFormation's generated names: stack name, logical id and a random suffix.
        digest = hashlib.sha256(f"{self.artifact.stack_name}/{logical_id}".encode()).hexdigest()
        name = f"{self.artifact.stack_name}-{logical_id}"[:50] + f"-{digest[:10]}"
        if self.template["Resources"][logical_id]["Type"] == "AWS::S3::Bucket":
            name = name.lower()
        return name

    def physical_id(self, logical_id: str) -> str:
        digest = hashlib.sha256(f"{self.artifact.stack_name}/{logical_id}".encode()).digest()
        resource = self.template["Resources"].get(logical_id)
        rule = _TYPES.get(resource["Type"]) if resource else None
        if rule is not None and rule.id_prefix:
            return f"{rule.id_prefix}-{digest.hex()[:17]}"
        return str(uuid.UUID(bytes=digest[:16]))

    def arn(self, logical_id: str) -> str:
        rule = self._rule(logical_id)
        if not rule.arn:
            raise UnresolvableError(f"{logical_id}: its type has no ARN here")
        name = self.physical_name(logical_id)
        if rule.lowercase_name_in_arn:
            name = name.lower()
        if self.template["Resources"][logical_id]["Type"] == "AWS::SSM::Parameter":
            name = name.removeprefix("/")
        return rule.arn.format(
            partition=PARTITION,
            region=self.region,
            account=self.account,
            name=name,
            id=self.physical_id(logical_id),
        )

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::StackName": self.artifact.stack_name,
            "AWS::StackId": (
                f"arn:{PARTITION}:cloudformation:{self.region}:{self.account}:stack/"
                f"{self.artifact.stack_name}/{self.physical_id('stack')}"
            ),
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.template.get("Parameters", {}):
            return self.parameter(name)
        if name not in self.template["Resources"]:
            raise UnresolvableError(f"Ref to unknown {name!r} in {self.artifact.stack_name}")
        rule = self._rule(name)
        if rule.ref == "name":
            return self.physical_name(name)
        if rule.ref == "arn" and rule.arn:
            return self.arn(name)
        if rule.ref == "url":
            return (
                f"https://sqs.{self.region}.{URL_SUFFIX}/{self.account}/{self.physical_name(name)}"
            )
        return self.physical_id(name)

    def parameter(self, name: str) -> str:
        """A parameter's value: given to this view, else its default. For SSM-typed parameters
        the default is the parameter's name; give the value the test means."""
        if name in self.parameters:
            return self.parameters[name]
        declared = self.template["Parameters"][name]
        if "Default" not in declared:
            raise UnresolvableError(f"parameter {name!r} has no default: pass it")
        return str(declared["Default"])

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.template["Resources"]:
            raise UnresolvableError(f"GetAtt of unknown {logical_id!r}")
        rule = self._rule(logical_id)
        if attribute == "Arn":
            return self.arn(logical_id)
        if attribute in rule.attributes:
            return self.physical_name(logical_id)
        if attribute in rule.id_attributes:
            return self.physical_id(logical_id)
        raise UnresolvableError(
            f"{logical_id}.{attribute}: attribute not modelled in tests/support/mlops_testing"
        )

    # --- roles --------------------------------------------------------------------------

    def role(self, prefix: str) -> Role:
        logical_id = self.logical_id(prefix, "AWS::IAM::Role")
        properties = self.resolve(self.template["Resources"][logical_id].get("Properties", {}))
        documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
        managed = []
        for resource in self.resources("AWS::IAM::Policy").values():
            if self.physical_name(logical_id) in resource["Properties"].get("Roles", []):
                documents.append(resource["Properties"]["PolicyDocument"])
        own_managed = {self.arn(mid): mid for mid in self.resources("AWS::IAM::ManagedPolicy")}
        for arn in properties.get("ManagedPolicyArns", []):
            if arn in own_managed:
                managed_properties = self.resources("AWS::IAM::ManagedPolicy")[own_managed[arn]]
                documents.append(managed_properties["Properties"]["PolicyDocument"])
            else:
                managed.append(arn)
        for resource in self.resources("AWS::IAM::ManagedPolicy").values():
            if self.physical_name(logical_id) in resource["Properties"].get("Roles", []):
                documents.append(resource["Properties"]["PolicyDocument"])
        return Role(
            logical_id=logical_id,
            arn=self.arn(logical_id),
            name=self.physical_name(logical_id),
            trust_policy=properties["AssumeRolePolicyDocument"],
            policies=tuple(documents),
            managed_policy_arns=tuple(managed),
            permissions_boundary=properties.get("PermissionsBoundary"),
        )

    # --- intrinsic functions ------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function replaced by its concrete value."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            function = _FUNCTIONS.get(key)
            # {"Condition": {...}} is a policy statement's block, not the condition function.
            if function is not None and not (key == "Condition" and not isinstance(argument, str)):
                return function(self, argument)
        items = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in items.items() if item is not _NO_VALUE}


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


_NO_VALUE = _NoValue()


def _ref(stack: ResolvedStack, name: str) -> Any:
    return _NO_VALUE if name == "AWS::NoValue" else stack.ref(name)


def _get_att(stack: ResolvedStack, argument: Any) -> Any:
    if isinstance(argument, str):
        argument = argument.split(".", 1)
    logical_id, attribute = argument
    return stack.get_att(logical_id, stack.resolve(attribute))


def _join(stack: ResolvedStack, argument: Any) -> str:
    separator, parts = argument
    resolved = stack.resolve(parts)
    return str(separator).join(str(part) for part in resolved)


def _sub(stack: ResolvedStack, argument: Any) -> str:
    if isinstance(argument, str):
        text, variables = argument, {}
    else:
        text, variables = argument[0], stack.resolve(argument[1])

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in variables:
            return str(variables[name])
        if "." in name and not name.startswith("AWS::"):
            logical_id, attribute = name.split(".", 1)
            return str(stack.get_att(logical_id, attribute))
        return str(stack.ref(name))

    # ${!Literal} stays as ${Literal}.
    return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")


def _select(stack: ResolvedStack, argument: Any) -> Any:
    index, items = argument
    return stack.resolve(items)[int(stack.resolve(index))]


def _split(stack: ResolvedStack, argument: Any) -> list[str]:
    separator, text = argument
    return str(stack.resolve(text)).split(separator)


def _if(stack: ResolvedStack, argument: Any) -> Any:
    condition, when_true, when_false = argument
    return stack.resolve(when_true if stack.conditions[condition] else when_false)


def _import_value(stack: ResolvedStack, argument: Any) -> Any:
    return stack.assembly.export(stack.resolve(argument))


def _equals(stack: ResolvedStack, argument: Any) -> bool:
    left, right = stack.resolve(argument)
    return bool(left == right)


def _not(stack: ResolvedStack, argument: Any) -> bool:
    return not stack.resolve(argument[0])


def _and(stack: ResolvedStack, argument: Any) -> bool:
    return all(stack.resolve(argument))


def _or(stack: ResolvedStack, argument: Any) -> bool:
    return any(stack.resolve(argument))


def _condition(stack: ResolvedStack, name: str) -> bool:
    return stack.conditions[name]


def _contains(stack: ResolvedStack, argument: Any) -> bool:
    items, value = stack.resolve(argument)
    return value in items


def _base64(stack: ResolvedStack, argument: Any) -> str:
    import base64

    return base64.b64encode(str(stack.resolve(argument)).encode()).decode()


def _get_azs(stack: ResolvedStack, argument: Any) -> list[str]:
    return [f"{stack.region}{letter}" for letter in "abc"]


_FUNCTIONS: dict[str, Any] = {
    "Ref": _ref,
    "Fn::GetAtt": _get_att,
    "Fn::Join": _join,
    "Fn::Sub": _sub,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::If": _if,
    "Fn::ImportValue": _import_value,
    "Fn::Equals": _equals,
    "Fn::Not": _not,
    "Fn::And": _and,
    "Fn::Or": _or,
    "Condition": _condition,
    "Fn::Contains": _contains,
    "Fn::Base64": _base64,
    "Fn::GetAZs": _get_azs,
}
