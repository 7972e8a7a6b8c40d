"""Every failed mlcore command inside a SageMaker job leaves its reason where SageMaker reads
it (issue 20, finding 3): ``/opt/ml/output/message`` for a processing job (DescribeProcessing
Job's ExitMessage, its first 1 KB, UTF-8), ``/opt/ml/output/failure`` for a training job
(FailureReason, at most 1024 characters). On a laptop or in CI nothing is written.

The container root is a temporary folder (``mlcore.job_failure.SAGEMAKER_ROOT``); a
processing job is recognised, as in SageMaker, by ``config/processingjobconfig.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import mlcore.cli
import mlcore.job_failure
from mlcore.cli import main
from mlcore.data import Split
from mlcore.job_failure import MAX_REASON_BYTES, fit_reason, report_job_failure

_JOB_VARIABLES = ("TRAINING_JOB_NAME", "TRAINING_JOB_ARN", "TRANSFORM_JOB_ARN", "SM_OUTPUT_DIR")


@pytest.fixture
def opt_ml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The container root, with no sign of a SageMaker job yet."""
    root = tmp_path / "opt_ml"
    monkeypatch.setattr(mlcore.job_failure, "SAGEMAKER_ROOT", root)
    for name in _JOB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return root


@pytest.fixture
def processing_job(opt_ml: Path) -> Path:
    """Inside a SageMaker processing job: SageMaker writes this file in every one."""
    config = opt_ml / "config" / "processingjobconfig.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"ProcessingJobName": "acme-prep-1"}))
    return opt_ml / "output" / "message"


@pytest.fixture
def training_job(opt_ml: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRAINING_JOB_NAME", "mlcore-train-1")
    return opt_ml / "output" / "failure"


def _message(path: Path) -> str:
    text = path.read_bytes()
    assert len(text) <= MAX_REASON_BYTES
    return text.decode("utf-8")


@pytest.fixture
def churn_data(churn_split: Split, tmp_path: Path) -> Path:
    path = tmp_path / "data" / "test.parquet"
    path.parent.mkdir()
    churn_split.test.head(400).to_parquet(path)
    return path


def _settings(tmp_path: Path, settings_file: Path, **gate: object) -> Path:
    document = yaml.safe_load(settings_file.read_text())
    document["gate"].update(gate)
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


# --- processing jobs ----------------------------------------------------------------------


def test_a_missing_settings_file_says_so_in_the_exit_message(
    processing_job: Path, tmp_path: Path, churn_data: Path
) -> None:
    missing = tmp_path / "nowhere" / "mlops.yaml"
    code = main(["prep", "--data", str(churn_data), "--output", str(tmp_path / "out"),
                 "--settings", str(missing)])  # fmt: skip
    assert code == 2
    assert str(missing) in _message(processing_job)
    assert _message(processing_job).startswith("mlcore prep: ")


def test_an_invalid_settings_file_says_what_is_wrong(
    processing_job: Path, tmp_path: Path, churn_data: Path
) -> None:
    bad = tmp_path / "mlops.yaml"
    bad.write_text("project: acme\ngate:\n  min_metrics: {auc: high}\n")
    code = main(["prep", "--data", str(churn_data), "--output", str(tmp_path / "out"),
                 "--settings", str(bad)])  # fmt: skip
    assert code == 2
    message = _message(processing_job)
    assert "min_metrics" in message and "auc" in message


def test_bad_data_in_prep_says_what_is_wrong(
    processing_job: Path, tmp_path: Path, churn_split: Split, settings_file: Path
) -> None:
    unlabelled = tmp_path / "raw" / "part-0.parquet"
    unlabelled.parent.mkdir()
    churn_split.train.head(300).drop(columns=["churned"]).to_parquet(unlabelled)
    code = main(["prep", "--data", str(unlabelled.parent), "--output", str(tmp_path / "out"),
                 "--settings", str(settings_file)])  # fmt: skip
    assert code == 2
    message = _message(processing_job)
    assert message.startswith("mlcore prep: ") and "churned" in message


def test_a_wrong_argument_says_which(processing_job: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["evaluate", "--model-dir", "/opt/ml/processing/model"])
    assert exited.value.code == 2
    message = _message(processing_job)
    assert message.startswith("mlcore evaluate: ")
    assert "--data" in message and "--output" in message and "required" in message


def test_an_unknown_command_says_which(processing_job: Path) -> None:
    with pytest.raises(SystemExit):
        main(["preppp"])
    assert "invalid choice: 'preppp'" in _message(processing_job)


def test_a_refused_gate_exits_3_with_the_gate_reasons(
    processing_job: Path,
    tmp_path: Path,
    saved_model_dir: Path,
    churn_data: Path,
    settings_file: Path,
) -> None:
    strict = _settings(tmp_path, settings_file, min_metrics={"auc": 0.9999})
    code = main(["evaluate", "--model-dir", str(saved_model_dir), "--data", str(churn_data),
                 "--output", str(tmp_path / "evaluation"), "--settings", str(strict),
                 "--fail-on-gate"])  # fmt: skip
    assert code == 3
    message = _message(processing_job)
    assert message.startswith("mlcore evaluate: quality gate failed: ")
    assert "auc" in message and "0.9999" in message


def test_a_refusal_in_the_pipeline_succeeds_and_still_says_why(
    processing_job: Path,
    tmp_path: Path,
    saved_model_dir: Path,
    churn_data: Path,
    settings_file: Path,
) -> None:
    # The pipeline runs evaluate without --fail-on-gate: its condition step reads gate.json.
    strict = _settings(tmp_path, settings_file, min_metrics={"auc": 0.9999})
    code = main(["evaluate", "--model-dir", str(saved_model_dir), "--data", str(churn_data),
                 "--output", str(tmp_path / "evaluation"), "--settings", str(strict)])  # fmt: skip
    assert code == 0
    assert _message(processing_job).startswith("quality gate failed: ")


def test_a_passed_gate_leaves_no_message(
    processing_job: Path,
    tmp_path: Path,
    saved_model_dir: Path,
    churn_data: Path,
    settings_file: Path,
) -> None:
    code = main(["evaluate", "--model-dir", str(saved_model_dir), "--data", str(churn_data),
                 "--output", str(tmp_path / "evaluation"), "--settings", str(settings_file),
                 "--fail-on-gate"])  # fmt: skip
    assert code == 0
    assert not processing_job.exists()


def test_a_failed_drift_job_says_why(
    processing_job: Path, tmp_path: Path, churn_data: Path, settings_file: Path
) -> None:
    code = main(["drift", "--baseline", str(tmp_path / "no-model"), "--current", str(churn_data),
                 "--output", str(tmp_path / "drift"), "--settings", str(settings_file)])  # fmt: skip
    assert code == 2
    message = _message(processing_job)
    assert message.startswith("mlcore drift: ") and "no-model" in message


def test_a_failed_quality_job_says_why(
    processing_job: Path, tmp_path: Path, churn_data: Path, settings_file: Path
) -> None:
    code = main(["quality", "--current", str(churn_data), "--labels", str(tmp_path / "no-labels"),
                 "--baseline", str(tmp_path / "no-model"), "--output", str(tmp_path / "q"),
                 "--settings", str(settings_file)])  # fmt: skip
    assert code == 2
    assert _message(processing_job).startswith("mlcore quality: ")


def test_the_spark_drift_app_reports_through_the_same_path(
    processing_job: Path, tmp_path: Path, settings_file: Path
) -> None:
    from pipelines.monitoring.spark.drift_app import main as drift_app

    code = drift_app(["--baseline", str(tmp_path / "no-model"), "--current", "s3://b/capture/",
                      "--output", str(tmp_path / "drift"), "--settings", str(settings_file)])  # fmt: skip
    assert code == 2
    assert _message(processing_job).startswith("mlcore drift: ")


def test_an_unexpected_error_is_reported_and_still_raised(
    processing_job: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, churn_data: Path
) -> None:
    def broken(args: object) -> int:
        raise KeyError("region")

    monkeypatch.setattr(mlcore.cli, "_cmd_prep", broken)
    with pytest.raises(KeyError):
        main(["prep", "--data", str(churn_data), "--output", str(tmp_path / "out")])
    message = _message(processing_job)
    assert message.startswith("mlcore prep failed unexpectedly: KeyError: 'region'")


# --- training jobs --------------------------------------------------------------------------


def test_a_training_job_without_its_settings_says_so_in_the_failure_reason(
    training_job: Path, opt_ml: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "settings" / "abc.yaml"
    code = main(["train", "--settings", str(missing), "--sagemaker-root", str(opt_ml)])
    assert code == 2
    message = _message(training_job)
    assert message.startswith("mlcore train: ") and str(missing) in message


def test_any_training_error_is_the_failure_reason(
    training_job: Path,
    opt_ml: Path,
    monkeypatch: pytest.MonkeyPatch,
    churn_split: Split,
    settings_file: Path,
) -> None:
    import mlcore.train

    train = opt_ml / "input" / "data" / "train"
    train.mkdir(parents=True)
    churn_split.train.head(200).to_parquet(train / "part.parquet")

    def out_of_memory(**kwargs: object) -> None:
        raise MemoryError("Unable to allocate 12.0 GiB for an array")

    # Not an mlcore, value or OS error: before issue 20 it escaped with no reason written.
    monkeypatch.setattr(mlcore.train, "train_from_paths", out_of_memory)
    code = main(["train", "--settings", str(settings_file), "--sagemaker-root", str(opt_ml)])
    assert code == 1
    assert _message(training_job) == "MemoryError: Unable to allocate 12.0 GiB for an array\n"


# --- where and how much ---------------------------------------------------------------------


def test_nothing_is_written_outside_a_sagemaker_job(
    opt_ml: Path, tmp_path: Path, churn_data: Path
) -> None:
    code = main(["prep", "--data", str(churn_data), "--output", str(tmp_path / "out"),
                 "--settings", str(tmp_path / "missing.yaml")])  # fmt: skip
    assert code == 2
    with pytest.raises(SystemExit):
        main(["evaluate"])
    assert report_job_failure("anything") is None
    assert not opt_ml.exists()


def test_a_long_reason_is_cut_to_sagemakers_1_kb_on_a_character_boundary(
    processing_job: Path,
) -> None:
    reason = "données manquantes: " + "é" * 2000 + "\nsecond line"
    written = report_job_failure(reason)
    assert written == processing_job
    raw = processing_job.read_bytes()
    assert len(raw) <= MAX_REASON_BYTES
    text = raw.decode("utf-8")  # never half a character: SageMaker fails the job otherwise
    assert text.endswith(" ...\n") and "\n" not in text[:-1]
    assert fit_reason("a\n  b") == "a b"
