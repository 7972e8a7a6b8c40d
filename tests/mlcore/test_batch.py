"""`mlcore batch`: chunked scoring whose output the drift and quality jobs read as data capture."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tabular_datasets import KINDS, Kind, make_dataset

from mlcore.batch import (
    CAPTURE_DIR,
    MANIFEST_FILE,
    PREDICTIONS_CSV,
    PREDICTIONS_DIR,
    REJECTS_FILE,
    BatchOptions,
    TooManyRejects,
    run_batch,
)
from mlcore.capture import read_capture
from mlcore.cli import main
from mlcore.data import CHURN_SPEC, DatasetSpec, load_table, make_churn
from mlcore.errors import ConfigError, ModelError
from mlcore.model import ModelBundle, model_sha256

LIVE = "2025-11-01T06:00:00Z"


@pytest.fixture(scope="module")
def live_frame() -> pd.DataFrame:
    return make_churn(3_000, start="2025-10-01", end="2025-12-31", seed=7)


def _options(model_dir: Path, source: Path, output: Path, **extra: object) -> BatchOptions:
    values: dict[str, object] = {"chunk_rows": 700, "progress": False, **extra}
    return BatchOptions(model_dir=model_dir, input=source, output=output, **values)  # type: ignore[arg-type]


def test_a_folder_of_parquet_and_csv_is_scored_in_chunks_with_ids_and_probabilities(
    saved_model_dir: Path, live_frame: pd.DataFrame, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    (drop / "2025-11").mkdir(parents=True)
    live_frame.iloc[:1_800].to_parquet(drop / "2025-11" / "part-0.parquet", index=False)
    live_frame.iloc[1_800:].to_csv(drop / "part-1.csv", index=False)
    (drop / "_SUCCESS").write_text("")  # an upstream writer's marker is not data
    result = run_batch(_options(saved_model_dir, drop, tmp_path / "out", write_csv=True))

    assert (result.rows_read, result.rows_scored, result.rows_rejected) == (3_000, 3_000, 0)
    parts = sorted((tmp_path / "out" / PREDICTIONS_DIR).glob("*.parquet"))
    assert len(parts) == 5  # 1,800 rows in 700-row chunks (three), then 1,200 (two)
    scored = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    bundle = ModelBundle.load(saved_model_dir)
    ordered = pd.concat([live_frame.iloc[:1_800], live_frame.iloc[1_800:]], ignore_index=True)
    expected = bundle.predict(ordered)
    proba = bundle.predict_proba(ordered)
    assert list(scored.columns) == [
        "customer_id",
        "prediction",
        "score",
        *[f"probability_{c}" for c in bundle.classes],
    ]
    assert scored["customer_id"].tolist() == ordered["customer_id"].tolist()
    assert scored["prediction"].tolist() == expected["prediction"].tolist()
    np.testing.assert_allclose(scored["score"], expected["score"])
    np.testing.assert_allclose(scored[[f"probability_{c}" for c in bundle.classes]], proba)
    as_csv = pd.read_csv(tmp_path / "out" / PREDICTIONS_CSV)
    assert as_csv["customer_id"].tolist() == scored["customer_id"].tolist()
    manifest = json.loads((tmp_path / "out" / MANIFEST_FILE).read_text())
    assert manifest["rows_scored"] == 3_000
    assert manifest["model_sha256"] == model_sha256(saved_model_dir)
    assert not (tmp_path / "out" / REJECTS_FILE).exists()


def test_the_capture_reads_back_as_the_rows_and_predictions_scored(
    saved_model_dir: Path, live_frame: pd.DataFrame, tmp_path: Path
) -> None:
    source = tmp_path / "live.parquet"
    live_frame.to_parquet(source, index=False)
    run_batch(
        _options(
            saved_model_dir,
            source,
            tmp_path / "out",
            inference_time=pd.Timestamp(LIVE).to_pydatetime(),
        )
    )
    capture_root = tmp_path / "out" / CAPTURE_DIR
    assert (
        sorted(
            p.parent.relative_to(capture_root).as_posix() for p in capture_root.rglob("*.jsonl")
        )[0]
        == "batch/AllTraffic/2025/11/01/06"
    )
    captured = read_capture(capture_root, CHURN_SPEC)
    scored = load_table(tmp_path / "out" / PREDICTIONS_DIR)
    assert len(captured) == len(live_frame)
    assert captured["inference_id"].tolist() == live_frame["customer_id"].astype(str).tolist()
    assert (captured["inference_time"] == pd.Timestamp(LIVE)).all()
    assert captured["prediction"].tolist() == scored["prediction"].tolist()
    np.testing.assert_allclose(captured["score"], scored["score"])
    for column in CHURN_SPEC.numeric:
        np.testing.assert_allclose(captured[column], live_frame[column], rtol=1e-12)
    for column in CHURN_SPEC.categorical:
        assert captured[column].tolist() == live_frame[column].astype(str).tolist()


def test_drift_and_quality_read_a_batch_run_as_they_read_live_capture(
    saved_model_dir: Path,
    live_frame: pd.DataFrame,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "live.csv"
    live_frame.to_csv(source, index=False)
    out = tmp_path / "out"
    assert (
        main(
            [
                "batch",
                "--model-dir",
                str(saved_model_dir),
                "--input",
                str(source),
                "--output",
                str(out),
                "--quiet",
                "--inference-time",
                LIVE,
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["rows_scored"] == len(live_frame)

    code = main(
        [
            "drift",
            "--current",
            str(out / CAPTURE_DIR),
            "--baseline",
            str(saved_model_dir),
            "--output",
            str(tmp_path / "drift"),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "drift" / "drift_report.json").read_text())
    assert report["current_rows"] == len(live_frame)
    assert {f["name"] for f in report["features"]} == set(CHURN_SPEC.features)
    assert report["missing_columns"] == [] and report["extra_columns"] == []

    labels = tmp_path / "labels.csv"
    pd.DataFrame(
        {"inference_id": live_frame["customer_id"].astype(str), "churned": live_frame["churned"]}
    ).to_csv(labels, index=False)
    code = main(
        [
            "quality",
            "--current",
            str(out / CAPTURE_DIR),
            "--labels",
            str(labels),
            "--baseline",
            str(saved_model_dir),
            "--output",
            str(tmp_path / "quality"),
        ]
    )
    assert code == 0
    quality = json.loads((tmp_path / "quality" / "quality_report.json").read_text())
    assert quality["rows"] == len(live_frame)
    assert quality["unlabelled_predictions"] == 0
    assert quality["metrics"]["auc"] > 0.6


def test_bad_rows_are_counted_reported_and_written_to_rejects_never_dropped(
    saved_model_dir: Path, live_frame: pd.DataFrame, tmp_path: Path
) -> None:
    rows = live_frame.head(400).copy()
    numeric = CHURN_SPEC.numeric[0]
    rows[numeric] = rows[numeric].astype(object)
    rows.loc[3, numeric] = "twelve"
    rows.loc[250, numeric] = "inf"
    source = tmp_path / "drop.csv"
    text = rows.to_csv(index=False).splitlines()
    # A line with one field too many (as an unquoted comma in a value makes) after data row 100.
    text.insert(101, text[101] + ",an extra field")
    source.write_text("\n".join(text) + "\n")

    result = run_batch(_options(saved_model_dir, source, tmp_path / "out", max_reject_share=0.05))

    assert result.rows_read == 401
    assert result.rows_rejected == 3
    assert result.rows_scored == 398
    rejects = pd.read_csv(tmp_path / "out" / REJECTS_FILE)
    assert sorted(rejects["where"]) == ["line 102", "row 251", "row 4"]
    by_where = dict(zip(rejects["where"], rejects["reason"], strict=True))
    assert "'twelve'" in by_where["row 4"] and numeric in by_where["row 4"]
    assert "expected" in by_where["line 102"]
    record = json.loads(rejects.set_index("where").loc["row 4", "record"])
    assert record["customer_id"] == rows.loc[3, "customer_id"]
    manifest = json.loads((tmp_path / "out" / MANIFEST_FILE).read_text())
    assert manifest["rows_rejected"] == 3
    assert len(manifest["reject_examples"]) == 3
    scored = load_table(tmp_path / "out" / PREDICTIONS_DIR)
    assert len(scored) == 398
    assert rows.loc[3, "customer_id"] not in set(scored["customer_id"])


def test_more_bad_rows_than_allowed_publish_nothing_and_say_which(
    saved_model_dir: Path, live_frame: pd.DataFrame, tmp_path: Path
) -> None:
    rows = live_frame.head(100).copy()
    numeric = CHURN_SPEC.numeric[0]
    rows[numeric] = rows[numeric].astype(object)
    rows.loc[:9, numeric] = "n/a"
    source = tmp_path / "drop.parquet"
    rows.astype({numeric: str}).to_parquet(source, index=False)
    with pytest.raises(TooManyRejects, match=r"10 of 100 rows .*row 1: numeric feature"):
        run_batch(_options(saved_model_dir, source, tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out*"))


def test_tab_separated_input_is_read_by_its_suffix(
    saved_model_dir: Path, live_frame: pd.DataFrame, tmp_path: Path
) -> None:
    source = tmp_path / "drop.tsv"
    live_frame.head(300).to_csv(source, index=False, sep="\t")
    result = run_batch(_options(saved_model_dir, source, tmp_path / "out"))
    assert (result.rows_scored, result.rows_rejected) == (300, 0)
    scored = load_table(tmp_path / "out" / PREDICTIONS_DIR)
    expected = ModelBundle.load(saved_model_dir).predict(live_frame.head(300))
    assert scored["prediction"].tolist() == expected["prediction"].tolist()


def test_a_tampered_model_scores_nothing(
    saved_model_dir: Path, live_frame: pd.DataFrame, tmp_path: Path
) -> None:
    source = tmp_path / "drop.parquet"
    live_frame.head(50).to_parquet(source, index=False)
    tampered = tmp_path / "model"
    shutil.copytree(saved_model_dir, tampered)
    metadata = json.loads((tampered / "metadata.json").read_text())
    metadata["decision_threshold"] = 0.01
    (tampered / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelError, match="changed after training"):
        run_batch(_options(tampered, source, tmp_path / "out"))
    assert not (tmp_path / "out").exists()

    # An intact folder that is not the registered model is refused against the registered hash.
    with pytest.raises(ModelError, match="not the model that was registered"):
        run_batch(
            _options(
                saved_model_dir,
                source,
                tmp_path / "out",
                expected_sha256="sha256:" + "0" * 64,
            )
        )
    assert not (tmp_path / "out").exists()


def test_the_registered_hash_comes_from_the_environment_as_in_serving(
    saved_model_dir: Path,
    live_frame: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = tmp_path / "drop.parquet"
    live_frame.head(50).to_parquet(source, index=False)
    monkeypatch.setenv("MLCORE_MODEL_SHA256", "sha256:" + "1" * 64)
    assert (
        main(
            [
                "batch",
                "--model-dir",
                str(saved_model_dir),
                "--input",
                str(source),
                "--output",
                str(tmp_path / "out"),
                "--quiet",
            ]
        )
        != 0
    )
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv("MLCORE_MODEL_SHA256", model_sha256(saved_model_dir))
    assert (
        main(
            [
                "batch",
                "--model-dir",
                str(saved_model_dir),
                "--input",
                str(source),
                "--output",
                str(tmp_path / "out"),
                "--quiet",
            ]
        )
        == 0
    )


def test_a_missing_feature_column_fails_before_anything_is_scored(
    saved_model_dir: Path, live_frame: pd.DataFrame, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    live_frame.head(100).to_parquet(drop / "a.parquet", index=False)
    live_frame.head(100).drop(columns=[CHURN_SPEC.numeric[1]]).to_parquet(drop / "b.parquet")
    with pytest.raises(Exception, match=CHURN_SPEC.numeric[1]):
        run_batch(_options(saved_model_dir, drop, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_folder_mlcore_did_not_write_is_never_replaced(
    saved_model_dir: Path, live_frame: pd.DataFrame, tmp_path: Path
) -> None:
    source = tmp_path / "drop.parquet"
    live_frame.head(50).to_parquet(source, index=False)
    mine = tmp_path / "reports"
    mine.mkdir()
    (mine / "q3.xlsx").write_text("someone's work")
    with pytest.raises(ConfigError, match="mlcore did not write"):
        run_batch(_options(saved_model_dir, source, mine))
    assert (mine / "q3.xlsx").read_text() == "someone's work"
    # A folder a previous batch run wrote is replaced.
    run_batch(_options(saved_model_dir, source, tmp_path / "out"))
    run_batch(_options(saved_model_dir, source, tmp_path / "out"))
    assert len(load_table(tmp_path / "out" / PREDICTIONS_DIR)) == 50


def _start_batch(model_dir: Path, source: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlcore",
            "batch",
            "--model-dir",
            str(model_dir),
            "--input",
            str(source),
            "--output",
            str(out),
            "--chunk-rows",
            "200",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _wait_for_parts(parent: Path, process: subprocess.Popen[bytes], parts: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be interrupted"
        staged = list(parent.glob(".out.*.partial/predictions/*.parquet"))
        if len(staged) >= parts:
            return
        time.sleep(0.05)
    raise AssertionError("the run wrote no predictions within two minutes")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
def test_an_interrupted_run_leaves_nothing_that_looks_complete(
    saved_model_dir: Path, tmp_path: Path, how: signal.Signals
) -> None:
    source = tmp_path / "drop.parquet"
    big = make_churn(30_000, start="2025-10-01", end="2025-12-31", seed=11)
    big.to_parquet(source, index=False, row_group_size=200)
    out = tmp_path / "out"
    process = _start_batch(saved_model_dir, source, out)
    _wait_for_parts(tmp_path, process, parts=3)
    process.send_signal(how)
    process.wait(timeout=60)
    assert not out.exists()
    assert not list(tmp_path.rglob(MANIFEST_FILE))
    staged = list(tmp_path.glob(".out.*"))
    if how == signal.SIGTERM:
        assert staged == []  # a stopped run cleans up after itself
    else:
        # Killed outright: only a hidden staging folder, which no reader takes for output
        # (mlcore's readers skip hidden folders) and the next run replaces nothing with.
        assert all(p.name.startswith(".") and p.name.endswith(".partial") for p in staged)
    # The next run publishes normally beside the leftover.
    assert (
        run_batch(_options(saved_model_dir, source, out, chunk_rows=10_000)).rows_scored == 30_000
    )


def _train(kind: Kind, tmp_path: Path) -> tuple[Path, pd.DataFrame, DatasetSpec]:
    from mlcore.data import infer_spec
    from mlcore.settings import TrainingSettings
    from mlcore.train import save_trained_model, train_model

    dataset = make_dataset(kind, rows=600)
    frame = dataset.frame.assign(**{"row key": [f"k-{i}" for i in range(len(dataset.frame))]})
    spec = infer_spec(
        frame, target=dataset.target, timestamp=dataset.timestamp, exclude=["row key"]
    )
    bundle = train_model(
        frame.iloc[:400],
        spec,
        TrainingSettings(hyperparameters={"max_iter": 20}, seed=1),
        validation=frame.iloc[400:500],
    )
    model_dir = save_trained_model(bundle, tmp_path / "model", reference=frame.iloc[400:500])
    return model_dir, frame.iloc[500:].reset_index(drop=True), spec


@pytest.mark.parametrize("kind", KINDS)
def test_every_task_with_its_own_column_names_is_scored_and_captured(
    kind: Kind, tmp_path: Path
) -> None:
    model_dir, live, spec = _train(kind, tmp_path)
    source = tmp_path / "live.csv"
    live.to_csv(source, index=False)
    result = run_batch(
        _options(model_dir, source, tmp_path / "out", id_columns=("row key",), chunk_rows=37)
    )
    assert result.rows_scored == len(live)
    scored = load_table(tmp_path / "out" / PREDICTIONS_DIR)
    bundle = ModelBundle.load(model_dir)
    expected = bundle.predict(live)
    assert scored["row key"].tolist() == live["row key"].tolist()
    if kind == "regression":
        assert list(scored.columns) == ["row key", "prediction"]
        np.testing.assert_allclose(scored["prediction"], expected["prediction"])
    else:
        assert scored["prediction"].tolist() == expected["prediction"].tolist()
        probabilities = [f"probability_{c}" for c in bundle.classes]
        assert list(scored.columns) == ["row key", "prediction", "score", *probabilities]
        np.testing.assert_allclose(scored[probabilities].sum(axis=1), 1.0)
    captured = read_capture(tmp_path / "out" / CAPTURE_DIR, spec)
    assert captured["inference_id"].tolist() == live["row key"].tolist()
    np.testing.assert_allclose(
        pd.to_numeric(captured["prediction"]) if kind == "regression" else 0,
        expected["prediction"] if kind == "regression" else 0,
    )


def test_awkward_text_and_missing_values_survive_the_capture_round_trip(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from mlcore.batch import capture_lines

    spec = DatasetSpec(target="y", numeric=("x",), categorical=("city", "note"))
    features = pd.DataFrame(
        {
            "x": [1.0, np.nan, 1e-300, 123456789.123456789],
            "city": ["Lyon, FR", 'say "hi"', np.nan, "tab\there"],
            "note": ["line\nbreak", "back\\slash", "ünïcödé", ""],
        }
    )
    predictions = pd.DataFrame(
        {"prediction": ["yes", "no,really", 'a"b', "x"], "score": [0.9, 0.1, 0.5, 0.25]}
    )
    ids = pd.Series(['id "1"', "id\\2", "id\n3", "4"])
    text = capture_lines(
        features,
        predictions,
        ids,
        event_prefix="run-",
        first_event=1,
        inference_time=datetime(2026, 1, 2, 3, tzinfo=UTC),
    )
    path = tmp_path / "capture.jsonl"
    path.write_text(text)
    captured = read_capture(path, spec)
    assert captured["x"].tolist()[0] == 1.0 and np.isnan(captured["x"].tolist()[1])
    assert captured["x"].tolist()[2:] == [1e-300, 123456789.123456789]
    assert captured["city"].tolist()[:2] == ["Lyon, FR", 'say "hi"']
    assert pd.isna(captured["city"].tolist()[2]) and captured["city"].tolist()[3] == "tab\there"
    assert captured["note"].tolist()[:3] == ["line\nbreak", "back\\slash", "ünïcödé"]
    assert pd.isna(captured["note"].tolist()[3])  # an empty text value is missing, as served
    assert captured["prediction"].tolist() == ["yes", "no,really", 'a"b', "x"]
    assert captured["score"].tolist() == [0.9, 0.1, 0.5, 0.25]
    assert captured["inference_id"].tolist() == ['id "1"', "id\\2", "id\n3", "4"]


def test_quotes_and_backslashes_take_the_one_pass_escape_and_read_back(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from mlcore.batch import capture_lines

    spec = DatasetSpec(target="y", numeric=("x",), categorical=("city",))
    cities = ['say "hi"', "back\\slash", "a,b", 'both \\" mixed', "plain"]
    features = pd.DataFrame({"x": [1.5, 2.5, 3.5, 4.5, 5.5], "city": cities})
    predictions = pd.DataFrame({"prediction": [1, 0, 1, 0, 1], "score": [0.9, 0.1, 0.8, 0.2, 0.7]})
    ids = pd.Series(['k"1', "k\\2", "k3", "k4", "k5"])
    path = tmp_path / "capture.jsonl"
    path.write_text(
        capture_lines(
            features,
            predictions,
            ids,
            event_prefix="run-",
            first_event=1,
            inference_time=datetime(2026, 1, 2, tzinfo=UTC),
        )
    )
    captured = read_capture(path, spec)
    assert captured["city"].tolist() == cities
    assert captured["inference_id"].tolist() == ids.tolist()
    assert captured["prediction"].tolist() == [1, 0, 1, 0, 1]
