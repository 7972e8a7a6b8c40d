"""The typed AWS configuration: cdk.json defaults, -c overrides, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdk.config import load_aws_config

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def context() -> dict[str, object]:
    return json.loads((REPOSITORY_ROOT / "cdk.json").read_text())["context"]


def test_cdk_json_defines_dev_staging_prod_in_promotion_order(context: dict[str, object]) -> None:
    config = load_aws_config(context)
    assert list(config.stages) == ["dev", "staging", "prod"]


def test_cdk_json_retains_data_and_requires_approval_in_prod_only(
    context: dict[str, object],
) -> None:
    stages = load_aws_config(context).stages
    assert [name for name, s in stages.items() if s.retain_data] == ["prod"]
    assert [name for name, s in stages.items() if s.manual_approval] == ["prod"]


def test_context_override_sets_a_nested_value_from_a_string(context: dict[str, object]) -> None:
    overrides = {
        "mlops.stages.dev.account": "222222222222",
        "mlops.stages.staging.account": "222222222222",
        "mlops.stages.prod.account": "222222222222",
        "mlops.stages.dev.max_training_minutes": "90",
        "mlops.stages.dev.use_spot_training": "false",
    }
    config = load_aws_config({**context, **overrides})
    assert config.stages["prod"].account == "222222222222"
    assert config.stages["dev"].max_training_minutes == 90
    assert config.stages["dev"].use_spot_training is False


def test_override_null_clears_a_setting(context: dict[str, object]) -> None:
    config = load_aws_config({**context, "mlops.stages.dev.training_schedule": "null"})
    assert config.stages["dev"].training_schedule is None


def test_misspelt_key_is_rejected_with_its_path(context: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"mlops\.stages\.dev\.use_spot_trainig"):
        load_aws_config({**context, "mlops.stages.dev.use_spot_trainig": "true"})


def test_connection_source_without_arn_says_what_to_set(context: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"needs source\.connection_arn"):
        load_aws_config({**context, "mlops.source.connection_arn": "null"})


def test_s3_source_needs_bucket_and_key(context: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"source\.bucket, source\.object_key"):
        load_aws_config({**context, "mlops.source.provider": "s3"})


def test_invalid_account_id_is_rejected(context: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"mlops\.stages\.prod\.account"):
        load_aws_config({**context, "mlops.stages.prod.account": "12345"})


def test_spot_wait_shorter_than_runtime_is_rejected(context: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="max_spot_wait_minutes"):
        load_aws_config(
            {
                **context,
                "mlops.stages.dev.max_training_minutes": "120",
                "mlops.stages.dev.max_spot_wait_minutes": "60",
            }
        )


def test_regions_must_be_set_everywhere_or_nowhere(context: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="set region on the toolchain and on every stage"):
        load_aws_config({**context, "mlops.stages.prod.region": "eu-west-1"})


def test_missing_mlops_context_explains_how_to_run_the_app() -> None:
    with pytest.raises(ValueError, match="npx cdk synth"):
        load_aws_config({})


# Topology: what the release flow can reach, and training per stage.


def test_only_the_model_build_stage_trains_by_default(context: dict[str, object]) -> None:
    config = load_aws_config(context)
    assert config.build_stage == "dev"
    assert {name: s.train for name, s in config.stages.items()} == {
        "dev": True,
        "staging": False,
        "prod": False,
    }
    assert config.release_stages() == ["dev", "staging", "prod"]


def test_a_stage_may_choose_to_train_too(context: dict[str, object]) -> None:
    config = load_aws_config({**context, "mlops.stages.prod.train": "true"})
    assert config.stages["prod"].train is True
    assert config.stages["prod"].retrain_on_new_data is True


def test_release_via_is_rejected_with_what_replaced_it(context: dict[str, object]) -> None:
    # Finding 1: prod's releases went to staging's endpoint first; that option is gone.
    with pytest.raises(ValueError, match=r"release_via was removed.*release_approval"):
        load_aws_config({**context, "mlops.stages.prod.release_via": "staging"})


def test_a_stage_before_the_model_build_stage_is_unreachable(context: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"stages \['dev'\] come before the model-build stage"):
        load_aws_config(
            {
                **context,
                "mlops.model_build_stage": "staging",
                "mlops.stages.staging.train": "true",
                "mlops.stages.dev.train": "true",
            }
        )


def test_accounts_must_be_set_on_every_stage_or_none(context: dict[str, object]) -> None:
    # Finding 1 (four accounts): the flow must know each account to assume its deploy role.
    with pytest.raises(ValueError, match=r"stages \['dev', 'staging'\] have no account"):
        load_aws_config({**context, "mlops.stages.prod.account": "333333333333"})


def test_four_accounts_are_a_reachable_topology(context: dict[str, object]) -> None:
    overrides = {
        f"mlops.stages.{s}.account": a
        for s, a in (("dev", "111111111111"), ("staging", "222222222222"), ("prod", "333333333333"))
    }
    config = load_aws_config({**context, **overrides, "mlops.toolchain.account": "444444444444"})
    assert [s.account for s in config.stages.values()] == [
        "111111111111",
        "222222222222",
        "333333333333",
    ]


def test_the_model_build_stage_must_train(context: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="dev is the model-build stage: it trains"):
        load_aws_config(
            {
                **context,
                "mlops.stages.dev.train": "false",
                "mlops.stages.dev.training_schedule": "null",
                "mlops.stages.dev.retrain_on_new_data": "false",
                "mlops.stages.dev.train_after_deploy": "false",
            }
        )


def test_an_unknown_model_build_stage_names_the_stages(context: dict[str, object]) -> None:
    with pytest.raises(
        ValueError, match=r"model_build_stage is 'qa'.*\['dev', 'staging', 'prod'\]"
    ):
        load_aws_config({**context, "mlops.model_build_stage": "qa"})


def test_the_model_build_stage_cannot_ask_for_release_approval(context: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"dev\.release_approval is true"):
        load_aws_config({**context, "mlops.stages.dev.release_approval": "true"})


def test_a_stage_that_does_not_train_cannot_schedule_training(context: dict[str, object]) -> None:
    with pytest.raises(
        ValueError, match="training_schedule start training, but this stage does not train"
    ):
        load_aws_config({**context, "mlops.stages.prod.training_schedule": "rate(7 days)"})


# Endpoint settings from cdk.json (finding 8: not only in Python; finding 10: staging cost).


def test_staging_serves_on_one_instance_and_prod_on_two(context: dict[str, object]) -> None:
    stages = load_aws_config(context).stages
    assert stages["staging"].endpoint.as_settings() == {
        "initial_instance_count": 1,
        "min_instances": 1,
        "max_instances": 2,
    }
    assert stages["prod"].endpoint.as_settings()["min_instances"] == 2


def test_canary_wait_alarms_and_scaling_are_set_from_the_context(
    context: dict[str, object],
) -> None:
    config = load_aws_config(
        {
            **context,
            "mlops.stages.prod.endpoint.traffic_shifting.canary_percent": "20",
            "mlops.stages.prod.endpoint.traffic_shifting.wait_minutes": "15",
            "mlops.stages.prod.endpoint.rollback_alarms.max_p99_latency_ms": "250",
            "mlops.stages.prod.endpoint.target_invocations_per_instance": "120",
        }
    )
    endpoint = config.stages["prod"].endpoint
    assert endpoint.traffic_shifting is not None and endpoint.rollback_alarms is not None
    assert (endpoint.traffic_shifting.canary_percent, endpoint.traffic_shifting.wait_minutes) == (
        20,
        15,
    )
    assert endpoint.rollback_alarms.max_p99_latency_ms == 250
    assert endpoint.target_invocations_per_instance == 120


def test_inconsistent_endpoint_capacity_names_the_stage(context: dict[str, object]) -> None:
    with pytest.raises(
        ValueError, match=r"mlops\.stages\.staging\.endpoint.*exceeds max_instances"
    ):
        load_aws_config({**context, "mlops.stages.staging.endpoint.min_instances": "3"})


def test_a_misspelt_endpoint_setting_is_rejected(context: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"mlops\.stages\.prod\.endpoint\.canary_size"):
        load_aws_config({**context, "mlops.stages.prod.endpoint.canary_size": "10"})
