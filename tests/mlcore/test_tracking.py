"""MLflow tracking of `mlcore train` and `mlcore evaluate`: complete runs, and nothing when off."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlcore.cli import EXIT_ERROR, main
from mlcore.errors import ConfigError
from mlcore.model import model_sha256, write_manifest
from mlcore.settings import load_settings
from mlcore.tracking import RUN_ID_KEY, local_store_uri, resolve_tracking


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One embedded store for the module: creating its tables takes seconds."""
    return local_store_uri(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="module")
def tracked_chain(
    tmp_path_factory: pytest.TempPathFactory, store: str, churn_frame: pd.DataFrame
) -> tuple[Path, str]:
    """prep, train and evaluate through the CLI with tracking on: the folder and the store."""
    folder = tmp_path_factory.mktemp("tracked")
    churn_frame.head(2_000).to_csv(folder / "customers.csv", index=False)
    settings = folder / "mlops.yaml"
    settings.write_text(
        "training:\n  hyperparameters: {max_iter: 30}\n"
        f"tracking:\n  enabled: true\n  uri: {store}\n  experiment: tracked-tests\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLCORE_TRACKING", "on")
        options = ["--settings", str(settings)]
        assert (
            main(
                [
                    "prep",
                    "--data",
                    str(folder / "customers.csv"),
                    "--output",
                    str(folder / "prep"),
                    *options,
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "train",
                    "--data",
                    str(folder / "prep" / "train"),
                    "--model-dir",
                    str(folder / "model"),
                    *options,
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "evaluate",
                    "--model-dir",
                    str(folder / "model"),
                    "--data",
                    str(folder / "prep" / "test"),
                    "--output",
                    str(folder / "eval"),
                    *options,
                ]
            )
            == 0
        )
    return folder, store


def _client(store: str):  # type: ignore[no-untyped-def]
    import mlflow

    return mlflow.MlflowClient(tracking_uri=store)


def test_training_records_its_run_id_in_the_model_and_the_gate(
    tracked_chain: tuple[Path, str],
) -> None:
    folder, _ = tracked_chain
    metadata = json.loads((folder / "model" / "metadata.json").read_text())
    gate = json.loads((folder / "eval" / "gate.json").read_text())
    assert metadata[RUN_ID_KEY] and gate[RUN_ID_KEY] == metadata[RUN_ID_KEY]


def test_the_run_holds_params_metrics_slices_and_the_evaluation_files(
    tracked_chain: tuple[Path, str],
) -> None:
    folder, store = tracked_chain
    run_id = json.loads((folder / "model" / "metadata.json").read_text())[RUN_ID_KEY]
    run = _client(store).get_run(run_id)
    assert run.data.params["algorithm"] == "hist_gradient_boosting"
    assert run.data.params["hp.max_iter"] == "30" and run.data.params["target"] == "churned"
    metrics = run.data.metrics
    # Evaluation continued the training run: both sets of metrics are on it.
    assert 0.5 < metrics["validation_auc"] <= 1 and 0.5 < metrics["evaluation_auc"] <= 1
    assert metrics["gate_passed"] == 1.0
    assert any(key.startswith("slice/region/") and key.endswith("/rows") for key in metrics)
    assert run.data.tags["mlcore.gate"] == "passed" and run.data.tags["mlcore.project"] == "churn"
    assert "mlcore.git_dirty" in run.data.tags
    artifacts = {a.path for a in _client(store).list_artifacts(run_id, "evaluation")}
    for name in (
        "evaluation.json",
        "gate.json",
        "slice_metrics.json",
        "model_card.md",
        "model_card.json",
    ):
        assert f"evaluation/{name}" in artifacts
    assert {"mlcore/metadata.json", "mlcore/sample_request.json"} <= {
        a.path for a in _client(store).list_artifacts(run_id, "mlcore")
    }


def test_the_logged_model_has_a_signature_and_the_sample_request_as_input_example(
    tracked_chain: tuple[Path, str],
) -> None:
    import mlflow

    folder, store = tracked_chain
    run_id = json.loads((folder / "model" / "metadata.json").read_text())[RUN_ID_KEY]
    mlflow.set_tracking_uri(store)
    experiment = _client(store).get_run(run_id).info.experiment_id
    models = mlflow.search_logged_models(
        experiment_ids=[experiment],
        filter_string=f"source_run_id = '{run_id}'",
        output_format="list",
    )
    assert len(models) == 1
    info = mlflow.models.get_model_info(f"models:/{models[0].model_id}")
    request = json.loads((folder / "model" / "sample_request.json").read_text())
    assert set(info.signature.inputs.input_names()) == set(request["instances"][0])
    assert info.saved_input_example_info is not None
    example = mlflow.models.Model.load(f"models:/{models[0].model_id}").load_input_example()
    assert len(example) == len(request["instances"])


def test_without_mlflow_training_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, churn_frame: pd.DataFrame
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the extra were not installed
    monkeypatch.setenv("MLCORE_TRACKING", "auto")
    monkeypatch.chdir(tmp_path)
    churn_frame.head(800).to_csv("d.csv", index=False)
    (tmp_path / "s.yaml").write_text("training:\n  hyperparameters: {max_iter: 10}\n")
    code = main(
        [
            "train",
            "--data",
            "d.csv",
            "--target",
            "churned",
            "--model-dir",
            "m",
            "--settings",
            "s.yaml",
        ]
    )
    assert code == 0
    assert RUN_ID_KEY not in json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert not (tmp_path / "out").exists()


def test_required_tracking_without_mlflow_is_an_error_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.delenv("MLCORE_TRACKING")
    settings = load_settings(overrides={"tracking": {"enabled": True}})
    with pytest.raises(ConfigError, match=r'pip install "mlcore\[tracking\]"'):
        resolve_tracking(settings)


def test_tracking_off_writes_no_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, churn_frame: pd.DataFrame
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLCORE_TRACKING", "off")
    churn_frame.head(800).to_csv("d.csv", index=False)
    (tmp_path / "s.yaml").write_text(
        "training:\n  hyperparameters: {max_iter: 10}\ntracking:\n  enabled: true\n"
    )
    assert (
        main(
            [
                "train",
                "--data",
                "d.csv",
                "--target",
                "churned",
                "--model-dir",
                "m",
                "--settings",
                "s.yaml",
            ]
        )
        == 0
    )
    assert RUN_ID_KEY not in json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert not (tmp_path / "out").exists()


def test_on_a_workstation_the_default_store_is_under_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLCORE_TRACKING", "auto")
    target = resolve_tracking(
        load_settings(None), environ={"MLCORE_TRACKING": "auto"}, cwd=tmp_path
    )
    assert target is not None
    assert target.uri == f"sqlite:///{tmp_path.resolve() / 'out' / 'mlflow' / 'mlflow.db'}"
    assert target.experiment == "churn"


def test_a_sqlite_store_named_by_uri_keeps_its_artifacts_beside_it(tmp_path: Path) -> None:
    uri = local_store_uri(tmp_path / "store")
    target = resolve_tracking(
        load_settings(overrides={"tracking": {"uri": uri}}), environ={"MLCORE_TRACKING": "on"}
    )
    assert (
        target is not None
        and target.artifact_location == (tmp_path / "store" / "artifacts").resolve().as_uri()
    )


def test_the_tracking_uri_in_force_wins_over_the_local_store(tmp_path: Path) -> None:
    environ = {"MLCORE_TRACKING": "auto", "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}
    target = resolve_tracking(load_settings(None), environ=environ, cwd=tmp_path)
    assert target is not None and target.uri == "http://127.0.0.1:5000"
    assert target.local_root is None


@pytest.mark.parametrize("variable", ["TRAINING_JOB_NAME", "TRAINING_JOB_ARN", "TRANSFORM_JOB_ARN"])
def test_a_sagemaker_job_without_a_tracking_uri_does_not_track(variable: str) -> None:
    environ = {"MLCORE_TRACKING": "auto", variable: "mlcore-train-2026"}
    assert resolve_tracking(load_settings(None), environ=environ) is None


def test_a_processing_job_is_known_by_the_configuration_sagemaker_writes(tmp_path: Path) -> None:
    from mlcore.tracking import sagemaker_job

    config = tmp_path / "processingjobconfig.json"
    assert sagemaker_job({}, processing_config=config) is None
    config.write_text('{"ProcessingJobArn": "arn:aws:sagemaker:eu-west-1:1:processing-job/x"}')
    assert sagemaker_job({}, processing_config=config) == "processing"


def test_an_unusable_tracking_uri_fails_the_command_with_the_uri_and_the_way_out(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    churn_frame: pd.DataFrame,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLCORE_TRACKING", "on")
    churn_frame.head(500).to_csv("d.csv", index=False)
    (tmp_path / "s.yaml").write_text(
        "training:\n  hyperparameters: {max_iter: 5}\ntracking:\n  uri: 'nosuchscheme://store'\n"
    )
    code = main(
        [
            "train",
            "--data",
            "d.csv",
            "--target",
            "churned",
            "--model-dir",
            "m",
            "--settings",
            "s.yaml",
        ]
    )
    assert code == EXIT_ERROR
    err = capsys.readouterr().err
    assert "nosuchscheme://store" in err and "MLCORE_TRACKING=off" in err


def test_an_invalid_tracking_override_is_an_error() -> None:
    with pytest.raises(ConfigError, match="MLCORE_TRACKING='sometimes'"):
        resolve_tracking(load_settings(None), environ={"MLCORE_TRACKING": "sometimes"})


def _contexts(run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Dataset inputs of a run: context -> dataset name."""
    return {
        next(t.value for t in item.tags if t.key == "mlflow.data.context"): item.dataset.name
        for item in run.inputs.dataset_inputs
    }


def test_runs_are_named_and_tagged_by_version_role_and_gate_with_their_data_and_figures(
    tracked_chain: tuple[Path, str],
) -> None:
    # Before: every run was "<project> train", with no datasets, no plots, no role.
    from mlcore.tracking import record_registration, resolve_tracking

    folder, store = tracked_chain
    metadata = json.loads((folder / "model" / "metadata.json").read_text())
    run_id = metadata[RUN_ID_KEY]
    short = model_sha256(folder / "model").removeprefix("sha256:")[:8]
    run = _client(store).get_run(run_id)
    assert run.info.run_name == f"churn model {short} champion: gate passed"
    assert run.data.tags["mlcore.role"] == "champion"
    assert set(_contexts(run)) == {"training", "validation", "evaluation"}
    figures = {a.path for a in _client(store).list_artifacts(run_id, "evaluation/figures")}
    assert {
        "evaluation/figures/roc_curve.png",
        "evaluation/figures/confusion_matrix.png",
    } <= figures
    card = {a.path for a in _client(store).list_artifacts(run_id, "evaluation")}
    assert "evaluation/model_card.html" in card

    target = resolve_tracking(
        load_settings(folder / "mlops.yaml"), environ={"MLCORE_TRACKING": "on"}
    )
    assert target is not None
    record_registration(target, run_id, "4")
    renamed = _client(store).get_run(run_id)
    assert renamed.info.run_name == "churn v4 champion: gate passed"
    assert renamed.data.tags["mlcore.model_version"] == "4"


def test_an_evaluation_against_a_champion_is_a_challenger_run_of_its_own(
    tracked_chain: tuple[Path, str], tmp_path: Path
) -> None:
    import shutil

    folder, store = tracked_chain
    # A model whose training run is not in this store: the evaluation opens a run of its own.
    shutil.copytree(folder / "model", tmp_path / "model")
    metadata_file = tmp_path / "model" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    metadata.pop(RUN_ID_KEY)
    metadata_file.write_text(json.dumps(metadata))
    write_manifest(tmp_path / "model")  # the edited folder is a model of its own
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLCORE_TRACKING", "on")
        code = main(
            [
                "evaluate",
                "--model-dir",
                str(tmp_path / "model"),
                "--champion-dir",
                str(folder / "model"),
                "--data",
                str(folder / "prep" / "test"),
                "--output",
                str(tmp_path / "eval"),
                "--settings",
                str(folder / "mlops.yaml"),
            ]
        )
    assert code == 0
    experiment = _client(store).get_run(_run_of(folder)).info.experiment_id
    runs = _client(store).search_runs(
        [experiment], filter_string="tags.`mlcore.role` = 'challenger'"
    )
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name.endswith("challenger: gate passed")
    assert run.data.metrics["gate_shortfall"] == pytest.approx(0.0, abs=1e-12)
    assert set(_contexts(run)) == {"evaluation"}


def _run_of(folder: Path) -> str:
    return str(json.loads((folder / "model" / "metadata.json").read_text())[RUN_ID_KEY])
