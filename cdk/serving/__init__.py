"""Serving on AWS: the endpoint, the model pointer, the release flow, the roles it acts
through in each environment (release_access), the approval recorder, and the stack."""

from cdk.serving.approval import ApprovalRecorder
from cdk.serving.approved_model import ApprovedModelParameter
from cdk.serving.endpoint import ModelEndpoint
from cdk.serving.release import ReleaseFlow, ReleaseTarget
from cdk.serving.release_access import ReleaseAccess, ServingChangeRole
from cdk.serving.settings import (
    EndpointOverrides,
    EndpointSettings,
    RollbackAlarmSettings,
    ServerlessSettings,
    TrafficShiftingSettings,
)

__all__ = [
    "ApprovalRecorder",
    "ApprovedModelParameter",
    "EndpointOverrides",
    "EndpointSettings",
    "ModelEndpoint",
    "ReleaseAccess",
    "ReleaseFlow",
    "ReleaseTarget",
    "RollbackAlarmSettings",
    "ServerlessSettings",
    "ServingChangeRole",
    "TrafficShiftingSettings",
]
