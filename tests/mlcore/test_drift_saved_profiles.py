"""Saved drift profiles: a day graded from its hourly runs equals the day graded at once."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcore.data import DatasetSpec
from mlcore.drift import build_baseline
from mlcore.drift.cli import add_drift_parser
from mlcore.drift.saved_profiles import PROFILE_FILE
from mlcore.errors import DataError

SPEC = DatasetSpec(
    target="churned",
    numeric=("age", "charges", "tenure"),
    categorical=("plan", "region"),
    timestamp="event_time",
)
HOURS = 24
ROWS_PER_HOUR = 250


def _rows(rng: np.random.Generator, rows: int, *, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows).round(),
            # Heavy-tailed and with gaps, as real amounts are.
            "charges": np.where(rng.random(rows) < 0.02, np.nan, rng.pareto(1.5, rows) * 30)
            + shift * 25,
            "tenure": rng.integers(0, 72, rows).astype(float),
            "plan": rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2]),
            # An id-like long tail: most values unseen in the reference.
            "region": [f"r{v}" for v in rng.zipf(1.6, rows)],
            "score": rng.beta(2, 5, rows),
            "churned": rng.integers(0, 2, rows),
        }
    )


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("profiles")
    rng = np.random.default_rng(7)
    reference = _rows(rng, 4000).assign(event_time="2026-01-01T00:00:00Z")
    model = root / "model"
    baseline = build_baseline(reference, SPEC, prediction_columns=("score",))
    baseline.save(model / "baseline")
    hours = []
    for hour in range(HOURS):
        # The evening drifts: charges rise in the last eight hours.
        frame = _rows(rng, ROWS_PER_HOUR, shift=1.0 if hour >= 16 else 0.0)
        frame["event_time"] = pd.Timestamp("2026-03-02", tz="UTC") + pd.to_timedelta(
            hour * 3600 + rng.integers(0, 3600, ROWS_PER_HOUR), unit="s"
        )
        path = root / "hours" / f"{hour:02d}.csv"
        path.parent.mkdir(exist_ok=True)
        frame.to_csv(path, index=False)
        hours.append(path)
    whole = root / "day.csv"
    pd.concat([pd.read_csv(p) for p in hours]).to_csv(whole, index=False)
    return {"root": root, "model": model, "hours": hours, "day": whole}


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_drift_parser(parser.add_subparsers())
    args = parser.parse_args(["drift", *argv])
    code: int = args.handler(args)
    return code


def _report(folder: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((folder / "drift_report.json").read_text())
    return document


def _same(left: Any, right: Any, path: str = "") -> None:
    """Equal documents, floats to 1e-9 relative (moments merge in a different order)."""
    if isinstance(left, dict):
        assert set(left) == set(right), path
        for key in left:
            _same(left[key], right[key], f"{path}.{key}")
    elif isinstance(left, list):
        assert len(left) == len(right), path
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            _same(a, b, f"{path}[{index}]")
    elif isinstance(left, float) and isinstance(right, float):
        assert (math.isnan(left) and math.isnan(right)) or left == pytest.approx(
            right, rel=1e-9, abs=1e-12
        ), path
    else:
        assert left == right, path


@pytest.fixture(scope="module")
def hourly(day: dict[str, Any]) -> list[Path]:
    outputs = []
    for index, path in enumerate(day["hours"]):
        out = day["root"] / "runs" / f"{index:02d}"
        # Alternate engines: a profile is the same summary whichever engine wrote it.
        engine = ["--engine", "streaming", "--chunk-rows", "97"] if index % 2 else []
        assert (
            run(
                [
                    "--baseline",
                    str(day["model"]),
                    "--current",
                    str(path),
                    *engine,
                    "--output",
                    str(out),
                ]
            )
            == 0
        )
        outputs.append(out)
    return outputs


def test_grading_24_hourly_profiles_equals_grading_the_day(
    day: dict[str, Any], hourly: list[Path], tmp_path: Path
) -> None:
    assert all((out / PROFILE_FILE).is_file() for out in hourly)
    merged, whole = tmp_path / "merged", tmp_path / "whole"
    assert (
        run(
            [
                "--baseline",
                str(day["model"]),
                "--profiles",
                str(day["root"] / "runs"),
                "--output",
                str(merged),
            ]
        )
        == 0
    )
    assert (
        run(
            [
                "--baseline",
                str(day["model"]),
                "--current",
                str(day["day"]),
                "--engine",
                "streaming",
                "--output",
                str(whole),
            ]
        )
        == 0
    )
    merged_report, whole_report = _report(merged), _report(whole)
    assert merged_report["current_rows"] == HOURS * ROWS_PER_HOUR
    # The evening's shift is found in the day, and the two reports agree everywhere.
    assert "charges" in merged_report["drifted_features"]
    context_merged = merged_report.pop("context")
    whole_report.pop("context")
    _same(merged_report, whole_report)
    # Half the hours ran on the streaming engine, which records no window: none is claimed.
    assert context_merged["current_window_start"] is None
    # A merged profile is itself mergeable (a week from days), and the exact engine's windows
    # span the merge.
    exact_hours = tmp_path / "exact-hours"
    assert (
        run(
            [
                "--baseline",
                str(day["model"]),
                "--profiles",
                *map(str, hourly[0::2]),
                "--output",
                str(exact_hours),
            ]
        )
        == 0
    )
    span = _report(exact_hours)["context"]
    assert span["current_window_start"].startswith("2026-03-02T00:")
    assert span["current_window_end"].startswith("2026-03-02T22:")
    week = tmp_path / "week"
    assert (
        run(
            [
                "--baseline",
                str(day["model"]),
                "--profiles",
                str(merged / PROFILE_FILE),
                str(exact_hours / PROFILE_FILE),
                "--output",
                str(week),
            ]
        )
        == 0
    )
    assert _report(week)["current_rows"] == HOURS * ROWS_PER_HOUR * 3 // 2


def test_a_profile_of_another_baseline_is_refused(
    day: dict[str, Any], hourly: list[Path], tmp_path: Path
) -> None:
    other = tmp_path / "other-model"
    reference = _rows(np.random.default_rng(99), 3000)
    build_baseline(reference, SPEC, prediction_columns=("score",)).save(other / "baseline")
    with pytest.raises(DataError, match="another reference"):
        run(
            [
                "--baseline",
                str(other),
                "--profiles",
                str(hourly[0] / PROFILE_FILE),
                "--output",
                str(tmp_path / "out"),
            ]
        )
    assert not (tmp_path / "out" / "drift_report.json").exists()


def test_torn_and_foreign_files_are_refused_with_the_reason(
    day: dict[str, Any], hourly: list[Path], tmp_path: Path
) -> None:
    torn = tmp_path / "torn" / PROFILE_FILE
    torn.parent.mkdir()
    torn.write_bytes((hourly[0] / PROFILE_FILE).read_bytes()[:500])
    with pytest.raises(DataError, match="not a readable drift profile"):
        run(
            [
                "--baseline",
                str(day["model"]),
                "--profiles",
                str(torn),
                "--output",
                str(tmp_path / "out"),
            ]
        )
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, meta=np.frombuffer(b'{"format": "other"}', dtype=np.uint8))
    with pytest.raises(DataError, match="not a drift profile"):
        run(
            [
                "--baseline",
                str(day["model"]),
                "--profiles",
                str(foreign),
                "--output",
                str(tmp_path / "out"),
            ]
        )
    with pytest.raises(DataError, match=r"no drift_profile\.npz under"):
        run(
            [
                "--baseline",
                str(day["model"]),
                "--profiles",
                str(day["root"] / "hours"),
                "--output",
                str(tmp_path / "out"),
            ]
        )


def test_profiles_need_the_baseline_and_no_current_data(
    day: dict[str, Any], hourly: list[Path], tmp_path: Path
) -> None:
    from mlcore.errors import ConfigError

    with pytest.raises(ConfigError, match="give the --baseline they were written with"):
        run(["--profiles", str(hourly[0]), "--output", str(tmp_path / "out")])
    with pytest.raises(ConfigError, match="apply to --current data only"):
        run(
            [
                "--baseline",
                str(day["model"]),
                "--profiles",
                str(hourly[0]),
                "--engine",
                "spark",
                "--output",
                str(tmp_path / "out"),
            ]
        )
    with pytest.raises(SystemExit):
        run(
            [
                "--baseline",
                str(day["model"]),
                "--profiles",
                str(hourly[0]),
                "--current",
                str(day["day"]),
                "--output",
                str(tmp_path / "out"),
            ]
        )


def test_a_profile_runs_no_code_when_read(tmp_path: Path) -> None:
    """Profiles travel between accounts: reading one must never unpickle."""
    from mlcore.drift.saved_profiles import load_profile

    hostile = tmp_path / "hostile.npz"
    np.savez(hostile, meta=np.array([object()], dtype=object))
    with pytest.raises(DataError, match="not a readable drift profile"):
        load_profile(hostile)
