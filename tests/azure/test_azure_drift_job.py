"""The Spark drift job (monitoring.engine: spark | auto): its definition under azure-ai-ml's
own rules, and its entry file on local Spark over data laid out as the collector writes it."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import pandas as pd
import pytest
import yaml
from azure.ai.ml import load_job
from azure.ai.ml.entities import CronTrigger, JobSchedule, PipelineJob, SparkJob
from azure.ai.ml.entities._builders import Spark
from azure.ai.ml.entities._load_functions import load_schedule
from azure.ai.ml.exceptions import ValidationException
from mlops_azure import drift_job
from mlops_azure.config import AzureEnvironment, load_environment
from mlops_azure.jobs import spark_drift
from mlops_azure.jobs.breach import BREACH_TAG, BREACH_WORDING
from mlops_azure.jobs.reference import azure_outputs, copy_baseline
from mlops_azure.retrain_handler import RUN_STATUS_CHANGED, breach_of

from mlcore.errors import ConfigError, DataError
from mlcore.settings import MlopsSettings, load_settings

# The local Spark tests share the test run's one SparkSession (tests/conftest.py).
pytestmark = pytest.mark.xdist_group("spark")
JOB_FILE = "schedule-spark-drift-job.yaml"
SCHEDULE_FILE = "schedule-spark-drift.yaml"
FIXTURE_SETTINGS = Path(__file__).parent / "fixtures" / "mlops.yaml"
NOW = datetime(2026, 6, 1, 12, 5, tzinfo=UTC)  # the window of 1 hour is 11:00-12:00


# --- the definition, read back by azure-ai-ml -----------------------------------------------


def _spark_step(dry_run: Path) -> dict[str, Any]:
    """The Spark step of the dumped pipeline job the schedule submits, as a job document."""
    pipeline = yaml.safe_load((dry_run / JOB_FILE).read_text())
    assert pipeline["type"] == "pipeline" and list(pipeline["jobs"]) == ["drift"]
    step: dict[str, Any] = pipeline["jobs"]["drift"]
    # The step's code lives in its inline component; a job document holds it itself.
    step["code"] = str(dry_run / step.pop("component")["code"])
    # Outside its pipeline the step has no parent input to bind: the trigger time Azure
    # fills in for each run stands in as the literal string it is.
    assert step["inputs"]["trigger_time"] in (
        "${{parent.inputs.trigger_time}}",
        {"path": "${{parent.inputs.trigger_time}}"},
    )
    step["inputs"]["trigger_time"] = "2026-06-01T12:00:00Z"
    return step


@pytest.fixture(scope="module")
def loaded(dry_run: Path, tmp_path_factory: pytest.TempPathFactory) -> SparkJob:
    """The dumped Spark step through azure-ai-ml's own loader, as the SparkJob it runs."""
    path = tmp_path_factory.mktemp("spark-step") / "step.yaml"
    path.write_text(yaml.safe_dump(_spark_step(dry_run)))
    node = load_job(path)
    assert isinstance(node, Spark)
    job = node._to_job()
    assert isinstance(job, SparkJob)
    return job


def test_the_dumped_pipeline_around_the_spark_step_passes_azure_ml_validation(
    dry_run: Path,
) -> None:
    pipeline = load_job(dry_run / JOB_FILE)
    assert isinstance(pipeline, PipelineJob)
    assert pipeline._validate().passed


def test_the_dumped_spark_job_passes_azure_ml_validation(loaded: SparkJob) -> None:
    # SparkJob._validate (azure-ai-ml 1.35, entities/_job/spark_job.py) runs the rules the
    # service applies first: resources vs compute, direct input/output modes, the driver and
    # executor sizes and dynamic allocation limits, a file entry, args naming real inputs.
    loaded._validate()
    assert loaded.compute is None
    assert (loaded.resources.instance_type, loaded.resources.runtime_version) == (
        "standard_e4s_v3",
        "3.5",
    )


def test_dynamic_allocation_follows_the_environment_sizes(
    loaded: SparkJob, dev_env: AzureEnvironment
) -> None:
    sizes = dev_env.monitoring.spark_drift
    assert loaded.dynamic_allocation_enabled is True
    assert (loaded.dynamic_allocation_min_executors, loaded.dynamic_allocation_max_executors) == (
        sizes.min_executors,
        sizes.max_executors,
    )
    assert (loaded.driver_cores, loaded.driver_memory) == (sizes.driver_cores, sizes.driver_memory)
    assert (loaded.executor_cores, loaded.executor_memory) == (
        sizes.executor_cores,
        sizes.executor_memory,
    )


def test_the_entry_and_py_files_carry_mlcore_to_driver_and_executors(
    loaded: SparkJob, dry_run: Path
) -> None:
    import zipfile

    written = _spark_step(dry_run)
    code = Path(written["code"])
    assert loaded.entry.entry == "spark_drift.py" and (code / "spark_drift.py").is_file()
    entry = (code / "spark_drift.py").read_text()
    assert "from mlcore.cli import main" in entry and '"--engine", "spark"' in entry
    assert written["py_files"] == ["mlcore-job.zip"]
    names = set(zipfile.ZipFile(code / "mlcore-job.zip").namelist())
    assert {"mlcore/cli.py", "mlcore/drift/cli.py", "mlops_azure/jobs/spark_drift.py"} <= names
    assert not any("__pycache__" in name for name in names)


def test_the_job_reads_the_collected_traffic_and_the_models_reference_directly(
    loaded: SparkJob,
) -> None:
    inputs = {
        name: (i.type, i.mode, i.path)
        for name, i in loaded.inputs.items()
        if name != "trigger_time"  # the run's trigger time, a string
    }
    collector = "azureml://datastores/workspaceblobstore/paths/modelDataCollector/acme-dev/blue"
    assert inputs["model_inputs"] == ("uri_folder", "direct", f"{collector}/model_inputs/")
    assert inputs["model_outputs"] == ("uri_folder", "direct", f"{collector}/model_outputs/")
    assert inputs["reference"][:2] == ("mltable", "direct")
    assert inputs["reference"][2].endswith("/data/acme-risk-prediction-reference/versions/1")
    assert {name: o.mode for name, o in loaded.outputs.items()} == {
        "prepared": "direct",
        "report": "direct",
    }
    # The run's trigger time, from which the job finds its window (the schedule's gap).
    assert loaded.args.endswith("--trigger-time ${{inputs.trigger_time}}")


def test_the_conf_holds_only_keys_azure_ml_maps_or_the_session_packages(dry_run: Path) -> None:
    # azure-ai-ml maps exactly these conf keys to the job's sizes (_schema/job/
    # parameterized_spark.py CONF_KEY_MAP); a misspelt key would reach Spark unchecked.
    from azure.ai.ml._schema.job.parameterized_spark import CONF_KEY_MAP

    written = _spark_step(dry_run)
    assert set(written["conf"]) == {*CONF_KEY_MAP.values(), drift_job.PYTHON_ENV_CONF}


def test_the_conda_conf_installs_mlcores_pins_but_not_pyspark(loaded: SparkJob) -> None:
    # Azure's own monitoring components declare their session packages in this conf
    # (azureml-assets, model_data_collector_preprocessor/spec.yaml); the runtime has pyspark.
    document = yaml.safe_load(loaded.conf[drift_job.PYTHON_ENV_CONF])
    pip = document["dependencies"][0]["pip"]
    # The job lock, whole tree and hashed (issue 20): nothing resolves in the session.
    versions = {p.split("==")[0]: p.split("==")[1].split()[0] for p in pip}
    assert versions["pandas"] == "3.1.1" and versions["azureml-mlflow"] == "1.62.0.post6"
    assert all(" --hash=sha256:" in p for p in pip)
    assert not any(p.lower().startswith("pyspark") for p in pip)
    assert not any(p.startswith(("boto3", "sagemaker", "aws-cdk-lib")) for p in pip)


def test_the_schedule_loads_back_with_the_monitors_trigger(dry_run: Path) -> None:
    schedule = load_schedule(dry_run / SCHEDULE_FILE)
    assert isinstance(schedule, JobSchedule)
    # A pipeline job around the Spark step: what the generally available SDK schedules.
    assert isinstance(schedule.create_job, PipelineJob)
    assert isinstance(schedule.create_job.jobs["drift"], Spark)
    assert isinstance(schedule.trigger, CronTrigger)
    monitor = yaml.safe_load((dry_run / "monitor.yaml").read_text())
    assert schedule.trigger.expression == monitor["trigger"]["expression"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["conf"].update({"spark.dynamicAllocation.minExecutors": 9}), "min executors"),
        (lambda d: d["inputs"]["model_inputs"].update({"mode": "ro_mount"}), "only 'direct'"),
        (lambda d: d.update({"compute": "cpu-cluster"}), "Only one of either compute"),
        (lambda d: d["conf"].pop("spark.driver.memory"), "mandatory"),
        (lambda d: d["resources"].update({"instance_type": "standard_ds3_v2"}), "Instance type"),
    ],
)
def test_what_azure_refuses_fails_the_same_check(
    dry_run: Path, tmp_path: Path, change: Any, message: str
) -> None:
    # The check above is the SDK's, not ours: each mutation Azure ML refuses must fail it.
    document = _spark_step(dry_run)
    change(document)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ValidationException, match=message):
        load_job(path)._to_job()._validate()


# --- which settings get the job --------------------------------------------------------------


def _settings(**monitoring: object) -> MlopsSettings:
    return load_settings(FIXTURE_SETTINGS, overrides={"monitoring": monitoring})


def _schedule(env: AzureEnvironment, settings: MlopsSettings, tmp_path: Path) -> JobSchedule | None:
    schedules = drift_job.build_drift_schedules(
        env,
        settings,
        deployment_name="green",
        reference_data="azureml:acme-risk-prediction-reference:3",
        settings_data="azureml:acme-risk-settings:abc",
        code_dir=drift_job.stage_spark_code(tmp_path / "code"),
    )
    return schedules[0] if schedules else None


def test_the_streaming_engine_writes_no_spark_job(
    dev_env: AzureEnvironment, tmp_path: Path
) -> None:
    assert _schedule(dev_env, _settings(engine="streaming"), tmp_path) is None
    spark_schedule = _schedule(dev_env, _settings(engine="spark"), tmp_path)
    assert spark_schedule is not None
    assert spark_schedule.name == "acme-risk-dev-spark-drift"


def test_a_runtime_mlcore_cannot_run_on_is_refused(
    dev_env: AzureEnvironment, tmp_path: Path
) -> None:
    env = dev_env.model_copy(
        update={
            "monitoring": dev_env.monitoring.model_copy(update={"spark_runtime_version": "3.4"})
        }
    )
    with pytest.raises(ConfigError, match=r"runtime 3\.5 \(Python 3\.11"):
        _schedule(env, _settings(engine="spark"), tmp_path)


def test_a_seasonal_reference_with_the_spark_engine_is_refused() -> None:
    # mlcore's settings refuse the pair when they load, before any Azure definition is built.
    with pytest.raises(ConfigError, match="training baseline only"):
        load_settings(
            FIXTURE_SETTINGS,
            overrides={
                "monitoring": {"engine": "auto"},
                "drift": {"reference": {"mode": "previous_window"}},
            },
        )


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"min_executors": 5, "max_executors": 2}, "must not exceed max_executors"),
        ({"executor_cores": 8}, "do not fit standard_e4s_v3"),
        ({"driver_memory": "40g"}, "do not fit standard_e4s_v3"),
        ({"executor_memory": "28 GB"}, "String should match pattern"),
    ],
)
def test_spark_sizes_azure_would_refuse_fail_on_load(
    environments_dir: Path, tmp_path: Path, sizes: dict[str, object], message: str
) -> None:
    document = yaml.safe_load((environments_dir / "dev.yaml").read_text())
    document["monitoring"]["spark_drift"] = sizes
    (tmp_path / "dev.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=message):
        load_environment("dev", environments_dir=tmp_path)


# --- the entry file on local Spark -----------------------------------------------------------


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline as every Azure test, except the loopback local Spark talks to its JVM over."""
    import socket

    connect = socket.socket.connect

    def loopback_only(sock: socket.socket, address: Any) -> None:
        if not (isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1", "localhost")):
            raise AssertionError(f"test tried to connect to {address}")
        connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)


def _collect(folder: Path, hour: str, frames: list[pd.DataFrame]) -> None:
    """What Azure's data collector writes: a CloudEvents JSON line per request, rows in `data`."""
    path = folder.joinpath(*hour.split("/"))
    path.mkdir(parents=True, exist_ok=True)
    with (path / "part-0.jsonl").open("a") as handle:
        for number, frame in enumerate(frames):
            record = {
                "specversion": "1.0",
                "type": "azureml.inference.model_inputs",
                "time": "2026-06-01T11:10:00Z",
                "correlationid": f"req{number}",
                "data": json.loads(frame.to_json(orient="records")),
            }
            handle.write(json.dumps(record) + "\n")


def _serve(model: Any, root: Path) -> dict[str, Any]:
    """The model with its baseline, and its held-out rows collected in the window."""
    from mlcore.train import save_trained_model

    bundle, held_out = model
    model_dir = save_trained_model(bundle, root / "model", reference=held_out)
    reference = root / "reference"
    copy_baseline(model_dir, reference)
    settings = root / "mlops.yaml"
    settings.write_text(
        yaml.safe_dump({"project": "acme-risk", "monitoring": {"engine": "auto"}}, sort_keys=False)
    )
    ids = [f"req_{i}" for i in range(len(held_out))]
    features = held_out[list(bundle.spec.features)].assign(inference_id=ids)
    outputs = azure_outputs(bundle.predict(held_out), bundle.spec.target).assign(inference_id=ids)
    half = len(held_out) // 2
    _collect(root / "inputs", "2026/06/01/11", [features.iloc[:half], features.iloc[half:]])
    _collect(root / "outputs", "2026/06/01/11", [outputs.iloc[:half], outputs.iloc[half:]])
    # An hour outside the window: never read.
    _collect(root / "inputs", "2026/06/01/09", [features.iloc[:3].assign(**{"Feat 0": 1e9})])
    return {
        "bundle": bundle,
        "rows": len(held_out),
        "root": root,
        "reference": reference,
        "settings": settings,
    }


@pytest.fixture
def collected(any_model: Any, tmp_path: Path) -> dict[str, Any]:
    """A model of each task (binary, multiclass, regression), served and collected."""
    return _serve(any_model, tmp_path)


@pytest.fixture
def collected_binary(binary_model: Any, tmp_path: Path) -> dict[str, Any]:
    return _serve(binary_model, tmp_path)


def _run(spark: Any, collected: dict[str, Any], **kwargs: Any) -> int:
    root = collected["root"]
    return spark_drift.run(
        spark,
        model_inputs=str(root / "inputs"),
        model_outputs=str(root / "outputs"),
        reference=str(collected["reference"]),
        settings_uri=str(collected["settings"]),
        prepared=str(root / "prepared"),
        report_uri=str(root / "report"),
        trigger_time=NOW,
        **kwargs,
    )


def test_the_window_joins_inputs_and_outputs_under_mlcores_names(
    spark: Any, collected_binary: dict[str, Any]
) -> None:
    collected = collected_binary
    root, bundle = collected["root"], collected["bundle"]
    frame = spark_drift.prepare_window(
        spark,
        model_inputs=str(root / "inputs"),
        model_outputs=str(root / "outputs"),
        input_hours=["2026/06/01/11"],
        output_hours=["2026/06/01/11"],
        target=bundle.spec.target,
    )
    # Counted on Spark: pyspark 3.5's toPandas warns under pandas 3 (copy keyword).
    assert frame.count() == collected["rows"]
    expected = {*bundle.spec.features, "prediction"}
    if bundle.spec.task == "classification":
        expected.add("score")
    assert set(frame.columns) == expected  # no inference_id, no collector metadata
    assert frame.filter(frame["prediction"].isNull()).count() == 0


@pytest.mark.slow
def test_a_small_window_runs_the_streaming_engine_end_to_end(
    spark: Any, collected: dict[str, Any]
) -> None:
    # auto with the window (a few KB) under spark_min_capture_mb: mlcore's streaming engine
    # grades the prepared window on the driver, and the reports land in the report folder.
    assert _run(spark, collected, environ={}) == 0
    import pyarrow.parquet as pq

    bundle = collected["bundle"]
    prepared = pq.read_table(collected["root"] / "prepared")
    outputs = {"prediction", "score"} if bundle.spec.task == "classification" else {"prediction"}
    assert set(prepared.column_names) == {*bundle.spec.features, *outputs}
    assert prepared.num_rows == collected["rows"]  # the hour outside the window is not read
    report_dir = collected["root"] / "report"
    report = json.loads((report_dir / "drift_report.json").read_text())
    assert report["grade"] in {"none", "moderate", "major", "insufficient_data"}
    engine = json.loads((report_dir / "engine.json").read_text())
    assert engine["engine"] == "streaming" and engine["configured_engine"] == "auto"
    assert engine["window_start"] == "2026-06-01T11:00:00+00:00"
    assert {"drift_report.html", "constraint_violations.json"} <= {
        p.name for p in report_dir.iterdir()
    }


def test_a_large_window_runs_mlcores_spark_engine_and_a_major_grade_starts_retraining(
    spark: Any, collected_binary: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    collected = collected_binary
    collected["settings"].write_text(
        yaml.safe_dump(
            {
                "project": "acme-risk",
                "monitoring": {"engine": "auto", "spark_min_capture_mb": 0.001},
            }
        )
    )
    calls: list[list[str]] = []

    def drift_main(argv: list[str]) -> int:
        calls.append(argv)
        assert Path(argv[argv.index("--baseline") + 1]).joinpath("baseline.json").is_file()
        output = Path(argv[argv.index("--output") + 1])
        report = {"grade": "major", "drifted_features": ["Feat 1"], "dataset_drift": True}
        (output / "drift_report.json").write_text(json.dumps(report))
        return 0

    client = Mock()
    monkeypatch.setattr("mlflow.MlflowClient", lambda: client)
    code = _run(spark, collected, environ={"MLFLOW_RUN_ID": "run-7"}, drift_main=drift_main)
    assert code == 0
    (argv,) = calls
    assert argv[:3] == ["drift", "--engine", "spark"]
    assert argv[argv.index("--current") + 1] == str(collected["root"] / "prepared")
    tags = {call.args[1]: call.args[2] for call in client.set_tag.call_args_list}
    assert tags["drift_engine"] == "spark"
    # The tag and wording of a breached Azure signal: the retrain function accepts the event.
    event = {"eventType": RUN_STATUS_CHANGED, "data": {"runTags": {BREACH_TAG: tags[BREACH_TAG]}}}
    assert breach_of(event) is not None and BREACH_WORDING in tags[BREACH_TAG]


@pytest.mark.parametrize("grade", ["none", "moderate", "insufficient_data"])
def test_only_a_major_grade_is_a_breach(grade: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = Mock()
    monkeypatch.setattr("mlflow.MlflowClient", lambda: client)
    assert spark_drift.tag_run({"grade": grade}, "spark", {"MLFLOW_RUN_ID": "r"}) is None
    assert BREACH_TAG not in {call.args[1] for call in client.set_tag.call_args_list}


@pytest.mark.parametrize(("grade", "level"), [("none", 0), ("moderate", 1), ("major", 2)])
def test_the_run_logs_the_grade_as_the_number_cloudwatch_publishes(
    grade: str, level: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Mock()
    monkeypatch.setattr("mlflow.MlflowClient", lambda: client)
    spark_drift.tag_run({"grade": grade}, "spark", {"MLFLOW_RUN_ID": "r"})
    client.log_metric.assert_called_once_with("r", "drift_grade", level)


def test_an_empty_window_is_skipped_without_a_verdict(
    spark: Any, collected_binary: dict[str, Any]
) -> None:
    collected = collected_binary

    def drift_main(argv: list[str]) -> int:
        raise AssertionError("no drift run on an empty window")

    root = collected["root"]
    code = spark_drift.run(
        spark,
        model_inputs=str(root / "inputs"),
        model_outputs=str(root / "outputs"),
        reference=str(collected["reference"]),
        settings_uri=str(collected["settings"]),
        prepared=str(root / "prepared"),
        report_uri=str(root / "report"),
        trigger_time=datetime(2026, 7, 1, 0, 30, tzinfo=UTC),
        environ={},
        drift_main=drift_main,
    )
    assert code == 0
    skipped = json.loads((root / "report" / "skipped.json").read_text())
    assert skipped["reason"] == "nothing was collected" and skipped["captured_bytes"] == 0


def test_rows_stored_by_reference_are_refused(spark: Any, tmp_path: Path) -> None:
    hour = tmp_path / "inputs" / "2026" / "06" / "01" / "11"
    hour.mkdir(parents=True)
    (hour / "a.jsonl").write_text(json.dumps({"data": None, "dataref": "https://x/y"}) + "\n")
    with pytest.raises(DataError, match="by reference"):
        spark_drift.prepare_window(
            spark,
            model_inputs=str(tmp_path / "inputs"),
            model_outputs=str(tmp_path / "outputs"),
            input_hours=["2026/06/01/11"],
            output_hours=[],
            target="y",
        )


@pytest.mark.parametrize(
    ("configured", "captured_mb", "engine"),
    [("auto", 10, "streaming"), ("auto", 600, "spark"), ("spark", 0, "spark")],
)
def test_auto_chooses_spark_only_above_the_capture_threshold(
    configured: str, captured_mb: int, engine: str
) -> None:
    assert spark_drift.choose_engine(configured, captured_mb * 1024 * 1024, 512) == engine


def test_the_window_is_the_whole_hours_since_the_firing_before_the_run() -> None:
    window = spark_drift.Window.of_run(_settings(schedule="cron(0 */3 * * ? *)"), NOW)
    assert window.hour_folders() == ["2026/06/01/09", "2026/06/01/10", "2026/06/01/11"]


@pytest.mark.parametrize("value", ["${{creation_context.trigger_time}}", "yesterday", ""])
def test_a_trigger_time_that_is_not_a_time_is_an_error_not_now(value: str) -> None:
    with pytest.raises(ConfigError, match="not an ISO 8601 time"):
        spark_drift.parse_trigger_time(value)


def test_the_prediction_reference_carries_the_models_baseline(
    binary_model: Any, tmp_path: Path
) -> None:
    # Spark jobs take data inputs only (uri_file, uri_folder, mltable), so the reference
    # asset the training run registers is where the Spark job finds the live model's baseline;
    # its MLTable still names only the Parquet file Azure's monitor reads.
    from mlops_azure.jobs import reference

    from mlcore.train import save_trained_model

    bundle, held_out = binary_model
    model_dir = save_trained_model(bundle, tmp_path / "model", reference=held_out)
    held_out.to_parquet(tmp_path / "validation.parquet")
    output = tmp_path / "reference"
    argv = ["--model-dir", str(model_dir), "--data", str(tmp_path / "validation.parquet")]
    assert reference.main([*argv, "--output", str(output)]) == 0
    assert (output / "baseline" / "baseline.json").read_bytes() == (
        model_dir / "baseline" / "baseline.json"
    ).read_bytes()
    mltable = yaml.safe_load((output / "MLTable").read_text())
    assert mltable["paths"] == [{"file": "./reference.parquet"}]
    shutil.rmtree(model_dir / "baseline")
    with pytest.raises(DataError, match="no baseline/ folder"):
        copy_baseline(model_dir, tmp_path / "elsewhere")


@pytest.mark.parametrize(
    ("schedule", "trigger_time", "hours"),
    [
        ("rate(6 hours)", datetime(2026, 6, 1, 12, 0, 3, tzinfo=UTC), 6),
        ("rate(2 days)", datetime(2026, 6, 2, 0, 0, 3, tzinfo=UTC), 48),
        ("cron(0 * * * ? *)", datetime(2026, 6, 1, 12, 0, 3, tzinfo=UTC), 1),
        ("cron(0 3 * * ? *)", datetime(2026, 6, 1, 3, 0, 3, tzinfo=UTC), 24),
        ("cron(0 3 ? * MON *)", datetime(2026, 6, 1, 3, 0, 3, tzinfo=UTC), 168),  # a Monday
        ("cron(0 3 ? * MON-FRI *)", datetime(2026, 6, 1, 3, 0, 3, tzinfo=UTC), 72),
        ("cron(0 3 ? * MON-FRI *)", datetime(2026, 6, 2, 3, 0, 3, tzinfo=UTC), 24),
    ],
)
def test_each_run_checks_the_hours_since_the_previous_one(
    dev_env: AzureEnvironment,
    tmp_path: Path,
    schedule: str,
    trigger_time: datetime,
    hours: int,
) -> None:
    settings = _settings(engine="spark", schedule=schedule)
    job = _schedule(dev_env, settings, tmp_path)
    assert job is not None
    window = spark_drift.Window.of_run(settings, trigger_time)
    assert len(window.hour_folders()) == hours
    assert window.end == trigger_time.replace(second=0)
