"""One rollout limit, one name, one unit: the AWS rollback alarms and the Azure rollout phases
fail a new model version on the same two figures (issue 22, finding 10)."""

from __future__ import annotations

from mlops_azure.config import RolloutConfig

from cdk.serving.settings import RollbackAlarmSettings
from mlcore.settings import RolloutLimits


def test_both_clouds_name_measure_and_default_the_rollout_limits_alike() -> None:
    shared = set(RolloutLimits.model_fields)
    assert shared == {"max_5xx_rate", "max_p99_latency_ms"}
    aws, azure = RollbackAlarmSettings(), RolloutConfig()
    for name in shared:
        assert getattr(aws, name) == getattr(azure, name) == getattr(RolloutLimits(), name)
        for cloud in (RollbackAlarmSettings, RolloutConfig):
            assert (
                cloud.model_fields[name].description == RolloutLimits.model_fields[name].description
            )


def test_a_rate_outside_zero_to_one_is_refused_on_both_clouds() -> None:
    import pytest
    from pydantic import ValidationError

    for cloud in (RollbackAlarmSettings, RolloutConfig):
        with pytest.raises(ValidationError, match="max_5xx_rate"):
            cloud(max_5xx_rate=5)
