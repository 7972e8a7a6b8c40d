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
        "mlops.stages.prod.account": "222222222222",
        "mlops.stages.dev.max_training_minutes": "90",
        "mlops.stages.dev.use_spot_training": "false",
    }
    config = load_aws_config({**context, **overrides})
    assert config.stages["prod"].account == "222222222222"
    assert config.stages["dev"].max_training_minutes == 90
    assert config.stages["dev"].use_spot_training is False


def test_override_null_clears_a_setting(context: dict[str, object]) -> None:
    config = load_aws_config({**context, "mlops.stages.prod.training_schedule": "null"})
    assert config.stages["prod"].training_schedule is None


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
