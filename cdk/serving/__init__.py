"""Serving on AWS: the endpoint construct, the approved-model parameter, the release flow and the stack."""

from cdk.serving.approved_model import ApprovedModelParameter
from cdk.serving.endpoint import ModelEndpoint
from cdk.serving.release import ReleaseFlow, ReleaseTarget
from cdk.serving.settings import (
    EndpointSettings,
    RollbackAlarmSettings,
    ServerlessSettings,
    TrafficShiftingSettings,
)

__all__ = [
    "ApprovedModelParameter",
    "EndpointSettings",
    "ModelEndpoint",
    "ReleaseFlow",
    "ReleaseTarget",
    "RollbackAlarmSettings",
    "ServerlessSettings",
    "TrafficShiftingSettings",
]
