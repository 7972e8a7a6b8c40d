from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcore.data import CHURN_SPEC, DatasetSpec, DataValidationError, infer_spec, validate_frame
from mlcore.errors import DataError


def test_infer_spec_types_churn_columns_from_dtypes(churn_frame: pd.DataFrame) -> None:
    spec = infer_spec(
        churn_frame, target="churned", timestamp="event_time", exclude=["customer_id"]
    )
    assert set(spec.numeric) == set(CHURN_SPEC.numeric)
    assert set(spec.categorical) == set(CHURN_SPEC.categorical)
    assert spec.task == "classification"
    assert "customer_id" not in spec.features


def test_infer_spec_prefers_declared_types_over_dtypes() -> None:
    frame = pd.DataFrame({"zip": [10115, 20095, 10115], "x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    spec = infer_spec(frame, target="y", categorical=["zip"])
    assert spec.categorical == ("zip",)
    assert spec.numeric == ("x",)


def test_infer_spec_detects_regression_from_continuous_target() -> None:
    frame = pd.DataFrame({"x": np.arange(100.0), "y": np.linspace(0, 1, 100)})
    assert infer_spec(frame, target="y").task == "regression"


def test_infer_spec_names_the_missing_target() -> None:
    with pytest.raises(DataError, match="target column 'label' not found"):
        infer_spec(pd.DataFrame({"x": [1]}), target="label")


def test_spec_rejects_a_column_declared_twice() -> None:
    with pytest.raises(DataError, match="both numeric and categorical"):
        DatasetSpec(target="y", numeric=("a",), categorical=("a",))


def test_spec_round_trips_through_json(tmp_path) -> None:
    CHURN_SPEC.save(tmp_path / "spec.json")
    assert DatasetSpec.load(tmp_path / "spec.json") == CHURN_SPEC


def test_spec_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(DataError, match="unknown keys"):
        DatasetSpec.from_dict({"target": "y", "numeric": ["a"], "colour": "red"})


def test_validation_accepts_the_generated_data(churn_frame: pd.DataFrame) -> None:
    validate_frame(churn_frame, CHURN_SPEC)


def test_validation_reports_every_problem_at_once(churn_frame: pd.DataFrame) -> None:
    broken = churn_frame.head(50).drop(columns=["region", "churned"]).copy()
    broken["age"] = "forty"
    broken["tenure_months"] = np.nan
    with pytest.raises(DataValidationError) as info:
        validate_frame(broken, CHURN_SPEC)
    problems = "\n".join(info.value.problems)
    assert "missing columns ['region', 'churned']" in problems
    assert "numeric column 'age' has non-numeric values" in problems and "'forty'" in problems
    assert "column 'tenure_months' is entirely null" in problems
    assert len(info.value.problems) == 3


def test_validation_rejects_empty_data() -> None:
    empty = pd.DataFrame({c: [] for c in (*CHURN_SPEC.features, "churned")})
    with pytest.raises(DataValidationError, match="no rows"):
        validate_frame(empty, CHURN_SPEC)


def test_validation_without_target_allows_unlabelled_traffic(churn_frame: pd.DataFrame) -> None:
    validate_frame(churn_frame.drop(columns=["churned"]), CHURN_SPEC, require_target=False)


def test_validation_rejects_a_single_class_target(churn_frame: pd.DataFrame) -> None:
    single = churn_frame.head(100).assign(churned=1)
    with pytest.raises(DataValidationError, match="single class"):
        validate_frame(single, CHURN_SPEC)
