"""The whole local loop, end to end, on smaller data: what `make demo` promises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

from mlcore.demo import DemoOptions, DemoResult, run_demo
from mlcore.errors import MlcoreError
from mlcore.registry import LocalModelRegistry
from mlcore.settings import MlopsSettings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, Path]:
    out = tmp_path_factory.mktemp("demo") / "demo"
    settings = MlopsSettings.model_validate({"training": {"hyperparameters": {"max_iter": 80}}})
    # One OpenMP thread: HistGradientBoosting's threads spin on an oversubscribed machine.
    # Tracked as `make demo` tracks: into the embedded store beside the demo's folder.
    with threadpool_limits(limits=1), pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLCORE_TRACKING", "on")
        result = run_demo(
            DemoOptions(
                output_dir=out, rows=8_000, traffic_rows=1_500, batch_rows=2_000, quiet=True
            ),
            settings,
        )
    return result, out


def test_the_loop_registers_v1_approved_and_v2_pending(demo_run: tuple[DemoResult, Path]) -> None:
    _, out = demo_run
    packages = LocalModelRegistry(out / "registry").list_packages("churn")
    assert [(p.version, p.status) for p in packages] == [
        (1, "Approved"),
        (2, "PendingManualApproval"),
    ]
    assert packages[1].metadata["data_fingerprint"].startswith("sha256:")


def test_drift_is_found_in_the_shifted_traffic(demo_run: tuple[DemoResult, Path]) -> None:
    result, out = demo_run
    assert result.drift is not None and result.drift.dataset_drift
    assert "monthly_charges" in result.drift.drifted_features
    assert "region" not in result.drift.drifted_features  # the generator leaves region unshifted
    report = json.loads((out / "drift" / "drift_report.json").read_text())
    assert report["dataset_drift"] is True
    assert (out / "drift" / "constraint_violations.json").exists()


def test_the_released_model_scores_a_live_drop_in_batch_and_the_drift_job_reads_it(
    demo_run: tuple[DemoResult, Path],
) -> None:
    result, out = demo_run
    assert result.batch is not None and result.batch_drift is not None
    v1 = LocalModelRegistry(out / "registry").list_packages("churn")[0]
    assert result.batch["model_sha256"] == v1.model_sha256
    assert result.batch["rows_scored"] == result.batch["rows_read"] > 0
    assert (out / "batch" / "run" / "_SUCCESS").is_file()
    assert result.batch_drift.current_rows == result.batch["rows_captured"]
    # The drop is the shifted live period: the drift job finds what it found on live traffic.
    assert result.batch_drift.dataset_drift
    assert "monthly_charges" in result.batch_drift.drifted_features
    report = json.loads((out / "batch" / "drift" / "drift_report.json").read_text())
    assert report["context"]["model_sha256"] == v1.model_sha256


def test_every_request_was_captured(demo_run: tuple[DemoResult, Path]) -> None:
    result, out = demo_run
    # 300 labelled one-row requests (quality joins a label per request), the rest in 12 batches.
    assert result.traffic_requests == 300 + 12 and result.captured_rows == 1_500
    assert list((out / "capture").rglob("*.jsonl"))


def test_retrained_challenger_beats_the_champion_on_recent_data(
    demo_run: tuple[DemoResult, Path],
) -> None:
    _, out = demo_run
    gate = json.loads((out / "v2" / "evaluation" / "gate.json").read_text())
    assert gate["passed"] and gate["champion"] is not None
    assert gate["challenger"]["auc"] > gate["champion"]["auc"]


def test_the_gate_refused_the_challenger_with_misaligned_labels(
    demo_run: tuple[DemoResult, Path],
) -> None:
    result, _ = demo_run
    assert result.blocked is not None and not result.blocked["gate"]["passed"]
    assert result.blocked["metrics"]["auc"] < 0.6


def test_artifacts_are_where_the_readme_says(demo_run: tuple[DemoResult, Path]) -> None:
    _, out = demo_run
    for relative in (
        "summary.json",
        "v1/evaluation/evaluation.json",
        "v1/evaluation/model_card.md",
        "v1/opt_ml/model/model.joblib",
        "v2/evaluation/model_card.json",
        "drift/drift_report.json",
    ):
        assert (out / relative).exists(), relative


def test_demo_refuses_to_clear_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(MlcoreError, match="not empty and was not written by `mlcore demo`"):
        run_demo(DemoOptions(output_dir=tmp_path, quiet=True), MlopsSettings())
    assert (tmp_path / "precious.txt").exists()


def test_the_demo_leaves_browsable_runs_in_the_local_store(
    demo_run: tuple[DemoResult, Path],
) -> None:
    import mlflow

    result, out = demo_run
    # Inside the demo's own folder, whatever --output names: not beside it.
    store = out.resolve() / "mlflow" / "mlflow.db"
    assert result.tracking_uri == f"sqlite:///{store}" and store.is_file()
    client = mlflow.MlflowClient(tracking_uri=result.tracking_uri)
    experiment = client.get_experiment_by_name("churn")
    runs = client.search_runs([experiment.experiment_id])
    # v1, the refused challenger and v2: each trained and evaluated in one run.
    assert len(runs) == 3
    for run in runs:
        assert run.data.params["algorithm"] == "hist_gradient_boosting"
        assert "validation_auc" in run.data.metrics and "evaluation_auc" in run.data.metrics
    # Each run says which model it was: version, role and gate outcome (issue 22, finding 9).
    names = sorted(run.info.run_name for run in runs)
    assert names[0].startswith("churn model ") and names[0].endswith(" challenger: gate failed")
    assert names[1:] == ["churn v1 champion: gate passed", "churn v2 retrain: gate passed"]
    roles = {run.data.tags["mlcore.role"]: run for run in runs}
    assert roles["retrain"].data.tags["mlcore.model_version"] == "2"
    mlflow.set_tracking_uri(result.tracking_uri)
    models = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id], output_format="list"
    )
    assert len(models) == 3
    info = mlflow.models.get_model_info(f"models:/{models[0].model_id}")
    assert info.signature is not None and info.saved_input_example_info is not None


def test_registered_versions_record_their_run_and_whether_the_tree_was_dirty(
    demo_run: tuple[DemoResult, Path],
) -> None:
    _, out = demo_run
    for package in LocalModelRegistry(out / "registry").list_packages("churn"):
        metadata = json.loads((package.model_dir / "metadata.json").read_text())
        assert package.metadata["mlflow_run_id"] == metadata["mlflow_run_id"]
        assert package.metadata["git_dirty"] in ("true", "false", "unknown")
