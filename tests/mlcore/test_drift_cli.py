"""`mlcore drift`: the command the monitors run, with reference data, a baseline, or captured traffic."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcore.cli import main
from mlcore.data import DatasetSpec
from mlcore.drift import build_baseline
from mlcore.drift.cli import add_drift_parser

SPEC = DatasetSpec(target="churned", numeric=("age", "charges"), categorical=("plan",))
OUTPUT_FILES = {
    "drift_report.json",
    "statistics.json",
    "constraints.json",
    "constraint_violations.json",
    "drift_report.html",
}


def _frame(seed: int, *, shift: float = 0.0, rows: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows).round(),
            "charges": rng.gamma(2.0, 30.0, rows) + shift * 40,
            "plan": rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2]),
            "churned": rng.integers(0, 2, rows),
        }
    )


@pytest.fixture(autouse=True)
def _outside_the_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests never read the repository's mlops.yaml: run where there is none, as a user would.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLOPS_SETTINGS", raising=False)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_drift_parser(parser.add_subparsers())
    args = parser.parse_args(["drift", *argv])
    code: int = args.handler(args)
    return code


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "reference": tmp_path / "reference.csv",
        "same": tmp_path / "same.parquet",
        "shifted": tmp_path / "shifted.csv",
    }
    _frame(1).to_csv(paths["reference"], index=False)
    _frame(12).to_parquet(paths["same"])
    _frame(3, shift=1.0).to_csv(paths["shifted"], index=False)
    return paths


def test_drift_found_exits_zero_and_writes_every_file(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = run(
        [
            "--reference",
            str(files["reference"]),
            "--current",
            str(files["shifted"]),
            "--output",
            str(out),
        ]
    )
    assert code == 0
    assert {p.name for p in out.iterdir()} == OUTPUT_FILES
    report = json.loads((out / "drift_report.json").read_text())
    assert report["drifted_features"] == ["charges"] and report["grade"] == "major"
    assert "charges" in capsys.readouterr().out
    violations = json.loads((out / "constraint_violations.json").read_text())["violations"]
    drift = [v for v in violations if v["constraint_check_type"] == "baseline_drift_check"]
    assert {v["feature_name"] for v in drift} >= {"charges"}


def test_no_drift_also_exits_zero_and_says_so(tmp_path: Path, files: dict[str, Path]) -> None:
    out = tmp_path / "out"
    assert (
        run(
            [
                "--reference",
                str(files["reference"]),
                "--current",
                str(files["same"]),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "drift_report.json").read_text())
    assert report["dataset_drift"] is False and report["drifted_features"] == []
    assert report["grade"] == "none"
    assert json.loads((out / "constraint_violations.json").read_text()) == {"violations": []}


def test_settings_file_sets_the_thresholds(tmp_path: Path, files: dict[str, Path]) -> None:
    settings = tmp_path / "mlops.yaml"
    settings.write_text(
        "drift:\n  numeric_method: psi\n  psi_bins: 4\n  domain_classifier: {enabled: false}\n"
    )
    out = tmp_path / "out"
    run(
        [
            "--reference",
            str(files["reference"]),
            "--current",
            str(files["shifted"]),
            "--output",
            str(out),
            "--settings",
            str(settings),
        ]
    )
    charges = next(
        f
        for f in json.loads((out / "drift_report.json").read_text())["features"]
        if f["name"] == "charges"
    )
    assert charges["method"] == "psi" and charges["parameters"]["bin_count"] == 4


@pytest.mark.parametrize("streaming", [False, True])
def test_baseline_of_a_model_folder_checks_captured_traffic(
    tmp_path: Path, streaming: bool
) -> None:
    reference = _frame(1).assign(score=np.random.default_rng(0).beta(2, 5, 3000))
    model_dir = tmp_path / "model"
    build_baseline(reference, SPEC, prediction_columns=("score",)).save(model_dir / "baseline")
    capture_dir = tmp_path / "capture" / "my-endpoint" / "AllTraffic" / "2026" / "01" / "15" / "10"
    _write_capture(capture_dir / "00-00-000-abc.jsonl", _frame(3, shift=1.0, rows=600))
    out = tmp_path / "out"
    code = run(
        ["--baseline", str(model_dir), "--current", str(tmp_path / "capture"), "--output", str(out)]
        + (["--streaming", "--chunk-rows", "100"] if streaming else [])
    )
    assert code == 0
    report = json.loads((out / "drift_report.json").read_text())
    assert report["current_rows"] == 600
    assert "charges" in report["drifted_features"]
    assert [p["name"] for p in report["predictions"]] == ["score"]
    assert report["prediction_drift"] is True
    assert report["mode"] == ("streaming" if streaming else "exact")
    assert report["extra_columns"] == []  # capture's outputs and metadata are expected


def test_capture_columns_beside_the_features_are_known_to_the_drift_job() -> None:
    from mlcore.capture import capture_columns
    from mlcore.drift.sources import CAPTURE_METADATA_COLUMNS

    classifier = DatasetSpec(target="y", numeric=("x",))
    assert set(capture_columns(classifier)) - {"x"} == set(CAPTURE_METADATA_COLUMNS)


def _write_capture(path: Path, frame: pd.DataFrame, *, batch: int = 50) -> None:
    """Data-capture records as SageMaker documents them: CSV in, CSV out, several rows each."""
    path.parent.mkdir(parents=True)
    rng = np.random.default_rng(9)
    lines = []
    for start in range(0, len(frame), batch):
        rows = frame.iloc[start : start + batch]
        request = "\n".join(f"{r.age},{r.charges},{r.plan}" for r in rows.itertuples(index=False))
        scores = rng.beta(5, 2, len(rows))
        response = "\n".join(f"{int(s > 0.5)},{s}" for s in scores)
        record = {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "text/csv",
                    "mode": "INPUT",
                    "data": request,
                    "encoding": "CSV",
                },
                "endpointOutput": {
                    "observedContentType": "text/csv",
                    "mode": "OUTPUT",
                    "data": response,
                    "encoding": "CSV",
                },
            },
            "eventMetadata": {"eventId": f"e{start}", "inferenceTime": "2026-01-15T10:00:00Z"},
            "eventVersion": "0",
        }
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--current", "missing.csv"], "does not exist"),
        (["--current", "shifted.csv", "--reference-mode", "previous_window"], "needs event times"),
        (["--current", "notes.txt"], "unsupported file type"),
    ],
)
def test_bad_input_exits_non_zero_with_a_clear_message(
    tmp_path: Path,
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    code = main(["drift", "--reference", str(files["reference"]), "--output", "out", *extra])
    assert code != 0
    assert message in capsys.readouterr().err


def test_a_folder_without_a_baseline_is_refused(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "drift",
            "--baseline",
            str(tmp_path),
            "--current",
            str(files["same"]),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    assert code != 0
    assert "no drift baseline" in capsys.readouterr().err


def test_any_pair_of_csvs_without_a_target_works_from_any_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No mlops.yaml here, and the default target ("churned") is in neither table.
    rng = np.random.default_rng(5)
    first = pd.DataFrame(
        {"height": rng.normal(170, 10, 2000), "city": rng.choice(["x", "y"], 2000)}
    )
    second = first.assign(height=first["height"] + 8)
    first.to_csv(tmp_path / "a.csv", index=False)
    second.to_csv(tmp_path / "b.csv", index=False)
    code = main(["drift", "--reference", "a.csv", "--current", "b.csv", "--output", "out"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "drift_report.json").read_text())
    assert [f["name"] for f in report["features"]] == ["height", "city"]
    assert report["drifted_features"] == ["height"] and report["labels"] == []
    assert report["reference"] == {
        "mode": "data",
        "source": "a.csv",
        "window_start": None,
        "window_end": None,
    }


def test_the_target_of_a_table_pair_is_monitored_as_label_drift(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    flipped = _frame(12).assign(churned=1)
    flipped.to_csv(tmp_path / "flipped.csv", index=False)
    run(["--reference", str(files["reference"]), "--current", "flipped.csv", "--output", "out"])
    report = json.loads((tmp_path / "out" / "drift_report.json").read_text())
    assert "churned" not in [f["name"] for f in report["features"]]
    assert report["label_grade"] == "major" and report["label_drift"] is True
    assert report["grade"] == "none"  # the features did not move


def _seasonal_history(tmp_path: Path) -> Path:
    """Two winters and a summer: coats sell in winter, every year. (The domain classifier is
    tested on its own; off here, each report rests on the two columns alone.)"""
    (tmp_path / "mlops.yaml").write_text("drift:\n  domain_classifier: {enabled: false}\n")
    rng = np.random.default_rng(11)
    times = pd.date_range("2024-11-01", "2026-02-28", freq="2h", tz="UTC")
    winter = times.month.isin([11, 12, 1, 2])
    history = pd.DataFrame(
        {
            "event_time": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "coat_sales": rng.normal(np.where(winter, 80.0, 20.0), 5.0),
            "region": rng.choice(["north", "south"], len(times)),
        }
    )
    history.to_csv(tmp_path / "history.csv", index=False)
    return tmp_path / "history.csv"


def test_winter_traffic_is_compared_with_last_winter_and_the_window_is_recorded(
    tmp_path: Path,
) -> None:
    history = _seasonal_history(tmp_path)
    frame = pd.read_csv(history)
    this_winter = frame[frame["event_time"].between("2026-01-05", "2026-01-19")]
    this_winter.to_csv(tmp_path / "now.csv", index=False)
    summer = frame[frame["event_time"].between("2025-06-01", "2025-09-01")]
    summer.to_csv(tmp_path / "summer.csv", index=False)
    # Against a summer reference, winter drifts ...
    run(["--reference", "summer.csv", "--current", "now.csv", "--output", "vs-summer"])
    against_summer = json.loads((tmp_path / "vs-summer" / "drift_report.json").read_text())
    assert against_summer["grade"] == "major"
    # ... against the same weeks a year earlier it does not.
    run(
        [
            *("--reference", str(history), "--current", "now.csv", "--output", "vs-last-year"),
            *("--reference-mode", "same_period_last_year"),
        ]
    )
    report = json.loads((tmp_path / "vs-last-year" / "drift_report.json").read_text())
    assert report["grade"] == "none"
    assert report["reference"]["mode"] == "same_period_last_year"
    assert report["reference"]["window_start"].startswith("2025-01-06")  # 364 days earlier
    assert report["reference_rows"] == 14 * 12  # two-hourly rows of the same 14 days


def test_the_previous_window_is_the_same_length_just_before(tmp_path: Path) -> None:
    history = _seasonal_history(tmp_path)
    frame = pd.read_csv(history)
    frame[frame["event_time"].between("2026-01-25", "2026-02-15")].to_csv(
        tmp_path / "weeks.csv", index=False
    )
    settings = tmp_path / "mlops.yaml"  # the mode from mlops.yaml, as the monitors set it
    settings.write_text(
        "drift:\n  reference: {mode: previous_window}\n  domain_classifier: {enabled: false}\n"
    )
    run(["--reference", str(history), "--current", "weeks.csv", "--output", "out"])
    report = json.loads((tmp_path / "out" / "drift_report.json").read_text())
    assert report["reference"]["mode"] == "previous_window"
    assert report["reference"]["window_end"] < "2026-01-25"
    assert report["reference"]["window_start"].startswith("2026-01-04")
    assert report["reference_rows"] == 21 * 12 - 1  # the window is 2 hours short of 21 days
    assert report["grade"] == "none"


def test_a_window_reference_without_reference_data_is_refused(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = tmp_path / "model"
    build_baseline(_frame(1), SPEC).save(model_dir / "baseline")
    code = main(
        [
            *("drift", "--baseline", str(model_dir), "--current", str(files["same"])),
            *("--output", "o", "--reference-mode", "same_period_last_year"),
        ]
    )
    assert code != 0
    assert "pass --reference PATH" in capsys.readouterr().err


def test_an_empty_previous_window_is_insufficient_data_not_an_error(tmp_path: Path) -> None:
    history = _seasonal_history(tmp_path)
    frame = pd.read_csv(history)
    frame.iloc[:50].to_csv(tmp_path / "first.csv", index=False)  # nothing before it
    code = run(
        [
            *("--reference", str(history), "--current", "first.csv", "--output", "out"),
            *("--reference-mode", "previous_window"),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "out" / "drift_report.json").read_text())
    assert report["grade"] == "insufficient_data" and report["dataset_drift"] is False
    assert report["reference_rows"] == 0


def test_the_cli_reference_modes_are_the_settings() -> None:
    import typing

    from mlcore.drift import cli
    from mlcore.settings import ReferenceMode

    assert typing.get_args(ReferenceMode) == cli.REFERENCE_MODES


@pytest.mark.parametrize("streaming", [False, True])
def test_the_report_header_names_the_model_its_version_and_the_current_window(
    tmp_path: Path, streaming: bool
) -> None:
    # Before: no generated-at time, model version, hash or window anywhere in the report.
    model_dir = tmp_path / "model"
    build_baseline(_frame(1), SPEC).save(model_dir / "baseline")
    (model_dir / "metadata.json").write_text(json.dumps({"model_sha256": "sha256:" + "ab" * 32}))
    capture_dir = tmp_path / "capture" / "ep" / "AllTraffic" / "2026" / "01" / "15" / "10"
    _write_capture(capture_dir / "00-00-000-abc.jsonl", _frame(3, rows=300))
    out = tmp_path / "out"
    argv = ["--baseline", str(model_dir), "--current", str(tmp_path / "capture")]
    argv += ["--output", str(out), "--model-version", "churn:7"]
    assert run(argv + (["--streaming"] if streaming else [])) == 0
    context = json.loads((out / "drift_report.json").read_text())["context"]
    assert context["model_version"] == "churn:7"
    assert context["model_sha256"] == "sha256:" + "ab" * 32
    page = (out / "drift_report.html").read_text()
    assert "version churn:7 · sha256 abababababab" in page
    assert f"generated at</th><td>{context['generated_at'][:10]}" in page
    if streaming:  # the streaming engine never holds the rows: the header says so
        assert context["current_window_start"] is None
        assert "window not recorded" in page
    else:  # the capture's inference times
        assert context["current_window_start"] == "2026-01-15T10:00:00+00:00"
        assert "300 rows, 2026-01-15T10:00:00+00:00 to 2026-01-15T10:00:00+00:00" in page
