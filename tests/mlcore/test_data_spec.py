from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcore.data import CHURN_SPEC, DatasetSpec, DataValidationError, infer_spec, validate_frame
from mlcore.errors import DataError
from mlcore.settings import DatasetSettings


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


def _own_dataset(**fields: object) -> DatasetSettings:
    return DatasetSettings(target="outcome", **fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def loans() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 200
    return pd.DataFrame(
        {
            "loan_ref": [f"L{i:05d}" for i in range(n)],
            "opened": pd.date_range("2024-01-01", periods=n, freq="D"),
            "amount": rng.normal(1000, 200, n),
            "branch": rng.choice(["north", "south"], n),
            "outcome": rng.choice(["repaid", "default"], n),
        }
    )


@pytest.mark.parametrize(
    ("setting", "value", "misspelt"),
    [
        ("id_columns", ["loan_rf"], "loan_rf"),
        ("timestamp", "opend", "opend"),
        ("slice_columns", ["brnch"], "brnch"),
        ("categorical", ["brunch"], "brunch"),
    ],
)
def test_a_misspelt_column_in_the_settings_is_an_error_naming_it(
    loans: pd.DataFrame, setting: str, value: object, misspelt: str
) -> None:
    from mlcore.prep import resolve_spec

    with pytest.raises(DataValidationError) as info:
        resolve_spec(loans, _own_dataset(**{setting: value}))
    message = str(info.value)
    assert f"dataset.{setting} names column {misspelt!r}, which is not in the data" in message
    assert "did you mean" in message


def test_every_misspelt_column_is_reported_at_once(loans: pd.DataFrame) -> None:
    from mlcore.prep import resolve_spec

    with pytest.raises(DataValidationError) as info:
        resolve_spec(loans, _own_dataset(id_columns=["ref"], slice_columns=["region"]))
    assert len([p for p in info.value.problems if "names column" in p]) == 2


def test_an_id_like_column_is_a_warning_saying_how_to_declare_it(
    loans: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    from mlcore.prep import resolve_spec

    with caplog.at_level("WARNING", logger="mlcore.prep"):
        spec = resolve_spec(loans, _own_dataset())
    assert "loan_ref" in spec.features  # undeclared, so still a feature: the warning says so
    warnings = [r.getMessage() for r in caplog.records if "like an id" in r.getMessage()]
    assert len(warnings) == 1 and "'loan_ref'" in warnings[0]
    assert "dataset.id_columns" in warnings[0]


def test_a_declared_id_column_is_neither_a_feature_nor_a_warning(
    loans: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    from mlcore.prep import resolve_spec

    with caplog.at_level("WARNING", logger="mlcore.prep"):
        spec = resolve_spec(loans, _own_dataset(id_columns=["loan_ref"], timestamp="opened"))
    assert "loan_ref" not in spec.features and spec.timestamp == "opened"
    assert not [r for r in caplog.records if "like an id" in r.getMessage()]


def test_measurements_that_never_repeat_are_not_taken_for_ids() -> None:
    from mlcore.data.profile import looks_like_id

    rng = np.random.default_rng(0)
    assert not looks_like_id(pd.Series(rng.normal(size=500)))
    assert looks_like_id(pd.Series(np.arange(500) + 10_000))
    assert looks_like_id(pd.Series([f"u-{i}" for i in range(500)]))
    assert not looks_like_id(pd.Series(rng.integers(0, 5, 500)))


def test_declared_types_and_task_win_over_what_the_dtypes_suggest(loans: pd.DataFrame) -> None:
    from mlcore.prep import resolve_spec

    frame = loans.assign(grade=np.arange(len(loans)) % 3, score=np.arange(len(loans)) % 7)
    spec = resolve_spec(
        frame,
        DatasetSettings(
            target="score", task="regression", categorical=["grade"], id_columns=["loan_ref"]
        ),
    )
    assert spec.task == "regression" and "grade" in spec.categorical
