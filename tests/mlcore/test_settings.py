from __future__ import annotations

from pathlib import Path

import pytest

from mlcore.errors import ConfigError
from mlcore.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def test_the_repository_settings_file_is_valid() -> None:
    settings = load_settings(REPO / "mlops.yaml")
    assert settings.gate.primary_metric == "auc"
    assert settings.drift.psi_bins == 10


def test_a_misspelt_key_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("gate:\n  min_metric: {auc: 0.8}\n")
    with pytest.raises(ConfigError, match=r"gate.min_metric: Extra inputs are not permitted"):
        load_settings(tmp_path / "s.yaml")


def test_out_of_range_values_are_reported_with_their_path(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("drift:\n  p_value_threshold: 5\n")
    with pytest.raises(ConfigError, match=r"drift.p_value_threshold"):
        load_settings(tmp_path / "s.yaml")


def test_overrides_merge_into_nested_sections() -> None:
    settings = load_settings(overrides={"gate": {"champion_tolerance": 0.02}})
    assert settings.gate.champion_tolerance == 0.02
    assert settings.gate.min_metrics == {"auc": 0.70}


def test_missing_and_malformed_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("gate: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(tmp_path / "bad.yaml")
