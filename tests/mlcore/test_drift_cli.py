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
    _frame(2).to_parquet(paths["same"])
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
    assert report["drifted_features"] == ["charges"]
    assert "charges" in capsys.readouterr().out
    violations = json.loads((out / "constraint_violations.json").read_text())["violations"]
    assert [v["feature_name"] for v in violations] == ["charges"]


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
    assert json.loads((out / "constraint_violations.json").read_text()) == {"violations": []}


def test_settings_file_sets_the_thresholds(tmp_path: Path, files: dict[str, Path]) -> None:
    settings = tmp_path / "mlops.yaml"
    settings.write_text("drift:\n  numeric_method: psi\n  psi_bins: 4\n")
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
        (["--current", "shifted.csv", "--target", "nope"], "target column 'nope' is not in"),
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
