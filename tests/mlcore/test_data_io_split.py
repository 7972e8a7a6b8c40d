from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcore.data import CHURN_SPEC, fingerprint, load_table, make_churn, save_table, split_frame
from mlcore.errors import ConfigError, DataError
from mlcore.prep import PrepResult, prepare, resolve_spec
from mlcore.settings import load_settings


def test_csv_and_parquet_load_to_the_same_table(tmp_path, churn_frame: pd.DataFrame) -> None:
    frame = churn_frame.head(200).drop(columns=["event_time"])
    save_table(frame, tmp_path / "a.csv")
    save_table(frame, tmp_path / "a.parquet")
    from_csv, from_parquet = load_table(tmp_path / "a.csv"), load_table(tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    assert fingerprint(from_csv) == fingerprint(from_parquet)


def test_a_folder_of_parts_loads_as_one_table(tmp_path, churn_frame: pd.DataFrame) -> None:
    save_table(churn_frame.iloc[:100], tmp_path / "part-0.parquet")
    save_table(churn_frame.iloc[100:250], tmp_path / "part-1.parquet")
    assert len(load_table(tmp_path)) == 250


def test_loading_reports_missing_and_unsupported_paths(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_table(tmp_path / "nope.csv")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"unsupported file type '\.xlsx'"):
        load_table(tmp_path / "data.xlsx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.csv"):
        load_table(tmp_path / "empty")


def test_split_is_deterministic_and_complete(churn_frame: pd.DataFrame) -> None:
    first = split_frame(churn_frame, CHURN_SPEC, seed=3)
    second = split_frame(churn_frame, CHURN_SPEC, seed=3)
    pd.testing.assert_frame_equal(first.train, second.train)
    ids = pd.concat([first.train, first.validation, first.test])["customer_id"]
    assert ids.is_unique and len(ids) == len(churn_frame)
    assert len(first.test) == round(0.15 * len(churn_frame))


def test_split_by_time_puts_the_most_recent_rows_in_test(churn_frame: pd.DataFrame) -> None:
    split = split_frame(churn_frame, CHURN_SPEC, by_time=True)
    assert split.train["event_time"].max() <= split.validation["event_time"].min()
    assert split.validation["event_time"].max() <= split.test["event_time"].min()


def _shuffled_events(rows: int = 400) -> pd.DataFrame:
    """A table whose row order is not its time order, with its own column names."""
    rng = np.random.default_rng(4)
    return pd.DataFrame(
        {
            "observed": pd.Timestamp("2024-03-01")
            + pd.to_timedelta(rng.permutation(rows), unit="D"),
            "reading": rng.normal(size=rows),
            "ok": rng.choice([0, 1], size=rows),
        }
    )


def _prep(frame: pd.DataFrame, tmp_path: Path, **training: object) -> PrepResult:
    # A declared timestamp must be a column of the data (a misspelt one is an error), so the
    # settings declare one exactly when the frame has it.
    timestamp = "observed" if "observed" in frame.columns else None
    settings = load_settings(
        overrides={
            "project": "events",
            "dataset": {"target": "ok", "timestamp": timestamp, "id_columns": []},
            "training": training,
        }
    )
    spec = resolve_spec(frame, settings.dataset)
    return prepare(frame, spec, settings, tmp_path / "prep", source="test")


def test_prep_splits_by_time_by_default_when_a_timestamp_is_declared(tmp_path: Path) -> None:
    # Before: split_frame(by_time=...) existed but prep always shuffled.
    result = _prep(_shuffled_events(), tmp_path)
    split = result.split
    assert split.train["observed"].max() < split.validation["observed"].min()
    assert split.validation["observed"].max() < split.test["observed"].min()
    assert result.lineage["split"] == "time"
    lineage = json.loads((tmp_path / "prep" / "lineage.json").read_text())
    assert lineage["split"] == "time"


def test_training_split_random_shuffles_despite_a_timestamp(tmp_path: Path) -> None:
    result = _prep(_shuffled_events(), tmp_path, split="random")
    assert result.lineage["split"] == "random"
    assert result.split.test["observed"].min() < result.split.train["observed"].max()


def test_a_time_split_without_a_timestamp_column_is_an_error(tmp_path: Path) -> None:
    frame = _shuffled_events().drop(columns=["observed"])
    with pytest.raises(
        ConfigError, match=r"training.split is 'time' but the data has no timestamp"
    ):
        _prep(frame, tmp_path, split="time")


def test_without_a_timestamp_auto_is_a_seeded_random_split(tmp_path: Path) -> None:
    frame = _shuffled_events().drop(columns=["observed"])
    first = _prep(frame, tmp_path / "a")
    second = _prep(frame, tmp_path / "b")
    assert first.lineage["split"] == "random"
    pd.testing.assert_frame_equal(first.split.test, second.split.test)


def test_split_refuses_fractions_that_leave_no_training_rows(churn_frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="leaves no training rows"):
        split_frame(churn_frame, CHURN_SPEC, validation_fraction=0.5, test_fraction=0.5)


def test_fingerprint_changes_with_any_value(churn_frame: pd.DataFrame) -> None:
    frame = churn_frame.head(100).copy()
    before = fingerprint(frame)
    frame.loc[5, "monthly_charges"] += 0.01
    assert fingerprint(frame) != before
    assert before.startswith("sha256:") and len(before) == len("sha256:") + 64


def test_generator_is_deterministic_and_realistic() -> None:
    a, b = make_churn(3_000, seed=5), make_churn(3_000, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert len(CHURN_SPEC.numeric) >= 10 and len(CHURN_SPEC.categorical) >= 3
    assert 0.1 < a["churned"].mean() < 0.5
    assert 0.005 < a["satisfaction_score"].isna().mean() < 0.05


def test_generator_covariate_shift_moves_feature_distributions() -> None:
    base = make_churn(5_000, seed=1)
    shifted = make_churn(5_000, seed=1, covariate_shift=1.0)
    assert shifted["monthly_charges"].mean() > base["monthly_charges"].mean() + 5
    assert (shifted["contract_type"] == "month-to-month").mean() > (
        base["contract_type"] == "month-to-month"
    ).mean()


def test_generator_concept_drift_changes_winter_churn_but_not_features() -> None:
    winter = {"start": "2025-12-01", "end": "2026-02-28", "seed": 2}
    calm, drifted = make_churn(20_000, **winter), make_churn(20_000, concept_drift=1.0, **winter)
    pd.testing.assert_series_equal(calm["monthly_charges"], drifted["monthly_charges"])
    expensive = calm["monthly_charges"] > 80
    assert drifted.loc[expensive, "churned"].mean() > calm.loc[expensive, "churned"].mean() + 0.1


def test_a_dated_drop_with_markers_loads_recursively(tmp_path, churn_frame: pd.DataFrame) -> None:
    # What a Spark or Hadoop writer leaves in s3://<data bucket>/training-data/ (finding 4).
    save_table(churn_frame.iloc[:100], tmp_path / "2026-09" / "part-0.parquet")
    save_table(churn_frame.iloc[100:130], tmp_path / "2026-10" / "part-0.parquet")
    (tmp_path / "2026-10" / "_SUCCESS").write_bytes(b"")
    (tmp_path / "2026-10" / ".part-0.parquet.crc").write_bytes(b"\x00crc")
    (tmp_path / "2026-10" / "part-0.parquet.crc").write_bytes(b"\x00crc")
    save_table(churn_frame.iloc[:7], tmp_path / "_temporary" / "0" / "part-9.parquet")
    save_table(churn_frame.iloc[:7], tmp_path / ".hidden" / "part-8.csv")
    loaded = load_table(tmp_path)
    assert len(loaded) == 130
    pd.testing.assert_frame_equal(loaded, churn_frame.iloc[:130].reset_index(drop=True))


def test_a_folder_holding_only_markers_is_an_error_that_says_so(tmp_path) -> None:
    (tmp_path / "2026-10").mkdir()
    (tmp_path / "2026-10" / "_SUCCESS").write_bytes(b"")
    with pytest.raises(DataError, match="markers such as _SUCCESS"):
        load_table(tmp_path)
