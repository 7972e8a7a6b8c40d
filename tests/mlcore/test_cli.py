"""The mlcore command line as users and the cloud pipelines call it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlcore.cli import EXIT_ERROR, EXIT_GATE_FAILED, build_parser, main, settings_from_args
from mlcore.model import model_sha256

SUBCOMMANDS = ("init", "prep", "train", "evaluate", "drift", "quality", "serve", "demo", "extras")


def test_every_subcommand_has_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlcore", "--help"], capture_output=True, text=True, check=True
    )
    for name in SUBCOMMANDS:
        assert name in result.stdout
    parser = build_parser()
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"])
        assert exit_info.value.code == 0


@pytest.fixture(scope="module")
def raw_csv(tmp_path_factory: pytest.TempPathFactory, churn_frame: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("raw") / "customers.csv"
    churn_frame.head(3_000).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def fast_settings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("settings") / "mlops.yaml"
    path.write_text("training:\n  hyperparameters: {max_iter: 40}\n")
    return path


def test_prep_train_evaluate_chain_through_the_cli(
    tmp_path: Path, raw_csv: Path, fast_settings: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = ["--settings", str(fast_settings)]
    assert (
        main(["prep", "--data", str(raw_csv), "--output", str(tmp_path / "prep"), *settings]) == 0
    )
    lineage = json.loads((tmp_path / "prep" / "lineage.json").read_text())
    assert lineage["rows"] == 3_000 and lineage["data_fingerprint"].startswith("sha256:")

    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "prep" / "train"),
                "--validation",
                str(tmp_path / "prep" / "validation"),
                "--spec",
                str(tmp_path / "prep" / "spec.json"),
                "--model-dir",
                str(tmp_path / "model"),
                *settings,
            ]
        )
        == 0
    )
    assert (tmp_path / "model" / "baseline").is_dir()

    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--model-dir",
                str(tmp_path / "model"),
                "--data",
                str(tmp_path / "prep" / "test"),
                "--output",
                str(tmp_path / "eval"),
                "--fail-on-gate",
                *settings,
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["gate_passed"] is True

    # The evaluation output carries what a register step records and a release smoke-tests with.
    gate = json.loads((tmp_path / "eval" / "gate.json").read_text())
    assert gate["model_sha256"] == model_sha256(tmp_path / "model")
    assert (tmp_path / "eval" / "sample_request.json").read_bytes() == (
        tmp_path / "model" / "sample_request.json"
    ).read_bytes()


def test_train_infers_the_spec_from_a_target_column(
    tmp_path: Path, raw_csv: Path, fast_settings: Path
) -> None:
    assert (
        main(
            [
                "train",
                "--data",
                str(raw_csv),
                "--target",
                "churned",
                "--model-dir",
                str(tmp_path / "m"),
                "--settings",
                str(fast_settings),
                "--hyperparameters",
                '{"max_iter": 20}',
            ]
        )
        == 0
    )
    metadata = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert metadata["hyperparameters"]["max_iter"] == 20
    assert "customer_id" not in metadata["spec"]["categorical"]


def test_fail_on_gate_exits_3_for_a_model_below_threshold(
    tmp_path: Path, saved_model_dir: Path, churn_split, capsys: pytest.CaptureFixture[str]
) -> None:
    churn_split.test.to_parquet(tmp_path / "test.parquet")
    strict = tmp_path / "strict.yaml"
    strict.write_text("gate:\n  min_metrics: {auc: 0.99}\n")
    code = main(
        [
            "evaluate",
            "--model-dir",
            str(saved_model_dir),
            "--data",
            str(tmp_path / "test.parquet"),
            "--output",
            str(tmp_path / "eval"),
            "--settings",
            str(strict),
            "--fail-on-gate",
        ]
    )
    assert code == EXIT_GATE_FAILED
    assert "below the minimum 0.99" in capsys.readouterr().err
    assert json.loads((tmp_path / "eval" / "gate.json").read_text())["passed"] is False


def test_bad_input_is_a_clear_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n")
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "d.csv"),
            "--target",
            "label",
            "--model-dir",
            str(tmp_path / "m"),
        ]
    )
    assert code == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: the settings name columns that are not in the data")
    assert "target (dataset.target or --target) names column 'label'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_train_needs_both_paths_or_neither(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--data", str(tmp_path)]) == EXIT_ERROR
    assert "give both --data and --model-dir" in capsys.readouterr().err


def test_invalid_settings_file_is_reported(
    tmp_path: Path, raw_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("gate:\n  primary: auc\n")
    assert (
        main(
            [
                "prep",
                "--data",
                str(raw_csv),
                "--output",
                str(tmp_path / "p"),
                "--settings",
                str(bad),
            ]
        )
        == EXIT_ERROR
    )
    assert "gate.primary: Extra inputs are not permitted" in capsys.readouterr().err


def test_drift_reads_the_baseline_inside_a_sagemaker_model_archive(
    tmp_path: Path, saved_model_dir: Path, churn_split
) -> None:
    # A monitoring Processing job receives the model exactly as training wrote it: model.tar.gz.
    import tarfile

    packed = tmp_path / "model"
    packed.mkdir()
    with tarfile.open(packed / "model.tar.gz", "w:gz") as tar:
        for item in saved_model_dir.iterdir():
            tar.add(item, arcname=item.name)
    churn_split.test.to_csv(tmp_path / "current.csv", index=False)
    code = main(
        [
            "drift",
            "--baseline",
            str(packed),
            "--current",
            str(tmp_path / "current.csv"),
            "--output",
            str(tmp_path / "drift"),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "drift" / "drift_report.json").read_text())
    assert report["dataset_drift"] is False


def test_settings_file_comes_from_the_environment_when_no_option_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tmp_path / "elsewhere.yaml"
    settings.write_text("project: from-env\n")
    monkeypatch.chdir(tmp_path)  # no ./mlops.yaml here
    monkeypatch.setenv("MLOPS_SETTINGS", str(settings))
    args = build_parser().parse_args(["prep", "--data", "x", "--output", "y"])
    assert settings_from_args(args).project == "from-env"
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("project: from-option\n")
    args = build_parser().parse_args(
        ["prep", "--data", "x", "--output", "y", "--settings", str(explicit)]
    )
    assert settings_from_args(args).project == "from-option"


def test_help_starts_without_importing_mlflow_or_the_estimator_libraries() -> None:
    # Tracking and optional estimators load only when a command needs them.
    code = (
        "import sys\n"
        "from mlcore.cli import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in ('mlflow', 'xgboost', 'lightgbm', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "mlflow" not in result.stdout and "xgboost" not in result.stdout
    assert "lightgbm" not in result.stdout


def test_prep_reads_dataset_path_from_the_settings_when_no_data_is_given(
    tmp_path: Path, raw_csv: Path
) -> None:
    settings = tmp_path / "mlops.yaml"
    settings.write_text(
        "project: customers\n"
        f"dataset:\n  path: {raw_csv}\n  target: churned\n  id_columns: [customer_id]\n"
        "  timestamp: event_time\n"
    )
    assert main(["prep", "--output", str(tmp_path / "prep"), "--settings", str(settings)]) == 0
    lineage = json.loads((tmp_path / "prep" / "lineage.json").read_text())
    assert lineage["source"] == str(raw_csv) and lineage["rows"] == 3_000


def test_prep_without_data_or_dataset_path_says_how_to_give_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prep", "--output", str(tmp_path / "prep")]) == EXIT_ERROR
    assert "give --data, or set dataset.path" in capsys.readouterr().err


def test_train_finds_the_spec_and_validation_prep_wrote_beside_train(
    tmp_path: Path, raw_csv: Path, fast_settings: Path
) -> None:
    settings = ["--settings", str(fast_settings)]
    assert (
        main(["prep", "--data", str(raw_csv), "--output", str(tmp_path / "prep"), *settings]) == 0
    )
    # No --spec, no --validation, no --target: prep's outputs are found beside train/.
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "prep" / "train"),
            "--model-dir",
            str(tmp_path / "model"),
            *settings,
        ]
    )
    assert code == 0
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    prep_spec = json.loads((tmp_path / "prep" / "spec.json").read_text())
    assert metadata["spec"] == prep_spec
    assert metadata["sample_request_source"] == "validation" and metadata["validation_metrics"]


def test_train_with_a_target_honours_the_declared_types_and_task(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "plot_id": np.arange(400) + 1000,
            "soil_code": rng.integers(1, 4, 400),
            "rain_mm": rng.normal(50, 10, 400),
        }
    )
    # A whole-number target that dtype inference would call classes: the settings say regression.
    frame["yield_kg"] = (frame["rain_mm"] * 3 + frame["soil_code"] * 10).round()
    frame.to_csv(tmp_path / "plots.csv", index=False)
    settings = tmp_path / "mlops.yaml"
    settings.write_text(
        "project: harvest\n"
        "dataset:\n  path: plots.csv\n  target: yield_kg\n  task: regression\n"
        "  categorical: [soil_code]\n  id_columns: [plot_id]\n"
        "training:\n  algorithm: ridge\n"
    )
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "plots.csv"),
            "--target",
            "yield_kg",
            "--model-dir",
            str(tmp_path / "m"),
            "--settings",
            str(settings),
        ]
    )
    assert code == 0
    spec = json.loads((tmp_path / "m" / "metadata.json").read_text())["spec"]
    assert spec["task"] == "regression" and spec["categorical"] == ["soil_code"]
    assert "plot_id" not in spec["numeric"]


def test_extras_prints_what_the_settings_need(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "mlops.yaml"
    settings.write_text("training:\n  algorithm: lightgbm\n")
    assert main(["extras", "--settings", str(settings)]) == 0
    assert capsys.readouterr().out.strip() == "lightgbm"
